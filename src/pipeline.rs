//! Running stages inside this process, and waiting for a run to finish wherever its
//! stages run.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use roster_differ::{BrakeSettings, DifferConfig};
use roster_fetcher::{FetcherConfig, FetcherSettings};
use roster_parser::{ParserConfig, ParserSettings};
use roster_shared::config::{ConsumeSettings, SupervisorSettings};
use roster_shared::db::entity::run;
use roster_shared::db::runs;
use roster_shared::error::StageError;
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::stage::Services;
use roster_writer::WriterConfig;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::App;

/// What stages running in this process take: how they consume, the brake, and the
/// supervisor they compete to be.
#[derive(Debug, Clone, Default, Args)]
pub struct PipelineSettings {
    /// How stages consume messages.
    #[command(flatten)]
    pub consume: ConsumeSettings,
    /// The mass-deactivation brake.
    #[command(flatten)]
    pub brake: BrakeSettings,
    /// The input limits and the parser's memory.
    #[command(flatten)]
    pub parser: ParserSettings,
    /// The supervisor.
    #[command(flatten)]
    pub supervisor: SupervisorSettings,
}

/// Stages running in this process until [`Pipeline::stop`].
pub struct Pipeline {
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), StageError>)>,
    /// Set when the queues are in memory: their dead letters must be archived at stop.
    embedded: Option<Services>,
}

/// How long a run may go without moving before an in-process pipeline announces it again.
/// With in-memory queues a run's messages live only in the process that started it, so a
/// run left unfinished by an earlier process (Ctrl-C, a crash) would otherwise block its
/// tenant; a process working on it moves it far more often than this.
pub const EMBEDDED_STALL_AFTER: Duration = Duration::from_secs(10);

impl Pipeline {
    /// Starts the parser, differ and writer, the fetcher's inbox poller when `fetcher`
    /// says how, and the supervisor, on `app`'s services.
    pub fn start(
        app: &App,
        settings: &PipelineSettings,
        fetcher: Option<&FetcherSettings>,
    ) -> Pipeline {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let s = &app.services;
        let sqlite = app.store.is_sqlite();
        let p = ParserConfig::new(&settings.consume, &settings.parser, sqlite);
        let d = DifferConfig::new(&settings.consume, &settings.brake, sqlite);
        let w = WriterConfig::new(&settings.consume, sqlite);
        let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
        let (t1, t2, t3) = (shutdown.clone(), shutdown.clone(), shutdown.clone());
        tasks.spawn(async move { ("parser", roster_parser::run(p, s1, t1).await) });
        tasks.spawn(async move { ("differ", roster_differ::run(d, s2, t2).await) });
        tasks.spawn(async move { ("writer", roster_writer::run(w, s3, t3).await) });
        if let Some(f) = fetcher {
            let (f, s4, t4) = (
                FetcherConfig::new(&app.store, f),
                s.clone(),
                shutdown.clone(),
            );
            tasks.spawn(async move { ("fetcher", roster_fetcher::run(f, s4, t4).await) });
        }
        let mut supervision = settings.supervisor.clone();
        if app.is_embedded() {
            // In-memory messages die with their process: recover its runs sooner.
            let stall = EMBEDDED_STALL_AFTER.as_secs();
            supervision.stall_after_secs = supervision.stall_after_secs.min(stall);
            supervision.lease_secs = supervision.lease_secs.min(stall);
        }
        let (s5, t5) = (s.clone(), shutdown.clone());
        tasks.spawn(async move {
            roster_shared::supervisor::run(s5, supervision, t5).await;
            ("supervisor", Ok(()))
        });
        Pipeline {
            shutdown,
            tasks,
            embedded: app.is_embedded().then(|| s.clone()),
        }
    }

    /// A token that stops the stages when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until a stage ends on its own (an error) or `stop` is requested.
    pub async fn join_next(&mut self) -> Option<anyhow::Result<&'static str>> {
        let joined = self.tasks.join_next().await?;
        Some(match joined {
            Ok((name, Ok(()))) => Ok(name),
            Ok((name, Err(e))) => Err(anyhow::Error::new(e).context(format!("{name} stopped"))),
            Err(e) => Err(anyhow::Error::new(e).context("a stage panicked")),
        })
    }

    /// Waits for run `id` of `tenant` to end (or be held), watching that the stages stay up.
    pub async fn wait_for(
        &mut self,
        app: &App,
        tenant: &TenantId,
        id: RunId,
    ) -> anyhow::Result<run::Model> {
        tokio::select! {
            run = wait_for_run(app, tenant, id) => run,
            Some(ended) = self.join_next() => match ended {
                Ok(name) => bail!("the {name} stage stopped unexpectedly"),
                Err(e) => Err(e),
            },
        }
    }

    /// Stops the stages and waits for them to finish what they hold. In-memory dead
    /// letters are archived (for `roster dlq`) before they vanish with the process.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        while let Some(ended) = self.join_next().await {
            ended?;
        }
        if let Some(services) = &self.embedded {
            roster_shared::db::dead_letters::drain(&services.db, services.transport.as_ref())
                .await?;
        }
        Ok(())
    }
}

/// Polls run `id` until it is final or held. A database that goes away meanwhile is
/// waited for (the stages retry through the outage; so does this).
pub async fn wait_for_run(app: &App, tenant: &TenantId, id: RunId) -> anyhow::Result<run::Model> {
    let mut delay = Duration::from_millis(5);
    let mut outage: Option<std::time::Instant> = None;
    loop {
        match runs::get(&app.services.db, tenant, id).await {
            Ok(Some(run)) => {
                outage = None;
                if run.state.is_settled() {
                    return Ok(run);
                }
            }
            Ok(None) => anyhow::bail!("run {id} vanished"),
            Err(e) => {
                let since = *outage.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > OUTAGE_PATIENCE {
                    return Err(anyhow::Error::new(e).context(format!("waiting for run {id}")));
                }
                tracing::warn!(error = %e, "database unavailable while waiting for the run; retrying");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// How long a waiting command tolerates an unreachable database.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(300);

//! Running stages inside this process, and waiting for a run to finish wherever its
//! stages run.

use std::time::Duration;

use anyhow::bail;
use roster_shared::db::entity::run;
use roster_shared::db::{RunState, runs};
use roster_shared::error::StageError;
use roster_shared::ids::{RunId, TenantId};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::App;

/// Stages running in this process until [`Pipeline::stop`].
pub struct Pipeline {
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), StageError>)>,
    /// Set when the queues are in memory: their dead letters must be archived at stop.
    embedded: Option<roster_shared::stage::Services>,
}

/// How long a run may go without moving before an in-process pipeline announces it again.
/// With in-memory queues a run's messages live only in the process that started it, so a
/// run left unfinished by an earlier process (Ctrl-C, a crash) would otherwise block its
/// tenant; a process working on it moves it far more often than this.
pub const EMBEDDED_STALL_AFTER: Duration = Duration::from_secs(10);

impl Pipeline {
    /// Starts the parser, differ and writer (and the fetcher's inbox poller when `fetcher`)
    /// on `app`'s services.
    pub fn start(app: &App, fetcher: bool) -> Pipeline {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let s = &app.services;
        let (p, d, w) = (app.parser(), app.differ(), app.writer());
        let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
        let (t1, t2, t3) = (shutdown.clone(), shutdown.clone(), shutdown.clone());
        tasks.spawn(async move { ("parser", roster_parser::run(p, s1, t1).await) });
        tasks.spawn(async move { ("differ", roster_differ::run(d, s2, t2).await) });
        tasks.spawn(async move { ("writer", roster_writer::run(w, s3, t3).await) });
        if fetcher {
            let (f, s4, t4) = (app.fetcher(), s.clone(), shutdown.clone());
            tasks.spawn(async move { ("fetcher", roster_fetcher::run(f, s4, t4).await) });
        } else if app.is_embedded() {
            // No fetcher loop to recover runs stranded by an earlier process: do it here.
            let (s5, t5) = (s.clone(), shutdown.clone());
            tasks.spawn(async move {
                loop {
                    if let Err(e) = roster_fetcher::recover_stalled(&s5, EMBEDDED_STALL_AFTER).await
                    {
                        tracing::warn!(error = %e, "re-announcing stalled runs failed");
                    }
                    tokio::select! {
                        _ = t5.cancelled() => return ("recovery", Ok(())),
                        _ = tokio::time::sleep(EMBEDDED_STALL_AFTER / 2) => {}
                    }
                }
            });
        }
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
                let state = runs::state_of(&run);
                if state.is_final() || state == RunState::Held {
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

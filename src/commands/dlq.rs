//! `roster dlq`: the messages stages gave up on. Every subcommand first drains the
//! dead-letter queues into the archive table, then works on the archive, so it shows the
//! same thing whichever process parked the message.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use roster_shared::config::{BrokerSettings, StoreSettings, one_of};
use roster_shared::db::dead_letters::{self, DeadLetterStatus};
use roster_shared::db::entity::dead_letter;
use roster_shared::db::runs;
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::run::RunState;
use roster_shared::transport::{Queue, Stage};
use serde_json::json;

use crate::App;
use crate::pipeline::{Pipeline, PipelineSettings, wait_for_run};

/// `roster dlq ...`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The broker whose dead-letter queues are drained first (none: in memory).
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// What to do.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// The `roster dlq` subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum DlqCommand {
    /// Lists dead letters: id, stage, tenant, file, reason, attempts, first and last failure.
    List {
        /// Only this stage's.
        #[arg(long, value_parser = one_of::<Stage>())]
        stage: Option<Stage>,
        /// Only this tenant's.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: Option<TenantId>,
        /// Also those already replayed or dropped.
        #[arg(long)]
        all: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Shows one dead letter: headers, reason, the raw file it refers to, the message.
    Show {
        /// Its id (or the first 8 or more characters of it).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Puts dead letters back at the start of the stage that failed them, and waits for
    /// their runs. The raw file is still in the blob store: nothing is asked of the customer.
    /// Exits 0 when every run's changes are in effect (applied, now or before), 1 when one
    /// applied nothing (superseded by a later full delivery, or failed again).
    Replay {
        /// The id (or a prefix of 8+ characters); or use --all.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every waiting dead letter (narrowed by --stage and --tenant).
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// With --all: only this stage's.
        #[arg(long, value_parser = one_of::<Stage>())]
        stage: Option<Stage>,
        /// With --all: only this tenant's.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: Option<TenantId>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        /// How the stages run in this process (embedded).
        #[command(flatten)]
        pipeline: PipelineSettings,
    },
    /// Gives a dead letter up for good (its run stays failed).
    Drop {
        /// Its id (or a prefix of 8+ characters).
        id: String,
    },
}

fn row_json(r: &dead_letter::Model) -> serde_json::Value {
    json!({
        "id": r.id,
        "stage": r.stage,
        "queue": r.queue,
        "tenant": r.tenant_id,
        "run_id": r.run_id,
        "file_name": r.file_name,
        "reason": r.reason,
        "attempts": r.attempts,
        "first_failure": r.first_failed_at,
        "last_failure": r.last_failed_at,
        "status": r.status,
        "replays": r.replays,
    })
}

async fn find(app: &App, id: &str) -> anyhow::Result<dead_letter::Model> {
    match dead_letters::find(&app.services.db, id).await? {
        Ok(row) => Ok(row),
        Err(why) => bail!(why),
    }
}

/// Runs `roster dlq ...`.
pub async fn run(store: StoreSettings, args: DlqArgs) -> anyhow::Result<ExitCode> {
    let command = args.command;
    let app = App::open_quiet(store, args.broker).await?;
    dead_letters::drain(&app.services.db, app.services.transport.as_ref())
        .await
        .context("draining the dead-letter queues")?;
    let db = &app.services.db;
    let mut out = BufWriter::new(std::io::stdout().lock());
    match command {
        DlqCommand::List {
            stage,
            tenant,
            all,
            json,
        } => {
            let filter = dead_letters::Filter { stage, tenant, all };
            let rows = dead_letters::list(db, &filter).await?;
            if json {
                let all: Vec<_> = rows.iter().map(row_json).collect();
                serde_json::to_writer_pretty(&mut out, &all)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<7}  {:<20}  {:<24}  {:>8}  {:<20}  {:<20}  reason",
                    "id", "stage", "tenant", "file", "attempts", "first failure", "last failure"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:<36}  {:<7}  {:<20}  {:<24}  {:>8}  {:<20}  {:<20}  {}",
                        r.id,
                        r.stage,
                        r.tenant_id,
                        r.file_name.as_deref().unwrap_or("-"),
                        r.attempts,
                        r.first_failed_at.format("%Y-%m-%d %H:%M:%S"),
                        r.last_failed_at.format("%Y-%m-%d %H:%M:%S"),
                        r.reason
                    )?;
                }
            }
        }
        DlqCommand::Show { id, json } => {
            let r = find(&app, &id).await?;
            let run = match (
                TenantId::new(r.tenant_id.clone()),
                r.run_id.as_deref().map(str::parse::<RunId>),
            ) {
                (Ok(t), Some(Ok(run))) => runs::get(db, &t, run).await?,
                _ => None,
            };
            let raw = run.as_ref().map(|run| {
                json!({
                    "blob_key": run.blob_key,
                    "file_name": run.file_name,
                    "size": run.size,
                    "sha256": run.sha256,
                    "run_state": run.state,
                })
            });
            let headers: serde_json::Value = serde_json::from_str(&r.headers)?;
            let message: serde_json::Value = serde_json::from_str(&r.payload)
                .unwrap_or(serde_json::Value::String(r.payload.clone()));
            let mut v = row_json(&r);
            v["headers"] = headers;
            v["raw_file"] = raw.unwrap_or(serde_json::Value::Null);
            v["message"] = message;
            if json {
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            } else {
                for key in [
                    "id",
                    "stage",
                    "queue",
                    "tenant",
                    "run_id",
                    "file_name",
                    "reason",
                    "attempts",
                    "first_failure",
                    "last_failure",
                    "status",
                    "replays",
                ] {
                    writeln!(out, "{key:<14} {}", display(&v[key]))?;
                }
                writeln!(
                    out,
                    "raw file       {}",
                    serde_json::to_string(&v["raw_file"])?
                )?;
                writeln!(out, "headers:")?;
                if let Some(h) = v["headers"].as_object() {
                    for (k, val) in h {
                        writeln!(out, "  {k}: {}", display(val))?;
                    }
                }
                writeln!(
                    out,
                    "message:\n{}",
                    serde_json::to_string_pretty(&v["message"])?
                )?;
            }
        }
        DlqCommand::Drop { id } => {
            let r = find(&app, &id).await?;
            dead_letters::set_status(db, &r.id, DeadLetterStatus::Dropped).await?;
            writeln!(out, "dropped {}", r.id)?;
        }
        DlqCommand::Replay {
            id,
            all,
            stage,
            tenant,
            json,
            pipeline,
        } => {
            let rows = match id {
                Some(id) => vec![find(&app, &id).await?],
                None => {
                    let filter = dead_letters::Filter {
                        stage,
                        tenant,
                        all: false,
                    };
                    debug_assert!(all);
                    dead_letters::list(db, &filter).await?
                }
            };
            drop(out);
            return replay(&app, &pipeline, rows, json).await;
        }
    }
    out.flush()?;
    Ok(super::ok())
}

fn display(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// What replaying a dead letter from `queue` puts back: its own message for the parser
/// and the differ; for the writer, a fresh plan of the run (`snapshot.parsed`), since one
/// old batch alone could be stale by now, and the rest of its generation is gone.
fn replay_target(queue: Queue) -> (Queue, RunState) {
    match queue {
        Queue::Fetched => (Queue::Fetched, RunState::Fetched),
        Queue::Parsed | Queue::Changes => (Queue::Parsed, RunState::Parsed),
    }
}

async fn replay(
    app: &App,
    settings: &PipelineSettings,
    rows: Vec<dead_letter::Model>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let db = &app.services.db;
    let mut pipeline = app
        .is_embedded()
        .then(|| Pipeline::start(app, settings, None));
    let mut waiting = Vec::new();
    for r in &rows {
        let queue = r.queue;
        let run = match (
            TenantId::new(r.tenant_id.clone()),
            r.run_id.as_deref().map(str::parse::<RunId>),
        ) {
            (Ok(t), Some(Ok(run))) => Some((t, run)),
            _ => None,
        };
        let (target, reopened) = replay_target(queue);
        if let Some((tenant, run_id)) = &run {
            // Its run already went through (an earlier replay, or a later delivery): there is
            // nothing left to apply, and nothing is published.
            let current = runs::get(db, tenant, *run_id).await?;
            if current
                .as_ref()
                .is_some_and(|m| matches!(m.state, RunState::Applied | RunState::Superseded))
            {
                waiting.push((r.id.clone(), run.clone()));
                continue;
            }
            runs::reopen(db, tenant, *run_id, reopened).await?;
        }
        // Marked replayed before it goes out: if it dies again at once, its new dead
        // letter (archived as waiting) must not be overwritten as replayed.
        dead_letters::set_status(db, &r.id, DeadLetterStatus::Replayed).await?;
        let published = match (queue, &run) {
            (Queue::Changes, Some((tenant, run_id))) => {
                let model = runs::get(db, tenant, *run_id)
                    .await?
                    .with_context(|| format!("run {run_id} of dead letter {} is gone", r.id))?;
                debug_assert_eq!(target, Queue::Parsed);
                let id = MessageId::derived(&["replay", &r.id, &r.replays.to_string()]);
                app.services
                    .send_to_differ(tenant, *run_id, &model, id)
                    .await
            }
            _ => {
                app.services
                    .transport
                    .publish(target, vec![dead_letters::replay_message(r)])
                    .await
            }
        };
        if let Err(e) = published {
            dead_letters::set_status(db, &r.id, DeadLetterStatus::Dead).await?;
            return Err(anyhow::Error::new(e).context(format!("replaying {}", r.id)));
        }
        waiting.push((r.id.clone(), run));
    }
    let mut results = Vec::new();
    let mut ok = true;
    for (id, run) in waiting {
        let state = match &run {
            Some((tenant, run)) => {
                let done = match pipeline.as_mut() {
                    Some(p) => p.wait_for(app, tenant, *run).await?,
                    None => wait_for_run(app, tenant, *run).await?,
                };
                // Applied (now or by an earlier replay) is success; superseded means the
                // replay applied nothing, which the operator must hear.
                ok &= done.state == RunState::Applied;
                Some((done.id.clone(), done.state, done.reason.clone()))
            }
            None => None,
        };
        results.push((id, state));
    }
    if let Some(p) = pipeline {
        // Anything that died again during the replay is archived for the next look.
        p.stop().await?;
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    if json {
        let all: Vec<_> = results
            .iter()
            .map(|(id, s)| match s {
                Some((run, state, reason)) => {
                    json!({"id": id, "run_id": run, "state": state, "reason": reason})
                }
                None => json!({"id": id, "run_id": null, "state": null, "reason": null}),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &all)?;
        writeln!(out)?;
    } else {
        for (id, s) in &results {
            match s {
                Some((run, state, reason)) => {
                    writeln!(out, "replayed {id}: run {run} {state}")?;
                    if let Some(reason) = reason {
                        writeln!(out, "  {reason}")?;
                    }
                }
                None => writeln!(out, "replayed {id}")?,
            }
        }
    }
    out.flush()?;
    Ok(if ok { super::ok() } else { ExitCode::FAILURE })
}

//! `roster runs`: a tenant's sync runs, newest first, whichever process did the work.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use roster_shared::blob::BlobStore;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::entity::run;
use roster_shared::db::runs;
use roster_shared::model::ids::{RunId, TenantId};
use serde_json::json;

use crate::app::read_db;
use crate::pipeline::PipelineSettings;
use crate::summary::Summary;

/// Arguments of `roster runs`: a tenant's runs, or one run (`roster runs show RUN`).
#[derive(Debug, Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// One run instead of a list.
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg, required = true)]
    pub tenant: Option<TenantId>,
    /// How many runs to show.
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `roster runs` subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RunsCommand {
    /// One run: its summary with its row errors and notes, (`--changes`) what a held or
    /// dry run would do, or (`--rejects`) its reject
    /// file: the rejected rows in the file's own columns, with `line` and `error`, in the
    /// file's delimiter and encoding, ready to fix and send again.
    Show(ShowArgs),
    /// Applies a held run as it was diffed (planned afresh, and held again if a brake
    /// trips, when the directory changed since it was held) and waits for it. Exit codes
    /// as `roster import`'s. `roster approve --tenant T RUN` is the same.
    Approve(RunApproveArgs),
    /// Drops a held run: it becomes `rejected` and nothing of it is applied. Exit codes: 0
    /// rejected, 1 no such run or not held.
    Reject(RejectArgs),
}

/// Arguments of `roster runs approve`.
#[derive(Debug, Args)]
pub struct RunApproveArgs {
    /// The broker (none: the stages run in this process).
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// How the stages run in this process (embedded).
    #[command(flatten)]
    pub pipeline: PipelineSettings,
    /// The held run.
    pub run: RunId,
    /// The run's tenant, checked when given (a run id alone names one run).
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: Option<TenantId>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `roster runs reject`.
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The held run.
    pub run: RunId,
    /// The run's tenant, checked when given (a run id alone names one run).
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: Option<TenantId>,
    /// Why, recorded with the run (default: "rejected by an operator").
    #[arg(long)]
    pub reason: Option<String>,
}

/// Arguments of `roster runs show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run's id.
    pub run: RunId,
    /// The run's tenant, checked when given (a run id alone names one run).
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: Option<TenantId>,
    /// Write the reject file instead of the summary (JSON lines of row errors for a
    /// JSON file).
    #[arg(long)]
    pub rejects: bool,
    /// Where to write the reject file (default: standard output).
    #[arg(long, short, requires = "rejects")]
    pub output: Option<PathBuf>,
    /// List what a held run (or a dry run) would do, person by person and field by
    /// field, with totals per kind and the brakes that held it.
    #[arg(long, conflicts_with = "rejects")]
    pub changes: bool,
    /// Print the summary (or with --changes the change list) as JSON.
    #[arg(long, conflicts_with = "rejects")]
    pub json: bool,
}

/// The run `id`, of `tenant` when given.
async fn find_run(
    db: &roster_shared::db::Db,
    id: RunId,
    tenant: Option<&TenantId>,
) -> anyhow::Result<run::Model> {
    runs::find(db, id)
        .await?
        .filter(|r| tenant.is_none_or(|t| r.tenant_id == t.as_str()))
        .ok_or_else(|| anyhow::anyhow!("run {id} not found"))
}

/// Runs `roster runs show RUN --changes`.
async fn show_changes(
    store: &StoreSettings,
    run: &run::Model,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let blobs = BlobStore::local(store.blob_dir())?;
    let list = roster_shared::review::change_list(&blobs, run).await?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer(&mut out, &list)?;
        writeln!(out)?;
    } else {
        list.write_text(&mut out)?;
        if let Some(reason) = &run.reason {
            writeln!(out, "reason: {reason}")?;
        }
    }
    out.flush()?;
    Ok(super::ok())
}

/// Runs `roster runs reject`.
async fn reject(store: StoreSettings, args: RejectArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let run = find_run(&db, args.run, args.tenant.as_ref()).await?;
    let tenant = TenantId::new(run.tenant_id.clone())?;
    let why = args
        .reason
        .unwrap_or_else(|| "rejected by an operator".to_owned());
    if !runs::reject(&db, &tenant, args.run, &why).await? {
        anyhow::bail!("run {} is {}, not held", args.run, run.state);
    }
    // Its snapshot is of no more use (its change list stays for the record).
    let blobs = BlobStore::local(store.blob_dir())?;
    for key in BlobStore::planning_keys(&tenant, args.run) {
        let _ = blobs.delete(&key).await;
    }
    println!("run {}: rejected ({why})", args.run);
    Ok(super::ok())
}

/// Runs `roster runs show`. Exit codes: 0 shown, 1 no such run (or no reject file kept).
async fn show(store: StoreSettings, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let run = find_run(&db, args.run, args.tenant.as_ref()).await?;
    if args.changes {
        return show_changes(&store, &run, args.json).await;
    }
    if !args.rejects {
        let tenant = TenantId::new(run.tenant_id.clone())?;
        let errors = runs::errors(&db, &tenant, args.run, 1000).await?;
        super::import::print(&Summary::of_run(&run, errors), args.json)?;
        return Ok(super::ok());
    }
    let key = run.rejects_key.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "run {} has no reject file (it was not parsed: {})",
            run.id,
            run.state
        )
    })?;
    let blobs = BlobStore::local(store.blob_dir())?;
    let bytes = blobs
        .get_bytes(key)
        .await
        .with_context(|| format!("reading the reject file of run {}", run.id))?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(super::ok())
}

/// A run as one JSON object.
pub fn run_json(r: &run::Model) -> serde_json::Value {
    json!({
        "run_id": r.id,
        "tenant": r.tenant_id,
        "seq": r.seq,
        "state": r.state,
        "reason": r.reason,
        "held_by": roster_shared::review::held_by(r),
        "source": r.source,
        "file": r.file_name,
        "mode": r.mode,
        "format": r.format,
        "size": r.size,
        "sha256": r.sha256,
        "rows_read": r.rows_read,
        "accepted": r.accepted,
        "rejected": r.rejected,
        "skipped": r.skipped,
        "created": r.created,
        "updated": r.updated,
        "deactivated": r.deactivated,
        "reactivated": r.reactivated,
        "unchanged": r.unchanged,
        "conflicts": r.conflicts,
        "generation": r.generation,
        "batches": r.batches_total,
        "fetched_at": r.fetched_at,
        "parsed_at": r.parsed_at,
        "diffed_at": r.diffed_at,
        "finished_at": r.finished_at,
        "parse_ms": r.parse_ms,
        "diff_ms": r.diff_ms,
        "apply_ms": r.finished_at.zip(r.diffed_at).map(|(f, d)| (f - d).num_milliseconds()),
        "total_ms": r.finished_at.map(|f| (f - r.fetched_at).num_milliseconds()),
    })
}

/// Runs `roster runs`.
pub async fn run(store: StoreSettings, args: RunsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(RunsCommand::Show(show_args)) => return show(store, show_args).await,
        Some(RunsCommand::Reject(reject_args)) => return reject(store, reject_args).await,
        Some(RunsCommand::Approve(a)) => {
            let db = read_db(&store).await?;
            let run = find_run(&db, a.run, a.tenant.as_ref()).await?;
            drop(db);
            let approve = super::admin::ApproveArgs {
                broker: a.broker,
                pipeline: a.pipeline,
                tenant: TenantId::new(run.tenant_id)?,
                json: a.json,
                run: a.run,
            };
            return super::admin::approve(store, approve).await;
        }
        None => {}
    }
    let tenant = args
        .tenant
        .ok_or_else(|| anyhow::anyhow!("--tenant is required"))?;
    let db = read_db(&store).await?;
    let list = runs::list(&db, &tenant, args.limit).await?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if args.json {
        let all: Vec<_> = list.iter().map(run_json).collect();
        serde_json::to_writer_pretty(&mut out, &all)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<36}  {:>4}  {:<10}  {:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>9}  {:>8}  {:>8}  {:<20}  file",
            "run",
            "seq",
            "state",
            "rows",
            "created",
            "updated",
            "deact",
            "react",
            "unchanged",
            "rejected",
            "ms",
            "fetched at"
        )?;
        for r in &list {
            let ms = r.finished_at.map_or_else(
                || "-".into(),
                |f| (f - r.fetched_at).num_milliseconds().to_string(),
            );
            writeln!(
                out,
                "{:<36}  {:>4}  {:<10}  {:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>9}  {:>8}  {:>8}  {:<20}  {}",
                r.id,
                r.seq,
                r.state.name(),
                r.rows_read,
                r.created,
                r.updated,
                r.deactivated,
                r.reactivated,
                r.unchanged,
                r.rejected,
                ms,
                r.fetched_at.format("%Y-%m-%d %H:%M:%S"),
                r.file_name
            )?;
            if let Some(reason) = &r.reason {
                writeln!(out, "    {reason}")?;
            }
        }
    }
    out.flush()?;
    Ok(super::ok())
}

//! `roster runs`: a tenant's sync runs, newest first, whichever process did the work.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::Args;
use roster_shared::config::StoreSettings;
use roster_shared::db::entity::run;
use roster_shared::db::runs;
use roster_shared::model::ids::TenantId;
use serde_json::json;

use crate::app::read_db;

/// Arguments of `roster runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// How many runs to show.
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// A run as one JSON object.
pub fn run_json(r: &run::Model) -> serde_json::Value {
    json!({
        "run_id": r.id,
        "tenant": r.tenant_id,
        "seq": r.seq,
        "state": r.state,
        "reason": r.reason,
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
    let db = read_db(&store).await?;
    let list = runs::list(&db, &args.tenant, args.limit).await?;
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

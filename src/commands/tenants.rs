//! `roster tenants apply|list` and `roster sources list`: the tenants file, and what the
//! database holds of it.
//!
//! `tenants apply -f FILE` checks the whole file first and changes nothing if any part
//! is wrong (exit 2, every problem on stderr, each naming its key path); otherwise it
//! declares it in one transaction (exit 0) and says what changed.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use roster_fetcher::sources::db as sources_db;
use roster_fetcher::sources::tenants as tenants_file;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::tenants;
use roster_shared::model::ids::TenantId;
use roster_shared::stage::NoProgress;
use serde_json::json;

use crate::app::{App, read_db};

/// `roster tenants ...`.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Checks a tenants file (YAML) whole, then declares its tenants, sources and push
    /// logins; sources no longer in it are disabled (their history kept). Exit codes: 0
    /// applied, 2 the file is wrong and nothing changed, 1 anything else.
    Apply(ApplyArgs),
    /// Lists the tenants: sources, push login, the brake thresholds in force (a tenant's
    /// own marked `*`) and its file-time pattern.
    List(ListArgs),
}

/// Arguments of `roster tenants apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The tenants file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Check the file only; change nothing.
    #[arg(long)]
    pub check: bool,
}

/// Arguments of `roster tenants list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
    /// The brakes' defaults (as the differ has them), under each tenant's own thresholds.
    #[command(flatten)]
    pub brake: roster_differ::BrakeSettings,
}

/// `roster sources ...`.
#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Lists a tenant's sources: kind, schedule, last fetch and its outcome, watermark.
    List(SourcesListArgs),
}

/// Arguments of `roster sources list`.
#[derive(Debug, Args)]
pub struct SourcesListArgs {
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Runs `roster tenants ...`.
pub async fn run(store: StoreSettings, command: TenantsCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantsCommand::Apply(args) => apply(store, args).await,
        TenantsCommand::List(args) => list(store, args).await,
    }
}

async fn apply(store: StoreSettings, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let file = match tenants_file::read(&args.file) {
        Ok(file) => file,
        Err(invalid) => {
            eprintln!("roster: {} is not applied:", invalid.file);
            for problem in &invalid.problems {
                eprintln!("  {problem}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    if args.check {
        println!(
            "{}: valid ({} tenants, {} sources)",
            args.file.display(),
            file.tenants.len(),
            file.tenants
                .values()
                .map(|t| t.sources.len())
                .sum::<usize>()
        );
        return Ok(super::ok());
    }
    let app = App::open(store, BrokerSettings::default(), Arc::new(NoProgress), true).await?;
    let summary = tenants_file::apply(&app.services.db, &file).await?;
    println!(
        "applied {}: {} tenants; {} sources added or changed, {} disabled; {} push logins changed",
        args.file.display(),
        summary.tenants,
        summary.sources_upserted,
        summary.sources_disabled,
        summary.push_changed
    );
    Ok(super::ok())
}

async fn list(store: StoreSettings, args: ListArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let push: Vec<String> = sources_db::push_users(&db)
        .await?
        .into_iter()
        .map(|p| p.tenant_id)
        .collect();
    let mut rows = Vec::new();
    for tenant in tenants::list(&db).await? {
        let sources = sources_db::list(&db, &tenant).await?;
        let enabled = sources.iter().filter(|s| s.enabled).count();
        let failing = sources.iter().filter(|s| s.enabled && s.failing).count();
        let safety = tenants::safety(db.conn(), &tenant).await?;
        let brakes = args.brake.brake().with(&safety.brakes);
        let own = serde_json::to_value(safety.brakes)?;
        rows.push(json!({
            "tenant": tenant.as_str(),
            "sources": enabled,
            "disabled_sources": sources.len() - enabled,
            "failing_sources": failing,
            "push": push.iter().any(|p| p == tenant.as_str()),
            "brakes": brakes,
            "own_brakes": own.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            "file_time": safety.file_time,
        }));
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<32}  {:>7}  {:>8}  {:>7}  {:<4}  brakes (* the tenant's own)",
            "tenant", "sources", "disabled", "failing", "push"
        )?;
        for r in &rows {
            writeln!(
                out,
                "{:<32}  {:>7}  {:>8}  {:>7}  {:<4}  {}",
                r["tenant"].as_str().unwrap_or_default(),
                r["sources"],
                r["disabled_sources"],
                r["failing_sources"],
                if r["push"] == true { "yes" } else { "no" },
                brakes_text(r)
            )?;
        }
    }
    out.flush()?;
    Ok(super::ok())
}

/// A tenant row's brakes in one line: `name=value`, a tenant's own marked `*`, then the
/// file-time pattern if any.
fn brakes_text(row: &serde_json::Value) -> String {
    let own: Vec<&str> = row["own_brakes"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut parts: Vec<String> = row["brakes"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let mark = if own.contains(&k.as_str()) { "*" } else { "" };
                    format!("{k}={v}{mark}")
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(ft) = row["file_time"].as_object() {
        parts.push(format!(
            "file_time={}|{}",
            ft["regex"].as_str().unwrap_or_default(),
            ft["format"].as_str().unwrap_or_default()
        ));
    }
    parts.join(" ")
}

/// Runs `roster sources ...`.
pub async fn sources(store: StoreSettings, command: SourcesCommand) -> anyhow::Result<ExitCode> {
    let SourcesCommand::List(args) = command;
    let db = read_db(&store).await?;
    let rows = sources_db::list(&db, &args.tenant).await?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if args.json {
        let all: Vec<_> = rows
            .iter()
            .map(|s| {
                json!({
                    "tenant": s.tenant_id,
                    "name": s.name,
                    "kind": s.kind,
                    "enabled": s.enabled,
                    "schedule": s.schedule,
                    "last_fetch": s.last_attempt_at,
                    "last_success": s.last_success_at,
                    "last_outcome": s.last_outcome,
                    "last_error": s.last_error,
                    "last_runs": s.last_runs,
                    "failures": s.failures,
                    "failing": s.failing,
                    "next_attempt": s.next_attempt_at,
                    "watermark": s.watermark,
                    "last_full_fetch": s.full_at,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &all)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<20}  {:<5}  {:<8}  {:<14}  {:<20}  {:<11}  {:<20}  error",
            "name", "kind", "enabled", "schedule", "last fetch", "outcome", "watermark"
        )?;
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or_else(
                || "-".to_owned(),
                |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            )
        };
        for s in &rows {
            let outcome = match (s.last_outcome, s.failing) {
                (Some(o), true) => format!("{o} ({} in a row, failing)", s.failures),
                (Some(o), false) if s.failures > 0 => format!("{o} ({} in a row)", s.failures),
                (Some(o), false) => o.to_string(),
                (None, _) => "-".to_owned(),
            };
            writeln!(
                out,
                "{:<20}  {:<5}  {:<8}  {:<14}  {:<20}  {:<11}  {:<20}  {}",
                s.name,
                s.kind,
                if s.enabled { "yes" } else { "no" },
                s.schedule.as_deref().unwrap_or("on demand"),
                time(s.last_attempt_at),
                outcome,
                time(s.watermark),
                s.last_error.as_deref().unwrap_or("")
            )?;
        }
    }
    out.flush()?;
    Ok(super::ok())
}

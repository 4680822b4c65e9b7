//! `roster fetch`: fetches one source now, waits for the runs it started and prints each
//! run's summary as `import` does (one JSON object per line with `--json`).
//!
//! Embedded (no broker configured) the stages run in this process; with
//! `ROSTER_AMQP_URL` set the runs are handed to the running stage processes and this
//! command waits for them. `--dry-run` fetches into temporary files, parses and plans
//! them here, and writes nothing: no run, no taken file, no watermark, nothing changed on
//! the server. Exit codes as `import`: 0 every run applied (or nothing new), 2 a file was
//! rejected as a whole, 1 anything else (the fetch failed, a run failed).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use roster_fetcher::FetcherSettings;
use roster_fetcher::sources::schedule::{self, Leased};
use roster_fetcher::sources::{self, FetchOptions};
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::runs;
use roster_shared::model::ids::TenantId;

use super::import::{DryRun, dry_run_file, print};
use crate::app::App;
use crate::pipeline::{Pipeline, PipelineSettings, wait_for_run};
use crate::progress::Bar;
use crate::summary::Summary;

/// Arguments of `roster fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The broker (none: the stages run in this process).
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// How the stages run in this process (embedded), and the brake a dry run applies.
    #[command(flatten)]
    pub pipeline: PipelineSettings,
    /// File limits and how failures are counted.
    #[command(flatten)]
    pub fetcher: FetcherSettings,
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// The source, as named in the tenants file.
    #[arg(long)]
    pub source: String,
    /// Fetch and show what would change; write nothing (here or on the server).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: list what would change, person by person and field by field, as
    /// `roster import --dry-run --changes` does.
    #[arg(long, requires = "dry_run")]
    pub changes: bool,
    /// Print each run's summary as one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `roster fetch`.
pub async fn run(store: StoreSettings, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let options = FetchOptions {
        dry_run: args.dry_run,
        limits: args.fetcher.limits,
        max_rows: args.pipeline.parser.limits.max_rows,
        failing_after: args.fetcher.failing_after,
    };
    let what = format!("{}/{}", args.tenant, args.source);
    let summaries = if args.dry_run {
        dry_run(store, &args, &options).await?
    } else {
        fetch(store, &args, &options).await?
    };
    let Some(summaries) = summaries else {
        return Ok(ExitCode::FAILURE);
    };
    if summaries.is_empty() {
        eprintln!("roster: {what}: nothing new");
    }
    let mut code = 0;
    for summary in &summaries {
        print(summary, args.json)?;
        code = match (code, summary.exit_code()) {
            (1, _) | (_, 1) => 1,
            (a, b) => a.max(b),
        };
        if summary.exit_code() == 2 {
            eprintln!(
                "roster: {}",
                summary.reason.as_deref().unwrap_or("the file was refused")
            );
        }
    }
    Ok(ExitCode::from(code))
}

/// Fetches for real; `None` if the fetch failed (said on stderr).
async fn fetch(
    store: StoreSettings,
    args: &FetchArgs,
    options: &FetchOptions,
) -> anyhow::Result<Option<Vec<Summary>>> {
    let bar = Arc::new(Bar::new());
    let embedded = args.broker.amqp_url.is_none();
    let app = App::open(store, args.broker.clone(), bar.clone(), embedded).await?;
    let mut pipeline = app
        .is_embedded()
        .then(|| Pipeline::start(&app, &args.pipeline, None));
    let retry = std::time::Duration::from_secs(args.fetcher.retry_secs);
    // The same lease the scheduler takes: never two fetches of one source at once.
    let lease = schedule::lease_name(args.tenant.as_str(), &args.source);
    let holder = roster_shared::db::lease::process_name();
    let work = sources::fetch(&app.services, &args.tenant, &args.source, options, retry);
    let fetched = match schedule::under_lease(&app.services.db, &lease, &holder, work).await? {
        Leased::Done(result) => result.map_err(|e| e.to_string()),
        Leased::Busy => Err(format!(
            "{}/{}: being fetched by another process now; try again when it is done",
            args.tenant, args.source
        )),
        Leased::Lost => Err(format!(
            "{}/{}: the fetch was taken over by another process",
            args.tenant, args.source
        )),
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            if let Some(p) = pipeline {
                p.stop().await?;
            }
            bar.finish();
            eprintln!("roster: {e}");
            return Ok(None);
        }
    };
    let mut summaries = Vec::new();
    for run_id in fetched.runs {
        let run = match pipeline.as_mut() {
            Some(p) => p.wait_for(&app, &args.tenant, run_id).await?,
            None => wait_for_run(&app, &args.tenant, run_id).await?,
        };
        let errors = runs::errors(&app.services.db, &args.tenant, run_id, 1000).await?;
        summaries.push(Summary::of_run(&run, errors));
    }
    if let Some(p) = pipeline {
        p.stop().await?;
    }
    bar.finish();
    Ok(Some(summaries))
}

/// Fetches into temporary files and plans them; writes nothing.
async fn dry_run(
    store: StoreSettings,
    args: &FetchArgs,
    options: &FetchOptions,
) -> anyhow::Result<Option<Vec<Summary>>> {
    let app = App::open_quiet(store, BrokerSettings::default()).await?;
    let retry = std::time::Duration::from_secs(args.fetcher.retry_secs);
    let fetched =
        match sources::fetch(&app.services, &args.tenant, &args.source, options, retry).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("roster: {e}");
                return Ok(None);
            }
        };
    let mut summaries = Vec::new();
    let mut result = Ok(());
    for file in &fetched.local {
        if result.is_ok() {
            match dry_run_file(
                &app.services.db,
                &DryRun {
                    tenant: &args.tenant,
                    path: &file.path,
                    name: file.name.clone(),
                    format: file.format,
                    mode: file.mode,
                    encoding: file.encoding.clone(),
                    ignore_encoding: file.ignore_encoding,
                    pipeline: &args.pipeline,
                    dump: None,
                    changes: args.changes,
                },
            )
            .await
            {
                Ok(s) => summaries.push(s),
                Err(e) => result = Err(e),
            }
        }
        let _ = tokio::fs::remove_file(&file.path).await;
    }
    result?;
    Ok(Some(summaries))
}

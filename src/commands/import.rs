//! `roster import`: one file through all four stages, then its summary.
//!
//! Embedded (no broker configured) the stages run in this process; with `ROSTER_AMQP_URL`
//! set the file is handed to the running stage processes and this command waits for them.
//! `--dry-run` parses and plans in this process and writes nothing at all.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use roster_fetcher::Submission;
use roster_parser::ParseOptions;
use roster_shared::config::Settings;
use roster_shared::db::{Db, runs, tenants};
use roster_shared::envelope::{Format, SyncMode};
use roster_shared::ids::TenantId;
use roster_shared::stage::Progress;

use crate::app::{App, sqlite_path};
use crate::pipeline::{Pipeline, wait_for_run};
use crate::progress::Bar;
use crate::summary::Summary;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Decide from the content.
    Auto,
    /// Delimited text (comma, semicolon or tab, sniffed).
    Csv,
    /// Tab-separated text.
    Tsv,
    /// `{"employees": [...]}` or a list.
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Json => Format::Json,
        }
    }
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The file is everyone: people missing from it are deactivated.
    Full,
    /// The file holds changes only: people missing from it are left alone.
    Delta,
}

impl From<ModeArg> for SyncMode {
    fn from(m: ModeArg) -> SyncMode {
        match m {
            ModeArg::Full => SyncMode::Full,
            ModeArg::Delta => SyncMode::Delta,
        }
    }
}

/// Arguments of `roster import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tenant whose directory the file describes.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// Input format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Full snapshot or delta.
    #[arg(long, value_enum, default_value = "full")]
    pub mode: ModeArg,
    /// Show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: also write the planned changes to this file, as JSON lines.
    #[arg(long, requires = "dry_run")]
    pub dump: Option<PathBuf>,
    /// Encoding of a file without a byte-order mark, if not UTF-8 (e.g. windows-1252).
    #[arg(long)]
    pub encoding: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The file.
    pub file: PathBuf,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Runs `roster import`.
pub async fn run(settings: Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(&args.file)
        .with_context(|| format!("{}: cannot read the file", args.file.display()))?;
    anyhow::ensure!(meta.is_file(), "{}: not a file", args.file.display());
    let summary = if args.dry_run {
        dry_run(settings, &args).await?
    } else {
        import(settings, &args).await?
    };
    print(&summary, args.json)?;
    Ok(ExitCode::from(summary.exit_code()))
}

/// Prints a summary on stdout.
pub fn print(summary: &Summary, json: bool) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer(&mut out, summary)?;
        writeln!(out)?;
    } else {
        summary.write_text(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

async fn import(settings: Settings, args: &ImportArgs) -> anyhow::Result<Summary> {
    let bar = Arc::new(Bar::new());
    let app = App::open(settings, bar.clone()).await?;
    let mut pipeline = app.is_embedded().then(|| Pipeline::start(&app, false));
    let run_id = roster_fetcher::submit(
        &app.services,
        Submission {
            tenant: args.tenant.clone(),
            source: "cli".into(),
            path: args.file.clone(),
            file_name: file_name(&args.file),
            format: args.format.into(),
            mode: args.mode.into(),
            encoding: args.encoding.clone(),
            seen: None,
        },
    )
    .await?;
    let run = match pipeline.as_mut() {
        Some(p) => p.wait_for(&app, &args.tenant, run_id).await?,
        None => wait_for_run(&app, &args.tenant, run_id).await?,
    };
    if let Some(p) = pipeline {
        p.stop().await?;
    }
    bar.finish();
    let errors = runs::errors(&app.services.db, &args.tenant, run_id, 1000).await?;
    Ok(Summary::of_run(&run, errors))
}

/// The database a dry run reads: the configured one if it exists, else an empty one in
/// memory (a dry run must not create a database file).
async fn dry_run_db(settings: &Settings) -> anyhow::Result<Db> {
    roster_shared::install_crypto_provider();
    let missing = sqlite_path(&settings.database_url).is_some_and(|p| !p.exists());
    let db = if missing {
        Db::connect("sqlite::memory:").await?
    } else {
        Db::connect(&settings.database_url).await?
    };
    if missing {
        db.migrate().await?;
    } else if db.needs_migration().await? {
        anyhow::bail!("the database needs migrating: run `roster migrate` first");
    }
    Ok(db)
}

async fn dry_run(settings: Settings, args: &ImportArgs) -> anyhow::Result<Summary> {
    let db = dry_run_db(&settings).await?;
    let name = file_name(&args.file);
    let mode: SyncMode = args.mode.into();
    let options = ParseOptions {
        file_name: name.clone(),
        format: args.format.into(),
        encoding: args.encoding.clone(),
        mappings: tenants::mappings(&db, &args.tenant).await?,
    };
    let bar = Arc::new(Bar::new());
    let path = args.file.clone();
    let progress: Arc<dyn Progress> = bar.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        anyhow::Ok(roster_parser::parse(
            Box::new(file),
            &options,
            progress.as_ref(),
        ))
    })
    .await??;
    let parsed = match parsed {
        Ok(p) => p,
        Err(rejection) => {
            bar.finish();
            return Ok(Summary::refused(
                &args.tenant,
                &name,
                mode.name(),
                rejection.0,
            ));
        }
    };
    let snapshot = tempfile_path("roster-dry-run");
    let result = async {
        parsed.write_snapshot(BufWriter::new(std::fs::File::create(&snapshot)?))?;
        let mut dump = match &args.dump {
            Some(path) => Some(BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            )),
            None => None,
        };
        let mut write_error = None;
        let mut sink = |batch: Vec<roster_shared::change::Change>| {
            if let Some(out) = dump.as_mut() {
                for change in batch {
                    let line = serde_json::to_writer(&mut *out, &change)
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"));
                    if let Err(e) = line {
                        write_error.get_or_insert(e);
                    }
                }
            }
        };
        let plan = roster_differ::dry_run(
            &db,
            &args.tenant,
            &snapshot,
            parsed.accepted,
            mode,
            settings.brake(),
            args.dump
                .is_some()
                .then_some(&mut sink as &mut (dyn FnMut(_) + Send)),
        )
        .await?;
        if let Some(e) = write_error {
            return Err(e.into());
        }
        if let Some(mut out) = dump {
            out.flush()?;
        }
        anyhow::Ok(plan)
    }
    .await;
    let _ = std::fs::remove_file(&snapshot);
    bar.finish();
    let plan = result?;
    if let Some(why) = plan.refused {
        return Ok(Summary::refused(&args.tenant, &name, mode.name(), why));
    }
    Ok(Summary::dry_run(
        &args.tenant,
        &name,
        mode.name(),
        parsed.rows_read,
        parsed.rejected,
        plan.summary.counts,
        plan.summary.unchanged,
        parsed.errors.into_iter().take(1000).collect(),
        plan.held.map(|why| format!("would be held: {why}")),
    ))
}

fn tempfile_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7()))
}

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
use clap::Args;
use roster_fetcher::{FetchLimits, Submission};
use roster_parser::ParseOptions;
use roster_shared::config::{BrokerSettings, StoreSettings, one_of};
use roster_shared::db::{Db, runs, tenants};
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::TenantId;
use roster_shared::model::related::RelatedCounts;
use roster_shared::model::review::ChangeList;
use roster_shared::model::run::RunState;
use roster_shared::stage::Progress;

use crate::app::{App, read_db};
use crate::pipeline::{Pipeline, PipelineSettings, wait_for_run};
use crate::progress::Bar;
use crate::summary::Summary;

/// Arguments of `roster import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The broker (none: the stages run in this process).
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// How the stages run in this process (embedded), and the brake a dry run applies.
    #[command(flatten)]
    pub pipeline: PipelineSettings,
    /// What a delivered file may be.
    #[command(flatten)]
    pub fetch: FetchLimits,
    /// The tenant whose directory the file describes.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// Input format: auto decides from the content.
    #[arg(long, value_parser = one_of::<Format>(), default_value = "auto")]
    pub format: Format,
    /// Full snapshot (people missing from it are deactivated) or delta (changes only).
    #[arg(long, value_parser = one_of::<SyncMode>(), default_value = "full")]
    pub mode: SyncMode,
    /// Show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: also write the planned changes to this file, as JSON lines.
    #[arg(long, requires = "dry_run")]
    pub dump: Option<PathBuf>,
    /// With --dry-run: list what would change, person by person and field by field (the
    /// list `roster runs show RUN --changes` shows; with --json its document, the summary
    /// under `summary`).
    #[arg(long, requires = "dry_run")]
    pub changes: bool,
    /// Encoding of a file without a byte-order mark, if not UTF-8 (e.g. windows-1252).
    #[arg(long)]
    pub encoding: Option<String>,
    /// Read a bundle's files without checking that they are UTF-8 with a byte-order mark.
    #[arg(long)]
    pub ignore_encoding: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The file, or a bundle's folder (`users.csv`, `groups.csv`, `groups-mapping.csv`).
    pub file: PathBuf,
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs `roster import`.
pub async fn run(store: StoreSettings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(&args.file)
        .with_context(|| format!("{}: cannot read the file", args.file.display()))?;
    // A folder is a bundle: packed into one archive, which travels as one file.
    let packed = if meta.is_dir() {
        let zip = tempfile_path("roster-bundle");
        let files = roster_parser::bundle::pack_folder(&args.file, &zip)
            .with_context(|| format!("{}: cannot pack the bundle", args.file.display()))?;
        anyhow::ensure!(
            files > 0,
            "{}: a bundle folder holds CSV files (users.csv, groups.csv, groups-mapping.csv); \
             this one has none",
            args.file.display()
        );
        Some(zip)
    } else {
        anyhow::ensure!(meta.is_file(), "{}: not a file", args.file.display());
        None
    };
    let name = file_name(&args.file);
    let args = ImportArgs {
        file: packed.clone().unwrap_or_else(|| args.file.clone()),
        format: if packed.is_some() {
            Format::Bundle
        } else {
            args.format
        },
        ..args
    };
    let summary = if args.dry_run {
        dry_run(store, &args, name).await
    } else {
        import(store, &args, name).await
    };
    if let Some(zip) = packed {
        let _ = std::fs::remove_file(zip);
    }
    let summary = summary?;
    print(&summary, args.json)?;
    if summary.exit_code() == 2 {
        // Refused as a whole: say so where scripts and people look for failures too.
        eprintln!(
            "roster: {}",
            summary.reason.as_deref().unwrap_or("the file was refused")
        );
    }
    Ok(ExitCode::from(summary.exit_code()))
}

/// Prints a summary on stdout (a dry run's change list too, when it has one: as JSON, the
/// list's document with the summary under `summary`).
pub fn print(summary: &Summary, json: bool) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    match (&summary.changes, json) {
        (Some(list), true) => {
            let mut doc = serde_json::to_value(list)?;
            doc["summary"] = serde_json::to_value(summary)?;
            serde_json::to_writer(&mut out, &doc)?;
            writeln!(out)?;
        }
        (Some(list), false) => {
            summary.write_text(&mut out)?;
            list.write_text(&mut out)?;
        }
        (None, true) => {
            serde_json::to_writer(&mut out, summary)?;
            writeln!(out)?;
        }
        (None, false) => summary.write_text(&mut out)?,
    }
    out.flush()?;
    Ok(())
}

async fn import(store: StoreSettings, args: &ImportArgs, name: String) -> anyhow::Result<Summary> {
    let bar = Arc::new(Bar::new());
    let embedded = args.broker.amqp_url.is_none();
    let app = App::open(store, args.broker.clone(), bar.clone(), embedded).await?;
    let mut pipeline = app
        .is_embedded()
        .then(|| Pipeline::start(&app, &args.pipeline, None));
    let run_id = roster_fetcher::submit(
        &app.services,
        Submission {
            tenant: args.tenant.clone(),
            source: "cli".into(),
            path: args.file.clone(),
            file_name: name,
            format: args.format,
            mode: args.mode,
            encoding: args.encoding.clone(),
            ignore_encoding: args.ignore_encoding,
            seen: None,
            options: Default::default(),
        },
        &args.fetch,
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

async fn dry_run(store: StoreSettings, args: &ImportArgs, name: String) -> anyhow::Result<Summary> {
    let db = read_db(&store).await?;
    dry_run_file(
        &db,
        &DryRun {
            tenant: &args.tenant,
            path: &args.file,
            name,
            format: args.format,
            mode: args.mode,
            encoding: args.encoding.clone(),
            ignore_encoding: args.ignore_encoding,
            pipeline: &args.pipeline,
            dump: args.dump.as_deref(),
            changes: args.changes,
        },
    )
    .await
}

/// One file to parse and plan without writing anything.
pub struct DryRun<'a> {
    /// Whose directory it is compared with.
    pub tenant: &'a TenantId,
    /// Where it is.
    pub path: &'a Path,
    /// The name to show.
    pub name: String,
    /// Its format hint.
    pub format: Format,
    /// Full or delta.
    pub mode: SyncMode,
    /// Encoding of a file without a byte-order mark.
    pub encoding: Option<String>,
    /// Read a bundle's files without checking their encoding.
    pub ignore_encoding: bool,
    /// Parser limits and the brake.
    pub pipeline: &'a PipelineSettings,
    /// Where to write the planned changes as JSON lines, if anywhere.
    pub dump: Option<&'a Path>,
    /// Whether to list the changes in the summary ([`Summary::changes`]).
    pub changes: bool,
}

/// Parses and plans `file` against `db` in this process and writes nothing (but the
/// dump): the summary `import --dry-run` prints.
pub async fn dry_run_file(db: &Db, file: &DryRun<'_>) -> anyhow::Result<Summary> {
    let name = file.name.clone();
    let mut mode = file.mode;
    let tenant = file.tenant;
    let reading = tenants::reading_rules(db, tenant).await?;
    let options = ParseOptions {
        file_name: name.clone(),
        format: file.format,
        encoding: file.encoding.clone(),
        mappings: reading.mappings,
        organizations: reading.organizations,
        value_rules: reading.values,
        limits: file.pipeline.parser.limits,
        sort_memory: file.pipeline.parser.sort_memory(),
        spill_dir: None,
        ignore_encoding: file.ignore_encoding,
        bundle: reading.bundle,
    };
    let bar = Arc::new(Bar::new());
    let path = file.path.to_owned();
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
            return Ok(Summary::refused(tenant, &name, mode, rejection.to_string()));
        }
    };
    // A contact-details file changes no one: its people part is a delta.
    mode = parsed.mode.unwrap_or(mode);
    let mut parsed = parsed;
    roster_parser::warn_unknown_managers(db, file.tenant, mode, &mut parsed).await?;
    let snapshot = tempfile_path("roster-dry-run");
    let result = async {
        parsed.write_snapshot(BufWriter::new(std::fs::File::create(&snapshot)?))?;
        let mut dump = match file.dump {
            Some(path) => Some(BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            )),
            None => None,
        };
        let mut write_error = None;
        let mut list = file
            .changes
            .then(|| ChangeList::new(None, RunState::Planned.name(), Vec::new()));
        let mut sink = |batch: Vec<roster_shared::model::change::Change>| {
            if let Some(list) = list.as_mut() {
                for change in &batch {
                    list.push(change);
                }
            }
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
            db,
            tenant,
            &snapshot,
            parsed.accepted,
            Some(&parsed.covered),
            mode,
            file.pipeline.brake.brake(),
            (file.dump.is_some() || file.changes)
                .then_some(&mut sink as &mut (dyn FnMut(_) + Send)),
            parsed.related.as_ref(),
            &parsed.lines,
        )
        .await?;
        if let Some(out) = dump.as_mut() {
            for change in &plan.related.changes {
                serde_json::to_writer(&mut *out, change)?;
                out.write_all(b"\n")?;
            }
        }
        if let Some(e) = write_error {
            return Err(e.into());
        }
        if let Some(mut out) = dump {
            out.flush()?;
        }
        let list = list.map(|mut list| {
            list.held_by.clone_from(&plan.held_by);
            list
        });
        anyhow::Ok((plan, list))
    }
    .await;
    let _ = std::fs::remove_file(&snapshot);
    bar.finish();
    let (plan, list) = result?;
    if let Some(why) = plan.refused {
        return Ok(Summary::refused(tenant, &name, mode, why));
    }
    let related_errors = (plan.related.errors.len() + plan.errors.len()) as u64;
    let mut errors = parsed.errors;
    errors.extend(plan.errors.iter().cloned());
    errors.extend(plan.related.errors.iter().cloned());
    let mut summary = Summary::dry_run(
        tenant,
        &name,
        mode,
        parsed.rows_read,
        parsed.rejected + related_errors,
        parsed.skipped,
        plan.summary.counts,
        plan.summary.unchanged,
        errors.into_iter().take(1000).collect(),
        plan.held.map(|why| format!("would be held: {why}")),
    );
    if parsed.related.is_some() {
        summary.related = Some(RelatedCounts::of(&plan.related.changes));
    }
    summary.changes = list;
    Ok(summary)
}

fn tempfile_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7()))
}

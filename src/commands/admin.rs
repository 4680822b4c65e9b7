//! Operator commands: `migrate`, `mapping`, `approve`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use roster_parser::headers::normalize_header;
use roster_parser::preview::preview;
use roster_parser::rows::RowOutcome;
use roster_parser::{ParseLimits, ParseOptions};
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::{Db, runs, tenants};
use roster_shared::model::envelope::Format;
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::model::person::{Field, MappingTarget};

use crate::App;
use crate::app::read_db;
use crate::pipeline::{Pipeline, PipelineSettings, wait_for_run};
use crate::summary::Summary;

/// Runs `roster migrate`: brings the database schema up to date.
pub async fn migrate(store: StoreSettings) -> anyhow::Result<ExitCode> {
    roster_shared::install_crypto_provider();
    let db = Db::connect(&store.database_url).await?;
    db.migrate()
        .await
        .with_context(|| format!("migrating {}", store.database_url))?;
    println!("schema of {} is up to date", store.database_url);
    Ok(super::ok())
}

/// `roster mapping ...`: a tenant's own names for columns.
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Reads column HEADER as TARGET: a field name (email, first_name, job_title, ...),
    /// `name` (a full name), `extra` (keep as an extra attribute) or `ignore`.
    Set {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// The column header as it appears in the tenant's files.
        header: String,
        /// What it means.
        target: String,
    },
    /// Lists the tenant's mappings.
    List {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
    },
    /// Shows how FILE would be read for the tenant, before anything is imported: what
    /// each column feeds and why (the tenant's mapping, a built-in alias, Active
    /// Directory rules), then the first rows as Roster reads them. Exit codes: 0 the file
    /// would be read, 2 it would be refused as a whole, 1 anything else.
    Check {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// The file.
        file: PathBuf,
        /// Rows to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
        /// `auto`, `csv`, `tsv`, `json` or `soap`.
        #[arg(long, value_parser = roster_shared::config::one_of::<Format>(), default_value = "auto")]
        format: Format,
        /// Encoding of a file without a byte-order mark (default UTF-8).
        #[arg(long)]
        encoding: Option<String>,
    },
    /// Forgets the mapping of HEADER.
    Remove {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// The column header.
        header: String,
    },
}

/// Runs `roster mapping check`.
async fn check(
    store: StoreSettings,
    tenant: TenantId,
    file: PathBuf,
    rows: usize,
    format: Format,
    encoding: Option<String>,
) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let reading = tenants::reading_rules(&db, &tenant).await?;
    let options = ParseOptions {
        file_name: file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        format,
        encoding,
        mappings: reading.mappings,
        organizations: reading.organizations,
        value_rules: reading.values,
        limits: ParseLimits::default(),
        sort_memory: roster_parser::DEFAULT_SORT_MEMORY,
        spill_dir: None,
        ignore_encoding: false,
        bundle: reading.bundle,
    };
    let name = options.file_name.clone();
    let preview = match tokio::task::spawn_blocking(move || preview(&file, &options, rows)).await? {
        Ok(p) => p,
        Err(refused) => {
            println!("{refused}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut out = std::io::stdout().lock();
    let mut how = vec![format!(
        "{}{}",
        preview.encoding,
        if preview.bom {
            " with a byte-order mark"
        } else {
            ""
        }
    )];
    match preview.delimiter {
        Some(b'\t') => how.push("tab-delimited".into()),
        Some(d) => how.push(format!("delimited by {:?}", d as char)),
        None => how.push("records (JSON or SOAP): keys are read like headers".into()),
    }
    if preview.ad {
        how.push("an Active Directory export".into());
    }
    writeln!(out, "{name}: {}", how.join(", "))?;
    let width = preview
        .columns
        .iter()
        .map(|c| c.header.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    for (i, c) in preview.columns.iter().enumerate() {
        let header = format!("{:?}", c.header);
        writeln!(
            out,
            "  column {:>2} {header:<width$} -> {} ({})",
            i + 1,
            c.role.describe(),
            c.why
        )?;
    }
    if let Some(why) = &preview.refusal {
        writeln!(out, "the file would be refused: {why}")?;
        return Ok(ExitCode::from(2));
    }
    writeln!(out, "first rows as Roster reads them:")?;
    for (line, outcome) in &preview.rows {
        let at = line.map_or_else(String::new, |l| format!("line {l}: "));
        match outcome {
            RowOutcome::Person(p) | RowOutcome::Noted(p, _) => {
                let fields: Vec<String> = Field::ALL
                    .iter()
                    .filter(|f| **f != Field::Email)
                    .filter_map(|f| {
                        let v = p.display(*f);
                        (!v.is_empty()).then(|| format!("{}={v:?}", f.name()))
                    })
                    .chain(p.extra.iter().map(|(k, v)| format!("extra {k:?}={v:?}")))
                    .collect();
                writeln!(out, "  {at}{} {}", p.email, fields.join(" "))?;
                if let RowOutcome::Noted(_, note) = outcome {
                    writeln!(out, "    note: {}", note.message)?;
                }
            }
            RowOutcome::Rejected { errors, .. } => {
                for e in errors {
                    let column = e
                        .column
                        .as_ref()
                        .map_or_else(String::new, |c| format!("column {c:?}: "));
                    writeln!(out, "  {at}rejected: {column}{}", e.message)?;
                }
            }
            RowOutcome::Skipped(note) => writeln!(out, "  {at}{}", note.message)?,
            RowOutcome::Blank => {}
        }
    }
    Ok(super::ok())
}

/// Runs `roster mapping ...`.
pub async fn mapping(store: StoreSettings, command: MappingCommand) -> anyhow::Result<ExitCode> {
    if let MappingCommand::Check {
        tenant,
        file,
        rows,
        format,
        encoding,
    } = command
    {
        return check(store, tenant, file, rows, format, encoding).await;
    }
    if let MappingCommand::List { tenant } = &command {
        let db = read_db(&store).await?;
        for (header, target) in tenants::mappings(&db, tenant).await? {
            println!("{header}\t{target}");
        }
        return Ok(super::ok());
    }
    let app = App::open_quiet(store, BrokerSettings::default()).await?;
    let db = &app.services.db;
    match command {
        MappingCommand::Set {
            tenant,
            header,
            target,
        } => {
            let target: MappingTarget = target.parse()?;
            let key = normalize_header(&header);
            anyhow::ensure!(
                !key.is_empty(),
                "the header {header:?} has no letters or digits"
            );
            tenants::set_mapping(db, &tenant, &key, target).await?;
            println!("{tenant}: column {header:?} is read as {target}");
        }
        MappingCommand::List { .. } | MappingCommand::Check { .. } => {
            unreachable!("handled above")
        }
        MappingCommand::Remove { tenant, header } => {
            if !tenants::remove_mapping(db, &tenant, &normalize_header(&header)).await? {
                bail!("{tenant} has no mapping for {header:?}");
            }
        }
    }
    Ok(super::ok())
}

/// Arguments of `roster approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The broker (none: the stages run in this process).
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// How the stages run in this process (embedded).
    #[command(flatten)]
    pub pipeline: PipelineSettings,
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The held run.
    pub run: RunId,
}

/// Runs `roster approve` (and `roster runs approve`): lets a held run through the brakes
/// and waits for it. The differ applies the plan that was held while the directory is as
/// it was then; otherwise it plans afresh, and the run is held again if a brake trips.
/// Exit codes as `roster import`'s.
pub async fn approve(store: StoreSettings, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let app = App::open_quiet(store, args.broker.clone()).await?;
    let db = &app.services.db;
    let run = runs::get(db, &args.tenant, args.run)
        .await?
        .with_context(|| format!("{} has no run {}", args.tenant, args.run))?;
    let mut pipeline = app
        .is_embedded()
        .then(|| Pipeline::start(&app, &args.pipeline, None));
    if !app
        .services
        .approve_held(&args.tenant, args.run, &run)
        .await?
    {
        if let Some(p) = pipeline {
            p.stop().await?;
        }
        bail!("run {} is {}, not held", args.run, run.state);
    }
    let done = match pipeline.as_mut() {
        Some(p) => p.wait_for(&app, &args.tenant, args.run).await?,
        None => wait_for_run(&app, &args.tenant, args.run).await?,
    };
    if let Some(p) = pipeline {
        p.stop().await?;
    }
    let errors = runs::errors(db, &args.tenant, args.run, 1000).await?;
    let summary = Summary::of_run(&done, errors);
    super::import::print(&summary, args.json)?;
    Ok(ExitCode::from(summary.exit_code()))
}

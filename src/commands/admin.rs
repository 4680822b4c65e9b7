//! Operator commands: `migrate`, `mapping`, `approve`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use roster_parser::headers::normalize_header;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::{Db, runs, tenants};
use roster_shared::model::envelope::Envelope;
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::person::MappingTarget;
use roster_shared::transport::Queue;

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
    /// Forgets the mapping of HEADER.
    Remove {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// The column header.
        header: String,
    },
}

/// Runs `roster mapping ...`.
pub async fn mapping(store: StoreSettings, command: MappingCommand) -> anyhow::Result<ExitCode> {
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
        MappingCommand::List { .. } => unreachable!("listed above"),
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

/// Runs `roster approve`: lets a held run through the brake and waits for it.
pub async fn approve(store: StoreSettings, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let app = App::open_quiet(store, args.broker.clone()).await?;
    let db = &app.services.db;
    let run = runs::get(db, &args.tenant, args.run)
        .await?
        .with_context(|| format!("{} has no run {}", args.tenant, args.run))?;
    if !runs::approve(db, &args.tenant, args.run).await? {
        bail!("run {} is {}, not held", args.run, run.state);
    }
    let env = Envelope::new(
        MessageId::derived(&["approved", &run.id]),
        args.tenant.clone(),
        args.run,
        runs::parsed_body(&run),
    );
    let mut pipeline = app
        .is_embedded()
        .then(|| Pipeline::start(&app, &args.pipeline, None));
    app.services
        .publish(Queue::Parsed, &env, Some(&run.file_name))
        .await?;
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

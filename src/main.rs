//! `roster`: the all-in-one embedded sync and the operator's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use roster::commands::{
    admin, directory, dlq, fetch, import, keys, push, push_tool, related, runs, serve, tenants,
    tokens, webhooks,
};
use roster_shared::config::{LogSettings, StoreSettings};

/// Keeps each tenant's employee directory in sync with the files it delivers.
#[derive(Debug, Parser)]
#[command(name = "roster", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    store: StoreSettings,
    #[command(flatten)]
    log: LogSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Imports one file: parse, compare, apply; prints a summary.
    /// Exit codes: 0 done (row errors are in the summary), 2 the file was rejected as a
    /// whole and nothing was written, 1 anything else.
    Import(import::ImportArgs),
    /// Prints a tenant's directory sorted by email.
    Directory(directory::DirectoryArgs),
    /// A tenant's contact details: list them, add or remove the ones kept by hand.
    /// Exit codes: 0 done, 2 refused (unknown person or detail, a detail owned by the
    /// integration), 1 anything else.
    #[command(subcommand)]
    Contacts(related::ContactsCommand),
    /// Prints a tenant's groups with their members, managers and subgroups.
    Groups(related::GroupsArgs),
    /// Lists a tenant's sync runs.
    Runs(runs::RunsArgs),
    /// Brings the database schema up to date (PostgreSQL installs run this as a Job).
    Migrate,
    /// A tenant's own column names.
    #[command(subcommand)]
    Mapping(admin::MappingCommand),
    /// Lets a run held by a brake go ahead (the same as `roster runs approve`).
    Approve(admin::ApproveArgs),
    /// Messages the stages gave up on: list, show, replay, drop.
    Dlq(dlq::DlqArgs),
    /// Runs all four stages until SIGTERM, polling $ROSTER_DATA_DIR/inbox/<tenant>/.
    Serve(serve::ServeArgs),
    /// Measures import speed and memory on synthetic people.
    Bench(roster::bench::BenchArgs),
    /// The tenants file: apply it, list the tenants.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// A tenant's sources.
    #[command(subcommand)]
    Sources(tenants::SourcesCommand),
    /// Fetches one source now and waits for its runs; prints a summary per run as
    /// `import` does. Exit codes as `import`.
    Fetch(fetch::FetchArgs),
    /// The import API's bearer tokens: make, list, revoke.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// A tenant's webhook deliveries: what was sent to its endpoints, and how it went.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Key pairs for logging in to a customer's SFTP server.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Our SFTP server for tenants who push their files (OpenSSH's sshd, jailed).
    #[command(subcommand)]
    PushServer(push::PushCommand),
    /// Uploads files to a Roster import API and waits for the import: the customer-side
    /// sync tool, for cron or a scheduled task. Exit codes: 0 done, 2 rejected or invalid,
    /// 3 held by a brake, 1 anything else.
    Push(push_tool::PushArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Serve(_) | Command::PushServer(push::PushCommand::Run(_)) => "info",
        _ => "warn",
    };
    let _telemetry = roster_shared::telemetry::init("roster", default_filter, cli.log.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async move {
        let s = cli.store;
        match cli.command {
            Command::Import(args) => import::run(s, args).await,
            Command::Directory(args) => directory::run(s, args).await,
            Command::Contacts(cmd) => related::contacts(s, cmd).await,
            Command::Groups(args) => related::groups(s, args).await,
            Command::Runs(args) => runs::run(s, args).await,
            Command::Migrate => admin::migrate(s).await,
            Command::Mapping(cmd) => admin::mapping(s, cmd).await,
            Command::Approve(args) => admin::approve(s, args).await,
            Command::Dlq(args) => dlq::run(s, args).await,
            Command::Serve(args) => serve::run(s, args).await,
            Command::Bench(args) => roster::bench::run(s, args).await,
            Command::Tenants(cmd) => tenants::run(s, cmd).await,
            Command::Sources(cmd) => tenants::sources(s, cmd).await,
            Command::Fetch(args) => fetch::run(s, args).await,
            Command::Keys(cmd) => keys::run(s, cmd).await,
            Command::Tokens(cmd) => tokens::run(s, cmd).await,
            Command::Webhooks(cmd) => webhooks::run(s, cmd).await,
            Command::PushServer(cmd) => push::run(s, cmd).await,
            // The customer's tool: no database, no server settings.
            Command::Push(args) => push_tool::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

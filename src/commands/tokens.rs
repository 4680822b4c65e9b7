//! `roster tokens create|list|revoke`: the import API's bearer tokens, one per
//! integration. A token is printed once, when made; only a slow hash of it is stored.

use std::process::ExitCode;

use clap::Subcommand;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::tokens;
use roster_shared::model::ids::TenantId;
use serde_json::json;

use crate::app::{App, read_db};

/// `roster tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Makes a token for a tenant and prints it (the only time it is shown).
    Create {
        /// The tenant whose imports the token makes and sees.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// A sandbox token: its imports are dry runs that report what would change and
        /// write nothing.
        #[arg(long)]
        sandbox: bool,
        /// Print `{"id", "token", "tenant", "sandbox"}`.
        #[arg(long)]
        json: bool,
    },
    /// Lists tokens (never their secrets): id, tenant, sandbox or live, made, revoked.
    List {
        /// Only this tenant's.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: Option<TenantId>,
        /// Print a JSON list.
        #[arg(long)]
        json: bool,
    },
    /// Revokes a token by id: its requests are refused (403) from now on.
    /// Exit codes: 0 revoked, 2 no such token, 1 anything else.
    Revoke {
        /// The token's id (the 16 hex digits after `rst_`).
        id: String,
    },
}

/// Runs `roster tokens ...`.
pub async fn run(store: StoreSettings, command: TokensCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create {
            tenant,
            sandbox,
            json,
        } => {
            let app = App::open_quiet(store, BrokerSettings::default()).await?;
            let made = tokens::create(&app.services.db, &tenant, sandbox).await?;
            if json {
                println!(
                    "{}",
                    json!({"id": made.id, "token": made.token, "tenant": tenant, "sandbox": sandbox})
                );
            } else {
                println!("{}", made.token);
                eprintln!(
                    "roster: token {} for tenant {tenant}{}: keep it now, it is not shown again",
                    made.id,
                    if sandbox { " (sandbox)" } else { "" }
                );
            }
            Ok(super::ok())
        }
        TokensCommand::List { tenant, json } => {
            let db = read_db(&store).await?;
            let list = tokens::list(&db, tenant.as_ref()).await?;
            if json {
                let out: Vec<_> = list
                    .iter()
                    .map(|t| {
                        json!({
                            "id": t.id,
                            "tenant": t.tenant_id,
                            "sandbox": t.sandbox,
                            "created_at": t.created_at,
                            "revoked_at": t.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for t in &list {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.tenant_id,
                        if t.sandbox { "sandbox" } else { "live" },
                        t.created_at.to_rfc3339(),
                        t.revoked_at.map_or_else(
                            || "active".to_owned(),
                            |r| format!("revoked {}", r.to_rfc3339())
                        )
                    );
                }
            }
            Ok(super::ok())
        }
        TokensCommand::Revoke { id } => {
            let app = App::open_quiet(store, BrokerSettings::default()).await?;
            if tokens::revoke(&app.services.db, &id).await? {
                println!("revoked {id}");
                Ok(super::ok())
            } else {
                eprintln!("roster: no token {id}");
                Ok(ExitCode::from(2))
            }
        }
    }
}

//! `roster webhooks deliveries --tenant T`: the messages sent (or being sent) to a
//! tenant's webhook endpoints, newest first, with their attempts.

use std::process::ExitCode;

use clap::Subcommand;
use roster_shared::config::StoreSettings;
use roster_shared::model::ids::TenantId;
use roster_shared::webhooks;
use serde_json::json;

use crate::app::read_db;

/// `roster webhooks ...`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Lists a tenant's deliveries, newest first: id (`webhook-id`), event, endpoint,
    /// status (pending, delivered, failed), attempts, the last HTTP status, and when it
    /// was delivered or is next tried.
    Deliveries {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// How many to show.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `roster webhooks ...`.
pub async fn run(store: StoreSettings, command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhooksCommand::Deliveries {
            tenant,
            limit,
            json,
        } => {
            let db = read_db(&store).await?;
            let list = webhooks::list(&db, &tenant, limit).await?;
            if json {
                let out: Vec<_> = list
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.id,
                            "event": d.event_type,
                            "url": d.url,
                            "run_id": (!d.run_id.is_empty()).then_some(&d.run_id),
                            "status": d.status,
                            "attempts": d.attempts,
                            "last_code": d.last_code,
                            "last_error": d.last_error,
                            "created_at": d.created_at,
                            "next_attempt_at": (d.status == webhooks::Status::Pending.name())
                                .then_some(d.next_attempt_at),
                            "delivered_at": d.delivered_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("ID\tEVENT\tURL\tSTATUS\tATTEMPTS\tLAST_CODE\tNEXT/DELIVERED AT");
                for d in &list {
                    let when = match (d.delivered_at, d.status.as_str()) {
                        (Some(at), _) => at.to_rfc3339(),
                        (None, "pending") => d.next_attempt_at.to_rfc3339(),
                        _ => "-".to_owned(),
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        d.id,
                        d.event_type,
                        d.url,
                        d.status,
                        d.attempts,
                        d.last_code
                            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                        when
                    );
                }
            }
            Ok(super::ok())
        }
    }
}

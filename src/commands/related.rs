//! `roster contacts` (a tenant's contact details; adding and removing the ones kept by
//! hand) and `roster groups` (a tenant's groups with their members).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::{people, related};
use roster_shared::model::ids::TenantId;
use roster_shared::model::related::{Contact, ContactContent, MemberKind};
use serde_json::json;

use crate::App;
use crate::app::read_db;
use crate::commands::directory::contact_json;

/// `roster contacts ...`.
#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Adds a contact detail by hand (`integration: false`: no file ever removes it).
    Add {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// The person's email (they must be in the directory).
        #[arg(long)]
        person: String,
        /// `telephone`, `email`, `chat`, ...
        #[arg(long)]
        protocol: String,
        /// `mobile`, `work`, ...
        #[arg(long)]
        label: Option<String>,
        /// The number, address or handle.
        #[arg(long)]
        uri: String,
        /// Print the new detail as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists contact details, every person's or one's.
    List {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// Only this person's.
        #[arg(long)]
        person: Option<String>,
        /// As a JSON array (each detail with its `person`).
        #[arg(long)]
        json: bool,
    },
    /// Removes a detail added by hand (one owned by the integration is refused: the next
    /// file would bring it back).
    Remove {
        /// The tenant.
        #[arg(long, value_parser = super::tenant_arg)]
        tenant: TenantId,
        /// The detail's id (`roster contacts list`).
        id: String,
    },
}

/// Arguments of `roster groups`.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// As a JSON array of `{"id", "name", "members", "managers", "subgroups"}`.
    #[arg(long)]
    pub json: bool,
}

fn text(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Runs `roster contacts ...`. Exit codes: 0 done, 2 refused (unknown person or
/// detail, a detail owned by the integration), 1 anything else.
pub async fn contacts(store: StoreSettings, command: ContactsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ContactsCommand::List {
            tenant,
            person,
            json,
        } => {
            let db = read_db(&store).await?;
            let person = person.map(|p| p.trim().to_lowercase());
            let list = related::contacts(db.conn(), &tenant, person.as_deref()).await?;
            if json {
                let out: Vec<_> = list
                    .iter()
                    .map(|c| {
                        let mut v = contact_json(c);
                        v["person"] = json!(c.person);
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for c in &list {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        c.id,
                        c.person,
                        c.content.protocol.as_deref().unwrap_or(""),
                        c.content.label.as_deref().unwrap_or(""),
                        c.content.uri.as_deref().unwrap_or(""),
                        if c.integration {
                            "integration"
                        } else {
                            "manual"
                        }
                    );
                }
            }
            Ok(super::ok())
        }
        ContactsCommand::Add {
            tenant,
            person,
            protocol,
            label,
            uri,
            json,
        } => {
            let app = App::open_quiet(store, BrokerSettings::default()).await?;
            let db = &app.services.db;
            let person = person.trim().to_lowercase();
            let found =
                people::select_by_email(db.conn(), &tenant, &[&person], "p.email", false).await?;
            if found.is_empty() {
                eprintln!("roster: {tenant} has no person {person}");
                return Ok(ExitCode::from(2));
            }
            let contact = Contact {
                id: uuid::Uuid::now_v7().to_string(),
                person,
                content: ContactContent {
                    protocol: text(Some(protocol)),
                    label: text(label),
                    uri: text(Some(uri)),
                    address: None,
                },
                integration: false,
            };
            anyhow::ensure!(
                !contact.content.is_empty(),
                "a contact detail needs a protocol or a URI"
            );
            related::insert_contact(db.conn(), &tenant, &contact, chrono::Utc::now()).await?;
            if json {
                let mut v = contact_json(&contact);
                v["person"] = json!(contact.person);
                println!("{v}");
            } else {
                println!("{}", contact.id);
            }
            Ok(super::ok())
        }
        ContactsCommand::Remove { tenant, id } => {
            let app = App::open_quiet(store, BrokerSettings::default()).await?;
            let db = &app.services.db;
            let Some(contact) = related::contact(db.conn(), &tenant, &id).await? else {
                eprintln!("roster: {tenant} has no contact detail {id}");
                return Ok(ExitCode::from(2));
            };
            if contact.integration {
                eprintln!(
                    "roster: contact detail {id} of {} is owned by the integration: the next \
                     contact-details file decides it",
                    contact.person
                );
                return Ok(ExitCode::from(2));
            }
            if !related::delete_contact(db.conn(), &tenant, &contact)
                .await
                .context("removing the contact detail")?
            {
                bail!("contact detail {id} changed meanwhile; look again");
            }
            Ok(super::ok())
        }
    }
}

/// A group's people, managers and subgroups.
type Members<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);

/// Runs `roster groups`.
pub async fn groups(store: StoreSettings, args: GroupsArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let groups = related::groups(db.conn(), &args.tenant).await?;
    let mut members: BTreeMap<&str, Members<'_>> = BTreeMap::new();
    let memberships = related::memberships(db.conn(), &args.tenant).await?;
    for m in &memberships {
        let entry = members.entry(&m.group).or_default();
        match m.kind {
            MemberKind::Person => {
                entry.0.push(&m.member);
                if m.manager {
                    entry.1.push(&m.member);
                }
            }
            MemberKind::Group => entry.2.push(&m.member),
        }
    }
    let none = (Vec::new(), Vec::new(), Vec::new());
    if args.json {
        let out: Vec<_> = groups
            .iter()
            .map(|g| {
                let (people, managers, subgroups) = members.get(g.id.as_str()).unwrap_or(&none);
                json!({
                    "id": g.id,
                    "name": g.name,
                    "members": people,
                    "managers": managers,
                    "subgroups": subgroups,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for g in &groups {
            let (people, managers, subgroups) = members.get(g.id.as_str()).unwrap_or(&none);
            println!(
                "{}\t{}\t{} members\t{} managers\t{} subgroups",
                g.id,
                g.name,
                people.len(),
                managers.len(),
                subgroups.len()
            );
        }
    }
    Ok(super::ok())
}

//! `roster keys generate`: the ed25519 key pair Roster logs in with to a customer's SFTP
//! server. The private key stays where the source's `private_key_file` says (mode 0600);
//! the public key is printed, to hand to the customer.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use roster_fetcher::sources::db as sources_db;
use roster_fetcher::sources::{SourceKind, SourceSpec, sftp};
use roster_shared::config::StoreSettings;
use roster_shared::model::ids::TenantId;

use crate::app::read_db;

/// `roster keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Makes an ed25519 key pair for an SFTP source and prints the public key.
    Generate(GenerateArgs),
}

/// Arguments of `roster keys generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// The SFTP source, as named in the tenants file.
    #[arg(long)]
    pub source: String,
    /// Where to write the private key (default: the source's `private_key_file`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `roster keys ...`.
pub async fn run(store: StoreSettings, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Generate(args) = command;
    let db = read_db(&store).await?;
    let what = format!("{}/{}", args.tenant, args.source);
    let row = sources_db::get(&db, &args.tenant, &args.source)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("{what}: no such source (declare it with `roster tenants apply` first)")
        })?;
    anyhow::ensure!(
        row.kind == SourceKind::Sftp,
        "{what}: a {} source; keys are for sftp sources",
        row.kind
    );
    let spec: SourceSpec = serde_json::from_str(&row.spec)?;
    let path = match (&args.out, &spec.private_key_file) {
        (Some(out), _) => out.clone(),
        (None, Some(file)) => file.clone(),
        (None, None) => anyhow::bail!(
            "{what}: the source has no private_key_file; give --out PATH (and set \
             private_key_file: PATH in the tenants file)"
        ),
    };
    let public = sftp::generate_key(&path, &format!("roster {what}")).await?;
    println!("{public}");
    eprintln!(
        "roster: private key written to {} (mode 0600); give the public key above to {} \
         for their SFTP server's authorized_keys",
        path.display(),
        args.tenant
    );
    if spec.private_key_file.as_ref() != Some(&path) {
        eprintln!(
            "roster: the source logs in with this key once the tenants file says \
             private_key_file: {}",
            path.display()
        );
    }
    Ok(super::ok())
}

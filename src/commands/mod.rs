//! The operator's commands, one module each. Every command returns the process exit code.

pub mod admin;
pub mod directory;
pub mod dlq;
pub mod fetch;
pub mod import;
pub mod keys;
pub mod push;
pub mod push_tool;
pub mod related;
pub mod runs;
pub mod serve;
pub mod tenants;
pub mod tokens;
pub mod webhooks;

use std::process::ExitCode;

use roster_shared::model::ids::TenantId;

/// Parses a tenant id for clap.
pub fn tenant_arg(value: &str) -> Result<TenantId, String> {
    TenantId::new(value).map_err(|e| e.to_string())
}

/// Exit code 0.
pub fn ok() -> ExitCode {
    ExitCode::SUCCESS
}

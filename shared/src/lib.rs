//! Roster's shared core: what the four stages (`fetcher`, `parser`, `differ`, `writer`)
//! and the `roster` binary have in common, and the only crate they share. Stages never
//! import each other.
//!
//! - [`person`]: the canonical person record and its normalisation rules;
//! - [`change`]: planned changes and the stored-state check that makes applying them safe;
//! - [`envelope`]: the messages between stages;
//! - [`transport`]: moving messages (in memory or RabbitMQ);
//! - [`blob`]: raw files and snapshots;
//! - [`snapshot`]: the sorted snapshot format between parser and differ;
//! - [`db`]: entities, migrations and tenant-scoped queries on SQLite or PostgreSQL;
//! - [`stage`]: the services a stage gets and the consume loop that settles messages;
//! - [`runner`]: opening services from settings and running a stage as a process;
//! - [`health`]: readiness and liveness probes;
//! - [`config`], [`error`], [`telemetry`], [`brake`].

pub mod blob;
pub mod brake;
pub mod change;
pub mod config;
pub mod db;
pub mod envelope;
pub mod error;
pub mod health;
pub mod ids;
pub mod person;
pub mod runner;
pub mod snapshot;
pub mod stage;
pub mod telemetry;
pub mod transport;

pub use sea_orm;

/// Changes per `changes.ready` message (and per writer transaction).
pub const CHANGE_BATCH_SIZE: usize = 1000;

/// Installs the process-wide TLS crypto provider (ring). Call once at start, before any
/// TLS connection; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

//! Roster's shared core: what two or more of the four stages (`fetcher`, `parser`,
//! `differ`, `writer`) and the `roster` binary need, and the only crate they share.
//! Stages never import each other, and a rule or query only one stage applies lives in
//! that stage, not here.
//!
//! The pure model, free of I/O:
//! - [`model`]: ids, the person's field table, changes, run states, messages, snapshots.
//!
//! The runtime around it:
//! - [`transport`]: moving messages (in memory or RabbitMQ);
//! - [`blob`]: raw files and snapshots;
//! - [`db`]: entities, migrations, the directory table and the queries several stages
//!   share, on SQLite or PostgreSQL;
//! - [`stage`]: the services a stage gets and the consume loop that settles messages;
//! - [`outbox`]: directory events, written with their changes and published from there;
//! - [`review`]: a held or dry run's change list, read back for review;
//! - [`supervisor`]: the install-wide chores one process does at a time (dead letters,
//!   stalled runs, events left in the outbox);
//! - [`runner`]: opening services from settings and running a stage as a process;
//! - [`health`]: readiness and liveness probes;
//! - [`config`]: settings groups; [`secret`]: URLs that never print their password;
//!   [`error`]: what a stage's failure means; [`telemetry`]: logs and traces.

pub mod archive;
pub mod blob;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod model;
pub mod outbox;
pub mod review;
pub mod runner;
pub mod secret;
pub mod soap;
pub mod stage;
pub mod supervisor;
pub mod telemetry;
pub mod transport;
pub mod webhooks;

pub use sea_orm;

#[doc(hidden)]
pub mod __private {
    //! What the exported macros refer to.
    pub use serde;
}

/// Changes per `changes.ready` message (and per writer transaction), at most. Each batch
/// has fixed costs (a transaction, a claim, its run's counts, a message, an events
/// message); 5000 rather than 1000 took 1M-person first imports from 9.5 to 9.0 s
/// embedded and from 14 to 11.4 s distributed (BENCHMARKS.md).
pub const CHANGE_BATCH_SIZE: usize = 5000;

/// Bytes of changes per `changes.ready` message, about, beyond its first change: far
/// under the broker's 16 MiB limit, and small enough not to hurt other tenants' traffic.
pub const CHANGE_BATCH_BYTES: usize = 4 << 20;

/// Installs the process-wide TLS crypto provider (ring). Call once at start, before any
/// TLS connection; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

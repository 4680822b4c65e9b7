//! The `roster` binary's library: wiring the four stages together in one process (the
//! embedded default: in-memory transport and SQLite) or against RabbitMQ and PostgreSQL,
//! and the operator's commands.

pub mod app;
pub mod bench;
pub mod commands;
pub mod pipeline;
pub mod progress;
pub mod push_server;
pub mod summary;

pub use app::App;

//! `dead_letters`: messages a stage gave up on, drained from the dead-letter queues.

use sea_orm::entity::prelude::*;

use crate::transport::{Queue, Stage};

/// One dead letter.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    /// The message id (one message, however often it died).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// The run, when the message belongs to one.
    pub run_id: Option<String>,
    /// The queue it came from (stored by base name: `roster.fetched`, ...).
    pub queue: Queue,
    /// The stage that gave up.
    pub stage: Stage,
    /// The file concerned, when known.
    pub file_name: Option<String>,
    /// Why.
    pub reason: String,
    /// Attempts made the last time.
    pub attempts: i32,
    /// First time it was dead-lettered.
    pub first_failed_at: DateTimeUtc,
    /// Latest time it was dead-lettered.
    pub last_failed_at: DateTimeUtc,
    /// Its transport headers, as a JSON object.
    pub headers: String,
    /// The message itself (the envelope JSON).
    pub payload: String,
    /// Waiting, replayed or dropped.
    pub status: DeadLetterStatus,
    /// How often it was replayed.
    pub replays: i32,
    /// Last change of this row.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

crate::text_enum! {
    /// Where a dead letter stands.
    pub enum DeadLetterStatus as "dead-letter status" {
        /// Waiting for an operator.
        Dead = "dead",
        /// Put back on its queue.
        Replayed = "replayed",
        /// Given up by an operator.
        Dropped = "dropped",
    }
}

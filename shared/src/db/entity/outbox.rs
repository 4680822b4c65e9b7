//! `outbox`: directory events written with the changes they announce, published from
//! here (see [`crate::outbox`]).

use sea_orm::entity::prelude::*;

/// One events message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    /// The message id (stable: the same events always have the same id).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// The run whose changes the events announce.
    pub run_id: String,
    /// Where it goes on the events exchange (`<tenant>.employee.created`, ...).
    pub routing_key: String,
    /// Its transport headers, as a JSON object.
    pub headers: String,
    /// The message itself (the envelope JSON).
    pub payload: String,
    /// When it was written.
    pub created_at: DateTimeUtc,
    /// When it was published; absent until then.
    pub published_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

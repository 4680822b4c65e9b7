//! The sea-orm entities. One set serves SQLite and PostgreSQL. Every table holding tenant
//! data has a `tenant_id` column, and the queries in [`crate::db`] always filter on it.
//! The directory table `people` has no entity: its columns come from the person's field
//! table (see [`crate::db::people`]).

pub mod api_token;
pub mod column_mapping;
pub mod dead_letter;
pub mod fetched_file;
pub mod outbox;
pub mod push_user;
pub mod run;
pub mod run_batch;
pub mod run_error;
pub mod source;
pub mod tenant;
pub mod webhook_delivery;

//! Closed sets stored as their names: run states, formats, modes, stages, queues and
//! dead-letter statuses are text columns holding [`crate::text_enum!`] names. Reading a
//! name that is none of the set's values is an error naming the column and the value,
//! never a default.

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, StringLen, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, DbErr, QueryResult, TryGetError, TryGetable, Value};

use crate::model::envelope::{Format, SyncMode};
use crate::model::run::RunState;
use crate::model::source::{FetchOutcome, SourceKind};
use crate::transport::{Queue, Stage};

use super::entity::dead_letter::DeadLetterStatus;

/// Makes a [`crate::text_enum!`] storable in a text column.
macro_rules! stored_as_name {
    ($($Name:ty),+ $(,)?) => {$(
        impl From<$Name> for Value {
            fn from(value: $Name) -> Value {
                Value::String(Some(value.name().to_owned()))
            }
        }

        impl TryGetable for $Name {
            fn try_get_by<I: ColIdx>(res: &QueryResult, idx: I) -> Result<Self, TryGetError> {
                let name = <String as TryGetable>::try_get_by(res, idx)?;
                name.parse::<$Name>().map_err(|e| {
                    TryGetError::DbErr(DbErr::Type(format!("column {}: {e}", column_of(&idx))))
                })
            }
        }

        impl ValueType for $Name {
            fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
                match v {
                    Value::String(Some(name)) => name.parse().map_err(|_| ValueTypeErr),
                    _ => Err(ValueTypeErr),
                }
            }

            fn type_name() -> String {
                stringify!($Name).to_owned()
            }

            fn array_type() -> ArrayType {
                ArrayType::String
            }

            fn column_type() -> ColumnType {
                ColumnType::String(StringLen::None)
            }
        }

        impl Nullable for $Name {
            fn null() -> Value {
                Value::String(None)
            }
        }
    )+};
}

stored_as_name!(
    RunState,
    Format,
    SyncMode,
    Stage,
    Queue,
    DeadLetterStatus,
    SourceKind,
    FetchOutcome,
);

/// How a column index reads in a message: its name, or its position.
fn column_of<I: ColIdx>(idx: &I) -> String {
    match (idx.as_str(), idx.as_usize()) {
        (Some(name), _) => name.to_owned(),
        (None, Some(n)) => format!("#{n}"),
        (None, None) => format!("{idx:?}"),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};

    use crate::db::Db;
    use crate::db::entity::run;

    async fn db() -> Db {
        let db = Db::connect(&"sqlite::memory:".into()).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    async fn insert_run(db: &Db, seq: i64, id: &str, state: &str, format: &str, mode: &str) {
        db.conn()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO runs (id, tenant_id, seq, source, file_name, blob_key, sha256, size, \
                 format, mode, state, fetched_at, updated_at) \
                 VALUES (?, 'acme', ?, 'cli', 'f.csv', 'k', '0', 0, ?, ?, ?, ?, ?)",
                [
                    id.into(),
                    seq.into(),
                    format.into(),
                    mode.into(),
                    state.into(),
                    chrono::Utc::now().into(),
                    chrono::Utc::now().into(),
                ],
            ))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_names_in_the_database_are_errors_naming_column_and_value() {
        let db = db().await;
        insert_run(&db, 1, "good", "applied", "csv", "delta").await;
        let good = run::Entity::find_by_id("good")
            .one(db.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(good.state, crate::model::run::RunState::Applied);
        assert_eq!(good.mode, crate::model::envelope::SyncMode::Delta);

        for (seq, (id, state, format, mode, column, value)) in [
            ("s1", "exploded", "csv", "full", "state", "exploded"),
            ("m12", "applied", "csv", "sideways", "mode", "sideways"),
            ("f123", "applied", "xlsx", "full", "format", "xlsx"),
        ]
        .into_iter()
        .enumerate()
        {
            insert_run(&db, 2 + seq as i64, id, state, format, mode).await;
            let err = run::Entity::find_by_id(id)
                .one(db.conn())
                .await
                .expect_err("an unknown name must not read as any value")
                .to_string();
            assert!(
                err.contains(&format!("column {column}")) && err.contains(&format!("{value:?}")),
                "{err}"
            );
        }
    }
}

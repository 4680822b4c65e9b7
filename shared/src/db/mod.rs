//! The database: sea-orm entities and migrations that run on SQLite (embedded) and
//! PostgreSQL (distributed), and the tenant-scoped queries the stages and the command
//! line share. Every function here that touches tenant data takes the [`TenantId`] and
//! filters on it; no query reads across tenants except the explicit tenant listing.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value,
};
use sea_orm_migration::MigratorTrait;

use crate::ids::TenantId;

pub mod dead_letters;
pub mod entity;
pub mod migration;
pub mod people;
pub mod runs;
pub mod tenants;

pub use runs::RunState;

/// A connection pool to Roster's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
}

/// Turns a SQLite URL into one that creates the file when missing (`mode=rwc`).
pub fn normalize_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// The URL with any password (user info or `password=` parameter) replaced by `***`,
/// for logs and errors.
pub fn redact_url(url: &str) -> String {
    crate::error::redact(url, url)
}

impl Db {
    /// Connects to `url` (`sqlite://path`, `postgres://...`). SQLite runs in WAL mode with
    /// `synchronous=NORMAL` and waits up to 30 s for a lock.
    pub async fn connect(url: &str) -> Result<Db, DbErr> {
        let url = normalize_url(url);
        let mut opts = ConnectOptions::new(url.clone());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10));
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:");
            opts.max_connections(if memory { 1 } else { 4 })
                .min_connections(1)
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(30))
                        .foreign_keys(true)
                });
        } else {
            opts.max_connections(16)
                .min_connections(1)
                // Plan each statement with its real parameters. The directory grows from
                // empty within one run, and a generic plan cached while the table was
                // small scans the whole table for every batch (2 s instead of 5 ms).
                .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
        }
        let conn = sea_orm::Database::connect(opts).await.map_err(|e| {
            DbErr::Custom(format!(
                "cannot connect to {}: {}",
                redact_url(&url),
                crate::error::redact(&e.to_string(), &url)
            ))
        })?;
        Ok(Db { conn })
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        migration::Migrator::up(&self.conn, None).await
    }

    /// Whether the schema is missing migrations.
    pub async fn needs_migration(&self) -> Result<bool, DbErr> {
        Ok(!migration::Migrator::get_pending_migrations(&self.conn)
            .await?
            .is_empty())
    }

    /// The sea-orm connection, for stage-specific queries.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Whether this is SQLite (one writer at a time).
    pub fn is_sqlite(&self) -> bool {
        self.backend() == DbBackend::Sqlite
    }
}

/// A raw statement written with PostgreSQL placeholders (`$1`, `$2`, ...), adapted to
/// `backend` (SQLite takes `?1`, `?2`, ...). Keep `$` out of the SQL text otherwise.
pub fn raw(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Runs `stmt` and returns how many rows it changed.
pub async fn exec<C: ConnectionTrait>(conn: &C, stmt: Statement) -> Result<u64, DbErr> {
    Ok(conn.execute_raw(stmt).await?.rows_affected())
}

/// The tenant id as a query value.
pub(crate) fn tv(tenant: &TenantId) -> Value {
    tenant.as_str().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(normalize_url("sqlite://./r.db"), "sqlite://./r.db?mode=rwc");
        assert_eq!(normalize_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("postgres://roster:s3cret@db:5432/r"),
            "postgres://roster:***@db:5432/r"
        );
        assert_eq!(redact_url("postgres://db/r"), "postgres://db/r");
        assert_eq!(
            redact_url("postgres:///r?host=db&password=pw9"),
            "postgres:///r?host=db&password=***"
        );
    }
}

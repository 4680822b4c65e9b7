//! The database: sea-orm entities and migrations that run on SQLite (embedded) and
//! PostgreSQL (distributed), and the tenant-scoped queries that more than one stage or
//! command runs. A query only one stage runs lives in that stage's own `db.rs`. Every
//! function that touches tenant data takes the [`TenantId`] and filters on it; no query
//! reads across tenants except the explicit tenant listing and the supervisor's sweep.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value,
};
use sea_orm_migration::MigratorTrait;

use crate::model::ids::TenantId;
use crate::secret::SecretUrl;

pub mod dead_letters;
pub mod entity;
pub mod enums;
pub mod lease;
pub mod migration;
pub mod people;
pub mod related;
pub mod runs;
pub mod tenants;
pub mod tokens;
pub mod txn;

pub use txn::{COPY_SIGNATURE, CopyWriter, Txn};

/// How often [`Db::migrate`] tries again when another process is migrating too.
const MIGRATE_ATTEMPTS: u32 = 10;

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

impl Db {
    /// Connects to `url` (`sqlite://path`, `postgres://...`), creating a missing SQLite
    /// file. SQLite runs in WAL mode with `synchronous=NORMAL` and waits up to 30 s for a
    /// lock. Errors never show the password.
    pub async fn connect(url: &SecretUrl) -> Result<Db, DbErr> {
        Self::connect_with(normalize_url(url.expose()), url).await
    }

    /// Connects to `url` like [`Db::connect`], but never creates a SQLite file: a missing
    /// one is an error.
    pub async fn connect_existing(url: &SecretUrl) -> Result<Db, DbErr> {
        Self::connect_with(url.expose().to_owned(), url).await
    }

    async fn connect_with(full: String, url: &SecretUrl) -> Result<Db, DbErr> {
        let mut opts = ConnectOptions::new(full.clone());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10));
        if full.starts_with("sqlite:") {
            let memory = full.contains(":memory:");
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
                .map_sqlx_postgres_opts(|o| {
                    o.options([
                        ("plan_cache_mode", "force_custom_plan"),
                        // No statement may hang a stage for ever (a lost lock, a stuck
                        // server); the longest real ones take seconds.
                        ("statement_timeout", "300s"),
                        // Batches of thousands of rows look costly enough to PostgreSQL
                        // to compile them with LLVM, which takes longer than running them.
                        ("jit", "off"),
                    ])
                });
        }
        // A new SQLite file is briefly locked while another process sets it up (WAL mode,
        // the schema); that passes, so a locked file is tried again a few times.
        let mut attempt = 0;
        let conn = loop {
            match sea_orm::Database::connect(opts.clone()).await {
                Ok(conn) => break conn,
                Err(e)
                    if attempt < MIGRATE_ATTEMPTS
                        && e.to_string().contains("database is locked") =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(DbErr::Custom(format!(
                        "cannot connect to {}: {}",
                        url.redacted(),
                        url.redact_in(&e.to_string())
                    )));
                }
            }
        };
        Ok(Db { conn })
    }

    /// Brings the schema up to date: the migrations, then a column for every field of
    /// the record tables (a field added to a table is a column added here). Another
    /// process migrating at the same moment (two embedded commands starting together) is
    /// not an error: what counts is that the schema is current afterwards.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        let mut attempt = 0;
        loop {
            let done = async {
                migration::Migrator::up(&self.conn, None).await?;
                people::add_missing_columns(self).await
            }
            .await;
            match done {
                Ok(()) => return Ok(()),
                Err(_) if !self.needs_migration().await.unwrap_or(true) => return Ok(()),
                // The other migrator is mid-way: once it is done, nothing is left to do.
                Err(_) if attempt < MIGRATE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the schema is missing migrations or field columns.
    pub async fn needs_migration(&self) -> Result<bool, DbErr> {
        if !migration::Migrator::get_pending_migrations(&self.conn)
            .await?
            .is_empty()
        {
            return Ok(true);
        }
        Ok(!people::missing_columns(self).await?.is_empty())
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
pub fn tv(tenant: &TenantId) -> Value {
    tenant.as_str().into()
}

/// The current time in milliseconds since the epoch, by the database's clock (one clock
/// for every process of an install, whatever their own say).
pub fn now_ms_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(normalize_url("sqlite://./r.db"), "sqlite://./r.db?mode=rwc");
        assert_eq!(normalize_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_migrating_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..8 {
            let url: SecretUrl = format!(
                "sqlite://{}",
                dir.path().join(format!("{round}.db")).display()
            )
            .into();
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    Db::connect(&url).await?.migrate().await
                }));
            }
            for task in tasks {
                task.await.unwrap().expect("every migrator succeeds");
            }
        }
    }

    #[tokio::test]
    async fn a_field_added_to_the_table_is_a_column_added_by_migrate() {
        let db = Db::connect(&"sqlite::memory:".into()).await.unwrap();
        db.migrate().await.unwrap();
        assert!(!db.needs_migration().await.unwrap());
        // As if `time_zone` were a field this release added: the column is not there yet.
        db.conn()
            .execute_unprepared("ALTER TABLE people DROP COLUMN time_zone")
            .await
            .unwrap();
        assert!(db.needs_migration().await.unwrap());
        db.migrate().await.unwrap();
        assert!(!db.needs_migration().await.unwrap());
        assert!(people::missing_columns(&db).await.unwrap().is_empty());
    }
}

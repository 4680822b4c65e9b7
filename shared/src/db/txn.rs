//! A transaction that can also bulk-load with PostgreSQL's `COPY ... FROM STDIN`, and
//! bulk reads with `COPY ... TO STDOUT` ([`Db::copy_out`]).
//!
//! sea-orm's own transaction runs ordinary statements only: it does not expose the
//! connection it holds, and `COPY` needs that connection's copy protocol. So on
//! PostgreSQL a [`Txn`] is a sqlx transaction on a connection of the same pool (the
//! same settings), which runs sea-orm statements through [`ConnectionTrait`] like any
//! connection and `COPY` through [`Txn::copy_in`]; on SQLite it is sea-orm's own.

use std::sync::Arc;

use sea_orm::sqlx::{self, Postgres};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement, TransactionTrait,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use super::Db;

/// The signature that starts PostgreSQL's binary `COPY` format, in and out.
pub const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// PostgreSQL's binary `COPY` format being written (the input of [`Txn::copy_in`], and
/// what a `COPY ... TO STDOUT (FORMAT binary)` gives): a header, tuples of
/// length-prefixed values in big-endian, a trailer.
#[derive(Debug)]
pub struct CopyWriter(Vec<u8>);

impl CopyWriter {
    /// The header, with room for `capacity` bytes of tuples.
    pub fn new(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 32);
        out.extend_from_slice(COPY_SIGNATURE);
        out.extend_from_slice(&0i32.to_be_bytes()); // flags
        out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyWriter(out)
    }

    /// Starts a tuple of `columns` values.
    pub fn tuple(&mut self, columns: i16) {
        self.0.extend_from_slice(&columns.to_be_bytes());
    }

    /// One value, in the binary form of its column's type.
    pub fn value(&mut self, bytes: &[u8]) {
        // A value is at most a row's bytes (ROSTER_MAX_ROW_BYTES), far below 2 GiB.
        let len = i32::try_from(bytes.len()).expect("a value under 2 GiB");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    /// A text value, or NULL.
    pub fn text(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.value(v.as_bytes()),
            None => self.null(),
        }
    }

    /// NULL.
    pub fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// The whole, trailer included.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// Bytes of `COPY` input sent in one message.
const COPY_CHUNK: usize = 64 * 1024;

/// A transaction of [`Db`] ([`Db::begin_txn`]): rolled back when dropped uncommitted.
pub struct Txn(Inner);

enum Inner {
    /// SQLite: sea-orm's transaction.
    Orm(DatabaseTransaction),
    /// PostgreSQL: a sqlx transaction on a connection of the pool.
    Pg(Mutex<sqlx::Transaction<'static, Postgres>>),
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Inner::Orm(_) => "sea-orm",
            Inner::Pg(_) => "postgres",
        };
        f.debug_tuple("Txn").field(&kind).finish()
    }
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

fn conn_err(e: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)))
}

fn query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

impl Db {
    /// Begins a transaction that can also [`Txn::copy_in`] on PostgreSQL.
    pub async fn begin_txn(&self) -> Result<Txn, DbErr> {
        if self.backend() != DbBackend::Postgres {
            return Ok(Txn(Inner::Orm(self.conn.begin().await?)));
        }
        let txn = self
            .conn
            .get_postgres_connection_pool()
            .begin()
            .await
            .map_err(conn_err)?;
        Ok(Txn(Inner::Pg(Mutex::new(txn))))
    }

    /// Runs `statement`, a `COPY ... TO STDOUT`, on PostgreSQL, handing `each` its output
    /// as it arrives, in the pieces the server sends (a row each). On SQLite: an error.
    pub async fn copy_out(
        &self,
        statement: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), DbErr>,
    ) -> Result<(), DbErr> {
        use futures::TryStreamExt;
        if self.backend() != DbBackend::Postgres {
            return Err(DbErr::Custom("COPY needs PostgreSQL".to_owned()));
        }
        let mut conn = self
            .conn
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(conn_err)?;
        let mut out = conn.copy_out_raw(statement).await.map_err(query_err)?;
        while let Some(piece) = out.try_next().await.map_err(query_err)? {
            each(&piece)?;
        }
        Ok(())
    }
}

impl Txn {
    /// Commits.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.0 {
            Inner::Orm(t) => t.commit().await,
            Inner::Pg(t) => t.into_inner().commit().await.map_err(exec_err),
        }
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), DbErr> {
        match self.0 {
            Inner::Orm(t) => t.rollback().await,
            Inner::Pg(t) => t.into_inner().rollback().await.map_err(exec_err),
        }
    }

    /// Runs `statement` (a `COPY ... FROM STDIN`) with `data` as its input; returns the
    /// rows it loaded. A failing `COPY` fails the transaction as any statement does
    /// (roll back to a savepoint taken before it to go on). On SQLite: an error.
    pub async fn copy_in(&self, statement: &str, data: &[u8]) -> Result<u64, DbErr> {
        let Inner::Pg(t) = &self.0 else {
            return Err(DbErr::Custom("COPY needs PostgreSQL".to_owned()));
        };
        let mut t = t.lock().await;
        let conn: &mut sqlx::PgConnection = &mut t;
        let mut copy = conn.copy_in_raw(statement).await.map_err(exec_err)?;
        // On an error the copy is dropped unfinished: sqlx then aborts it, and the
        // server's own error (a unique key, say) is what the caller sees from `finish`
        // or `send`.
        // In messages of COPY_CHUNK bytes: the server reads each whole into memory, and
        // one of a megabyte is a fresh allocation each time, page-faulted in as it fills.
        for chunk in data.chunks(COPY_CHUNK) {
            copy.send(chunk).await.map_err(exec_err)?;
        }
        copy.finish().await.map_err(exec_err)
    }

    /// Takes the savepoint `name`.
    pub async fn savepoint(&self, name: &str) -> Result<(), DbErr> {
        self.execute_unprepared(&format!("SAVEPOINT {name}"))
            .await
            .map(drop)
    }

    /// Undoes everything since the savepoint `name` and forgets it.
    pub async fn rollback_to(&self, name: &str) -> Result<(), DbErr> {
        self.execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {name}"))
            .await?;
        self.release(name).await
    }

    /// Keeps everything since the savepoint `name` and forgets it.
    pub async fn release(&self, name: &str) -> Result<(), DbErr> {
        self.execute_unprepared(&format!("RELEASE SAVEPOINT {name}"))
            .await
            .map(drop)
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Txn {
    fn get_database_backend(&self) -> DbBackend {
        match &self.0 {
            Inner::Orm(t) => t.get_database_backend(),
            Inner::Pg(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.0 {
            Inner::Orm(t) => t.execute_raw(stmt).await,
            Inner::Pg(t) => {
                let mut t = t.lock().await;
                let conn: &mut sqlx::PgConnection = &mut t;
                query(&stmt)
                    .execute(conn)
                    .await
                    .map(Into::into)
                    .map_err(exec_err)
            }
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.0 {
            Inner::Orm(t) => t.execute_unprepared(sql).await,
            Inner::Pg(t) => {
                let mut t = t.lock().await;
                let conn: &mut sqlx::PgConnection = &mut t;
                sqlx::Executor::execute(conn, sqlx::AssertSqlSafe(sql.to_owned()))
                    .await
                    .map(Into::into)
                    .map_err(exec_err)
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.0 {
            Inner::Orm(t) => t.query_one_raw(stmt).await,
            Inner::Pg(t) => {
                let mut t = t.lock().await;
                let conn: &mut sqlx::PgConnection = &mut t;
                query(&stmt)
                    .fetch_optional(conn)
                    .await
                    .map(|row| row.map(Into::into))
                    .map_err(query_err)
            }
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.0 {
            Inner::Orm(t) => t.query_all_raw(stmt).await,
            Inner::Pg(t) => {
                let mut t = t.lock().await;
                let conn: &mut sqlx::PgConnection = &mut t;
                query(&stmt)
                    .fetch_all(conn)
                    .await
                    .map(|rows| rows.into_iter().map(Into::into).collect())
                    .map_err(query_err)
            }
        }
    }
}

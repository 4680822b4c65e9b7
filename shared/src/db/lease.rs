//! Leases: a role that one process of an install holds at a time (the supervisor; a
//! source's fetch), recorded as a row with its holder and an expiry. Times are the
//! database's, so processes on machines whose clocks disagree still agree on who holds
//! a lease. A holder keeps its lease by renewing it before it expires; a holder that dies
//! loses it when it expires, and another process takes it over.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use super::{Db, exec, now_ms_sql, raw};

/// Who holds a lease, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's name ([`process_name`] of its process).
    pub holder: String,
    /// Milliseconds until the lease expires (negative: expired).
    pub expires_in_ms: i64,
}

/// A name for this process that no other process shares: host, pid and a random part,
/// so an operator can tell which process holds a lease.
pub fn process_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// Takes the lease `name` for `holder` for `ttl`, or renews it if `holder` has it.
/// Returns whether `holder` holds it now (false: another holder's lease is unexpired).
pub async fn acquire(db: &Db, name: &str, holder: &str, ttl: Duration) -> Result<bool, DbErr> {
    let now = now_ms_sql(db.backend());
    let sql = format!(
        "INSERT INTO leases (name, holder, expires_ms, acquired_ms) \
         VALUES ($1, $2, {now} + $3, {now}) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
         expires_ms = excluded.expires_ms, \
         acquired_ms = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_ms \
         ELSE excluded.acquired_ms END \
         WHERE leases.holder = excluded.holder OR leases.expires_ms < {now}"
    );
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let changed = exec(
        db.conn(),
        raw(
            db.backend(),
            &sql,
            vec![name.into(), holder.into(), ttl_ms.into()],
        ),
    )
    .await?;
    Ok(changed > 0)
}

/// Gives the lease up if `holder` has it, so another process need not wait for it to
/// expire.
pub async fn release(db: &Db, name: &str, holder: &str) -> Result<(), DbErr> {
    exec(
        db.conn(),
        raw(
            db.backend(),
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            vec![name.into(), holder.into()],
        ),
    )
    .await?;
    Ok(())
}

/// Who holds the lease `name`, if anyone ever took it.
pub async fn holder(db: &Db, name: &str) -> Result<Option<Holder>, DbErr> {
    let now = now_ms_sql(db.backend());
    let row = db
        .conn()
        .query_one_raw(raw(
            db.backend(),
            &format!("SELECT holder, expires_ms - {now} FROM leases WHERE name = $1"),
            vec![name.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(Holder {
            holder: r.try_get_by_index(0)?,
            expires_in_ms: r.try_get_by_index(1)?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_expires_or_is_released() {
        let db = Db::connect(&"sqlite::memory:".into()).await.unwrap();
        db.migrate().await.unwrap();
        let long = Duration::from_secs(60);
        assert!(acquire(&db, "supervisor", "a", long).await.unwrap());
        assert!(!acquire(&db, "supervisor", "b", long).await.unwrap());
        assert!(
            acquire(&db, "supervisor", "a", long).await.unwrap(),
            "renewed"
        );
        assert!(
            acquire(&db, "other", "b", long).await.unwrap(),
            "leases are by name"
        );
        let held = holder(&db, "supervisor").await.unwrap().unwrap();
        assert_eq!(held.holder, "a");
        assert!(held.expires_in_ms > 50_000, "{held:?}");

        release(&db, "supervisor", "b").await.unwrap();
        assert!(
            !acquire(&db, "supervisor", "b", long).await.unwrap(),
            "not b's to release"
        );
        release(&db, "supervisor", "a").await.unwrap();
        assert!(acquire(&db, "supervisor", "b", long).await.unwrap());

        // An expired lease goes to whoever asks.
        assert!(
            acquire(&db, "short", "a", Duration::from_millis(1))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(acquire(&db, "short", "b", long).await.unwrap());
        assert!(process_name() != process_name());
    }
}

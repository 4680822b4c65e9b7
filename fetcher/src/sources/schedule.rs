//! Fetching each source on its schedule.
//!
//! At every tick the scheduler reads the enabled sources that have a schedule and starts
//! each one that is due: never fetched, or its schedule's next time after its last
//! attempt has come; after a failure, instead, when its pause is over (30 s, doubling
//! with each failure in a row, at most an hour: `ROSTER_SOURCE_RETRY_SECS` sets the
//! first). With several fetcher replicas a source is fetched by one replica at a time:
//! a fetch runs only while its replica holds the source's lease
//! (`source:<tenant>/<name>`, a database row with an expiry, renewed while the fetch
//! runs), and the replicas that lose the race leave it. At most
//! `ROSTER_FETCH_CONCURRENCY` fetches run at once in one replica.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use roster_shared::db::lease;
use roster_shared::model::ids::TenantId;
use roster_shared::model::source::FetchOutcome;
use roster_shared::stage::Services;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::db::{self as sources_db, SourceRow};
use super::fetch::{FetchOptions, fetch};
use super::spec::Schedule;

/// How long a source's lease lasts unless renewed.
const LEASE_TTL: Duration = Duration::from_secs(120);
/// How often a running fetch renews its lease.
const LEASE_RENEW: Duration = Duration::from_secs(30);
/// The longest pause after failures.
const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// How the scheduler works.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// How each fetch runs.
    pub fetch: FetchOptions,
    /// The pause after a first failure (doubling with each failure in a row).
    pub retry_base: Duration,
    /// Fetches at once in this process, at most.
    pub concurrency: usize,
}

/// The pause before retrying a source that failed `failures` times in a row.
pub fn pause_after(failures: u64, base: Duration) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    base.saturating_mul(1u32 << doublings).min(MAX_PAUSE)
}

/// When `source` is next due, if it has a usable schedule.
pub fn due_at(source: &SourceRow) -> Option<DateTime<Utc>> {
    let schedule: Schedule = source.schedule.as_deref()?.parse().ok()?;
    if source.last_outcome == Some(FetchOutcome::Failed)
        && let Some(retry) = source.next_attempt_at
    {
        return Some(retry);
    }
    match source.last_attempt_at {
        None => Some(DateTime::<Utc>::MIN_UTC),
        Some(last) => schedule.next_after(Some(last)),
    }
}

/// The scheduler's state in one process: the fetches it runs.
pub struct Scheduler {
    holder: String,
    options: SchedulerOptions,
    running: Arc<Mutex<HashSet<(String, String)>>>,
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// A scheduler for this process.
    pub fn new(options: SchedulerOptions) -> Self {
        Scheduler {
            holder: lease::process_name(),
            options,
            running: Arc::default(),
            tasks: JoinSet::new(),
        }
    }

    /// Starts every due source not already being fetched here, as far as the
    /// concurrency allows; each fetch runs only if its lease can be had. Returns how many
    /// it started.
    pub async fn tick(
        &mut self,
        services: &Services,
    ) -> Result<usize, roster_shared::sea_orm::DbErr> {
        while self.tasks.try_join_next().is_some() {}
        let now = Utc::now();
        let mut started = 0;
        for source in sources_db::scheduled(&services.db).await? {
            let key = (source.tenant_id.clone(), source.name.clone());
            if self.running.lock().await.len() >= self.options.concurrency.max(1) {
                break;
            }
            if self.running.lock().await.contains(&key) {
                continue;
            }
            if due_at(&source).is_none_or(|at| at > now) {
                continue;
            }
            let Ok(tenant) = TenantId::new(source.tenant_id.clone()) else {
                continue;
            };
            self.running.lock().await.insert(key.clone());
            let (services, options, holder, running) = (
                services.clone(),
                self.options.clone(),
                self.holder.clone(),
                Arc::clone(&self.running),
            );
            self.tasks.spawn(async move {
                run_one(&services, &tenant, &source, &options, &holder).await;
                running.lock().await.remove(&key);
            });
            started += 1;
        }
        Ok(started)
    }

    /// Waits up to `grace` for the running fetches to end, then stops the rest (their
    /// leases expire; nothing half-fetched is stored, and they run again at the next
    /// tick of some replica).
    pub async fn stop(&mut self, grace: Duration) {
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// The lease name of a source.
pub fn lease_name(tenant: &str, source: &str) -> String {
    format!("source:{tenant}/{source}")
}

/// How [`under_lease`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased<T> {
    /// The work ran to its end.
    Done(T),
    /// Another process holds the lease: the work did not start.
    Busy,
    /// The lease was lost while the work ran: it was abandoned.
    Lost,
}

/// Runs `work` while `holder` holds the lease `name` (taken first, renewed while the work
/// runs, given up after). Does not start it if another holder has the lease, and
/// abandons it if the lease is lost (another process took it after it expired).
pub async fn under_lease<T>(
    db: &roster_shared::db::Db,
    name: &str,
    holder: &str,
    work: impl Future<Output = T>,
) -> Result<Leased<T>, roster_shared::sea_orm::DbErr> {
    if !lease::acquire(db, name, holder, LEASE_TTL).await? {
        return Ok(Leased::Busy);
    }
    tokio::pin!(work);
    let mut renew = tokio::time::interval(LEASE_RENEW);
    renew.tick().await;
    let outcome = loop {
        tokio::select! {
            result = &mut work => break Leased::Done(result),
            _ = renew.tick() => {
                match lease::acquire(db, name, holder, LEASE_TTL).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(lease = name, "lost the lease; abandoning the work");
                        break Leased::Lost;
                    }
                    Err(e) => warn!(lease = name, error = %e, "cannot renew the lease"),
                }
            }
        }
    };
    let _ = lease::release(db, name, holder).await;
    Ok(outcome)
}

/// Fetches one source under its lease (see [`under_lease`]).
async fn run_one(
    services: &Services,
    tenant: &TenantId,
    source: &SourceRow,
    options: &SchedulerOptions,
    holder: &str,
) {
    let failures = u64::try_from(source.failures).unwrap_or(0) + 1;
    let pause = pause_after(failures, options.retry_base);
    let work = fetch(services, tenant, &source.name, &options.fetch, pause);
    let name = lease_name(tenant.as_str(), &source.name);
    match under_lease(&services.db, &name, holder, work).await {
        Ok(Leased::Done(Err(e))) => {
            debug!(tenant = %tenant, source = %source.name, error = %e, "scheduled fetch failed");
        }
        Ok(Leased::Done(Ok(_)) | Leased::Busy | Leased::Lost) => {}
        Err(e) => {
            warn!(tenant = %tenant, source = %source.name, error = %e, "cannot take the source's lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(pause_after(1, base), Duration::from_secs(30));
        assert_eq!(pause_after(2, base), Duration::from_secs(60));
        assert_eq!(pause_after(4, base), Duration::from_secs(240));
        assert_eq!(pause_after(99, base), MAX_PAUSE);
    }
}

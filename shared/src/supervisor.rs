//! The supervisor: the install-wide chores that exactly one process must do at a time,
//! whichever binary it is (a stage, `roster serve`, an embedded `roster import`).
//!
//! Every long-running process runs [`run`]; each pass it takes or renews the
//! `supervisor` lease in the database ([`crate::db::lease`]), and only the holder works:
//!
//! - it archives dead letters (drains the dead-letter queues into the `dead_letters`
//!   table, which also marks their runs failed), so operators see them from anywhere;
//! - it announces again every run that has stalled (not final, not held, unmoved for
//!   the stall time, and not merely waiting behind an earlier run) at the stage it
//!   stopped in, since its message may have died with a process. Each stalled run is
//!   claimed by a conditional update before it is announced, so even two supervisors (a
//!   lease that expired mid-pass) announce it once;
//! - it publishes events left in the outbox (their writer died between commit and
//!   publish, or the broker was away).
//!
//! A holder that dies loses the lease when it expires, and another process takes over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, EntityTrait};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::SupervisorSettings;
use crate::db::entity::run;
use crate::db::{Db, dead_letters, exec, lease, raw, runs, tenants, tv};
use crate::error::{StageError, report};
use crate::model::ids::{MessageId, RunId, TenantId};
use crate::model::run::RunState;
use crate::stage::Services;

/// The name of the supervisor's lease.
pub const LEASE: &str = "supervisor";

/// How long an event may sit in the outbox before the supervisor publishes it (its writer
/// normally does at once).
pub const OUTBOX_GRACE: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Dead letters archived.
    pub archived: usize,
    /// Stalled runs announced again.
    pub announced: usize,
    /// Events published from the outbox.
    pub published: usize,
}

/// Competes for the supervisor lease until `shutdown`, doing the chores while holding
/// it; gives the lease up on the way out.
pub async fn run(services: Services, settings: SupervisorSettings, shutdown: CancellationToken) {
    let webhooks = tokio::spawn(crate::webhooks::run(
        services.db.clone(),
        settings.webhooks.clone(),
        shutdown.clone(),
    ));
    let me = lease::process_name();
    let mut holding = false;
    loop {
        match lease::acquire(&services.db, LEASE, &me, settings.lease()).await {
            Ok(true) => {
                if !holding {
                    info!(holder = %me, "supervising this install");
                    holding = true;
                }
                if let Err(e) = pass(&services, settings.stall_after()).await {
                    warn!(error = %report(&e), "supervision pass failed; trying again next time");
                }
            }
            Ok(false) => {
                if holding {
                    info!(holder = %me, "another process supervises this install now");
                    holding = false;
                }
            }
            Err(e) => warn!(error = %e, "cannot reach the supervisor lease; trying again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(settings.interval()) => {}
        }
    }
    if holding && let Err(e) = lease::release(&services.db, LEASE, &me).await {
        warn!(error = %e, "could not give the supervisor lease up; it will expire");
    }
    let _ = webhooks.await;
}

/// One pass of the chores: archive dead letters, announce stalled runs again, publish
/// events left in the outbox.
pub async fn pass(services: &Services, stall_after: Duration) -> Result<Pass, StageError> {
    let archived = match dead_letters::drain(&services.db, services.transport.as_ref()).await {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "archiving dead letters failed; trying again next time");
            0
        }
    };
    let announced = recover_stalled(services, stall_after).await?;
    let published = crate::outbox::publish_stale(services, OUTBOX_GRACE).await?;
    Ok(Pass {
        archived,
        announced,
        published,
    })
}

/// Announces again every unfinished run that has not moved for `after`, at the stage it
/// stopped in: `file.fetched` for a fetched run (its announcement may never have gone
/// out), `snapshot.parsed` (a fresh plan) for a parsed, diffed or applying one (its
/// message may have died with a process, or been dead-lettered while the database was
/// away). Every stage is idempotent, so announcing a run that was only slow costs work,
/// not correctness. Returns how many runs were announced.
pub async fn recover_stalled(services: &Services, after: Duration) -> Result<usize, StageError> {
    let before = Utc::now() - chrono::Duration::from_std(after).unwrap_or_default();
    let mut sent = 0;
    for tenant in tenants::list(&services.db).await? {
        for run in stalled(&services.db, &tenant, before).await? {
            let run_id: RunId = run
                .id
                .parse()
                .map_err(|e| StageError::internal_from(format!("run id {}", run.id), e))?;
            if !claim(&services.db, &tenant, run_id, before).await? {
                continue; // moved meanwhile, or another supervisor took it
            }
            warn!(tenant = %tenant, run = %run.id, state = %run.state, "announcing a stalled run again");
            if run.state == RunState::Fetched {
                services.send_to_parser(&tenant, run_id, &run).await?;
            } else {
                let id = MessageId::derived(&["recover", &run.id, &run.updated_at.to_rfc3339()]);
                services.send_to_differ(&tenant, run_id, &run, id).await?;
            }
            sent += 1;
        }
    }
    Ok(sent)
}

/// Unfinished runs of the tenant (not final, not held) that have not moved since
/// `before`, oldest first; not those that only wait, unplanned, behind an earlier
/// unfinished run of the tenant (the differ puts them off until it ends: they are not
/// stalled, and announcing them again would only start needless plans).
async fn stalled(
    db: &Db,
    tenant: &TenantId,
    before: DateTime<Utc>,
) -> Result<Vec<run::Model>, DbErr> {
    let moving = runs::states_sql(&RunState::MOVING);
    let sql = format!(
        "SELECT * FROM runs r WHERE r.tenant_id = $1 AND r.state IN ({moving}) \
         AND r.updated_at < $2 AND NOT (r.generation = 0 AND EXISTS \
         (SELECT 1 FROM runs e WHERE e.tenant_id = r.tenant_id AND e.seq < r.seq \
         AND e.state IN ({moving}))) ORDER BY r.seq"
    );
    run::Entity::find()
        .from_raw_sql(raw(db.backend(), &sql, vec![tv(tenant), before.into()]))
        .all(db.conn())
        .await
}

/// Marks a stalled run as looked at now, if it is still stalled; returns whether this
/// call did (so a run is announced once per stall period, by one supervisor).
async fn claim(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    before: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET updated_at = $1 WHERE id = $2 AND tenant_id = $3 \
             AND updated_at < $4",
            vec![
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
                before.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

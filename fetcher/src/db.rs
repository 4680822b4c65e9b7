//! The queries only the fetcher runs: creating a run for a stored file (with the tenant's
//! next sequence number) and remembering which files a source handed over.

use chrono::Utc;
use roster_shared::db::entity::{fetched_file, run};
use roster_shared::db::{Db, exec, raw, runs, tv};
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::model::run::RunState;
use roster_shared::sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

/// Everything known about a run when the fetcher creates it.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Owner.
    pub tenant: TenantId,
    /// Its id.
    pub id: RunId,
    /// Source name.
    pub source: String,
    /// Original file name.
    pub file_name: String,
    /// Blob key of the raw bytes.
    pub blob_key: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Format hint.
    pub format: Format,
    /// Sync mode.
    pub mode: SyncMode,
    /// Encoding label for BOM-less files.
    pub encoding: Option<String>,
    /// Whether a bundle's encoding check is waived.
    pub ignore_encoding: bool,
    /// Dry run, and what an API import asked for.
    pub options: RunOptions,
}

/// What an import may ask of its run beyond reading the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Plan and record the changes, apply nothing.
    pub dry_run: bool,
    /// Who the sync runs for (the import's `sync_manager_email`).
    pub requested_by: Option<String>,
    /// Whether new people should be invited.
    pub invite_new_users: Option<bool>,
}

/// How a file was seen at its source, recorded so it is never taken twice.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name at the source.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, milliseconds since the epoch.
    pub modified_ms: i64,
    /// For a local file, its change token (inode and status-change time).
    pub change: Option<String>,
}

/// The last file taken (or seen again) under one name from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastTake {
    /// Size then.
    pub size: u64,
    /// Modification time then, milliseconds since the epoch.
    pub modified_ms: i64,
    /// Its change token then ([`SourceFile::change`]).
    pub change: Option<String>,
    /// Hex SHA-256 of its content.
    pub sha256: String,
    /// The run that imported that content.
    pub run_id: String,
}

impl LastTake {
    /// Whether a local file listed with this size, time and change token is this one,
    /// untouched since: known without reading it. Never for a remote file (no token).
    pub fn unchanged(&self, size: u64, modified_ms: i64, change: Option<&str>) -> bool {
        change.is_some()
            && self.change.as_deref() == change
            && self.size == size
            && self.modified_ms == modified_ms
    }

    /// Whether `file` was listed exactly as this take was.
    pub fn same_listing(&self, file: &SourceFile) -> bool {
        self.size == file.size && self.modified_ms == file.modified_ms && self.change == file.change
    }
}

/// Creates a run in state `fetched` with the tenant's next sequence number (creating the
/// tenant on first sight), and records `source_file` as taken, in one transaction.
pub async fn create_run(
    db: &Db,
    new: &NewRun,
    source_file: Option<&SourceFile>,
) -> Result<run::Model, DbErr> {
    insert_run(db, new, source_file, Start::Fetched).await
}

/// The tenant's last applied run, when `new` may deliver the very same thing again: the
/// tenant's latest run that could have changed anything (every state but `rejected` and
/// `superseded`) is `applied`, and has the same raw content (SHA-256), format, mode and
/// encoding. Importing `new` would then change nothing if it is also read the same way:
/// the caller compares the run's `parse_config`
/// ([`roster_shared::db::tenants::parse_config`]). One query (the latest run).
pub async fn repeated_run(db: &Db, new: &NewRun) -> Result<Option<run::Model>, DbErr> {
    let latest = run::Entity::find()
        .filter(run::Column::TenantId.eq(new.tenant.as_str()))
        .filter(run::Column::State.is_not_in([RunState::Rejected, RunState::Superseded]))
        .order_by_desc(run::Column::Seq)
        .one(db.conn())
        .await?;
    Ok(latest.filter(|r| {
        r.state == RunState::Applied
            && r.sha256 == new.sha256
            && r.format == new.format
            && r.mode == new.mode
            && r.encoding == new.encoding
    }))
}

/// Creates a run already `applied` that repeats `of` (a file delivered again, see
/// [`repeated_run`]): nothing to parse or apply; it reports the rows of `of`, every
/// accepted person unchanged, and copies its row errors. Records `source_file` as taken.
pub async fn create_repeat_run(
    db: &Db,
    new: &NewRun,
    source_file: Option<&SourceFile>,
    of: &run::Model,
) -> Result<run::Model, DbErr> {
    insert_run(db, new, source_file, Start::Repeat(of)).await
}

/// Creates a run already `rejected` for `reason` (a file refused before it was read), and
/// records `source_file` as taken, in one transaction.
pub async fn create_rejected_run(
    db: &Db,
    new: &NewRun,
    source_file: Option<&SourceFile>,
    reason: &str,
) -> Result<run::Model, DbErr> {
    insert_run(db, new, source_file, Start::Rejected(reason)).await
}

/// The state a new run starts in.
#[derive(Debug, Clone, Copy)]
enum Start<'a> {
    /// `fetched`: to be parsed.
    Fetched,
    /// `rejected` for this reason.
    Rejected(&'a str),
    /// `applied` at once: a repeat of this applied run.
    Repeat(&'a run::Model),
}

/// A timestamp in a file's name this far past the delivery is not believed (a typo such
/// as 2099 would otherwise make every later file stale).
const FUTURE_SLACK: chrono::Duration = chrono::Duration::days(1);

/// When `new`'s file was produced: the timestamp its name carries when its tenant's
/// `safety.file_time` pattern finds one (and it is not in the future), else `now` (its
/// delivery).
async fn produced_at<C: ConnectionTrait>(
    conn: &C,
    new: &NewRun,
    now: chrono::DateTime<Utc>,
) -> Result<chrono::DateTime<Utc>, DbErr> {
    let safety = roster_shared::db::tenants::safety(conn, &new.tenant).await?;
    let from_name = safety
        .file_time
        .as_ref()
        .and_then(|spec| crate::file_time::FileTimePattern::new(spec).ok())
        .and_then(|pattern| pattern.read(&new.file_name))
        .filter(|t| *t <= now + FUTURE_SLACK);
    Ok(from_name.unwrap_or(now))
}

/// Creates a run in the state `start` names.
async fn insert_run(
    db: &Db,
    new: &NewRun,
    source_file: Option<&SourceFile>,
    start: Start<'_>,
) -> Result<run::Model, DbErr> {
    let txn = db.conn().begin().await?;
    let backend = db.backend();
    let now = Utc::now();
    exec(
        &txn,
        raw(
            backend,
            "INSERT INTO tenants (id, next_run_seq, created_at) VALUES ($1, 1, $2) \
             ON CONFLICT (id) DO NOTHING",
            vec![tv(&new.tenant), now.into()],
        ),
    )
    .await?;
    let row = txn
        .query_one_raw(raw(
            backend,
            "UPDATE tenants SET next_run_seq = next_run_seq + 1 WHERE id = $1 \
             RETURNING next_run_seq",
            vec![tv(&new.tenant)],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("tenant {}", new.tenant)))?;
    let seq: i64 = row.try_get_by_index::<i64>(0)? - 1;
    let produced_at = produced_at(&txn, new, now).await?;
    let (state, reason) = match start {
        Start::Fetched => (RunState::Fetched, None),
        Start::Rejected(why) => (RunState::Rejected, Some(why.to_owned())),
        Start::Repeat(of) => (
            RunState::Applied,
            Some(format!(
                "the same content as run {} (applied; SHA-256 {}): nothing to change",
                of.id, of.sha256
            )),
        ),
    };
    let repeat = match start {
        Start::Repeat(of) => Some(of),
        _ => None,
    };
    let model = run::ActiveModel {
        id: Set(new.id.to_string()),
        tenant_id: Set(new.tenant.to_string()),
        seq: Set(seq),
        source: Set(new.source.clone()),
        file_name: Set(new.file_name.clone()),
        blob_key: Set(new.blob_key.clone()),
        sha256: Set(new.sha256.clone()),
        size: Set(new.size as i64),
        format: Set(new.format),
        mode: Set(new.mode),
        encoding: Set(new.encoding.clone()),
        ignore_encoding: Set(new.ignore_encoding),
        dry_run: Set(new.options.dry_run),
        changes_key: Set(None),
        requested_by: Set(new.options.requested_by.clone()),
        invite_new_users: Set(new.options.invite_new_users),
        related_key: Set(None),
        related_counts: Set(repeat.map(|_| "{}".to_owned())),
        state: Set(state),
        reason: Set(reason),
        // A repeat has nothing to announce.
        published: Set(repeat.is_some()),
        approved: Set(false),
        rows_read: Set(repeat.map_or(0, |r| r.rows_read)),
        accepted: Set(repeat.map_or(0, |r| r.accepted)),
        rejected: Set(repeat.map_or(0, |r| r.rejected)),
        skipped: Set(repeat.map_or(0, |r| r.skipped)),
        covered: Set(repeat.and_then(|r| r.covered.clone())),
        held_by: Set(None),
        held_base: Set(None),
        produced_at: Set(Some(produced_at)),
        active_before: Set(None),
        approved_at: Set(None),
        created: Set(0),
        updated: Set(0),
        deactivated: Set(0),
        reactivated: Set(0),
        unchanged: Set(repeat.map_or(0, |r| r.accepted)),
        conflicts: Set(0),
        generation: Set(0),
        plan_message_id: Set(None),
        batches_total: Set(repeat.map(|_| 0)),
        snapshot_key: Set(None),
        rejects_key: Set(repeat.and_then(|r| r.rejects_key.clone())),
        fetched_at: Set(now),
        parsed_at: Set(repeat.map(|_| now)),
        diffed_at: Set(repeat.map(|_| now)),
        finished_at: Set((!matches!(start, Start::Fetched)).then_some(now)),
        parse_ms: Set(None),
        diff_ms: Set(None),
        parse_config: Set(repeat.and_then(|r| r.parse_config.clone())),
        updated_at: Set(now),
        announced: Set(None),
    };
    run::Entity::insert(model.clone()).exec(&txn).await?;
    if let Some(of) = repeat {
        // The same file has the same row errors.
        exec(
            &txn,
            raw(
                backend,
                "INSERT INTO run_errors (tenant_id, run_id, line, \"column\", message, severity) \
                 SELECT tenant_id, $1, line, \"column\", message, severity FROM run_errors \
                 WHERE tenant_id = $2 AND run_id = $3",
                vec![
                    new.id.to_string().into(),
                    tv(&new.tenant),
                    of.id.clone().into(),
                ],
            ),
        )
        .await?;
    }
    if let Some(file) = source_file {
        fetched_file::Entity::insert(fetched_file::ActiveModel {
            tenant_id: Set(new.tenant.to_string()),
            source: Set(new.source.clone()),
            name: Set(file.name.clone()),
            size: Set(file.size as i64),
            modified_ms: Set(file.modified_ms),
            sha256: Set(new.sha256.clone()),
            run_id: Set(new.id.to_string()),
            fetched_at: Set(now),
            change_token: Set(file.change.clone()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    runs::get(db, &new.tenant, new.id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("run {}", new.id)))
}

/// The last file taken (or seen again) under `name` from the tenant's `source`.
pub async fn last_take(
    db: &Db,
    tenant: &TenantId,
    source: &str,
    name: &str,
) -> Result<Option<LastTake>, DbErr> {
    let found = fetched_file::Entity::find()
        .filter(fetched_file::Column::TenantId.eq(tenant.as_str()))
        .filter(fetched_file::Column::Source.eq(source))
        .filter(fetched_file::Column::Name.eq(name))
        .order_by_desc(fetched_file::Column::Id)
        .one(db.conn())
        .await?;
    Ok(found.map(|f| LastTake {
        size: u64::try_from(f.size).unwrap_or(0),
        modified_ms: f.modified_ms,
        change: f.change_token,
        sha256: f.sha256,
        run_id: f.run_id,
    }))
}

/// Records that `file`, with content `sha256` already imported by `run_id`, was seen
/// again (touched, or rewritten with the same content), so the next listing knows it
/// without reading it.
pub async fn record_sighting(
    db: &Db,
    tenant: &TenantId,
    source: &str,
    file: &SourceFile,
    sha256: &str,
    run_id: &str,
) -> Result<(), DbErr> {
    fetched_file::Entity::insert(fetched_file::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        source: Set(source.to_owned()),
        name: Set(file.name.clone()),
        size: Set(file.size as i64),
        modified_ms: Set(file.modified_ms),
        sha256: Set(sha256.to_owned()),
        run_id: Set(run_id.to_owned()),
        fetched_at: Set(Utc::now()),
        change_token: Set(file.change.clone()),
        ..Default::default()
    })
    .exec(db.conn())
    .await?;
    Ok(())
}

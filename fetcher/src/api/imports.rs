//! `/v1/imports`: uploading a file (or a bundle's files) to import, and following the
//! import: its status and counts, its rejected rows, and a dry run's planned changes.
//! An import is a run of the pipeline; its id is the run's id. A token sees only its own
//! tenant's imports (a sandbox token only its dry runs): any other id is `404`, as an
//! unknown one is.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use roster_shared::db::entity::run;
use roster_shared::db::runs;
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::RunId;
use roster_shared::model::run::RunState;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::upload::{self, Upload};
use crate::{Copied, RunOptions, Submission};

/// Row errors an import's status lists, at most (all are in its rejects file).
pub const MAX_ERRORS: u64 = 1000;

/// Where an import stands (also read by `roster push`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored, waiting for the parser.
    Queued,
    /// Being read, planned or applied.
    Processing,
    /// Applied (a dry run: planned); nothing more happens.
    Done,
    /// Stopped by a safety brake: waits for an operator (a dry run: would be held).
    Held,
    /// The file was refused as a whole; nothing was written.
    Rejected,
    /// It failed, or a later delivery was applied instead; nothing more happens.
    Error,
}

impl Status {
    /// Its name, as the API writes it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Done => "done",
            Status::Held => "held",
            Status::Rejected => "rejected",
            Status::Error => "error",
        }
    }

    /// The status of a run.
    pub fn of(run: &run::Model) -> Status {
        match run.state {
            RunState::Fetched => Status::Queued,
            RunState::Parsed | RunState::Diffed | RunState::Applying => Status::Processing,
            RunState::Applied => Status::Done,
            RunState::Planned if run.reason.is_some() => Status::Held,
            RunState::Planned => Status::Done,
            RunState::Held => Status::Held,
            RunState::Rejected | RunState::Stale => Status::Rejected,
            RunState::Failed | RunState::Superseded => Status::Error,
        }
    }
}

/// The answer to an accepted upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// The import's id: poll `GET /v1/imports/{id}`.
    pub id: String,
    /// Always `queued`.
    pub status: Status,
    /// Whether it is a dry run (a sandbox token's, or `dry_run=true`).
    pub dry_run: bool,
}

/// People counts of an import (for a dry run: what it would do).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Counts {
    /// Data rows read.
    pub rows_read: u64,
    /// People created.
    pub created: u64,
    /// People updated.
    pub updated: u64,
    /// People deactivated.
    pub deactivated: u64,
    /// People reactivated.
    pub reactivated: u64,
    /// People that needed no change.
    pub unchanged: u64,
    /// Rows rejected alone.
    pub rejected: u64,
    /// Rows skipped on purpose (each with a note).
    pub skipped: u64,
}

/// One row error (or note).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportError {
    /// Line in the file where the row starts, when the format has lines.
    pub line: Option<u64>,
    /// The column (its header) or field at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
    /// `error` (the row was rejected), `note` (skipped on purpose) or `warning` (applied,
    /// but worth a look: a manager not in the directory, say).
    pub severity: String,
}

/// An import's status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportStatus {
    /// Its id.
    pub id: String,
    /// Where it stands.
    pub status: Status,
    /// The pipeline's state of its run (`fetched`, `parsed`, ..., `applied`, `planned`,
    /// `held`, `rejected`, `failed`, `superseded`).
    pub state: String,
    /// Whether it is a dry run: nothing is written, its changes are at `.../changes`.
    pub dry_run: bool,
    /// Whether the asking token is a sandbox token.
    pub sandbox: bool,
    /// The uploaded file's name (a bundle's users file's, or `bundle.zip`).
    pub file_name: String,
    /// The type it was read as (as asked: `auto` when detected).
    #[serde(rename = "type")]
    pub kind: String,
    /// `full` or `delta`.
    pub mode: String,
    /// Why it was rejected, held (or would be), or failed.
    pub reason: Option<String>,
    /// People counts.
    pub counts: Counts,
    /// Counts of groups, memberships and contact details changed, when the file had any.
    #[schema(value_type = Option<Object>)]
    pub related: Option<serde_json::Value>,
    /// Row errors, the first 1000 (all are in `.../rejects`).
    pub errors: Vec<ImportError>,
    /// Whether there were more row errors than listed.
    pub errors_truncated: bool,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// When it was read.
    pub parsed_at: Option<DateTime<Utc>>,
    /// When it ended (or was held).
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The multipart form of an upload (for the documentation).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; a bundle's files (users, groups, mappings) as up to three `file` parts.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 3)]
    file: Vec<Vec<u8>>,
    /// What the file is (default `auto`: decided from its content).
    #[schema(nullable = false)]
    r#type: Option<TypeDoc>,
    /// `full` (people missing from the file are deactivated; the default) or `delta`.
    #[schema(nullable = false)]
    mode: Option<ModeDoc>,
    /// `true`: plan and report the changes, write nothing.
    #[schema(nullable = false)]
    dry_run: Option<bool>,
    /// `true`: read a bundle's files without checking they are UTF-8 with a byte-order mark.
    #[schema(nullable = false)]
    ignore_encoding: Option<bool>,
    /// The encoding of a file without a byte-order mark, if not UTF-8 (`windows-1252`,
    /// `iso-8859-1`, ...: a WHATWG label).
    #[schema(nullable = false, example = "windows-1252")]
    encoding: Option<String>,
    /// Whether new people should be invited.
    #[schema(nullable = false)]
    invite_new_users: Option<bool>,
    /// The admin the sync runs for.
    #[schema(nullable = false, format = Email)]
    sync_manager_email: Option<String>,
}

/// The values of `type` (for the documentation).
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TypeDoc {
    /// Decided from the content.
    Auto,
    /// Delimited text with a header row.
    Csv,
    /// Tab-separated text.
    Tsv,
    /// The web-service JSON shape.
    Json,
    /// A SOAP answer.
    Soap,
    /// A People import file.
    People,
    /// A People Contact Details file.
    ContactDetails,
    /// A three-file bundle.
    Bundle,
}

/// The values of `mode` (for the documentation).
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ModeDoc {
    /// Everyone: people missing are deactivated.
    Full,
    /// Changes only.
    Delta,
}

/// Upload a file to import.
#[utoipa::path(
    post,
    path = "/v1/imports",
    tag = "imports",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored and queued; poll the Location", body = Accepted,
            headers(("Location" = String, description = "The import's URL"))),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 413, description = "Over the size limit", body = ErrorBody),
        (status = 415, description = "Not multipart, or a file Roster cannot read", body = ErrorBody),
        (status = 422, description = "A malformed body or field", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    caller: Caller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let max = state.limits.max_file_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(super::MULTIPART_SLACK)) {
        return Err(upload::too_large(max));
    }
    let multipart = multipart.map_err(|e| {
        let multipart = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if multipart {
            ApiError::invalid("malformed_multipart", e.body_text())
        } else {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the file as multipart/form-data",
            )
        }
    })?;
    let scratch = state.services.blobs.scratch_dir().to_owned();
    let mut upload = upload::read(multipart, &scratch, max).await?;
    let dry_run = caller.sandbox || upload.dry_run;
    let copied = pack(&state, &mut upload).await?;
    let bundle = upload.format == Some(Format::Bundle) || copied.1;
    let sub = Submission {
        tenant: caller.tenant.clone(),
        source: "api".into(),
        path: copied.0.scratch.clone(),
        file_name: copied.2,
        format: if bundle {
            Format::Bundle
        } else {
            upload.format.unwrap_or(Format::Auto)
        },
        mode: upload.mode.unwrap_or(SyncMode::Full),
        encoding: upload.encoding.clone(),
        ignore_encoding: upload.ignore_encoding,
        seen: None,
        options: RunOptions {
            dry_run,
            requested_by: upload.sync_manager_email.clone(),
            invite_new_users: upload.invite_new_users,
        },
    };
    let scratch = copied.0.scratch.clone();
    let id = match crate::store_copied(&state.services, sub, copied.0).await {
        Ok(id) => id,
        Err(e) => {
            // Not stored: nothing of the upload stays behind.
            let _ = tokio::fs::remove_file(&scratch).await;
            return Err(e.into());
        }
    };
    info!(tenant = %caller.tenant, token = %caller.token, run = %id, dry_run, "import uploaded");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: id.to_string(),
            status: Status::Queued,
            dry_run,
        }),
    )
        .into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/imports/{id}")).expect("a UUID is a header value"),
    );
    Ok(response)
}

/// The upload as one file to store: the single file, or the files packed into a bundle
/// zip. Returns it, whether it was packed, and the name to show.
async fn pack(state: &ApiState, upload: &mut Upload) -> Result<(Copied, bool, String), ApiError> {
    let mut files = upload.take_files();
    if files.len() == 1 {
        let file = files.pop().expect("one file");
        let name = file.name.clone();
        return Ok((
            Copied {
                scratch: file.path.clone(),
                sha256: file.sha256.clone(),
                size: file.size,
            },
            false,
            name,
        ));
    }
    let zip = state.services.blobs.scratch_path("bundle");
    let entries: Vec<(String, std::path::PathBuf)> = files
        .iter()
        .map(|f| (f.name.clone(), f.path.clone()))
        .collect();
    let to = zip.clone();
    let packed = tokio::task::spawn_blocking(move || {
        roster_shared::archive::pack_files(&entries, &to)?;
        hash_file(&to)
    })
    .await
    .map_err(|e| ApiError::internal(&e));
    for file in &files {
        let _ = std::fs::remove_file(&file.path);
    }
    let (sha256, size) = match packed {
        Ok(Ok(hashed)) => hashed,
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&zip);
            return Err(ApiError::internal(&e));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&zip);
            return Err(e);
        }
    };
    Ok((
        Copied {
            scratch: zip,
            sha256,
            size,
        },
        true,
        "bundle.zip".into(),
    ))
}

/// Hex SHA-256 and size of the file at `path`.
fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The caller's import `id`, or 404.
async fn visible(state: &ApiState, caller: &Caller, id: &str) -> Result<run::Model, ApiError> {
    let Ok(run_id) = id.parse::<RunId>() else {
        return Err(ApiError::not_found(id));
    };
    match runs::get(&state.services.db, &caller.tenant, run_id).await? {
        Some(run) if run.dry_run || !caller.sandbox => Ok(run),
        _ => Err(ApiError::not_found(id)),
    }
}

/// An import's status, counts and first row errors.
#[utoipa::path(
    get,
    path = "/v1/imports/{id}",
    tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "Where the import stands", body = ImportStatus),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 404, description = "No such import for this token", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportStatus>, ApiError> {
    let run = visible(&state, &caller, &id).await?;
    describe(&state, &caller, run).await.map(Json)
}

/// The status of `run` as the API shows it.
async fn describe(
    state: &ApiState,
    caller: &Caller,
    run: run::Model,
) -> Result<ImportStatus, ApiError> {
    let run_id: RunId = run.id.parse().map_err(|e| ApiError::internal(&e))?;
    let mut errors =
        runs::errors(&state.services.db, &caller.tenant, run_id, MAX_ERRORS + 1).await?;
    let errors_truncated = errors.len() as u64 > MAX_ERRORS;
    errors.truncate(MAX_ERRORS as usize);
    let counts = runs::counts(&run);
    Ok(ImportStatus {
        id: run.id.clone(),
        status: Status::of(&run),
        state: run.state.name().into(),
        dry_run: run.dry_run,
        sandbox: caller.sandbox,
        file_name: run.file_name.clone(),
        kind: run.format.name().into(),
        mode: run.mode.name().into(),
        reason: run.reason.clone(),
        counts: Counts {
            rows_read: run.rows_read as u64,
            created: counts.created,
            updated: counts.updated,
            deactivated: counts.deactivated,
            reactivated: counts.reactivated,
            unchanged: run.unchanged as u64,
            rejected: run.rejected as u64,
            skipped: run.skipped as u64,
        },
        related: run.related_key.as_ref().map(|_| {
            run.related_counts
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_else(|| serde_json::json!({}))
        }),
        errors: errors
            .into_iter()
            .map(|e| ImportError {
                line: e.line,
                column: e.column,
                message: e.message,
                severity: e.severity.name().into(),
            })
            .collect(),
        errors_truncated,
        created_at: run.fetched_at,
        parsed_at: run.parsed_at,
        finished_at: run.finished_at,
        updated_at: run.updated_at,
    })
}

/// Streams the blob `key` as `content_type`.
async fn blob(
    state: &ApiState,
    key: &str,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let file = state.services.blobs.open(key).await?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The content type of a reject file.
const REJECTS_TYPE: &str = "text/csv; charset=utf-8";

fn not_ready(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_ready",
        format!("the import is not {what} yet; poll its status"),
    )
}

/// An import's rejected rows: the rows that failed alone, in the file's own columns,
/// delimiter and encoding, each with its error (JSON lines for JSON input).
#[utoipa::path(
    get,
    path = "/v1/imports/{id}/rejects",
    tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The reject file (empty when no row was rejected alone)",
            content_type = "text/csv", body = String),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 404, description = "No such import for this token", body = ErrorBody),
        (status = 409, description = "Not read yet", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn rejects(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = visible(&state, &caller, &id).await?;
    if run.parsed_at.is_none() && run.state != RunState::Rejected {
        return Err(not_ready("read"));
    }
    match run.rejects_key.filter(|k| !k.is_empty()) {
        Some(key) if state.services.blobs.exists(&key).await? => {
            blob(&state, &key, REJECTS_TYPE).await
        }
        // No row was rejected alone: an empty file.
        _ => Ok(([(header::CONTENT_TYPE, REJECTS_TYPE)], "").into_response()),
    }
}

/// A dry run's planned changes, one JSON object a line: each person's change (kind, email,
/// fields before and after), then the groups', memberships' and contact details'.
#[utoipa::path(
    get,
    path = "/v1/imports/{id}/changes",
    tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The planned changes, as JSON lines",
            content_type = "application/x-ndjson", body = String),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 404, description = "No such import for this token", body = ErrorBody),
        (status = 409, description = "Not a dry run, not planned yet, or refused before it \
            was planned", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn changes(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = visible(&state, &caller, &id).await?;
    if !run.dry_run {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_dry_run",
            format!("{id}: only a dry run's changes are kept; its counts are in its status"),
        ));
    }
    match (run.state, run.changes_key) {
        (RunState::Planned, Some(key)) => blob(&state, &key, "application/x-ndjson").await,
        (state, _) if state.is_final() => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_changes",
            format!("{id}: the import was {state} before anything was planned"),
        )),
        _ => Err(not_ready("planned")),
    }
}

/// A held import that is not held (or a dry run, which nothing applies).
fn not_held(run: &run::Model) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_held",
        format!(
            "{}: the import is {}{}; only a held import is approved or rejected",
            run.id,
            run.state,
            if run.dry_run { " (a dry run)" } else { "" }
        ),
    )
}

/// What a held import (or a dry run) would do, person by person and field by field: the
/// list `roster runs show RUN --changes --json` prints.
#[utoipa::path(
    get,
    path = "/v1/imports/{id}/review",
    tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The change list", body = ReviewDoc),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 404, description = "No such import for this token", body = ErrorBody),
        (status = 409, description = "Neither held nor a planned dry run", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn review(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = visible(&state, &caller, &id).await?;
    match roster_shared::review::change_list(&state.services.blobs, &run).await {
        Ok(list) => Ok(Json(list).into_response()),
        Err(e @ roster_shared::review::ReviewError::NoPlan { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_changes",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// Approves a held import: it is applied as reviewed (planned afresh, and held again if a
/// brake trips, when the directory changed since it was held). Poll its status.
#[utoipa::path(
    post,
    path = "/v1/imports/{id}/approve",
    tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 202, description = "Approved: being applied", body = ImportStatus),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 404, description = "No such import for this token", body = ErrorBody),
        (status = 409, description = "The import is not held", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn approve(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ImportStatus>), ApiError> {
    let run = visible(&state, &caller, &id).await?;
    let run_id: RunId = run.id.parse().map_err(|e| ApiError::internal(&e))?;
    if run.dry_run
        || !state
            .services
            .approve_held(&caller.tenant, run_id, &run)
            .await?
    {
        return Err(not_held(&run));
    }
    info!(tenant = %caller.tenant, run = %run.id, "held import approved");
    let now = runs::get(&state.services.db, &caller.tenant, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(describe(&state, &caller, now).await?),
    ))
}

/// Rejects a held import: nothing of it is applied, and it ends `rejected`.
#[utoipa::path(
    post,
    path = "/v1/imports/{id}/reject",
    tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "Rejected", body = ImportStatus),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token was revoked", body = ErrorBody),
        (status = 404, description = "No such import for this token", body = ErrorBody),
        (status = 409, description = "The import is not held", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
pub async fn reject(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportStatus>, ApiError> {
    let run = visible(&state, &caller, &id).await?;
    let run_id: RunId = run.id.parse().map_err(|e| ApiError::internal(&e))?;
    let why = "rejected through the import API";
    if run.dry_run || !runs::reject(&state.services.db, &caller.tenant, run_id, why).await? {
        return Err(not_held(&run));
    }
    state
        .services
        .discard_snapshot(&caller.tenant, run_id)
        .await;
    info!(tenant = %caller.tenant, run = %run.id, "held import rejected");
    let now = runs::get(&state.services.db, &caller.tenant, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    Ok(Json(describe(&state, &caller, now).await?))
}

/// A change list (the document of `GET /v1/imports/{id}/review`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewDoc {
    /// The import's id.
    pub run: Option<String>,
    /// The run's state (`held`, or `planned` for a dry run).
    pub state: String,
    /// The brakes that hold it (or would): `deactivations`, `attribute_churn`,
    /// `population_drift`.
    pub held_by: Vec<String>,
    /// Changes by kind (`created`, `updated`, `deactivated`, `reactivated`), zero included.
    pub totals: std::collections::BTreeMap<String, u64>,
    /// Every change, in email order.
    pub changes: Vec<ReviewChangeDoc>,
}

/// One person's change in a [`ReviewDoc`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewChangeDoc {
    /// The person.
    pub email: String,
    /// `created`, `updated`, `deactivated` or `reactivated`.
    pub kind: String,
    /// The fields that change (a creation: every field it sets).
    pub fields: Vec<FieldChangeDoc>,
}

/// One field's change in a [`ReviewChangeDoc`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldChangeDoc {
    /// The field's name (`extra.<header>` for extra attributes).
    pub field: String,
    /// Its value before (`null`: empty).
    pub old: Option<String>,
    /// Its value after (`null`: empty).
    pub new: Option<String>,
}

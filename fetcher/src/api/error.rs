//! The API's errors: every refusal is a JSON body `{"code", "message"}` with a stable
//! `code` a client can branch on, and the HTTP status that says who must act.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::error;
use utoipa::ToSchema;

/// The body of every error answer (also read by `roster push`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `missing_token`, `invalid_token` (401),
    /// `token_revoked` (403), `not_found` (404), `not_ready`, `not_a_dry_run`,
    /// `no_changes` (409), `too_large` (413), `unsupported_media_type` (415),
    /// `malformed_multipart`, `missing_file`, `too_many_files`, `unknown_type`,
    /// `invalid_field` (422), `rate_limited` (429), `internal` (500).
    #[schema(example = "unknown_type")]
    pub code: String,
    /// What went wrong, for the person who fixes it.
    pub message: String,
}

/// A refusal or failure, turned into its JSON answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// Seconds to wait before trying again (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error answered with `status`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401: no token, or one that is not a live token.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 404: no such import for this token (another tenant's answers the same).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what}: no such import"),
        )
    }

    /// 422: the request is understood but a field is wrong.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500: our fault; the cause is logged, never shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "the import API failed a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the import API failed; try again later",
        )
    }
}

impl From<roster_shared::sea_orm::DbErr> for ApiError {
    fn from(e: roster_shared::sea_orm::DbErr) -> Self {
        Self::internal(&e)
    }
}

impl From<roster_shared::error::StageError> for ApiError {
    fn from(e: roster_shared::error::StageError) -> Self {
        Self::internal(&e)
    }
}

impl From<roster_shared::blob::BlobError> for ApiError {
    fn from(e: roster_shared::blob::BlobError) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code.into(),
                message: self.message,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"roster\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

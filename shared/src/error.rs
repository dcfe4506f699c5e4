//! The one error type of the API, and its one mapping to RFC 9457 problem details.
//!
//! Domain functions return [`Error`]; handlers pass it up with `?`; [`IntoResponse`] turns it into
//! `application/problem+json`. Internal causes are logged (without bodies or secrets) and never shown.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{blobs::BlobError, store::StoreError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects field errors while a request is parsed, so that one 422 names every bad field.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// The value, or `None` with its error kept.
    pub fn take<T>(&mut self, parsed: std::result::Result<T, FieldError>) -> Option<T> {
        parsed.map_err(|e| self.0.push(e)).ok()
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// `Ok` when nothing was wrong, else the 422 listing every field.
    pub fn finish(self) -> Result<()> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(Error::Validation(self.0)),
        }
    }
}

impl From<FieldErrors> for Error {
    fn from(errors: FieldErrors) -> Self {
        Error::Validation(errors.0)
    }
}

impl From<FieldError> for Error {
    fn from(error: FieldError) -> Self {
        Error::Validation(vec![error])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the resource does not exist")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    /// A value that must be unique is taken (a UNIQUE constraint, mapped at the call site).
    #[error("{}", .0.message)]
    Taken(FieldError),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    /// A budget or rate limit refused a chat turn; `code` names it (`daily_token_limit`,
    /// `rate_limit`).
    #[error("{detail}")]
    Limited {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    /// The model provider failed (after retries where they were safe). Clients get the stable
    /// `code` and a generic message; the provider's own text goes to the log only.
    #[error("{message}")]
    Provider {
        code: &'static str,
        message: &'static str,
    },
    /// A user's tool server failed (unreachable, slow, refused, a bad answer); the text is the
    /// server's side of it, never its headers.
    #[error("{0}")]
    ToolServer(String),
    /// A deployment lacks a setting this request needs.
    #[error("{0}")]
    NotConfigured(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A single-field validation failure.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_)
            | Error::Taken(_)
            | Error::Store(StoreError::ProjectFull(_) | StoreError::LimitReached { .. }) => {
                StatusCode::CONFLICT
            }
            Error::PayloadTooLarge { .. } | Error::Store(StoreError::StorageFull { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::TooManyRequests { .. } | Error::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Provider {
                code: "timeout" | "turn_budget_exceeded",
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            Error::Provider { .. } | Error::ToolServer(_) => StatusCode::BAD_GATEWAY,
            Error::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(StoreError::Busy | StoreError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Blobs(BlobError::Missing) => StatusCode::NOT_FOUND,
            Error::Blobs(BlobError::Changed) => StatusCode::CONFLICT,
            Error::Blobs(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable `type` URI tail; clients switch on it rather than on `detail` text.
    fn kind(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation",
            Error::BadRequest(_) => "bad-request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not-found",
            Error::Conflict(_)
            | Error::Taken(_)
            | Error::Store(StoreError::ProjectFull(_) | StoreError::LimitReached { .. }) => {
                "conflict"
            }
            Error::PayloadTooLarge { .. } => "payload-too-large",
            Error::Store(StoreError::StorageFull { .. }) => "storage-quota",
            Error::UnsupportedMediaType(_) => "unsupported-media-type",
            Error::MethodNotAllowed(_) => "method-not-allowed",
            Error::TooManyRequests { .. } => "too-many-requests",
            Error::Limited { .. } => "quota-exceeded",
            Error::Provider {
                code: "timeout" | "turn_budget_exceeded",
                ..
            } => "provider-timeout",
            Error::Provider { .. } => "provider-error",
            Error::ToolServer(_) => "tool-server-error",
            Error::NotConfigured(_) => "not-configured",
            Error::Store(StoreError::Busy | StoreError::Unavailable(_)) => "unavailable",
            Error::Store(_) | Error::Internal(_) => "internal",
            Error::Blobs(BlobError::Missing) => "not-found",
            Error::Blobs(BlobError::Changed) => "conflict",
            Error::Blobs(BlobError::NotConfigured) => "blobs-not-configured",
            Error::Blobs(_) => "unavailable",
        }
    }

    /// The stable code of errors that have one (provider failures).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::Provider { code, .. } | Error::Limited { code, .. } => Some(code),
            _ => None,
        }
    }

    /// When to retry, for the errors that say (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::TooManyRequests {
                retry_after_secs, ..
            }
            | Error::Limited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Error::Store(StoreError::Busy | StoreError::Unavailable(_))
            | Error::Blobs(BlobError::Io(_)) => Some(1),
            _ => None,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            Error::Store(
                full @ (StoreError::StorageFull { .. }
                | StoreError::ProjectFull(_)
                | StoreError::LimitReached { .. }),
            ) => full.to_string(),
            // Internal causes stay in the log.
            Error::Store(StoreError::Busy | StoreError::Unavailable(_)) => {
                "the database is busy or unreachable; retry shortly".to_string()
            }
            Error::Store(_) | Error::Internal(_) => "an internal error occurred".to_string(),
            Error::Blobs(BlobError::Io(_)) => {
                "the file store is unreachable; retry shortly".to_string()
            }
            other => other.to_string(),
        };
        Problem {
            kind: format!("https://codechat.dev/problems/{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Error::Validation(errors) => errors.clone(),
                Error::Taken(field) => vec![field.clone()],
                _ => Vec::new(),
            },
            code: self.code(),
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// A stable machine-readable code where the type has several causes (provider failures:
    /// `provider_unavailable`, `provider_throttled`, `provider_rejected`, `provider_stream_failed`,
    /// `provider_not_configured`, `timeout`, `turn_budget_exceeded`; refused turns:
    /// `daily_token_limit`, `rate_limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, axum::Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Error::Unauthorized(_) = &self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

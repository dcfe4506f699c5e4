//! The endpoint's errors in OpenAI's shape, from the service's problems.

use super::*;

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) kind: &'static str,
    pub(super) code: Option<&'static str>,
    pub(super) param: Option<String>,
    pub(super) retry_after: Option<u64>,
}

impl OpenAiError {
    pub(super) fn invalid(param: &str, message: impl Into<String>) -> Self {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param: Some(param.to_string()),
            retry_after: None,
        }
    }

    pub(super) fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl From<Error> for OpenAiError {
    fn from(e: Error) -> Self {
        let problem = e.problem();
        let status = e.status();
        if status.is_server_error() {
            tracing::error!(error = %e, "completion failed");
        }
        let fields: Vec<String> = problem
            .errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect();
        let message = if fields.is_empty() {
            problem.detail.clone()
        } else {
            fields.join("; ")
        };
        let (kind, code) = match (status.as_u16(), e.code()) {
            (401, _) => ("invalid_request_error", Some("invalid_api_key")),
            (403, _) => ("invalid_request_error", Some("permission_denied")),
            (404, _) => ("invalid_request_error", Some("not_found")),
            (429, Some("daily_token_limit")) => ("insufficient_quota", Some("insufficient_quota")),
            (429, _) => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
            (400..=499, _) => ("invalid_request_error", None),
            (_, code) => ("api_error", code.or(Some("server_error"))),
        };
        OpenAiError {
            // Field errors are OpenAI's 400s.
            status: if status == StatusCode::UNPROCESSABLE_ENTITY {
                StatusCode::BAD_REQUEST
            } else {
                status
            },
            message,
            kind,
            code,
            param: problem.errors.first().map(|f| f.field.clone()),
            retry_after: e.retry_after_secs(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A turn whose model call failed (its answer stored `failed`), in OpenAI's shape.
pub(super) fn failed_turn(error: &Error) -> OpenAiError {
    let status = error.status();
    OpenAiError {
        status,
        message: error.problem().detail,
        kind: if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_exceeded"
        } else if status.is_server_error() {
            "api_error"
        } else {
            "invalid_request_error"
        },
        code: match error.code() {
            Some("timeout") => Some("timeout"),
            Some("provider_throttled") => Some("provider_throttled"),
            Some("provider_unavailable") => Some("provider_unavailable"),
            _ if status.is_server_error() => Some("server_error"),
            _ => None,
        },
        param: None,
        retry_after: None,
    }
}

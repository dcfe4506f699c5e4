//! What every HTTP function shares: the JSON body limit, CORS, the largest inline answer.

use super::*;

/// What every HTTP function shares: body limits, CORS, large answers.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_json_body_bytes: usize,
    /// `None` allows any origin (tokens travel in headers, never cookies); otherwise an allow-list.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Largest export or archive answered inline (`MAX_INLINE_ANSWER_BYTES`, 4 MiB: Lambda answers
    /// at most 6 MB, base64 included); a larger one, where the blob store is S3, is stored and
    /// answered with a redirect to it.
    pub max_inline_answer_bytes: usize,
}

impl HttpConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(HttpConfig {
            max_json_body_bytes: number(var, "MAX_JSON_BODY_BYTES", 1024 * 1024)?,
            cors_allowed_origins: var("CORS_ALLOWED_ORIGINS").filter(|v| v.trim() != "*").map(
                |v| {
                    v.split(',')
                        .map(|o| o.trim().to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                },
            ),
            max_inline_answer_bytes: number(var, "MAX_INLINE_ANSWER_BYTES", 4 * 1024 * 1024)?,
        })
    }
}

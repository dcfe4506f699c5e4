//! The web client.

use super::*;

/// The web client.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where the web client finds the API (`WEB_API_BASE_URL`): relative by default (`api/v1`, on
    /// the page's own origin and stage), or another origin's URL.
    pub api_base: String,
}

impl WebConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(WebConfig {
            api_base: var("WEB_API_BASE_URL").unwrap_or_else(|| "api/v1".into()),
        })
    }
}

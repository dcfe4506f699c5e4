//! Sign-in settings: token lifetimes, failed-login limits, the bootstrap admin.

use super::*;

/// Tokens, sign-in limits and the first admin.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Failed password checks allowed per account and per client IP in a window.
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    pub bootstrap_admin_email: Option<String>,
    /// What registering `bootstrap_admin_email` must also present as `bootstrap_token` to become
    /// admin (`BOOTSTRAP_ADMIN_TOKEN`, or `BOOTSTRAP_ADMIN_TOKEN_ARN`, read at that registration).
    /// In the lambda profile the email alone makes no one admin (nobody can prove owning it); in
    /// the local profile the email alone still works when no token is set.
    pub bootstrap_admin_token: Option<SecretRef>,
    pub bootstrap_needs_token: bool,
    /// API keys one user may hold (`MAX_API_KEYS_PER_USER`, 25).
    pub max_api_keys_per_user: u64,
}

impl AuthConfig {
    pub(super) fn load(
        var: &impl Fn(&str) -> Option<String>,
        local: bool,
    ) -> Result<Self, ConfigError> {
        Ok(AuthConfig {
            access_token_ttl: Duration::from_secs(number(
                var,
                "ACCESS_TOKEN_TTL_SECONDS",
                15 * 60,
            )?),
            refresh_token_ttl: Duration::from_secs(number(
                var,
                "REFRESH_TOKEN_TTL_SECONDS",
                30 * 24 * 3600,
            )?),
            login_max_failures_per_account: number(var, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)?,
            login_max_failures_per_ip: number(var, "LOGIN_MAX_FAILURES_PER_IP", 100)?,
            login_failure_window: Duration::from_secs(number(
                var,
                "LOGIN_FAILURE_WINDOW_SECONDS",
                900,
            )?),
            bootstrap_admin_email: var("BOOTSTRAP_ADMIN_EMAIL"),
            bootstrap_admin_token: SecretRef::named(var, "BOOTSTRAP_ADMIN_TOKEN"),
            bootstrap_needs_token: !local,
            max_api_keys_per_user: number(var, "MAX_API_KEYS_PER_USER", 25)?,
        })
    }
}

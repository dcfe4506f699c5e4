//! Budgets and the turn rate limit.

use super::*;

/// Budgets and the turn rate limit.
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    /// The daily token budget of users without their own (`daily_token_limit` null); `None`
    /// (unset) means no budget.
    pub default_daily_token_limit: Option<i64>,
    /// Chat turns a user may start per minute; `None` (unset or 0) means no limit.
    pub turns_per_minute: Option<u32>,
}

impl QuotaConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(QuotaConfig {
            default_daily_token_limit: var("DEFAULT_DAILY_TOKEN_LIMIT")
                .map(|_| {
                    number(var, "DEFAULT_DAILY_TOKEN_LIMIT", 0u64)
                        .map(|n| n.min(i64::MAX as u64) as i64)
                })
                .transpose()?,
            turns_per_minute: Some(number(var, "RATE_LIMIT_TURNS_PER_MINUTE", 0u32)?)
                .filter(|n| *n > 0),
        })
    }
}

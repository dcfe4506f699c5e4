//! `Idempotency-Key` claims and records.

use super::*;

/// `Idempotency-Key` claims and records.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// How long an `Idempotency-Key` claim holds while its request runs; a run that died is taken
    /// over after it.
    pub lease: Duration,
    /// How long an idempotent answer is kept for replays.
    pub ttl: Duration,
}

impl IdempotencyConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(IdempotencyConfig {
            lease: Duration::from_secs(number(var, "IDEMPOTENCY_LEASE_SECONDS", 15 * 60)?),
            ttl: Duration::from_secs(number(var, "IDEMPOTENCY_TTL_SECONDS", 24 * 3600)?),
        })
    }
}

//! Daily token budgets and the turn rate limit.
//!
//! A turn reserves its maximum cost (input estimate + `max_tokens`, plus a summary call's when one
//! is due) as a hold in the store before any model is called; the hold counts against the budget
//! beside the tokens already billed that UTC day, so concurrent turns (in any number of processes)
//! cannot together spend more than the budget. The answer's statement deletes the holds as it
//! bills the real usage; a turn that stores no answer releases them; a process that dies leaves
//! holds that stop counting when they expire.

use std::time::Duration;

use time::OffsetDateTime;

use crate::{
    config::{ChatConfig, QuotaConfig},
    error::{Error, Result},
    ids::UserId,
    store::{Conn, HoldRequest, RateOutcome, User},
};

/// What the quota rules are for this deployment.
#[derive(Debug, Clone, Copy)]
pub struct QuotaSettings {
    /// The budget of users whose own is null; `None` is no budget.
    pub default_daily_limit: Option<i64>,
    pub turns_per_minute: Option<u32>,
    /// How long a hold counts: past the longest a turn can run.
    pub hold_ttl: Duration,
}

impl QuotaSettings {
    /// A hold lasts past the longest a turn can run (`chat.turn_budget`).
    pub fn new(quotas: &QuotaConfig, chat: &ChatConfig) -> Self {
        QuotaSettings {
            default_daily_limit: quotas.default_daily_token_limit,
            turns_per_minute: quotas.turns_per_minute,
            hold_ttl: chat.turn_budget + Duration::from_secs(60),
        }
    }
}

/// One user's budget for a turn.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub user_id: UserId,
    /// Tokens per UTC day; `None` is unlimited, 0 blocks every turn.
    pub daily_limit: Option<i64>,
    pub settings: QuotaSettings,
}

impl Budget {
    pub fn of(user: &User, settings: QuotaSettings) -> Self {
        Budget {
            user_id: user.id,
            daily_limit: user.daily_token_limit.or(settings.default_daily_limit),
            settings,
        }
    }
}

/// The holds a running turn has taken; empty without a budget.
#[derive(Debug)]
pub struct Holds {
    budget: Budget,
    day: String,
    ids: Vec<String>,
}

impl Holds {
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Reserves `tokens` more for the same turn (the coding agent's next call).
    pub async fn extend(&mut self, conn: &Conn, tokens: u64) -> Result<()> {
        let Some(limit) = self.budget.daily_limit else {
            return Ok(());
        };
        let id = crate::ids::new_id();
        let ttl = self.budget.settings.hold_ttl;
        take(conn, &self.budget, limit, &self.day, &id, tokens, ttl).await?;
        self.ids.push(id);
        Ok(())
    }

    /// Gives the holds back (the turn stored no answer to settle them).
    pub async fn release(self, conn: &Conn) {
        if let Err(e) = conn.release_quota_holds(&self.ids).await {
            // They expire on their own; until then they only make the budget stricter.
            tracing::warn!(error = %e, "releasing quota holds failed");
        }
    }
}

/// Counts a turn against the rate limit, if there is one: 429 with `Retry-After` to the next
/// minute when the user's minute is full.
pub async fn count_turn(conn: &Conn, budget: &Budget) -> Result<()> {
    let Some(per_minute) = budget.settings.turns_per_minute else {
        return Ok(());
    };
    let now = OffsetDateTime::now_utc();
    let minute = crate::ids::format_time(now)[..16].to_string();
    match conn.count_turn(budget.user_id, &minute, per_minute).await? {
        RateOutcome::Allowed => Ok(()),
        RateOutcome::Limited => Err(Error::Limited {
            code: "rate_limit",
            detail: format!(
                "at most {per_minute} chat turns per minute (RATE_LIMIT_TURNS_PER_MINUTE); retry after the minute"
            ),
            retry_after_secs: 60 - now.second() as u64,
        }),
    }
}

/// Reserves work that outlives its request (a document indexed by the worker) under `id`, for
/// `ttl`: the run that does the work deletes it when it bills (see
/// [`crate::store::document_hold_id`]); if none does, it stops counting after `ttl`.
pub async fn reserve_for_later(
    conn: &Conn,
    budget: &Budget,
    tokens: u64,
    id: &str,
    ttl: Duration,
) -> Result<()> {
    let Some(limit) = budget.daily_limit else {
        return Ok(());
    };
    let day = crate::ids::format_time(OffsetDateTime::now_utc())[..10].to_string();
    take(conn, budget, limit, &day, id, tokens, ttl).await
}

/// Reserves a turn's maximum cost, or refuses the turn with 429 when it does not fit today's budget.
pub async fn reserve(conn: &Conn, budget: &Budget, tokens: u64) -> Result<Holds> {
    let now = OffsetDateTime::now_utc();
    let day = crate::ids::format_time(now)[..10].to_string();
    let mut holds = Holds {
        budget: *budget,
        day,
        ids: Vec::new(),
    };
    if let Some(limit) = budget.daily_limit {
        let id = crate::ids::new_id();
        let ttl = budget.settings.hold_ttl;
        take(conn, budget, limit, &holds.day, &id, tokens, ttl).await?;
        holds.ids.push(id);
        // Old holds and counters go now and then; they no longer count either way.
        if rand_percent() == 0 {
            let minute = crate::ids::format_time(now)[..16].to_string();
            if let Err(e) = conn
                .sweep_quota_rows(&crate::ids::format_time(now), &minute)
                .await
            {
                tracing::warn!(error = %e, "sweeping old quota rows failed");
            }
        }
    }
    Ok(holds)
}

async fn take(
    conn: &Conn,
    budget: &Budget,
    limit: i64,
    day: &str,
    id: &str,
    tokens: u64,
    ttl: Duration,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let tokens = tokens.min(i64::MAX as u64) as i64;
    let taken = conn
        .take_quota_hold(HoldRequest {
            id,
            user_id: budget.user_id,
            day,
            tokens,
            limit,
            now: &crate::ids::format_time(now),
            expires_at: &crate::ids::format_time(now + ttl),
        })
        .await?;
    if taken {
        return Ok(());
    }
    let used = conn.tokens_used_on(budget.user_id, day).await?;
    let detail = if limit == 0 {
        "chat is blocked for this account (daily_token_limit is 0)".to_string()
    } else if tokens > limit {
        format!(
            "this turn may use up to {tokens} tokens (the input with its files and sources, and max_tokens), more than the daily_token_limit of {limit}; lower max_tokens or send fewer files"
        )
    } else {
        format!(
            "the daily_token_limit of {limit} tokens (input + output, per UTC day) does not leave room for this turn's up to {tokens} tokens: {used} used today, the rest reserved by turns in progress; it renews at 00:00 UTC"
        )
    };
    Err(Error::Limited {
        code: "daily_token_limit",
        detail,
        retry_after_secs: seconds_to_midnight(now),
    })
}

/// Seconds until the next 00:00 UTC (at least 1).
pub fn seconds_to_midnight(now: OffsetDateTime) -> u64 {
    let since_midnight = now.hour() as u64 * 3600 + now.minute() as u64 * 60 + now.second() as u64;
    (86_400 - since_midnight).max(1)
}

/// 0–99 from the clock's nanoseconds: enough to spread housekeeping over requests.
fn rand_percent() -> u32 {
    OffsetDateTime::now_utc().nanosecond() % 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_runs_to_utc_midnight() {
        let t = time::macros::datetime!(2026-12-01 23:59:30 UTC);
        assert_eq!(seconds_to_midnight(t), 30);
        let t = time::macros::datetime!(2026-12-01 00:00:00 UTC);
        assert_eq!(seconds_to_midnight(t), 86_400);
    }
}

//! Daily token budgets and the turn rate limit, each decided by one statement: SQLite takes the
//! write lock before a writing statement reads, so the check and the write cannot interleave with
//! another process's (locally or on the server), and a budget cannot be overspent.

use super::{col, first, Conn, StoreResult};
use crate::ids::UserId;

/// A reservation to take: `tokens` out of `limit` on `day` (`YYYY-MM-DD`, UTC), counted against
/// other holds until `expires_at`.
pub struct HoldRequest<'a> {
    pub id: &'a str,
    pub user_id: UserId,
    pub day: &'a str,
    pub tokens: i64,
    pub limit: i64,
    pub now: &'a str,
    pub expires_at: &'a str,
}

/// Whether a turn may start under the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOutcome {
    Allowed,
    Limited,
}

impl Conn {
    /// Takes the hold if the day's billed tokens, the live holds and this one fit the limit.
    /// Answers whether it was taken.
    pub async fn take_quota_hold(&self, hold: HoldRequest<'_>) -> StoreResult<bool> {
        let n = self
            .execute(
                "INSERT INTO quota_holds (id, user_id, day, tokens, expires_at)
                 SELECT ?1, ?2, ?3, ?4, ?5
                 WHERE ?4 + COALESCE((SELECT used FROM token_days WHERE user_id = ?2 AND day = ?3), 0)
                          + COALESCE((SELECT SUM(tokens) FROM quota_holds
                                      WHERE user_id = ?2 AND day = ?3 AND expires_at > ?6), 0)
                       <= ?7",
                libsql::params![
                    hold.id,
                    hold.user_id,
                    hold.day,
                    hold.tokens,
                    hold.expires_at,
                    hold.now,
                    hold.limit
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives holds back (a turn that stored no answer); an answer settles its holds itself.
    pub async fn release_quota_holds(&self, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        self.execute(
            "DELETE FROM quota_holds WHERE id IN (SELECT value FROM json_each(?1))",
            [ids],
        )
        .await?;
        Ok(())
    }

    /// Tokens billed to the user on `day`.
    pub async fn tokens_used_on(&self, user_id: UserId, day: &str) -> StoreResult<i64> {
        let rows = self
            .query(
                "SELECT used FROM token_days WHERE user_id = ?1 AND day = ?2",
                libsql::params![user_id, day],
            )
            .await?;
        Ok(first(rows, |row| col(row, 0, "token_days.used"))?.unwrap_or(0))
    }

    /// Counts a turn in the user's current minute if fewer than `per_minute` started in it.
    pub async fn count_turn(
        &self,
        user_id: UserId,
        minute: &str,
        per_minute: u32,
    ) -> StoreResult<RateOutcome> {
        let rows = self
            .query(
                "INSERT INTO turn_rate (user_id, minute, turns) VALUES (?1, ?2, 1)
                 ON CONFLICT (user_id, minute) DO UPDATE SET turns = turns + 1 WHERE turns < ?3
                 RETURNING turns",
                libsql::params![user_id, minute, per_minute as i64],
            )
            .await?;
        Ok(if rows.is_empty() {
            RateOutcome::Limited
        } else {
            RateOutcome::Allowed
        })
    }

    /// Drops expired holds and past minutes' counters (housekeeping, any time).
    pub async fn sweep_quota_rows(&self, now: &str, minute: &str) -> StoreResult<()> {
        self.execute("DELETE FROM quota_holds WHERE expires_at <= ?1", [now])
            .await?;
        self.execute("DELETE FROM turn_rate WHERE minute < ?1", [minute])
            .await?;
        Ok(())
    }
}

//! Idempotency records: one row per (user, key), holding the request the key was first used with,
//! a lease while that request runs, and then the answer to replay until the record expires.
//! Each statement here is a guarded single write, so concurrent uses of one key cannot both win.

use super::{col, first, Conn, StoreResult};
use crate::ids::{ConversationId, UserId};

#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request: String,
    pub lease_until: String,
    /// `(status, body)` once the first run finished.
    pub answer: Option<(u16, String)>,
}

pub struct NewClaim<'a> {
    pub user_id: UserId,
    pub key: &'a str,
    pub request: &'a str,
    pub now: &'a str,
    pub lease_until: &'a str,
    pub expires_at: &'a str,
}

impl Conn {
    /// Claims a key that is free, or whose record has expired (it is replaced). False when a live
    /// record holds the key.
    pub async fn claim_idempotency_key(&self, claim: &NewClaim<'_>) -> StoreResult<bool> {
        let n = self.execute(
                "INSERT INTO idempotency_keys (user_id, key, request, created_at, lease_until, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (user_id, key) DO UPDATE SET
                     request = excluded.request, conversation_id = NULL, status_code = NULL, response = NULL,
                     created_at = excluded.created_at, lease_until = excluded.lease_until,
                     expires_at = excluded.expires_at
                 WHERE idempotency_keys.expires_at <= excluded.created_at",
                libsql::params![
                    claim.user_id,
                    claim.key,
                    claim.request,
                    claim.now,
                    claim.lease_until,
                    claim.expires_at
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn idempotency_record(
        &self,
        user_id: UserId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let rows = self
            .query(
                "SELECT request, lease_until, status_code, response FROM idempotency_keys
                 WHERE user_id = ?1 AND key = ?2",
                libsql::params![user_id, key],
            )
            .await?;
        first(rows, |row| {
            let status: Option<i64> = col(row, 2, "idempotency_keys.status_code")?;
            let response: Option<String> = col(row, 3, "idempotency_keys.response")?;
            Ok(IdempotencyRecord {
                request: col(row, 0, "idempotency_keys.request")?,
                lease_until: col(row, 1, "idempotency_keys.lease_until")?,
                answer: status.zip(response).map(|(s, r)| (s as u16, r)),
            })
        })
    }

    /// Takes over a claim whose lease ran out before an answer was recorded (its run died).
    pub async fn take_over_idempotency_key(
        &self,
        user_id: UserId,
        key: &str,
        now: &str,
        lease_until: &str,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE idempotency_keys SET lease_until = ?4
                 WHERE user_id = ?1 AND key = ?2 AND response IS NULL AND lease_until <= ?3",
                libsql::params![user_id, key, now, lease_until],
            )
            .await?;
        Ok(n == 1)
    }

    /// Ties the record to the conversation its run writes to, so deleting that conversation deletes
    /// the record too.
    pub async fn attach_idempotency_key(
        &self,
        user_id: UserId,
        key: &str,
        conversation_id: ConversationId,
    ) -> StoreResult<()> {
        self.execute(
            "UPDATE idempotency_keys SET conversation_id = ?3 WHERE user_id = ?1 AND key = ?2",
            libsql::params![user_id, key, conversation_id],
        )
        .await?;
        Ok(())
    }

    pub async fn record_idempotent_answer(
        &self,
        user_id: UserId,
        key: &str,
        status: u16,
        response: &str,
    ) -> StoreResult<()> {
        self.execute(
                "UPDATE idempotency_keys SET status_code = ?3, response = ?4 WHERE user_id = ?1 AND key = ?2",
                libsql::params![user_id, key, status as i64, response],
            )
            .await?;
        Ok(())
    }

    /// Frees a key whose request was refused before anything was stored.
    pub async fn release_idempotency_key(&self, user_id: UserId, key: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE user_id = ?1 AND key = ?2 AND response IS NULL",
            libsql::params![user_id, key],
        )
        .await?;
        Ok(())
    }

    /// Deletes a user's records past their expiry (the primary key's `user_id` prefix bounds it).
    pub async fn delete_expired_idempotency_keys(
        &self,
        user_id: UserId,
        now: &str,
    ) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE user_id = ?1 AND expires_at <= ?2",
            libsql::params![user_id, now],
        )
        .await
    }
}

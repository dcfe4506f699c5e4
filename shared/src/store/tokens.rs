//! Refresh tokens: one row per issued token, grouped in families (one family per login).
//! A token is spent exactly once; presenting a spent or revoked one revokes its whole family, so a
//! stolen token that races its owner's gets both of them logged out rather than one silently kept.

use super::{col, Conn, StoreResult};
use crate::ids::UserId;

#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live and is now spent; issue its successor in the same family.
    Rotated { user_id: UserId, family_id: String },
    /// The token was already spent or revoked: its family has now been revoked.
    Reused,
    /// No such token (expired rows count as unknown).
    Unknown,
}

impl Conn {
    pub async fn insert_refresh_token(
        &self,
        jti: &str,
        user_id: UserId,
        family_id: &str,
        expires_at: &str,
    ) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT INTO refresh_tokens (jti, user_id, family_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                libsql::params![jti, user_id, family_id, expires_at, crate::ids::now()],
            )
            .await?;
        Ok(())
    }

    /// Spends a refresh token. The guarded UPDATE is the single decision point, so two concurrent
    /// uses of one token cannot both rotate.
    pub async fn spend_refresh_token(&self, jti: &str) -> StoreResult<RefreshOutcome> {
        let now = crate::ids::now();
        let mut rows = self
            .0
            .query(
                "UPDATE refresh_tokens SET used_at = ?2
                 WHERE jti = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
                 RETURNING user_id, family_id",
                libsql::params![jti, now.clone()],
            )
            .await?;
        if let Some(row) = rows.next().await? {
            return Ok(RefreshOutcome::Rotated {
                user_id: col(&row, 0, "refresh_tokens.user_id")?,
                family_id: col(&row, 1, "refresh_tokens.family_id")?,
            });
        }
        drop(rows);
        let mut rows = self
            .0
            .query(
                "SELECT family_id, expires_at > ?2 FROM refresh_tokens WHERE jti = ?1",
                libsql::params![jti, now],
            )
            .await?;
        let Some(row) = rows.next().await? else {
            return Ok(RefreshOutcome::Unknown);
        };
        let family_id: String = col(&row, 0, "refresh_tokens.family_id")?;
        if col::<i64>(&row, 1, "refresh_tokens.expires_at")? == 0 {
            return Ok(RefreshOutcome::Unknown);
        }
        drop(rows);
        self.revoke_refresh_family(&family_id).await?;
        Ok(RefreshOutcome::Reused)
    }

    /// The family a token belongs to, if the token belongs to `user_id`.
    pub async fn refresh_family_of(
        &self,
        jti: &str,
        user_id: UserId,
    ) -> StoreResult<Option<String>> {
        let mut rows = self
            .0
            .query(
                "SELECT family_id FROM refresh_tokens WHERE jti = ?1 AND user_id = ?2",
                libsql::params![jti, user_id],
            )
            .await?;
        match rows.next().await? {
            Some(row) => Ok(Some(col(&row, 0, "refresh_tokens.family_id")?)),
            None => Ok(None),
        }
    }

    pub async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
                libsql::params![family_id, crate::ids::now()],
            )
            .await?;
        Ok(())
    }

    /// Logs a user out everywhere (password change, deactivation).
    pub async fn revoke_user_refresh_tokens(&self, user_id: UserId) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                libsql::params![user_id, crate::ids::now()],
            )
            .await?;
        Ok(())
    }
}

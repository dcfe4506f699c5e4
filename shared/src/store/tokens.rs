//! Refresh tokens: one row per issued token, grouped in families (one family per login).
//! A token is spent exactly once; presenting a spent or revoked one revokes its whole family, so a
//! stolen token that races its owner's gets both of them logged out rather than one silently kept.

use super::{col, Conn, StoreResult};
use crate::ids::UserId;

#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live: it is spent and its successor stored, in one transaction.
    Rotated,
    /// The token was already spent or revoked: its family has now been revoked.
    Reused,
    /// No such token (expired rows count as unknown).
    Unknown,
}

/// A refresh token to store: the first of a session (login), or the successor of a spent one.
pub struct NewRefreshToken<'a> {
    pub jti: &'a str,
    pub user_id: UserId,
    pub family_id: &'a str,
    pub expires_at: &'a str,
}

const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (jti, user_id, family_id, expires_at, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5)";

impl Conn {
    pub async fn insert_refresh_token(&self, new: &NewRefreshToken<'_>) -> StoreResult<()> {
        self.execute(
            INSERT_REFRESH_TOKEN,
            libsql::params![
                new.jti,
                new.user_id,
                new.family_id,
                new.expires_at,
                crate::ids::now()
            ],
        )
        .await?;
        Ok(())
    }

    /// Spends refresh token `jti` and stores `successor` in its family, in one transaction: there is
    /// never a spent token without its successor, nor two successors. The guarded UPDATE is the
    /// single decision point, so two concurrent uses of one token cannot both rotate.
    pub async fn rotate_refresh_token(
        &self,
        jti: &str,
        successor: &NewRefreshToken<'_>,
    ) -> StoreResult<RefreshOutcome> {
        let now = crate::ids::now();
        let tx = self.transaction("tokens.rotate_refresh_token").await?;
        let spent = tx
            .execute(
                "UPDATE refresh_tokens SET used_at = ?4
                 WHERE jti = ?1 AND user_id = ?2 AND family_id = ?3
                   AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?4",
                libsql::params![jti, successor.user_id, successor.family_id, now.clone()],
            )
            .await?;
        if spent == 1 {
            tx.execute(
                INSERT_REFRESH_TOKEN,
                libsql::params![
                    successor.jti,
                    successor.user_id,
                    successor.family_id,
                    successor.expires_at,
                    now
                ],
            )
            .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Rotated);
        }
        tx.rollback().await?;
        let rows = self
            .query(
                "SELECT family_id, expires_at > ?2 FROM refresh_tokens WHERE jti = ?1",
                libsql::params![jti, now],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(RefreshOutcome::Unknown);
        };
        let family_id: String = col(row, 0, "refresh_tokens.family_id")?;
        if col::<i64>(row, 1, "refresh_tokens.expires_at")? == 0 {
            return Ok(RefreshOutcome::Unknown);
        }
        self.revoke_refresh_family(&family_id).await?;
        Ok(RefreshOutcome::Reused)
    }

    /// The family a token belongs to, if the token belongs to `user_id`.
    pub async fn refresh_family_of(
        &self,
        jti: &str,
        user_id: UserId,
    ) -> StoreResult<Option<String>> {
        let rows = self
            .query(
                "SELECT family_id FROM refresh_tokens WHERE jti = ?1 AND user_id = ?2",
                libsql::params![jti, user_id],
            )
            .await?;
        rows.first()
            .map(|row| col(row, 0, "refresh_tokens.family_id"))
            .transpose()
    }

    pub async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
            libsql::params![family_id, crate::ids::now()],
        )
        .await?;
        Ok(())
    }

    /// Revokes every refresh token of a user (a password change).
    /// After a password change: every refresh token revoked and every API key deleted, together.
    pub async fn revoke_user_credentials(&self, user_id: UserId) -> StoreResult<()> {
        let tx = self.transaction("tokens.revoke_user_credentials").await?;
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            libsql::params![user_id, crate::ids::now()],
        )
        .await?;
        tx.execute(
            "DELETE FROM api_keys WHERE user_id = ?1",
            libsql::params![user_id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

//! Personal API keys: stored as a SHA-256 of the key, found by its prefix.

use super::{
    col, collect, first,
    users::{user_from_row, USER_COLUMNS},
    Conn, Row, StoreResult, User,
};
use crate::ids::{ApiKeyId, UserId};

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

pub struct NewApiKey<'a> {
    pub user_id: UserId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub expires_at: Option<&'a str>,
}

/// A key found by its prefix, with its owner (for the caller to check the hash and expiry).
pub struct KeyOwner {
    pub user: User,
    pub key_id: ApiKeyId,
    pub key_hash: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

const KEY_COLUMNS: &str = "id, name, prefix, created_at, expires_at, last_used_at";

fn key_from_row(row: &Row) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: col(row, 0, "api_keys.id")?,
        name: col(row, 1, "api_keys.name")?,
        prefix: col(row, 2, "api_keys.prefix")?,
        created_at: col(row, 3, "api_keys.created_at")?,
        expires_at: col(row, 4, "api_keys.expires_at")?,
        last_used_at: col(row, 5, "api_keys.last_used_at")?,
    })
}

impl Conn {
    /// Refused ([`super::StoreError::LimitReached`]) when the user already holds `max_keys`.
    pub async fn insert_api_key(&self, new: NewApiKey<'_>, max_keys: u64) -> StoreResult<ApiKey> {
        let rows = self
            .query(
                &format!(
                    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, expires_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                     WHERE (SELECT COUNT(*) FROM api_keys WHERE user_id = ?2) < ?8
                     RETURNING {KEY_COLUMNS}"
                ),
                libsql::params![
                    ApiKeyId::new(),
                    new.user_id,
                    new.name,
                    new.prefix,
                    new.key_hash,
                    crate::ids::now(),
                    new.expires_at,
                    max_keys.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        first(rows, key_from_row)?.ok_or(super::StoreError::LimitReached {
            what: "API keys",
            limit: max_keys,
        })
    }

    /// The key with this prefix and its owner, in one statement.
    pub async fn api_key_owner(&self, prefix: &str) -> StoreResult<Option<KeyOwner>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {USER_COLUMNS}, k.key_id, k.key_hash, k.expires_at, k.last_used_at
                     FROM (SELECT id AS key_id, user_id AS key_user, key_hash, expires_at, last_used_at
                           FROM api_keys WHERE prefix = ?1) k
                     JOIN users ON users.id = k.key_user"
                ),
                libsql::params![prefix],
            )
            .await?;
        first(rows, |row| {
            Ok(KeyOwner {
                user: user_from_row(row)?,
                key_id: col(row, 10, "api_keys.id")?,
                key_hash: col(row, 11, "api_keys.key_hash")?,
                expires_at: col(row, 12, "api_keys.expires_at")?,
                last_used_at: col(row, 13, "api_keys.last_used_at")?,
            })
        })
    }

    pub async fn touch_api_key(&self, id: ApiKeyId) -> StoreResult<()> {
        self.execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            libsql::params![id, crate::ids::now()],
        )
        .await?;
        Ok(())
    }

    pub async fn list_api_keys(
        &self,
        user_id: UserId,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<ApiKey>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys
                     WHERE user_id = ?1 AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
                     ORDER BY created_at DESC, id DESC LIMIT ?4"
                ),
                libsql::params![user_id, after_at, after_id, limit as i64 + 1],
            )
            .await?;
        collect(rows, key_from_row)
    }

    /// Whether the user's key was there to delete.
    pub async fn delete_api_key(&self, id: ApiKeyId, user_id: UserId) -> StoreResult<bool> {
        Ok(self
            .execute(
                "DELETE FROM api_keys WHERE id = ?1 AND user_id = ?2",
                libsql::params![id, user_id],
            )
            .await?
            > 0)
    }
}

//! Accounts.

use super::{col, first, Conn, Row, StoreError, StoreResult};
use crate::{ids::UserId, kinds::Role};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: Role,
    pub is_active: bool,
    pub daily_token_limit: Option<i64>,
    /// Tokens issued under another epoch are dead.
    pub session_epoch: i64,
    pub created_at: String,
    pub updated_at: String,
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub role: Role,
}

/// A partial update; `None` leaves a column as it is. A new password hash also ends every session
/// (the epoch moves on).
#[derive(Default)]
pub struct UserChanges<'a> {
    pub display_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
}

pub(super) const USER_COLUMNS: &str =
    "id, email, password_hash, display_name, role, is_active, daily_token_limit, session_epoch, created_at, updated_at";

pub(super) fn user_from_row(row: &Row) -> StoreResult<User> {
    Ok(User {
        id: col(row, 0, "users.id")?,
        email: col(row, 1, "users.email")?,
        password_hash: col(row, 2, "users.password_hash")?,
        display_name: col(row, 3, "users.display_name")?,
        role: col(row, 4, "users.role")?,
        is_active: col(row, 5, "users.is_active")?,
        daily_token_limit: col(row, 6, "users.daily_token_limit")?,
        session_epoch: col(row, 7, "users.session_epoch")?,
        created_at: col(row, 8, "users.created_at")?,
        updated_at: col(row, 9, "users.updated_at")?,
    })
}

impl Conn {
    /// Inserts a user; a taken email is [`StoreError::Unique`] on `users.email` (the UNIQUE index
    /// decides, so two concurrent registrations of one email cannot both succeed).
    pub async fn insert_user(&self, new: NewUser<'_>) -> StoreResult<User> {
        let now = crate::ids::now();
        let rows = self.query(
                &format!(
                    "INSERT INTO users (id, email, password_hash, display_name, role, is_active, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6) RETURNING {USER_COLUMNS}"
                ),
                libsql::params![UserId::new(), new.email, new.password_hash, new.display_name, new.role.as_str(), now],
            )
            .await?;
        first(rows, user_from_row)?.ok_or(StoreError::Corrupt("users"))
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let rows = self
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
                [email],
            )
            .await?;
        first(rows, user_from_row)
    }

    pub async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let rows = self
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id],
            )
            .await?;
        first(rows, user_from_row)
    }

    pub async fn update_user(
        &self,
        id: UserId,
        changes: UserChanges<'_>,
    ) -> StoreResult<Option<User>> {
        let rows = self
            .query(
                &format!(
                    "UPDATE users SET display_name = COALESCE(?2, display_name),
                         password_hash = COALESCE(?3, password_hash),
                         session_epoch = session_epoch + (?3 IS NOT NULL), updated_at = ?4
                     WHERE id = ?1 RETURNING {USER_COLUMNS}"
                ),
                libsql::params![
                    id,
                    changes.display_name,
                    changes.password_hash,
                    crate::ids::now()
                ],
            )
            .await?;
        first(rows, user_from_row)
    }

    /// Whether any account is an admin (the bootstrap admin is granted only while none is).
    pub async fn admin_exists(&self) -> StoreResult<bool> {
        let rows = self
            .query(
                "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin')",
                (),
            )
            .await?;
        Ok(first(rows, |row| col(row, 0, "users.role"))?.unwrap_or(false))
    }

    /// Flips the active flag (tests today; the admin console with its issue). Deactivating ends
    /// every session.
    pub async fn set_user_active(&self, id: UserId, active: bool) -> StoreResult<bool> {
        let n = self.execute(
                "UPDATE users SET is_active = ?2, session_epoch = session_epoch + (?2 = 0), updated_at = ?3
                 WHERE id = ?1",
                libsql::params![id, active as i64, crate::ids::now()],
            )
            .await?;
        Ok(n == 1)
    }

    /// The user with whether the session `session_id` (a refresh family) was ended: what every
    /// authenticated request checks, in one round trip.
    pub async fn user_with_session(
        &self,
        id: UserId,
        session_id: &str,
    ) -> StoreResult<Option<(User, bool)>> {
        let rows = self.query(
                &format!(
                    "SELECT {USER_COLUMNS}, EXISTS (
                         SELECT 1 FROM refresh_tokens WHERE family_id = ?2 AND revoked_at IS NOT NULL
                     ) FROM users WHERE id = ?1"
                ),
                libsql::params![id, session_id],
            )
            .await?;
        first(rows, |row| {
            Ok((
                user_from_row(row)?,
                col(row, 10, "refresh_tokens.revoked_at")?,
            ))
        })
    }

    /// "Log out everywhere": the epoch moves on (every access and refresh token dies) and every
    /// refresh token is revoked, in one transaction.
    pub async fn end_all_sessions(&self, id: UserId) -> StoreResult<()> {
        let tx = self.transaction("users.end_all_sessions").await?;
        let now = crate::ids::now();
        tx.execute(
            "UPDATE users SET session_epoch = session_epoch + 1, updated_at = ?2 WHERE id = ?1",
            libsql::params![id, now.clone()],
        )
        .await?;
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            libsql::params![id, now],
        )
        .await?;
        tx.execute(
            "DELETE FROM api_keys WHERE user_id = ?1",
            libsql::params![id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

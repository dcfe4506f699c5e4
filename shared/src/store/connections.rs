//! WebSocket connections: who holds each, and their inbound frame rate.

use super::{col, first, Conn, StoreResult};
use crate::ids::UserId;

/// A connection as a frame finds it: its user's session, and the frames counted this second
/// (this one included).
#[derive(Debug, Clone)]
pub struct Connection {
    pub user_id: UserId,
    pub session_id: String,
    pub session_epoch: i64,
    pub frames_this_second: i64,
}

impl Conn {
    /// Stores a connection at `$connect` (a reconnect with the same id takes the row over), and
    /// sweeps rows last seen before `stale_before`, whose `$disconnect` never came.
    pub async fn insert_connection(
        &self,
        id: &str,
        user_id: UserId,
        session_id: &str,
        session_epoch: i64,
        stale_before: &str,
    ) -> StoreResult<()> {
        let now = crate::ids::now();
        self.execute(
            "INSERT INTO ws_connections (id, user_id, session_id, session_epoch, connected_at,
                                         last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (id) DO UPDATE SET user_id = ?2, session_id = ?3, session_epoch = ?4,
                 connected_at = ?5, last_seen_at = ?5, rate_second = 0, rate_count = 0",
            libsql::params![id, user_id, session_id, session_epoch, now],
        )
        .await?;
        self.execute(
            "DELETE FROM ws_connections WHERE last_seen_at < ?1",
            libsql::params![stale_before],
        )
        .await?;
        Ok(())
    }

    /// A frame arrived on connection `id` in Unix second `second`: marks it seen and counts it, in
    /// one statement. `None` for a connection that is not (or no longer) stored.
    pub async fn touch_connection(&self, id: &str, second: i64) -> StoreResult<Option<Connection>> {
        let rows = self
            .query(
                "UPDATE ws_connections SET last_seen_at = ?3,
                     rate_count = CASE WHEN rate_second = ?2 THEN rate_count + 1 ELSE 1 END,
                     rate_second = ?2
                 WHERE id = ?1
                 RETURNING user_id, session_id, session_epoch, rate_count",
                libsql::params![id, second, crate::ids::now()],
            )
            .await?;
        first(rows, |row| {
            Ok(Connection {
                user_id: col(row, 0, "ws_connections.user_id")?,
                session_id: col(row, 1, "ws_connections.session_id")?,
                session_epoch: col(row, 2, "ws_connections.session_epoch")?,
                frames_this_second: col(row, 3, "ws_connections.rate_count")?,
            })
        })
    }

    pub async fn delete_connection(&self, id: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM ws_connections WHERE id = ?1",
            libsql::params![id],
        )
        .await?;
        Ok(())
    }

    /// The user's open connections (tests and the admin's view of them).
    pub async fn connection_count(&self, user_id: UserId) -> StoreResult<i64> {
        let rows = self
            .query(
                "SELECT count(*) FROM ws_connections WHERE user_id = ?1",
                libsql::params![user_id],
            )
            .await?;
        Ok(first(rows, |row| col(row, 0, "count"))?.unwrap_or(0))
    }
}

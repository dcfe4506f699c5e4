//! WebSocket connections: opened with an access token (its session is kept with the connection),
//! checked on every frame (the session still valid, at most so many frames a second), and
//! forgotten when they close or turn out to be gone.

use std::time::Duration;

use crate::{
    accounts::{self, Session},
    auth::tokens::TokenKeys,
    error::{Error, Result},
    store::{Conn, User},
};

/// API Gateway keeps a connection at most two hours: rows not seen for longer are dead.
const STALE_AFTER: Duration = Duration::from_secs(2 * 3600 + 600);

/// `$connect`: the token's user and session, stored with the connection (and rows of connections
/// long dead swept on the way).
pub async fn open(conn: &Conn, keys: &TokenKeys, connection_id: &str, token: &str) -> Result<User> {
    let (user, session) = accounts::authenticate_session(conn, keys, token).await?;
    let stale = time::OffsetDateTime::now_utc() - STALE_AFTER;
    conn.insert_connection(
        connection_id,
        session.user_id,
        &session.id,
        session.epoch,
        &crate::ids::format_time(stale),
    )
    .await?;
    Ok(user)
}

/// A frame on an open connection: the user whose session it still is, counted against
/// `max_frames_per_second` (429 past it). A connection not stored (closed, or never opened here)
/// is 401.
pub async fn frame_user(
    conn: &Conn,
    connection_id: &str,
    max_frames_per_second: u32,
) -> Result<User> {
    let second = time::OffsetDateTime::now_utc().unix_timestamp();
    let connection =
        conn.touch_connection(connection_id, second)
            .await?
            .ok_or(Error::Unauthorized(
                "this connection is not open any more; connect again",
            ))?;
    let session = Session {
        user_id: connection.user_id,
        id: connection.session_id,
        epoch: connection.session_epoch,
    };
    let user = accounts::session_user(conn, &session).await?;
    if connection.frames_this_second > i64::from(max_frames_per_second) {
        return Err(Error::TooManyRequests {
            detail: format!("at most {max_frames_per_second} frames a second per connection"),
            retry_after_secs: 1,
        });
    }
    Ok(user)
}

/// `$disconnect`: the row goes.
pub async fn close(conn: &Conn, connection_id: &str) -> Result<()> {
    conn.delete_connection(connection_id).await?;
    Ok(())
}

/// The connection turned out to be gone (its `$disconnect` may never come): its row goes, and a
/// failure to remove it is only logged (the row goes stale and is swept).
pub async fn forget(
    conn: std::result::Result<Conn, crate::store::StoreError>,
    connection_id: &str,
) {
    let removed = match conn {
        Ok(conn) => conn.delete_connection(connection_id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        tracing::warn!(error = %e, "could not remove a gone websocket connection");
    }
}

//! Sessions: token pairs issued, refreshed, ended, and access tokens checked.

use super::*;

pub(super) const BAD_TOKEN: &str = "the token is invalid or expired";

/// A new session for `user` as it was read: its tokens carry the epoch of that read, so a password
/// change, "log out everywhere" or deactivation that lands meanwhile leaves this session dead.
pub async fn start_session(conn: &Conn, keys: &TokenKeys, user: &User) -> Result<TokenPair> {
    let session_id = crate::ids::new_id();
    let (pair, refresh) = issue_pair(keys, user, &session_id)?;
    conn.insert_refresh_token(&refresh.as_new(user, &session_id))
        .await?;
    Ok(pair)
}

/// Spends a refresh token and returns its successor in the same session, in one transaction.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn refresh(
    conn: &Conn,
    keys: &TokenKeys,
    refresh_token: &str,
) -> Result<(User, TokenPair)> {
    let claims = keys.verify(refresh_token, TokenType::Refresh)?;
    let user = match conn.user_by_id(claims.sub).await? {
        Some(user) if user.is_active && user.session_epoch == claims.sep => user,
        _ => return Err(Error::Unauthorized(BAD_TOKEN)),
    };
    let (pair, successor) = issue_pair(keys, &user, &claims.sid)?;
    match conn
        .rotate_refresh_token(&claims.jti, &successor.as_new(&user, &claims.sid))
        .await?
    {
        RefreshOutcome::Rotated => Ok((user, pair)),
        RefreshOutcome::Reused => {
            tracing::warn!(user_id = %claims.sub, "refresh token reused; its family is revoked");
            Err(Error::Unauthorized(
                "the refresh token has already been used; please log in again",
            ))
        }
        RefreshOutcome::Unknown => Err(Error::Unauthorized(BAD_TOKEN)),
    }
}

/// Ends the session of `refresh_token`, which must belong to `user`: its refresh tokens and its
/// access tokens stop working at once. Logging out twice is fine.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn logout(conn: &Conn, keys: &TokenKeys, user: &User, refresh_token: &str) -> Result<()> {
    let claims = keys.verify(refresh_token, TokenType::Refresh)?;
    if claims.sub != user.id {
        return Err(Error::Unauthorized(
            "the refresh token does not belong to this user",
        ));
    }
    if let Some(family) = conn.refresh_family_of(&claims.jti, user.id).await? {
        conn.revoke_refresh_family(&family).await?;
    }
    Ok(())
}

/// Ends every session of `user`: every access and refresh token and every API key stops working at
/// once.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn logout_everywhere(conn: &Conn, user: &User) -> Result<()> {
    Ok(conn.end_all_sessions(user.id).await?)
}

/// The active user an access token names, if its session is live. The user row is read on every
/// request (with the session's state, in one query), so deactivation, a password change, "log out
/// everywhere" and logging the session out take effect at once, and the role is the stored one,
/// not the token's claim.
pub async fn authenticate(conn: &Conn, keys: &TokenKeys, access_token: &str) -> Result<User> {
    Ok(authenticate_session(conn, keys, access_token).await?.0)
}

/// The session an access token belongs to, as a WebSocket connection keeps it after `$connect`.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: UserId,
    pub id: String,
    pub epoch: i64,
}

/// [`authenticate`], also answering the token's session.
pub async fn authenticate_session(
    conn: &Conn,
    keys: &TokenKeys,
    access_token: &str,
) -> Result<(User, Session)> {
    let claims = keys.verify(access_token, TokenType::Access)?;
    let session = Session {
        user_id: claims.sub,
        id: claims.sid,
        epoch: claims.sep,
    };
    Ok((session_user(conn, &session).await?, session))
}

/// The active user of a session that is still live: what every later frame of a WebSocket
/// connection is checked against (the access token itself was checked once, at `$connect`).
pub async fn session_user(conn: &Conn, session: &Session) -> Result<User> {
    match conn.user_with_session(session.user_id, &session.id).await? {
        Some((user, _)) if !user.is_active => {
            Err(Error::Unauthorized("this account is deactivated"))
        }
        Some((user, ended)) if !ended && user.session_epoch == session.epoch => Ok(user),
        _ => Err(Error::Unauthorized(BAD_TOKEN)),
    }
}

/// A refresh token as issued, before it is stored.
pub(super) struct IssuedRefresh {
    jti: String,
    expires_at: String,
}

impl IssuedRefresh {
    fn as_new<'a>(&'a self, user: &User, session_id: &'a str) -> NewRefreshToken<'a> {
        NewRefreshToken {
            jti: &self.jti,
            user_id: user.id,
            family_id: session_id,
            expires_at: &self.expires_at,
        }
    }
}

pub(super) fn issue_pair(
    keys: &TokenKeys,
    user: &User,
    session_id: &str,
) -> Result<(TokenPair, IssuedRefresh)> {
    let subject = Subject {
        user_id: user.id,
        role: user.role,
        epoch: user.session_epoch,
        session_id,
    };
    let access = keys.issue(subject, TokenType::Access)?;
    let refresh = keys.issue(subject, TokenType::Refresh)?;
    let expires_at = time::OffsetDateTime::UNIX_EPOCH
        + refresh
            .expires_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
    Ok((
        TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            expires_in: keys.access_ttl.as_secs(),
        },
        IssuedRefresh {
            jti: refresh.jti,
            expires_at: crate::ids::format_time(expires_at),
        },
    ))
}

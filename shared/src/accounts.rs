//! Accounts: registration, login, token refresh and logout, profile changes, and turning a bearer
//! token into the current user.
//!
//! Inputs arrive parsed ([`Email`], [`Password`], [`DisplayName`]): a value of these types is valid.

use std::{
    net::IpAddr,
    time::{Duration, UNIX_EPOCH},
};

use time::OffsetDateTime;

use crate::{
    auth::{
        password,
        tokens::{Subject, TokenKeys, TokenType},
    },
    error::{Error, FieldError, Result},
    ids::UserId,
    kinds::Role,
    store::{Conn, FailureScope, NewRefreshToken, NewUser, RefreshOutcome, User, UserChanges},
    text,
};

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;
const DISPLAY_NAME_MAX_CHARS: usize = 100;
const EMAIL_MAX_CHARS: usize = 254;

/// A plausible email address, NFKC-normalised, trimmed and lowercased (the form it is stored and
/// compared in), with no invisible or direction-changing characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The comparison form of any string (login takes unvalidated input: unknown is just unknown).
    pub fn normalize(raw: &str) -> String {
        text::nfkc(raw).trim().to_lowercase()
    }

    pub fn parse(raw: &str) -> std::result::Result<Self, FieldError> {
        let email = Self::normalize(raw);
        let plausible = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
        if !plausible
            || email.chars().any(char::is_whitespace)
            || text::has_hidden_characters(&email)
            || email.chars().count() > EMAIL_MAX_CHARS
        {
            return Err(FieldError::new("email", "must be a valid email address"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`: the display name when none is given.
    fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

/// A new password of acceptable length. Never printed.
pub struct Password(String);

impl Password {
    /// `field` names the request field it came from (`password`, `new_password`).
    pub fn parse(field: &str, raw: String) -> std::result::Result<Self, FieldError> {
        let n = raw.chars().count();
        if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) {
            return Err(FieldError::new(
                field,
                format!("must be between {PASSWORD_MIN_CHARS} and {PASSWORD_MAX_CHARS} characters"),
            ));
        }
        Ok(Password(raw))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A display name: trimmed, 1 to 100 characters, no control or invisible format characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> std::result::Result<Self, FieldError> {
        let name = raw.trim();
        if name.is_empty()
            || name.chars().count() > DISPLAY_NAME_MAX_CHARS
            || text::has_hidden_characters(name)
        {
            return Err(FieldError::new(
                "display_name",
                format!("must be 1 to {DISPLAY_NAME_MAX_CHARS} printable characters"),
            ));
        }
        Ok(DisplayName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub display_name: Option<DisplayName>,
}

#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub display_name: Option<DisplayName>,
    pub password: Option<PasswordChange>,
}

/// A password change needs the current password.
#[derive(Debug)]
pub struct PasswordChange {
    pub current: String,
    pub new: Password,
}

/// A fresh access/refresh pair.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Creates the account and logs it in. It is an admin only if its email is `bootstrap_admin` and no
/// admin exists yet: the setting names the first admin, it never mints another one later.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn register(
    conn: &Conn,
    keys: &TokenKeys,
    bootstrap_admin: Option<&str>,
    input: Registration,
) -> Result<(User, TokenPair)> {
    let role = match bootstrap_admin.map(Email::normalize) {
        Some(admin) if admin == input.email.as_str() && !conn.admin_exists().await? => Role::Admin,
        _ => Role::User,
    };
    let display_name = match &input.display_name {
        Some(name) => name.as_str(),
        None => input.email.local_part(),
    };
    let password_hash = password::hash(input.password.0).await?;
    let user = conn
        .insert_user(NewUser {
            email: input.email.as_str(),
            password_hash: &password_hash,
            display_name,
            role,
        })
        .await
        .map_err(|e| match e.is_unique("users.email") {
            true => Error::Taken(FieldError::new(
                "email",
                "an account with this email already exists",
            )),
            false => e.into(),
        })?;
    let pair = start_session(conn, keys, &user).await?;
    Ok((user, pair))
}

/// One answer for unknown email, wrong password and deactivated account, so the endpoint reveals
/// nothing about which accounts exist.
const BAD_CREDENTIALS: &str = "the email or password is incorrect";
const BAD_TOKEN: &str = "the token is invalid or expired";

/// How many failed password checks an account and a client IP get per window before further
/// attempts answer 429 (without running argon2) until the window passes.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_account: u32,
    pub per_ip: u32,
    pub window: Duration,
}

/// Who is checking a password: the account's email as given, and the client's IP (API Gateway's
/// source IP; never a header the client could set), when known.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub email: &'a str,
    pub ip: Option<IpAddr>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn login(
    conn: &Conn,
    keys: &TokenKeys,
    limits: LoginLimits,
    attempt: Attempt<'_>,
    password: String,
) -> Result<(User, TokenPair)> {
    let user = verify_credentials(conn, limits, attempt, password).await?;
    let pair = start_session(conn, keys, &user).await?;
    Ok((user, pair))
}

/// The active user with this email and password; one 401 for every way of being wrong, and 429
/// once the account or the client has failed too often in the window.
pub async fn verify_credentials(
    conn: &Conn,
    limits: LoginLimits,
    attempt: Attempt<'_>,
    password: String,
) -> Result<User> {
    let email = Email::normalize(attempt.email);
    let guard = FailureGuard::check(conn, limits, &email, attempt.ip).await?;
    let user = match conn.user_by_email(&email).await? {
        None => {
            password::verify_dummy(password).await?;
            None
        }
        Some(user) => password::verify(password, user.password_hash.clone())
            .await?
            .then_some(user),
    };
    match user {
        Some(user) if user.is_active => {
            guard.succeeded(conn).await?;
            Ok(user)
        }
        _ => {
            guard.failed(conn).await?;
            Err(Error::Unauthorized(BAD_CREDENTIALS))
        }
    }
}

/// The failure counters one password check is subject to.
struct FailureGuard<'a> {
    limits: LoginLimits,
    account: &'a str,
    ip: Option<String>,
    now: OffsetDateTime,
    /// Whether the account has failures in the current window (a success then clears them).
    account_failed: bool,
}

impl<'a> FailureGuard<'a> {
    /// 429 with the seconds left in the window when the account or the IP is over its limit.
    async fn check(
        conn: &Conn,
        limits: LoginLimits,
        account: &'a str,
        ip: Option<IpAddr>,
    ) -> Result<FailureGuard<'a>> {
        let mut guard = FailureGuard {
            limits,
            account,
            ip: ip.map(|ip| ip.to_string()),
            now: OffsetDateTime::now_utc(),
            account_failed: false,
        };
        let cutoff = guard.cutoff();
        let mut scopes = vec![(FailureScope::Account, account, limits.per_account)];
        if let Some(ip) = &guard.ip {
            scopes.push((FailureScope::Ip, ip.as_str(), limits.per_ip));
        }
        for (scope, key, limit) in scopes {
            let Some((failures, started)) = conn.login_failures(scope, key, &cutoff).await? else {
                continue;
            };
            guard.account_failed |= scope == FailureScope::Account;
            if failures >= limit as i64 {
                let ends = crate::ids::parse_time(&started).unwrap_or(guard.now) + limits.window;
                let wait = (ends - guard.now).whole_seconds().max(1) as u64;
                tracing::warn!(?scope, failures, "too many failed password checks");
                return Err(Error::TooManyRequests {
                    detail: "too many failed attempts; try again later".into(),
                    retry_after_secs: wait,
                });
            }
        }
        Ok(guard)
    }

    /// A success resets the account's counter; a login with no failures to reset writes nothing.
    async fn succeeded(&self, conn: &Conn) -> Result<()> {
        if self.account_failed {
            conn.clear_login_failures(FailureScope::Account, self.account)
                .await?;
        }
        Ok(())
    }

    fn cutoff(&self) -> String {
        crate::ids::format_time(self.now - self.limits.window)
    }

    async fn failed(&self, conn: &Conn) -> Result<()> {
        let (now, cutoff) = (crate::ids::format_time(self.now), self.cutoff());
        conn.count_login_failure(FailureScope::Account, self.account, &now, &cutoff)
            .await?;
        if let Some(ip) = &self.ip {
            conn.count_login_failure(FailureScope::Ip, ip, &now, &cutoff)
                .await?;
        }
        Ok(())
    }
}

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

/// Ends every session of `user`: every access and refresh token stops working at once.
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

/// Applies a profile change. A password change needs the current password and logs the user out of
/// every session, this one included (the epoch moves on and every refresh token is revoked).
/// A wrong `current_password` counts as a failed password check (see [`LoginLimits`]).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn update_profile(
    conn: &Conn,
    limits: LoginLimits,
    ip: Option<IpAddr>,
    user: &User,
    changes: ProfileChanges,
) -> Result<User> {
    let password_hash = match changes.password {
        Some(change) => {
            let guard = FailureGuard::check(conn, limits, &user.email, ip).await?;
            if !password::verify(change.current, user.password_hash.clone()).await? {
                guard.failed(conn).await?;
                return Err(Error::invalid("current_password", "is incorrect"));
            }
            Some(password::hash(change.new.0).await?)
        }
        None => None,
    };
    let updated = conn
        .update_user(
            user.id,
            UserChanges {
                display_name: changes.display_name.as_ref().map(DisplayName::as_str),
                password_hash: password_hash.as_deref(),
            },
        )
        .await?
        .ok_or(Error::NotFound)?;
    if password_hash.is_some() {
        conn.revoke_user_refresh_tokens(user.id).await?;
    }
    Ok(updated)
}

/// A refresh token as issued, before it is stored.
struct IssuedRefresh {
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

fn issue_pair(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "ada@.com",
            "ada@example.",
            "a b@x.io",
            "a@b@c.io",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        // Lookalikes fold to one account; invisible characters are refused.
        assert_eq!(
            Email::parse("ａｄａ@example.com").unwrap().as_str(),
            "ada@example.com"
        );
        for hidden in [
            "ad\u{200B}a@example.com",
            "ada@exam\u{202E}ple.com",
            "\u{FEFF}ada@example.com",
        ] {
            assert!(Email::parse(hidden).is_err(), "{hidden:?}");
        }
    }

    #[test]
    fn passwords_are_8_to_128_characters_and_never_printed() {
        assert!(Password::parse("password", "1234567".into()).is_err());
        assert!(Password::parse("password", "12345678".into()).is_ok());
        assert!(Password::parse("password", "é".repeat(128)).is_ok());
        let err = Password::parse("new_password", "x".repeat(129)).unwrap_err();
        assert_eq!(err.field, "new_password");
        let p = Password::parse("password", "secret-secret".into()).unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn display_names_are_trimmed_printable_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada ").unwrap().as_str(), "Ada");
        for bad in [
            "",
            "   ",
            "a\u{7}b",
            "Ada\u{202E}evil",
            "A\u{200D}da",
            &"n".repeat(101),
        ] {
            assert_eq!(DisplayName::parse(bad).unwrap_err().field, "display_name");
        }
    }
}

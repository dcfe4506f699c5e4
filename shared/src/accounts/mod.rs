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

mod login;
mod sessions;
pub use login::*;
pub use sessions::*;

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
    /// What the first admin presents (see [`Bootstrap`]).
    pub bootstrap_token: Option<String>,
}

/// Who becomes the first admin: the account registered with `email` while no admin exists, when it
/// presents `token`. Where `needs_token` (Lambda: an email alone proves nothing) and no token is
/// set, nobody does. While no admin exists, registering that email with a missing or wrong token
/// is refused (422 on `bootstrap_token`, nothing stored), so the email is never taken by a plain
/// account.
#[derive(Clone, Copy, Default)]
pub struct Bootstrap<'a> {
    pub email: Option<&'a str>,
    pub token: Option<&'a crate::config::SecretRef>,
    pub needs_token: bool,
}

impl Bootstrap<'_> {
    async fn makes_admin(&self, conn: &Conn, input: &Registration) -> Result<bool> {
        let Some(email) = self.email.map(Email::normalize) else {
            return Ok(false);
        };
        if email != input.email.as_str() || conn.admin_exists().await? {
            return Ok(false);
        }
        let refused = |why: &str| Err(Error::invalid("bootstrap_token", why.to_string()));
        match (self.token, &input.bootstrap_token) {
            (Some(expected), Some(presented)) => {
                let expected = expected
                    .read()
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                if constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
                    Ok(true)
                } else {
                    refused("is incorrect")
                }
            }
            (Some(_), None) => refused("is required to register the first admin"),
            (None, _) if self.needs_token => {
                refused("the first admin needs BOOTSTRAP_ADMIN_TOKEN set on this deployment")
            }
            (None, _) => Ok(true),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    bootstrap: Bootstrap<'_>,
    input: Registration,
) -> Result<(User, TokenPair)> {
    let role = match bootstrap.makes_admin(conn, &input).await? {
        true => Role::Admin,
        false => Role::User,
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

/// Applies a profile change. A password change needs the current password and logs the user out of
/// every session, this one included (the epoch moves on, every refresh token is revoked and every
/// API key deleted).
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
        conn.revoke_user_credentials(user.id).await?;
    }
    Ok(updated)
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

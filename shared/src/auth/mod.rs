//! Accounts: registration, login, token refresh and logout, profile changes, and the extractor that
//! turns a bearer token into the current user.

mod extract;
pub mod password;
pub mod tokens;

use std::time::UNIX_EPOCH;

pub use extract::CurrentUser;
use tokens::TokenType;

use crate::{
    error::{Error, FieldError, Result},
    store::{NewUser, RefreshOutcome, Role, StoreError, User, UserChanges},
    AppState,
};

/// A fresh access/refresh pair.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

pub struct ProfileChanges {
    pub display_name: Option<String>,
    pub current_password: Option<String>,
    pub new_password: Option<String>,
}

/// Emails compare trimmed and lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;
const DISPLAY_NAME_MAX_CHARS: usize = 100;
const EMAIL_MAX_CHARS: usize = 254;

fn check_email(email: &str, errors: &mut Vec<FieldError>) {
    let plausible = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
    });
    if !plausible
        || email.chars().any(char::is_whitespace)
        || email.chars().count() > EMAIL_MAX_CHARS
    {
        errors.push(FieldError::new("email", "must be a valid email address"));
    }
}

fn check_password(field: &str, password: &str, errors: &mut Vec<FieldError>) {
    let n = password.chars().count();
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) {
        errors.push(FieldError::new(
            field,
            format!("must be between {PASSWORD_MIN_CHARS} and {PASSWORD_MAX_CHARS} characters"),
        ));
    }
}

fn clean_display_name(name: &str, errors: &mut Vec<FieldError>) -> String {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > DISPLAY_NAME_MAX_CHARS
        || name.chars().any(char::is_control)
    {
        errors.push(FieldError::new(
            "display_name",
            format!("must be 1 to {DISPLAY_NAME_MAX_CHARS} printable characters"),
        ));
    }
    name.to_string()
}

pub async fn register(state: &AppState, input: Registration) -> Result<(User, TokenPair)> {
    let email = normalize_email(&input.email);
    let mut errors = Vec::new();
    check_email(&email, &mut errors);
    check_password("password", &input.password, &mut errors);
    let display_name = match &input.display_name {
        Some(name) => clean_display_name(name, &mut errors),
        None => email.split('@').next().unwrap_or_default().to_string(),
    };
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let role = if state.config().bootstrap_admin_email.as_deref() == Some(email.as_str()) {
        Role::Admin
    } else {
        Role::User
    };
    let password_hash = password::hash(input.password).await?;
    let conn = state.store().conn().await?;
    let user = conn
        .insert_user(NewUser {
            email: &email,
            password_hash: &password_hash,
            display_name: &display_name,
            role,
        })
        .await
        .map_err(|e| match e {
            StoreError::Unique(_) => Error::Conflict("an account with this email already exists"),
            other => other.into(),
        })?;
    let pair = issue_pair(state, &conn, &user, None).await?;
    Ok((user, pair))
}

/// One answer for unknown email, wrong password and deactivated account, so the endpoint reveals
/// nothing about which accounts exist.
const BAD_CREDENTIALS: &str = "the email or password is incorrect";

pub async fn login(state: &AppState, email: &str, password: String) -> Result<(User, TokenPair)> {
    let conn = state.store().conn().await?;
    let Some(user) = conn.user_by_email(&normalize_email(email)).await? else {
        password::verify_dummy(password).await?;
        return Err(Error::Unauthorized(BAD_CREDENTIALS));
    };
    if !password::verify(password, user.password_hash.clone()).await? || !user.is_active {
        return Err(Error::Unauthorized(BAD_CREDENTIALS));
    }
    let pair = issue_pair(state, &conn, &user, None).await?;
    Ok((user, pair))
}

/// Spends a refresh token and returns its successor in the same family.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<(User, TokenPair)> {
    let claims = state.tokens().verify(refresh_token, TokenType::Refresh)?;
    let conn = state.store().conn().await?;
    let family_id = match conn.spend_refresh_token(&claims.jti).await? {
        RefreshOutcome::Rotated { user_id, family_id } if user_id == claims.sub => family_id,
        RefreshOutcome::Reused => {
            tracing::warn!(user_id = %claims.sub, "refresh token reused; its family is revoked");
            return Err(Error::Unauthorized(
                "the refresh token has already been used; please log in again",
            ));
        }
        _ => return Err(Error::Unauthorized("the token is invalid or expired")),
    };
    let user = match conn.user_by_id(&claims.sub).await? {
        Some(user) if user.is_active => user,
        _ => return Err(Error::Unauthorized("the token is invalid or expired")),
    };
    let pair = issue_pair(state, &conn, &user, Some(&family_id)).await?;
    Ok((user, pair))
}

/// Revokes the family of `refresh_token`, which must belong to `user`. Logging out twice is fine.
pub async fn logout(state: &AppState, user: &User, refresh_token: &str) -> Result<()> {
    let claims = state.tokens().verify(refresh_token, TokenType::Refresh)?;
    if claims.sub != user.id {
        return Err(Error::Unauthorized(
            "the refresh token does not belong to this user",
        ));
    }
    let conn = state.store().conn().await?;
    if let Some(family) = conn.refresh_family_of(&claims.jti, &user.id).await? {
        conn.revoke_refresh_family(&family).await?;
    }
    Ok(())
}

/// Applies a profile change. A password change needs the current password and logs the user out of
/// every other session (all refresh tokens are revoked; access tokens lapse within their lifetime).
pub async fn update_profile(
    state: &AppState,
    user: &User,
    changes: ProfileChanges,
) -> Result<User> {
    let mut errors = Vec::new();
    let display_name = changes
        .display_name
        .as_deref()
        .map(|n| clean_display_name(n, &mut errors));
    if let Some(new) = &changes.new_password {
        check_password("new_password", new, &mut errors);
        if changes.current_password.is_none() {
            errors.push(FieldError::new(
                "current_password",
                "is required to change the password",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let password_hash = match (changes.new_password, changes.current_password) {
        (Some(new), Some(current)) => {
            if !password::verify(current, user.password_hash.clone()).await? {
                return Err(Error::invalid("current_password", "is incorrect"));
            }
            Some(password::hash(new).await?)
        }
        _ => None,
    };
    let conn = state.store().conn().await?;
    let updated = conn
        .update_user(
            &user.id,
            UserChanges {
                display_name: display_name.as_deref(),
                password_hash: password_hash.as_deref(),
            },
        )
        .await?
        .ok_or(Error::NotFound)?;
    if password_hash.is_some() {
        conn.revoke_user_refresh_tokens(&user.id).await?;
    }
    Ok(updated)
}

async fn issue_pair(
    state: &AppState,
    conn: &crate::store::Conn,
    user: &User,
    family: Option<&str>,
) -> Result<TokenPair> {
    let keys = state.tokens();
    let access = keys.issue(&user.id, user.role, TokenType::Access)?;
    let refresh = keys.issue(&user.id, user.role, TokenType::Refresh)?;
    let family_id = family.map(str::to_owned).unwrap_or_else(crate::ids::new_id);
    let expires_at = time::OffsetDateTime::UNIX_EPOCH
        + refresh
            .expires_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
    conn.insert_refresh_token(
        &refresh.jti,
        &user.id,
        &family_id,
        &crate::ids::format_time(expires_at),
    )
    .await?;
    Ok(TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        expires_in: keys.access_ttl.as_secs(),
    })
}

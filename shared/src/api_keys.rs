//! Personal API keys: `cc_` + 32 random bytes (base64url), shown once at creation and stored as a
//! SHA-256 (keys are high-entropy, so a fast hash is right; a password hash would only slow every
//! call). A call finds the key by its first 12 characters in one indexed read and compares the
//! hash in constant time. Deleting a key, deactivating its owner or its expiry stop it at once.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{
    error::{Error, FieldError, FieldErrors, Result},
    ids::{ApiKeyId, UserId},
    pagination::{Page, Paginated},
    store::{ApiKey, Conn, NewApiKey, User},
};

pub const KEY_PREFIX: &str = "cc_";
/// Characters of a key kept in clear, to find it and to show which one it is.
const LOOKUP_CHARS: usize = 12;
/// `cc_` and 32 bytes in unpadded base64url.
const KEY_CHARS: usize = 3 + 43;
const MAX_NAME_CHARS: usize = 100;
/// `last_used_at` is written at most this often per key (a busy key costs no write per call).
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// A key to create: its name and optional expiry, checked.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub expires_at: Option<OffsetDateTime>,
}

impl NewKey {
    pub fn parse(name: &str, expires_at: Option<&str>) -> Result<NewKey> {
        let mut errors = FieldErrors::default();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            errors.push(FieldError::new(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let expires_at = expires_at.and_then(|raw| {
            errors.take(
                crate::ids::parse_time(raw)
                    .filter(|t| *t > OffsetDateTime::now_utc())
                    .ok_or_else(|| {
                        FieldError::new("expires_at", "must be an RFC 3339 time in the future")
                    }),
            )
        });
        errors.finish()?;
        Ok(NewKey {
            name: name.to_string(),
            expires_at,
        })
    }
}

fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates a key: the stored row, and the key itself (never stored, never shown again).
pub async fn create(
    conn: &Conn,
    user_id: UserId,
    new: &NewKey,
    max_keys: u64,
) -> Result<(ApiKey, String)> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(e.to_string()))?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let expires_at = new.expires_at.map(crate::ids::format_time);
    let row = conn
        .insert_api_key(
            NewApiKey {
                user_id,
                name: &new.name,
                prefix: &key[..LOOKUP_CHARS],
                key_hash: &hash(&key),
                expires_at: expires_at.as_deref(),
            },
            max_keys,
        )
        .await?;
    Ok((row, key))
}

/// Whether a bearer credential is shaped like an API key (rather than a JWT).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

/// The active owner of a live key; every failure is the same 401 but expiry, which says so.
pub async fn authenticate(conn: &Conn, key: &str) -> Result<User> {
    const BAD_KEY: &str = "the API key is not valid";
    if key.len() != KEY_CHARS || !is_api_key(key) || !key.is_ascii() {
        return Err(Error::Unauthorized(BAD_KEY));
    }
    let Some(found) = conn.api_key_owner(&key[..LOOKUP_CHARS]).await? else {
        return Err(Error::Unauthorized(BAD_KEY));
    };
    if !constant_time_eq(hash(key).as_bytes(), found.key_hash.as_bytes()) {
        return Err(Error::Unauthorized(BAD_KEY));
    }
    let now = OffsetDateTime::now_utc();
    if found
        .expires_at
        .as_deref()
        .and_then(crate::ids::parse_time)
        .is_some_and(|t| t <= now)
    {
        return Err(Error::Unauthorized("the API key has expired"));
    }
    if !found.user.is_active {
        return Err(Error::Unauthorized("this account is deactivated"));
    }
    let stale = found
        .last_used_at
        .as_deref()
        .and_then(crate::ids::parse_time)
        .is_none_or(|t| now - t >= TOUCH_EVERY);
    if stale {
        conn.touch_api_key(found.key_id).await?;
    }
    Ok(found.user)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn list(
    conn: &Conn,
    user_id: UserId,
    page: Page<(String, String)>,
) -> Result<Paginated<ApiKey>> {
    let rows = conn.list_api_keys(user_id, page.after, page.limit).await?;
    Ok(Paginated::from_rows(rows, page.limit, |k| {
        (k.created_at.clone(), k.id.to_string())
    }))
}

pub async fn delete(conn: &Conn, user_id: UserId, id: ApiKeyId) -> Result<()> {
    if conn.delete_api_key(id, user_id).await? {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_expiry_are_checked() {
        assert!(NewKey::parse("ci", None).is_ok());
        assert!(NewKey::parse("ci", Some("2999-01-01T00:00:00Z")).is_ok());
        for (name, expires) in [
            ("", None),
            (" ", None),
            ("ci", Some("yesterday")),
            ("ci", Some("2001-01-01T00:00:00Z")),
        ] {
            assert!(
                NewKey::parse(name, expires).is_err(),
                "{name:?} {expires:?}"
            );
        }
        assert!(
            constant_time_eq(b"abc", b"abc")
                && !constant_time_eq(b"abc", b"abd")
                && !constant_time_eq(b"ab", b"abc")
        );
    }
}

//! JWT access and refresh tokens, HS256 only.
//!
//! The algorithm is pinned on both sides (a token whose header says `none` or `RS256` is refused
//! before its signature is looked at), and the `typ` claim keeps the two kinds apart: a refresh
//! token is never accepted where an access token is expected, nor the reverse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    ids::UserId,
    kinds::Role,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub typ: TokenType,
    /// The user's session epoch when the token was issued: a token of an older epoch is dead.
    pub sep: i64,
    /// The session (refresh-token family) the token belongs to: logging it out ends its access
    /// tokens too.
    pub sid: String,
}

/// Who a token is for, and which session of theirs.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: UserId,
    pub role: Role,
    pub epoch: i64,
    pub session_id: &'a str,
}

pub struct Issued {
    pub token: String,
    pub jti: String,
    pub expires_at: SystemTime,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Expiry is exact: our own clocks issue and check the tokens.
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue(&self, subject: Subject<'_>, typ: TokenType) -> Result<Issued> {
        let now = SystemTime::now();
        let ttl = match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let expires_at = now + ttl;
        let claims = Claims {
            sub: subject.user_id,
            role: subject.role,
            iat: unix(now),
            exp: unix(expires_at),
            jti: crate::ids::new_id(),
            typ,
            sep: subject.epoch,
            sid: subject.session_id.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))?;
        Ok(Issued {
            token,
            jti: claims.jti,
            expires_at,
        })
    }

    /// Checks signature, algorithm, expiry and kind. Every failure reads the same to the client.
    pub fn verify(&self, token: &str, typ: TokenType) -> Result<Claims> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::Unauthorized("the token is invalid or expired"))?
            .claims;
        if claims.typ != typ {
            return Err(Error::Unauthorized("the token is invalid or expired"));
        }
        Ok(claims)
    }
}

/// What a local upload URL allows: one PUT of exactly `size` bytes of `content_type` to one
/// pending attachment of one user, until `exp`. The URL carries it signed, so the PUT needs no
/// bearer header (as a presigned S3 URL needs none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadGrant {
    pub sub: UserId,
    pub aid: crate::ids::AttachmentId,
    pub size: u64,
    pub content_type: String,
    pub exp: u64,
    /// Always `upload`: neither an access nor a refresh token can pass for a grant, nor the reverse
    /// (their claims differ in shape and `typ`).
    typ: String,
}

const UPLOAD_TYP: &str = "upload";

impl UploadGrant {
    pub fn new(
        sub: UserId,
        aid: crate::ids::AttachmentId,
        size: u64,
        content_type: &str,
        expires_at: SystemTime,
    ) -> Self {
        UploadGrant {
            sub,
            aid,
            size,
            content_type: content_type.to_string(),
            exp: unix(expires_at),
            typ: UPLOAD_TYP.to_string(),
        }
    }
}

impl TokenKeys {
    pub fn sign_upload(&self, grant: &UploadGrant) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), grant, &self.encoding)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))
    }

    /// The grant, if the signature, algorithm, expiry and kind hold.
    pub fn verify_upload(&self, token: &str) -> Result<UploadGrant> {
        let grant = jsonwebtoken::decode::<UploadGrant>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::Unauthorized("the upload URL is invalid or expired"))?
            .claims;
        if grant.typ != UPLOAD_TYP {
            return Err(Error::Unauthorized("the upload URL is invalid or expired"));
        }
        Ok(grant)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(user_id: UserId, role: Role) -> Subject<'static> {
        Subject {
            user_id,
            role,
            epoch: 0,
            session_id: "s",
        }
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &[7u8; 32],
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn kinds_do_not_mix() {
        let k = keys();
        let u1 = UserId::new();
        let access = k.issue(subject(u1, Role::User), TokenType::Access).unwrap();
        let refresh = k
            .issue(subject(u1, Role::User), TokenType::Refresh)
            .unwrap();
        assert_eq!(k.verify(&access.token, TokenType::Access).unwrap().sub, u1);
        assert!(k.verify(&access.token, TokenType::Refresh).is_err());
        assert!(k.verify(&refresh.token, TokenType::Access).is_err());
        assert_eq!(
            k.verify(&refresh.token, TokenType::Refresh).unwrap().jti,
            refresh.jti
        );
    }

    #[test]
    fn other_keys_and_other_algorithms_are_refused() {
        let k = keys();
        let other = TokenKeys::new(
            &[8u8; 32],
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        let u1 = UserId::new();
        let forged = other
            .issue(subject(u1, Role::Admin), TokenType::Access)
            .unwrap();
        assert!(k.verify(&forged.token, TokenType::Access).is_err());

        let claims = k
            .verify(
                &k.issue(subject(u1, Role::User), TokenType::Access)
                    .unwrap()
                    .token,
                TokenType::Access,
            )
            .unwrap();
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(k.verify(&hs512, TokenType::Access).is_err());
    }
}

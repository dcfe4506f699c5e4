//! Secrets kept at rest (tool servers' headers): AES-256-GCM under a key derived with HKDF-SHA256
//! from a deployment secret. A sealed value is `1 | nonce (12 bytes) | ciphertext and tag`; the
//! caller's `context` (the row's id and owner) is the authenticated data, so a sealed value copied
//! into another row, or another user's, does not open.

use aws_lc_rs::{
    aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN},
    hkdf,
};

const VERSION: u8 = 1;
/// A fixed salt: the secret is already random; HKDF's info keeps this key apart from any other
/// derived from the same secret.
const SALT: &[u8] = b"codechat sealed values";
const INFO: &[u8] = b"codechat mcp headers v1";
/// The shortest deployment secret taken (as for the JWT secret).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the sealing secret must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("the sealed value does not open with this key and context")]
    Unopened,
}

/// The key, derived once per process.
pub struct SealingKey(RandomizedNonceKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    pub fn derive(secret: &[u8]) -> Result<Self, SealError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SealError::ShortSecret);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let mut key = [0u8; 32];
        prk.expand(&[INFO], &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| SealError::ShortSecret)?;
        RandomizedNonceKey::new(&AES_256_GCM, &key)
            .map(SealingKey)
            .map_err(|_| SealError::ShortSecret)
    }

    /// `plaintext` sealed for `context`, under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(context), &mut in_out)
            .expect("AES-GCM sealing of an in-memory buffer");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Unopened)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(SealError::Unopened);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unopened)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| SealError::Unopened)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SealingKey::derive(SECRET).unwrap();
        let sealed = key.seal(b"Bearer s3cret", b"server-1|user-1");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            key.open(&sealed, b"server-1|user-1").unwrap(),
            b"Bearer s3cret"
        );
        // Another row, another owner, another key, a changed byte: none opens.
        assert_eq!(
            key.open(&sealed, b"server-2|user-1"),
            Err(SealError::Unopened)
        );
        assert_eq!(
            key.open(&sealed, b"server-1|user-2"),
            Err(SealError::Unopened)
        );
        let other = SealingKey::derive(b"another secret of at least 32 bytes!").unwrap();
        assert_eq!(
            other.open(&sealed, b"server-1|user-1"),
            Err(SealError::Unopened)
        );
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert_eq!(
            key.open(&bent, b"server-1|user-1"),
            Err(SealError::Unopened)
        );
        assert_eq!(key.open(&[], b""), Err(SealError::Unopened));
        // A fresh nonce each time: the same plaintext seals differently.
        assert_ne!(sealed, key.seal(b"Bearer s3cret", b"server-1|user-1"));
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(matches!(
            SealingKey::derive(b"too short"),
            Err(SealError::ShortSecret)
        ));
    }
}

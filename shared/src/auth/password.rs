//! argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane), in PHC string format.
//!
//! Hashing is CPU-bound for tens of milliseconds and needs 19 MiB of working memory. It runs on one
//! dedicated thread that keeps that memory and reuses it: allocating it per hash made the allocator
//! hold on to every copy (measured: 220 MB peak RSS after 30 hashes, against ~30 MB reusing one
//! buffer), which a 128 MB Lambda cannot afford. A Lambda instance serves one request at a time, so
//! one hashing thread costs no throughput there.

use std::{
    cell::RefCell,
    sync::{mpsc, Mutex, OnceLock},
};

use argon2::{
    password_hash::{Output, PasswordHash, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};

use crate::error::{Error, Result};

const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

thread_local! {
    /// The hashing thread's working memory, reused by every hash.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2id with `params` over the thread's reused memory.
fn argon2(
    params: Params,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<()> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        blocks.resize(params.block_count(), Block::default());
        Argon2::new(Algorithm::Argon2id, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the hashing thread.
async fn on_hashing_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("argon2".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .expect("spawn the hashing thread");
        Mutex::new(tx)
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    queue
        .lock()
        .map_err(|_| Error::Internal("the hashing queue is poisoned".into()))?
        .send(job)
        .map_err(|_| Error::Internal("the hashing thread is gone".into()))?;
    result
        .await
        .map_err(|_| Error::Internal("the hashing job was dropped".into()))
}

pub async fn hash(password: String) -> Result<String> {
    on_hashing_thread(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::Internal(format!("no randomness for a salt: {e}")))?;
        let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let mut out = [0u8; OUTPUT_LEN];
        argon2(params, Version::V0x13, password.as_bytes(), &salt, &mut out)?;
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| Error::Internal(format!("salt encoding failed: {e}")))?;
        let out =
            Output::new(&out).map_err(|e| Error::Internal(format!("hash encoding failed: {e}")))?;
        Ok(format!(
            "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${out}",
            salt.as_str()
        ))
    })
    .await?
}

/// Verifies against the parameters stored in the hash, so raising them later keeps old hashes valid.
pub async fn verify(password: String, hash: String) -> Result<bool> {
    on_hashing_thread(move || {
        let malformed = |e: &dyn std::fmt::Display| {
            Error::Internal(format!("stored password hash is malformed: {e}"))
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| malformed(&e))?;
        if Algorithm::try_from(parsed.algorithm).map_err(|e| malformed(&e))? != Algorithm::Argon2id
        {
            return Err(malformed(&"not argon2id"));
        }
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| malformed(&e))?,
            None => Version::V0x13,
        };
        let params = Params::try_from(&parsed).map_err(|e| malformed(&e))?;
        let expected = parsed.hash.ok_or_else(|| malformed(&"no hash"))?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed
            .salt
            .ok_or_else(|| malformed(&"no salt"))?
            .decode_b64(&mut salt_buf)
            .map_err(|e| malformed(&e))?;
        let mut out = vec![0u8; expected.len()];
        argon2(params, version, password.as_bytes(), salt, &mut out)?;
        // Output's equality is constant-time.
        Ok(Output::new(&out).map_err(|e| malformed(&e))? == expected)
    })
    .await?
}

/// What a login for an unknown email verifies against, so it costs one verification exactly like a
/// wrong password and response times do not reveal which emails have accounts. An argon2id hash at
/// the current parameters of a password nobody has, embedded rather than computed: computing it on
/// first use made the first unknown-email login of each process cost a hash *and* a verification.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$jeqd/YlKEtoYs+ol0Vtq0A$7U6coem3AO0jm2u7nJtkG7IG3KkW9aWECxzzU5uoF0Q";

pub async fn verify_dummy(password: String) -> Result<()> {
    verify(password, DUMMY_HASH.into()).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_dummy_hash_uses_the_current_parameters() {
        let fresh = super::hash("x".into()).await.unwrap();
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(super::DUMMY_HASH), params(&fresh));
        assert!(
            super::verify("not-a-real-password".into(), super::DUMMY_HASH.into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = super::hash("correct horse".into()).await.unwrap();
        let b = super::hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(super::verify("correct horse".into(), a.clone())
            .await
            .unwrap());
        assert!(!super::verify("wrong horse".into(), a).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_reference_implementation() {
        use argon2::{PasswordHasher, PasswordVerifier};
        // Ours verifies with argon2's own verifier, and the reverse.
        let ours = super::hash("interop pass".into()).await.unwrap();
        let parsed = argon2::PasswordHash::new(&ours).unwrap();
        assert!(argon2::Argon2::default()
            .verify_password(b"interop pass", &parsed)
            .is_ok());
        let salt = argon2::password_hash::SaltString::encode_b64(&[3u8; 16]).unwrap();
        let theirs = argon2::Argon2::default()
            .hash_password(b"interop pass", &salt)
            .unwrap()
            .to_string();
        assert!(super::verify("interop pass".into(), theirs.clone())
            .await
            .unwrap());
        assert!(!super::verify("other".into(), theirs).await.unwrap());
    }
}

//! argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing is CPU-bound for tens of milliseconds and needs 19 MiB, so it runs on one dedicated thread
//! rather than on tokio's blocking pool: each pool thread would get its own malloc arena and keep its
//! own 19 MiB, and a 128 MB Lambda would grow by that much per thread (measured: 220 MB peak RSS after
//! 30 hashes on the pool, against ~30 MB on one thread). A Lambda instance serves one request at a
//! time, so one hashing thread costs no throughput there.

use std::sync::{mpsc, Mutex, OnceLock};

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};

use crate::error::{Error, Result};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
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
        let mut salt_bytes = [0u8; 16];
        getrandom::fill(&mut salt_bytes)
            .map_err(|e| Error::Internal(format!("no randomness for a salt: {e}")))?;
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| Error::Internal(format!("salt encoding failed: {e}")))?;
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await?
}

/// Verifies against the parameters stored in the hash, so raising them later keeps old hashes valid.
pub async fn verify(password: String, hash: String) -> Result<bool> {
    on_hashing_thread(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| Error::Internal(format!("stored password hash is malformed: {e}")))?;
        Ok(hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Internal(format!("password verification task failed: {e}")))?
}

/// A login for an unknown email verifies against this hash, so it costs as much as a wrong password
/// and response times do not reveal which emails have accounts.
pub async fn verify_dummy(password: String) -> Result<()> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = match DUMMY.get() {
        Some(h) => h.clone(),
        None => {
            let h = hash("not-a-real-password".into()).await?;
            DUMMY.get_or_init(|| h).clone()
        }
    };
    verify(password, hash).await.map(|_| ())
}

#[cfg(test)]
mod tests {
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
}

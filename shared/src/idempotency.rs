//! `Idempotency-Key`: a retried request replays the first answer instead of running twice.
//!
//! [`begin`] decides what a request with a key does: [`Begin::Start`] (run it, holding a [`Claim`]),
//! [`Begin::Replay`] (answer with what the first run recorded) or [`Begin::InProgress`] (the first
//! run is still going: 409). The same key with another request is a 422. A claim is a lease: if its
//! run dies without recording an answer, the key is taken over once the lease lapses rather than
//! answering 409 forever. Records expire, and go with the conversation they wrote to.
//!
//! Used by chat turns today; project uploads, agent runs and the WebSocket function reuse it.

use std::time::Duration;

use time::OffsetDateTime;

use crate::{
    error::{Error, FieldError, Result},
    ids::{format_time, ConversationId, UserId},
    store::{Conn, NewClaim},
};

pub const MAX_KEY_CHARS: usize = 255;

/// An `Idempotency-Key` header value: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> std::result::Result<Self, FieldError> {
        let key = raw.trim();
        if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(FieldError::new(
                "Idempotency-Key",
                format!("must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
            ));
        }
        Ok(IdempotencyKey(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a claim holds its key, and how long a record lives.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub lease: Duration,
    pub ttl: Duration,
}

impl From<&crate::config::IdempotencyConfig> for Policy {
    fn from(config: &crate::config::IdempotencyConfig) -> Self {
        Policy {
            lease: config.lease,
            ttl: config.ttl,
        }
    }
}

#[derive(Debug)]
pub enum Begin {
    /// First use (or a takeover of a dead run): run the request and record its answer.
    Start(Claim),
    /// The first run's answer, to send again.
    Replay { status: u16, body: String },
    /// The first run holds the key and its lease is live.
    InProgress,
}

/// The right to run a keyed request. Record its answer with [`Claim::complete`], or [`Claim::release`]
/// it when the request was refused before it changed anything.
#[derive(Debug)]
#[must_use = "a claim holds its key until it is completed, released or its lease lapses"]
pub struct Claim {
    user_id: UserId,
    key: IdempotencyKey,
}

/// Decides what a request carrying `key` does. `request` is its canonical form: the same key with a
/// different request is a 422.
pub async fn begin(
    conn: &Conn,
    policy: Policy,
    user_id: UserId,
    key: IdempotencyKey,
    request: &str,
) -> Result<Begin> {
    begin_at(
        conn,
        policy,
        user_id,
        key,
        request,
        OffsetDateTime::now_utc(),
    )
    .await
}

async fn begin_at(
    conn: &Conn,
    policy: Policy,
    user_id: UserId,
    key: IdempotencyKey,
    request: &str,
    now: OffsetDateTime,
) -> Result<Begin> {
    let now_s = format_time(now);
    let lease_until = format_time(now + policy.lease);
    conn.delete_expired_idempotency_keys(user_id, &now_s)
        .await?;
    let claimed = conn
        .claim_idempotency_key(&NewClaim {
            user_id,
            key: key.as_str(),
            request,
            now: &now_s,
            lease_until: &lease_until,
            expires_at: &format_time(now + policy.ttl),
        })
        .await?;
    if claimed {
        return Ok(Begin::Start(Claim { user_id, key }));
    }
    let Some(record) = conn.idempotency_record(user_id, key.as_str()).await? else {
        // Released between our insert and our read: the caller may simply retry.
        return Ok(Begin::InProgress);
    };
    if record.request != request {
        return Err(Error::invalid(
            "Idempotency-Key",
            "was already used with a different request",
        ));
    }
    if let Some((status, body)) = record.answer {
        return Ok(Begin::Replay { status, body });
    }
    if record.lease_until <= now_s
        && conn
            .take_over_idempotency_key(user_id, key.as_str(), &now_s, &lease_until)
            .await?
    {
        tracing::warn!("an idempotent request's first run died; its key is taken over");
        return Ok(Begin::Start(Claim { user_id, key }));
    }
    Ok(Begin::InProgress)
}

impl Claim {
    /// Ties the record to the conversation the run writes to (deleted with it).
    pub async fn attach(&self, conn: &Conn, conversation_id: ConversationId) -> Result<()> {
        Ok(conn
            .attach_idempotency_key(self.user_id, self.key.as_str(), conversation_id)
            .await?)
    }

    /// Records the answer that retries will get.
    pub async fn complete(self, conn: &Conn, status: u16, body: &str) -> Result<()> {
        Ok(conn
            .record_idempotent_answer(self.user_id, self.key.as_str(), status, body)
            .await?)
    }

    /// Frees the key: the request was refused before anything was stored.
    pub async fn release(self, conn: &Conn) -> Result<()> {
        Ok(conn
            .release_idempotency_key(self.user_id, self.key.as_str())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewConversation;

    const POLICY: Policy = Policy {
        lease: Duration::from_secs(15 * 60),
        ttl: Duration::from_secs(24 * 3600),
    };

    async fn setup() -> (tempfile::TempDir, Conn, UserId) {
        crate::store::test_conn_with_user().await
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert_eq!(key("  abc-1 ").as_str(), "abc-1");
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "   ", "has space", "tab\there", "ünï", &"k".repeat(256)] {
            let err = IdempotencyKey::parse(bad).unwrap_err();
            assert_eq!(err.field, "Idempotency-Key", "{bad}");
        }
    }

    /// `begin` for key `k` at time `t`.
    async fn at(conn: &Conn, user: UserId, request: &str, t: OffsetDateTime) -> Result<Begin> {
        begin_at(conn, POLICY, user, key("k"), request, t).await
    }

    fn claim(b: Begin) -> Claim {
        match b {
            Begin::Start(claim) => claim,
            other => panic!("expected to start, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn replay_in_progress_and_mismatch() {
        let (_dir, conn, user) = setup().await;
        let t0 = OffsetDateTime::now_utc();
        let first = claim(at(&conn, user, "req", t0).await.unwrap());
        let retry = at(&conn, user, "req", t0).await.unwrap();
        assert!(matches!(retry, Begin::InProgress), "{retry:?}");
        let err = at(&conn, user, "other", t0).await.unwrap_err();
        assert!(matches!(err, Error::Validation(ref e) if e[0].field == "Idempotency-Key"));
        first.complete(&conn, 200, "{\"ok\":1}").await.unwrap();
        match at(&conn, user, "req", t0).await.unwrap() {
            Begin::Replay { status, body } => {
                assert_eq!((status, body.as_str()), (200, "{\"ok\":1}"))
            }
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stale_claim_is_taken_over_after_its_lease() {
        let (_dir, conn, user) = setup().await;
        let t0 = OffsetDateTime::now_utc();
        let _dead = claim(at(&conn, user, "req", t0).await.unwrap());
        let before = t0 + POLICY.lease - Duration::from_secs(1);
        let early = at(&conn, user, "req", before).await.unwrap();
        assert!(matches!(early, Begin::InProgress), "{early:?}");
        let after = t0 + POLICY.lease;
        let _takeover = claim(at(&conn, user, "req", after).await.unwrap());
        // The takeover holds a fresh lease: a third attempt right after waits.
        let third = at(&conn, user, "req", after).await.unwrap();
        assert!(matches!(third, Begin::InProgress), "{third:?}");
    }

    #[tokio::test]
    async fn an_expired_record_is_gone() {
        let (_dir, conn, user) = setup().await;
        let t0 = OffsetDateTime::now_utc();
        let first = claim(at(&conn, user, "req", t0).await.unwrap());
        first.complete(&conn, 200, "first").await.unwrap();
        // Even another request may use the key now: the old record no longer exists.
        let _fresh = claim(at(&conn, user, "another", t0 + POLICY.ttl).await.unwrap());
        let record = conn.idempotency_record(user, "k").await.unwrap().unwrap();
        assert_eq!((record.request.as_str(), record.answer), ("another", None));
    }

    #[tokio::test]
    async fn deleting_the_conversation_deletes_its_records() {
        let (_dir, conn, user) = setup().await;
        let conversation = conn
            .create_conversation(NewConversation {
                user_id: user,
                title: "t",
                model: "local/echo",
                agent_id: None,
                project_id: None,
            })
            .await
            .unwrap();
        let first = claim(begin(&conn, POLICY, user, key("k"), "req").await.unwrap());
        first.attach(&conn, conversation.id).await.unwrap();
        first.complete(&conn, 200, "answer").await.unwrap();
        assert!(conn
            .delete_conversation(conversation.id, user)
            .await
            .unwrap());
        assert!(conn.idempotency_record(user, "k").await.unwrap().is_none());
        let _new_turn = claim(begin(&conn, POLICY, user, key("k"), "req").await.unwrap());
    }
}

//! Resuming a streamed answer on any instance: what the client missed after the delta it saw last,
//! from the stored chunks, then the rest as it is stored, until the answer is (or this request's
//! own time runs out: then the client is told to reconnect).

use std::time::Duration;

use super::*;
use crate::store::StreamProgress;

/// How a resume request tails.
#[derive(Debug, Clone, Copy)]
pub struct ResumeSettings {
    /// The longest a request follows a live answer before it tells the client to reconnect.
    pub tail: Duration,
    /// How often it reads the store for more.
    pub poll: Duration,
    /// An answer with nothing stored for this long, and no answer stored, stopped (its turn died).
    pub stale_after: Duration,
}

impl From<&ChatConfig> for ResumeSettings {
    /// An answer with nothing stored for longer than a whole turn may take is given up as stopped:
    /// a turn stores its answer when its budget runs out (10 s more for that write and the
    /// instances' clocks).
    fn from(chat: &ChatConfig) -> Self {
        ResumeSettings {
            tail: chat.resume_tail,
            poll: chat.resume_poll,
            stale_after: chat.turn_budget + Duration::from_secs(10),
        }
    }
}

/// What a resumed stream sends.
#[derive(Debug)]
pub enum Resumed {
    /// Text of the answer, through delta `seq`.
    Delta { seq: i64, text: String },
    /// The answer is stored: complete, or incomplete (stopped, out of time), with its usage.
    Done(Box<Message>, Option<UsageRecord>),
    /// The answer is stored as failed; its error code.
    Failed(Box<Message>),
    /// Nothing was stored for too long: the turn that made the answer ended without storing it.
    Stopped,
    /// This request's time is up: reconnect after delta `after`.
    Reconnect { after: i64 },
}

/// A resumable answer of the user's, read once: [`Resume::follow`] sends the rest.
pub struct Resume {
    user_id: UserId,
    message_id: MessageId,
    after: i64,
    progress: StreamProgress,
}

impl Resume {
    /// The answer `message_id` past delta `after` (0: from the start); `Err(NotFound)` for an
    /// answer the user has not (another user's too), a conflict when the answer is stored whole
    /// but delta `after` can no longer be placed in it (see [`Resume::follow`]).
    pub async fn open(
        conn: &Conn,
        user_id: UserId,
        message_id: MessageId,
        after: i64,
    ) -> Result<Resume> {
        let progress = conn
            .answer_progress(message_id, user_id, after)
            .await?
            .ok_or(Error::NotFound)?;
        let placed = after == 0 || progress.chunks.iter().any(|c| c.end_of(after).is_some());
        if progress.answer.is_some() && !placed {
            return Err(unplaced());
        }
        Ok(Resume {
            user_id,
            message_id,
            after,
            progress,
        })
    }

    /// Sends `tx` the answer's deltas after the one named, then follows it until it is stored or
    /// `settings.tail` runs out. A conflict when the answer is stored whole but the delta named can
    /// no longer be placed in it (its chunks are gone: a later answer in the conversation cleared
    /// them), so the client reads it from 0.
    pub async fn follow(
        self,
        conn: &Conn,
        settings: ResumeSettings,
        tx: &mpsc::Sender<Resumed>,
    ) -> Result<()> {
        let Resume {
            user_id,
            message_id,
            after,
            progress,
        } = self;
        follow(conn, user_id, message_id, after, progress, settings, tx).await
    }
}

async fn follow(
    conn: &Conn,
    user_id: UserId,
    message_id: MessageId,
    after: i64,
    mut progress: StreamProgress,
    settings: ResumeSettings,
    tx: &mpsc::Sender<Resumed>,
) -> Result<()> {
    let until = tokio::time::Instant::now() + settings.tail;
    let mut seq = after;
    // Where delta `seq` ends in the answer, once known.
    let mut offset: Option<usize> = (after == 0).then_some(0);
    loop {
        if offset.is_none() {
            offset = progress.chunks.iter().find_map(|c| c.end_of(seq));
        }
        if let Some(answer) = progress.answer.take() {
            let Some(from) = offset else {
                return Err(unplaced());
            };
            let last = progress.chunks.last().map_or(seq, |c| c.last_seq.max(seq));
            let rest = answer.content.get(from..).unwrap_or_default();
            if !rest.is_empty()
                && send(
                    tx,
                    Resumed::Delta {
                        seq: last,
                        text: rest.to_string(),
                    },
                )
                .await
                .is_err()
            {
                return Ok(());
            }
            let end = match answer.status {
                MessageStatus::Failed => Resumed::Failed(Box::new(answer)),
                _ => {
                    let usage = conn
                        .message_usage(answer.id)
                        .await?
                        .into_iter()
                        .find(|u| u.kind == "chat");
                    Resumed::Done(Box::new(answer), usage)
                }
            };
            let _ = send(tx, end).await;
            return Ok(());
        }
        if let Some(mut from) = offset {
            for chunk in &progress.chunks {
                let text = chunk.from(from);
                let delta = Resumed::Delta {
                    seq: chunk.last_seq,
                    text: text.to_string(),
                };
                if chunk.last_seq > seq && !text.is_empty() && send(tx, delta).await.is_err() {
                    return Ok(());
                }
                seq = seq.max(chunk.last_seq);
                from = from.max(chunk.start + chunk.text.len());
            }
            offset = Some(from);
        }
        if stale(&progress, settings.stale_after) {
            let _ = send(tx, Resumed::Stopped).await;
            return Ok(());
        }
        let next = tokio::time::Instant::now() + settings.poll;
        if next >= until {
            let _ = send(tx, Resumed::Reconnect { after: seq }).await;
            return Ok(());
        }
        tokio::time::sleep_until(next).await;
        if tx.is_closed() {
            return Ok(());
        }
        progress = conn
            .answer_progress(message_id, user_id, seq)
            .await?
            .ok_or(Error::NotFound)?;
    }
}

fn unplaced() -> Error {
    Error::Conflict(
        "this answer is stored whole and the delta named is no longer known: read it from the start (after=0)",
    )
}

async fn send(tx: &mpsc::Sender<Resumed>, event: Resumed) -> std::result::Result<(), ()> {
    tx.send(event).await.map_err(|_| ())
}

/// Nothing stored for `after` while the answer is not: its turn is gone.
fn stale(progress: &StreamProgress, after: Duration) -> bool {
    let Some(at) = progress
        .last_written_at
        .as_deref()
        .and_then(crate::ids::parse_time)
    else {
        return false;
    };
    let age = time::OffsetDateTime::now_utc() - at;
    age > time::Duration::try_from(after).unwrap_or(time::Duration::MAX)
}

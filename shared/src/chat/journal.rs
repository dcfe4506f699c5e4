//! A streamed answer's deltas: numbered from 1 (the stream's `id:`), sent to the client, and stored
//! as they grow, in chunks, by a writer task of their own (so a write never holds a delta back),
//! whence any instance can send a client what it missed ([`crate::chat::resume`]). The stream is
//! opened in the store as the turn starts (beside the model call); the last chunk goes in the
//! statement that stores the answer.
//!
//! A client that leaves does not end the turn: it runs to its end and stores its answer, and the
//! client may pick it up again. A turn ends early only when its user asks (`POST
//! /messages/{id}/stop`), which the next chunk's write learns.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::oneshot;

use super::*;
use crate::store::Chunk;

/// A chunk is stored at least this often while deltas come...
pub const CHUNK_EVERY: Duration = Duration::from_millis(500);
/// ...and once it holds this many bytes.
pub const CHUNK_BYTES: usize = 2000;

enum Entry {
    Delta(i64, String),
    /// Hand over what is not stored yet (the answer's statement stores it).
    Take(oneshot::Sender<Option<Chunk>>),
}

/// The user asked to stop the answer.
#[derive(Debug)]
pub struct Stopped;

pub struct Journal {
    client: mpsc::Sender<Event>,
    writer: mpsc::UnboundedSender<Entry>,
    seq: AtomicI64,
    stopped: Arc<AtomicBool>,
}

impl Journal {
    /// Relays answer `answer_id`'s deltas to `client` and stores them as they grow.
    pub fn start(
        conn: Conn,
        answer_id: MessageId,
        user_id: UserId,
        conversation_id: ConversationId,
        client: mpsc::Sender<Event>,
    ) -> Journal {
        let (writer, entries) = mpsc::unbounded_channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let writing = Writer {
            conn,
            answer_id,
            user_id,
            conversation_id,
            stopped: stopped.clone(),
        };
        tokio::spawn(writing.run(entries).instrument(tracing::Span::current()));
        Journal {
            client,
            writer,
            seq: AtomicI64::new(0),
            stopped,
        }
    }

    /// Numbers a delta, queues it to be stored, and sends the event to the client (a client that
    /// left is no reason to stop). `Err` once the user asked to stop.
    pub async fn send(&self, event: Event) -> std::result::Result<(), Stopped> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Stopped);
        }
        let event = match event {
            Event::Delta { text, .. } => {
                let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
                let _ = self.writer.send(Entry::Delta(seq, text.clone()));
                Event::Delta { seq, text }
            }
            other => other,
        };
        let _ = self.client.send(event).await;
        Ok(())
    }

    /// The deltas sent and not stored yet, for the answer's statement to store (every delta a
    /// client may have seen is stored with the answer at the latest).
    pub async fn take_pending(&self) -> Option<Chunk> {
        let (give, taken) = oneshot::channel();
        self.writer.send(Entry::Take(give)).ok()?;
        taken.await.ok().flatten()
    }
}

use tracing::Instrument;

struct Writer {
    conn: Conn,
    answer_id: MessageId,
    user_id: UserId,
    conversation_id: ConversationId,
    stopped: Arc<AtomicBool>,
}

impl Writer {
    async fn run(self, mut entries: mpsc::UnboundedReceiver<Entry>) {
        let opened = self
            .conn
            .start_answer_stream(self.answer_id, self.user_id, self.conversation_id)
            .await;
        if let Err(error) = opened {
            tracing::warn!(%error, "the answer's stream could not be opened yet (its first chunk will)");
        }
        let mut pending: Option<Chunk> = None;
        // Bytes of the answer so far.
        let mut length = 0;
        let mut due = tokio::time::Instant::now() + CHUNK_EVERY;
        loop {
            let entry = tokio::select! {
                entry = entries.recv() => entry,
                _ = tokio::time::sleep_until(due), if pending.is_some() => {
                    self.store(&mut pending).await;
                    due = tokio::time::Instant::now() + CHUNK_EVERY;
                    continue;
                }
            };
            match entry {
                Some(Entry::Delta(seq, text)) => {
                    let chunk = pending.get_or_insert_with(|| {
                        due = tokio::time::Instant::now() + CHUNK_EVERY;
                        Chunk {
                            first_seq: seq,
                            last_seq: seq,
                            start: length,
                            text: String::new(),
                            ends: Vec::new(),
                        }
                    });
                    length += text.len();
                    chunk.text.push_str(&text);
                    chunk.ends.push(length);
                    chunk.last_seq = seq;
                    if chunk.text.len() >= CHUNK_BYTES {
                        self.store(&mut pending).await;
                    }
                }
                Some(Entry::Take(give)) => {
                    let _ = give.send(pending.take());
                }
                None => {
                    self.store(&mut pending).await;
                    return;
                }
            }
        }
    }

    /// Stores the pending chunk. One that fails stays pending, and the next write carries it with
    /// what came since, so the stored chunks never leave a gap.
    async fn store(&self, pending: &mut Option<Chunk>) {
        let Some(chunk) = pending.as_ref() else {
            return;
        };
        let stored = self
            .conn
            .append_answer_chunk(self.answer_id, self.user_id, self.conversation_id, chunk)
            .await;
        match stored {
            Ok(stop) => {
                *pending = None;
                if stop {
                    self.stopped.store(true, Ordering::Release);
                }
            }
            Err(error) => tracing::warn!(%error, "a chunk of the answer could not be stored yet"),
        }
    }
}

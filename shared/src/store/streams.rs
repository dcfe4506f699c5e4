//! Streamed answers as they grow (migration 27): a row per answer, its text in chunks.

use super::{col, collect, Conn, Message, StoreError, StoreResult};
use crate::ids::{ConversationId, MessageId, UserId};

/// Deltas `first_seq..=last_seq` of an answer, one after another in `text`, which starts at byte
/// `start` of the answer; `ends[i]` is where delta `first_seq + i` ends in the answer (a byte
/// offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub first_seq: i64,
    pub last_seq: i64,
    pub start: usize,
    pub text: String,
    pub ends: Vec<usize>,
}

impl Chunk {
    /// The chunk as the answer's statement takes it (`final_chunk`).
    pub(super) fn to_json(&self) -> String {
        serde_json::json!({
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "start": self.start,
            "text": self.text,
            "ends": serde_json::to_string(&self.ends).unwrap_or_else(|_| "[]".into()),
        })
        .to_string()
    }

    /// Where delta `seq` ends in the answer, if this chunk holds it.
    pub fn end_of(&self, seq: i64) -> Option<usize> {
        if seq < self.first_seq {
            return None;
        }
        self.ends.get((seq - self.first_seq) as usize).copied()
    }

    /// This chunk's text from byte `offset` of the answer on (all of it when it starts later).
    pub fn from(&self, offset: usize) -> &str {
        let at = offset.saturating_sub(self.start);
        self.text.get(at..).unwrap_or_default()
    }
}

/// What is stored of a streamed answer past delta `after`.
#[derive(Debug)]
pub struct StreamProgress {
    /// The chunks holding delta `after` and those after it, in order.
    pub chunks: Vec<Chunk>,
    /// When the newest chunk (or the stream) was written.
    pub last_written_at: Option<String>,
    /// The answer, once stored.
    pub answer: Option<Message>,
}

fn chunk_from_row(row: &super::Row) -> StoreResult<Chunk> {
    let ends: String = col(row, 5, "answer_chunks.ends")?;
    let start: i64 = col(row, 6, "answer_chunks.start_at")?;
    Ok(Chunk {
        first_seq: col(row, 2, "answer_chunks.first_seq")?,
        last_seq: col(row, 3, "answer_chunks.last_seq")?,
        start: start.max(0) as usize,
        text: col(row, 4, "answer_chunks.text")?,
        ends: serde_json::from_str(&ends).map_err(|_| StoreError::Corrupt("answer_chunks.ends"))?,
    })
}

impl Conn {
    /// Opens the stream of answer `message_id` as its turn starts, so a client resuming before the
    /// first chunk (a model slow to start, a tool loop) follows it rather than finding nothing.
    pub async fn start_answer_stream(
        &self,
        message_id: MessageId,
        user_id: UserId,
        conversation_id: ConversationId,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT OR IGNORE INTO answer_streams (message_id, user_id, conversation_id, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            libsql::params![message_id, user_id, conversation_id, crate::ids::now()],
        )
        .await?;
        Ok(())
    }

    /// Stores a chunk of the answer's deltas (opening its stream if it is not yet), in one statement
    /// that also answers whether the answer's user asked to stop it.
    pub async fn append_answer_chunk(
        &self,
        message_id: MessageId,
        user_id: UserId,
        conversation_id: ConversationId,
        chunk: &Chunk,
    ) -> StoreResult<bool> {
        let ends = serde_json::to_string(&chunk.ends).map_err(|e| StoreError::Db(e.to_string()))?;
        let rows = self
            .query(
                "INSERT INTO answer_chunk_writes (message_id, user_id, conversation_id, last_seq,
                                                  first_seq, start_at, text, ends, written_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 RETURNING (SELECT stop FROM answer_streams WHERE message_id = ?1)",
                libsql::params![
                    message_id,
                    user_id,
                    conversation_id,
                    chunk.last_seq,
                    chunk.first_seq,
                    chunk.start as i64,
                    chunk.text.as_str(),
                    ends,
                    crate::ids::now()
                ],
            )
            .await?;
        match rows.first() {
            Some(row) => Ok(col::<Option<bool>>(row, 0, "answer_streams.stop")?.unwrap_or(false)),
            None => Ok(false),
        }
    }

    /// Asks the turn making answer `message_id` (the user's) to end it where it is; false when
    /// there is no such stream.
    pub async fn request_stop(&self, message_id: MessageId, user_id: UserId) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE answer_streams SET stop = 1 WHERE message_id = ?1 AND user_id = ?2",
                libsql::params![message_id, user_id],
            )
            .await?;
        Ok(n > 0)
    }

    /// What is stored of answer `message_id` (the user's) past delta `after`: its chunks (one
    /// statement) and the answer itself once stored (another). `None` when the user has neither.
    pub async fn answer_progress(
        &self,
        message_id: MessageId,
        user_id: UserId,
        after: i64,
    ) -> StoreResult<Option<StreamProgress>> {
        let rows = self
            .query(
                "SELECT 0 AS k,
                        COALESCE((SELECT max(written_at) FROM answer_chunks WHERE message_id = ?1),
                                 s.created_at),
                        NULL, NULL, NULL, NULL, NULL
                 FROM answer_streams s WHERE s.message_id = ?1 AND s.user_id = ?2
                 UNION ALL
                 SELECT 1, c.written_at, c.first_seq, c.last_seq, c.text, c.ends, c.start_at
                 FROM answer_chunks c JOIN answer_streams s ON s.message_id = c.message_id
                 WHERE c.message_id = ?1 AND s.user_id = ?2 AND c.last_seq >= ?3
                 ORDER BY 1, 4",
                libsql::params![message_id, user_id, after],
            )
            .await?;
        let last_written_at = rows
            .first()
            .map(|row| col::<String>(row, 1, "answer_chunks.written_at"))
            .transpose()?;
        let chunks = collect(rows.into_iter().skip(1).collect(), chunk_from_row)?;
        let answer = self.message_of_user(message_id, user_id).await?;
        if last_written_at.is_none() && answer.is_none() {
            return Ok(None);
        }
        Ok(Some(StreamProgress {
            chunks,
            last_written_at,
            answer,
        }))
    }
}

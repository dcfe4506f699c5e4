//! Messages of a conversation, ordered by `seq` (the rowid); ids are for clients.

use super::{col, collect, first, usage, Conn, Row, StoreError, StoreResult, UsageRecord};
use crate::{
    ids::{AgentId, ConversationId, MessageId, UserId},
    kinds::{MessageRole, MessageStatus, ToolCall},
};

#[derive(Debug, Clone)]
pub struct Message {
    pub seq: i64,
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    /// The files sent with the message (user messages only).
    pub attachments: Vec<AttachmentRef>,
    /// The project files the coding agent changed in this turn (answers only).
    pub changes: Vec<FileChange>,
    /// The agent in force when the answer was made (answers only).
    pub agent_id: Option<AgentId>,
    /// The knowledge chunks the answer was given as numbered sources (answers only).
    pub citations: Vec<Citation>,
    /// The tools the answer asks its client to call (client-tool answers only).
    pub tool_calls: Vec<ToolCall>,
    /// The model the turn asked for, when `model` answered in its place (a fallback).
    pub fallback_from: Option<String>,
    /// The message this one follows (none for a root).
    pub parent: Option<ParentRef>,
    /// The messages under the same parent, oldest first, this one included; empty when not read
    /// (a message just stored).
    pub sibling_ids: Vec<MessageId>,
    /// Whether the message is on its conversation's active path.
    pub on_path: bool,
}

/// A message as a parent: its seq (the store's order) and id (the clients').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentRef {
    pub seq: i64,
    pub id: MessageId,
}

impl Message {
    /// This message as the parent of another.
    pub fn as_parent(&self) -> ParentRef {
        ParentRef {
            seq: self.seq,
            id: self.id,
        }
    }

    /// A complete message that is not (or not yet) stored: history a turn plans with.
    pub fn unstored(
        seq: i64,
        id: MessageId,
        conversation_id: ConversationId,
        role: MessageRole,
        content: String,
    ) -> Message {
        Message {
            seq,
            id,
            conversation_id,
            role,
            content,
            status: MessageStatus::Complete,
            model: None,
            error: None,
            created_at: String::new(),
            attachments: Vec::new(),
            changes: Vec::new(),
            agent_id: None,
            citations: Vec::new(),
            tool_calls: Vec::new(),
            fallback_from: None,
            parent: None,
            sibling_ids: Vec::new(),
            on_path: true,
        }
    }
}

/// Which of a conversation's messages a read answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The active path, root to leaf.
    ActivePath,
    /// Every message of the tree.
    All,
}

impl Which {
    fn filter(self, conversation: &super::Conversation) -> &'static str {
        match self {
            Which::ActivePath if conversation.branched => "AND on_path = 1",
            _ => "",
        }
    }
}

/// A knowledge chunk given to the model as source `[n]` (n = its place in the list, from 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Citation {
    pub document_id: String,
    pub title: String,
    /// The chunk's position in its document, from 0.
    pub chunk: i64,
    pub heading: String,
    /// The fused retrieval score (reciprocal rank fusion of full-text and vector ranks).
    pub score: f64,
    pub snippet: String,
}

/// A project file the coding agent changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileChange {
    pub path: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    pub before_size: Option<i64>,
    pub after_size: Option<i64>,
    /// The new content's SHA-256 (none for a deletion).
    pub sha256: Option<String>,
}

/// An attachment as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AttachmentRef {
    pub id: crate::ids::AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

pub struct NewMessage<'a> {
    /// Chosen by the caller, so usage rows can name the message before it is stored.
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: &'a str,
    pub status: MessageStatus,
    pub model: Option<&'a str>,
    pub error: Option<&'a str>,
    pub changes: &'a [FileChange],
    pub agent_id: Option<AgentId>,
    pub citations: &'a [Citation],
    pub tool_calls: &'a [ToolCall],
    /// The model asked for, when `model` answered in its place.
    pub fallback_from: Option<&'a str>,
    /// The message it follows; `None` makes it a root. The store makes it the active leaf when the
    /// parent is on the active path (see migration 26).
    pub parent: Option<ParentRef>,
}

impl NewMessage<'_> {
    /// The row as stored, for writes whose statement can return only the generated `seq`.
    pub(super) fn stored(&self, seq: i64, created_at: String) -> Message {
        Message {
            seq,
            id: self.id,
            conversation_id: self.conversation_id,
            role: self.role,
            content: self.content.to_string(),
            status: self.status,
            model: self.model.map(str::to_string),
            error: self.error.map(str::to_string),
            created_at,
            attachments: Vec::new(),
            changes: self.changes.to_vec(),
            agent_id: self.agent_id,
            citations: self.citations.to_vec(),
            tool_calls: self.tool_calls.to_vec(),
            fallback_from: self.fallback_from.map(str::to_string),
            parent: self.parent,
            sibling_ids: Vec::new(),
            on_path: true,
        }
    }
}

pub(super) const MESSAGE_COLUMN_COUNT: usize = 19;

/// The message columns with `$siblings` as the sibling list (see [`MESSAGE_COLUMNS`]).
macro_rules! message_columns {
    ($siblings:literal) => {
        concat!(
            "m.seq, m.id, m.conversation_id, m.role, m.content, m.status, m.model, m.error, m.created_at,
             (SELECT json_group_array(json_object('id', a.id, 'filename', a.filename,
                                                  'content_type', a.content_type, 'size', a.size))
              FROM attachments a WHERE a.message_id = m.id),
             m.changes, m.agent_id, m.citations, m.tool_calls, m.fallback_from,
             CASE WHEN m.parent_seq IS NULL
                  THEN (SELECT p.seq FROM messages p WHERE p.conversation_id = m.conversation_id
                        AND p.seq < m.seq ORDER BY p.seq DESC LIMIT 1)
                  ELSE NULLIF(m.parent_seq, 0) END,
             CASE WHEN m.parent_seq IS NULL
                  THEN (SELECT p.id FROM messages p WHERE p.conversation_id = m.conversation_id
                        AND p.seq < m.seq ORDER BY p.seq DESC LIMIT 1)
                  ELSE (SELECT p.id FROM messages p WHERE p.seq = m.parent_seq) END, ",
            $siblings,
            ", m.on_path IS NOT 0"
        )
    };
}

/// Column 10 lists the message's attachments as JSON (an index probe per message; `[]` for most),
/// so a page of messages shows them without a second query. The last four are its parent (seq and
/// id: a message stored before branches existed follows the one before it), its siblings (itself
/// alone in a conversation that never branched) and whether it is on the active path.
pub(super) const MESSAGE_COLUMNS: &str = message_columns!(
    "CASE WHEN m.on_path IS NULL THEN json_array(m.id)
          ELSE (SELECT json_group_array(s.id) FROM
                  (SELECT s.id FROM messages s WHERE s.conversation_id = m.conversation_id
                   AND s.parent_seq = m.parent_seq ORDER BY s.seq) s) END"
);

/// [`MESSAGE_COLUMNS`] without the siblings (an empty list): for the history a turn plans with,
/// which never shows them. With them, a turn at the end of a branched conversation's path took
/// 0.4–0.7 ms more than at the end of a flat one (bench `--history-only`, 399 messages read);
/// without them, the same.
pub(super) const MESSAGE_COLUMNS_NO_SIBLINGS: &str = message_columns!("'[]'");

fn message_from_row(row: &Row) -> StoreResult<Message> {
    message_at(row, 0)
}

/// The message whose [`MESSAGE_COLUMNS`] start at column `at`.
pub(super) fn message_at(row: &Row, at: i32) -> StoreResult<Message> {
    Ok(Message {
        seq: col(row, at, "messages.seq")?,
        id: col(row, at + 1, "messages.id")?,
        conversation_id: col(row, at + 2, "messages.conversation_id")?,
        role: col(row, at + 3, "messages.role")?,
        content: col(row, at + 4, "messages.content")?,
        status: col(row, at + 5, "messages.status")?,
        model: col(row, at + 6, "messages.model")?,
        error: col(row, at + 7, "messages.error")?,
        created_at: col(row, at + 8, "messages.created_at")?,
        attachments: {
            let json: String = col(row, at + 9, "messages.attachments")?;
            serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("messages.attachments"))?
        },
        changes: json_list(row, at + 10, "messages.changes")?,
        agent_id: col(row, at + 11, "messages.agent_id")?,
        citations: json_list(row, at + 12, "messages.citations")?,
        tool_calls: json_list(row, at + 13, "messages.tool_calls")?,
        fallback_from: col(row, at + 14, "messages.fallback_from")?,
        parent: {
            let seq: Option<i64> = col(row, at + 15, "messages.parent_seq")?;
            let id: Option<MessageId> = col(row, at + 16, "messages.parent_id")?;
            seq.zip(id).map(|(seq, id)| ParentRef { seq, id })
        },
        sibling_ids: {
            let json: String = col(row, at + 17, "messages.sibling_ids")?;
            serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("messages.sibling_ids"))?
        },
        on_path: col(row, at + 18, "messages.on_path")?,
    })
}

/// A column holding a JSON array, or NULL for none (most messages).
fn json_list<T: serde::de::DeserializeOwned>(
    row: &Row,
    at: i32,
    name: &'static str,
) -> StoreResult<Vec<T>> {
    match col::<Option<String>>(row, at, name)? {
        Some(json) => serde_json::from_str(&json).map_err(|_| StoreError::Corrupt(name)),
        None => Ok(Vec::new()),
    }
}

/// A list as its JSON column: NULL when empty.
fn list_json<T: serde::Serialize>(items: &[T]) -> Option<String> {
    (!items.is_empty()).then(|| serde_json::to_string(items).unwrap_or_default())
}

impl Conn {
    /// Appends a message: one statement (the `messages_bump_conversation` trigger moves the
    /// conversation's counters in it).
    pub async fn append_message(&self, new: NewMessage<'_>) -> StoreResult<Message> {
        let created_at = crate::ids::now();
        let rows = self.query(
                "INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at, parent_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 RETURNING seq",
                libsql::params![
                    new.id,
                    new.conversation_id,
                    new.role.as_str(),
                    new.content,
                    new.status.as_str(),
                    new.model,
                    new.error,
                    created_at.clone(),
                    new.parent.map_or(0, |p| p.seq)
                ],
            )
            .await?;
        let seq = first(rows, |row| col(row, 0, "messages.seq"))?
            .ok_or(StoreError::Corrupt("messages"))?;
        Ok(new.stored(seq, created_at))
    }

    /// Stores a turn's answer with its usage rows in one statement (the `messages_with_usage`
    /// view's trigger): there is never an answer without its cost, nor a cost without its answer.
    /// The same statement gives back the turn's quota `holds`, now that its real usage counts, and
    /// stores a streamed answer's `final_chunk` (the deltas not stored yet).
    pub async fn append_answer(
        &self,
        user_id: UserId,
        new: NewMessage<'_>,
        usage: &[UsageRecord],
        holds: &[String],
        final_chunk: Option<&super::Chunk>,
    ) -> StoreResult<Message> {
        let usage = usage::to_json(usage);
        let holds = serde_json::to_string(holds).unwrap_or_else(|_| "[]".into());
        let created_at = crate::ids::now();
        let rows = self.query(
                "INSERT INTO messages_with_usage
                     (id, conversation_id, user_id, role, content, status, model, error, created_at, usage, changes,
                      agent_id, holds, citations, tool_calls, fallback_from, parent_seq, final_chunk)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                 RETURNING (SELECT seq FROM messages WHERE messages.id = messages_with_usage.id)",
                libsql::params![
                    new.id,
                    new.conversation_id,
                    user_id,
                    new.role.as_str(),
                    new.content,
                    new.status.as_str(),
                    new.model,
                    new.error,
                    created_at.clone(),
                    usage,
                    list_json(new.changes),
                    new.agent_id,
                    holds,
                    list_json(new.citations),
                    list_json(new.tool_calls),
                    new.fallback_from,
                    new.parent.map_or(0, |p| p.seq),
                    final_chunk.map(super::Chunk::to_json)
                ],
            )
            .await?;
        let seq = first(rows, |row| col(row, 0, "messages.seq"))?
            .ok_or(StoreError::Corrupt("messages"))?;
        Ok(new.stored(seq, created_at))
    }

    /// `which` of a conversation's messages, oldest first, after `after_seq`; one more than `limit`
    /// if there are more. A path read uses the active path's index once the conversation branched,
    /// so it costs what a flat conversation of the path's length does.
    pub async fn list_messages(
        &self,
        conversation: &super::Conversation,
        which: Which,
        after_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = self.query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = ?1 AND seq > ?2 {} ORDER BY seq LIMIT ?3",
                    which.filter(conversation)
                ),
                libsql::params![conversation.id, after_seq.unwrap_or(0), limit as i64 + 1],
            )
            .await?;
        collect(rows, message_from_row)
    }

    /// `which` of a conversation's messages after `after_seq`, oldest first (export).
    pub async fn messages_after(
        &self,
        conversation: &super::Conversation,
        which: Which,
        after_seq: i64,
    ) -> StoreResult<Vec<Message>> {
        let rows = self.query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = ?1 AND seq > ?2 {} ORDER BY seq",
                    which.filter(conversation)
                ),
                libsql::params![conversation.id, after_seq],
            )
            .await?;
        collect(rows, message_from_row)
    }

    /// Makes the path to `leaf` (a message of the conversation) the active one: a flat conversation
    /// becomes a tree first (unless `leaf` is already its newest message), then every message of the
    /// conversation whose place changes is updated, in one statement each.
    pub async fn set_active_path(
        &self,
        conversation_id: ConversationId,
        leaf: MessageId,
    ) -> StoreResult<()> {
        self.execute(
            "UPDATE conversations SET branched = 1
             WHERE id = ?1 AND branched = 0
               AND (SELECT seq FROM messages WHERE id = ?2 AND conversation_id = ?1)
                   < (SELECT max(seq) FROM messages WHERE conversation_id = ?1)",
            libsql::params![conversation_id, leaf],
        )
        .await?;
        self.execute(
            "WITH RECURSIVE path(seq) AS (
                 SELECT seq FROM messages WHERE id = ?2 AND conversation_id = ?1
                 UNION ALL
                 SELECT m.parent_seq FROM messages m JOIN path ON m.seq = path.seq WHERE m.parent_seq > 0)
             UPDATE messages SET on_path = (seq IN path)
             WHERE conversation_id = ?1 AND on_path IS NOT NULL AND on_path <> (seq IN path)",
            libsql::params![conversation_id, leaf],
        )
        .await?;
        Ok(())
    }

    /// A message, if it is in a conversation of `user_id`.
    pub async fn message_of_user(
        &self,
        id: MessageId,
        user_id: UserId,
    ) -> StoreResult<Option<Message>> {
        let rows = self.query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.id = ?1 AND c.user_id = ?2"
                ),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, message_from_row)
    }
}

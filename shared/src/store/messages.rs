//! Messages of a conversation, ordered by `seq` (the rowid); ids are for clients.

use super::{col, collect, first, usage, Conn, StoreError, StoreResult, UsageRecord};
use crate::{
    ids::{ConversationId, MessageId, UserId},
    kinds::{MessageRole, MessageStatus},
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
}

const MESSAGE_COLUMNS: &str =
    "m.seq, m.id, m.conversation_id, m.role, m.content, m.status, m.model, m.error, m.created_at";

fn message_from_row(row: &libsql::Row) -> StoreResult<Message> {
    Ok(Message {
        seq: col(row, 0, "messages.seq")?,
        id: col(row, 1, "messages.id")?,
        conversation_id: col(row, 2, "messages.conversation_id")?,
        role: col(row, 3, "messages.role")?,
        content: col(row, 4, "messages.content")?,
        status: col(row, 5, "messages.status")?,
        model: col(row, 6, "messages.model")?,
        error: col(row, 7, "messages.error")?,
        created_at: col(row, 8, "messages.created_at")?,
    })
}

/// Inserts a message and bumps its conversation's counters, inside `tx`.
async fn insert_message(tx: &libsql::Transaction, new: &NewMessage<'_>) -> StoreResult<Message> {
    let now = crate::ids::now();
    let rows = tx
        .query(
            "INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             RETURNING seq, id, conversation_id, role, content, status, model, error, created_at",
            libsql::params![
                new.id,
                new.conversation_id,
                new.role.as_str(),
                new.content,
                new.status.as_str(),
                new.model,
                new.error,
                now.clone()
            ],
        )
        .await?;
    let message = first(rows, message_from_row)
        .await?
        .ok_or(StoreError::Corrupt("messages"))?;
    tx.execute(
        "UPDATE conversations SET message_count = message_count + 1, last_message_at = ?2, activity_at = ?2, updated_at = ?2
         WHERE id = ?1",
        libsql::params![new.conversation_id, now],
    )
    .await?;
    Ok(message)
}

impl Conn {
    /// Appends a message and bumps the conversation's counters in one transaction.
    pub async fn append_message(&self, new: NewMessage<'_>) -> StoreResult<Message> {
        let tx = self.0.transaction().await?;
        let message = insert_message(&tx, &new).await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Stores a turn's answer with its usage rows in one transaction: there is never an answer
    /// without its cost, nor a cost without its answer.
    pub async fn append_answer(
        &self,
        user_id: UserId,
        new: NewMessage<'_>,
        usage: &[UsageRecord],
    ) -> StoreResult<Message> {
        let tx = self.0.transaction().await?;
        let message = insert_message(&tx, &new).await?;
        for row in usage {
            usage::insert_usage(&tx, new.conversation_id, user_id, row).await?;
        }
        tx.commit().await?;
        Ok(message)
    }

    /// Oldest first, after `after_seq`; one more than `limit` if there are more.
    pub async fn list_messages(
        &self,
        conversation_id: ConversationId,
        after_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                ),
                libsql::params![conversation_id, after_seq.unwrap_or(0), limit as i64 + 1],
            )
            .await?;
        collect(rows, message_from_row).await
    }

    /// The newest `limit` messages after `after_seq`, oldest first: the context of a turn costs the
    /// same however long the conversation is.
    pub async fn recent_messages(
        &self,
        conversation_id: ConversationId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT * FROM (
                         SELECT {MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3
                     ) ORDER BY seq"
                ),
                libsql::params![conversation_id, after_seq, limit as i64],
            )
            .await?;
        collect(rows, message_from_row).await
    }

    /// Every message after `after_seq`, oldest first (export).
    pub async fn messages_after(
        &self,
        conversation_id: ConversationId,
        after_seq: i64,
    ) -> StoreResult<Vec<Message>> {
        let rows = self
            .0
            .query(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq"),
                libsql::params![conversation_id, after_seq],
            )
            .await?;
        collect(rows, message_from_row).await
    }

    /// A message, if it is in a conversation of `user_id`.
    pub async fn message_of_user(
        &self,
        id: MessageId,
        user_id: UserId,
    ) -> StoreResult<Option<Message>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.id = ?1 AND c.user_id = ?2"
                ),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, message_from_row).await
    }
}

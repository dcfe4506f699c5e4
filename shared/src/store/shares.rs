//! Share links: read-only snapshots of a conversation's active path, opened by token.

use super::{col, collect, first, Conn, Row, StoreError, StoreResult};
use crate::{
    ids::{ConversationId, MessageId, ShareId, UserId},
    kinds::MessageRole,
};

/// A share as its owner sees it.
#[derive(Debug, Clone)]
pub struct Share {
    pub id: ShareId,
    pub conversation_id: ConversationId,
    pub token: String,
    pub title: String,
    pub message_count: i64,
    pub created_at: String,
}

/// What creating a share came to.
#[derive(Debug)]
pub enum Snapshot {
    Created(Share),
    /// Not a conversation of the user's.
    NotFound,
    /// The active path holds more messages than a share may.
    TooLong,
}

/// A message of a snapshot: what a link shows, nothing else.
#[derive(Debug, Clone)]
pub struct SharedMessage {
    pub role: MessageRole,
    pub content: String,
    pub created_at: String,
}

const SHARE_COLUMNS: &str = "id, conversation_id, token, title, message_count, created_at";

fn share_from_row(row: &Row) -> StoreResult<Share> {
    Ok(Share {
        id: col(row, 0, "shares.id")?,
        conversation_id: col(row, 1, "shares.conversation_id")?,
        token: col(row, 2, "shares.token")?,
        title: col(row, 3, "shares.title")?,
        message_count: col(row, 4, "shares.message_count")?,
        created_at: col(row, 5, "shares.created_at")?,
    })
}

impl Conn {
    /// Snapshots the conversation's active path (user and assistant messages with text) as a new
    /// share, in one transaction: the share with every message, or nothing. The user holds at most
    /// `max_shares` shares; a snapshot at most `max_messages` messages.
    pub async fn create_share(
        &self,
        user_id: UserId,
        conversation_id: ConversationId,
        token: &str,
        max_messages: u32,
        max_shares: u32,
    ) -> StoreResult<Snapshot> {
        let id = ShareId::new();
        let now = crate::ids::now();
        let tx = self.transaction("shares.create").await?;
        let held = super::rows(
            tx.query("SELECT count(*) FROM shares WHERE user_id = ?1", [user_id])
                .await?,
        )
        .await?;
        let held: i64 = first(held, |row| col(row, 0, "shares.count"))?.unwrap_or(0);
        if held >= max_shares as i64 {
            tx.rollback().await?;
            return Err(StoreError::LimitReached {
                what: "share links",
                limit: max_shares as u64,
            });
        }
        let created = tx
            .execute(
                "INSERT INTO shares (id, user_id, conversation_id, token, title, message_count, created_at)
                 SELECT ?1, ?2, id, ?3, title, 0, ?4 FROM conversations WHERE id = ?5 AND user_id = ?2",
                libsql::params![id, user_id, token, now, conversation_id],
            )
            .await?;
        if created == 0 {
            tx.rollback().await?;
            return Ok(Snapshot::NotFound);
        }
        let copied = tx
            .execute(
                "INSERT INTO share_messages (share_id, position, role, content, created_at)
                 SELECT ?1, row_number() OVER (ORDER BY m.seq), m.role, m.content, m.created_at
                 FROM conversations c JOIN messages m ON m.conversation_id = c.id
                 WHERE c.id = ?2 AND (c.branched = 0 OR m.on_path = 1)
                   AND m.role IN ('user', 'assistant') AND m.content <> ''
                 ORDER BY m.seq
                 LIMIT ?3",
                libsql::params![id, conversation_id, max_messages as i64 + 1],
            )
            .await?;
        if copied > max_messages as u64 {
            tx.rollback().await?;
            return Ok(Snapshot::TooLong);
        }
        let rows = super::rows(
            tx.query(
                &format!(
                    "UPDATE shares SET message_count = ?2 WHERE id = ?1 RETURNING {SHARE_COLUMNS}"
                ),
                libsql::params![id, copied as i64],
            )
            .await?,
        )
        .await?;
        let share = first(rows, share_from_row)?.ok_or(StoreError::Corrupt("shares"))?;
        tx.commit().await?;
        Ok(Snapshot::Created(share))
    }

    /// The conversation's shares, newest first (the caller checked the owner).
    pub async fn conversation_shares(
        &self,
        conversation_id: ConversationId,
        user_id: UserId,
    ) -> StoreResult<Vec<Share>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {SHARE_COLUMNS} FROM shares WHERE conversation_id = ?1 AND user_id = ?2
                     ORDER BY created_at DESC, id DESC"
                ),
                libsql::params![conversation_id, user_id],
            )
            .await?;
        collect(rows, share_from_row)
    }

    /// Revokes a share of the user's; false when there is none.
    pub async fn delete_share(&self, id: ShareId, user_id: UserId) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM shares WHERE id = ?1 AND user_id = ?2",
                libsql::params![id, user_id],
            )
            .await?;
        Ok(n > 0)
    }

    /// A share by its token, with its messages in order.
    pub async fn shared(&self, token: &str) -> StoreResult<Option<(Share, Vec<SharedMessage>)>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {SHARE_COLUMNS}, NULL, NULL, NULL, 0 AS position FROM shares WHERE token = ?1
                     UNION ALL
                     SELECT NULL, NULL, NULL, NULL, NULL, NULL, sm.role, sm.content, sm.created_at, sm.position
                     FROM shares s JOIN share_messages sm ON sm.share_id = s.id WHERE s.token = ?1
                     ORDER BY position"
                ),
                [token],
            )
            .await?;
        let mut rows = rows.iter();
        let Some(head) = rows.next() else {
            return Ok(None);
        };
        let share = share_from_row(head)?;
        let messages = rows
            .map(|row| {
                Ok(SharedMessage {
                    role: col(row, 6, "share_messages.role")?,
                    content: col(row, 7, "share_messages.content")?,
                    created_at: col(row, 8, "share_messages.created_at")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((share, messages)))
    }

    /// A new conversation of `user_id`'s holding the share's messages, in one transaction: the
    /// conversation with every message, or nothing (`None` when the share is gone). `message_ids`
    /// names the messages in order. They form one path, each under the one before (stored as a
    /// flat conversation is, see migration 26), and are stored now: the copy is new activity.
    pub async fn fork_share(
        &self,
        share_id: ShareId,
        user_id: UserId,
        conversation_id: ConversationId,
        model: &str,
        message_ids: &[MessageId],
    ) -> StoreResult<Option<super::Conversation>> {
        let now = crate::ids::now();
        let ids = serde_json::to_string(message_ids).map_err(|e| StoreError::Db(e.to_string()))?;
        let tx = self.transaction("shares.fork").await?;
        let created = tx
            .execute(
                "INSERT INTO conversations (id, user_id, title, model, created_at, updated_at, activity_at)
                 SELECT ?1, ?2, title, ?3, ?4, ?4, ?4 FROM shares WHERE id = ?5",
                libsql::params![conversation_id, user_id, model, now.clone(), share_id],
            )
            .await?;
        let copied = tx
            .execute(
                "INSERT INTO messages (id, conversation_id, role, content, status, created_at)
                 SELECT j.value, ?1, sm.role, sm.content, 'complete', ?2
                 FROM share_messages sm JOIN json_each(?3) j ON j.key + 1 = sm.position
                 WHERE sm.share_id = ?4
                 ORDER BY sm.position",
                libsql::params![conversation_id, now, ids, share_id],
            )
            .await?;
        if created == 0 || copied != message_ids.len() as u64 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        self.conversation(conversation_id, user_id).await
    }
}

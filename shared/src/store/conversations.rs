//! Conversations: one row each, with the counters and the rolling summary a turn needs.

use super::{col, collect, first, Conn, StoreError, StoreResult};
use crate::ids::{ConversationId, UserId};

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: ConversationId,
    pub user_id: UserId,
    pub title: String,
    pub model: String,
    pub agent_id: Option<String>,
    pub project_id: Option<String>,
    pub summary: Option<String>,
    /// Messages with `seq` up to this one are covered by the summary.
    pub summary_through_seq: Option<i64>,
    pub message_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub last_message_at: Option<String>,
    /// The list's sort key: `last_message_at`, or `created_at` before the first message.
    pub activity_at: String,
}

pub struct NewConversation<'a> {
    pub user_id: UserId,
    pub title: &'a str,
    pub model: &'a str,
    pub agent_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
}

/// A partial update; `None` leaves a column as it is, `agent_id: Some(None)` clears the agent.
#[derive(Default)]
pub struct ConversationChanges<'a> {
    pub title: Option<&'a str>,
    pub model: Option<&'a str>,
    pub agent_id: Option<Option<&'a str>>,
}

const CONVERSATION_COLUMNS: &str =
    "id, user_id, title, model, agent_id, project_id, summary, summary_through_seq, \
     message_count, created_at, updated_at, last_message_at, activity_at";

fn conversation_from_row(row: &libsql::Row) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: col(row, 0, "conversations.id")?,
        user_id: col(row, 1, "conversations.user_id")?,
        title: col(row, 2, "conversations.title")?,
        model: col(row, 3, "conversations.model")?,
        agent_id: col(row, 4, "conversations.agent_id")?,
        project_id: col(row, 5, "conversations.project_id")?,
        summary: col(row, 6, "conversations.summary")?,
        summary_through_seq: col(row, 7, "conversations.summary_through_seq")?,
        message_count: col(row, 8, "conversations.message_count")?,
        created_at: col(row, 9, "conversations.created_at")?,
        updated_at: col(row, 10, "conversations.updated_at")?,
        last_message_at: col(row, 11, "conversations.last_message_at")?,
        activity_at: col(row, 12, "conversations.activity_at")?,
    })
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Conn {
    pub async fn create_conversation(&self, new: NewConversation<'_>) -> StoreResult<Conversation> {
        let now = crate::ids::now();
        let rows = self
            .0
            .query(
                &format!(
                    "INSERT INTO conversations (id, user_id, title, model, agent_id, project_id, created_at, updated_at, activity_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7) RETURNING {CONVERSATION_COLUMNS}"
                ),
                libsql::params![ConversationId::new(), new.user_id, new.title, new.model, new.agent_id, new.project_id, now],
            )
            .await?;
        first(rows, conversation_from_row)
            .await?
            .ok_or(StoreError::Corrupt("conversations"))
    }

    /// The conversation if it exists and belongs to `user_id`; another user's is simply not found.
    pub async fn conversation(
        &self,
        id: ConversationId,
        user_id: UserId,
    ) -> StoreResult<Option<Conversation>> {
        let rows = self
            .0
            .query(
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND user_id = ?2"),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, conversation_from_row).await
    }

    /// Newest activity first; `after` is the (activity_at, id) of the last item of the previous page.
    pub async fn list_conversations(
        &self,
        user_id: UserId,
        title_query: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations
                     WHERE user_id = ?1
                       AND (?2 IS NULL OR title LIKE ?2 ESCAPE '\\')
                       AND (?3 IS NULL OR (activity_at, id) < (?3, ?4))
                     ORDER BY activity_at DESC, id DESC
                     LIMIT ?5"
                ),
                libsql::params![
                    user_id,
                    title_query.map(like_pattern),
                    after_at,
                    after_id,
                    limit as i64 + 1
                ],
            )
            .await?;
        collect(rows, conversation_from_row).await
    }

    pub async fn update_conversation(
        &self,
        id: ConversationId,
        user_id: UserId,
        changes: ConversationChanges<'_>,
    ) -> StoreResult<Option<Conversation>> {
        let (set_agent, agent) = match changes.agent_id {
            Some(a) => (1, a),
            None => (0, None),
        };
        let rows = self
            .0
            .query(
                &format!(
                    "UPDATE conversations SET title = COALESCE(?3, title), model = COALESCE(?4, model),
                         agent_id = CASE WHEN ?5 = 1 THEN ?6 ELSE agent_id END, updated_at = ?7
                     WHERE id = ?1 AND user_id = ?2 RETURNING {CONVERSATION_COLUMNS}"
                ),
                libsql::params![id, user_id, changes.title, changes.model, set_agent, agent, crate::ids::now()],
            )
            .await?;
        first(rows, conversation_from_row).await
    }

    /// Deletes a conversation with its messages, usage and idempotency records, all or nothing.
    pub async fn delete_conversation(
        &self,
        id: ConversationId,
        user_id: UserId,
    ) -> StoreResult<bool> {
        let tx = self.0.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM conversations WHERE id = ?1 AND user_id = ?2",
                libsql::params![id, user_id],
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for table in ["messages", "usage", "idempotency_keys"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE conversation_id = ?1"),
                [id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn set_summary(
        &self,
        conversation_id: ConversationId,
        summary: &str,
        through_seq: i64,
    ) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE conversations SET summary = ?2, summary_through_seq = ?3 WHERE id = ?1",
                libsql::params![conversation_id, summary, through_seq],
            )
            .await?;
        Ok(())
    }
}

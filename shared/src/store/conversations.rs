//! Conversations, messages, usage rows and idempotency keys.

use super::{col, Conn, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub model: String,
    pub agent_id: Option<String>,
    pub project_id: Option<String>,
    pub summary: Option<String>,
    pub summary_through_seq: Option<i64>,
    pub message_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub last_message_at: Option<String>,
    pub activity_at: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    System,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Complete,
    Incomplete,
    Failed,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub conversation_id: String,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
}

/// One model call's usage and cost; also the API's usage row shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct UsageRow {
    pub message_id: String,
    pub model: String,
    /// `chat` for the answer, `summary` for folding older turns into the rolling summary.
    pub kind: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
}

/// Token and cost totals for one model (or all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageTotals {
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
}

pub struct NewConversation<'a> {
    pub user_id: &'a str,
    pub title: &'a str,
    pub model: &'a str,
    pub agent_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
}

/// Where an Idempotency-Key stands.
#[derive(Debug)]
pub enum IdempotencyClaim {
    /// First use: the caller runs the request and records the answer.
    New,
    /// Seen before with this exact request; `answer` is `None` while the first run is in progress.
    Seen { answer: Option<(u16, String)> },
    /// Seen before with a different request.
    Mismatch,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => "system",
        }
    }
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Incomplete => "incomplete",
            MessageStatus::Failed => "failed",
        }
    }
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

const MESSAGE_COLUMNS: &str =
    "seq, id, conversation_id, role, content, status, model, error, created_at";

fn message_from_row(row: &libsql::Row) -> StoreResult<Message> {
    let role = match col::<String>(row, 3, "messages.role")?.as_str() {
        "user" => MessageRole::User,
        "assistant" => MessageRole::Assistant,
        "system" => MessageRole::System,
        _ => return Err(StoreError::Corrupt("messages.role")),
    };
    let status = match col::<String>(row, 5, "messages.status")?.as_str() {
        "complete" => MessageStatus::Complete,
        "incomplete" => MessageStatus::Incomplete,
        "failed" => MessageStatus::Failed,
        _ => return Err(StoreError::Corrupt("messages.status")),
    };
    Ok(Message {
        seq: col(row, 0, "messages.seq")?,
        id: col(row, 1, "messages.id")?,
        conversation_id: col(row, 2, "messages.conversation_id")?,
        role,
        content: col(row, 4, "messages.content")?,
        status,
        model: col(row, 6, "messages.model")?,
        error: col(row, 7, "messages.error")?,
        created_at: col(row, 8, "messages.created_at")?,
    })
}

async fn collect<T>(
    mut rows: libsql::Rows,
    f: fn(&libsql::Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(f(&row)?);
    }
    Ok(out)
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

async fn insert_message(
    tx: &libsql::Transaction,
    conversation_id: &str,
    role: MessageRole,
    content: &str,
    status: MessageStatus,
    model: Option<&str>,
    error: Option<&str>,
) -> StoreResult<Message> {
    let now = crate::ids::now();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING {MESSAGE_COLUMNS}"
            ),
            libsql::params![crate::ids::new_id(), conversation_id, role.as_str(), content, status.as_str(), model, error, now.clone()],
        )
        .await?;
    let message = collect(rows, message_from_row)
        .await?
        .pop()
        .ok_or(StoreError::Corrupt("messages"))?;
    tx.execute(
        "UPDATE conversations SET message_count = message_count + 1, last_message_at = ?2, activity_at = ?2, updated_at = ?2
         WHERE id = ?1",
        libsql::params![conversation_id, now],
    )
    .await?;
    Ok(message)
}

async fn insert_usage(
    tx: &libsql::Transaction,
    conversation_id: &str,
    user_id: &str,
    row: &UsageRow,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens, output_tokens,
             cached_tokens, cost_usd, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        libsql::params![
            crate::ids::new_id(),
            row.message_id.as_str(),
            conversation_id,
            user_id,
            row.model.as_str(),
            row.kind.as_str(),
            row.input_tokens,
            row.output_tokens,
            row.cached_tokens,
            row.cost_usd,
            crate::ids::now()
        ],
    )
    .await?;
    Ok(())
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
                libsql::params![crate::ids::new_id(), new.user_id, new.title, new.model, new.agent_id, new.project_id, now],
            )
            .await?;
        collect(rows, conversation_from_row)
            .await?
            .pop()
            .ok_or(StoreError::Corrupt("conversations"))
    }

    /// The conversation if it exists and belongs to `user_id`; another user's is simply not found.
    pub async fn conversation(&self, id: &str, user_id: &str) -> StoreResult<Option<Conversation>> {
        let rows = self
            .0
            .query(
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND user_id = ?2"),
                [id, user_id],
            )
            .await?;
        Ok(collect(rows, conversation_from_row).await?.pop())
    }

    /// Newest activity first; `after` is the (activity_at, id) of the last item of the previous page.
    pub async fn list_conversations(
        &self,
        user_id: &str,
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
        id: &str,
        user_id: &str,
        title: Option<&str>,
        model: Option<&str>,
        agent_id: Option<Option<&str>>,
    ) -> StoreResult<Option<Conversation>> {
        let (set_agent, agent) = match agent_id {
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
                libsql::params![id, user_id, title, model, set_agent, agent, crate::ids::now()],
            )
            .await?;
        Ok(collect(rows, conversation_from_row).await?.pop())
    }

    /// Deletes a conversation with its messages and usage, all or nothing.
    pub async fn delete_conversation(&self, id: &str, user_id: &str) -> StoreResult<bool> {
        let tx = self.0.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM conversations WHERE id = ?1 AND user_id = ?2",
                [id, user_id],
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.execute("DELETE FROM messages WHERE conversation_id = ?1", [id])
            .await?;
        tx.execute("DELETE FROM usage WHERE conversation_id = ?1", [id])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Appends a message and bumps the conversation's counters in one transaction.
    pub async fn append_message(
        &self,
        conversation_id: &str,
        role: MessageRole,
        content: &str,
        status: MessageStatus,
        model: Option<&str>,
    ) -> StoreResult<Message> {
        let tx = self.0.transaction().await?;
        let message =
            insert_message(&tx, conversation_id, role, content, status, model, None).await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Stores a turn's answer with its usage rows (whose `message_id` is filled in) in one
    /// transaction: there is never an answer without its cost, nor a cost without its answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn append_answer(
        &self,
        conversation_id: &str,
        user_id: &str,
        content: &str,
        status: MessageStatus,
        model: &str,
        error: Option<&str>,
        usage: &mut [UsageRow],
    ) -> StoreResult<Message> {
        let tx = self.0.transaction().await?;
        let message = insert_message(
            &tx,
            conversation_id,
            MessageRole::Assistant,
            content,
            status,
            Some(model),
            error,
        )
        .await?;
        for row in usage.iter_mut() {
            row.message_id = message.id.clone();
            insert_usage(&tx, conversation_id, user_id, row).await?;
        }
        tx.commit().await?;
        Ok(message)
    }

    /// Oldest first, after `after_seq`.
    pub async fn list_messages(
        &self,
        conversation_id: &str,
        after_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
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
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM (
                         SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3
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
        conversation_id: &str,
        after_seq: i64,
    ) -> StoreResult<Vec<Message>> {
        let rows = self
            .0
            .query(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq"),
                libsql::params![conversation_id, after_seq],
            )
            .await?;
        collect(rows, message_from_row).await
    }

    /// A message, if it is in a conversation of `user_id`.
    pub async fn message_of_user(&self, id: &str, user_id: &str) -> StoreResult<Option<Message>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {} FROM messages m JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.id = ?1 AND c.user_id = ?2",
                    MESSAGE_COLUMNS
                        .split(", ")
                        .map(|c| format!("m.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                [id, user_id],
            )
            .await?;
        Ok(collect(rows, message_from_row).await?.pop())
    }

    pub async fn set_summary(
        &self,
        conversation_id: &str,
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

    pub async fn message_usage(&self, message_id: &str) -> StoreResult<Vec<UsageRow>> {
        let rows = self
            .0
            .query(
                "SELECT message_id, model, kind, input_tokens, output_tokens, cached_tokens, cost_usd
                 FROM usage WHERE message_id = ?1 ORDER BY created_at, id",
                [message_id],
            )
            .await?;
        collect(rows, |row| {
            Ok(UsageRow {
                message_id: col(row, 0, "usage.message_id")?,
                model: col(row, 1, "usage.model")?,
                kind: col(row, 2, "usage.kind")?,
                input_tokens: col(row, 3, "usage.input_tokens")?,
                output_tokens: col(row, 4, "usage.output_tokens")?,
                cached_tokens: col(row, 5, "usage.cached_tokens")?,
                cost_usd: col(row, 6, "usage.cost_usd")?,
            })
        })
        .await
    }

    /// Per-model totals of a conversation.
    pub async fn conversation_usage(&self, conversation_id: &str) -> StoreResult<Vec<UsageTotals>> {
        let rows = self
            .0
            .query(
                "SELECT model, SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), SUM(cost_usd)
                 FROM usage WHERE conversation_id = ?1 GROUP BY model ORDER BY model",
                [conversation_id],
            )
            .await?;
        collect(rows, |row| {
            Ok(UsageTotals {
                model: col(row, 0, "usage.model")?,
                input_tokens: col(row, 1, "usage.input_tokens")?,
                output_tokens: col(row, 2, "usage.output_tokens")?,
                cached_tokens: col(row, 3, "usage.cached_tokens")?,
                cost_usd: col(row, 4, "usage.cost_usd")?,
            })
        })
        .await
    }

    /// Claims an Idempotency-Key for `request` (its canonical JSON). The primary key decides, so two
    /// concurrent first uses cannot both run.
    pub async fn claim_idempotency_key(
        &self,
        user_id: &str,
        key: &str,
        request: &str,
    ) -> StoreResult<IdempotencyClaim> {
        let inserted = self
            .0
            .execute(
                "INSERT INTO idempotency_keys (user_id, key, request, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id, key) DO NOTHING",
                libsql::params![user_id, key, request, crate::ids::now()],
            )
            .await?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::New);
        }
        let mut rows = self
            .0
            .query(
                "SELECT request, status_code, response FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
                [user_id, key],
            )
            .await?;
        let row = rows
            .next()
            .await?
            .ok_or(StoreError::Corrupt("idempotency_keys"))?;
        if col::<String>(&row, 0, "idempotency_keys.request")? != request {
            return Ok(IdempotencyClaim::Mismatch);
        }
        let status: Option<i64> = col(&row, 1, "idempotency_keys.status_code")?;
        let response: Option<String> = col(&row, 2, "idempotency_keys.response")?;
        Ok(IdempotencyClaim::Seen {
            answer: status.zip(response).map(|(s, r)| (s as u16, r)),
        })
    }

    pub async fn record_idempotent_answer(
        &self,
        user_id: &str,
        key: &str,
        status: u16,
        response: &str,
    ) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE idempotency_keys SET status_code = ?3, response = ?4 WHERE user_id = ?1 AND key = ?2",
                libsql::params![user_id, key, status as i64, response],
            )
            .await?;
        Ok(())
    }
}

impl Conn {
    /// Frees a key whose request was refused before anything was stored.
    pub async fn release_idempotency_key(&self, user_id: &str, key: &str) -> StoreResult<()> {
        self.0
            .execute(
                "DELETE FROM idempotency_keys WHERE user_id = ?1 AND key = ?2 AND response IS NULL",
                [user_id, key],
            )
            .await?;
        Ok(())
    }
}

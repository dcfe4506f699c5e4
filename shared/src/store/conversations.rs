//! Conversations: one row each, with the counters and the rolling summary a turn needs.

use super::{
    col, collect, first,
    messages::{
        message_at, Message, NewMessage, MESSAGE_COLUMNS_NO_SIBLINGS, MESSAGE_COLUMN_COUNT,
    },
    Conn, Row, StoreError, StoreResult,
};
use crate::ids::{AgentId, ConversationId, MessageId, ProjectId, UserId};

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: ConversationId,
    pub user_id: UserId,
    pub title: String,
    pub model: String,
    pub agent_id: Option<AgentId>,
    pub project_id: Option<ProjectId>,
    pub summary: Option<String>,
    /// Messages with `seq` up to this one are covered by the summary.
    pub summary_through_seq: Option<i64>,
    pub message_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub last_message_at: Option<String>,
    /// The list's sort key: `last_message_at`, or `created_at` before the first message.
    pub activity_at: String,
    /// Whether the conversation is more than one path (an answer regenerated, a message edited).
    pub branched: bool,
    /// The newest message of the active path (none before the first message).
    pub active_leaf_id: Option<MessageId>,
}

pub struct NewConversation<'a> {
    pub user_id: UserId,
    pub title: &'a str,
    pub model: &'a str,
    pub agent_id: Option<AgentId>,
    pub project_id: Option<ProjectId>,
}

/// Where a turn's new message goes in the conversation's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnParent {
    /// Under the active leaf (a plain turn).
    ActiveLeaf,
    /// A new root (editing the conversation's first message).
    Root,
    /// Under this message (editing the message after it).
    Message(MessageId),
    /// Under the user message this answer answers (regenerating the answer).
    AnswerOf(MessageId),
}

/// A turn's parent, as the store found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentPlace {
    Root,
    Message {
        seq: i64,
        on_path: bool,
    },
    /// Not a message of the conversation (or not an answer, to regenerate).
    Missing,
}

/// What a turn in an existing conversation plans with: see [`Conn::turn_context`].
#[derive(Debug)]
pub struct TurnContext {
    pub conversation: Conversation,
    /// The path's newest messages up to the parent (which is the last of them).
    pub history: Vec<Message>,
    pub parent: ParentPlace,
}

/// A partial update; `None` leaves a column as it is, `agent_id: Some(None)` clears the agent.
#[derive(Default)]
pub struct ConversationChanges<'a> {
    pub title: Option<&'a str>,
    pub model: Option<&'a str>,
    pub agent_id: Option<Option<AgentId>>,
}

/// The conversation's columns from the table (or alias) `$t`; the active leaf is the newest
/// message of the path (any message of a conversation that never branched).
macro_rules! conversation_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".user_id, ",
            $t,
            ".title, ",
            $t,
            ".model, ",
            $t,
            ".agent_id, ",
            $t,
            ".project_id, ",
            $t,
            ".summary, ",
            $t,
            ".summary_through_seq, ",
            $t,
            ".message_count, ",
            $t,
            ".created_at, ",
            $t,
            ".updated_at, ",
            $t,
            ".last_message_at, ",
            $t,
            ".activity_at, ",
            $t,
            ".branched, CASE WHEN ",
            $t,
            ".branched
                 THEN (SELECT l.id FROM messages l WHERE l.conversation_id = ",
            $t,
            ".id
                       AND l.on_path = 1 ORDER BY l.seq DESC LIMIT 1)
                 ELSE (SELECT l.id FROM messages l WHERE l.conversation_id = ",
            $t,
            ".id
                       ORDER BY l.seq DESC LIMIT 1) END"
        )
    };
}

const CONVERSATION_COLUMNS: &str = conversation_columns!("conversations");

fn conversation_from_row(row: &Row) -> StoreResult<Conversation> {
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
        branched: col(row, 13, "conversations.branched")?,
        active_leaf_id: col(row, 14, "conversations.active_leaf_id")?,
    })
}

/// [`CONVERSATION_COLUMNS`] of the table aliased `c`.
const C_CONVERSATION_COLUMNS: &str = conversation_columns!("c");
const CONVERSATION_COLUMN_COUNT: usize = 15;

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
pub(super) fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Conn {
    pub async fn create_conversation(&self, new: NewConversation<'_>) -> StoreResult<Conversation> {
        let now = crate::ids::now();
        let rows = self.query(
                &format!(
                    "INSERT INTO conversations (id, user_id, title, model, agent_id, project_id, created_at, updated_at, activity_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7) RETURNING {CONVERSATION_COLUMNS}"
                ),
                libsql::params![ConversationId::new(), new.user_id, new.title, new.model, new.agent_id, new.project_id, now],
            )
            .await?;
        first(rows, conversation_from_row)?.ok_or(StoreError::Corrupt("conversations"))
    }

    /// A new conversation with its first message, in one statement (the `conversation_starts`
    /// view's trigger): a conversation never exists without the message that started it.
    pub async fn start_conversation(
        &self,
        new: NewConversation<'_>,
        first_message: NewMessage<'_>,
    ) -> StoreResult<(Conversation, Message)> {
        let now = crate::ids::now();
        let rows = self.query(
                "INSERT INTO conversation_starts
                     (conversation_id, user_id, title, model, agent_id, project_id, message_id, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 RETURNING (SELECT seq FROM messages WHERE messages.id = conversation_starts.message_id)",
                libsql::params![
                    first_message.conversation_id,
                    new.user_id,
                    new.title,
                    new.model,
                    new.agent_id,
                    new.project_id,
                    first_message.id,
                    first_message.content,
                    now.clone()
                ],
            )
            .await?;
        let seq = first(rows, |row| col(row, 0, "messages.seq"))?
            .ok_or(StoreError::Corrupt("messages"))?;
        let conversation = Conversation {
            id: first_message.conversation_id,
            user_id: new.user_id,
            title: new.title.to_string(),
            model: new.model.to_string(),
            agent_id: new.agent_id,
            project_id: new.project_id,
            summary: None,
            summary_through_seq: None,
            message_count: 1,
            created_at: now.clone(),
            updated_at: now.clone(),
            last_message_at: Some(now.clone()),
            activity_at: now.clone(),
            branched: false,
            active_leaf_id: Some(first_message.id),
        };
        Ok((conversation, first_message.stored(seq, now)))
    }

    /// What a turn in an existing conversation needs, in one query: the conversation (if it
    /// belongs to `user_id`), where the turn's message goes, and the newest `limit` messages of the
    /// path ending there, oldest first, past the summary when the summary covers an earlier part of
    /// that path (else the summary is left out of the answer and the whole path counts). The
    /// conversation comes as the first row and each message as a row of its own (the other side's
    /// columns NULL), so its columns are not repeated.
    pub async fn turn_context(
        &self,
        id: ConversationId,
        user_id: UserId,
        parent: TurnParent,
        limit: u32,
    ) -> StoreResult<Option<TurnContext>> {
        let no_message = ["NULL"; MESSAGE_COLUMN_COUNT].join(", ");
        let no_conversation = ["NULL"; CONVERSATION_COLUMN_COUNT].join(", ");
        let (kind, message) = match parent {
            TurnParent::ActiveLeaf => ("leaf", None),
            TurnParent::Root => ("root", None),
            TurnParent::Message(id) => ("message", Some(id)),
            TurnParent::AnswerOf(id) => ("answer", Some(id)),
        };
        // `leaf` is the parent's seq: 0 for a root, -1 for a message that is not there (or, to
        // regenerate, not an answer of this conversation).
        let rows = self
            .query(
                &format!(
                    "WITH conv AS (
                         SELECT c.*, COALESCE(CASE ?5
                             WHEN 'root' THEN 0
                             WHEN 'leaf' THEN COALESCE(CASE WHEN c.branched
                                 THEN (SELECT max(seq) FROM messages WHERE conversation_id = c.id AND on_path = 1)
                                 ELSE (SELECT max(seq) FROM messages WHERE conversation_id = c.id) END, 0)
                             WHEN 'message' THEN (SELECT seq FROM messages WHERE id = ?4 AND conversation_id = c.id)
                             WHEN 'answer' THEN (
                                 SELECT COALESCE(a.parent_seq, (SELECT max(p.seq) FROM messages p
                                        WHERE p.conversation_id = c.id AND p.seq < a.seq), 0)
                                 FROM messages a
                                 WHERE a.id = ?4 AND a.conversation_id = c.id AND a.role = 'assistant')
                             END, -1) AS leaf
                         FROM conversations c WHERE c.id = ?1 AND c.user_id = ?2),
                     covered AS (
                         SELECT CASE WHEN summary_through_seq < leaf AND EXISTS (
                                         SELECT 1 FROM messages s
                                         WHERE s.seq = summary_through_seq AND s.on_path IS NOT 0)
                                     THEN summary_through_seq ELSE 0 END AS seq
                         FROM conv)
                     SELECT {C_CONVERSATION_COLUMNS}, {no_message}, 0 AS k, (SELECT seq FROM covered),
                            c.leaf, (SELECT on_path IS NOT 0 FROM messages WHERE seq = c.leaf)
                     FROM conv c
                     UNION ALL
                     SELECT {no_conversation}, {MESSAGE_COLUMNS_NO_SIBLINGS}, m.seq, NULL, NULL, NULL
                     FROM messages m
                     WHERE m.seq IN (
                         SELECT seq FROM messages, conv
                         WHERE conversation_id = ?1 AND conv.branched = 1 AND on_path = 1
                           AND seq <= conv.leaf AND seq > (SELECT seq FROM covered)
                         ORDER BY seq DESC LIMIT ?3)
                        OR m.seq IN (
                         SELECT seq FROM messages, conv
                         WHERE conversation_id = ?1 AND conv.branched = 0
                           AND seq <= conv.leaf AND seq > (SELECT seq FROM covered)
                         ORDER BY seq DESC LIMIT ?3)
                     ORDER BY k"
                ),
                libsql::params![id, user_id, limit as i64, message, kind],
            )
            .await?;
        let mut rows = rows.iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let mut conversation = conversation_from_row(first)?;
        let at = (CONVERSATION_COLUMN_COUNT + MESSAGE_COLUMN_COUNT + 1) as i32;
        let covered: i64 = col(first, at, "conversations.summary_through_seq")?;
        let leaf: i64 = col(first, at + 1, "messages.seq")?;
        let on_path: Option<bool> = col(first, at + 2, "messages.on_path")?;
        if covered == 0 {
            // The summary covers another branch (or nothing): this turn plans without it.
            conversation.summary = None;
            conversation.summary_through_seq = None;
        }
        let history = rows
            .map(|row| message_at(row, CONVERSATION_COLUMN_COUNT as i32))
            .collect::<StoreResult<Vec<_>>>()?;
        let parent = match leaf {
            -1 => ParentPlace::Missing,
            0 => ParentPlace::Root,
            seq => ParentPlace::Message {
                seq,
                on_path: on_path.unwrap_or(false),
            },
        };
        Ok(Some(TurnContext {
            conversation,
            history,
            parent,
        }))
    }

    /// The conversation if it exists and belongs to `user_id`; another user's is simply not found.
    pub async fn conversation(
        &self,
        id: ConversationId,
        user_id: UserId,
    ) -> StoreResult<Option<Conversation>> {
        let rows = self.query(
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND user_id = ?2"),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, conversation_from_row)
    }

    /// Any user's conversation (the admin console; owner checks are the caller's).
    pub async fn conversation_by_id(
        &self,
        id: ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        let rows = self
            .query(
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
                [id],
            )
            .await?;
        first(rows, conversation_from_row)
    }

    /// Newest activity first; `after` is the (activity_at, id) of the last item of the previous page.
    /// The user's conversations, newest activity first: those of the app (`from_api` false), those
    /// started through the OpenAI-compatible endpoint (true), or all (`None`).
    pub async fn list_conversations(
        &self,
        user_id: UserId,
        title_query: Option<&str>,
        from_api: Option<bool>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .query(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations
                     WHERE user_id = ?1
                       AND (?2 IS NULL OR title LIKE ?2 ESCAPE '\\')
                       AND (?3 IS NULL OR (activity_at, id) < (?3, ?4))
                       AND (?6 IS NULL
                            OR (id IN (SELECT conversation_id FROM api_conversations WHERE user_id = ?1)) = ?6)
                     ORDER BY activity_at DESC, id DESC
                     LIMIT ?5"
                ),
                libsql::params![
                    user_id,
                    title_query.map(like_pattern),
                    after_at,
                    after_id,
                    limit as i64 + 1,
                    from_api.map(i64::from)
                ],
            )
            .await?;
        collect(rows, conversation_from_row)
    }

    /// Marks a conversation as started through the OpenAI-compatible endpoint.
    pub async fn mark_api_conversation(
        &self,
        id: ConversationId,
        user_id: UserId,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO api_conversations (conversation_id, user_id) VALUES (?1, ?2)",
            libsql::params![id, user_id],
        )
        .await?;
        Ok(())
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
        let rows = self.query(
                &format!(
                    "UPDATE conversations SET title = COALESCE(?3, title), model = COALESCE(?4, model),
                         agent_id = CASE WHEN ?5 = 1 THEN ?6 ELSE agent_id END, updated_at = ?7
                     WHERE id = ?1 AND user_id = ?2 RETURNING {CONVERSATION_COLUMNS}"
                ),
                libsql::params![id, user_id, changes.title, changes.model, set_agent, agent, crate::ids::now()],
            )
            .await?;
        first(rows, conversation_from_row)
    }

    /// Deletes a conversation with its messages, usage, idempotency records and attachment rows, all
    /// or nothing.
    pub async fn delete_conversation(
        &self,
        id: ConversationId,
        user_id: UserId,
    ) -> StoreResult<bool> {
        let tx = self.transaction("conversations.delete").await?;
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
        for table in [
            "messages",
            "usage",
            "idempotency_keys",
            "attachments",
            "shares",
        ] {
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
        self.execute(
            "UPDATE conversations SET summary = ?2, summary_through_seq = ?3 WHERE id = ?1",
            libsql::params![conversation_id, summary, through_seq],
        )
        .await?;
        Ok(())
    }
}

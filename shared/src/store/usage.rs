//! Usage rows: one per model call, with its tokens and cost.

use super::{col, collect, Conn, StoreResult};
use crate::ids::{ConversationId, MessageId, UserId};

/// One model call's usage and cost, billed to a message.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub message_id: MessageId,
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

/// Inside the transaction that stores the message the usage is billed to.
pub(super) async fn insert_usage(
    tx: &libsql::Transaction,
    conversation_id: ConversationId,
    user_id: UserId,
    row: &UsageRecord,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens, output_tokens,
             cached_tokens, cost_usd, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        libsql::params![
            crate::ids::new_id(),
            row.message_id,
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
    pub async fn message_usage(&self, message_id: MessageId) -> StoreResult<Vec<UsageRecord>> {
        let rows = self
            .0
            .query(
                "SELECT message_id, model, kind, input_tokens, output_tokens, cached_tokens, cost_usd
                 FROM usage WHERE message_id = ?1 ORDER BY created_at, id",
                [message_id],
            )
            .await?;
        collect(rows, |row| {
            Ok(UsageRecord {
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
    pub async fn conversation_usage(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<UsageTotals>> {
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
}

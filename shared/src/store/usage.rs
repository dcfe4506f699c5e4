//! Usage rows: one per model call, with its tokens and cost.

use super::{col, collect, Conn, StoreResult};
use crate::ids::MessageId;

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
    /// Input tokens written to the provider's prompt cache (part of `input_tokens`).
    pub cache_write_tokens: i64,
    /// Reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: i64,
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

/// The rows as the `messages_with_usage` view takes them (each with a new id).
pub(super) fn to_json(rows: &[UsageRecord]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": crate::ids::new_id(),
                "model": r.model,
                "kind": r.kind,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cached_tokens": r.cached_tokens,
                "cache_write_tokens": r.cache_write_tokens,
                "reasoning_tokens": r.reasoning_tokens,
                "cost_usd": r.cost_usd,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

impl Conn {
    pub async fn message_usage(&self, message_id: MessageId) -> StoreResult<Vec<UsageRecord>> {
        let rows = self.query(
                "SELECT message_id, model, kind, input_tokens, output_tokens, cached_tokens, cost_usd,
                        cache_write_tokens, reasoning_tokens
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
                cache_write_tokens: col(row, 7, "usage.cache_write_tokens")?,
                reasoning_tokens: col(row, 8, "usage.reasoning_tokens")?,
            })
        })
    }

    /// Per-model totals of a conversation.
    /// Per-model totals of the usage billed to `which` of the conversation's messages.
    pub async fn conversation_usage(
        &self,
        conversation: &super::Conversation,
        which: super::Which,
    ) -> StoreResult<Vec<UsageTotals>> {
        let path = if which == super::Which::ActivePath && conversation.branched {
            "AND EXISTS (SELECT 1 FROM messages m WHERE m.id = u.message_id AND m.on_path = 1)"
        } else {
            ""
        };
        let rows = self.query(
                &format!(
                    "SELECT model, SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), SUM(cost_usd)
                     FROM usage u WHERE conversation_id = ?1 {path} GROUP BY model ORDER BY model"
                ),
                [conversation.id],
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
    }
}

//! The answer of a turn: what it cost and how it is stored, and the errors a turn ends with.

use super::*;

/// Price of a call from the catalog's per-million prices. Input tokens read from and written to the
/// provider's prompt cache are part of the input, priced at the cached and cache-write rates where
/// the model has them (else as input); reasoning tokens are part of the output, priced as output.
pub fn cost_usd(model: &Model, usage: TokenUsage) -> f64 {
    let p = &model.pricing;
    let cached = usage.cached_tokens.min(usage.input_tokens);
    let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
    let fresh = usage.input_tokens - cached - written;
    (fresh as f64 * p.input_per_mtok_usd
        + cached as f64 * p.cached_input_per_mtok_usd.unwrap_or(p.input_per_mtok_usd)
        + written as f64 * p.cache_write_per_mtok_usd.unwrap_or(p.input_per_mtok_usd)
        + usage.output_tokens as f64 * p.output_per_mtok_usd)
        / 1_000_000.0
}

/// A finished answer, before it is stored.
pub(super) struct Answer<'a> {
    pub(super) id: MessageId,
    pub(super) conversation_id: ConversationId,
    /// The model that answered (a fallback, when `fallback_from` names the one asked for).
    pub(super) model: &'a Model,
    pub(super) fallback_from: Option<&'a str>,
    pub(super) text: &'a str,
    pub(super) status: MessageStatus,
    /// The stable code of the turn's failure, stored on the message.
    pub(super) error: Option<&'static str>,
    pub(super) changes: &'a [crate::store::FileChange],
    pub(super) agent_id: Option<AgentId>,
    pub(super) citations: &'a [Citation],
    pub(super) tool_calls: &'a [ToolCall],
    /// The user message it answers.
    pub(super) parent: crate::store::ParentRef,
    /// A streamed answer's deltas not stored yet.
    pub(super) final_chunk: Option<&'a crate::store::Chunk>,
}

/// Stores the answer with its usage rows (the chat row last), each priced at its own model's
/// prices, in one statement, which also settles the turn's quota holds.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn store_answer(
    conn: &Conn,
    user_id: UserId,
    answer: Answer<'_>,
    usage_rows: &[(&str, &Model, TokenUsage)],
    holds: &[String],
) -> Result<(Message, UsageRecord)> {
    let id = answer.id;
    let mut rows: Vec<UsageRecord> = usage_rows
        .iter()
        .map(|(kind, model, usage)| UsageRecord {
            message_id: id,
            model: model.id.clone(),
            kind: kind.to_string(),
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cache_write_tokens: usage.cache_write_tokens as i64,
            reasoning_tokens: usage.reasoning_tokens as i64,
            cost_usd: cost_usd(model, *usage),
        })
        .collect();
    let message = conn
        .append_answer(
            user_id,
            NewMessage {
                id,
                conversation_id: answer.conversation_id,
                role: MessageRole::Assistant,
                content: answer.text,
                status: answer.status,
                model: Some(&answer.model.id),
                error: answer.error,
                changes: answer.changes,
                agent_id: answer.agent_id,
                citations: answer.citations,
                tool_calls: answer.tool_calls,
                fallback_from: answer.fallback_from,
                parent: Some(answer.parent),
            },
            &rows,
            holds,
            answer.final_chunk,
        )
        .await?;
    let chat_row = rows.pop().expect("the chat usage row is always the last");
    Ok((message, chat_row))
}

/// The turn's error when its budget ran out: what was generated is stored `incomplete`.
pub(super) fn out_of_time() -> Error {
    tracing::warn!("the turn ran out of its time budget");
    Error::Provider {
        code: "turn_budget_exceeded",
        message: "the answer took longer than this deployment allows; the text so far is kept",
    }
}

/// The turn's error for a provider failure: its code and generic message for the client, its own
/// text for the log.
pub(super) fn provider_error(e: ProviderError) -> Error {
    e.into()
}

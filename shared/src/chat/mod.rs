//! A chat turn: resolve the conversation and model, store the user message (before any model is called), build the context,
//! call the provider with bounded retries, and store the answer with its usage and cost.
//!
//! Failure keeps the conversation consistent: the user message stays, the assistant message is
//! stored as `failed` (or `incomplete` with the text so far when the client went away), and the
//! caller gets a 502/504 problem.

pub mod context;
pub mod tools;

use std::time::Duration;

use tokio::{sync::mpsc, time::Instant};

use crate::{
    agents, attachments,
    blobs::BlobStore,
    config::ChatConfig,
    conversations::{self, NewConversationInput, Title},
    error::{Error, FieldError, Result},
    ids::{AgentId, AttachmentId, ConversationId, MessageId, UserId},
    kinds::{MessageRole, MessageStatus},
    knowledge,
    mcp::McpTools,
    models::{Catalog, Model},
    providers::{
        Completion, ModelRequest, ProviderError, Providers, Purpose, RetryPolicy, StreamEvent,
        TokenUsage, ToolCall, ToolChoice, ToolSpec, Turn,
    },
    quotas::{self, Budget, Holds},
    store::{
        AttachmentRef, Citation, Conn, Conversation, Message, NewMessage, ParentPlace, ParentRef,
        TurnContext, TurnParent, UsageRecord,
    },
};

mod answer;
mod input;
pub mod journal;
mod plan;
pub mod resume;
mod run;
mod start;
mod turn;
pub use answer::*;
pub use input::*;
use journal::Journal;
use plan::*;
use run::*;
use start::*;
pub use turn::*;

/// The most messages read to build a turn's context. Older unsummarised messages beyond this are
/// left out (they only exist if summaries failed for a long time), so a turn's cost is bounded.
const CONTEXT_MESSAGES: u32 = 400;

/// How a turn treats its provider: retries before any output, the longest silence in a stream, and
/// the wall-clock budget of the whole turn (below the function's timeout, so that a turn always
/// ends stored).
#[derive(Debug, Clone, Copy)]
pub struct TurnSettings {
    pub retry: RetryPolicy,
    pub stream_idle_timeout: Duration,
    pub budget: Duration,
    /// Model calls the coding agent may make in one turn.
    pub max_agent_steps: u32,
    pub project_limits: crate::projects::ProjectLimits,
    /// Tokens the retrieved knowledge sources may take in the context.
    pub knowledge_tokens: usize,
    /// The largest attachment a model is sent.
    pub max_attachment_bytes: u64,
}

impl TurnSettings {
    /// The chat settings, with the providers' retries and the project limits the coding agent
    /// writes under.
    pub fn new(
        chat: &ChatConfig,
        retry: RetryPolicy,
        project_limits: crate::projects::ProjectLimits,
    ) -> Self {
        TurnSettings {
            retry,
            stream_idle_timeout: chat.stream_idle_timeout,
            budget: chat.turn_budget,
            max_agent_steps: chat.max_agent_steps,
            project_limits,
            knowledge_tokens: chat.knowledge_context_tokens,
            max_attachment_bytes: chat.max_chat_attachment_bytes,
        }
    }
}

/// A turn whose user message is stored, ready to call the model.
pub struct Started {
    pub conversation: Conversation,
    pub user_message: Message,
    /// The answer's id, chosen before the model is called (a streamed answer is resumed by it).
    pub answer_id: MessageId,
    model: Model,
    /// The models tried after `model`, in order, when its provider fails before answering.
    fallbacks: Vec<Model>,
    plan: context::Plan,
    /// The system prompt before any summary: the agent's (or the default) with the project's view.
    base_system: String,
    /// The agent in force, recorded on the answer.
    agent_id: Option<AgentId>,
    /// Whether the model is offered tools (the agent loop runs).
    tool_turn: bool,
    /// The project the coding agent works on, when the turn has tools.
    project: Option<crate::ids::ProjectId>,
    /// The tools offered from the user's tool servers, and their sessions.
    mcp: McpTools,
    /// The turn's reservation against the user's daily budget.
    holds: Holds,
    /// The knowledge sources given to the model, recorded on the answer.
    citations: Vec<Citation>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub conversation_id: ConversationId,
    pub user_message: Message,
    pub assistant_message: Message,
    pub usage: UsageRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_uses_per_million_prices_and_the_cached_rate() {
        let model: Model = serde_json::from_value(serde_json::json!({
            "id": "x", "provider": "openai", "provider_model_id": "x", "display_name": "x",
            "context_window": 1000, "max_output_tokens": 10,
            "pricing": {"input_per_mtok_usd": 3.0, "output_per_mtok_usd": 15.0,
                        "cached_input_per_mtok_usd": 0.3, "cache_write_per_mtok_usd": 3.75},
            "capabilities": {"streaming": true, "vision": false, "documents": false, "tools": false},
            "available": true,
        }))
        .unwrap();
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_tokens: 400_000,
            ..TokenUsage::default()
        };
        // 600k fresh × $3 + 400k cached × $0.30 + 100k out × $15 = 1.8 + 0.12 + 1.5
        assert!((cost_usd(&model, usage) - 3.42).abs() < 1e-9);
        // 200k of the input written to the cache: 400k fresh × $3 + 200k × $3.75 + the rest;
        // reasoning tokens are output already counted.
        let written = TokenUsage {
            cache_write_tokens: 200_000,
            reasoning_tokens: 50_000,
            ..usage
        };
        assert!((cost_usd(&model, written) - (1.2 + 0.75 + 0.12 + 1.5)).abs() < 1e-9);
    }
}

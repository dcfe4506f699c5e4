//! A chat turn: resolve the conversation and model, store the user message (before any model is called), build the context,
//! call the provider with bounded retries, and store the answer with its usage and cost.
//!
//! Failure keeps the conversation consistent: the user message stays, the assistant message is
//! stored as `failed` (or `incomplete` with the text so far when the client went away), and the
//! caller gets a 502/504 problem.

pub mod agent;
pub mod context;

use std::time::Duration;

use tokio::{sync::mpsc, time::Instant};

use crate::{
    agents,
    blobs::{BlobKey, BlobStore},
    config::Config,
    conversations::{self, NewConversationInput, Title},
    error::{Error, FieldError, FieldErrors, Result},
    ids::{AgentId, AttachmentId, ConversationId, MessageId, UserId},
    kinds::{AttachmentStatus, MessageRole, MessageStatus, UploadPurpose},
    knowledge,
    models::{Catalog, Model},
    providers::{
        Completion, FileKind, FilePart, ModelRequest, ProviderError, Providers, Purpose,
        RetryPolicy, StreamEvent, TokenUsage, ToolCall, ToolChoice, ToolSpec, Turn,
    },
    quotas::{self, Budget, Holds},
    store::{AttachmentRef, Citation, Conn, Conversation, Message, NewMessage, UsageRecord},
};

mod answer;
mod run;
mod start;
mod turn;
pub use answer::*;
use run::*;
use start::*;
pub use turn::*;

/// The most messages read to build a turn's context. Older unsummarised messages beyond this are
/// left out (they only exist if summaries failed for a long time), so a turn's cost is bounded.
const CONTEXT_MESSAGES: u32 = 400;

/// A chat request, parsed: the message is within limits and the model (if named) is usable.
#[derive(Debug)]
pub struct ChatInput {
    pub conversation_id: Option<ConversationId>,
    pub message: String,
    pub model: Option<Model>,
    /// The agent for this turn; without one, the conversation's.
    pub agent_id: Option<AgentId>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub attachments: AttachmentsInput,
    /// For a new conversation: the project it works on (the coding agent's).
    pub project_id: Option<crate::ids::ProjectId>,
    /// Retrieve from the user's knowledge before the model call; `None` follows the agent.
    pub knowledge: Option<bool>,
    /// Tokens the retrieved sources may take in the context.
    pub knowledge_tokens: usize,
    /// A client's own system prompt (the OpenAI-compatible endpoint), in place of the agent's or
    /// the default.
    pub system_prompt: Option<String>,
    /// A client that owns its history (the OpenAI-compatible endpoint): the turns the model sees,
    /// and the tools it may call for the client. The conversation stores `message` as this turn.
    pub client: Option<ClientTurns>,
    /// A new conversation started through the OpenAI-compatible endpoint: kept out of the
    /// conversation list unless it asks for them (`?source=api`).
    pub from_api: bool,
}

/// What a client that owns its history sends: every turn goes to the model as given (no summary,
/// no dropping; more than the model's window is refused), and the tools are the client's to run:
/// the answer names the calls, the client sends their outputs in its next request.
#[derive(Debug, Default)]
pub struct ClientTurns {
    /// Alternating turns, oldest first, starting and ending with the user's (the newest may carry
    /// images and the outputs of the tools called in the answer before it).
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
}

/// The attachments to send with the message (distinct ids), and the largest one a model is sent.
#[derive(Debug, Default)]
pub struct AttachmentsInput {
    pub ids: Vec<AttachmentId>,
    pub max_bytes: u64,
}

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
}

impl From<&Config> for TurnSettings {
    fn from(config: &Config) -> Self {
        TurnSettings {
            retry: RetryPolicy::from(config),
            stream_idle_timeout: config.stream_idle_timeout,
            budget: config.turn_budget,
            max_agent_steps: config.max_agent_steps,
            project_limits: crate::projects::ProjectLimits::from(config),
        }
    }
}

/// A turn whose user message is stored, ready to call the model.
pub struct Started {
    pub conversation: Conversation,
    pub user_message: Message,
    model: Model,
    plan: context::Plan,
    /// The system prompt before any summary: the agent's (or the default) with the project's view.
    base_system: String,
    /// The agent in force, recorded on the answer.
    agent_id: Option<AgentId>,
    /// Whether the model is offered tools (the agent loop runs).
    tool_turn: bool,
    /// The project the coding agent works on, when the turn has tools.
    project: Option<crate::ids::ProjectId>,
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
    use crate::models::{Capabilities, Pricing, Provider};

    #[test]
    fn cost_uses_per_million_prices_and_the_cached_rate() {
        let model = Model {
            id: "x".into(),
            provider: Provider::Openai,
            provider_model_id: "x".into(),
            display_name: "x".into(),
            description: None,
            context_window: 1000,
            max_output_tokens: 10,
            pricing: Pricing {
                input_per_mtok_usd: 3.0,
                output_per_mtok_usd: 15.0,
                cached_input_per_mtok_usd: Some(0.3),
            },
            capabilities: Capabilities {
                streaming: true,
                vision: false,
                documents: false,
                tools: false,
            },
            offline: false,
            available: true,
        };
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_tokens: 400_000,
        };
        // 600k fresh × $3 + 400k cached × $0.30 + 100k out × $15 = 1.8 + 0.12 + 1.5
        assert!((cost_usd(&model, usage) - 3.42).abs() < 1e-9);
    }
}

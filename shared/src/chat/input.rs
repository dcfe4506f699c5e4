//! A chat turn's input, and the rules it obeys whichever transport carries it (`POST /chat`, the
//! WebSocket, the OpenAI-compatible endpoint): each transport names its own fields, the rules and
//! their wording live here.

use super::*;

/// The limits of a chat input, from the deployment's settings.
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    pub max_message_chars: usize,
    pub max_attachments: usize,
}

impl From<&ChatConfig> for InputLimits {
    fn from(config: &ChatConfig) -> Self {
        InputLimits {
            max_message_chars: config.max_message_chars,
            max_attachments: config.max_chat_attachments,
        }
    }
}

impl InputLimits {
    /// The message: not blank, at most `max_message_chars` characters.
    pub fn check_message(&self, message: &str) -> std::result::Result<(), String> {
        if message.trim().is_empty() {
            Err("must not be empty".into())
        } else if message.chars().count() > self.max_message_chars {
            Err(format!(
                "must be at most {} characters",
                self.max_message_chars
            ))
        } else {
            Ok(())
        }
    }

    /// How many attachments one message may carry.
    pub fn check_attachment_count(&self, count: usize) -> std::result::Result<(), String> {
        if count > self.max_attachments {
            Err(format!(
                "at most {} attachments per message",
                self.max_attachments
            ))
        } else {
            Ok(())
        }
    }
}

/// The sampling temperature, when given: 0 to 2.
pub fn check_temperature(temperature: Option<f32>) -> std::result::Result<(), &'static str> {
    match temperature {
        Some(t) if !(0.0..=2.0).contains(&t) => Err("must be between 0 and 2"),
        _ => Ok(()),
    }
}

/// The answer's token limit, when given: at least 1 (the model's own ceiling is checked once the
/// model is known).
pub fn check_max_tokens(max_tokens: Option<u32>) -> std::result::Result<(), &'static str> {
    match max_tokens {
        Some(0) => Err("must be at least 1"),
        _ => Ok(()),
    }
}

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
    /// The attachments to send with the message (distinct ids).
    pub attachments: Vec<AttachmentId>,
    /// For a new conversation: the project it works on (the coding agent's).
    pub project_id: Option<crate::ids::ProjectId>,
    /// Retrieve from the user's knowledge before the model call; `None` follows the agent.
    pub knowledge: Option<bool>,
    /// A client's own system prompt (the OpenAI-compatible endpoint), in place of the agent's or
    /// the default.
    pub system_prompt: Option<String>,
    /// A client that owns its history (the OpenAI-compatible endpoint): the turns the model sees,
    /// and the tools it may call for the client. The conversation stores `message` as this turn.
    pub client: Option<ClientTurns>,
    /// A new conversation started through the OpenAI-compatible endpoint: kept out of the
    /// conversation list unless it asks for them (`?source=api`).
    pub from_api: bool,
    /// Where the turn goes in the conversation's tree (an existing conversation only). To
    /// regenerate, `message` is empty: the answer's user message is answered again.
    pub parent: TurnParent,
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

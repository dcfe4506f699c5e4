//! Chat turns: message and attachment limits, the coding agent's steps, deadlines, knowledge room.

use super::*;

/// Chat turns: input limits, the coding agent, deadlines, and agents' prompts.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub max_message_chars: usize,
    /// Attachments per chat message.
    pub max_chat_attachments: usize,
    /// Largest attachment sent to a model (Bedrock takes documents up to 4.5 MB, images 3.75 MB).
    pub max_chat_attachment_bytes: u64,
    /// Model calls the coding agent may make in one turn (tool calls and the answer).
    pub max_agent_steps: u32,
    /// Longest silence allowed inside a streamed answer.
    pub stream_idle_timeout: Duration,
    /// Wall-clock budget of a whole chat turn (summary, retries and answer), below the chat
    /// function's timeout so a turn always ends stored.
    pub turn_budget: Duration,
    /// Tokens of knowledge sources a chat turn may add to the model's context.
    pub knowledge_context_tokens: usize,
    /// Longest agent system prompt, in characters.
    pub max_system_prompt_chars: usize,
    /// The most messages a share link's snapshot holds (a longer active path is refused).
    pub max_share_messages: u32,
    /// Share links one account may hold at once.
    pub max_shares_per_user: u32,
    /// The longest a resumed stream follows a live answer before the client is told to reconnect.
    pub resume_tail: Duration,
    /// How often a resumed stream reads the store for more of the answer.
    pub resume_poll: Duration,
}

impl ChatConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(ChatConfig {
            max_message_chars: number(var, "MAX_MESSAGE_CHARS", 32_000)?,
            max_chat_attachments: number(var, "MAX_CHAT_ATTACHMENTS", 10)?,
            max_chat_attachment_bytes: number(var, "MAX_CHAT_ATTACHMENT_BYTES", 4_500_000)?,
            max_agent_steps: number(var, "MAX_AGENT_STEPS", 8u32)?.clamp(1, 50),
            stream_idle_timeout: Duration::from_secs(number(
                var,
                "STREAM_IDLE_TIMEOUT_SECONDS",
                30,
            )?),
            turn_budget: Duration::from_secs(number(var, "TURN_BUDGET_SECONDS", 240)?),
            knowledge_context_tokens: number(var, "KNOWLEDGE_CONTEXT_TOKENS", 1500)?,
            max_system_prompt_chars: number(var, "MAX_SYSTEM_PROMPT_CHARS", 32_000)?,
            max_share_messages: number(var, "MAX_SHARE_MESSAGES", 2_000u32)?.max(1),
            max_shares_per_user: number(var, "MAX_SHARES_PER_USER", 200u32)?,
            resume_tail: Duration::from_secs(number(var, "RESUME_TAIL_SECONDS", 60u64)?.max(1)),
            resume_poll: Duration::from_millis(
                number(var, "RESUME_POLL_MS", 250u64)?.clamp(20, 5000),
            ),
        })
    }
}

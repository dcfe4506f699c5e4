//! A chat completion's answer in OpenAI's shape: usage, finish reason, tool calls.

use super::*;
use crate::{
    kinds::MessageStatus,
    store::{Message, UsageRecord},
};

pub(super) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) fn usage_of(usage: &UsageRecord) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    })
}

pub(super) fn finish_reason(assistant: &Message) -> &'static str {
    if !assistant.tool_calls.is_empty() {
        "tool_calls"
    } else if assistant.status == MessageStatus::Complete {
        "stop"
    } else {
        "length"
    }
}

/// The answer's tool calls in OpenAI's shape (`arguments` as a JSON string); with `index` for
/// stream deltas.
pub(super) fn tool_calls_of(assistant: &Message, indexed: bool) -> Option<Vec<Value>> {
    if assistant.tool_calls.is_empty() {
        return None;
    }
    Some(
        assistant
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut call = json!({
                    "id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.input.to_string()},
                });
                if indexed {
                    call["index"] = json!(i);
                }
                call
            })
            .collect(),
    )
}

//! A chat completion's answer in OpenAI's shape: usage, finish reason, tool calls.

use super::*;

pub(super) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) fn usage_of(usage: &Value) -> Value {
    let input = usage["input_tokens"].as_i64().unwrap_or(0);
    let output = usage["output_tokens"].as_i64().unwrap_or(0);
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "prompt_tokens_details": {"cached_tokens": usage["cached_tokens"].as_i64().unwrap_or(0)},
    })
}

pub(super) fn finish_reason(assistant: &Value) -> &'static str {
    if assistant["tool_calls"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        "tool_calls"
    } else if assistant["status"] == "complete" {
        "stop"
    } else {
        "length"
    }
}

/// The answer's tool calls in OpenAI's shape (`arguments` as a JSON string); with `index` for
/// stream deltas.
pub(super) fn tool_calls_of(assistant: &Value, indexed: bool) -> Option<Vec<Value>> {
    let calls = assistant["tool_calls"]
        .as_array()
        .filter(|c| !c.is_empty())?;
    Some(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut call = json!({
                    "id": c["id"], "type": "function",
                    "function": {"name": c["name"], "arguments": c["input"].to_string()},
                });
                if indexed {
                    call["index"] = json!(i);
                }
                call
            })
            .collect(),
    )
}

//! `local/echo`: the offline model. Deterministic, streams word by word, counts tokens the way a
//! rough tokenizer would (four characters a token). It is labelled offline in the catalog and says so
//! in every answer, so nobody mistakes it for an AI model.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    Completion, EventStream, ModelRequest, Purpose, Speaker, StreamEvent, TokenUsage, ToolCall,
};

pub struct Echo {
    /// Pause between streamed words, so streaming is visible on a laptop; zero in tests.
    delay: Duration,
}

impl Echo {
    pub fn new(delay: Duration) -> Self {
        Echo { delay }
    }

    fn reply(request: &ModelRequest) -> String {
        let last_turn = request
            .turns
            .iter()
            .rev()
            .find(|t| t.speaker == Speaker::User);
        let last = last_turn.map(|t| t.text.as_str()).unwrap_or("");
        // A summarisation request asks for a summary; answer with a deterministic digest.
        if request.purpose == Purpose::Summary {
            let words: Vec<&str> = last.split_whitespace().take(40).collect();
            return format!("Summary (offline echo model): {}", words.join(" "));
        }
        let mut reply = format!("Echo (offline model, no AI): {last}");
        // Files are acknowledged by name and size, so the attachment flow is visible offline.
        let files = last_turn.map(|t| t.files.as_slice()).unwrap_or_default();
        if !files.is_empty() {
            let listed: Vec<String> = files
                .iter()
                .map(|f| format!("{} ({} bytes, {})", f.name, f.bytes.len(), f.media_type))
                .collect();
            reply.push_str(&format!("\n\nAttachments received: {}", listed.join(", ")));
        }
        reply
    }

    /// The reply, cut to the request's output budget.
    fn bounded_reply(request: &ModelRequest) -> (String, Option<String>) {
        let reply = Self::reply(request);
        let max_chars = request.max_tokens as usize * 4;
        if reply.chars().count() > max_chars {
            (
                reply.chars().take(max_chars).collect(),
                Some("max_tokens".into()),
            )
        } else {
            (reply, Some("end_turn".into()))
        }
    }

    pub fn complete(&self, request: &ModelRequest) -> Completion {
        if !request.tools.is_empty() {
            if let Some(step) = Self::tool_step(request) {
                return step;
            }
        }
        let (text, stop_reason) = Self::bounded_reply(request);
        Completion {
            usage: TokenUsage::estimate(request, &text),
            text,
            stop_reason,
            tool_calls: Vec::new(),
        }
    }

    /// The offline tool protocol, so the agent's loop runs without keys. In the newest user message,
    /// `/tool name {json}` calls any tool on offer, `/list [prefix]`, `/read path`, `/search text`,
    /// `/delete path` call those tools, and
    /// `/write path` writes the lines after it (up to a line `/end`, or the message's end). After
    /// the tools answered, the reply lists what each returned (its first line).
    fn tool_step(request: &ModelRequest) -> Option<Completion> {
        let last = request.turns.last()?;
        if last.speaker != Speaker::User {
            return None;
        }
        if !last.tool_outputs.is_empty() {
            let lines: Vec<String> = last
                .tool_outputs
                .iter()
                .map(|o| {
                    let first = o.content.lines().next().unwrap_or("");
                    let state = if o.is_error { "error" } else { "ok" };
                    format!("- {state}: {first}")
                })
                .collect();
            let text = format!(
                "Echo (offline model, no AI) ran the tools:\n{}",
                lines.join("\n")
            );
            return Some(Completion {
                usage: TokenUsage::estimate(request, &text),
                text,
                stop_reason: Some("end_turn".into()),
                tool_calls: Vec::new(),
            });
        }
        // Only the tools on offer are called, as a model would.
        let calls: Vec<ToolCall> = Self::commands(&last.text)
            .into_iter()
            .filter(|c| request.tools.iter().any(|t| t.name == c.name))
            .collect();
        if calls.is_empty() {
            return None;
        }
        Some(Completion {
            usage: TokenUsage::estimate(request, ""),
            text: String::new(),
            stop_reason: Some("tool_use".into()),
            tool_calls: calls,
        })
    }

    fn commands(text: &str) -> Vec<ToolCall> {
        let mut calls = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let (command, arg) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let arg = arg.trim();
            let (name, input) = match command {
                // Any tool by name, with a JSON input (a client's own tools).
                "/tool" => {
                    let (name, input) = arg.split_once(' ').unwrap_or((arg, "{}"));
                    let input = serde_json::from_str(input.trim())
                        .unwrap_or_else(|_| serde_json::Value::String(input.trim().into()));
                    (name, input)
                }
                "/list" => ("list_files", serde_json::json!({ "prefix": arg })),
                "/read" => ("read_file", serde_json::json!({ "path": arg })),
                "/search" => ("search_files", serde_json::json!({ "query": arg })),
                "/delete" => ("delete_file", serde_json::json!({ "path": arg })),
                "/write" => {
                    let mut content = String::new();
                    while let Some(next) = lines.peek() {
                        if next.trim() == "/end" {
                            lines.next();
                            break;
                        }
                        if next.trim_start().starts_with('/') && Self::is_command(next) {
                            break;
                        }
                        content.push_str(lines.next().unwrap_or_default());
                        content.push('\n');
                    }
                    (
                        "write_file",
                        serde_json::json!({ "path": arg, "content": content }),
                    )
                }
                _ => continue,
            };
            calls.push(ToolCall {
                id: format!("echo-{}", calls.len() + 1),
                name: name.into(),
                input,
            });
        }
        calls
    }

    fn is_command(line: &str) -> bool {
        let word = line.trim().split(' ').next().unwrap_or("");
        matches!(
            word,
            "/tool" | "/list" | "/read" | "/search" | "/delete" | "/write"
        )
    }

    pub fn stream(&self, request: &ModelRequest) -> EventStream {
        let (text, stop_reason) = Self::bounded_reply(request);
        let usage = TokenUsage::estimate(request, &text);
        let delay = self.delay;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            // Words keep their following whitespace, so the deltas concatenate to the reply exactly.
            for piece in text.split_inclusive(char::is_whitespace) {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if tx
                    .send(Ok(StreamEvent::Delta(piece.to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Ok(StreamEvent::End { usage, stop_reason })).await;
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Turn;

    fn request(text: &str) -> ModelRequest {
        ModelRequest {
            system: None,
            turns: vec![Turn::new(Speaker::User, text)],
            temperature: None,
            max_tokens: 100,
            purpose: Purpose::Chat,
            tools: Vec::new(),
            tool_choice: Default::default(),
        }
    }

    #[tokio::test]
    async fn streams_concatenate_to_the_completion() {
        let echo = Echo::new(Duration::ZERO);
        let req = request("hello  there\nworld");
        let done = echo.complete(&req);
        assert_eq!(
            done.text,
            "Echo (offline model, no AI): hello  there\nworld"
        );
        let mut rx = echo.stream(&req);
        let mut text = String::new();
        let mut deltas = 0;
        loop {
            match rx.recv().await.unwrap().unwrap() {
                StreamEvent::Delta(d) => {
                    deltas += 1;
                    text.push_str(&d)
                }
                StreamEvent::End { usage, .. } => {
                    assert_eq!(usage, done.usage);
                    break;
                }
            }
        }
        assert_eq!(text, done.text);
        assert!(deltas > 3);
        assert_eq!(
            done.usage.output_tokens,
            super::super::estimate_tokens(&done.text)
        );
    }

    #[test]
    fn output_respects_max_tokens() {
        let mut req = request(&"word ".repeat(100));
        req.max_tokens = 5;
        let done = Echo::new(Duration::ZERO).complete(&req);
        assert_eq!(done.text.chars().count(), 20);
        assert_eq!(done.stop_reason.as_deref(), Some("max_tokens"));
    }
}

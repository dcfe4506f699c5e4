//! OpenAI-compatible chat completions (OpenAI, Groq, Ollama, vLLM, …): JSON for whole answers,
//! Server-Sent Events for streams, with `stream_options.include_usage` so a stream ends with usage.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{
    Completion, EventStream, ModelRequest, ProviderError, Speaker, StreamEvent, TokenUsage,
    ToolCall, ToolChoice,
};
use crate::{config::OpenAiConfig, models::Model};

pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    embeddings_url: String,
    api_key: Option<crate::config::SecretRef>,
    /// The key, once read (a secret is read on the first call, then kept).
    key: tokio::sync::OnceCell<String>,
    timeout: Duration,
}

impl OpenAi {
    pub fn new(config: &OpenAiConfig, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        OpenAi {
            http,
            url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            embeddings_url: format!("{}/embeddings", config.base_url.trim_end_matches('/')),
            api_key: config.api_key.clone(),
            key: tokio::sync::OnceCell::new(),
            timeout,
        }
    }

    fn body(model: &Model, request: &ModelRequest, stream: bool) -> Value {
        let mut messages = Vec::with_capacity(request.turns.len() + 1);
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for turn in &request.turns {
            let role = match turn.speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            // Tool outputs answer the previous turn's calls, one `tool` message each.
            for output in &turn.tool_outputs {
                messages.push(json!({
                    "role": "tool", "tool_call_id": output.call_id, "content": output.content,
                }));
            }
            if !turn.tool_calls.is_empty() {
                let calls: Vec<Value> = turn
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.input.to_string()},
                        })
                    })
                    .collect();
                let content = (!turn.text.is_empty()).then_some(turn.text.as_str());
                messages
                    .push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
            } else if !turn.files.is_empty() {
                messages.push(json!({"role": role, "content": content_parts(turn)}));
            } else if !turn.text.is_empty() || turn.tool_outputs.is_empty() {
                messages.push(json!({"role": role, "content": turn.text}));
            }
        }
        let mut body = json!({
            "model": model.provider_model_id,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "stream": stream,
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }))
                .collect();
            body["tools"] = Value::Array(tools);
            match &request.tool_choice {
                ToolChoice::Auto => {}
                ToolChoice::None => body["tool_choice"] = json!("none"),
                ToolChoice::Required => body["tool_choice"] = json!("required"),
                ToolChoice::Named(name) => {
                    body["tool_choice"] = json!({"type": "function", "function": {"name": name}})
                }
            }
        }
        body
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, ProviderError> {
        self.post(&self.url, body).await
    }

    async fn post(&self, url: &str, body: &Value) -> Result<reqwest::Response, ProviderError> {
        let mut req = self.http.post(url).json(body);
        if let Some(source) = &self.api_key {
            let key = self
                .key
                .get_or_try_init(|| source.read())
                .await
                .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
            req = req.bearer_auth(key);
        }
        let response = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let detail = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        Err(match status.as_u16() {
            429 => ProviderError::Throttled { retry_after },
            408 => ProviderError::Timeout,
            500..=599 => ProviderError::Unavailable(format!("{status}: {detail}")),
            _ => ProviderError::Rejected(format!("{status}: {detail}")),
        })
    }

    /// One `/embeddings` call for a batch: the vectors in input order and the tokens billed.
    pub async fn embed(
        &self,
        model: &str,
        texts: &[String],
        dimensions: usize,
    ) -> Result<(Vec<Vec<f32>>, u64), ProviderError> {
        let body = json!({
            "model": model, "input": texts, "dimensions": dimensions, "encoding_format": "float",
        });
        let response = self.post(&self.embeddings_url, &body).await?;
        let v: Value = tokio::time::timeout(self.timeout, response.json())
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(|e| ProviderError::Unavailable(format!("unreadable answer: {e}")))?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in v["data"].as_array().into_iter().flatten() {
            let index = item["index"].as_u64().unwrap_or(u64::MAX) as usize;
            let vector: Option<Vec<f32>> = item["embedding"].as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64().map(|x| x as f32))
                    .collect()
            });
            if let (Some(slot), Some(vector)) = (vectors.get_mut(index), vector) {
                *slot = Some(vector);
            }
        }
        let vectors = vectors
            .into_iter()
            .map(|v| v.filter(|v| v.len() == dimensions))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ProviderError::Unavailable(format!(
                    "the answer lacks a {dimensions}-dimension embedding for some input"
                ))
            })?;
        Ok((vectors, v["usage"]["prompt_tokens"].as_u64().unwrap_or(0)))
    }

    pub async fn complete(
        &self,
        model: &Model,
        request: &ModelRequest,
    ) -> Result<Completion, ProviderError> {
        let response = self.send(&Self::body(model, request, false)).await?;
        let v: Value = tokio::time::timeout(self.timeout, response.json())
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(|e| ProviderError::Unavailable(format!("unreadable answer: {e}")))?;
        let choice = &v["choices"][0];
        let tool_calls: Vec<ToolCall> = choice["message"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| ToolCall {
                id: c["id"].as_str().unwrap_or_default().to_string(),
                name: c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                // Arguments arrive as a JSON string; a malformed one reaches the tool as a string,
                // which refuses it, and the model sees why.
                input: c["function"]["arguments"]
                    .as_str()
                    .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.into())))
                    .unwrap_or(Value::Null),
            })
            .collect();
        let text = match choice["message"]["content"].as_str() {
            Some(t) => t,
            None if !tool_calls.is_empty() => "",
            None => {
                return Err(ProviderError::Unavailable(
                    "the answer has no message content".into(),
                ))
            }
        };
        Ok(Completion {
            text: text.to_string(),
            usage: usage(&v["usage"]),
            stop_reason: choice["finish_reason"].as_str().map(str::to_owned),
            tool_calls,
        })
    }

    pub async fn stream(
        &self,
        model: &Model,
        request: &ModelRequest,
    ) -> Result<EventStream, ProviderError> {
        let mut response = self.send(&Self::body(model, request, true)).await?;
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(async move {
            let mut parser = SseParser::default();
            loop {
                let chunk = match response.chunk().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(ProviderError::Stream(
                                "the stream ended before [DONE]".into(),
                            )))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(ProviderError::Stream(format!("the stream broke: {e}"))))
                            .await;
                        return;
                    }
                };
                for data in parser.push(&chunk) {
                    let event = match parser.interpret(&data) {
                        Ok(Some(event)) => event,
                        Ok(None) => continue,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let end = matches!(event, StreamEvent::End { .. });
                    // A closed receiver means nobody is listening: stop reading, which drops the
                    // upstream request.
                    if tx.send(Ok(event)).await.is_err() || end {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unavailable(format!("could not reach the provider: {e}"))
    }
}

fn usage(v: &Value) -> TokenUsage {
    TokenUsage {
        input_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
        cached_tokens: v["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
        // OpenAI's cache writes cost nothing extra and are not reported; reasoning models
        // report their thinking within the completion tokens.
        cache_write_tokens: 0,
        reasoning_tokens: v["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap_or(0),
    }
}

/// Splits an SSE byte stream into `data:` payloads and folds OpenAI chunks into stream events.
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    usage: TokenUsage,
    stop_reason: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some((end, sep)) = find_event_end(&self.buffer) {
            let event: Vec<u8> = self.buffer.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&event[..end]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }

    fn interpret(&mut self, data: &str) -> Result<Option<StreamEvent>, ProviderError> {
        if data.trim() == "[DONE]" {
            return Ok(Some(StreamEvent::End {
                usage: self.usage,
                stop_reason: self.stop_reason.take(),
            }));
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::Stream(format!("unreadable chunk: {e}")))?;
        if let Some(message) = v
            .get("error")
            .map(|e| e["message"].as_str().unwrap_or("unknown error"))
        {
            return Err(ProviderError::Stream(message.to_string()));
        }
        if v.get("usage").is_some_and(|u| u.is_object()) {
            self.usage = usage(&v["usage"]);
        }
        let choice = &v["choices"][0];
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.stop_reason = Some(reason.to_string());
        }
        Ok(choice["delta"]["content"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| StreamEvent::Delta(s.to_string())))
    }
}

/// The end of the first complete event (blank line), and the separator's length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A turn with files as Chat Completions content parts: images as data URLs, PDFs as `file` parts,
/// text files as text (named), then the message itself.
fn content_parts(turn: &super::Turn) -> Value {
    use base64::Engine;
    let data_url = |f: &super::FilePart| {
        format!(
            "data:{};base64,{}",
            f.media_type,
            base64::engine::general_purpose::STANDARD.encode(&f.bytes)
        )
    };
    let mut parts: Vec<Value> = turn
        .files
        .iter()
        .map(|f| match f.kind {
            super::FileKind::Image => {
                json!({"type": "image_url", "image_url": {"url": data_url(f)}})
            }
            super::FileKind::Pdf => {
                json!({"type": "file", "file": {"filename": f.name, "file_data": data_url(f)}})
            }
            super::FileKind::Text => json!({
                "type": "text",
                "text": format!("File {}:\n{}", f.name, String::from_utf8_lossy(&f.bytes)),
            }),
        })
        .collect();
    parts.push(json!({"type": "text", "text": turn.text}));
    Value::Array(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reasoning model's usage as OpenAI reports it: cached prompt tokens and reasoning tokens
    /// inside the prompt and completion counts.
    #[test]
    fn reasoning_and_cached_tokens_are_read_from_the_details() {
        let reported = json!({
            "prompt_tokens": 1200, "completion_tokens": 900, "total_tokens": 2100,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 640, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}
        });
        assert_eq!(
            usage(&reported),
            TokenUsage {
                input_tokens: 1200,
                output_tokens: 900,
                cached_tokens: 1024,
                cache_write_tokens: 0,
                reasoning_tokens: 640,
            }
        );
    }

    #[test]
    fn sse_events_split_across_chunks_are_reassembled() {
        let mut p = SseParser::default();
        assert!(p
            .push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel")
            .is_empty());
        let data = p.push(b"lo\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}\r\n\r\n: comment\n\n");
        assert_eq!(data.len(), 2);
        assert_eq!(
            p.interpret(&data[0]).unwrap(),
            Some(StreamEvent::Delta("Hello".into()))
        );
        assert_eq!(
            p.interpret(&data[1]).unwrap(),
            Some(StreamEvent::Delta("!".into()))
        );
        let data = p.push(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\ndata: [DONE]\n\n");
        assert_eq!(p.interpret(&data[0]).unwrap(), None);
        assert_eq!(
            p.interpret(&data[1]).unwrap(),
            Some(StreamEvent::End {
                usage: TokenUsage {
                    input_tokens: 9,
                    output_tokens: 2,
                    cached_tokens: 4,
                    ..TokenUsage::default()
                },
                stop_reason: Some("stop".into())
            })
        );
    }
}

//! The `openai` function: the OpenAI Chat Completions wire format, so OpenAI SDKs and tools work
//! against CodeChat with `base_url = <API>/api/v1/openai/v1` and an API key (or an access token).
//! A completion is an ordinary chat turn (`api::chat::turn_input`): the same providers, retries,
//! budgets and usage rows; it is stored as a conversation marked as the API's (listed with
//! `GET /conversations?source=api`). Errors on these routes use OpenAI's shape
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, FromRequestParts, State},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    chat::{self, Answer, Frame},
    CurrentUser,
};
use crate::{
    chat::{AttachmentsInput, ChatInput},
    error::Error,
    function::{Function, Limits, Transport},
    http::{parse_json, sse},
    kinds::MessageRole,
    state::AppState,
    store::User,
};

/// Streamed completions, as the chat function streams its turns.
pub const FUNCTION: Function = Function {
    name: "openai",
    transport: Transport::Streaming(routes),
    limits: Limits {
        timeout_secs: 300,
        memory_mb: 256,
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_models))
}

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
    retry_after: Option<u64>,
}

impl OpenAiError {
    fn invalid(param: &str, message: impl Into<String>) -> Self {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param: Some(param.to_string()),
            retry_after: None,
        }
    }

    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl From<Error> for OpenAiError {
    fn from(e: Error) -> Self {
        let problem = e.problem();
        let status = e.status();
        if status.is_server_error() {
            tracing::error!(error = %e, "completion failed");
        }
        let fields: Vec<String> = problem
            .errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect();
        let message = if fields.is_empty() {
            problem.detail.clone()
        } else {
            fields.join("; ")
        };
        let (kind, code) = match (status.as_u16(), e.code()) {
            (401, _) => ("invalid_request_error", Some("invalid_api_key")),
            (403, _) => ("invalid_request_error", Some("permission_denied")),
            (404, _) => ("invalid_request_error", Some("not_found")),
            (429, Some("daily_token_limit")) => ("insufficient_quota", Some("insufficient_quota")),
            (429, _) => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
            (400..=499, _) => ("invalid_request_error", None),
            (_, code) => ("api_error", code.or(Some("server_error"))),
        };
        OpenAiError {
            // Field errors are OpenAI's 400s.
            status: if status == StatusCode::UNPROCESSABLE_ENTITY {
                StatusCode::BAD_REQUEST
            } else {
                status
            },
            message,
            kind,
            code,
            param: problem.errors.first().map(|f| f.field.clone()),
            retry_after: e.retry_after_secs(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The caller behind `Authorization: Bearer <API key or access token>`, refused in OpenAI's shape.
pub struct Caller(User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpenAiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        Ok(Caller(user))
    }
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    messages: Option<Vec<InMessage>>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    tools: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A completion request checked and turned into a chat turn's input.
struct Checked {
    input: ChatInput,
    model: String,
    stream: bool,
    include_usage: bool,
}

fn text_of(content: &Option<Value>, at: usize) -> Result<String, OpenAiError> {
    let param = format!("messages[{at}].content");
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = Vec::new();
            for part in parts {
                match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(t)) => text.push(t.to_string()),
                    (Some("image_url" | "input_audio" | "file"), _) => {
                        return Err(OpenAiError::invalid(
                            &param,
                            "only text content parts are supported here",
                        ))
                    }
                    _ => {
                        return Err(OpenAiError::invalid(
                            &param,
                            "a content part is {\"type\": \"text\", \"text\": ...}",
                        ))
                    }
                }
            }
            Ok(text.join("\n"))
        }
        _ => Err(OpenAiError::invalid(
            &param,
            "content must be a string or an array of text parts",
        )),
    }
}

fn check(state: &AppState, req: CompletionRequest) -> Result<Checked, OpenAiError> {
    let model_id = req
        .model
        .ok_or_else(|| OpenAiError::invalid("model", "you must provide a model"))?;
    let model = match state.catalog().get(&model_id) {
        None => {
            return Err(OpenAiError {
                status: StatusCode::NOT_FOUND,
                message: format!("the model `{model_id}` does not exist"),
                kind: "invalid_request_error",
                code: Some("model_not_found"),
                param: Some("model".into()),
                retry_after: None,
            })
        }
        Some(m) if !m.available => {
            return Err(OpenAiError::invalid(
                "model",
                format!("the model `{model_id}` is not available on this deployment"),
            ))
        }
        Some(m) => m.clone(),
    };
    if req.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::invalid("n", "only n = 1 is supported"));
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(OpenAiError::invalid(
            "tools",
            "tools are not supported by this endpoint yet",
        ));
    }
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(OpenAiError::invalid(
            "temperature",
            "must be between 0 and 2",
        ));
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    if max_tokens == Some(0) {
        return Err(OpenAiError::invalid("max_tokens", "must be at least 1"));
    }
    let messages = req.messages.unwrap_or_default();
    let Some((last, earlier)) = messages.split_last() else {
        return Err(OpenAiError::invalid(
            "messages",
            "messages must hold at least one message",
        ));
    };
    let mut system = Vec::new();
    let mut prior = Vec::new();
    for (i, m) in earlier.iter().enumerate() {
        let text = text_of(&m.content, i)?;
        match m.role.as_str() {
            "system" | "developer" => system.push(text),
            "user" => prior.push((MessageRole::User, text)),
            "assistant" => prior.push((MessageRole::Assistant, text)),
            "tool" => {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].role"),
                    "tool messages need tools, which this endpoint does not support yet",
                ))
            }
            other => {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role `{other}`"),
                ))
            }
        }
    }
    let at = messages.len() - 1;
    if last.role != "user" {
        return Err(OpenAiError::invalid(
            &format!("messages[{at}].role"),
            "the last message must be the user's",
        ));
    }
    let message = text_of(&last.content, at)?;
    let max_chars = state.config().max_message_chars;
    if message.trim().is_empty() {
        return Err(OpenAiError::invalid(
            &format!("messages[{at}].content"),
            "must not be empty",
        ));
    }
    if message.chars().count() > max_chars {
        return Err(OpenAiError::invalid(
            &format!("messages[{at}].content"),
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(Checked {
        model: model.id.clone(),
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
        input: ChatInput {
            conversation_id: None,
            message,
            model: Some(model),
            agent_id: None,
            temperature: req.temperature,
            max_tokens,
            attachments: AttachmentsInput {
                ids: Vec::new(),
                max_bytes: state.config().max_chat_attachment_bytes,
            },
            project_id: None,
            knowledge: Some(false),
            knowledge_tokens: state.config().knowledge_context_tokens,
            system_prompt: (!system.is_empty()).then(|| system.join("\n\n")),
            prior,
            from_api: true,
        },
    })
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn usage_of(usage: &Value) -> Value {
    let input = usage["input_tokens"].as_i64().unwrap_or(0);
    let output = usage["output_tokens"].as_i64().unwrap_or(0);
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "prompt_tokens_details": {"cached_tokens": usage["cached_tokens"].as_i64().unwrap_or(0)},
    })
}

fn finish_reason(assistant: &Value) -> &'static str {
    if assistant["status"] == "complete" {
        "stop"
    } else {
        "length"
    }
}

/// Creates a chat completion (OpenAI's Chat Completions), whole or streamed (`stream: true`:
/// `chat.completion.chunk` events ending with `data: [DONE]`; `stream_options.include_usage` adds
/// a last chunk with `usage`).
#[utoipa::path(post, path = "/api/v1/openai/v1/chat/completions", tag = "openai", security(("bearer" = [])),
    request_body(content = Object, description = "An OpenAI Chat Completions request"),
    responses((status = 200, description = "`chat.completion`, or `text/event-stream` chunks"),
        (status = 400, description = "OpenAI error shape"), (status = 401), (status = 404), (status = 429), (status = 502)))]
async fn chat_completions(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => OpenAiError::from(Error::PayloadTooLarge {
            limit: state.config().max_json_body_bytes,
        }),
        _ => OpenAiError::invalid("body", e.body_text()),
    })?;
    let request: CompletionRequest = parse_json(&body)?;
    let checked = check(&state, request)?;
    let model = checked.model.clone();
    match chat::turn_input(&state, &user, checked.input, checked.stream).await? {
        Answer::Whole { status, body } => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(problem_error(status, &v));
            }
            let assistant = &v["assistant_message"];
            Ok(Json(json!({
                "id": format!("chatcmpl-{}", assistant["id"].as_str().unwrap_or("")),
                "object": "chat.completion",
                "created": now(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": assistant["content"], "refusal": null},
                    "logprobs": null,
                    "finish_reason": finish_reason(assistant),
                }],
                "usage": usage_of(&v["usage"]),
            }))
            .into_response())
        }
        Answer::Frames { frames, turn } => Ok(stream(frames, turn, model, checked.include_usage)),
    }
}

/// A failed turn's problem (as the chat turn answered it), in OpenAI's shape.
fn problem_error(status: StatusCode, problem: &Value) -> OpenAiError {
    let code = problem["code"].as_str();
    OpenAiError {
        status,
        message: problem["detail"]
            .as_str()
            .unwrap_or("the completion failed")
            .to_string(),
        kind: if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_exceeded"
        } else if status.is_server_error() {
            "api_error"
        } else {
            "invalid_request_error"
        },
        code: match code {
            Some("timeout") => Some("timeout"),
            Some("provider_throttled") => Some("provider_throttled"),
            Some("provider_unavailable") => Some("provider_unavailable"),
            _ if status.is_server_error() => Some("server_error"),
            _ => None,
        },
        param: None,
        retry_after: None,
    }
}

/// The turn's frames as `chat.completion.chunk` events.
fn stream(
    mut frames: mpsc::Receiver<Frame>,
    turn: Option<tokio::task::JoinHandle<()>>,
    model: String,
    include_usage: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<sse::Event>(64);
    let relay = tokio::spawn(async move {
        let created = now();
        let mut id = String::from("chatcmpl");
        let chunk = |id: &str, delta: Value, finish: Option<&str>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        while let Some(frame) = frames.recv().await {
            let events: Vec<Value> = match frame.kind {
                "meta" => {
                    id = format!(
                        "chatcmpl-{}",
                        frame.data["user_message_id"].as_str().unwrap_or("")
                    );
                    vec![chunk(
                        &id,
                        json!({"role": "assistant", "content": ""}),
                        None,
                    )]
                }
                "delta" => vec![chunk(&id, json!({"content": frame.data["text"]}), None)],
                "done" => {
                    let assistant = &frame.data["assistant_message"];
                    let mut out = vec![chunk(&id, json!({}), Some(finish_reason(assistant)))];
                    if include_usage {
                        out.push(json!({
                            "id": id, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": usage_of(&frame.data["usage"]),
                        }));
                    }
                    out
                }
                "error" => {
                    let status = frame.data["status"]
                        .as_u64()
                        .and_then(|s| StatusCode::from_u16(s as u16).ok())
                        .unwrap_or(StatusCode::BAD_GATEWAY);
                    vec![problem_error(status, &frame.data).body()]
                }
                _ => Vec::new(),
            };
            for e in events {
                if tx
                    .send(sse::Event::default().data(e.to_string()))
                    .await
                    .is_err()
                {
                    // The client left: dropping `frames` ends the turn as `incomplete`.
                    return;
                }
            }
        }
        let _ = tx.send(sse::Event::default().data("[DONE]")).await;
    });
    sse::stream_then(rx, async move {
        let _ = relay.await;
        if let Some(turn) = turn {
            if let Err(e) = turn.await {
                tracing::error!(error = %e, "the completion's turn task failed");
            }
        }
    })
}

/// The models this deployment can call, in OpenAI's list shape.
#[utoipa::path(get, path = "/api/v1/openai/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, description = "`{object: list, data: [{id, object: model, created, owned_by}]}`"), (status = 401)))]
async fn list_models(State(state): State<AppState>, Caller(_): Caller) -> Json<Value> {
    let data: Vec<Value> = state
        .catalog()
        .all()
        .iter()
        .filter(|m| m.available)
        .map(|m| {
            json!({"id": m.id, "object": "model", "created": 0,
                "owned_by": serde_json::to_value(m.provider).unwrap_or(Value::Null)})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

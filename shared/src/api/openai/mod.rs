//! The `openai` function: the OpenAI Chat Completions wire format, so OpenAI SDKs and tools work
//! against CodeChat with `base_url = <API>/api/v1/openai/v1` and an API key (or an access token).
//! A completion is an ordinary chat turn (`chat::turn`): the same providers, retries,
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

use super::CurrentUser;
use crate::{
    chat::{self, ChatInput, ClientTurns},
    error::Error,
    function::{Function, Limits, Needs, Transport},
    http::{parse_json, sse},
    media::{self, Sniffed},
    providers::{FileKind, FilePart, Speaker, ToolCall, ToolChoice, ToolOutput, ToolSpec, Turn},
    state::AppState,
    store::User,
};

mod error;
mod messages;
mod request;
mod response;
pub use error::*;
use messages::*;
use request::*;
use response::*;

/// Streamed completions, as the chat function streams its turns.
pub const FUNCTION: Function = Function {
    name: "openai",
    transport: Transport::Streaming(routes),
    limits: Limits {
        timeout_secs: 300,
        memory_mb: 256,
    },
    needs: Needs::Store,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_models))
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
            limit: state.config().http.max_json_body_bytes,
        }),
        _ => OpenAiError::invalid("body", e.body_text()),
    })?;
    let request: CompletionRequest = parse_json(&body)?;
    let checked = check(&state, request)?;
    let model = checked.model.clone();
    let conn = state.store().conn().await.map_err(Error::from)?;
    let reply = chat::turn(
        &super::chat::turn_services(&state),
        conn,
        &user,
        checked.input,
        None,
        checked.stream,
    )
    .await?;
    match reply {
        chat::Reply::Answered(outcome) => {
            let assistant = &outcome.assistant_message;
            let mut message =
                json!({"role": "assistant", "content": assistant.content, "refusal": null});
            if let Some(calls) = tool_calls_of(assistant, false) {
                if assistant.content.is_empty() {
                    message["content"] = Value::Null;
                }
                message["tool_calls"] = Value::Array(calls);
            }
            // The model that answered: a fallback's id when the one asked for failed first.
            let answered = assistant.model.as_deref().unwrap_or(&model);
            Ok(Json(json!({
                "id": format!("chatcmpl-{}", assistant.id),
                "object": "chat.completion",
                "created": now(),
                "model": answered,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish_reason(assistant),
                }],
                "usage": usage_of(&outcome.usage),
            }))
            .into_response())
        }
        chat::Reply::Failed(error) => Err(failed_turn(&error)),
        chat::Reply::Streaming(running) => Ok(stream(running, model, checked.include_usage)),
    }
}

/// The turn's events as `chat.completion.chunk` events.
fn stream(running: chat::Running, model: String, include_usage: bool) -> Response {
    let chat::Running { mut events, task } = running;
    let (tx, rx) = mpsc::channel::<sse::Event>(64);
    let relay = tokio::spawn(async move {
        let created = now();
        let mut id = String::from("chatcmpl");
        let chunk = |id: &str, model: &str, delta: Value, finish: Option<&str>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        while let Some(event) = events.recv().await {
            let chunks: Vec<Value> = match event {
                chat::Event::Started { user_message, .. } => {
                    id = format!("chatcmpl-{}", user_message.id);
                    vec![chunk(
                        &id,
                        &model,
                        json!({"role": "assistant", "content": ""}),
                        None,
                    )]
                }
                chat::Event::Delta { text, .. } => {
                    vec![chunk(&id, &model, json!({"content": text}), None)]
                }
                chat::Event::Done(outcome) => {
                    let assistant = &outcome.assistant_message;
                    // The last chunks name the model that answered (a fallback's id when the one
                    // asked for failed before its first token).
                    let answered = assistant.model.as_deref().unwrap_or(&model);
                    let mut out = Vec::new();
                    if let Some(calls) = tool_calls_of(assistant, true) {
                        out.push(chunk(&id, answered, json!({"tool_calls": calls}), None));
                    }
                    out.push(chunk(
                        &id,
                        answered,
                        json!({}),
                        Some(finish_reason(assistant)),
                    ));
                    if include_usage {
                        out.push(json!({
                            "id": id, "object": "chat.completion.chunk", "created": created,
                            "model": answered, "choices": [], "usage": usage_of(&outcome.usage),
                        }));
                    }
                    out
                }
                chat::Event::Failed(error) => vec![failed_turn(&error).body()],
                // The client runs its own tools: no project tools, no file changes.
                chat::Event::ToolCall(_)
                | chat::Event::ToolResult(_)
                | chat::Event::FileChanged(_) => Vec::new(),
            };
            for c in chunks {
                if tx
                    .send(sse::Event::default().data(c.to_string()))
                    .await
                    .is_err()
                {
                    // The client left: dropping `events` ends the turn as `incomplete`.
                    return;
                }
            }
        }
        let _ = tx.send(sse::Event::default().data("[DONE]")).await;
    });
    sse::stream_then(rx, async move {
        let _ = relay.await;
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the completion's turn task failed");
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
                "owned_by": m.provider.name()})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

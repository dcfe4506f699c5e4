use std::convert::Infallible;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::conversations::MessageOut;
use crate::{
    auth::CurrentUser,
    chat::{self, ChatInput, Outcome},
    error::{Error, Problem, Result},
    http::ApiJson,
    store::{IdempotencyClaim, UsageRow},
    AppState,
};

/// This function group's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_chat))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
struct ChatRequest {
    /// Omit to start a new conversation, titled from the message.
    conversation_id: Option<String>,
    message: String,
    /// A catalog model id; defaults to the conversation's model.
    model: Option<String>,
    agent_id: Option<String>,
    attachment_ids: Option<Vec<String>>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    /// Answer with Server-Sent Events (`meta`, `delta`, `done`, `error`); so does `Accept: text/event-stream`.
    #[serde(default, skip_serializing)]
    stream: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct ChatResponse {
    conversation_id: String,
    user_message: MessageOut,
    assistant_message: MessageOut,
    usage: UsageRow,
}

impl From<Outcome> for ChatResponse {
    fn from(o: Outcome) -> Self {
        ChatResponse {
            conversation_id: o.conversation_id,
            user_message: o.user_message.into(),
            assistant_message: o.assistant_message.into(),
            usage: o.usage,
        }
    }
}

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// Sends a message and answers with the model's reply, whole or streamed as Server-Sent Events.
///
/// The user message is stored before the model is called. With an `Idempotency-Key` header, a
/// retried request returns the first answer and never adds a second turn.
#[utoipa::path(post, path = "/api/v1/chat", tag = "chat", security(("bearer" = [])), request_body = ChatRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key replays the first answer")),
    responses(
        (status = 200, body = ChatResponse, description = "The turn; or `text/event-stream` events `meta`, `delta`, `done`, `error` when streaming"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
        (status = 502, body = Problem), (status = 504, body = Problem)))]
async fn post_chat(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChatRequest>,
) -> Result<Response> {
    let stream = body.stream.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    let key = idempotency_key(&headers)?;

    if let Some(key) = &key {
        // The transport (`stream`) is not part of the request's identity; everything else is.
        let canonical = serde_json::to_string(&body).map_err(|e| Error::Internal(e.to_string()))?;
        let conn = state.store().conn().await?;
        match conn
            .claim_idempotency_key(&user.id, key, &canonical)
            .await?
        {
            IdempotencyClaim::New => {}
            IdempotencyClaim::Seen {
                answer: Some((status, answer)),
            } => return Ok(replay(status, &answer, stream)),
            IdempotencyClaim::Seen { answer: None } => {
                return Err(Error::Conflict(
                    "a request with this Idempotency-Key is still in progress",
                ))
            }
            IdempotencyClaim::Mismatch => {
                return Err(Error::invalid(
                    "Idempotency-Key",
                    "was already used with a different request",
                ))
            }
        }
    }

    let input = ChatInput {
        conversation_id: body.conversation_id,
        message: body.message,
        model: body.model,
        agent_id: body.agent_id,
        attachment_ids: body.attachment_ids,
        temperature: body.temperature,
        max_tokens: body.max_tokens,
    };
    let started = match chat::start(&state, &user, input).await {
        Ok(s) => s,
        Err(e) => {
            // Nothing was stored, so the key is free for a corrected retry.
            if let Some(key) = &key {
                state
                    .store()
                    .conn()
                    .await?
                    .release_idempotency_key(&user.id, key)
                    .await?;
            }
            return Err(e);
        }
    };

    if !stream {
        let (status, answer, _) = finish(chat::run(&state, &user.id, started, None).await)?;
        if let Some(key) = &key {
            record(&state, &user.id, key, status, &answer).await?;
        }
        return Ok(replay(status.as_u16(), &answer, false));
    }

    // Streaming: the turn runs in its own task so that it finishes (and stores what it has) even if
    // the client goes away; the response body only relays its events.
    let (events, rx) = mpsc::channel::<Event>(64);
    let _ = events.try_send(meta_event(
        &started.conversation.id,
        &MessageOut::from(started.user_message.clone()),
    ));
    let user_id = user.id.clone();
    tokio::spawn(async move {
        let (deltas, mut delta_rx) = mpsc::channel::<String>(64);
        let relay = {
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(text) = delta_rx.recv().await {
                    if events
                        .send(json_event("delta", &serde_json::json!({ "text": text })))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            })
        };
        let result = chat::run(&state, &user_id, started, Some(deltas)).await;
        let _ = relay.await;
        match finish(result) {
            Ok((status, answer, event)) => {
                if let Some(key) = &key {
                    if let Err(e) = record(&state, &user_id, key, status, &answer).await {
                        tracing::error!(error = %e, "could not record the idempotent answer");
                    }
                }
                let _ = events.send(event).await;
            }
            Err(e) => {
                let _ = events.send(json_event("error", &e.problem())).await;
            }
        }
    });
    Ok(sse(rx))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map(str::trim).unwrap_or("");
    if key.is_empty()
        || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// A finished turn as it is answered and recorded for replays: status, JSON body, and the event that
/// ends a stream (`done`, or `error` with the problem).
fn finish(result: Result<Outcome>) -> Result<(StatusCode, String, Event)> {
    fn encode(v: &impl Serialize) -> Result<String> {
        serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
    }
    Ok(match result {
        Ok(outcome) => {
            let response = ChatResponse::from(outcome);
            (StatusCode::OK, encode(&response)?, done_event(&response))
        }
        Err(error) => {
            let problem = error.problem();
            (
                error.status(),
                encode(&problem)?,
                json_event("error", &problem),
            )
        }
    })
}

async fn record(
    state: &AppState,
    user_id: &str,
    key: &str,
    status: StatusCode,
    answer: &str,
) -> Result<()> {
    let conn = state.store().conn().await?;
    conn.record_idempotent_answer(user_id, key, status.as_u16(), answer)
        .await?;
    Ok(())
}

fn meta_event(conversation_id: &str, user_message: &MessageOut) -> Event {
    json_event(
        "meta",
        &serde_json::json!({
            "conversation_id": conversation_id,
            "user_message_id": user_message.id,
            "user_message": user_message,
        }),
    )
}

fn done_event(response: &ChatResponse) -> Event {
    json_event(
        "done",
        &serde_json::json!({ "assistant_message": response.assistant_message, "usage": response.usage }),
    )
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event("error").data("{}"))
}

fn sse(rx: mpsc::Receiver<Event>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Answers with a recorded answer: the JSON as it was, or, for a streaming client, the same turn as
/// events (`meta`, one `delta` with the whole text, `done`).
fn replay(status: u16, answer: &str, stream: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ok: Option<ChatResponse> = status
        .is_success()
        .then(|| serde_json::from_str(answer).ok())
        .flatten();
    match ok {
        Some(response) if stream => {
            let (tx, rx) = mpsc::channel(4);
            let _ = tx.try_send(meta_event(
                &response.conversation_id,
                &response.user_message,
            ));
            let _ = tx.try_send(json_event(
                "delta",
                &serde_json::json!({ "text": response.assistant_message.content }),
            ));
            let _ = tx.try_send(done_event(&response));
            sse(rx)
        }
        _ => {
            let content_type = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            (
                status,
                [(header::CONTENT_TYPE, content_type)],
                answer.to_string(),
            )
                .into_response()
        }
    }
}

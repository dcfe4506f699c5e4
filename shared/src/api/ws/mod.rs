//! The `ws` function: chat over API Gateway's WebSocket API. `$connect` authorises the access
//! token in `?token=` and stores the connection; every later frame is checked against that
//! token's session; `{"action":"chat", ...}` runs the same turn as `POST /chat` (see
//! [`super::chat::turn`]) and its frames (`meta`, `delta`…, `done` or `error`, each with the
//! frame's `request_id`) are pushed with the Management API's `PostToConnection`. A connection
//! that is gone (410) ends the turn `incomplete`, as an SSE client that leaves does.
//!
//! Locally the same handler runs behind [`crate::http::websocket`], which turns socket events into
//! these events and serves the Management API's `POST /@connections/{id}` itself.

mod frames;

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::FutureExt;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::chat::{self as chat_api, ChatReply, ChatRequest, Frame};
use crate::{
    config::WebSocketConfig,
    connections,
    error::{Error, Problem},
    function::{BoxError, Function, Limits, Needs, Transport},
    http::parse_json,
    idempotency::IdempotencyKey,
    state::AppState,
    store::User,
    websocket_api::{Gone, Poster},
};
use frames::encode;

/// A turn runs inside the frame's invocation, for as long as `POST /chat`'s may. (API Gateway
/// stops waiting for the integration after 29 s; the frames are posted, not returned, so the
/// answer goes on arriving.)
pub const FUNCTION: Function = Function {
    name: "ws",
    transport: Transport::WebSocket(handle_event),
    limits: Limits {
        timeout_secs: 300,
        memory_mb: 256,
    },
    needs: Needs::Store,
};

fn handle_event(
    state: AppState,
    event: Value,
) -> futures_util::future::BoxFuture<'static, Result<Value, BoxError>> {
    handle(state, event).boxed()
}

async fn handle(state: AppState, event: Value) -> Result<Value, BoxError> {
    let event: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event)?;
    let ctx = &event.request_context;
    let connection_id = ctx
        .connection_id
        .clone()
        .ok_or("the event has no connectionId")?;
    let response = match ctx.route_key.as_deref().unwrap_or("$default") {
        "$connect" => match connect(&state, &event, &connection_id).await {
            Ok(()) => answer(200, None),
            Err(e) => {
                tracing::info!(status = e.status().as_u16(), "websocket connection refused");
                answer(e.status().as_u16(), Some(&e.problem()))
            }
        },
        "$disconnect" => {
            let conn = state.store().conn().await?;
            connections::close(&conn, &connection_id).await?;
            answer(200, None)
        }
        _ => {
            let poster = Poster::for_api(
                &state.config().websocket,
                ctx.domain_name.as_deref(),
                ctx.stage.as_deref(),
            )
            .await;
            let body = match (&event.body, event.is_base64_encoded) {
                (Some(b), true) => base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default(),
                (Some(b), false) => b.clone().into_bytes(),
                (None, _) => Vec::new(),
            };
            let socket = Socket {
                poster: &poster,
                id: &connection_id,
                settings: &state.config().websocket,
            };
            on_message(&state, socket, &body).await;
            answer(200, None)
        }
    };
    Ok(serde_json::to_value(response)?)
}

fn answer(status: u16, problem: Option<&Problem>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    if let Some(problem) = problem {
        response.body = serde_json::to_string(problem).ok().map(Into::into);
        response.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/problem+json"),
        );
    }
    response
}

/// `$connect`: the access token in `?token=` (a browser cannot set headers on a WebSocket), or in
/// `Authorization: Bearer`; its session is stored with the connection.
async fn connect(
    state: &AppState,
    event: &ApiGatewayWebsocketProxyRequest,
    connection_id: &str,
) -> crate::error::Result<()> {
    let token = event
        .query_string_parameters
        .first("token")
        .map(str::to_string)
        .or_else(|| {
            event
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim().to_string())
        })
        .ok_or(Error::Unauthorized(
            "connect with ?token=<access token> to open a WebSocket",
        ))?;
    let conn = state.store().conn().await?;
    let user = connections::open(&conn, state.tokens(), connection_id, &token).await?;
    crate::http::record_user(user.id);
    Ok(())
}

/// Where this connection's frames go.
#[derive(Clone, Copy)]
struct Socket<'a> {
    poster: &'a Poster,
    id: &'a str,
    settings: &'a WebSocketConfig,
}

impl Socket<'_> {
    async fn send(&self, kind: &str, request_id: Option<&str>, data: Value) -> Result<(), Gone> {
        for frame in encode(kind, request_id, data, self.settings.max_frame_bytes) {
            self.poster.post(self.id, frame).await?;
        }
        Ok(())
    }

    /// A turn's frame (never `error`: that one is [`Socket::error`]).
    async fn frame(&self, request_id: Option<&str>, frame: Frame) -> Result<(), Gone> {
        self.send(frame.kind, request_id, frame.data).await
    }

    /// An `error` frame: `status`, the `problem` (its own `type` is a URI, so it is nested rather
    /// than merged into the frame), and `retry_after` where the error has one.
    async fn error(&self, request_id: Option<&str>, error: &Error) -> Result<(), Gone> {
        let problem = serde_json::to_value(error.problem()).unwrap_or_else(|_| json!({}));
        let mut data = error_data(problem);
        if let Some(secs) = error.retry_after_secs() {
            data["retry_after"] = json!(secs);
        }
        self.send("error", request_id, data).await
    }
}

/// An `error` frame's fields around a problem object.
fn error_data(problem: Value) -> Value {
    json!({ "status": problem["status"], "problem": problem })
}

/// A frame from the client. Whatever is wrong with it is answered with an `error` frame; the
/// connection stays usable.
async fn on_message(state: &AppState, socket: Socket<'_>, body: &[u8]) {
    let request_id = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("request_id")
            .and_then(Value::as_str)
            .map(String::from)
    });
    let request_id = request_id.as_deref();
    let result = match checked(state, socket, body).await {
        Ok((user, frame)) => run_action(state, socket, &user, frame, body).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        if e.status().is_server_error() {
            tracing::error!(error = %e, "websocket frame failed");
        }
        if socket.error(request_id, &e).await.is_err() {
            forget(state, socket.id).await;
        }
    }
}

/// The checks every frame passes before its action: size, the stored connection and its
/// session, the frame rate, and JSON.
async fn checked(
    state: &AppState,
    socket: Socket<'_>,
    body: &[u8],
) -> crate::error::Result<(User, Map<String, Value>)> {
    if body.len() > socket.settings.max_message_bytes {
        return Err(Error::PayloadTooLarge {
            limit: socket.settings.max_message_bytes,
        });
    }
    let conn = state.store().conn().await?;
    let user =
        connections::frame_user(&conn, socket.id, socket.settings.max_frames_per_second).await?;
    crate::http::record_user(user.id);
    match parse_json::<Value>(body)? {
        Value::Object(frame) => Ok((user, frame)),
        _ => Err(Error::BadRequest(
            "a frame is a JSON object with an `action`".into(),
        )),
    }
}

async fn run_action(
    state: &AppState,
    socket: Socket<'_>,
    user: &User,
    frame: Map<String, Value>,
    body: &[u8],
) -> crate::error::Result<()> {
    let request_id = match frame.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.as_str()),
        Some(_) => return Err(Error::invalid("request_id", "must be a string")),
    };
    match frame.get("action").and_then(Value::as_str) {
        Some("ping") => {
            let _ = socket.send("pong", request_id, json!({})).await;
            Ok(())
        }
        Some("chat") => {
            let key = request_id
                .map(IdempotencyKey::parse)
                .transpose()
                .map_err(|e| Error::invalid("request_id", e.message))?;
            let body: ChatRequest = parse_json(body)?;
            let sent = match chat_api::chat_turn(state, user, body, key, true).await? {
                ChatReply::Live(crate::chat::Running { events, task }) => {
                    let sent = relay(socket, request_id, events).await;
                    if let Err(e) = task.await {
                        tracing::error!(error = %e, "the chat turn task failed");
                    }
                    sent
                }
                ChatReply::Replayed(response) => {
                    let mut sent = Ok(());
                    for frame in chat_api::replay_frames(&response) {
                        sent = socket.frame(request_id, frame).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    sent
                }
                // A recorded turn that failed: its problem, as it was answered.
                ChatReply::Whole { body, .. } => {
                    let problem = serde_json::from_str(&body).unwrap_or_else(|_| json!({}));
                    socket.send("error", request_id, error_data(problem)).await
                }
            };
            if sent.is_err() {
                forget(state, socket.id).await;
            }
            Ok(())
        }
        Some("resume") => {
            let (message_id, after) = resume_fields(&frame)?;
            let conn = state.store().conn().await?;
            let resume =
                crate::chat::resume::Resume::open(&conn, user.id, message_id, after).await?;
            let (tx, mut rx) = mpsc::channel(16);
            let relay = async {
                while let Some(event) = rx.recv().await {
                    if socket
                        .frame(request_id, chat_api::resumed_frame(event))
                        .await
                        .is_err()
                    {
                        return Err(Gone);
                    }
                }
                Ok(())
            };
            let follow = async move {
                resume
                    .follow(&conn, (&state.config().chat).into(), &tx)
                    .await
            };
            let (sent, followed) = tokio::join!(relay, follow);
            if sent.is_err() {
                forget(state, socket.id).await;
            }
            followed
        }
        Some(other) => Err(Error::BadRequest(format!(
            "unknown action `{other}`: send `chat`, `resume` or `ping`"
        ))),
        None => Err(Error::invalid(
            "action",
            "must be `chat`, `resume` or `ping`",
        )),
    }
}

/// A `resume` frame's `message_id` (an answer's id) and `after` (the last delta received; 0 or
/// absent: from the start).
fn resume_fields(frame: &Map<String, Value>) -> crate::error::Result<(crate::ids::MessageId, i64)> {
    let mut errors = crate::error::FieldErrors::default();
    let message_id = match frame
        .get("message_id")
        .and_then(Value::as_str)
        .map(str::parse)
    {
        Some(Ok(id)) => Some(id),
        _ => {
            errors.push(crate::error::FieldError::new(
                "message_id",
                "must name an answer",
            ));
            None
        }
    };
    let after = match frame.get("after") {
        None | Some(Value::Null) => Some(0),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Some(n),
            _ => {
                errors.push(crate::error::FieldError::new(
                    "after",
                    "must be a whole number of at least 0",
                ));
                None
            }
        },
    };
    errors.finish()?;
    match (message_id, after) {
        (Some(id), Some(after)) => Ok((id, after)),
        _ => Err(Error::invalid("message_id", "must name an answer")),
    }
}

/// Posts a turn's events as they come. Deltas are coalesced: the first goes at once (the first
/// token is not delayed), later ones are sent together at most `max_posts_per_second` times a
/// second, and any other event sends what is pending first. A gone connection stops the relay,
/// which closes `events`: the turn ends `incomplete` with the text so far.
async fn relay(
    socket: Socket<'_>,
    request_id: Option<&str>,
    mut events: mpsc::Receiver<crate::chat::Event>,
) -> Result<(), Gone> {
    let interval = Duration::from_secs(1) / socket.settings.max_posts_per_second;
    let mut pending = String::new();
    let mut last_delta: Option<Instant> = None;
    // The newest delta in `pending`: a coalesced frame carries it as its `seq`.
    let mut pending_seq = 0;
    loop {
        let next = match last_delta {
            Some(at) if !pending.is_empty() => {
                tokio::select! {
                    event = events.recv() => event,
                    _ = tokio::time::sleep_until((at + interval).into()) => {
                        flush(socket, request_id, &mut pending, pending_seq, &mut last_delta).await?;
                        continue;
                    }
                }
            }
            _ => events.recv().await,
        };
        let Some(event) = next else {
            return flush(
                socket,
                request_id,
                &mut pending,
                pending_seq,
                &mut last_delta,
            )
            .await;
        };
        match event {
            crate::chat::Event::Delta { seq, text } => {
                pending.push_str(&text);
                pending_seq = seq;
                if last_delta.is_none_or(|at| at.elapsed() >= interval) {
                    flush(
                        socket,
                        request_id,
                        &mut pending,
                        pending_seq,
                        &mut last_delta,
                    )
                    .await?;
                }
            }
            crate::chat::Event::Failed(error) => {
                flush(
                    socket,
                    request_id,
                    &mut pending,
                    pending_seq,
                    &mut last_delta,
                )
                .await?;
                socket.error(request_id, &error).await?;
            }
            other => {
                flush(
                    socket,
                    request_id,
                    &mut pending,
                    pending_seq,
                    &mut last_delta,
                )
                .await?;
                socket.frame(request_id, Frame::from(other)).await?;
            }
        }
    }
}

async fn flush(
    socket: Socket<'_>,
    request_id: Option<&str>,
    pending: &mut String,
    seq: i64,
    last_delta: &mut Option<Instant>,
) -> Result<(), Gone> {
    if pending.is_empty() {
        return Ok(());
    }
    let text = std::mem::take(pending);
    *last_delta = Some(Instant::now());
    socket.frame(request_id, Frame::delta(seq, &text)).await
}

/// The connection went away: its row goes (its `$disconnect` may never come).
async fn forget(state: &AppState, connection_id: &str) {
    connections::forget(state.store().conn().await, connection_id).await;
}

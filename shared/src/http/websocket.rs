//! The local stand-in for API Gateway's WebSocket API, so the `ws` function can be tried and
//! tested without AWS. It serves two things on one port:
//!
//! - `GET /ws`: a real WebSocket. Opening one invokes the function's handler with a `$connect`
//!   event (a refusal answers the handshake with the handler's status and problem), each text
//!   frame with a message event whose route key is the frame's `action` (`chat`, `ping`, else
//!   `$default`), and closing it with `$disconnect`: the events API Gateway sends, in its shape.
//! - `POST /@connections/{id}` (and `DELETE`): the Management API's wire format, which the handler
//!   reaches through the AWS SDK exactly as in AWS; a frame goes to that socket, and a socket that
//!   is gone answers 410 `GoneException`.
//!
//! Like API Gateway, it closes a socket idle for `WS_IDLE_TIMEOUT_SECONDS` or open for
//! `WS_MAX_CONNECTION_SECONDS`, and invokes the handler for each frame on its own (frames of one
//! socket run concurrently, as invocations do). It binds to loopback only and checks no
//! signatures: it is for a laptop and tests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    body::Bytes,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Path, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{
    error::Error,
    function::{BoxError, EventHandler},
    state::AppState,
};

const STAGE: &str = "local";

#[derive(Clone)]
struct Adapter {
    state: AppState,
    handler: EventHandler,
    /// `host:port` this adapter answers on: the events' `domainName`, from which the handler
    /// finds the Management API (a loopback domain is spoken to over plain HTTP).
    domain: String,
    sockets: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>,
}

/// Serves the adapter on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    handler: EventHandler,
) -> Result<(), BoxError> {
    let domain = listener.local_addr()?.to_string();
    tracing::info!(
        domain,
        "serving the WebSocket API locally at ws://{domain}/ws"
    );
    let adapter = Adapter {
        state,
        handler,
        domain,
        sockets: Default::default(),
    };
    let app = Router::new()
        .route("/ws", get(upgrade))
        .route(
            "/@connections/{id}",
            post(post_to_connection).delete(delete_connection),
        )
        .fallback(|| async { Error::NotFound })
        .with_state(adapter);
    axum::serve(listener, app).await.map_err(Into::into)
}

async fn upgrade(
    State(adapter): State<Adapter>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return Error::BadRequest("open a WebSocket here (GET with Upgrade: websocket)".into())
            .into_response();
    };
    let connection_id = crate::ids::new_id().replace('-', "");
    let connected_at = now_ms();
    let headers: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let event = adapter.event(
        "$connect",
        "CONNECT",
        &connection_id,
        connected_at,
        json!({ "queryStringParameters": query, "headers": headers }),
    );
    let answer = match (adapter.handler)(adapter.state.clone(), event).await {
        Ok(answer) => answer,
        Err(e) => return Error::Internal(e.to_string()).into_response(),
    };
    let status = answer["statusCode"].as_u64().unwrap_or(500) as u16;
    if status != 200 {
        let body = answer["body"].as_str().unwrap_or("").to_string();
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
    }
    ws.on_upgrade(move |socket| adapter.run(socket, connection_id, connected_at))
}

impl Adapter {
    /// An API Gateway WebSocket event, as the `ws` function receives it in AWS.
    fn event(
        &self,
        route_key: &str,
        event_type: &str,
        connection_id: &str,
        connected_at: i64,
        mut extra: Value,
    ) -> Value {
        extra["isBase64Encoded"] = json!(false);
        extra["requestContext"] = json!({
            "routeKey": route_key,
            "eventType": event_type,
            "messageId": crate::ids::new_id(),
            "extendedRequestId": crate::ids::new_id(),
            "requestTime": crate::ids::now(),
            "messageDirection": "IN",
            "stage": STAGE,
            "connectedAt": connected_at,
            "requestTimeEpoch": now_ms(),
            "requestId": crate::ids::new_id(),
            "domainName": self.domain,
            "connectionId": connection_id,
            "apiId": "local",
        });
        extra
    }

    async fn run(self, socket: WebSocket, connection_id: String, connected_at: i64) {
        let settings = self.state.config().websocket.clone();
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        self.sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection_id.clone(), tx);
        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let close = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let opened = Instant::now();
        loop {
            let left = settings.max_connection.saturating_sub(opened.elapsed());
            let next = tokio::time::timeout(settings.idle_timeout.min(left), stream.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                // Idle or too old (API Gateway's limits), closed, or broken.
                Err(_) | Ok(None) | Ok(Some(Err(_))) => break,
            };
            let body = match message {
                Message::Text(text) => text.to_string(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Message::Close(_) => break,
                // Pings are answered by the WebSocket layer; they keep the socket alive here too.
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            let route = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("action").and_then(Value::as_str).map(String::from))
                .filter(|a| a == "chat" || a == "ping")
                .unwrap_or_else(|| "$default".to_string());
            let event = self.event(
                &route,
                "MESSAGE",
                &connection_id,
                connected_at,
                json!({ "body": body }),
            );
            let (state, handler) = (self.state.clone(), self.handler);
            tokio::spawn(async move {
                if let Err(e) = handler(state, event).await {
                    tracing::error!(error = %e, "the websocket handler failed");
                }
            });
        }
        self.sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&connection_id);
        writer.abort();
        let event = self.event(
            "$disconnect",
            "DISCONNECT",
            &connection_id,
            connected_at,
            json!({}),
        );
        if let Err(e) = (self.handler)(self.state.clone(), event).await {
            tracing::error!(error = %e, "the websocket handler failed at $disconnect");
        }
    }

    fn socket(&self, id: &str) -> Option<mpsc::UnboundedSender<Message>> {
        self.sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// `PostToConnection`: the frame goes to the socket, or 410 as API Gateway answers for a gone one.
async fn post_to_connection(
    State(adapter): State<Adapter>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let message = match String::from_utf8(body.to_vec()) {
        Ok(text) => Message::Text(text.into()),
        Err(e) => Message::Binary(e.into_bytes().into()),
    };
    match adapter.socket(&id) {
        Some(tx) if tx.send(message).is_ok() => StatusCode::OK.into_response(),
        _ => gone(),
    }
}

/// `DeleteConnection`: closes the socket.
async fn delete_connection(State(adapter): State<Adapter>, Path(id): Path<String>) -> Response {
    match adapter.socket(&id) {
        Some(tx) if tx.send(Message::Close(None)).is_ok() => StatusCode::NO_CONTENT.into_response(),
        _ => gone(),
    }
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [
            ("x-amzn-errortype", "GoneException"),
            ("content-type", "application/json"),
        ],
        json!({ "message": "the connection is gone" }).to_string(),
    )
        .into_response()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

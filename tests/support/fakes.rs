//! Provider fakes that speak the real wire formats, on loopback.
//!
//! Whole-body answers (JSON, complete SSE bodies, Bedrock event-stream frames, error responses) are
//! served by wiremock; [`ScriptedSse`] is a small axum server whose stream the test feeds chunk by
//! chunk, for timing, cuts and disconnects.

use std::sync::{Arc, Mutex};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::{body::Body, response::IntoResponse, routing::post, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Answers POSTs to paths matching `path_regex` with `replies` in turn, each once (the calls of an
/// agent's steps); a call past the last is wiremock's 404.
pub async fn reply_in_turn(
    server: &wiremock::MockServer,
    path_regex: &str,
    replies: impl IntoIterator<Item = Value>,
) {
    use wiremock::{matchers, Mock, ResponseTemplate};
    for reply in replies {
        Mock::given(matchers::method("POST"))
            .and(matchers::path_regex(path_regex))
            .respond_with(ResponseTemplate::new(200).set_body_json(reply))
            .up_to_n_times(1)
            .mount(server)
            .await;
    }
}

/// The path of OpenAI's Chat Completions, and of Bedrock's Converse for any model.
pub const OPENAI_CHAT: &str = "^/v1/chat/completions$";
pub const BEDROCK_CONVERSE: &str = "^/model/[^/]+/converse$";

/// Answers every POST with `reply`.
pub async fn reply_always(server: &wiremock::MockServer, reply: wiremock::ResponseTemplate) {
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(reply)
        .mount(server)
        .await;
}

/// The JSON bodies a wiremock server received, in order.
pub async fn sent_bodies(server: &wiremock::MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect()
}

/// An OpenAI chat completion chunk carrying `text`.
pub fn openai_chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    )
}

/// The closing chunks: finish reason, the usage chunk (`stream_options.include_usage`), `[DONE]`.
pub fn openai_end(prompt: u64, completion: u64, cached: u64) -> String {
    format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                         "prompt_tokens_details": {"cached_tokens": cached}}})
    )
}

/// A non-streamed chat completion.
pub fn openai_completion(text: &str, prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached}}
    })
}

pub fn openai_error(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

/// One Bedrock event-stream frame.
pub fn bedrock_frame(message_type: &str, type_header: &str, name: &str, payload: Value) -> Vec<u8> {
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_string().into()),
        ))
        .add_header(Header::new(
            type_header.to_string(),
            HeaderValue::String(name.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).expect("frame");
    out
}

pub fn bedrock_event(name: &str, payload: Value) -> Vec<u8> {
    bedrock_frame("event", ":event-type", name, payload)
}

/// A ConverseStream answer streaming `pieces`, then stop and usage metadata.
pub fn bedrock_stream(pieces: &[&str], input: u64, output: u64) -> Vec<u8> {
    let mut body = bedrock_event("messageStart", json!({"role": "assistant"}));
    for p in pieces {
        body.extend(bedrock_event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": p}}),
        ));
    }
    body.extend(bedrock_event(
        "contentBlockStop",
        json!({"contentBlockIndex": 0}),
    ));
    body.extend(bedrock_event(
        "messageStop",
        json!({"stopReason": "end_turn"}),
    ));
    body.extend(bedrock_event(
        "metadata",
        json!({"usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output}, "metrics": {"latencyMs": 42}}),
    ));
    body
}

/// A Converse answer.
pub fn bedrock_converse(text: &str, input: u64, output: u64) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output},
        "metrics": {"latencyMs": 42}
    })
}

/// An OpenAI-compatible endpoint whose streamed answer the test writes as it goes: each string sent
/// is written to the wire at once; dropping the sender closes the connection.
pub struct ScriptedSse {
    pub base_url: String,
    pub chunks: mpsc::UnboundedSender<String>,
    /// Request bodies received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedSse {
    pub async fn start() -> ScriptedSse {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |body: axum::body::Bytes| {
                let rx = rx.clone();
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    let Some(rx) = rx.lock().await.take() else {
                        return (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "one request per script",
                        )
                            .into_response();
                    };
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
                    });
                    (
                        [("content-type", "text/event-stream")],
                        Body::from_stream(stream),
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ScriptedSse {
            base_url: format!("http://{addr}/v1"),
            chunks: tx,
            requests,
        }
    }

    pub fn send(&self, chunk: impl Into<String>) {
        let _ = self.chunks.send(chunk.into());
    }
}

/// API Gateway's Management API (`POST /@connections/{id}`, as `PostToConnection` sends it): records
/// each posted frame, and answers 410 `GoneException` for the connections marked gone, or once
/// `gone_after` frames were posted.
#[derive(Clone)]
pub struct ManagementApi {
    pub endpoint: String,
    state: Arc<Mutex<ManagementState>>,
}

#[derive(Default)]
struct ManagementState {
    posted: Vec<(String, Value)>,
    posted_at: Vec<std::time::Instant>,
    gone: Vec<String>,
    gone_after: Option<usize>,
    /// The request paths and whether they were signed (SigV4 `authorization` header).
    signed: Vec<bool>,
}

impl ManagementApi {
    pub async fn start() -> ManagementApi {
        let state = Arc::new(Mutex::new(ManagementState::default()));
        let seen = state.clone();
        let app = Router::new().route(
            "/@connections/{id}",
            post(
                move |axum::extract::Path(id): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let mut s = seen.lock().unwrap();
                        s.signed.push(
                            headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256")),
                        );
                        let over = s.gone_after.is_some_and(|n| s.posted.len() >= n);
                        if over || s.gone.contains(&id) {
                            return (
                                axum::http::StatusCode::GONE,
                                [("x-amzn-errortype", "GoneException")],
                                r#"{"message":"gone"}"#,
                            )
                                .into_response();
                        }
                        let frame = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        s.posted.push((id, frame));
                        s.posted_at.push(std::time::Instant::now());
                        axum::http::StatusCode::OK.into_response()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ManagementApi {
            endpoint: format!("http://{addr}"),
            state,
        }
    }

    /// The frames posted to `connection_id`, in order.
    pub fn frames(&self, connection_id: &str) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        s.posted
            .iter()
            .filter(|(id, _)| id == connection_id)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The frames posted to `connection_id` with when each arrived.
    pub fn timeline(&self, connection_id: &str) -> Vec<(std::time::Instant, Value)> {
        let s = self.state.lock().unwrap();
        s.posted
            .iter()
            .zip(&s.posted_at)
            .filter(|((id, _), _)| id == connection_id)
            .map(|((_, f), at)| (*at, f.clone()))
            .collect()
    }

    pub fn clear(&self) {
        let mut s = self.state.lock().unwrap();
        s.posted.clear();
        s.posted_at.clear();
    }

    pub fn set_gone(&self, connection_id: &str) {
        self.state
            .lock()
            .unwrap()
            .gone
            .push(connection_id.to_string());
    }

    /// From now on, the frame after `n` more is answered 410 (and every one after it).
    pub fn gone_after(&self, n: usize) {
        let mut s = self.state.lock().unwrap();
        s.gone_after = Some(s.posted.len() + n);
    }

    /// Whether every call was SigV4-signed, as the SDK signs them.
    pub fn all_signed(&self) -> bool {
        let s = self.state.lock().unwrap();
        !s.signed.is_empty() && s.signed.iter().all(|b| *b)
    }
}

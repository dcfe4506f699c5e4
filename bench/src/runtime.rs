//! A fake Lambda Runtime API on loopback, and the function processes it drives.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::JWT_SECRET;

struct Invocation {
    id: String,
    event: Value,
}

/// The fake Lambda Runtime API.
#[derive(Clone)]
struct Runtime {
    next: Arc<Mutex<mpsc::Receiver<Invocation>>>,
    first_poll: Arc<Mutex<Option<oneshot::Sender<Instant>>>>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
}

/// A function's answer as `{statusCode, body}`, whether it was buffered (API Gateway proxy JSON) or
/// streamed (a JSON prelude, eight NUL bytes, then the body).
fn normalise(raw: &[u8]) -> Value {
    match raw.windows(8).position(|w| w == [0u8; 8]) {
        Some(i) => {
            let prelude: Value = serde_json::from_slice(&raw[..i]).unwrap_or(Value::Null);
            json!({"statusCode": prelude["statusCode"], "body": String::from_utf8_lossy(&raw[i + 8..])})
        }
        None => serde_json::from_slice(raw).unwrap_or(Value::Null),
    }
}

async fn next_invocation(
    State(rt): State<Runtime>,
) -> Result<(HeaderMap, Json<Value>), axum::http::StatusCode> {
    if let Some(tx) = rt.first_poll.lock().await.take() {
        let _ = tx.send(Instant::now());
    }
    // No more events: the driver is done with this process and is about to kill it.
    let inv = rt
        .next
        .lock()
        .await
        .recv()
        .await
        .ok_or(axum::http::StatusCode::GONE)?;
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(30);
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&inv.id).unwrap(),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from(deadline.as_millis() as u64),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ),
    );
    Ok((headers, Json(inv.event)))
}

async fn invocation_response(
    State(rt): State<Runtime>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) {
    let value = normalise(&body);
    if let Some(tx) = rt.pending.lock().await.remove(&id) {
        let _ = tx.send(value);
    }
}

async fn invocation_error(
    State(rt): State<Runtime>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) {
    eprintln!("invocation {id} failed: {}", String::from_utf8_lossy(&body));
    if let Some(tx) = rt.pending.lock().await.remove(&id) {
        let _ = tx.send(json!({"statusCode": 599}));
    }
}

async fn init_error(body: axum::body::Bytes) {
    eprintln!("init error: {}", String::from_utf8_lossy(&body));
}

/// Where a function keeps its data: the local file under `data_dir`, or a libSQL server.
#[derive(Clone)]
pub struct StoreTarget {
    pub data_dir: PathBuf,
    pub libsql_url: Option<String>,
    pub libsql_auth_token: Option<String>,
    /// More environment for the function (the blob store, limits).
    pub env: Vec<(String, String)>,
}

impl StoreTarget {
    pub fn local(data_dir: &Path) -> Self {
        StoreTarget {
            data_dir: data_dir.to_path_buf(),
            libsql_url: None,
            libsql_auth_token: None,
            env: Vec::new(),
        }
    }
}

/// How the fake Runtime API's sockets acknowledge what the function sends. Nobody outside AWS
/// knows which AWS's Runtime API does, so the bench runs both: a function must be fast under
/// either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Every received segment acknowledged at once (`TCP_QUICKACK` re-armed after each read).
    Quick,
    /// A plain server with Linux's default: ACKs delayed (up to ~40 ms) while it has nothing to
    /// send back.
    Delayed,
}

/// One function process under the fake runtime.
pub struct Function {
    pub child: tokio::process::Child,
    events: mpsc::Sender<Invocation>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    pub init: Duration,
    _server: tokio::task::JoinHandle<()>,
}

impl Function {
    pub async fn start(binary: &Path, name: &str, store: &StoreTarget) -> Function {
        Self::start_with_acks(binary, name, store, Acks::Quick).await
    }

    pub async fn start_with_acks(
        binary: &Path,
        name: &str,
        store: &StoreTarget,
        acks: Acks,
    ) -> Function {
        let (events, rx) = mpsc::channel(1);
        let (first_tx, first_rx) = oneshot::channel();
        let rt = Runtime {
            next: Arc::new(Mutex::new(rx)),
            first_poll: Arc::new(Mutex::new(Some(first_tx))),
            pending: Arc::new(Mutex::new(HashMap::new())),
        };
        let pending = rt.pending.clone();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(rt);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            match acks {
                Acks::Quick => axum::serve(QuickAckListener(listener), app).await.unwrap(),
                Acks::Delayed => axum::serve(listener, app).await.unwrap(),
            }
        });

        let started = Instant::now();
        let child = tokio::process::Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            .env("CODECHAT_PROFILE", "local")
            .env("CODECHAT_DATA_DIR", &store.data_dir)
            .env("LIBSQL_URL", store.libsql_url.as_deref().unwrap_or(""))
            .env(
                "LIBSQL_AUTH_TOKEN",
                store.libsql_auth_token.as_deref().unwrap_or(""),
            )
            .env("JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "info")
            .env("ECHO_DELAY_MS", "0")
            .envs(store.env.iter().map(|(k, v)| (k, v)))
            .stdout(function_log())
            .stderr(function_log())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let first_poll = tokio::time::timeout(Duration::from_secs(30), first_rx)
            .await
            .unwrap_or_else(|_| panic!("{name} never polled for an event"))
            .unwrap();
        Function {
            child,
            events,
            pending,
            init: first_poll - started,
            _server: server,
        }
    }

    /// Sends one event; returns the response and how long the function took to answer it.
    pub async fn invoke(&self, event: Value) -> (Value, Duration) {
        self.try_invoke(event).await.expect("an answer within 30 s")
    }

    /// Like [`Function::invoke`], or `None` when no answer came within 30 s.
    pub async fn try_invoke(&self, event: Value) -> Option<(Value, Duration)> {
        let id = format!("req-{}", uuid_like());
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id.clone(), tx);
        let started = Instant::now();
        self.events.send(Invocation { id, event }).await.ok()?;
        let response = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .ok()?
            .ok()?;
        Some((response, started.elapsed()))
    }

    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:016x}", N.fetch_add(1, Ordering::Relaxed))
}

/// An API Gateway REST (v1) proxy event for stage Prod, as the deployed API sends them.
pub fn event(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
    let mut headers =
        json!({"accept": "application/json", "host": "bench.execute-api.us-east-1.amazonaws.com"});
    if let Some(t) = token {
        headers["authorization"] = json!(format!("Bearer {t}"));
    }
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    json!({
        "resource": path, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {}, "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null, "isBase64Encoded": false,
        "body": body.map(|b| b.to_string()),
        "requestContext": {
            "accountId": "123456789012", "resourceId": "r", "stage": "Prod", "requestId": "bench",
            "httpMethod": method, "path": format!("/Prod{path}"), "resourcePath": path,
            "apiId": "bench", "identity": {"sourceIp": "127.0.0.1"}
        }
    })
}

/// A REST API event carrying one file as `multipart/form-data` (part `file`), base64-encoded as
/// API Gateway sends binary bodies.
pub fn multipart_event(
    path: &str,
    token: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> Value {
    use base64::Engine;
    let boundary = "bench-boundary-5f1c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut e = event("POST", path, Some(token), None);
    e["headers"]["content-type"] = json!(format!("multipart/form-data; boundary={boundary}"));
    e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    e["isBase64Encoded"] = json!(true);
    e
}

pub fn status(response: &Value) -> u64 {
    response["statusCode"].as_u64().unwrap_or(0)
}

pub fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// [`Acks::Quick`]: Nagle off, and every received segment acknowledged at once. Before the
/// workspace patched the runtime client to turn Nagle off on its side, it streamed a response in
/// several small writes with Nagle on, so each write after the first waited for the ACK of the one
/// before, and under [`Acks::Delayed`] every streamed answer took ~40 ms longer.
struct QuickAckListener(tokio::net::TcpListener);

impl axum::serve::Listener for QuickAckListener {
    type Io = QuickAck;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((tcp, addr)) = self.0.accept().await {
                let _ = tcp.set_nodelay(true);
                return (QuickAck(tcp), addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that re-arms quick ACKs after every read (the kernel drops out of that mode by itself).
struct QuickAck(tokio::net::TcpStream);

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        polled
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Where the functions' logs go: the file `BENCH_FUNCTION_LOG` names (appended to), for finding
/// what an error was; otherwise nowhere.
fn function_log() -> Stdio {
    codechat_api_tests::log_named_by("BENCH_FUNCTION_LOG")
}

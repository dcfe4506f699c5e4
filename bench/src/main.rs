//! Cold start, per-invoke latency, peak memory and size of the release function binaries.
//!
//! Each function binary runs as it would in Lambda: against a Runtime API, here a fake one on
//! loopback that hands out API Gateway events and times the answers. Measured per function:
//! - init: process spawn until its first `GET /runtime/invocation/next` (median of several starts);
//! - per-invoke: event handed out until its response is posted (p50 and p90 over many invokes);
//! - peak RSS: the process's VmHWM after all its invokes;
//! - binary size: the stripped release binary.
//!
//! Run: `cargo run --release -p bench` (builds the function binaries in release mode first).

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

const COLD_STARTS: usize = 7;
const FAST_INVOKES: usize = 300;
const HASHING_INVOKES: usize = 15;
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";
const CHAT_INVOKES: usize = 200;
const PAGE_INVOKES: usize = 200;

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

/// One function process under the fake runtime.
struct Function {
    child: tokio::process::Child,
    events: mpsc::Sender<Invocation>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    init: Duration,
    _server: tokio::task::JoinHandle<()>,
}

impl Function {
    async fn start(binary: &Path, name: &str, data_dir: &Path) -> Function {
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
            axum::serve(listener, app).await.unwrap();
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
            .env("CODECHAT_DATA_DIR", data_dir)
            .env("JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "info")
            .env("ECHO_DELAY_MS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
    async fn invoke(&self, event: Value) -> (Value, Duration) {
        let id = format!("req-{}", uuid_like());
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id.clone(), tx);
        let started = Instant::now();
        self.events.send(Invocation { id, event }).await.unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("response in time")
            .unwrap();
        (response, started.elapsed())
    }

    fn peak_rss_kib(&self) -> u64 {
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
fn event(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
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

fn status(response: &Value) -> u64 {
    response["statusCode"].as_u64().unwrap_or(0)
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

struct Row {
    function: &'static str,
    route: String,
    n: usize,
    p50: Duration,
    p90: Duration,
}

async fn measure(
    f: &Function,
    function: &'static str,
    route: &str,
    n: usize,
    mut make: impl FnMut(usize) -> Value,
    expect: u64,
) -> Row {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let (res, took) = f.invoke(make(i)).await;
        assert_eq!(status(&res), expect, "{function} {route}: {res}");
        times.push(took);
    }
    times.sort();
    Row {
        function,
        route: route.to_string(),
        n,
        p50: percentile(&times, 0.5),
        p90: percentile(&times, 0.9),
    }
}

async fn bench_user(auth: &Function, email: &str) -> (String, String) {
    let (res, _) = auth
        .invoke(event(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": email, "password": "bench password 123"})),
        ))
        .await;
    let b = body(&res);
    (
        b["user"]["id"].as_str().unwrap().to_string(),
        b["access_token"].as_str().unwrap().to_string(),
    )
}

/// A UUID-shaped id, distinct per (kind, n).
fn seeded_id(kind: u32, n: u64) -> String {
    format!("01900000-{kind:04x}-7000-8000-{n:012x}")
}

async fn seed_conversation(
    conn: &libsql::Connection,
    user_id: &str,
    n: u64,
    messages: u64,
) -> String {
    let id = seeded_id(1, n);
    let tx = conn.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO conversations (id, user_id, title, model, message_count, created_at, updated_at, last_message_at, activity_at)
         VALUES (?1, ?2, 'seeded', 'local/echo', ?3, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z',
                 '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
        libsql::params![id.clone(), user_id, messages as i64],
    )
    .await
    .unwrap();
    let stmt = tx
        .prepare("INSERT INTO messages (id, conversation_id, role, content, status, model, created_at) VALUES (?1, ?2, ?3, ?4, 'complete', 'local/echo', '2026-01-01T00:00:00.000000Z')")
        .await
        .unwrap();
    for i in 0..messages {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        stmt.execute(libsql::params![
            seeded_id(2 + n as u32, i),
            id.clone(),
            role,
            format!("seeded message number {i} with a little text")
        ])
        .await
        .unwrap();
        stmt.reset();
    }
    tx.commit().await.unwrap();
    id
}

async fn seed_conversations(conn: &libsql::Connection, user_id: &str, count: u64) {
    let tx = conn.transaction().await.unwrap();
    let stmt = tx
        .prepare(
            "INSERT INTO conversations (id, user_id, title, model, message_count, created_at, updated_at, activity_at)
             VALUES (?1, ?2, ?3, 'local/echo', 0, ?4, ?4, ?4)",
        )
        .await
        .unwrap();
    for i in 0..count {
        let at = format!("2026-01-01T00:{:02}:{:02}.{:06}Z", (i / 60) % 60, i % 60, i);
        stmt.execute(libsql::params![
            seeded_id(9, i + count * 100_000),
            user_id,
            format!("seeded {i}"),
            at
        ])
        .await
        .unwrap();
        stmt.reset();
    }
    tx.commit().await.unwrap();
}

/// The chat turn without any transport: the same router the chat function serves, driven
/// in-process, so the figure is the turn's own overhead (validation, store reads and writes,
/// context, the offline model, SSE framing) with no Runtime API round trip in it.
async fn in_process_chat(data: &Path) -> Vec<Row> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let dir = data.join("in-process");
    let vars: HashMap<&str, String> = [
        ("CODECHAT_PROFILE", "local".to_string()),
        ("CODECHAT_DATA_DIR", dir.display().to_string()),
        ("JWT_SECRET", JWT_SECRET.to_string()),
        ("ECHO_DELAY_MS", "0".to_string()),
    ]
    .into_iter()
    .collect();
    let config = codechat::config::Config::load(|k| vars.get(k).cloned())
        .await
        .unwrap();
    let state = codechat::AppState::new(config).await.unwrap();
    let app = codechat::http::app(state, codechat::api::all_routes());
    let call = |method: &str, path: &str, token: Option<&str>, body: Value| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(axum::body::Body::from(body.to_string())).unwrap();
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, bytes)
        }
    };
    let (_, reg) = call(
        "POST",
        "/api/v1/auth/register",
        None,
        json!({"email": "inproc@bench.dev", "password": "bench password 123"}),
    )
    .await;
    let token = serde_json::from_slice::<Value>(&reg).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, first) = call(
        "POST",
        "/api/v1/chat",
        Some(&token),
        json!({"message": "warm up"}),
    )
    .await;
    let conversation = serde_json::from_slice::<Value>(&first).unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rows = Vec::new();
    // A new conversation each turn (the fixed cost), then turns in one conversation whose whole
    // history (up to the 400-message context read) fits the window and goes to the model.
    for (route, stream, fresh) in [
        ("POST /chat in-process, new conv", false, true),
        ("POST /chat in-process", false, false),
        ("POST /chat stream in-process", true, false),
    ] {
        let mut times = Vec::with_capacity(CHAT_INVOKES);
        for i in 0..CHAT_INVOKES {
            let body = if fresh {
                json!({"message": format!("turn {i}")})
            } else {
                json!({"conversation_id": conversation, "message": format!("turn {i}"), "stream": stream})
            };
            let started = Instant::now();
            let (status, _) = call("POST", "/api/v1/chat", Some(&token), body).await;
            times.push(started.elapsed());
            assert_eq!(status, 200);
        }
        times.sort();
        rows.push(Row {
            function: "chat",
            route: route.into(),
            n: times.len(),
            p50: percentile(&times, 0.5),
            p90: percentile(&times, 0.9),
        });
    }
    rows
}

/// The CPU Lambda gives a function of `memory_mb` (memory/1769 of one vCPU), enforced on this
/// machine by a cgroup CFS quota, so CPU-bound routes (argon2) can be timed at each memory size.
/// `None` when this machine lets us create no cgroup (then the section is skipped).
struct CpuShare {
    dir: PathBuf,
    procs: &'static str,
}

impl CpuShare {
    const PERIOD_US: u64 = 20_000;

    fn new(memory_mb: u64) -> Option<CpuShare> {
        let quota = Self::PERIOD_US * memory_mb / 1769;
        let name = format!("codechat-bench-{}-{memory_mb}", std::process::id());
        // cgroup v1 (a `cpu` hierarchy), else v2 with the cpu controller on.
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(dir.join("cpu.cfs_period_us"), Self::PERIOD_US.to_string()).ok()?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()).ok()?;
            return Some(CpuShare {
                dir,
                procs: "cgroup.procs",
            });
        }
        let dir = Path::new("/sys/fs/cgroup").join(name);
        std::fs::create_dir_all(&dir).ok()?;
        let set = std::fs::write(dir.join("cpu.max"), format!("{quota} {}", Self::PERIOD_US));
        match set {
            Ok(()) => Some(CpuShare {
                dir,
                procs: "cgroup.procs",
            }),
            Err(_) => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    fn add(&self, pid: u32) -> bool {
        std::fs::write(self.dir.join(self.procs), pid.to_string()).is_ok()
    }
}

impl Drop for CpuShare {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Lambda's price for arm64 (us-east-1): per GB-second, billed per started millisecond, plus per request.
const ARM64_PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
const PRICE_PER_MILLION_REQUESTS: f64 = 0.20;

/// Dollars per million invocations of a route taking `took` at `memory_mb`.
fn cost_per_million(memory_mb: u64, took: Duration) -> f64 {
    let billed_ms = (took.as_secs_f64() * 1000.0).ceil();
    memory_mb as f64 / 1024.0 * billed_ms / 1000.0 * ARM64_PRICE_PER_GB_SECOND * 1e6
        + PRICE_PER_MILLION_REQUESTS
}

/// The auth function (argon2 on register and login) at the CPU of each memory size it could be given.
async fn auth_at_memory_sizes(binary: &Path, data: &Path) -> Option<Vec<(u64, Vec<Row>)>> {
    let mut out = Vec::new();
    for memory_mb in [128u64, 256, 512, 1024, 1769] {
        let share = CpuShare::new(memory_mb)?;
        let auth = Function::start(binary, "auth", data).await;
        if !share.add(auth.child.id()?) {
            return None;
        }
        let password = "bench password 123";
        let email = |i: usize| format!("m{memory_mb}-{i}@bench.dev");
        let n = 7;
        let register = measure(
            &auth,
            "auth",
            "POST /auth/register",
            n,
            |i| {
                event(
                    "POST",
                    "/api/v1/auth/register",
                    None,
                    Some(json!({"email": email(i), "password": password})),
                )
            },
            201,
        )
        .await;
        let login = measure(
            &auth,
            "auth",
            "POST /auth/login",
            n,
            |i| {
                event(
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"email": email(i), "password": password})),
                )
            },
            200,
        )
        .await;
        let (res, _) = auth
            .invoke(event(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email(0), "password": password})),
            ))
            .await;
        let refresh = std::cell::RefCell::new(body(&res)["refresh_token"].as_str()?.to_string());
        let mut times = Vec::new();
        for _ in 0..30 {
            let ev = event(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": refresh.borrow().clone()})),
            );
            let (res, took) = auth.invoke(ev).await;
            assert_eq!(status(&res), 200, "refresh: {res}");
            *refresh.borrow_mut() = body(&res)["refresh_token"].as_str()?.to_string();
            times.push(took);
        }
        times.sort();
        let refresh = Row {
            function: "auth",
            route: "POST /auth/refresh".into(),
            n: times.len(),
            p50: percentile(&times, 0.5),
            p90: percentile(&times, 0.9),
        };
        drop(auth);
        // The killed process must have left the group before it can be removed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        out.push((memory_mb, vec![register, login, refresh]));
    }
    Some(out)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::main]
async fn main() {
    // Every function of the service, from its one list: a new function is built, started and
    // measured for init time and size without touching this file.
    let functions: Vec<&'static str> = codechat::api::FUNCTIONS.iter().map(|f| f.name).collect();
    let root = workspace_root();
    eprintln!("bench: building release binaries of {functions:?}");
    let mut build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&root)
        .args(["build", "--release", "--quiet"]);
    for f in &functions {
        build.args(["-p", f]);
    }
    assert!(
        build.status().expect("cargo").success(),
        "release build failed"
    );
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let binary = |name: &str| target.join("release").join(name);

    let data = std::env::temp_dir().join(format!("codechat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();

    // Cold starts: a fresh process each time; the database file already exists after the first.
    let mut inits: HashMap<&str, Vec<Duration>> = HashMap::new();
    for _ in 0..COLD_STARTS {
        for &f in &functions {
            let started = Function::start(&binary(f), f, &data).await;
            inits.entry(f).or_default().push(started.init);
        }
    }

    let mut rows = Vec::new();
    let mut peaks = HashMap::new();

    let health = Function::start(&binary("health"), "health", &data).await;
    rows.push(
        measure(
            &health,
            "health",
            "GET /health",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/health", None, None),
            200,
        )
        .await,
    );
    peaks.insert("health", health.peak_rss_kib());

    let models = Function::start(&binary("models"), "models", &data).await;
    rows.push(
        measure(
            &models,
            "models",
            "GET /models",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/models", None, None),
            200,
        )
        .await,
    );
    // The floor: an unmatched path answered 404 by the router, i.e. the runtime round trip itself.
    rows.push(
        measure(
            &models,
            "models",
            "GET /nope (404 floor)",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/nope", None, None),
            404,
        )
        .await,
    );
    peaks.insert("models", models.peak_rss_kib());

    let auth = Function::start(&binary("auth"), "auth", &data).await;
    let password = "bench password 123";
    rows.push(
        measure(
            &auth,
            "auth",
            "POST /auth/register",
            HASHING_INVOKES,
            |i| {
                event(
                    "POST",
                    "/api/v1/auth/register",
                    None,
                    Some(json!({"email": format!("u{i}@bench.dev"), "password": password})),
                )
            },
            201,
        )
        .await,
    );
    rows.push(
        measure(
            &auth,
            "auth",
            "POST /auth/login",
            HASHING_INVOKES,
            |i| {
                event(
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"email": format!("u{i}@bench.dev"), "password": password})),
                )
            },
            200,
        )
        .await,
    );
    let (login, _) = auth
        .invoke(event(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "u0@bench.dev", "password": password})),
        ))
        .await;
    let tokens = body(&login);
    let refresh = std::cell::RefCell::new(tokens["refresh_token"].as_str().unwrap().to_string());
    // Each refresh spends the previous token, so the chain is fed from each answer.
    let mut times = Vec::new();
    for _ in 0..FAST_INVOKES {
        let ev = event(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh.borrow().clone()})),
        );
        let (res, took) = auth.invoke(ev).await;
        assert_eq!(status(&res), 200, "refresh: {res}");
        *refresh.borrow_mut() = body(&res)["refresh_token"].as_str().unwrap().to_string();
        times.push(took);
    }
    times.sort();
    rows.push(Row {
        function: "auth",
        route: "POST /auth/refresh".into(),
        n: times.len(),
        p50: percentile(&times, 0.5),
        p90: percentile(&times, 0.9),
    });
    peaks.insert("auth", auth.peak_rss_kib());

    let users = Function::start(&binary("users"), "users", &data).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    rows.push(
        measure(
            &users,
            "users",
            "GET /users/me",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/users/me", Some(&access), None),
            200,
        )
        .await,
    );
    peaks.insert("users", users.peak_rss_kib());

    let user_id = tokens["user"]["id"].as_str().unwrap().to_string();
    let chat = Function::start(&binary("chat"), "chat", &data).await;
    let (first, _) = chat
        .invoke(event(
            "POST",
            "/api/v1/chat",
            Some(&access),
            Some(json!({"message": "warm up"})),
        ))
        .await;
    let chat_conversation = body(&first)["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The streaming runtime's own floor (prelude, NUL separator, chunked body to the Runtime API).
    rows.push(
        measure(
            &chat,
            "chat",
            "GET /nope (404 floor)",
            CHAT_INVOKES,
            |_| event("GET", "/api/v1/nope", None, None),
            404,
        )
        .await,
    );
    rows.push(
        measure(&chat, "chat", "POST /chat (echo)", CHAT_INVOKES, |i| {
            event("POST", "/api/v1/chat", Some(&access), Some(json!({"conversation_id": chat_conversation, "message": format!("turn {i}")})))
        }, 200)
        .await,
    );
    rows.push(
        measure(&chat, "chat", "POST /chat stream (echo)", CHAT_INVOKES, |i| {
            event("POST", "/api/v1/chat", Some(&access), Some(json!({"conversation_id": chat_conversation, "message": format!("turn {i}"), "stream": true})))
        }, 200)
        .await,
    );
    peaks.insert("chat", chat.peak_rss_kib());

    // Pages must cost the same however large the table: seed small and large, fetch from both.
    let db = libsql::Builder::new_local(data.join("codechat.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    let small_conv = seed_conversation(&conn, &user_id, 1, 1_000).await;
    let large_conv = seed_conversation(&conn, &user_id, 2, 100_000).await;
    let conversations = Function::start(&binary("conversations"), "conversations", &data).await;
    for (label, conv) in [("1k", &small_conv), ("100k", &large_conv)] {
        let path = format!("/api/v1/conversations/{conv}/messages");
        rows.push(
            measure(
                &conversations,
                "conversations",
                &format!("messages page 1 ({label})"),
                PAGE_INVOKES,
                |_| event("GET", &path, Some(&access), None),
                200,
            )
            .await,
        );
        // A page from the middle: follow cursors halfway.
        let mut cursor = String::new();
        let (mut res, _) = conversations
            .invoke(event(
                "GET",
                &format!("{path}?limit=20"),
                Some(&access),
                None,
            ))
            .await;
        for _ in 0..25 {
            cursor = body(&res)["next_cursor"].as_str().unwrap().to_string();
            res = conversations
                .invoke(event(
                    "GET",
                    &format!("{path}?limit=20&cursor={cursor}"),
                    Some(&access),
                    None,
                ))
                .await
                .0;
        }
        let deep = format!("{path}?limit=20&cursor={cursor}");
        rows.push(
            measure(
                &conversations,
                "conversations",
                &format!("messages page 26 ({label})"),
                PAGE_INVOKES,
                |_| event("GET", &deep, Some(&access), None),
                200,
            )
            .await,
        );
    }
    drop(conversations);
    // Users with 100 and with 10 000 conversations.
    let (small_user, small_token) = bench_user(&auth, "small@bench.dev").await;
    let (large_user, large_token) = bench_user(&auth, "large@bench.dev").await;
    seed_conversations(&conn, &small_user, 100).await;
    seed_conversations(&conn, &large_user, 10_000).await;
    let conversations = Function::start(&binary("conversations"), "conversations", &data).await;
    for (label, token) in [("100", &small_token), ("10k", &large_token)] {
        rows.push(
            measure(
                &conversations,
                "conversations",
                &format!("conversation list ({label})"),
                PAGE_INVOKES,
                |_| event("GET", "/api/v1/conversations", Some(token), None),
                200,
            )
            .await,
        );
    }
    peaks.insert("conversations", conversations.peak_rss_kib());

    rows.extend(in_process_chat(&data).await);
    let memory_sizes = auth_at_memory_sizes(&binary("auth"), &data).await;

    println!("\nCodeChat function benchmark (release, x86_64 here; Lambda runs arm64). Medians unless noted.\n");
    println!(
        "{:<14} {:>10} {:>10} {:>10}",
        "function", "init ms", "peak RSS", "binary"
    );
    for &f in &functions {
        let mut v = inits[f].clone();
        v.sort();
        let size = std::fs::metadata(binary(f)).map(|m| m.len()).unwrap_or(0);
        let peak = peaks
            .get(f)
            .map(|kib| format!("{:>7.1} MB", *kib as f64 / 1024.0))
            .unwrap_or_else(|| format!("{:>10}", "-"));
        println!(
            "{:<14} {:>10} {peak} {:>7.1} MB",
            f,
            ms(percentile(&v, 0.5)),
            size as f64 / 1024.0 / 1024.0
        );
    }
    println!(
        "\n{:<14} {:<30} {:>5} {:>10} {:>10}",
        "function", "route", "n", "p50 ms", "p90 ms"
    );
    for r in &rows {
        println!(
            "{:<14} {:<30} {:>5} {:>10} {:>10}",
            r.function,
            r.route,
            r.n,
            ms(r.p50),
            ms(r.p90)
        );
    }
    match &memory_sizes {
        Some(sizes) => {
            println!(
                "\nauth at Lambda's CPU share per memory size (memory/1769 of a vCPU as a cgroup CFS quota):"
            );
            println!(
                "{:<8} {:<22} {:>10} {:>10} {:>14}",
                "MB", "route", "p50 ms", "p90 ms", "$ per million"
            );
            for (mb, rows) in sizes {
                for r in rows {
                    println!(
                        "{:<8} {:<22} {:>10} {:>10} {:>14.2}",
                        mb,
                        r.route,
                        ms(r.p50),
                        ms(r.p90),
                        cost_per_million(*mb, r.p50)
                    );
                }
            }
        }
        None => println!(
            "\nauth per memory size: skipped (no cgroup with a CPU quota could be made here)"
        ),
    }
    println!("\ninit = process start until the first poll of the Runtime API ({COLD_STARTS} starts each);");
    println!("per-invoke = event handed out until the response is posted, through lambda_http and the router;");
    println!("in-process = request to the router until the whole body is read, no Runtime API in between.");
    drop((health, models, auth, users, chat, conversations));
    let _ = std::fs::remove_dir_all(&data);
}

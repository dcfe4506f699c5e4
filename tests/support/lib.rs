//! Test harness: a fresh app per test, on its own temporary libSQL file and blob directory, driven
//! in-process through the same router (and layers) the Lambda functions serve.

pub mod fakes;
pub mod proxy;
pub mod s3;
pub mod sqld;

use axum::{
    body::{Body, Bytes},
    http::{header, HeaderMap, Method, Request, StatusCode},
    Router,
};
use codechat::{api, config::Config, http, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The signing secret every test app uses, so tests can forge tokens with it (or without it).
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub state: AppState,
    app: Router,
    dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::with_env(&[]).await
    }

    /// An app configured as a process with these extra environment variables would be.
    pub async fn with_env(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let mut vars = vec![
            ("CODECHAT_PROFILE".to_string(), "local".to_string()),
            ("CODECHAT_DATA_DIR".to_string(), data_dir),
            ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
            // Fast tests: the offline model streams without pauses, retries back off for 1 ms.
            ("ECHO_DELAY_MS".to_string(), "0".to_string()),
            ("PROVIDER_RETRY_BASE_MS".to_string(), "1".to_string()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::load(|k| {
            vars.iter()
                .rev()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .await
        .expect("test config");
        let state = AppState::new(config).await.expect("app state");
        let app = http::app(state.clone(), api::all_routes());
        TestApp { state, app, dir }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The router of one function, with the shared layers, as its Lambda serves it.
    pub fn function(&self, function: &codechat::function::Function) -> Router {
        let routes = function.routes().expect("an HTTP function");
        http::app(self.state.clone(), routes())
    }

    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        let res = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// The response with its body unread, for streams.
    pub async fn send_streaming(&self, req: Request<Body>) -> axum::response::Response {
        self.app
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible")
    }

    /// `POST /api/v1/chat`, with an optional Idempotency-Key.
    pub async fn chat(
        &self,
        token: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> TestResponse {
        let mut req = request(Method::POST, "/api/v1/chat", Some(token), Some(body));
        if let Some(key) = idempotency_key {
            req.headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        self.send(req).await
    }

    /// A streamed chat turn, read to its end and split into events.
    pub async fn chat_stream(
        &self,
        token: &str,
        mut body: Value,
        idempotency_key: Option<&str>,
    ) -> Vec<SseEvent> {
        body["stream"] = json!(true);
        let res = self.chat(token, body, idempotency_key).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert!(res.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        parse_sse(&res.text())
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(request(Method::GET, path, token, None)).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.send(request(Method::POST, path, token, Some(body)))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.send(request(Method::PATCH, path, token, Some(body)))
            .await
    }

    pub async fn put(&self, path: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.send(request(Method::PUT, path, token, Some(body)))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(request(Method::DELETE, path, token, None)).await
    }

    /// A multipart/form-data body of `parts`, with a token.
    pub async fn post_multipart(
        &self,
        path: &str,
        token: &str,
        parts: &[Part<'_>],
    ) -> TestResponse {
        let (content_type, body) = multipart(parts);
        self.send(
            Request::post(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// A raw body with the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> TestResponse {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(req).await
    }

    /// The first page of a conversation's messages, oldest first.
    pub async fn messages(&self, token: &str, conversation_id: &str) -> Vec<Value> {
        let page = self
            .get(
                &format!("/api/v1/conversations/{conversation_id}/messages"),
                Some(token),
            )
            .await
            .json();
        page["items"].as_array().expect("items").clone()
    }

    /// Sets `user`'s daily token budget as the admin (`null` follows the default).
    pub async fn set_daily_limit(&self, admin: &str, user: &Tokens, limit: Value) {
        let res = self
            .patch(
                &format!("/api/v1/admin/users/{}", user.user["id"].as_str().unwrap()),
                json!({ "daily_token_limit": limit }),
                Some(admin),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }

    /// `GET /api/v1/users/me` with `token`: whether a token still opens the API.
    pub async fn me(&self, token: &str) -> TestResponse {
        self.get("/api/v1/users/me", Some(token)).await
    }

    /// The id of the user `token` belongs to, for tests that reach the store directly.
    pub async fn user_id(&self, token: &str) -> codechat::ids::UserId {
        self.me(token).await.json()["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("GET /users/me names the user")
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
            None,
        )
        .await
    }

    pub async fn logout(&self, refresh_token: &str, access_token: Option<&str>) -> TestResponse {
        self.post(
            "/api/v1/auth/logout",
            json!({"refresh_token": refresh_token}),
            access_token,
        )
        .await
    }

    /// Registers `email` with [`PASSWORD`] and returns the token response.
    pub async fn register(&self, email: &str) -> Tokens {
        let res = self
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        Tokens::from(res.json())
    }
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user: Value,
}

impl From<Value> for Tokens {
    fn from(v: Value) -> Self {
        Tokens {
            access: v["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_string(),
            user: v["user"].clone(),
        }
    }
}

pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an RFC 9457 problem with this status, and returns it.
    #[track_caller]
    pub fn problem(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap()),
            Some("application/problem+json")
        );
        let p = self.json();
        assert_eq!(p["status"], status.as_u16());
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://")),
            "{p}"
        );
        assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
        p
    }

    /// The fields named by a 422 validation problem.
    #[track_caller]
    pub fn invalid_fields(&self) -> Vec<String> {
        let p = self.problem(StatusCode::UNPROCESSABLE_ENTITY);
        p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A child process's output: appended to the file the environment variable `var` names, or
/// nowhere.
pub fn log_named_by(var: &str) -> std::process::Stdio {
    std::env::var_os(var)
        .and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        })
        .map_or_else(std::process::Stdio::null, std::process::Stdio::from)
}

/// A path in the repository (the tests crate sits one level below its root).
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A file of the repository.
pub fn repo_file(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A zip built in memory: `(name, bytes)` files, deflated.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        w.start_file(*name, options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
    /// The event's `id:`, if it has one.
    pub id: Option<String>,
    /// The event's `retry:` (milliseconds), if it has one.
    pub retry: Option<u64>,
}

/// Splits an SSE body into its events (comments and keep-alives skipped).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            let (mut id, mut retry) = (None, None);
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                } else if let Some(i) = line.strip_prefix("id:") {
                    id = Some(i.trim().to_string());
                } else if let Some(r) = line.strip_prefix("retry:") {
                    retry = r.trim().parse().ok();
                }
            }
            let event = event?;
            let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
            Some(SseEvent {
                event,
                data,
                id,
                retry,
            })
        })
        .collect()
}

/// Reads a streamed body until `n` complete events have arrived (or the body ends).
pub async fn read_events(body: &mut Body, n: usize) -> Vec<SseEvent> {
    let mut text = String::new();
    loop {
        let events = parse_sse(&text);
        if events.len() >= n && text.ends_with("\n\n") {
            return events;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            _ => return parse_sse(&text),
        }
    }
}

/// Polls `check` until it holds or two seconds pass.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Every file below `root`, as `/`-separated paths relative to it, sorted (what a blob store or a
/// test server holds on disk).
pub fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                found.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

impl TestApp {
    /// PUTs `bytes` to an upload target (`{url, headers}` as the API hands it out), as a client
    /// would: over real HTTP when the URL is the S3 server's, through the router when it is the
    /// local store's signed URL. `overrides` replace or add headers.
    pub async fn put_upload(
        &self,
        upload: &Value,
        bytes: &[u8],
        overrides: &[(&str, &str)],
    ) -> u16 {
        let url = upload["url"].as_str().expect("upload url");
        let mut headers: Vec<(String, String)> = upload["headers"]
            .as_object()
            .expect("upload headers")
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or_default().to_string()))
            .filter(|(k, _)| k != "content-length" && !overrides.iter().any(|(o, _)| o == k))
            .collect();
        headers.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        match url.find("/api/v1/") {
            Some(at) => {
                let mut req = Request::builder().method(Method::PUT).uri(&url[at..]);
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                self.send(req.body(Body::from(bytes.to_vec())).unwrap())
                    .await
                    .status
                    .as_u16()
            }
            None => {
                let mut req = reqwest::Client::new().put(url).body(bytes.to_vec());
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                req.send()
                    .await
                    .expect("the S3 server answers")
                    .status()
                    .as_u16()
            }
        }
    }
}

impl TestApp {
    /// An app whose Bedrock client talks to a fake at `endpoint` (static test credentials), with
    /// Claude Sonnet as the default model, and `extra` settings.
    pub async fn with_bedrock_fake(endpoint: &str, extra: &[(&str, &str)]) -> Self {
        let mut env = vec![
            ("BEDROCK_ENABLED", "true"),
            ("BEDROCK_ENDPOINT_URL", endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("DEFAULT_MODEL", "bedrock/claude-sonnet-4"),
        ];
        env.extend_from_slice(extra);
        Self::with_env(&env).await
    }

    /// An app whose OpenAI-compatible client talks to a wiremock `server` (its `/v1`), as
    /// [`Self::with_openai_fake`].
    pub async fn with_openai_server(server: &wiremock::MockServer, extra: &[(&str, &str)]) -> Self {
        Self::with_openai_fake(&format!("{}/v1", server.uri()), extra).await
    }

    /// An app whose OpenAI-compatible client talks to a fake at `base_url` (`…/v1`), with
    /// gpt-4o-mini as the default model, and `extra` settings.
    pub async fn with_openai_fake(base_url: &str, extra: &[(&str, &str)]) -> Self {
        let mut env = vec![
            ("OPENAI_BASE_URL", base_url),
            ("OPENAI_API_KEY", "sk-test"),
            ("DEFAULT_MODEL", "openai/gpt-4o-mini"),
        ];
        env.extend_from_slice(extra);
        Self::with_env(&env).await
    }
}

/// A multipart part: name, file name, content type, bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body: its Content-Type (with the boundary) and bytes.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "codechat-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(t) = content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A real MCP server (`tests/support/mcp_server.py`: the official Python SDK, Streamable HTTP on
/// loopback), killed on drop. Without the `mcp` package the tests that need it are skipped with a
/// message, unless `CODECHAT_REQUIRE_TOOLS` is set (scripts/test sets it and installs the package).
pub struct McpTestServer {
    child: std::process::Child,
    _log: tempfile::NamedTempFile,
    /// `http://127.0.0.1:<port>/mcp`
    pub url: String,
    pub port: u16,
}

impl Drop for McpTestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpTestServer {
    pub fn start(stateless: bool) -> Option<McpTestServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Self::start_on(port, stateless)
    }

    /// A server on `port` (a restarted one: it knows none of the sessions of the last).
    pub fn start_on(port: u16, stateless: bool) -> Option<McpTestServer> {
        use std::io::BufRead;
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut command = std::process::Command::new("python3");
        command
            .arg(repo_path("tests/support/mcp_server.py"))
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(log.reopen().expect("the log file"));
        if stateless {
            command.arg("--stateless");
        }
        let mut child = command.spawn().expect("python3");
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            let why = std::fs::read_to_string(log.path()).unwrap_or_default();
            let why = format!("the MCP test server did not start (pip install mcp): {why}");
            if std::env::var_os("CODECHAT_REQUIRE_TOOLS").is_some() {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            return None;
        }
        Some(McpTestServer {
            child,
            _log: log,
            url: format!("http://127.0.0.1:{port}/mcp"),
            port,
        })
    }
}

//! Tool servers (issue 33), against the tests' MCP server on loopback (the official Python SDK,
//! `tests/support/mcp_server.py`, Streamable HTTP with sessions):
//!
//! - the server's own time: a `tools/call` of its `echo` tool sent as a bare JSON-RPC POST on an
//!   open session (the floor any client pays: the server and one loopback round trip), beside the
//!   same call through the turn's path (`McpTools::call`: the checked client, rmcp, the result
//!   turned into the model's text) on the instance's session; the difference is what we add;
//! - first use: the handshake, `tools/list` and a call as bare POSTs, beside a fresh instance's
//!   tool offer and call;
//! - a turn's tool offer within the TTL (this instance's list; no request to the server);
//! - a whole agent turn that calls the tool, beside one that calls none.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use codechat::{
    kinds::ToolCall,
    mcp::{Hub, McpTools},
};
use serde_json::{json, Value};

use crate::{in_process::InProcess, Row, PASSWORD};

const CALLS: usize = 300;
const FIRSTS: usize = 50;
const OFFERS: usize = 200;
const TURNS: usize = 100;
const PAUSE: Duration = Duration::from_millis(30);

/// A bare JSON-RPC client of the server: POSTs on a session opened by hand.
struct Bare {
    http: reqwest::Client,
    url: String,
}

impl Bare {
    async fn post(&self, body: Value, session: Option<&str>) -> (Option<String>, String) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let res = req.body(body.to_string()).send().await.unwrap();
        let session = res
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        (session, res.text().await.unwrap())
    }

    /// `initialize` and `notifications/initialized`: a new session's id.
    async fn open(&self) -> String {
        let (session, _) = self
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}}),
                None,
            )
            .await;
        let session = session.expect("a session id");
        self.post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some(&session),
        )
        .await;
        session
    }

    async fn call(&self, session: &str) {
        let (_, body) = self
            .post(
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "hello"}}}),
                Some(session),
            )
            .await;
        assert!(body.contains("hello"), "{body}");
    }

    async fn list(&self, session: &str) {
        let (_, body) = self
            .post(
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                Some(session),
            )
            .await;
        assert!(body.contains("echo"), "{body}");
    }
}

pub async fn measure(app: &InProcess, state: &codechat::AppState, url: &str) -> Vec<Row> {
    let token = app.register("mcp@bench.dev", PASSWORD).await;
    let (status, server) = app
        .call(
            "POST",
            "/api/v1/mcp-servers",
            Some(&token),
            Some(
                json!({"name": "tools", "url": url, "headers": {"Authorization": "Bearer bench"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    let conn = state.store().conn().await.unwrap();
    let user = conn
        .user_by_email("mcp@bench.dev")
        .await
        .unwrap()
        .unwrap()
        .id;
    let entries = vec!["mcp:tools".to_string()];
    let hub = state.mcp();
    let mut rows = Vec::new();

    let p50 = |t: &[Duration]| {
        let mut t = t.to_vec();
        t.sort();
        t[t.len() / 2]
    };
    let bare = Bare {
        http: reqwest::Client::new(),
        url: url.to_string(),
    };

    // A call on an open session: the server's own time (a bare POST), then through the turn's
    // path (the instance's session reused).
    let session = bare.open().await;
    let mut raw = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        bare.call(&session).await;
        raw.push(started.elapsed());
    }
    let (tools, _) = McpTools::for_agent(&conn, hub, user, &entries)
        .await
        .unwrap();
    let call = ToolCall {
        id: "c1".into(),
        name: "tools__echo".into(),
        input: json!({"text": "hello"}),
    };
    let far = Instant::now() + Duration::from_secs(60);
    let mut ours = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let out = tools.call(&call, far).await;
        ours.push(started.elapsed());
        assert_eq!(out.content, "hello");
    }
    eprintln!(
        "bench: on an open session, one MCP call adds {:.3} ms to the server's own time (p50 {:?} vs {:?})",
        (p50(&ours).as_secs_f64() - p50(&raw).as_secs_f64()) * 1e3,
        p50(&ours),
        p50(&raw),
    );
    rows.push(Row::from_times(
        "mcp",
        "tools/call on an open session, bare POST (the server's own time)",
        raw,
    ));
    rows.push(Row::from_times(
        "mcp",
        "tools/call on an open session, through McpTools::call",
        ours,
    ));

    // A new instance's first turn with the server: handshake, list and call, bare and through a
    // fresh hub (its offer connects and lists; the call reuses that session).
    // Both sides: a new HTTP client (a new connection), and a pause after each so that closing
    // the session (a DELETE, sent when a hub is dropped) is not timed in the next.
    let mut raw = Vec::with_capacity(FIRSTS);
    for _ in 0..FIRSTS {
        let bare = Bare {
            http: reqwest::Client::new(),
            url: url.to_string(),
        };
        let started = Instant::now();
        let session = bare.open().await;
        bare.list(&session).await;
        bare.call(&session).await;
        raw.push(started.elapsed());
        bare.http
            .delete(url)
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap();
        tokio::time::sleep(PAUSE).await;
    }
    let mut ours = Vec::with_capacity(FIRSTS);
    for _ in 0..FIRSTS {
        let fresh = Arc::new(Hub::new(&state.config().mcp));
        let started = Instant::now();
        let (tools, specs) = McpTools::for_agent(&conn, &fresh, user, &entries)
            .await
            .unwrap();
        assert!(specs.iter().any(|s| s.name == "tools__echo"));
        let out = tools.call(&call, far).await;
        ours.push(started.elapsed());
        assert!(!out.is_error, "{}", out.content);
        drop((tools, fresh));
        tokio::time::sleep(PAUSE).await;
    }
    eprintln!(
        "bench: a first turn's handshake, list and call add {:.3} ms to the server's own time (p50 {:?} vs {:?})",
        (p50(&ours).as_secs_f64() - p50(&raw).as_secs_f64()) * 1e3,
        p50(&ours),
        p50(&raw),
    );
    rows.push(Row::from_times(
        "mcp",
        "first use: initialize, initialized, tools/list, tools/call, bare POSTs",
        raw,
    ));
    rows.push(Row::from_times(
        "mcp",
        "first use: a fresh instance's tool offer and call",
        ours,
    ));

    // The tool offer once listed: this instance's list, one store read (no request to the server).
    let mut warm = Vec::with_capacity(OFFERS);
    for _ in 0..OFFERS {
        let started = Instant::now();
        let (_, specs) = McpTools::for_agent(&conn, hub, user, &entries)
            .await
            .unwrap();
        warm.push(started.elapsed());
        assert!(specs.iter().any(|s| s.name == "tools__echo"));
    }
    rows.push(Row::from_times(
        "mcp",
        "a turn's tool offer within the TTL (one store read)",
        warm,
    ));

    // Whole agent turns (the offline model): one that calls the tool, one that calls none.
    let (status, agent) = app
        .call(
            "POST",
            "/api/v1/agents",
            Some(&token),
            Some(
                json!({"name": "Bench tools", "system_prompt": "Use the tools.",
                        "model": "local/echo", "tools": ["mcp:tools"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    for (route, message) in [
        (
            "agent turn calling the MCP tool (POST /chat)",
            r#"/tool tools__echo {"text": "hello"}"#,
        ),
        ("agent turn calling no tool (POST /chat)", "hello"),
    ] {
        let row = app
            .measure(
                route,
                TURNS,
                |_| {
                    (
                        "POST",
                        "/api/v1/chat".to_string(),
                        Some(json!({"agent_id": agent["id"], "message": message})),
                    )
                },
                &token,
                200,
            )
            .await;
        rows.push(row);
    }
    rows
}

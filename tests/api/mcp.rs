//! Users' MCP tool servers: registering them (headers sealed, never answered back), their tools
//! from a real server (the official Python SDK, `tests/support/mcp_server.py`), agents calling them
//! through the offline model's `/tool`, each user's own credentials reaching only their own calls,
//! failing, slow, huge and lying servers as tool errors, the tool list cache, and the address
//! rules (SSRF) at registration and at connection.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use codechat_api_tests::{McpTestServer, TestApp, TestResponse};
use serde_json::{json, Value};

async fn register(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/api/v1/mcp-servers", body, Some(token)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()
}

async fn agent(app: &TestApp, token: &str, tools: Value) -> String {
    let res = app
        .post(
            "/api/v1/agents",
            json!({"name": "Tool user", "system_prompt": "Use the tools.", "model": "local/echo",
                   "tools": tools}),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()["id"].as_str().unwrap().to_string()
}

/// `GET /mcp-servers/{id}/tools` of a registered server.
async fn tools_of(app: &TestApp, token: &str, server: &Value) -> TestResponse {
    let id = server["id"].as_str().unwrap();
    app.get(&format!("/api/v1/mcp-servers/{id}/tools"), Some(token))
        .await
}

/// One turn with the agent; answers the answer's text (the offline model lists what each tool
/// returned, its first line).
async fn call(app: &TestApp, token: &str, agent: &str, command: &str) -> String {
    let res = app
        .chat(token, json!({"agent_id": agent, "message": command}), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let answer = res.json();
    assert_eq!(
        answer["assistant_message"]["status"], "complete",
        "{answer}"
    );
    answer["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn servers_are_registered_listed_and_deleted_by_their_owner_only() {
    let app = TestApp::with_env(&[("MAX_MCP_SERVERS_PER_USER", "2")]).await;
    let alice = app.register("mcp-owner@example.com").await.access;
    let bob = app.register("mcp-other@example.com").await.access;
    let created = register(
        &app,
        &alice,
        json!({"name": "docs", "url": "https://mcp.example.com/mcp",
               "headers": {"Authorization": "Bearer alice-secret-token", "X-Api-Key": "k-123"}}),
    )
    .await;
    assert_eq!(created["name"], "docs");
    assert_eq!(created["url"], "https://mcp.example.com/mcp");
    assert_eq!(
        created["header_names"],
        json!(["authorization", "x-api-key"])
    );
    assert!(!created.to_string().contains("alice-secret-token"));
    let id = created["id"].as_str().unwrap();

    let listed = app.get("/api/v1/mcp-servers", Some(&alice)).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains("alice-secret-token"));
    let one = app
        .get(&format!("/api/v1/mcp-servers/{id}"), Some(&alice))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(!one.text().contains("k-123"));

    // Another user sees nothing of it.
    assert_eq!(
        app.get("/api/v1/mcp-servers", Some(&bob)).await.json()["items"],
        json!([])
    );
    for path in [
        format!("/api/v1/mcp-servers/{id}"),
        format!("/api/v1/mcp-servers/{id}/tools"),
    ] {
        app.get(&path, Some(&bob))
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    app.delete(&format!("/api/v1/mcp-servers/{id}"), Some(&bob))
        .await
        .problem(StatusCode::NOT_FOUND);

    // A name is the user's once; the cap holds with nothing stored past it.
    let taken = app
        .post(
            "/api/v1/mcp-servers",
            json!({"name": "docs", "url": "https://other.example.com/mcp"}),
            Some(&alice),
        )
        .await;
    assert_eq!(
        taken.problem(StatusCode::CONFLICT)["errors"][0]["field"],
        "name"
    );
    register(
        &app,
        &bob,
        json!({"name": "docs", "url": "https://mcp.example.com/mcp"}),
    )
    .await;
    register(
        &app,
        &alice,
        json!({"name": "second", "url": "https://two.example.com/mcp"}),
    )
    .await;
    let over = app
        .post(
            "/api/v1/mcp-servers",
            json!({"name": "third", "url": "https://three.example.com/mcp"}),
            Some(&alice),
        )
        .await;
    over.problem(StatusCode::CONFLICT);
    assert_eq!(
        app.get("/api/v1/mcp-servers", Some(&alice)).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let gone = app
        .delete(&format!("/api/v1/mcp-servers/{id}"), Some(&alice))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/mcp-servers/{id}"), Some(&alice))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_registrations_name_every_bad_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let t = app.register("mcp-bad@example.com").await.access;
    let res = app
        .post(
            "/api/v1/mcp-servers",
            json!({"name": "bad__name", "url": "ftp://mcp.example.com/",
                   "headers": {"Host": "evil.example.com", "X-Token": "two\nlines", "bad header": "x"}}),
            Some(&t),
        )
        .await;
    res.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = res.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "headers.Host",
            "headers.X-Token",
            "headers.bad header",
            "name",
            "url"
        ]
    );
    for (body, field) in [
        (json!({"name": "", "url": "https://a.example/mcp"}), "name"),
        (
            json!({"name": "x_", "url": "https://a.example/mcp"}),
            "name",
        ),
        (
            json!({"name": &"n".repeat(33), "url": "https://a.example/mcp"}),
            "name",
        ),
        (
            json!({"name": "ok", "url": "https://user:pw@a.example/mcp"}),
            "url",
        ),
        (
            json!({"name": "ok", "url": "http://mcp.example.com/mcp"}),
            "url",
        ),
        (
            json!({"name": "ok", "url": "https://a.example/mcp", "headers": {"X-Big": "v".repeat(4097)}}),
            "headers.X-Big",
        ),
    ] {
        let res = app.post("/api/v1/mcp-servers", body, Some(&t)).await;
        res.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(res.invalid_fields(), [field]);
    }
    // At the edges: 32 characters and a 4096-byte header are taken.
    register(
        &app,
        &t,
        json!({"name": "n".repeat(32), "url": "https://a.example/mcp", "headers": {"X-Big": "v".repeat(4096)}}),
    )
    .await;
    let res = app
        .post(
            "/api/v1/mcp-servers",
            json!({"name": "ok", "url": "https://a.example/mcp", "extra": 1}),
            Some(&t),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.text()
    );
    assert_eq!(
        app.get("/api/v1/mcp-servers", Some(&t)).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn headers_are_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let t = app.register("mcp-sealed@example.com").await.access;
    let secret = "Bearer sealed-at-rest-9f8e7d6c5b4a";
    register(
        &app,
        &t,
        json!({"name": "vault", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": secret}}),
    )
    .await;
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(stored
        .windows(b"mcp_servers".len())
        .any(|w| w == b"mcp_servers"));
    assert!(!stored
        .windows(b"sealed-at-rest".len())
        .any(|w| w == b"sealed-at-rest"));
}

#[tokio::test]
async fn agents_name_servers_they_have() {
    let app = TestApp::spawn().await;
    let t = app.register("mcp-agents@example.com").await.access;
    let res = app
        .post(
            "/api/v1/agents",
            json!({"name": "A", "system_prompt": "x", "model": "local/echo",
                   "tools": ["read_file", "mcp:nowhere", "mcp:bad__name", "mcp:x/"]}),
            Some(&t),
        )
        .await;
    res.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.invalid_fields(), ["tools[2]", "tools[3]"]);
    let res = app
        .post(
            "/api/v1/agents",
            json!({"name": "A", "system_prompt": "x", "model": "local/echo", "tools": ["mcp:nowhere/tool"]}),
            Some(&t),
        )
        .await;
    res.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.invalid_fields(), ["tools[0]"]);
    register(
        &app,
        &t,
        json!({"name": "nowhere", "url": "https://mcp.example.com/mcp"}),
    )
    .await;
    let id = agent(&app, &t, json!(["mcp:nowhere", "mcp:nowhere/tool"])).await;
    let got = app.get(&format!("/api/v1/agents/{id}"), Some(&t)).await;
    assert_eq!(
        got.json()["tools"],
        json!(["mcp:nowhere", "mcp:nowhere/tool"])
    );
}

#[tokio::test]
async fn a_real_servers_tools_are_listed_and_called_by_an_agent() {
    let Some(server) = McpTestServer::start(false) else {
        return;
    };
    let app = TestApp::spawn().await;
    let t = app.register("mcp-real@example.com").await.access;
    let created = register(&app, &t, json!({"name": "tools", "url": server.url})).await;
    let tools = tools_of(&app, &t, &created).await;
    assert_eq!(tools.status, StatusCode::OK, "{}", tools.text());
    let tools = tools.json();
    let add = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add")
        .expect("add is listed")
        .clone();
    assert_eq!(add["model_name"], "tools__add");
    assert_eq!(add["description"], "Adds two whole numbers.");
    assert!(add["input_schema"]["properties"]["a"].is_object(), "{add}");

    let all = agent(&app, &t, json!(["mcp:tools"])).await;
    let text = call(&app, &t, &all, r#"/tool tools__add {"a": 2, "b": 40}"#).await;
    assert!(text.contains("- ok: 42"), "{text}");
    let text = call(
        &app,
        &t,
        &all,
        r#"/tool tools__fail {"message": "no such city"}"#,
    )
    .await;
    assert!(
        text.contains("- error: Error executing tool fail"),
        "{text}"
    );

    // The streamed turn records the call and its result as events.
    let events = app
        .chat_stream(
            &t,
            json!({"agent_id": all, "message": r#"/tool tools__echo {"text": "round trip"}"#}),
            None,
        )
        .await;
    let call_event = events.iter().find(|e| e.event == "tool_call").unwrap();
    let called = &call_event.data;
    assert_eq!(called["name"], "tools__echo");
    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    let result = &result.data;
    assert_eq!(result["content"], "round trip");
    assert_eq!(result["is_error"], false);

    // An agent naming one tool is offered that one only: the other is plain text to the model.
    let one = agent(&app, &t, json!(["mcp:tools/add"])).await;
    let text = call(&app, &t, &one, r#"/tool tools__echo {"text": "hi"}"#).await;
    assert!(!text.contains("ran the tools"), "{text}");
    let text = call(&app, &t, &one, r#"/tool tools__add {"a": 1, "b": 1}"#).await;
    assert!(text.contains("- ok: 2"), "{text}");

    // A deleted server: the agents naming it keep the entry and are offered nothing from it.
    let id = created["id"].as_str().unwrap();
    let gone = app
        .delete(&format!("/api/v1/mcp-servers/{id}"), Some(&t))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let text = call(&app, &t, &one, r#"/tool tools__add {"a": 1, "b": 1}"#).await;
    assert!(!text.contains("ran the tools"), "{text}");
    let kept = app.get(&format!("/api/v1/agents/{one}"), Some(&t)).await;
    assert_eq!(kept.json()["tools"], json!(["mcp:tools/add"]));
}

#[tokio::test]
async fn each_users_credentials_reach_only_their_own_calls() {
    let Some(server) = McpTestServer::start(false) else {
        return;
    };
    // Two instances over one store: neither the tool list cache nor a session carries one user's
    // headers into another's call.
    let a = TestApp::spawn().await;
    let b = TestApp::with_env(&[("CODECHAT_DATA_DIR", a.data_dir().to_str().unwrap())]).await;
    let alice = a.register("mcp-alice@example.com").await.access;
    let bob = a.register("mcp-bob@example.com").await.access;
    register(
        &a,
        &alice,
        json!({"name": "tools", "url": server.url, "headers": {"Authorization": "Bearer alice-token"}}),
    )
    .await;
    register(
        &a,
        &bob,
        json!({"name": "tools", "url": server.url, "headers": {"X-Api-Key": "bob-key"}}),
    )
    .await;
    let alice_agent = agent(&a, &alice, json!(["mcp:tools/whoami"])).await;
    let bob_agent = agent(&a, &bob, json!(["mcp:tools/whoami"])).await;
    for app in [&a, &b, &a, &b] {
        let (x, y) = futures_util::join!(
            call(app, &alice, &alice_agent, "/tool tools__whoami {}"),
            call(app, &bob, &bob_agent, "/tool tools__whoami {}"),
        );
        assert!(
            x.contains(r#"{"authorization": "Bearer alice-token", "x-api-key": null}"#),
            "{x}"
        );
        assert!(
            y.contains(r#"{"authorization": null, "x-api-key": "bob-key"}"#),
            "{y}"
        );
    }
}

#[tokio::test]
async fn an_instance_keeps_a_session_per_server_and_opens_another_after_a_restart() {
    let Some(server) = McpTestServer::start(false) else {
        return;
    };
    let port = server.port;
    let app = TestApp::spawn().await;
    let t = app.register("mcp-restart@example.com").await.access;
    register(&app, &t, json!({"name": "tools", "url": server.url})).await;
    let id = agent(&app, &t, json!(["mcp:tools"])).await;
    for n in 1..=2 {
        let text = call(
            &app,
            &t,
            &id,
            &format!(r#"/tool tools__add {{"a": {n}, "b": 1}}"#),
        )
        .await;
        assert!(text.contains(&format!("- ok: {}", n + 1)), "{text}");
    }
    // The server restarts and forgets the session: the call is a tool error or succeeds on a new
    // session (rmcp opens one when the server says the old one expired); the next one succeeds.
    drop(server);
    let Some(_restarted) = McpTestServer::start_on(port, false) else {
        return;
    };
    let first = call(&app, &t, &id, r#"/tool tools__add {"a": 5, "b": 5}"#).await;
    assert!(
        first.contains("- ok: 10") || first.contains("- error: "),
        "{first}"
    );
    let text = call(&app, &t, &id, r#"/tool tools__add {"a": 6, "b": 6}"#).await;
    assert!(text.contains("- ok: 12"), "{text}");
}

#[tokio::test]
async fn slow_huge_and_absent_servers_are_tool_errors_never_5xx() {
    let Some(server) = McpTestServer::start(true) else {
        return;
    };
    let app = TestApp::with_env(&[
        ("MCP_CALL_TIMEOUT_SECONDS", "1"),
        ("MCP_MAX_RESULT_BYTES", "40000"),
    ])
    .await;
    let t = app.register("mcp-failing@example.com").await.access;
    register(&app, &t, json!({"name": "tools", "url": server.url})).await;
    let id = agent(&app, &t, json!(["mcp:tools"])).await;

    // The cap is on the server's whole message: this server sends a text result twice (as text
    // and as structured content), so 15 000 characters are about 30 KB and arrive whole, and
    // 25 000 (about 50 KB) are refused.
    let text = call(&app, &t, &id, r#"/tool tools__big {"chars": 15000}"#).await;
    assert!(
        text.contains(&format!("- ok: {}", "x".repeat(15000))),
        "{text}"
    );
    let text = call(&app, &t, &id, r#"/tool tools__big {"chars": 25000}"#).await;
    assert!(
        text.contains("- error: the tool server could not be used: the connection ended without an answer (the server closed it, or its answer was over 40000 bytes)"),
        "{text}"
    );
    let text = call(&app, &t, &id, r#"/tool tools__sleep {"seconds": 3}"#).await;
    assert!(
        text.contains("- error: the tool server did not answer within 1 s"),
        "{text}"
    );
    // Arguments that are not an object are refused before anything is sent.
    let text = call(&app, &t, &id, r#"/tool tools__add [1, 2]"#).await;
    assert!(text.contains("- error: "), "{text}");

    // A server that is gone: its tools are not offered, and listing them is a 502 problem.
    drop(server);
    let gone = register(
        &app,
        &t,
        json!({"name": "gone", "url": "http://127.0.0.1:9/mcp"}),
    )
    .await;
    let res = tools_of(&app, &t, &gone).await;
    let problem = res.problem(StatusCode::BAD_GATEWAY);
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("/tool-server-error"));
    let lost = agent(&app, &t, json!(["mcp:gone"])).await;
    let text = call(&app, &t, &lost, "/tool gone__whoami {}").await;
    assert!(!text.contains("ran the tools"), "{text}");
}

/// A server that lies: a schema that is not an object's, a call answered with broken JSON, and a
/// redirect to another host. It counts its `tools/list` calls and keeps the headers it saw.
#[derive(Clone, Default)]
struct Liar {
    lists: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    port: u16,
}

async fn liar(State(liar): State<Liar>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(key) = headers.get("x-api-key") {
        liar.seen
            .lock()
            .unwrap()
            .push(key.to_str().unwrap().to_string());
    }
    let id = body["id"].clone();
    let result = |result: Value| {
        (
            [
                ("mcp-session-id", "liar-1"),
                ("content-type", "application/json"),
            ],
            json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
        )
            .into_response()
    };
    match body["method"].as_str().unwrap_or("") {
        "initialize" => result(json!({"protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}}, "serverInfo": {"name": "liar", "version": "1"}})),
        "tools/list" => {
            liar.lists.fetch_add(1, Ordering::SeqCst);
            result(json!({"tools": [
                {"name": "wrong", "inputSchema": {"type": "string"}},
                {"name": "garbled", "description": "Answers garbage.", "inputSchema": {"type": "object", "properties": {}}},
            ]}))
        }
        "tools/call" => (
            [("content-type", "application/json")],
            "{\"jsonrpc\": \"2.0\", \"id\": 3, \"result\": {not json",
        )
            .into_response(),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn redirect(State(liar): State<Liar>) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [("location", format!("http://localhost:{}/mcp", liar.port))],
    )
        .into_response()
}

async fn start_liar() -> Liar {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = Liar {
        port: listener.local_addr().unwrap().port(),
        ..Liar::default()
    };
    let app = Router::new()
        .route(
            "/mcp",
            post(liar).get(|State(liar): State<Liar>| async move {
                liar.gets.fetch_add(1, Ordering::SeqCst);
                StatusCode::METHOD_NOT_ALLOWED
            }),
        )
        .route("/redirect", post(redirect))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    state
}

#[tokio::test]
async fn a_lying_server_is_a_tool_error_and_its_list_is_cached_per_instance() {
    let server = start_liar().await;
    let url = format!("http://127.0.0.1:{}", server.port);
    let app = TestApp::spawn().await;
    let t = app.register("mcp-liar@example.com").await.access;
    let created = register(
        &app,
        &t,
        json!({"name": "liar", "url": format!("{url}/mcp"), "headers": {"X-Api-Key": "liar-key"}}),
    )
    .await;
    let id = agent(&app, &t, json!(["mcp:liar"])).await;
    // `wrong`'s schema is not an object's: it is not offered; `garbled` answers broken JSON.
    let text = call(&app, &t, &id, "/tool liar__wrong {}").await;
    assert!(!text.contains("ran the tools"), "{text}");
    let text = call(&app, &t, &id, "/tool liar__garbled {}").await;
    assert!(
        text.contains("- error: the tool server could not be used"),
        "{text}"
    );
    // Three turns and a listing within the TTL: one `tools/list`.
    let tools = tools_of(&app, &t, &created).await;
    assert_eq!(tools.status, StatusCode::OK, "{}", tools.text());
    call(&app, &t, &id, "/tool liar__garbled {}").await;
    assert_eq!(server.lists.load(Ordering::SeqCst), 1);
    // No standalone GET stream is opened (this client answers no server-initiated request).
    assert_eq!(server.gets.load(Ordering::SeqCst), 0);

    // Without the cache every turn lists again.
    let uncached = TestApp::with_env(&[
        ("CODECHAT_DATA_DIR", app.data_dir().to_str().unwrap()),
        ("MCP_TOOLS_TTL_SECONDS", "0"),
    ])
    .await;
    call(&uncached, &t, &id, "/tool liar__garbled {}").await;
    call(&uncached, &t, &id, "/tool liar__garbled {}").await;
    assert_eq!(server.lists.load(Ordering::SeqCst), 3);

    // A redirect to another host is not followed: the headers never reach it.
    let before = server.seen.lock().unwrap().len();
    let moved = register(
        &app,
        &t,
        json!({"name": "moved", "url": format!("{url}/redirect"), "headers": {"X-Api-Key": "moved-key"}}),
    )
    .await;
    let res = tools_of(&app, &t, &moved).await;
    res.problem(StatusCode::BAD_GATEWAY);
    let seen = server.seen.lock().unwrap().clone();
    assert!(!seen[before..].iter().any(|k| k == "moved-key"), "{seen:?}");
}

#[tokio::test]
async fn in_the_lambda_profile_only_public_https_servers_are_reached() {
    let Some(server) = McpTestServer::start(false) else {
        return;
    };
    let strict = TestApp::with_env(&[("MCP_ALLOW_LOOPBACK", "false")]).await;
    let t = strict.register("mcp-ssrf@example.com").await.access;
    for url in [
        server.url.clone(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://10.0.0.7/mcp".to_string(),
        "https://[::ffff:127.0.0.1]/mcp".to_string(),
        format!("https://localhost:{}/mcp", server.port),
    ] {
        let res = strict
            .post(
                "/api/v1/mcp-servers",
                json!({"name": "x", "url": url}),
                Some(&t),
            )
            .await;
        res.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(res.invalid_fields(), ["url"], "{url}");
    }

    // Names accepted where loopback is allowed, then reached from an instance where it is not:
    // the URL is checked again and the name resolved to allowed addresses only, at connection.
    let local =
        TestApp::with_env(&[("CODECHAT_DATA_DIR", strict.data_dir().to_str().unwrap())]).await;
    let plain = register(&local, &t, json!({"name": "plain", "url": server.url})).await;
    let named = register(
        &local,
        &t,
        json!({"name": "named", "url": format!("https://localhost:{}/mcp", server.port)}),
    )
    .await;
    for (created, why) in [
        (plain, "not allowed here"),
        (named, "resolves to no public address"),
    ] {
        let res = tools_of(&strict, &t, &created).await;
        let problem = res.problem(StatusCode::BAD_GATEWAY);
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }
    let id = agent(&strict, &t, json!(["mcp:plain", "mcp:named"])).await;
    let text = call(&strict, &t, &id, "/tool plain__add {\"a\": 1, \"b\": 2}").await;
    assert!(!text.contains("ran the tools"), "{text}");
    // The same server, reached where loopback is allowed.
    let text = call(&local, &t, &id, "/tool plain__add {\"a\": 1, \"b\": 2}").await;
    assert!(text.contains("- ok: 3"), "{text}");
}

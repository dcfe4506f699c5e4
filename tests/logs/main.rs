//! What the request log says: the route, the user and the conversation, and never a body, a
//! password or a token.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use codechat_api_tests::{TestApp, PASSWORD};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_lines_name_user_and_conversation_but_no_body_or_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    // The functions' own subscriber, at their default level, writing into `capture`. Global, as in
    // a function process (a scoped one loses to callsite caching across threads).
    tracing::subscriber::set_global_default(codechat::http::log_subscriber("info", move || {
        writer.clone()
    }))
    .expect("the only subscriber of this test process");
    let app = TestApp::spawn().await;
    let t = app.register("logs@example.com").await;
    let turn = app
        .chat(
            &t.access,
            json!({"message": "a very private message body"}),
            None,
        )
        .await
        .json();
    let conversation_id = turn["conversation_id"].as_str().unwrap();
    app.get(
        &format!("/api/v1/conversations/{conversation_id}"),
        Some(&t.access),
    )
    .await;

    // A tool server's header, a tool's arguments and its answer stay out of the log too (the MCP
    // client's own log target, which records the messages it exchanges, is off).
    let mcp = codechat_api_tests::McpTestServer::start(false);
    if let Some(server) = &mcp {
        let created = app
            .post(
                "/api/v1/mcp-servers",
                json!({"name": "tools", "url": server.url,
                       "headers": {"Authorization": "Bearer mcp-header-in-no-log"}}),
                Some(&t.access),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text());
        let agent = app
            .post(
                "/api/v1/agents",
                json!({"name": "Logged", "system_prompt": "x", "model": "local/echo", "tools": ["mcp:tools"]}),
                Some(&t.access),
            )
            .await
            .json();
        for command in [
            r#"/tool tools__echo {"text": "a private tool argument"}"#,
            r#"/tool tools__whoami {}"#,
            r#"/tool tools__fail {"message": "a private failure"}"#,
        ] {
            let turn = app
                .chat(
                    &t.access,
                    json!({"agent_id": agent["id"], "message": command}),
                    None,
                )
                .await;
            assert_eq!(turn.status, 200, "{}", turn.text());
        }
    }

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let response_of = |route: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "response" && l["span"]["route"] == route)
            .unwrap_or_else(|| panic!("no response line for {route}: {text}"))
    };
    for route in ["/api/v1/chat", "/api/v1/conversations/{id}"] {
        let span = &response_of(route)["span"];
        assert_eq!(span["user_id"], t.user["id"], "{span}");
        assert_eq!(span["conversation_id"], conversation_id, "{span}");
        assert!(span["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let register = &response_of("/api/v1/auth/register")["span"];
    assert!(register.get("user_id").is_none(), "{register}");

    for secret in [
        "a very private message body",
        PASSWORD,
        &t.access,
        &t.refresh,
        "mcp-header-in-no-log",
        "a private tool argument",
        "a private failure",
    ] {
        assert!(!text.contains(secret), "the log holds a secret or a body");
    }
}

//! Fallbacks: a model whose provider fails before the first token (throttling, 5xx, a timeout, a
//! refused connection, a stream that ends before its first token) hands the turn to the next of
//! its catalog entry's `fallbacks`; the answer names the model that answered and the one asked
//! for, and is billed at the answering model's prices. After the first token there is no fallback.
//! Each failure against the wire-format fakes, streamed and not, on `POST /chat`, the WebSocket and
//! the OpenAI-compatible endpoint.

use std::time::Duration;

use axum::http::StatusCode;
use codechat_api_tests::{fakes, fakes::ManagementApi, repo_file, TestApp, Tokens};
use serde_json::{json, Value};
use wiremock::{
    matchers::{body_partial_json, method, path},
    Mock, MockServer, ResponseTemplate,
};

/// The primary, `openai/gpt-4.1`, falls back to a model of a named provider priced 1 / 2 USD per
/// million tokens.
fn models_file(backup: &MockServer) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.json");
    std::fs::write(
        &models,
        r#"[
            {"id": "openai/gpt-4.1", "fallbacks": ["backup/model"]},
            {"id": "backup/model", "provider": "backup", "provider_model_id": "backup-1",
             "display_name": "Backup", "context_window": 100000, "max_output_tokens": 4096,
             "pricing": {"input_per_mtok_usd": 1.0, "output_per_mtok_usd": 2.0},
             "capabilities": {"streaming": true, "vision": false, "documents": false,
                              "tools": true}}
        ]"#,
    )
    .unwrap();
    let providers = format!(
        r#"[{{"name": "backup", "base_url": "{}/v1", "api_key_env": "BACKUP_KEY"}}]"#,
        backup.uri()
    );
    (dir, models.display().to_string(), providers)
}

/// The backup answers "Backup answer." (10 tokens in, 3 out), streamed or whole as asked.
async fn backup() -> MockServer {
    let server = MockServer::start().await;
    let stream = format!(
        "{}{}{}",
        fakes::openai_chunk("Backup "),
        fakes::openai_chunk("answer."),
        fakes::openai_end(10, 3, 0)
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            json!({"model": "backup-1", "stream": true}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(stream, "text/event-stream"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            json!({"model": "backup-1", "stream": false}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::openai_completion(
                "Backup answer.",
                10,
                3,
                0,
            )),
        )
        .mount(&server)
        .await;
    server
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Throttled,
    ServerError,
    Timeout,
    Refused,
    /// A stream that ends before its first token (streamed turns only).
    EmptyStream,
}

/// The primary's endpoint, failing as `failure` says: its base URL.
async fn failing(failure: Failure) -> (Option<MockServer>, String) {
    let reply = match failure {
        Failure::Refused => {
            // A port nothing listens on: bound, then closed.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            return (None, format!("http://127.0.0.1:{port}/v1"));
        }
        Failure::Throttled => ResponseTemplate::new(429).set_body_json(fakes::openai_error(
            "Rate limit reached",
            "rate_limit_exceeded",
        )),
        Failure::ServerError => ResponseTemplate::new(500).set_body_json(fakes::openai_error(
            "The server had an error",
            "server_error",
        )),
        Failure::Timeout => ResponseTemplate::new(200)
            .set_body_json(fakes::openai_completion("late", 1, 1, 0))
            .set_delay(Duration::from_secs(4)),
        Failure::EmptyStream => ResponseTemplate::new(200).set_body_raw("", "text/event-stream"),
    };
    let server = MockServer::start().await;
    fakes::reply_always(&server, reply).await;
    let url = format!("{}/v1", server.uri());
    (Some(server), url)
}

async fn app(primary_url: &str, backup: &MockServer, extra: &[(&str, &str)]) -> (TestApp, Tokens) {
    let (dir, models, providers) = models_file(backup);
    let mut env = vec![
        ("OPENAI_BASE_URL", primary_url),
        ("OPENAI_API_KEY", "sk-test"),
        ("DEFAULT_MODEL", "openai/gpt-4.1"),
        ("MODELS_FILE", models.as_str()),
        ("OPENAI_COMPATIBLE_PROVIDERS", providers.as_str()),
        ("BACKUP_KEY", "bk-test"),
        ("PROVIDER_MAX_ATTEMPTS", "1"),
        ("PROVIDER_TIMEOUT_SECONDS", "1"),
    ];
    env.extend_from_slice(extra);
    let app = TestApp::with_env(&env).await;
    // The models file is read at start-up; the directory can go.
    drop(dir);
    let user = app.register("fallback@example.com").await;
    (app, user)
}

fn assert_answered_by_the_backup(message: &Value, usage: &Value) {
    assert_eq!(message["content"], "Backup answer.", "{message}");
    assert_eq!(message["model"], "backup/model");
    assert_eq!(message["fallback_from"], "openai/gpt-4.1");
    assert_eq!(message["status"], "complete");
    let cost = usage["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (10.0 * 1.0 + 3.0 * 2.0) / 1e6).abs() < 1e-12,
        "{usage}"
    );
}

#[tokio::test]
async fn each_failure_before_the_first_token_falls_back_on_post_chat() {
    let cases = [
        (Failure::Throttled, false),
        (Failure::Throttled, true),
        (Failure::ServerError, false),
        (Failure::ServerError, true),
        (Failure::Timeout, false),
        (Failure::Timeout, true),
        (Failure::Refused, false),
        (Failure::Refused, true),
        (Failure::EmptyStream, true),
    ];
    for (failure, streamed) in cases {
        let backup = backup().await;
        let (primary, url) = failing(failure).await;
        let (app, user) = app(&url, &backup, &[]).await;
        let (message, usage, conversation) = if streamed {
            let events = app
                .chat_stream(&user.access, json!({"message": "hi"}), None)
                .await;
            let done = events.last().unwrap();
            assert_eq!(done.event, "done", "{failure:?}: {events:?}");
            (
                done.data["assistant_message"].clone(),
                done.data["usage"].clone(),
                events[0].data["conversation_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        } else {
            let res = app.chat(&user.access, json!({"message": "hi"}), None).await;
            assert_eq!(res.status, StatusCode::OK, "{failure:?}: {}", res.text());
            let turn = res.json();
            (
                turn["assistant_message"].clone(),
                turn["usage"].clone(),
                turn["conversation_id"].as_str().unwrap().to_string(),
            )
        };
        assert_answered_by_the_backup(&message, &usage);
        if let Some(primary) = primary {
            assert!(
                !primary.received_requests().await.unwrap().is_empty(),
                "{failure:?}: the primary was tried first"
            );
        }
        let stored = app.messages(&user.access, &conversation).await;
        assert_eq!(stored[1]["fallback_from"], "openai/gpt-4.1", "{failure:?}");
        assert_eq!(stored[1]["model"], "backup/model");
        // The conversation keeps the model it asked for.
        let conv = app
            .get(
                &format!("/api/v1/conversations/{conversation}"),
                Some(&user.access),
            )
            .await
            .json();
        assert_eq!(conv["model"], "openai/gpt-4.1");
    }
}

/// A refusal of the request (4xx) is not the provider failing: no fallback.
#[tokio::test]
async fn a_rejected_request_does_not_fall_back() {
    let backup = backup().await;
    let primary = MockServer::start().await;
    fakes::reply_always(
        &primary,
        ResponseTemplate::new(400).set_body_json(fakes::openai_error(
            "Invalid request",
            "invalid_request_error",
        )),
    )
    .await;
    let (app, user) = app(&format!("{}/v1", primary.uri()), &backup, &[]).await;
    let p = app
        .chat(&user.access, json!({"message": "hi"}), None)
        .await
        .problem(StatusCode::BAD_GATEWAY);
    assert_eq!(p["code"], "provider_rejected");
    assert!(backup.received_requests().await.unwrap().is_empty());
}

/// Once a token has reached the client the answer is the primary's: a cut after it is stored with
/// the text so far, and the backup is never called.
#[tokio::test]
async fn after_the_first_token_there_is_no_fallback() {
    let backup = backup().await;
    let primary = MockServer::start().await;
    fakes::reply_always(
        &primary,
        ResponseTemplate::new(200)
            .set_body_raw(fakes::openai_chunk("Partial"), "text/event-stream"),
    )
    .await;
    let (app, user) = app(&format!("{}/v1", primary.uri()), &backup, &[]).await;
    let events = app
        .chat_stream(&user.access, json!({"message": "hi"}), None)
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["meta", "delta", "error"], "{events:?}");
    assert!(backup.received_requests().await.unwrap().is_empty());
    let conversation = events[0].data["conversation_id"].as_str().unwrap();
    let stored = app.messages(&user.access, conversation).await;
    assert_eq!(stored[1]["content"], "Partial");
    assert_eq!(stored[1]["model"], "openai/gpt-4.1");
    assert!(stored[1].get("fallback_from").is_none(), "{}", stored[1]);
}

#[tokio::test]
async fn each_failure_falls_back_on_the_websocket_and_the_openai_endpoint() {
    for failure in [
        Failure::Throttled,
        Failure::ServerError,
        Failure::Timeout,
        Failure::Refused,
        Failure::EmptyStream,
    ] {
        falls_back_on_the_websocket_and_the_openai_endpoint(failure).await;
    }
}

/// A turn through the WebSocket (streamed) and the OpenAI-compatible endpoint (whole, unless the
/// failure only exists in streams, and streamed) while the primary fails as `failure` says.
async fn falls_back_on_the_websocket_and_the_openai_endpoint(failure: Failure) {
    let backup = backup().await;
    let (_primary, url) = failing(failure).await;
    let fake = ManagementApi::start().await;
    let (app, user) = app(
        &url,
        &backup,
        &[("WEBSOCKET_MANAGEMENT_ENDPOINT", fake.endpoint.as_str())],
    )
    .await;

    // WebSocket: a chat frame through the handler; frames through the Management API fake.
    let codechat::function::Transport::WebSocket(handler) = codechat::api::ws::FUNCTION.transport
    else {
        panic!("ws is a WebSocket function")
    };
    let event = |file: &str| -> Value {
        serde_json::from_str(&repo_file(&format!("events/{file}"))).unwrap()
    };
    let mut connect = event("ws-connect.json");
    connect["queryStringParameters"]["token"] = json!(user.access);
    connect["multiValueQueryStringParameters"]["token"] = json!([user.access]);
    let connection = connect["requestContext"]["connectionId"].clone();
    let res = handler(app.state.clone(), connect).await.unwrap();
    assert_eq!(res["statusCode"], 200, "{res}");
    let mut frame = event("ws-chat.json");
    frame["requestContext"]["connectionId"] = connection.clone();
    frame["body"] = json!(json!({"action": "chat", "message": "hi"}).to_string());
    handler(app.state.clone(), frame).await.unwrap();
    let frames = fake.frames(connection.as_str().unwrap());
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "done", "{failure:?}: {frames:?}");
    assert_answered_by_the_backup(&done["assistant_message"], &done["usage"]);

    // The OpenAI-compatible endpoint, whole and streamed: `model` names the one that answered.
    let body = |stream: bool| {
        json!({"model": "openai/gpt-4.1", "stream": stream,
               "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
               "messages": [{"role": "user", "content": "hi"}]})
    };
    let whole = app
        .post(
            "/api/v1/openai/v1/chat/completions",
            body(false),
            Some(&user.access),
        )
        .await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text());
    let whole = whole.json();
    assert_eq!(whole["model"], "backup/model");
    assert_eq!(whole["choices"][0]["message"]["content"], "Backup answer.");
    let streamed = app
        .post(
            "/api/v1/openai/v1/chat/completions",
            body(true),
            Some(&user.access),
        )
        .await;
    assert_eq!(
        streamed.status,
        StatusCode::OK,
        "{failure:?}: {}",
        streamed.text()
    );
    let text = streamed.text();
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Backup answer.", "{failure:?}");
    assert_eq!(chunks.last().unwrap()["model"], "backup/model");
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 10);
}

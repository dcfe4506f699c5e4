//! The coding agent: a turn in a conversation on a project, with tools, through `POST /chat`.
//! Offline with `local/echo`'s tool protocol, and against the OpenAI and Bedrock fakes' tool calls.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use codechat_api_tests::{fakes, TestApp};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

async fn project_with_main(app: &TestApp, token: &str) -> String {
    let id = app
        .post("/api/v1/projects", json!({"name": "Agent"}), Some(token))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .send(
            Request::builder()
                .method(Method::PUT)
                .uri(format!("/api/v1/projects/{id}/files/src/main.rs"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from("fn main() { println!(\"hi\"); }\n"))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    id
}

async fn file(app: &TestApp, token: &str, project: &str, path: &str) -> (StatusCode, String) {
    let res = app
        .get(
            &format!("/api/v1/projects/{project}/files/{path}"),
            Some(token),
        )
        .await;
    (res.status, res.text())
}

#[tokio::test]
async fn the_offline_agent_reads_writes_and_refuses_a_traversal() {
    let app = TestApp::spawn().await;
    let token = app.register("agent@example.com").await.access;
    let project = project_with_main(&app, &token).await;
    let message = "/read src/main.rs\n/write src/lib.rs\npub fn add(a: u8, b: u8) -> u8 { a + b }\n/end\n/write ../escape.rs\nbad\n";
    let res = app
        .chat(
            &token,
            json!({"message": message, "project_id": project}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    let answer = turn["assistant_message"]["content"].as_str().unwrap();
    assert!(answer.contains("- ok: fn main()"), "{answer}");
    assert!(answer.contains("- ok: wrote src/lib.rs"), "{answer}");
    assert!(
        answer.contains("- error: the path \"../escape.rs\" must not contain . or .. segments"),
        "{answer}"
    );
    let changes = &turn["assistant_message"]["changes"];
    assert_eq!(changes.as_array().unwrap().len(), 1, "{changes}");
    assert_eq!(
        (changes[0]["path"].as_str(), changes[0]["action"].as_str()),
        (Some("src/lib.rs"), Some("created"))
    );
    assert_eq!(
        file(&app, &token, &project, "src/lib.rs").await.1,
        "pub fn add(a: u8, b: u8) -> u8 { a + b }\n"
    );
    assert_eq!(
        file(&app, &token, &project, "escape.rs").await.0,
        StatusCode::NOT_FOUND
    );

    // The conversation keeps its project; the stored answer lists the change.
    let conversation = turn["conversation_id"].as_str().unwrap();
    let c = app
        .get(
            &format!("/api/v1/conversations/{conversation}"),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(c["project_id"], project.as_str());
    let messages = app.messages(&token, conversation).await;
    assert_eq!(messages[1]["changes"], *changes);

    // Streamed: the steps arrive as events between the deltas, and done lists the change.
    let events = app
        .chat_stream(
            &token,
            json!({"conversation_id": conversation, "message": "/delete src/lib.rs"}),
            None,
        )
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "meta",
            "tool_call",
            "tool_result",
            "file_changed",
            "delta",
            "done"
        ]
    );
    assert_eq!(events[1].data["name"], "delete_file");
    assert_eq!(events[3].data["action"], "deleted");
    assert_eq!(
        events[5].data["assistant_message"]["changes"][0]["path"],
        "src/lib.rs"
    );
    assert_eq!(
        file(&app, &token, &project, "src/lib.rs").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_project_must_be_the_users_own() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner-agent@example.com").await.access;
    let other = app.register("other-agent@example.com").await.access;
    let project = project_with_main(&app, &owner).await;
    for body in [
        json!({"message": "hi", "project_id": project}),
        json!({"message": "hi", "project_id": "01900000-0000-7000-8000-000000000000"}),
        json!({"message": "hi", "project_id": "nope"}),
    ] {
        let res = app.chat(&other, body.clone(), None).await;
        assert_eq!(res.invalid_fields(), vec!["project_id"], "{body}");
    }
    let res = app
        .post(
            "/api/v1/conversations",
            json!({"project_id": project}),
            Some(&other),
        )
        .await;
    assert_eq!(res.invalid_fields(), vec!["project_id"]);
    let res = app
        .post(
            "/api/v1/conversations",
            json!({"project_id": project}),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}

fn openai_tool_call(id: &str, name: &str, args: Value) -> Value {
    json!({
        "id": "chatcmpl-tools", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]
        }}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    })
}

#[tokio::test]
async fn openai_tool_calls_loop_until_the_answer() {
    let server = MockServer::start().await;
    fakes::reply_in_turn(
        &server,
        fakes::OPENAI_CHAT,
        [
            openai_tool_call("call_1", "read_file", json!({"path": "src/main.rs"})),
            openai_tool_call(
                "call_2",
                "write_file",
                json!({"path": "src/main.rs", "content": "fn main() {}\n"}),
            ),
            fakes::openai_completion("Simplified main.", 120, 5, 0),
        ],
    )
    .await;
    let base = format!("{}/v1", server.uri());
    let app = TestApp::with_openai_fake(&base, &[]).await;
    let token = app.register("openai-agent@example.com").await.access;
    let project = project_with_main(&app, &token).await;
    let res = app
        .chat(
            &token,
            json!({"message": "Simplify main", "project_id": project}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    assert_eq!(turn["assistant_message"]["content"], "Simplified main.");
    assert_eq!(turn["assistant_message"]["changes"][0]["action"], "updated");
    assert_eq!(
        file(&app, &token, &project, "src/main.rs").await.1,
        "fn main() {}\n"
    );
    // Every step's usage is billed on the answer.
    assert_eq!(turn["usage"]["input_tokens"], 320);

    let sent = codechat_api_tests::fakes::sent_bodies(&server).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["tools"].as_array().unwrap().len(), 5);
    assert!(
        sent[0]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("src/main.rs ("),
        "the system prompt lists the files"
    );
    let last = sent[2]["messages"].as_array().unwrap();
    let n = last.len();
    assert_eq!(
        last[n - 2]["tool_calls"][0]["function"]["name"],
        "write_file"
    );
    assert_eq!(last[n - 1]["role"], "tool");
    assert_eq!(last[n - 1]["tool_call_id"], "call_2");
    assert_eq!(last[n - 1]["content"], "wrote src/main.rs (13 bytes)");
    let first_output = &sent[1]["messages"].as_array().unwrap().last().unwrap()["content"];
    assert_eq!(first_output, "fn main() { println!(\"hi\"); }\n");
}

#[tokio::test]
async fn the_step_limit_ends_a_turn_that_only_calls_tools() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_tool_call(
            "again",
            "list_files",
            json!({}),
        )))
        .mount(&server)
        .await;
    let base = format!("{}/v1", server.uri());
    let app = TestApp::with_openai_fake(&base, &[("MAX_AGENT_STEPS", "3")]).await;
    let token = app.register("loop@example.com").await.access;
    let project = project_with_main(&app, &token).await;
    let res = app
        .chat(
            &token,
            json!({"message": "loop", "project_id": project}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json()["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Stopped after 3 steps"));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn bedrock_tool_use_and_results_go_as_converse_blocks() {
    let server = MockServer::start().await;
    let tool_use = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me look."},
            {"toolUse": {"toolUseId": "tu-1", "name": "search_files", "input": {"query": "PRINTLN"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 80, "outputTokens": 9, "totalTokens": 89},
        "metrics": {"latencyMs": 10}
    });
    fakes::reply_in_turn(
        &server,
        fakes::BEDROCK_CONVERSE,
        [tool_use, fakes::bedrock_converse("It prints hi.", 90, 4)],
    )
    .await;
    let app = TestApp::with_bedrock_fake(&server.uri(), &[]).await;
    let token = app.register("bedrock-agent@example.com").await.access;
    let project = project_with_main(&app, &token).await;
    let res = app
        .chat(
            &token,
            json!({"message": "What does it print?", "project_id": project}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["assistant_message"]["content"], "It prints hi.");

    let sent = codechat_api_tests::fakes::sent_bodies(&server).await;
    assert_eq!(
        sent[0]["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "list_files"
    );
    let messages = sent[1]["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(
        messages[n - 2]["content"][0],
        json!({"text": "Let me look."})
    );
    assert_eq!(
        messages[n - 2]["content"][1],
        json!({"toolUse": {"toolUseId": "tu-1", "name": "search_files", "input": {"query": "PRINTLN"}}})
    );
    assert_eq!(
        messages[n - 1]["content"][0],
        json!({"toolResult": {"toolUseId": "tu-1", "content": [{"text": "1 matches\nsrc/main.rs:1: fn main() { println!(\"hi\"); }"}], "status": "success"}})
    );
}

fn bedrock_tool_uses(uses: &[(&str, &str, Value)]) -> Value {
    let content: Vec<Value> = uses
        .iter()
        .map(
            |(id, name, input)| json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}),
        )
        .collect();
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 50, "outputTokens": 5, "totalTokens": 55},
        "metrics": {"latencyMs": 10}
    })
}

/// Read, then write, over Bedrock's wire format; a traversal in the same step comes back to the
/// model as an error result and writes nothing.
#[tokio::test]
async fn bedrock_reads_then_writes_and_a_traversal_is_a_tool_error() {
    let server = MockServer::start().await;
    fakes::reply_in_turn(
        &server,
        fakes::BEDROCK_CONVERSE,
        [
            bedrock_tool_uses(&[
                ("r1", "read_file", json!({"path": "src/main.rs"})),
                (
                    "w0",
                    "write_file",
                    json!({"path": "../outside.rs", "content": "x"}),
                ),
            ]),
            bedrock_tool_uses(&[(
                "w1",
                "write_file",
                json!({"path": "src/main.rs", "content": "fn main() {}\n"}),
            )]),
            fakes::bedrock_converse("Done.", 60, 2),
        ],
    )
    .await;
    let app = TestApp::with_bedrock_fake(&server.uri(), &[]).await;
    let token = app.register("bedrock-writes@example.com").await.access;
    let project = project_with_main(&app, &token).await;
    let res = app
        .chat(
            &token,
            json!({"message": "Simplify", "project_id": project}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    let changes = turn["assistant_message"]["changes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["path"], "src/main.rs");
    assert_eq!(
        file(&app, &token, &project, "src/main.rs").await.1,
        "fn main() {}\n"
    );
    assert_eq!(
        file(&app, &token, &project, "outside.rs").await.0,
        StatusCode::NOT_FOUND
    );

    let sent = codechat_api_tests::fakes::sent_bodies(&server).await;
    let results = &sent[1]["messages"].as_array().unwrap().last().unwrap()["content"];
    assert_eq!(results[0]["toolResult"]["status"], "success");
    assert_eq!(
        results[0]["toolResult"]["content"][0]["text"],
        "fn main() { println!(\"hi\"); }\n"
    );
    assert_eq!(results[1]["toolResult"]["toolUseId"], "w0");
    assert_eq!(results[1]["toolResult"]["status"], "error");
    assert!(results[1]["toolResult"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("must not contain . or .. segments"));
    assert_eq!(turn["usage"]["input_tokens"], 160, "three calls billed");
}

/// The provider fails after a step that wrote a file: the turn is a 502, and the failed answer
/// still records the change that was made (the file stays written).
#[tokio::test]
async fn a_provider_failure_mid_loop_keeps_the_record_of_what_changed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_tool_call(
            "call_w",
            "write_file",
            json!({"path": "notes.md", "content": "# kept\n"}),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(fakes::openai_error("bad request", "invalid_request_error")),
        )
        .mount(&server)
        .await;
    let base = format!("{}/v1", server.uri());
    let app = TestApp::with_openai_fake(&base, &[]).await;
    let token = app.register("agent-fails@example.com").await.access;
    let project = project_with_main(&app, &token).await;
    let res = app
        .chat(
            &token,
            json!({"message": "Write notes", "project_id": project}),
            None,
        )
        .await;
    let problem = res.problem(StatusCode::BAD_GATEWAY);
    assert_eq!(problem["code"], "provider_rejected");
    assert_eq!(file(&app, &token, &project, "notes.md").await.1, "# kept\n");
    let conversations = app.get("/api/v1/conversations", Some(&token)).await.json();
    let conversation = conversations["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let messages = app.messages(&token, &conversation).await;
    assert_eq!(messages[1]["status"], "failed");
    assert_eq!(messages[1]["changes"][0]["path"], "notes.md");
}

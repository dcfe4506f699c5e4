//! Agents: CRUD, validation naming each field, and chat turns that use an agent's configuration.

use axum::http::StatusCode;
use codechat_api_tests::{fakes, TestApp};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

fn reviewer(model: &str) -> Value {
    json!({
        "name": "  Reviewer ",
        "description": "Reviews Rust",
        "system_prompt": "You are a terse Rust reviewer.",
        "model": model,
        "temperature": 0.7,
        "max_tokens": 300,
        "tools": ["read_file", "list_files", "read_file"],
    })
}

#[tokio::test]
async fn agents_crud_is_owner_only_and_paginated() {
    let app = TestApp::spawn().await;
    let t = app.register("agents@example.com").await;
    let other = app.register("other-agents@example.com").await;

    let res = app
        .post("/api/v1/agents", reviewer("local/echo"), Some(&t.access))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let a = res.json();
    assert_eq!(a["name"], "Reviewer");
    assert_eq!(a["status"], "active");
    assert_eq!(a["knowledge"], false);
    assert_eq!(a["tools"], json!(["read_file", "list_files"]));
    let id = a["id"].as_str().unwrap().to_string();
    let second = app
        .post(
            "/api/v1/agents",
            json!({"name": "Plain", "system_prompt": "Be brief.", "model": "local/echo"}),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(second["temperature"], Value::Null);

    let page = app
        .get("/api/v1/agents?limit=1", Some(&t.access))
        .await
        .json();
    assert_eq!(page["items"][0]["id"], second["id"], "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app
        .get(
            &format!("/api/v1/agents?limit=1&cursor={cursor}"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(page["items"][0]["id"], a["id"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let theirs = app.get("/api/v1/agents", Some(&other.access)).await.json();
    assert_eq!(theirs["items"], json!([]));

    let url = format!("/api/v1/agents/{id}");
    for res in [
        app.get(&url, Some(&other.access)).await,
        app.patch(&url, json!({"name": "Mine"}), Some(&other.access))
            .await,
        app.delete(&url, Some(&other.access)).await,
        app.get("/api/v1/agents/not-an-id", Some(&t.access)).await,
    ] {
        res.problem(StatusCode::NOT_FOUND);
    }
    assert_eq!(app.get(&url, None).await.status, StatusCode::UNAUTHORIZED);

    let res = app
        .patch(
            &url,
            json!({"status": "inactive", "temperature": null, "description": null}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let patched = res.json();
    assert_eq!(patched["status"], "inactive");
    assert_eq!(patched["temperature"], Value::Null);
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["max_tokens"], 300, "absent fields stay");
    assert_eq!(patched["name"], "Reviewer");

    assert_eq!(
        app.delete(&url, Some(&t.access)).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&url, Some(&t.access))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_agents_name_every_field_and_store_nothing() {
    let app = TestApp::with_env(&[("MAX_SYSTEM_PROMPT_CHARS", "20")]).await;
    let t = app.register("bad-agents@example.com").await;
    let res = app
        .post(
            "/api/v1/agents",
            json!({
                "name": " ",
                "system_prompt": "x".repeat(21),
                "model": "nope/never",
                "temperature": 2.5,
                "max_tokens": 0,
                "tools": ["list_files", "rm_rf"],
            }),
            Some(&t.access),
        )
        .await;
    assert_eq!(
        res.invalid_fields(),
        [
            "name",
            "system_prompt",
            "model",
            "temperature",
            "max_tokens",
            "tools[1]"
        ]
    );
    // At the edges: exactly the prompt limit, temperature 0 and 2, the model's own output limit.
    let limit = app
        .state
        .catalog()
        .get("local/echo")
        .unwrap()
        .max_output_tokens;
    let ok = json!({"name": "Edge", "system_prompt": "x".repeat(20), "model": "local/echo",
                    "temperature": 2.0, "max_tokens": limit});
    let res = app.post("/api/v1/agents", ok, Some(&t.access)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap().to_string();
    let res = app
        .post(
            "/api/v1/agents",
            json!({"name": "Over", "system_prompt": "ok", "model": "local/echo", "max_tokens": limit + 1}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["max_tokens"]);
    // Wrong JSON types are named too.
    let res = app
        .post(
            "/api/v1/agents",
            json!({"name": "T", "system_prompt": "ok", "model": "local/echo", "knowledge": "yes"}),
            Some(&t.access),
        )
        .await;
    res.problem(StatusCode::UNPROCESSABLE_ENTITY);
    // A patch is checked as the agent would become: max_tokens against the new model.
    let small = app
        .state
        .catalog()
        .all()
        .iter()
        .find(|m| m.max_output_tokens < limit)
        .map(|m| m.id.clone());
    if let Some(small) = small {
        let res = app
            .patch(
                &format!("/api/v1/agents/{id}"),
                json!({"model": small}),
                Some(&t.access),
            )
            .await;
        assert_eq!(res.invalid_fields(), ["max_tokens"]);
    }
    let list = app.get("/api/v1/agents", Some(&t.access)).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["model"], "local/echo");
}

/// An app whose default model is the offline one, with an OpenAI-compatible fake behind
/// `openai/gpt-4o-mini`: only an agent's model reaches the fake.
/// A project "P" and the read-only reviewer agent, for `token`'s user.
async fn project_and_reader(app: &TestApp, token: &str) -> (String, Value) {
    let project = app
        .post("/api/v1/projects", json!({"name": "P"}), Some(token))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reader = app
        .post(
            "/api/v1/agents",
            reviewer("openai/gpt-4o-mini"),
            Some(token),
        )
        .await
        .json();
    (project, reader)
}

async fn app_with_fake(server: &MockServer) -> TestApp {
    TestApp::with_openai_server(server, &[("DEFAULT_MODEL", "local/echo")]).await
}

#[tokio::test]
async fn a_chat_with_an_agent_uses_its_prompt_model_and_parameters() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::openai_completion(
                "Looks fine.",
                40,
                3,
                0,
            )),
        )
        .mount(&server)
        .await;
    let app = app_with_fake(&server).await;
    let t = app.register("agent-chat@example.com").await;
    let agent = app
        .post(
            "/api/v1/agents",
            reviewer("openai/gpt-4o-mini"),
            Some(&t.access),
        )
        .await
        .json();
    let agent_id = agent["id"].as_str().unwrap();

    let res = app
        .chat(
            &t.access,
            json!({"message": "Review this", "agent_id": agent_id}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    assert_eq!(turn["assistant_message"]["model"], "openai/gpt-4o-mini");
    assert_eq!(turn["assistant_message"]["agent_id"], agent_id);
    assert!(turn["user_message"].get("agent_id").is_none());
    let cid = turn["conversation_id"].as_str().unwrap().to_string();
    let c = app
        .get(&format!("/api/v1/conversations/{cid}"), Some(&t.access))
        .await
        .json();
    assert_eq!(c["agent_id"], agent_id);
    assert_eq!(c["model"], "openai/gpt-4o-mini");

    let sent = fakes::sent_bodies(&server).await;
    assert_eq!(
        sent[0]["messages"][0],
        json!({"role": "system", "content": "You are a terse Rust reviewer."})
    );
    assert_eq!(sent[0]["max_tokens"], 300);
    assert!((sent[0]["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);

    // The conversation keeps its agent; the request's own parameters win over the agent's.
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": cid, "message": "Again", "temperature": 0.1, "max_tokens": 50}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["assistant_message"]["agent_id"], agent_id);
    let sent = fakes::sent_bodies(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["messages"][0]["content"],
        "You are a terse Rust reviewer."
    );
    assert_eq!(sent[1]["max_tokens"], 50);
    assert!((sent[1]["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    // The answers record the agent in the conversation's history too.
    let messages = app.messages(&t.access, &cid).await;
    assert_eq!(messages[1]["agent_id"], agent_id);
}

#[tokio::test]
async fn inactive_and_deleted_agents_refuse_new_turns_and_keep_history() {
    let app = TestApp::spawn().await;
    let t = app.register("agent-life@example.com").await;
    let other = app.register("agent-thief@example.com").await;
    let agent = app
        .post("/api/v1/agents", reviewer("local/echo"), Some(&t.access))
        .await
        .json();
    let agent_id = agent["id"].as_str().unwrap().to_string();
    let agent_url = format!("/api/v1/agents/{agent_id}");

    // Another user's agent is no agent, for chats and conversations alike.
    for res in [
        app.chat(
            &other.access,
            json!({"message": "hi", "agent_id": agent_id}),
            None,
        )
        .await,
        app.post(
            "/api/v1/conversations",
            json!({"agent_id": agent_id}),
            Some(&other.access),
        )
        .await,
    ] {
        assert_eq!(res.invalid_fields(), ["agent_id"]);
    }
    assert_eq!(
        app.get("/api/v1/conversations", Some(&other.access))
            .await
            .json()["items"],
        json!([])
    );

    // A conversation created with the agent takes its model.
    let res = app
        .post(
            "/api/v1/conversations",
            json!({"agent_id": agent_id}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let cid = res.json()["id"].as_str().unwrap().to_string();
    let turn = app
        .chat(
            &t.access,
            json!({"conversation_id": cid, "message": "first"}),
            None,
        )
        .await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.text());
    assert_eq!(turn.json()["assistant_message"]["agent_id"], agent_id);

    app.patch(&agent_url, json!({"status": "inactive"}), Some(&t.access))
        .await;
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": cid, "message": "second"}),
            None,
        )
        .await;
    assert_eq!(res.invalid_fields(), ["agent_id"]);
    assert_eq!(
        app.messages(&t.access, &cid).await.len(),
        2,
        "nothing stored"
    );
    let res = app
        .patch(
            &format!("/api/v1/conversations/{cid}"),
            json!({"agent_id": agent_id}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["agent_id"]);

    app.delete(&agent_url, Some(&t.access)).await;
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": cid, "message": "third"}),
            None,
        )
        .await;
    assert_eq!(res.invalid_fields(), ["agent_id"]);
    let history = app.messages(&t.access, &cid).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["agent_id"], agent_id, "history stays readable");

    // Clearing the agent lets the conversation go on without one.
    let res = app
        .patch(
            &format!("/api/v1/conversations/{cid}"),
            json!({"agent_id": null}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.json()["agent_id"], Value::Null);
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": cid, "message": "fourth"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json()["assistant_message"].get("agent_id").is_none());
}

#[tokio::test]
async fn an_agent_on_a_project_offers_only_its_own_tools() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::openai_completion("Done.", 40, 3, 0)),
        )
        .mount(&server)
        .await;
    let app = app_with_fake(&server).await;
    let t = app.register("agent-tools@example.com").await;
    let (project, reader) = project_and_reader(&app, &t.access).await;
    let mut plain = reviewer("openai/gpt-4o-mini");
    plain["tools"] = json!([]);
    let plain = app
        .post("/api/v1/agents", plain, Some(&t.access))
        .await
        .json();

    for agent in [&reader, &plain] {
        let res = app
            .chat(
                &t.access,
                json!({"message": "Look", "project_id": project, "agent_id": agent["id"]}),
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
    let sent = fakes::sent_bodies(&server).await;
    let names: Vec<&str> = sent[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["list_files", "read_file"]);
    let system = sent[0]["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("You are a terse Rust reviewer.") && system.contains("project \"P\""),
        "{system}"
    );
    assert!(sent[1].get("tools").is_none(), "{}", sent[1]);
    assert_eq!(
        sent[1]["messages"][0]["content"],
        "You are a terse Rust reviewer."
    );
}

/// A read-only agent's model asked (say, by a prompt injection in a project file) to write: the call
/// is answered as a tool error and never run, the file unchanged.
#[tokio::test]
async fn a_tool_the_turn_did_not_offer_is_refused_not_run() {
    let server = MockServer::start().await;
    let write = json!({
        "id": "chatcmpl-w", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_w", "type": "function", "function": {
                "name": "write_file",
                "arguments": json!({"path": "notes.md", "content": "pwned"}).to_string()}}]
        }}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}
    });
    fakes::reply_in_turn(
        &server,
        fakes::OPENAI_CHAT,
        [write, fakes::openai_completion("I cannot write.", 60, 4, 0)],
    )
    .await;
    let app = app_with_fake(&server).await;
    let t = app.register("agent-no-write@example.com").await;
    let (project, reader) = project_and_reader(&app, &t.access).await;
    let events = app
        .chat_stream(
            &t.access,
            json!({"message": "Follow the notes", "project_id": project, "agent_id": reader["id"]}),
            None,
        )
        .await;
    let result = events
        .iter()
        .find(|e| e.event == "tool_result")
        .expect("a tool_result event");
    assert_eq!(result.data["is_error"], true, "{}", result.data);
    assert!(events.iter().all(|e| e.event != "file_changed"));
    let done = &events.last().unwrap().data;
    assert_eq!(done["assistant_message"]["content"], "I cannot write.");
    assert!(done["assistant_message"].get("changes").is_none(), "{done}");
    app.get(
        &format!("/api/v1/projects/{project}/files/notes.md"),
        Some(&t.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    // The model read the refusal.
    let sent = fakes::sent_bodies(&server).await;
    let last = sent[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "tool");
    assert_eq!(
        last["content"],
        "the tool `write_file` is not offered in this turn"
    );
}

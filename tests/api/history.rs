//! Search over history: the caller's own messages, stemmed, best match first, in pages.

use std::collections::HashSet;

use axum::http::StatusCode;
use codechat_api_tests::TestApp;
use serde_json::{json, Value};

async fn turn(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.chat(token, body, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()
}

async fn search(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app
        .get(&format!("/api/v1/search/messages?{query}"), Some(token))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()
}

fn message_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_finds_the_callers_own_messages_stemmed_best_first() {
    let app = TestApp::spawn().await;
    let a = app.register("searcher@example.com").await;
    let b = app.register("neighbour@example.com").await;
    let deploy = turn(
        &app,
        &a.access,
        json!({"message": "We deployed the lambda function on Friday"}),
    )
    .await;
    let c = deploy["conversation_id"].as_str().unwrap().to_string();
    turn(
        &app,
        &a.access,
        json!({"conversation_id": c, "message": "The borrow checker complains"}),
    )
    .await;
    let other = turn(
        &app,
        &a.access,
        json!({"message": "Deploying deploys deployment: deploy notes"}),
    )
    .await;
    turn(
        &app,
        &b.access,
        json!({"message": "deploying the secret lambda plans"}),
    )
    .await;

    let page = search(&app, &a.access, "q=deploying%20lambda").await;
    let items = page["items"].as_array().unwrap();
    // The user message and the echo's answer repeating it; never the neighbour's.
    assert_eq!(items.len(), 2, "{page}");
    for hit in items {
        assert_eq!(hit["conversation_id"], c.as_str());
        assert_eq!(
            hit["conversation_title"],
            "We deployed the lambda function on Friday"
        );
        assert!(
            hit["snippet"].as_str().unwrap().contains("deployed"),
            "{hit}"
        );
        for field in ["message_id", "role", "created_at"] {
            assert!(hit[field].is_string(), "{hit}");
        }
    }
    let page = search(&app, &b.access, "q=deploying%20lambda").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["items"][0]["snippet"]
        .as_str()
        .unwrap()
        .contains("secret"));

    // Best match first: the message saying "deploy" four times ranks above the one saying it once.
    let page = search(&app, &a.access, "q=deploy").await;
    let first = &page["items"][0];
    assert_eq!(first["conversation_id"], other["conversation_id"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 4);

    // Words FTS5 would read as syntax are words; a deleted conversation's messages are gone.
    assert!(message_ids(&search(&app, &a.access, "q=%22borrow%22%20OR%20NEAR(x").await).is_empty());
    assert_eq!(
        message_ids(&search(&app, &a.access, "q=borrow%20checker").await).len(),
        2
    );
    app.delete(&format!("/api/v1/conversations/{c}"), Some(&a.access))
        .await;
    assert!(message_ids(&search(&app, &a.access, "q=borrow").await).is_empty());
    assert_eq!(
        message_ids(&search(&app, &a.access, "q=deploy").await).len(),
        2
    );
}

#[tokio::test]
async fn search_pages_and_refusals() {
    let app = TestApp::spawn().await;
    let t = app.register("pages@example.com").await;
    let first = turn(&app, &t.access, json!({"message": "alpha one"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    for i in 0..3 {
        turn(
            &app,
            &t.access,
            json!({"conversation_id": c, "message": format!("alpha {i} alpha")}),
        )
        .await;
    }
    // A message on a branch that is not shown is found too.
    turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "regenerate": first["assistant_message"]["id"]}),
    )
    .await;
    let all = message_ids(&search(&app, &t.access, "q=alpha&limit=100").await);
    assert_eq!(all.len(), 9);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("q=alpha&limit=2&cursor={c}"),
            None => "q=alpha&limit=2".to_string(),
        };
        let page = search(&app, &t.access, &query).await;
        seen.extend(message_ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen, all,
        "pages walk the same order, nothing repeated or missed"
    );
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 9);

    for (query, field) in [
        ("", "q"),
        ("q=", "q"),
        ("q=%20%20", "q"),
        ("q=%21%3F", "q"),
        (&format!("q={}", "a".repeat(201)), "q"),
        ("q=alpha&limit=0", "limit"),
        ("q=alpha&cursor=zzz", "cursor"),
    ] {
        let res = app
            .get(&format!("/api/v1/search/messages?{query}"), Some(&t.access))
            .await;
        assert_eq!(res.invalid_fields(), [field], "{query}: {}", res.text());
    }
    assert_eq!(
        message_ids(&search(&app, &t.access, &format!("q={}", "a".repeat(200))).await).len(),
        0
    );
    app.get("/api/v1/search/messages?q=alpha", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_agent_searches_history_as_a_tool() {
    let app = TestApp::spawn().await;
    let t = app.register("agent-history@example.com").await;
    turn(
        &app,
        &t.access,
        json!({"message": "Our staging database is called heron"}),
    )
    .await;
    let agent = app
        .post(
            "/api/v1/agents",
            json!({"name": "Rememberer", "system_prompt": "Look things up.", "model": "local/echo",
                   "tools": ["search_history"]}),
            Some(&t.access),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text());
    let answer = turn(
        &app,
        &t.access,
        json!({"agent_id": agent.json()["id"], "message": "/tool search_history {\"query\": \"staging database\"}"}),
    )
    .await;
    let text = answer["assistant_message"]["content"].as_str().unwrap();
    assert!(
        text.contains("ok: - user message in \"Our staging database is called heron\""),
        "{text}"
    );
    // Without the agent naming it, the tool is not offered: the command is only text.
    let plain = turn(
        &app,
        &t.access,
        json!({"message": "/tool search_history {\"query\": \"heron\"}"}),
    )
    .await;
    assert!(!plain["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .contains("ran the tools"));
}

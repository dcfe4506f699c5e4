use std::collections::HashSet;

use axum::http::StatusCode;
use codechat_api_tests::TestApp;
use serde_json::{json, Value};

async fn new_conversation(app: &TestApp, token: &str, title: &str) -> Value {
    let res = app
        .post(
            "/api/v1/conversations",
            json!({"title": title}),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()
}

#[tokio::test]
async fn conversation_lifecycle() {
    let app = TestApp::spawn().await;
    let t = app.register("conv@example.com").await;
    let c = new_conversation(&app, &t.access, "  Parsing JSON  ").await;
    assert_eq!(c["title"], "Parsing JSON");
    assert_eq!(c["model"], "local/echo");
    assert_eq!(c["message_count"], 0);
    assert!(c["last_message_at"].is_null() && c["summary"].is_null());
    let id = c["id"].as_str().unwrap();
    let path = format!("/api/v1/conversations/{id}");

    assert_eq!(app.get(&path, Some(&t.access)).await.json(), c);
    let res = app
        .patch(&path, json!({"title": "Renamed"}), Some(&t.access))
        .await;
    assert_eq!(res.json()["title"], "Renamed");
    assert_eq!(res.json()["model"], "local/echo");

    let res = app
        .patch(&path, json!({"model": "nope/model"}), Some(&t.access))
        .await;
    assert_eq!(res.invalid_fields(), ["model"]);
    // OpenAI is not configured here: its models exist but are not available.
    let res = app
        .patch(
            &path,
            json!({"model": "openai/gpt-4o-mini", "title": ""}),
            Some(&t.access),
        )
        .await;
    let mut fields = res.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["model", "title"]);
    let res = app
        .post(
            "/api/v1/conversations",
            json!({"title": "x".repeat(201)}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["title"]);
    let res = app
        .post(
            "/api/v1/conversations",
            json!({"agent_id": "a"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["agent_id"]);

    assert_eq!(
        app.delete(&path, Some(&t.access)).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path, Some(&t.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete(&path, Some(&t.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get("/api/v1/conversations/not-a-uuid", Some(&t.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get("/api/v1/conversations", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_users_conversation_is_not_found_everywhere() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let other = app.register("other@example.com").await;
    let res = app
        .chat(&owner.access, json!({"message": "private things"}), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    let id = turn["conversation_id"].as_str().unwrap();
    let message_id = turn["assistant_message"]["id"].as_str().unwrap();

    for path in [
        format!("/api/v1/conversations/{id}"),
        format!("/api/v1/conversations/{id}/messages"),
        format!("/api/v1/conversations/{id}/usage"),
        format!("/api/v1/conversations/{id}/export"),
        format!("/api/v1/messages/{message_id}/usage"),
    ] {
        let p = app
            .get(&path, Some(&other.access))
            .await
            .problem(StatusCode::NOT_FOUND);
        // Exactly the answer for a conversation that does not exist.
        let missing = path
            .replace(id, "01900000-0000-7000-8000-000000000000")
            .replace(message_id, "01900000-0000-7000-8000-000000000000");
        assert_eq!(
            p,
            app.get(&missing, Some(&other.access))
                .await
                .problem(StatusCode::NOT_FOUND),
            "{path}"
        );
    }
    app.patch(
        &format!("/api/v1/conversations/{id}"),
        json!({"title": "mine now"}),
        Some(&other.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    app.delete(&format!("/api/v1/conversations/{id}"), Some(&other.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.chat(
        &other.access,
        json!({"conversation_id": id, "message": "hi"}),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/conversations", Some(&other.access))
            .await
            .json()["items"],
        json!([])
    );
    // The owner's conversation is untouched.
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&owner.access))
        .await
        .json();
    assert_eq!(c["message_count"], 2);
}

#[tokio::test]
async fn conversation_pages_walk_without_gaps_or_duplicates() {
    let app = TestApp::spawn().await;
    let t = app.register("pages@example.com").await;
    let mut created = Vec::new();
    for i in 0..23 {
        let title = if i % 5 == 0 {
            format!("Rust question {i}")
        } else {
            format!("Other {i}")
        };
        created.push(
            new_conversation(&app, &t.access, &title).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Activity moves a conversation to the front.
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": created[3], "message": "bump"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=7&cursor={c}"),
            None => "/api/v1/conversations?limit=7".to_string(),
        };
        let page = app.get(&url, Some(&t.access)).await.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
    assert_eq!(seen[0], created[3]);
    let mut expected: Vec<String> = created
        .iter()
        .rev()
        .filter(|id| **id != created[3])
        .cloned()
        .collect();
    expected.insert(0, created[3].clone());
    assert_eq!(seen, expected);

    let found = app
        .get("/api/v1/conversations?q=rust%20QUESTION", Some(&t.access))
        .await
        .json();
    assert_eq!(found["items"].as_array().unwrap().len(), 5);
    let found = app
        .get("/api/v1/conversations?q=%25", Some(&t.access))
        .await
        .json();
    assert_eq!(
        found["items"].as_array().unwrap().len(),
        0,
        "% is matched literally"
    );

    let all = app
        .get("/api/v1/conversations?limit=1000", Some(&t.access))
        .await
        .json();
    assert_eq!(all["items"].as_array().unwrap().len(), 23);
    assert!(all["next_cursor"].is_null());
    for bad in [
        "limit=0",
        "limit=-3",
        "limit=ten",
        "cursor=bogus",
        "limit=5&limit=6",
    ] {
        let res = app
            .get(&format!("/api/v1/conversations?{bad}"), Some(&t.access))
            .await;
        res.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn message_pages_are_oldest_first_and_complete() {
    let app = TestApp::spawn().await;
    let t = app.register("msgs@example.com").await;
    let first = app
        .chat(&t.access, json!({"message": "turn 0"}), None)
        .await
        .json();
    let id = first["conversation_id"].as_str().unwrap().to_string();
    for i in 1..6 {
        let res = app
            .chat(
                &t.access,
                json!({"conversation_id": id, "message": format!("turn {i}")}),
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
    }
    let mut contents = Vec::new();
    let mut url = format!("/api/v1/conversations/{id}/messages?limit=5");
    loop {
        let page = app.get(&url, Some(&t.access)).await.json();
        contents.extend(page["items"].as_array().unwrap().iter().map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        }));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/conversations/{id}/messages?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(contents.len(), 12);
    for (i, pair) in contents.chunks(2).enumerate() {
        assert_eq!(pair[0], ("user".to_string(), format!("turn {i}")));
        assert_eq!(pair[1].0, "assistant");
        assert!(pair[1].1.ends_with(&format!("turn {i}")));
    }
    let res = app
        .get(
            &format!("/api/v1/conversations/{id}/messages?cursor=xyz"),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["cursor"]);
}

#[tokio::test]
async fn delete_removes_messages_and_usage() {
    let app = TestApp::spawn().await;
    let t = app.register("del@example.com").await;
    let turn = app
        .chat(&t.access, json!({"message": "to be deleted"}), None)
        .await
        .json();
    let id = turn["conversation_id"].as_str().unwrap();
    let message_id = turn["assistant_message"]["id"].as_str().unwrap();
    let usage_path = format!("/api/v1/messages/{message_id}/usage");
    assert_eq!(
        app.get(&usage_path, Some(&t.access)).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let conn = app.state.store().conn().await.unwrap();
    let conversation = conn
        .conversation(id.parse().unwrap(), app.user_id(&t.access).await)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        app.delete(&format!("/api/v1/conversations/{id}"), Some(&t.access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get(&usage_path, Some(&t.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get(
        &format!("/api/v1/conversations/{id}/messages"),
        Some(&t.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    // No orphans are left in the store either.
    assert!(conn
        .messages_after(&conversation, codechat::store::Which::All, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(conn
        .message_usage(message_id.parse().unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn export_as_json_and_markdown() {
    let app = TestApp::spawn().await;
    let t = app.register("exp@example.com").await;
    let turn = app
        .chat(&t.access, json!({"message": "Explain *borrowing*"}), None)
        .await
        .json();
    let id = turn["conversation_id"].as_str().unwrap();

    let res = app
        .get(
            &format!("/api/v1/conversations/{id}/export"),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".json"));
    let doc = res.json();
    assert_eq!(doc["conversation"]["id"], id);
    assert_eq!(doc["messages"].as_array().unwrap().len(), 2);

    let res = app
        .get(
            &format!("/api/v1/conversations/{id}/export?format=markdown"),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    let md = res.text();
    assert!(md.starts_with("# Explain *borrowing*"), "{md}");
    assert!(
        md.contains("## User") && md.contains("## Assistant (local/echo)"),
        "{md}"
    );

    let res = app
        .get(
            &format!("/api/v1/conversations/{id}/export?format=pdf"),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["format"]);
}

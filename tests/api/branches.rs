//! Branches: regenerate, edit, switch; the model sees the path only.

use axum::http::StatusCode;
use codechat_api_tests::TestApp;
use serde_json::{json, Value};

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn turn(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.chat(token, body, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()
}

async fn all_messages(app: &TestApp, token: &str, conversation: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/v1/conversations/{conversation}/messages?all=true&limit=100"),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()["items"].as_array().unwrap().clone()
}

async fn switch(app: &TestApp, token: &str, conversation: &str, leaf: &str) -> Value {
    let res = app
        .put(
            &format!("/api/v1/conversations/{conversation}/active-leaf"),
            json!({ "message_id": leaf }),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()
}

#[tokio::test]
async fn regenerate_edit_and_switch_between_branches() {
    let app = TestApp::spawn().await;
    let t = app.register("branches@example.com").await;
    let first = turn(&app, &t.access, json!({"message": "first question"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    let (u1, a1) = (id(&first["user_message"]), id(&first["assistant_message"]));
    assert!(first["user_message"]["parent_id"].is_null());
    assert_eq!(first["assistant_message"]["parent_id"], u1.as_str());
    let second = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "second question"}),
    )
    .await;
    let (u2, a2) = (
        id(&second["user_message"]),
        id(&second["assistant_message"]),
    );
    assert_eq!(second["user_message"]["parent_id"], a1.as_str());

    // Regenerate: a new answer to the same user message, a sibling of the old one, now shown.
    let again = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "regenerate": a2}),
    )
    .await;
    assert_eq!(id(&again["user_message"]), u2, "the same user message");
    let a2b = id(&again["assistant_message"]);
    assert_eq!(again["assistant_message"]["parent_id"], u2.as_str());
    assert!(again["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .ends_with("second question"));
    let path = app.messages(&t.access, &c).await;
    assert_eq!(
        ids(&path),
        [u1.as_str(), a1.as_str(), u2.as_str(), a2b.as_str()]
    );
    assert_eq!(path[3]["sibling_ids"], json!([a2, a2b]));
    assert_eq!(path[2]["sibling_ids"], json!([u2]));
    let conversation = app
        .get(&format!("/api/v1/conversations/{c}"), Some(&t.access))
        .await
        .json();
    assert_eq!(conversation["active_leaf_id"], a2b.as_str());

    // Edit the second question: a new user message under its parent, with its own answer.
    let edited = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "parent_id": a1, "message": "second question, edited"}),
    )
    .await;
    let (u2c, a2c) = (
        id(&edited["user_message"]),
        id(&edited["assistant_message"]),
    );
    let path = app.messages(&t.access, &c).await;
    assert_eq!(
        ids(&path),
        [u1.as_str(), a1.as_str(), u2c.as_str(), a2c.as_str()]
    );
    assert_eq!(path[2]["sibling_ids"], json!([u2, u2c]));
    assert!(path[3]["content"].as_str().unwrap().ends_with("edited"));

    // Switch back to the first answer of the original question, then continue there.
    let switched = switch(&app, &t.access, &c, &a2).await;
    assert_eq!(switched["active_leaf_id"], a2.as_str());
    let path = app.messages(&t.access, &c).await;
    assert_eq!(
        ids(&path),
        [u1.as_str(), a1.as_str(), u2.as_str(), a2.as_str()]
    );
    assert_eq!(path[3]["sibling_ids"], json!([a2, a2b]));
    let third = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "third question"}),
    )
    .await;
    assert_eq!(third["user_message"]["parent_id"], a2.as_str());
    let path = app.messages(&t.access, &c).await;
    assert_eq!(path.len(), 6);
    assert_eq!(
        ids(&path)[..4],
        [u1.clone(), a1.clone(), u2.clone(), a2.clone()]
    );

    // A user message as the leaf; paging walks the path only.
    switch(&app, &t.access, &c, &u2c).await;
    let page = app
        .get(
            &format!("/api/v1/conversations/{c}/messages?limit=2"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(
        ids(page["items"].as_array().unwrap()),
        [u1.as_str(), a1.as_str()]
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app
        .get(
            &format!("/api/v1/conversations/{c}/messages?limit=2&cursor={cursor}"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(ids(page["items"].as_array().unwrap()), [u2c.as_str()]);
    assert!(page["next_cursor"].is_null());

    // Editing the first message: a new root.
    let root = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "parent_id": null, "message": "a different start"}),
    )
    .await;
    let r = id(&root["user_message"]);
    assert!(root["user_message"]["parent_id"].is_null());
    let path = app.messages(&t.access, &c).await;
    assert_eq!(path.len(), 2);
    assert_eq!(path[0]["sibling_ids"], json!([u1, r]));

    // The whole tree, oldest first.
    let all = all_messages(&app, &t.access, &c).await;
    assert_eq!(all.len(), 11);
    assert_eq!(all[0]["id"], u1.as_str());
    let res = app
        .get(
            &format!("/api/v1/conversations/{c}/messages?all=maybe"),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["all"]);
}

#[tokio::test]
async fn branch_requests_are_checked() {
    let app = TestApp::spawn().await;
    let t = app.register("checks@example.com").await;
    let other = app.register("other@example.com").await;
    let first = turn(&app, &t.access, json!({"message": "hello"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    let (u1, a1) = (id(&first["user_message"]), id(&first["assistant_message"]));
    let elsewhere = turn(&app, &t.access, json!({"message": "elsewhere"})).await;
    let theirs = turn(&app, &other.access, json!({"message": "theirs"})).await;
    let before = all_messages(&app, &t.access, &c).await;

    let cases = [
        (
            json!({"conversation_id": c, "parent_id": id(&elsewhere["assistant_message"]), "message": "x"}),
            "parent_id",
        ),
        (
            json!({"conversation_id": c, "parent_id": id(&theirs["assistant_message"]), "message": "x"}),
            "parent_id",
        ),
        (
            json!({"conversation_id": c, "parent_id": "not-an-id", "message": "x"}),
            "parent_id",
        ),
        (
            json!({"conversation_id": c, "regenerate": u1}),
            "regenerate",
        ),
        (
            json!({"conversation_id": c, "regenerate": id(&theirs["assistant_message"])}),
            "regenerate",
        ),
        (
            json!({"conversation_id": c, "regenerate": a1, "message": "x"}),
            "message",
        ),
        (
            json!({"conversation_id": c, "regenerate": a1, "parent_id": u1}),
            "regenerate",
        ),
        (json!({"parent_id": a1, "message": "x"}), "conversation_id"),
        (json!({"regenerate": a1}), "conversation_id"),
        (json!({"conversation_id": c, "parent_id": a1}), "message"),
    ];
    for (body, field) in cases {
        let res = app.chat(&t.access, body.clone(), None).await;
        assert_eq!(res.invalid_fields(), [field], "{body}: {}", res.text());
    }
    // Another user's conversation is not found, whatever the branch fields.
    app.chat(
        &other.access,
        json!({"conversation_id": c, "regenerate": a1}),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        all_messages(&app, &t.access, &c).await,
        before,
        "nothing stored"
    );

    let path = format!("/api/v1/conversations/{c}/active-leaf");
    for (body, status) in [
        (
            json!({"message_id": id(&theirs["assistant_message"])}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"message_id": id(&elsewhere["user_message"])}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"message_id": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        app.put(&path, body, Some(&t.access)).await.problem(status);
    }
    app.put(&path, json!({"message_id": u1}), Some(&other.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(all_messages(&app, &t.access, &c).await, before);
}

#[tokio::test]
async fn the_model_sees_the_path_only() {
    let app = TestApp::spawn().await;
    let t = app.register("context@example.com").await;
    let first = turn(&app, &t.access, json!({"message": "start"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    let a1 = id(&first["assistant_message"]);
    // A long message (about 1 900 tokens) and its answer on one branch...
    let long = format!("long {}", "word ".repeat(1500));
    let long_turn = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": long}),
    )
    .await;
    let long_input = long_turn["usage"]["input_tokens"].as_i64().unwrap();
    assert!(long_input > 1800, "{long_input}");
    // ...then an edit of it: the other branch's turns never carry it.
    let short = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "parent_id": a1, "message": "short instead"}),
    )
    .await;
    let short_input = short["usage"]["input_tokens"].as_i64().unwrap();
    assert!(short_input < 200, "{short_input}");
    let next = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "and then"}),
    )
    .await;
    assert!(next["usage"]["input_tokens"].as_i64().unwrap() < 300);
    // Regenerating on the short branch does not either.
    let again = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "regenerate": id(&next["assistant_message"])}),
    )
    .await;
    assert!(again["usage"]["input_tokens"].as_i64().unwrap() < 300);

    // Usage and the export follow the active path; every branch's cost is kept apart.
    let usage = app
        .get(&format!("/api/v1/conversations/{c}/usage"), Some(&t.access))
        .await
        .json();
    let path_input = usage["total"]["input_tokens"].as_i64().unwrap();
    let all_input = usage["all_branches"]["input_tokens"].as_i64().unwrap();
    assert!(path_input < 1000, "{usage}");
    assert!(all_input > path_input + long_input - 1, "{usage}");
    let export = app
        .get(
            &format!("/api/v1/conversations/{c}/export?format=markdown"),
            Some(&t.access),
        )
        .await
        .text();
    assert!(export.contains("short instead") && !export.contains("long word"));

    // Back on the long branch, the next turn carries it again.
    switch(&app, &t.access, &c, &id(&long_turn["assistant_message"])).await;
    let back = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "more"}),
    )
    .await;
    let back_input = back["usage"]["input_tokens"].as_i64().unwrap();
    assert!(back_input > long_input, "{back_input} {long_input} {back}");
}

/// The rolling summary belongs to the path it was made on: a branch that leaves the summarised
/// messages out plans without it, and the original branch finds it again.
#[tokio::test]
async fn a_summary_serves_only_the_path_it_summarises() {
    use codechat::store::TurnParent;
    let app = TestApp::spawn().await;
    let t = app.register("summary@example.com").await;
    let user = app.user_id(&t.access).await;
    // Long turns outgrow local/echo's window (8 192 tokens): older ones are folded into a summary.
    let first = turn(&app, &t.access, json!({"message": "opening words"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for i in 0..4 {
        let long = format!("part {i} {}", "lorem ".repeat(1200));
        last = turn(
            &app,
            &t.access,
            json!({"conversation_id": c, "message": long}),
        )
        .await;
    }
    let conn = app.state.store().conn().await.unwrap();
    let id = c.parse().unwrap();
    let context = conn
        .turn_context(id, user, TurnParent::ActiveLeaf, 399)
        .await
        .unwrap()
        .unwrap();
    assert!(
        context.conversation.summary.is_some(),
        "the long path is summarised"
    );

    // An edit of the first message: its branch holds none of what the summary covers.
    let edit = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "parent_id": null, "message": "a new start"}),
    )
    .await;
    let context = conn
        .turn_context(id, user, TurnParent::ActiveLeaf, 399)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.conversation.summary, None);
    assert_eq!(context.history.len(), 2);
    assert!(edit["usage"]["input_tokens"].as_i64().unwrap() < 100);

    // Back on the long branch, its summary applies again.
    switch(
        &app,
        &t.access,
        &c,
        last["assistant_message"]["id"].as_str().unwrap(),
    )
    .await;
    let context = conn
        .turn_context(id, user, TurnParent::ActiveLeaf, 399)
        .await
        .unwrap()
        .unwrap();
    assert!(context.conversation.summary.is_some());
}

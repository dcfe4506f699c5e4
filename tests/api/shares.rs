//! Share links: a snapshot of the active path, read signed out, revoked at once, forked.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use codechat_api_tests::TestApp;
use serde_json::{json, Value};

async fn turn(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.chat(token, body, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()
}

async fn share(app: &TestApp, token: &str, conversation: &str) -> Value {
    let res = app
        .post(
            &format!("/api/v1/conversations/{conversation}/shares"),
            json!({}),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn a_share_is_a_snapshot_of_the_active_path_read_signed_out() {
    let app = TestApp::spawn().await;
    let t = app.register("sharer@example.com").await;
    let first = turn(&app, &t.access, json!({"message": "How do I deploy?"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    let second = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "And roll back?"}),
    )
    .await;
    // A regenerated answer: the link shows the active branch only.
    let again = turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "regenerate": second["assistant_message"]["id"]}),
    )
    .await;

    let created = share(&app, &t.access, &c).await;
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    assert!(created["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/s/{token}")));
    assert_eq!(created["message_count"], 4);

    let shared = app.get(&format!("/api/v1/shared/{token}"), None).await;
    assert_eq!(shared.status, StatusCode::OK, "{}", shared.text());
    let body = shared.json();
    assert_eq!(
        keys(&body),
        BTreeSet::from(["messages", "shared_at", "title"])
    );
    assert_eq!(body["title"], "How do I deploy?");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    for m in messages {
        assert_eq!(keys(m), BTreeSet::from(["content", "created_at", "role"]));
    }
    assert_eq!(
        messages[3]["content"],
        again["assistant_message"]["content"]
    );
    // Nothing of the owner or of other resources: no email, no id.
    let text = shared.text();
    let user_id = app.user_id(&t.access).await.to_string();
    for secret in [
        "sharer@example.com",
        c.as_str(),
        user_id.as_str(),
        first["user_message"]["id"].as_str().unwrap(),
        second["assistant_message"]["id"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // Later turns, renames and branch switches leave the snapshot as it was.
    turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "Thanks"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/conversations/{c}"),
        json!({"title": "Renamed"}),
        Some(&t.access),
    )
    .await;
    let res = app
        .put(
            &format!("/api/v1/conversations/{c}/active-leaf"),
            json!({"message_id": second["assistant_message"]["id"]}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        app.get(&format!("/api/v1/shared/{token}"), None)
            .await
            .json(),
        body
    );

    // The owner lists and revokes; the link answers 404 at once.
    let other = app.register("someone@example.com").await;
    let list = app
        .get(
            &format!("/api/v1/conversations/{c}/shares"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["token"], token.as_str());
    app.get(
        &format!("/api/v1/conversations/{c}/shares"),
        Some(&other.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    let id = created["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/shares/{id}"), Some(&other.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post(
        &format!("/api/v1/conversations/{c}/shares"),
        json!({}),
        Some(&other.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&format!("/api/v1/shares/{id}"), Some(&t.access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get(&format!("/api/v1/shared/{token}"), None)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete(&format!("/api/v1/shares/{id}"), Some(&t.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    for bad in ["nope", &"A".repeat(43), &format!("{}!", &token[..42])] {
        app.get(&format!("/api/v1/shared/{bad}"), None)
            .await
            .problem(StatusCode::NOT_FOUND);
    }

    // Deleting the conversation takes its links with it.
    let kept = share(&app, &t.access, &c).await;
    app.delete(&format!("/api/v1/conversations/{c}"), Some(&t.access))
        .await;
    app.get(
        &format!("/api/v1/shared/{}", kept["token"].as_str().unwrap()),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_fork_is_the_callers_own_conversation() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let reader = app.register("reader@example.com").await;
    let first = turn(&app, &owner.access, json!({"message": "Explain lifetimes"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    let token = share(&app, &owner.access, &c).await["token"]
        .as_str()
        .unwrap()
        .to_string();

    app.post(&format!("/api/v1/shared/{token}/fork"), json!({}), None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let res = app
        .post(
            &format!("/api/v1/shared/{token}/fork"),
            json!({}),
            Some(&reader.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let fork = res.json();
    let f = fork["id"].as_str().unwrap().to_string();
    assert_ne!(f, c);
    assert_eq!(fork["title"], "Explain lifetimes");
    assert_eq!(fork["message_count"], 2);
    let copied = app.messages(&reader.access, &f).await;
    let contents: Vec<&str> = copied
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "Explain lifetimes",
            first["assistant_message"]["content"].as_str().unwrap()
        ]
    );
    assert_eq!(copied[1]["parent_id"], copied[0]["id"]);
    // The reader continues it, and edits in it; the owner's conversation is untouched.
    let next = turn(
        &app,
        &reader.access,
        json!({"conversation_id": f, "message": "More, please"}),
    )
    .await;
    assert_eq!(next["user_message"]["parent_id"], copied[1]["id"]);
    let edit = turn(
        &app,
        &reader.access,
        json!({"conversation_id": f, "parent_id": copied[1]["id"], "message": "Shorter"}),
    )
    .await;
    let path = app.messages(&reader.access, &f).await;
    assert_eq!(path.len(), 4);
    assert_eq!(path[..2], copied[..2]);
    assert_eq!(path[2]["id"], edit["user_message"]["id"]);
    assert_eq!(
        path[2]["sibling_ids"],
        json!([next["user_message"]["id"], edit["user_message"]["id"]])
    );
    assert_eq!(app.messages(&owner.access, &c).await.len(), 2);
    app.get(&format!("/api/v1/conversations/{f}"), Some(&owner.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post("/api/v1/shared/nope/fork", json!({}), Some(&reader.access))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn share_limits_hold_at_their_edges() {
    let app = TestApp::with_env(&[("MAX_SHARE_MESSAGES", "4"), ("MAX_SHARES_PER_USER", "2")]).await;
    let t = app.register("limits@example.com").await;
    let first = turn(&app, &t.access, json!({"message": "one"})).await;
    let c = first["conversation_id"].as_str().unwrap().to_string();
    turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "two"}),
    )
    .await;
    share(&app, &t.access, &c).await; // 4 messages: at the limit
    turn(
        &app,
        &t.access,
        json!({"conversation_id": c, "message": "three"}),
    )
    .await;
    let res = app
        .post(
            &format!("/api/v1/conversations/{c}/shares"),
            json!({}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["conversation"], "{}", res.text());
    // A shorter branch fits again.
    let res = app
        .put(
            &format!("/api/v1/conversations/{c}/active-leaf"),
            json!({"message_id": first["assistant_message"]["id"]}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    share(&app, &t.access, &c).await;
    app.post(
        &format!("/api/v1/conversations/{c}/shares"),
        json!({}),
        Some(&t.access),
    )
    .await
    .problem(StatusCode::CONFLICT);
    let list = app
        .get(
            &format!("/api/v1/conversations/{c}/shares"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "nothing stored by the refusals"
    );
}

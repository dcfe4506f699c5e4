//! `MAX_USER_STORAGE_BYTES`: what one user stores in all (attachments, project files, knowledge
//! documents), checked in the statement that writes, so two uploads at once cannot both pass; past
//! it a 413 whose `type` ends in `storage-quota`, with nothing stored.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use codechat_api_tests::{TestApp, TestResponse};
use serde_json::json;

async fn attach(app: &TestApp, token: &str, name: &str, bytes: &[u8]) -> TestResponse {
    app.post_multipart(
        "/api/v1/attachments",
        token,
        &[("file", Some(name), Some("text/plain"), bytes)],
    )
    .await
}

fn assert_full(res: &TestResponse) {
    let p = res.problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        p["type"].as_str().unwrap().ends_with("storage-quota"),
        "{p}"
    );
}

#[tokio::test]
async fn every_kind_of_file_counts_against_one_cap() {
    let app = TestApp::with_env(&[("MAX_USER_STORAGE_BYTES", "1000")]).await;
    let token = app.register("storage@example.com").await.access;

    // 600 bytes of attachment: 400 left, taken exactly at the edge by a project file.
    let res = attach(&app, &token, "a.txt", &[b'a'; 600]).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let project = app
        .post("/api/v1/projects", json!({"name": "P"}), Some(&token))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |path: &str, bytes: Vec<u8>| {
        Request::builder()
            .method(Method::PUT)
            .uri(format!("/api/v1/projects/{project}/files/{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes))
            .unwrap()
    };
    let res = app.send(put("b.txt", vec![b'b'; 400])).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Full: one more byte of anything is refused, and nothing is kept.
    assert_full(&app.send(put("c.txt", vec![b'c'; 1])).await);
    assert_full(&attach(&app, &token, "d.txt", b"d").await);
    assert_full(
        &app.post(
            "/api/v1/knowledge/documents",
            json!({"title": "Doc", "content": "one word"}),
            Some(&token),
        )
        .await,
    );
    assert_full(
        &app.post(
            "/api/v1/attachments/uploads",
            json!({"filename": "big.txt", "content_type": "text/plain", "size": 10}),
            Some(&token),
        )
        .await,
    );
    let attachments = app.get("/api/v1/attachments", Some(&token)).await.json();
    assert_eq!(
        attachments["items"].as_array().unwrap().len(),
        1,
        "{attachments}"
    );
    let docs = app
        .get("/api/v1/knowledge/documents", Some(&token))
        .await
        .json();
    assert_eq!(docs["items"], json!([]), "{docs}");
    app.get(
        &format!("/api/v1/projects/{project}/files/c.txt"),
        Some(&token),
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    // Replacing a file counts only what it grows by; deleting frees room.
    let res = app.send(put("b.txt", vec![b'B'; 400])).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let id = attachments["items"][0]["id"].as_str().unwrap();
    let res = app
        .delete(&format!("/api/v1/attachments/{id}"), Some(&token))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = app.send(put("c.txt", vec![b'c'; 600])).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Another user has a cap of their own.
    let other = app.register("storage-other@example.com").await.access;
    let res = attach(&app, &other, "o.txt", &[b'o'; 1000]).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}

#[tokio::test]
async fn two_uploads_at_once_cannot_both_pass() {
    let app = TestApp::with_env(&[("MAX_USER_STORAGE_BYTES", "1000")]).await;
    let token = app.register("storage-race@example.com").await.access;
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            attach(&app, &token, "a.txt", &[b'a'; 600]),
            attach(&app, &token, "b.txt", &[b'b'; 600]),
        );
        let passed = [&a, &b]
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        assert_eq!(passed, 1, "{} / {}", a.text(), b.text());
        // Free the room for the next round.
        let list = app.get("/api/v1/attachments", Some(&token)).await.json();
        for item in list["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            app.delete(&format!("/api/v1/attachments/{id}"), Some(&token))
                .await;
        }
    }
}

#[tokio::test]
async fn an_import_past_the_cap_stores_no_project() {
    let app = TestApp::with_env(&[("MAX_USER_STORAGE_BYTES", "100")]).await;
    let token = app.register("storage-import@example.com").await.access;
    let res = app
        .post(
            "/api/v1/projects/import",
            json!({"format": "codechat.project", "version": 1, "name": "Too big",
                   "files": [{"path": "a.txt", "encoding": "utf-8", "content": "a".repeat(101)}]}),
            Some(&token),
        )
        .await;
    assert_full(&res);
    let list = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(list["items"], json!([]), "{list}");
}

/// The number of API keys, projects and knowledge documents a user holds is capped too: past it a
/// 409 naming the cap, nothing stored.
#[tokio::test]
async fn counts_are_capped_per_user() {
    let app = TestApp::with_env(&[
        ("MAX_API_KEYS_PER_USER", "2"),
        ("MAX_PROJECTS_PER_USER", "1"),
        ("MAX_DOCUMENTS_PER_USER", "1"),
    ])
    .await;
    let token = app.register("counts@example.com").await.access;
    for _ in 0..2 {
        let res = app
            .post("/api/v1/api-keys", json!({"name": "k"}), Some(&token))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
    let p = app
        .post("/api/v1/api-keys", json!({"name": "k"}), Some(&token))
        .await
        .problem(StatusCode::CONFLICT);
    assert!(
        p["detail"].as_str().unwrap().contains("at most 2 API keys"),
        "{p}"
    );

    let res = app
        .post("/api/v1/projects", json!({"name": "One"}), Some(&token))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    app.post("/api/v1/projects", json!({"name": "Two"}), Some(&token))
        .await
        .problem(StatusCode::CONFLICT);
    app.post(
        "/api/v1/projects/import",
        json!({"format": "codechat.project", "version": 1, "name": "Three", "files": []}),
        Some(&token),
    )
    .await
    .problem(StatusCode::CONFLICT);
    let projects = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");

    let doc = json!({"title": "Doc", "content": "some words to index"});
    let res = app
        .post("/api/v1/knowledge/documents", doc.clone(), Some(&token))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let p = app
        .post("/api/v1/knowledge/documents", doc, Some(&token))
        .await
        .problem(StatusCode::CONFLICT);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("knowledge documents"),
        "{p}"
    );
}

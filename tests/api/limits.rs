use axum::http::{Method, StatusCode};
use codechat_api_tests::{TestApp, PASSWORD};
use serde_json::json;

/// A register body padded to exactly `size` bytes with an ignored field.
fn body_of_size(email: &str, size: usize) -> String {
    let base = json!({"email": email, "password": PASSWORD, "pad": ""}).to_string();
    let pad = "x".repeat(size - base.len());
    let body = json!({"email": email, "password": PASSWORD, "pad": pad}).to_string();
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn json_body_limit_is_configurable_and_exact() {
    let app = TestApp::with_env(&[("MAX_JSON_BODY_BYTES", "300")]).await;
    let at_limit = app
        .post_raw(
            "/api/v1/auth/register",
            "application/json",
            body_of_size("max@example.com", 300),
        )
        .await;
    assert_eq!(at_limit.status, StatusCode::CREATED, "{}", at_limit.text());

    let over = app
        .post_raw(
            "/api/v1/auth/register",
            "application/json",
            body_of_size("over@example.com", 301),
        )
        .await;
    let p = over.problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(p["detail"].as_str().unwrap().contains("300"), "{p}");
    // Nothing was stored.
    app.login("over@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn default_json_body_limit_is_one_mebibyte() {
    let app = TestApp::spawn().await;
    let over = app
        .post_raw(
            "/api/v1/auth/register",
            "application/json",
            body_of_size("big@example.com", 1024 * 1024 + 1),
        )
        .await;
    over.problem(StatusCode::PAYLOAD_TOO_LARGE);
    let at = app
        .post_raw(
            "/api/v1/auth/register",
            "application/json",
            body_of_size("big@example.com", 1024 * 1024),
        )
        .await;
    assert_eq!(at.status, StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nope", None)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get("/nope", None).await.problem(StatusCode::NOT_FOUND);
    let res = app
        .send(codechat_api_tests::request(
            Method::DELETE,
            "/api/v1/models",
            None,
            None,
        ))
        .await;
    res.problem(StatusCode::METHOD_NOT_ALLOWED);
    app.get("/api/v1/auth/login", None)
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/health", None).await;
    let id = res.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36);
    // A caller's own id is kept, for tracing across services.
    let req = axum::http::Request::get("/api/v1/health")
        .header("x-request-id", "client-123")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.headers["x-request-id"], "client-123");
}

use axum::http::StatusCode;
use codechat_api_tests::{TestApp, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn profile_updates_display_name() {
    let app = TestApp::spawn().await;
    let t = app.register("kim@example.com").await;
    assert_eq!(t.user["display_name"], "kim");

    let res = app
        .patch(
            "/api/v1/users/me",
            json!({"display_name": "  Kim K  "}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["display_name"], "Kim K");
    assert_eq!(app.me(&t.access).await.json()["display_name"], "Kim K");

    let res = app
        .patch(
            "/api/v1/users/me",
            json!({"display_name": ""}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["display_name"]);
    // `role` and `email` are not the user's to change here; they are ignored.
    let res = app
        .patch(
            "/api/v1/users/me",
            json!({"role": "admin", "email": "x@y.z"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.json()["role"], "user");
    assert_eq!(res.json()["email"], "kim@example.com");
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let t = app.register("lee@example.com").await;
    let me = "/api/v1/users/me";

    let res = app
        .patch(
            me,
            json!({"new_password": "a brand new secret"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["current_password"]);
    let res = app
        .patch(
            me,
            json!({"current_password": "not it at all", "new_password": "a brand new secret"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["current_password"]);
    let res = app
        .patch(
            me,
            json!({"current_password": PASSWORD, "new_password": "short"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["new_password"]);

    let res = app
        .patch(
            me,
            json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    let login = |password: &'static str| app.login("lee@example.com", password);
    login(PASSWORD).await.problem(StatusCode::UNAUTHORIZED);
    assert_eq!(login("a brand new secret").await.status, StatusCode::OK);
    // The refresh token issued before the change is dead.
    app.refresh(&t.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

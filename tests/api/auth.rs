use axum::http::StatusCode;
use std::net::SocketAddr;

use axum::{extract::ConnectInfo, http::Method};
use codechat_api_tests::{request, TestApp, TestResponse, Tokens, JWT_SECRET, PASSWORD};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

#[tokio::test]
async fn register_creates_a_user_and_logs_it_in() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "display_name": "Ada", "role": "admin"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.headers["cache-control"], "no-store");
    let body = res.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    let user = &body["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["display_name"], "Ada");
    // `role` in the body is ignored, never applied.
    assert_eq!(user["role"], "user");
    assert_eq!(user["is_active"], true);
    assert!(user.get("password_hash").is_none());
    assert_eq!(uuid_version(user["id"].as_str().unwrap()), 7);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));

    let me = app
        .get("/api/v1/users/me", body["access_token"].as_str())
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json(), *user);
}

fn uuid_version(id: &str) -> u32 {
    id.chars().nth(14).and_then(|c| c.to_digit(16)).unwrap()
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com").await;
    let res = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "BOB@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let p = res.problem(StatusCode::CONFLICT);
    assert_eq!(p["errors"][0]["field"], "email", "{p}");
}

#[tokio::test]
async fn registration_validates_every_field_at_its_edges() {
    let app = TestApp::spawn().await;
    let post = |body| app.post("/api/v1/auth/register", body, None);

    let res =
        post(json!({"email": "not-an-email", "password": "short7!", "display_name": ""})).await;
    let mut fields = res.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["display_name", "email", "password"]);

    // 8 and 128 characters are the edges of what is allowed (characters, not bytes).
    assert_eq!(
        post(json!({"email": "a@x.io", "password": "12345678"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        post(json!({"email": "b@x.io", "password": "é".repeat(128)}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        post(json!({"email": "c@x.io", "password": "1234567"}))
            .await
            .invalid_fields(),
        ["password"]
    );
    assert_eq!(
        post(json!({"email": "d@x.io", "password": "x".repeat(129)}))
            .await
            .invalid_fields(),
        ["password"]
    );
    assert_eq!(
        post(json!({"email": "e@x.io", "password": PASSWORD, "display_name": "n".repeat(101)}))
            .await
            .invalid_fields(),
        ["display_name"]
    );

    // Missing and mistyped fields are named.
    assert_eq!(
        post(json!({"password": PASSWORD})).await.invalid_fields(),
        ["email"]
    );
    assert_eq!(
        post(json!({"email": 42, "password": PASSWORD}))
            .await
            .invalid_fields(),
        ["email"]
    );
    assert_eq!(post(json!("a@x.io")).await.invalid_fields(), ["body"]);
}

#[tokio::test]
async fn bad_bodies_are_client_errors_and_store_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "eve@example.com", "password": PASSWORD}).to_string();
    app.post_raw("/api/v1/auth/register", "text/plain", body.clone())
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.post_raw("/api/v1/auth/register", "application/json", "{\"email\": ")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.post_raw("/api/v1/auth/register", "application/json", "")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.post_raw(
        "/api/v1/auth/register",
        "application/json",
        vec![0xff, 0xfe, 0x00],
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    // None of those created the account.
    let res = app.login("eve@example.com", PASSWORD).await;
    res.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_gives_one_answer_for_unknown_email_and_wrong_password() {
    let app = TestApp::spawn().await;
    app.register("carol@example.com").await;

    let ok = app.login(" CAROL@example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["user"]["email"], "carol@example.com");

    let wrong = app
        .login("carol@example.com", "wrong password")
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let unknown = app
        .login("nobody@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn bootstrap_admin_email_registers_as_admin() {
    let app = TestApp::with_env(&[("BOOTSTRAP_ADMIN_EMAIL", "Root@Example.com")]).await;
    assert_eq!(app.register("root@example.com").await.user["role"], "admin");
    assert_eq!(app.register("user@example.com").await.user["role"], "user");
}

#[tokio::test]
async fn bootstrap_admin_email_is_not_admin_once_an_admin_exists() {
    let app = TestApp::with_env(&[("BOOTSTRAP_ADMIN_EMAIL", "root@example.com")]).await;
    let conn = app.state.store().conn().await.unwrap();
    conn.insert_user(codechat::store::NewUser {
        email: "first-admin@example.com",
        password_hash: "x",
        display_name: "first",
        role: codechat::kinds::Role::Admin,
    })
    .await
    .unwrap();
    // Whoever registers the bootstrap address later (it may not be the operator) gets no power.
    assert_eq!(app.register("root@example.com").await.user["role"], "user");
}

#[tokio::test]
async fn lookalike_and_hidden_characters_in_emails_and_names() {
    let app = TestApp::spawn().await;
    let t = app.register("zoe@example.com").await;
    // Fullwidth letters fold (NFKC) to the same address: it is taken.
    let res = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "ｚｏｅ@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    res.problem(StatusCode::CONFLICT);
    assert_eq!(
        app.login("ＺＯＥ@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    for (body, field) in [
        (
            json!({"email": "zo\u{200B}e2@example.com", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "e@example.com", "password": PASSWORD, "display_name": "admin\u{202E}nimda"}),
            "display_name",
        ),
    ] {
        let res = app.post("/api/v1/auth/register", body, None).await;
        assert_eq!(res.invalid_fields(), [field]);
    }
    let res = app
        .patch(
            "/api/v1/users/me",
            json!({"display_name": "\u{2066}x"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["display_name"]);
}

#[tokio::test]
async fn oauth2_password_form_issues_tokens() {
    let app = TestApp::spawn().await;
    app.register("dan@example.com").await;
    let form = format!(
        "grant_type=password&username=dan%40example.com&password={}",
        PASSWORD.replace(' ', "+")
    );
    let res = app
        .post_raw(
            "/api/v1/auth/token",
            "application/x-www-form-urlencoded",
            form,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let tokens = Tokens::from(res.json());
    assert_eq!(app.me(&tokens.access).await.status, StatusCode::OK);

    let res = app
        .post_raw(
            "/api/v1/auth/token",
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&username=dan%40example.com&password=x",
        )
        .await;
    assert_eq!(res.invalid_fields(), ["grant_type"]);
    app.post_raw(
        "/api/v1/auth/token",
        "application/x-www-form-urlencoded",
        "username=dan%40example.com",
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.post_raw("/api/v1/auth/token", "application/json", "{}")
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let first = app.register("erin@example.com").await;

    let res = app.refresh(&first.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let second = Tokens::from(res.json());
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(app.me(&second.access).await.status, StatusCode::OK);

    // Replaying the spent token is refused and takes its successor down with it.
    app.refresh(&first.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.refresh(&second.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);

    // Another login is another family, untouched.
    let other = Tokens::from(app.login("erin@example.com", PASSWORD).await.json());
    let res = app.refresh(&other.refresh).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    let app = TestApp::spawn().await;
    let t = app.register("fay@example.com").await;
    app.me(&t.refresh).await.problem(StatusCode::UNAUTHORIZED);
    app.refresh(&t.access)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.refresh("garbage")
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let t = app.register("gus@example.com").await;
    let other_session = Tokens::from(app.login("gus@example.com", PASSWORD).await.json());
    // Logout needs the access token.
    app.logout(&t.refresh, None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let res = app.logout(&t.refresh, Some(&t.access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());
    // Both tokens of that session are dead at once; the other session lives on.
    app.refresh(&t.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.me(&t.access).await.problem(StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&other_session.access).await.status, StatusCode::OK);
    // Twice is fine (from a live session).
    let res = app.logout(&t.refresh, Some(&other_session.access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);

    // Nobody logs out someone else's session.
    let victim = app.register("hal@example.com").await;
    app.logout(&victim.refresh, Some(&other_session.access))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let res = app.refresh(&victim.refresh).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_all_ends_every_session_at_once() {
    let app = TestApp::spawn().await;
    let a = app.register("kim@example.com").await;
    let b = Tokens::from(app.login("kim@example.com", PASSWORD).await.json());
    let bystander = app.register("lou@example.com").await;
    let res = app
        .post("/api/v1/auth/logout-all", json!({}), Some(&b.access))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    for session in [&a, &b] {
        app.me(&session.access)
            .await
            .problem(StatusCode::UNAUTHORIZED);
        app.refresh(&session.refresh)
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.me(&bystander.access).await.status, StatusCode::OK);
    // A new login works, and so does its session.
    let c = Tokens::from(app.login("kim@example.com", PASSWORD).await.json());
    assert_eq!(app.me(&c.access).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&c.refresh).await.status, StatusCode::OK);
    app.post("/api/v1/auth/logout-all", json!({}), None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

/// A login that checked the password before a password change and stores its session after it
/// (the race a revocation list loses) gets a dead session: its tokens carry the old epoch.
#[tokio::test]
async fn a_login_interleaved_with_a_password_change_gets_a_dead_session() {
    let app = TestApp::spawn().await;
    let t = app.register("max@example.com").await;
    let conn = app.state.store().conn().await.unwrap();
    let keys = app.state.tokens();
    // The login, held between its password check and its insert...
    let attempt = codechat::accounts::Attempt {
        email: "max@example.com",
        ip: None,
    };
    let limits = codechat::accounts::LoginLimits::from(&app.state.config().auth);
    let checked = codechat::accounts::verify_credentials(&conn, limits, attempt, PASSWORD.into())
        .await
        .unwrap();
    // ...while the password changes.
    let res = app
        .patch(
            "/api/v1/users/me",
            json!({"current_password": PASSWORD, "new_password": "another long secret"}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let late = codechat::accounts::start_session(&conn, keys, &checked)
        .await
        .unwrap();
    app.me(&late.access_token)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.refresh(&late.refresh_token)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // The change ended the session that made it too, at once.
    app.me(&t.access).await.problem(StatusCode::UNAUTHORIZED);
    let fresh = Tokens::from(
        app.login("max@example.com", "another long secret")
            .await
            .json(),
    );
    assert_eq!(app.me(&fresh.access).await.status, StatusCode::OK);
}

/// Signs `claims` with `secret` and HS256.
fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn forged_tampered_expired_and_unsigned_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let t = app.register("ivy@example.com").await;
    let id = t.user["id"].as_str().unwrap();
    let claims = |exp: u64| json!({"sub": id, "role": "admin", "iat": now() - 10, "exp": exp, "jti": "x", "typ": "access", "sep": 0, "sid": "s"});

    // The harness can sign a valid token, so the failures below are about what they change.
    let valid = sign(&claims(now() + 60), JWT_SECRET.as_bytes());
    assert_eq!(app.me(&valid).await.status, StatusCode::OK);

    let expired = sign(&claims(now() - 1), JWT_SECRET.as_bytes());
    let wrong_key = sign(
        &claims(now() + 60),
        b"another-secret-another-secret-0123456789",
    );
    let mut parts: Vec<String> = t.access.split('.').map(str::to_owned).collect();
    parts[1] = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: serde_json::Value =
            serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
        payload["role"] = json!("admin");
        engine.encode(payload.to_string())
    };
    let tampered = parts.join(".");
    let alg_none = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            engine.encode(r#"{"alg":"none","typ":"JWT"}"#),
            engine.encode(claims(now() + 60).to_string())
        )
    };
    for (name, token) in [
        ("expired", expired),
        ("wrong key", wrong_key),
        ("tampered", tampered),
        ("alg none", alg_none),
    ] {
        let res = app.me(&token).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(res.headers["www-authenticate"], "Bearer", "{name}");
        res.problem(StatusCode::UNAUTHORIZED);
    }

    app.get("/api/v1/users/me", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let basic = axum::http::Request::get("/api/v1/users/me")
        .header("authorization", "Basic aXZ5OnB3")
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(basic).await.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_deactivated_user_is_shut_out_at_once() {
    let app = TestApp::spawn().await;
    let t = app.register("jo@example.com").await;
    let id = t.user["id"].as_str().unwrap();
    assert!(app
        .state
        .store()
        .conn()
        .await
        .unwrap()
        .set_user_active(id.parse().unwrap(), false)
        .await
        .unwrap());

    app.me(&t.access).await.problem(StatusCode::UNAUTHORIZED);
    app.refresh(&t.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.login("jo@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

/// A login request from `ip`, as API Gateway's source IP (or the local peer) would give it.
async fn login_from(app: &TestApp, ip: [u8; 4], email: &str, password: &str) -> TestResponse {
    let mut req = request(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    );
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    app.send(req).await
}

#[tokio::test]
async fn failed_logins_lock_the_account_for_that_address_until_the_window_passes() {
    let app = TestApp::with_env(&[("LOGIN_FAILURE_WINDOW_SECONDS", "2")]).await;
    app.register("nan@example.com").await;
    // Failures spread over many addresses lock nobody out.
    for i in 0..6 {
        let res = login_from(&app, [10, 0, 0, i], "nan@example.com", "wrong password").await;
        res.problem(StatusCode::UNAUTHORIZED);
    }
    for _ in 0..5 {
        let res = login_from(&app, [10, 0, 1, 1], "nan@example.com", "wrong password").await;
        res.problem(StatusCode::UNAUTHORIZED);
    }
    // Five from one address: that address waits, even with the right password, with Retry-After.
    let res = login_from(&app, [10, 0, 1, 1], "NAN@example.com", PASSWORD).await;
    res.problem(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // The owner, from another address, is not locked out.
    let res = login_from(&app, [10, 0, 2, 2], "nan@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // The OAuth2 form shares the counter.
    let form = format!(
        "username=nan%40example.com&password={}",
        PASSWORD.replace(' ', "+")
    );
    let mut req = axum::http::Request::post("/api/v1/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([10, 0, 1, 1], 40000))));
    app.send(req).await.problem(StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not affected.
    app.register("oz@example.com").await;
    assert_eq!(
        app.login("oz@example.com", PASSWORD).await.status,
        StatusCode::OK
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        app.login("nan@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_success_resets_the_account_counter() {
    let app = TestApp::spawn().await;
    app.register("pat@example.com").await;
    for _ in 0..4 {
        app.login("pat@example.com", "wrong password")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.login("pat@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    for _ in 0..4 {
        app.login("pat@example.com", "wrong password")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.login("pat@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn failed_logins_per_client_ip_are_limited() {
    let app = TestApp::with_env(&[("LOGIN_MAX_FAILURES_PER_IP", "3")]).await;
    app.register("quin@example.com").await;
    // Credential stuffing: one address, a different account each time.
    for i in 0..3 {
        login_from(
            &app,
            [192, 0, 2, 7],
            &format!("nobody{i}@example.com"),
            "guess",
        )
        .await
        .problem(StatusCode::UNAUTHORIZED);
    }
    login_from(&app, [192, 0, 2, 7], "quin@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    // Another address is not held back; a client-supplied X-Forwarded-For changes nothing.
    let res = login_from(&app, [192, 0, 2, 8], "quin@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK);
    let mut req = request(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "quin@example.com", "password": PASSWORD})),
    );
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40000))));
    app.send(req).await.problem(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn wrong_current_passwords_count_as_failed_logins() {
    let app = TestApp::with_env(&[("LOGIN_MAX_FAILURES_PER_ACCOUNT", "2")]).await;
    let t = app.register("rae@example.com").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "a fresh long password"});
    for _ in 0..2 {
        let res = app
            .patch("/api/v1/users/me", change("not it"), Some(&t.access))
            .await;
        assert_eq!(res.invalid_fields(), ["current_password"]);
    }
    app.patch("/api/v1/users/me", change(PASSWORD), Some(&t.access))
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    app.login("rae@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
}

async fn register(app: &TestApp, email: &str, token: Option<&str>) -> TestResponse {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(t) = token {
        body["bootstrap_token"] = json!(t);
    }
    app.post("/api/v1/auth/register", body, None).await
}

/// In the lambda profile the first admin's email alone makes no one admin: registering it needs the
/// deployment's bootstrap token, and a missing or wrong one is refused with nothing stored.
#[tokio::test]
async fn the_first_admin_presents_the_bootstrap_token_in_lambda() {
    let store = tempfile::tempdir().unwrap();
    let url = format!("file:{}", store.path().join("lambda.db").display());
    let lambda = [
        ("CODECHAT_PROFILE", "lambda"),
        ("LIBSQL_URL", url.as_str()),
        ("BEDROCK_ENABLED", "false"),
        ("BOOTSTRAP_ADMIN_EMAIL", "first-admin@example.com"),
    ];

    // No token set on the deployment: nobody becomes admin, the email is not taken either.
    let app = TestApp::with_env(&lambda).await;
    let res = register(&app, "first-admin@example.com", None).await;
    assert_eq!(
        res.invalid_fields(),
        vec!["bootstrap_token"],
        "{}",
        res.text()
    );

    let mut with_token = lambda.to_vec();
    with_token.push(("BOOTSTRAP_ADMIN_TOKEN", "a-long-random-bootstrap-token"));
    let app = TestApp::with_env(&with_token).await;
    for token in [None, Some("wrong")] {
        let res = register(&app, "first-admin@example.com", token).await;
        assert_eq!(
            res.invalid_fields(),
            vec!["bootstrap_token"],
            "{}",
            res.text()
        );
    }
    app.login("first-admin@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let res = register(
        &app,
        "first-admin@example.com",
        Some("a-long-random-bootstrap-token"),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json()["user"]["role"], "admin");
    // Once an admin exists the token opens nothing more.
    let res = register(
        &app,
        "second@example.com",
        Some("a-long-random-bootstrap-token"),
    )
    .await;
    assert_eq!(res.json()["user"]["role"], "user");
}

/// A browser client's cookie session: the refresh token only in an HttpOnly, SameSite=Strict
/// cookie scoped to the auth routes; refresh and logout by that cookie need the session header
/// (a cross-site form cannot send it); the bearer flow is unchanged without the header.
#[tokio::test]
async fn a_browser_session_keeps_its_refresh_token_in_an_httponly_cookie() {
    let app = TestApp::spawn().await;
    app.register("cookie@example.com").await;
    let send = |path: &str,
                body: serde_json::Value,
                host: &str,
                cookie: Option<&str>,
                header: bool,
                access: Option<&str>| {
        let mut req = request(Method::POST, path, access, Some(body));
        req.headers_mut().insert("host", host.parse().unwrap());
        if header {
            req.headers_mut()
                .insert("x-codechat-session", "cookie".parse().unwrap());
        }
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        app.send(req)
    };
    let set_cookie = |res: &TestResponse| {
        res.headers
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let pair = |set: &str| set.split(';').next().unwrap().to_string();

    let login = json!({"email": "cookie@example.com", "password": PASSWORD});
    let res = send(
        "/api/v1/auth/login",
        login.clone(),
        "127.0.0.1:9000",
        None,
        true,
        None,
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json().get("refresh_token").is_none(), "{}", res.text());
    assert!(res.json()["access_token"].is_string());
    let first = set_cookie(&res);
    assert!(first.starts_with("codechat_refresh="), "{first}");
    for part in [
        "; Path=/api/v1/auth",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=",
    ] {
        assert!(first.contains(part), "{first}");
    }
    // Over plain http to a loopback host (the laptop) the cookie cannot be Secure; anywhere else it is.
    assert!(!first.contains("Secure"), "{first}");
    let deployed = send(
        "/api/v1/auth/login",
        login.clone(),
        "abc.execute-api.us-east-1.amazonaws.com",
        None,
        true,
        None,
    )
    .await;
    assert!(
        set_cookie(&deployed).contains("; Secure"),
        "{}",
        set_cookie(&deployed)
    );
    let without = send(
        "/api/v1/auth/login",
        login.clone(),
        "127.0.0.1:9000",
        None,
        false,
        None,
    )
    .await;
    assert!(without.json()["refresh_token"].is_string());
    assert!(without.headers.get("set-cookie").is_none());

    // A refresh by cookie needs the header: the cookie alone (a cross-site form) is not enough.
    let bare = send(
        "/api/v1/auth/refresh",
        json!({}),
        "127.0.0.1:9000",
        Some(&pair(&first)),
        false,
        None,
    )
    .await;
    assert_eq!(
        bare.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bare.text()
    );
    let refreshed = send(
        "/api/v1/auth/refresh",
        json!({}),
        "127.0.0.1:9000",
        Some(&pair(&first)),
        true,
        None,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    assert!(refreshed.json().get("refresh_token").is_none());
    let second = set_cookie(&refreshed);
    assert_ne!(pair(&second), pair(&first));
    // The spent cookie replayed revokes the family, as a spent body token does.
    let replay = send(
        "/api/v1/auth/refresh",
        json!({}),
        "127.0.0.1:9000",
        Some(&pair(&first)),
        true,
        None,
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);

    // A new session; logging out by cookie revokes it and removes the cookie.
    let res = send(
        "/api/v1/auth/login",
        login,
        "127.0.0.1:9000",
        None,
        true,
        None,
    )
    .await;
    let cookie = pair(&set_cookie(&res));
    let access = res.json()["access_token"].as_str().unwrap().to_string();
    let out = send(
        "/api/v1/auth/logout",
        json!({}),
        "127.0.0.1:9000",
        Some(&cookie),
        true,
        Some(&access),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    assert!(
        set_cookie(&out).contains("Max-Age=0"),
        "{}",
        set_cookie(&out)
    );
    let after = send(
        "/api/v1/auth/refresh",
        json!({}),
        "127.0.0.1:9000",
        Some(&cookie),
        true,
        None,
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // Without any cookie the browser is simply not signed in.
    let none = send(
        "/api/v1/auth/refresh",
        json!({}),
        "127.0.0.1:9000",
        None,
        true,
        None,
    )
    .await;
    none.problem(StatusCode::UNAUTHORIZED);
}

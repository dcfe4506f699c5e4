//! Personal API keys: shown once, stored as a hash, owner-only, and a bearer credential that stops
//! at once when deleted, expired or its owner is deactivated.

use axum::http::StatusCode;
use codechat_api_tests::TestApp;
use serde_json::json;

async fn sql(app: &TestApp, statement: &str) {
    let conn = libsql::Builder::new_local(app.data_dir().join("codechat.db"))
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    conn.execute(statement, ()).await.unwrap();
}

#[tokio::test]
async fn a_key_is_shown_once_listed_without_it_and_works_as_a_bearer_credential() {
    let app = TestApp::spawn().await;
    let ada = app.register("keys-ada@example.com").await;
    let res = app
        .post(
            "/api/v1/api-keys",
            json!({"name": " ci ", "role": "admin"}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let created = res.json();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("cc_") && key.len() == 46, "{key}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["prefix"], key[..12]);
    assert!(created["last_used_at"].is_null() && created["expires_at"].is_null());

    let list = app.get("/api/v1/api-keys", Some(&ada.access)).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("key").is_none(), "{list}");
    assert!(
        !list.to_string().contains(&key[12..]),
        "the secret part is never listed"
    );

    // The key authenticates like an access token, and its use is noted.
    let me = app.get("/api/v1/users/me", Some(&key)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["email"], "keys-ada@example.com");
    let list = app.get("/api/v1/api-keys", Some(&ada.access)).await.json();
    assert!(list["items"][0]["last_used_at"].is_string(), "{list}");

    // Only a SHA-256 of it is stored.
    let stored = std::fs::read(app.data_dir().join("codechat.db")).unwrap();
    let wal = std::fs::read(app.data_dir().join("codechat.db-wal")).unwrap_or_default();
    for bytes in [&stored, &wal] {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "the key is not in the database"
        );
    }

    // Near misses are refused alike.
    let mut forged = key.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    for bad in [
        String::from_utf8(forged).unwrap(),
        format!("{key}x"),
        "cc_short".into(),
    ] {
        app.get("/api/v1/users/me", Some(&bad))
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }

    // Another user neither sees nor deletes it.
    let bo = app.register("keys-bo@example.com").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/api-keys", Some(&bo.access)).await.json()["items"],
        json!([])
    );
    app.delete(&format!("/api/v1/api-keys/{id}"), Some(&bo.access))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete("/api/v1/api-keys/not-an-id", Some(&ada.access))
        .await
        .problem(StatusCode::NOT_FOUND);

    // Deleted: it stops at once.
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}"), Some(&ada.access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/api/v1/users/me", Some(&key))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_keys_and_deactivated_owners_are_refused() {
    let app = TestApp::spawn().await;
    let ada = app.register("keys-expiry@example.com").await;
    let create = |body| app.post("/api/v1/api-keys", body, Some(&ada.access));
    let key = create(json!({"name": "short", "expires_at": "2999-01-01T00:00:00Z"}))
        .await
        .json();
    let key = key["key"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/api/v1/users/me", Some(&key)).await.status,
        StatusCode::OK
    );
    sql(
        &app,
        "UPDATE api_keys SET expires_at = '2001-01-01T00:00:00Z'",
    )
    .await;
    let problem = app
        .get("/api/v1/users/me", Some(&key))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );

    let other = create(json!({"name": "other"})).await.json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.get("/api/v1/users/me", Some(&other)).await.status,
        StatusCode::OK
    );
    sql(&app, "UPDATE users SET is_active = 0").await;
    app.get("/api/v1/users/me", Some(&other))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_bodies_are_422_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.register("keys-bad@example.com").await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (
            json!({"name": "ci", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"name": "ci", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"expires_at": null}), "name"),
    ] {
        let res = app
            .post("/api/v1/api-keys", body.clone(), Some(&ada.access))
            .await;
        assert_eq!(res.invalid_fields(), [field], "{body}");
    }
    app.post("/api/v1/api-keys", json!({"name": "ci"}), None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/api-keys", Some(&ada.access)).await.json()["items"],
        json!([])
    );
}

async fn new_key(app: &TestApp, access: &str) -> String {
    let res = app
        .post("/api/v1/api-keys", json!({"name": "k"}), Some(access))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()["key"].as_str().unwrap().to_string()
}

/// A key calls models and reads and writes its owner's data; it cannot manage keys, change the
/// profile or password, log out, or act as admin, even the admin's own key.
#[tokio::test]
async fn a_key_stays_in_its_lane() {
    let app = TestApp::with_env(&[("BOOTSTRAP_ADMIN_EMAIL", "keys-admin@example.com")]).await;
    let admin = app.register("keys-admin@example.com").await;
    let key = new_key(&app, &admin.access).await;

    // What a key is for.
    assert_eq!(
        app.get("/api/v1/users/me", Some(&key)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.chat(&key, json!({"message": "hi"}), None).await.status,
        StatusCode::OK
    );

    // What it is not: each a 403 problem, nothing changed.
    let refused = [
        app.post("/api/v1/api-keys", json!({"name": "more"}), Some(&key))
            .await,
        app.get("/api/v1/api-keys", Some(&key)).await,
        app.delete(
            "/api/v1/api-keys/01890a5d-ac96-774b-bcce-b302099a8057",
            Some(&key),
        )
        .await,
        app.patch(
            "/api/v1/users/me",
            json!({"display_name": "Owned"}),
            Some(&key),
        )
        .await,
        app.post(
            "/api/v1/auth/logout",
            json!({"refresh_token": admin.refresh}),
            Some(&key),
        )
        .await,
        app.post("/api/v1/auth/logout-all", json!({}), Some(&key))
            .await,
        app.get("/api/v1/admin/users", Some(&key)).await,
        app.get("/api/v1/admin/audit", Some(&key)).await,
    ];
    for res in refused {
        let p = res.problem(StatusCode::FORBIDDEN);
        assert!(p["detail"].as_str().unwrap().contains("API key"), "{p}");
    }
    let me = app
        .get("/api/v1/users/me", Some(&admin.access))
        .await
        .json();
    assert_ne!(me["display_name"], "Owned");
    let keys = app
        .get("/api/v1/api-keys", Some(&admin.access))
        .await
        .json();
    assert_eq!(keys["items"].as_array().unwrap().len(), 1, "{keys}");
    // The session it could not end is still live; the admin routes answer the session.
    assert_eq!(
        app.get("/api/v1/admin/users", Some(&admin.access))
            .await
            .status,
        StatusCode::OK
    );
}

/// "Log out everywhere" and a password change end every key too.
#[tokio::test]
async fn logging_out_everywhere_and_a_new_password_revoke_every_key() {
    let app = TestApp::spawn().await;
    let ada = app.register("keys-revoked@example.com").await;
    let key = new_key(&app, &ada.access).await;
    let res = app
        .post("/api/v1/auth/logout-all", json!({}), Some(&ada.access))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    app.get("/api/v1/users/me", Some(&key))
        .await
        .problem(StatusCode::UNAUTHORIZED);

    let again = app
        .login("keys-revoked@example.com", codechat_api_tests::PASSWORD)
        .await
        .json();
    let access = again["access_token"].as_str().unwrap().to_string();
    let key = new_key(&app, &access).await;
    let res = app
        .patch(
            "/api/v1/users/me",
            json!({"current_password": codechat_api_tests::PASSWORD, "new_password": "a brand new passphrase"}),
            Some(&access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    app.get("/api/v1/users/me", Some(&key))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let relogged = app
        .login("keys-revoked@example.com", "a brand new passphrase")
        .await
        .json();
    let keys = app
        .get("/api/v1/api-keys", relogged["access_token"].as_str())
        .await
        .json();
    assert_eq!(keys["items"], json!([]), "{keys}");
}

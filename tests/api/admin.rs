//! The admin console: the role comes from the stored account, user management with the last-admin
//! guard, reading any conversation, the usage report, and the audit log.

use axum::http::StatusCode;
use base64::Engine;
use codechat_api_tests::{TestApp, Tokens, JWT_SECRET};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const ADMIN: &str = "root@example.com";

async fn admin_app() -> (TestApp, Tokens) {
    let app = TestApp::with_env(&[("BOOTSTRAP_ADMIN_EMAIL", ADMIN)]).await;
    let admin = app.register(ADMIN).await;
    assert_eq!(admin.user["role"], "admin");
    (app, admin)
}

/// `token`'s own claims with `role: admin`, signed with the service's real key: a valid token whose
/// claim lies (as a stale one would after a demotion).
fn with_admin_claim(token: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
    claims["role"] = json!("admin");
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn admin_routes_need_the_stored_admin_role() {
    let (app, admin) = admin_app().await;
    let user = app.register("plain@example.com").await;
    let uid = id(&user.user);
    let routes = [
        "/api/v1/admin/users".to_string(),
        format!("/api/v1/admin/users/{uid}/conversations"),
        format!("/api/v1/admin/conversations/{uid}/messages"),
        "/api/v1/admin/usage".to_string(),
        "/api/v1/admin/audit".to_string(),
    ];
    let forged = with_admin_claim(&user.access);
    assert_eq!(
        app.me(&forged).await.status,
        StatusCode::OK,
        "a valid token"
    );
    for route in &routes {
        app.get(route, None).await.problem(StatusCode::UNAUTHORIZED);
        app.get(route, Some(&user.access))
            .await
            .problem(StatusCode::FORBIDDEN);
        app.get(route, Some(&forged))
            .await
            .problem(StatusCode::FORBIDDEN);
    }
    let patch = format!("/api/v1/admin/users/{uid}");
    app.patch(&patch, json!({"role": "admin"}), Some(&forged))
        .await
        .problem(StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&patch.replace("/admin", ""), Some(&admin.access))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "no such public route"
    );
    let res = app.get("/api/v1/admin/users", Some(&admin.access)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // The forged attempt changed nothing.
    let me = app.me(&user.access).await.json();
    assert_eq!(me["role"], "user");
}

#[tokio::test]
async fn admins_manage_users_with_the_last_admin_guard_and_effects_at_once() {
    let (app, admin) = admin_app().await;
    let bo = app.register("bo@example.com").await;
    let cy = app.register("cy@example.com").await;
    let bo_url = format!("/api/v1/admin/users/{}", id(&bo.user));
    let cy_url = format!("/api/v1/admin/users/{}", id(&cy.user));
    let me_url = format!("/api/v1/admin/users/{}", id(&admin.user));

    // List, filters and pages.
    let all = app
        .get("/api/v1/admin/users", Some(&admin.access))
        .await
        .json();
    let emails: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["cy@example.com", "bo@example.com", ADMIN]);
    assert_eq!(all["items"][0]["daily_token_limit"], Value::Null);
    let found = app
        .get("/api/v1/admin/users?q=BO%40", Some(&admin.access))
        .await
        .json();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let admins = app
        .get("/api/v1/admin/users?role=admin", Some(&admin.access))
        .await
        .json();
    assert_eq!(admins["items"][0]["email"], ADMIN);
    let page = app
        .get("/api/v1/admin/users?limit=2", Some(&admin.access))
        .await
        .json();
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/api/v1/admin/users?limit=2&cursor={cursor}"),
            Some(&admin.access),
        )
        .await
        .json();
    assert_eq!(rest["items"][0]["email"], ADMIN);
    let res = app
        .get(
            "/api/v1/admin/users?role=root&active=maybe",
            Some(&admin.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["role", "active"]);

    // Bad changes are refused and change nothing.
    let res = app
        .patch(
            &bo_url,
            json!({"daily_token_limit": -1}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["daily_token_limit"]);
    app.patch(&bo_url, json!({"role": "root"}), Some(&admin.access))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.patch(
        "/api/v1/admin/users/0190d6b2-0000-7000-8000-000000000000",
        json!({"is_active": false}),
        Some(&admin.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    // The only admin can neither demote nor deactivate themself.
    for change in [json!({"role": "user"}), json!({"is_active": false})] {
        let res = app.patch(&me_url, change, Some(&admin.access)).await;
        res.problem(StatusCode::CONFLICT);
    }

    // A promotion opens the console on bo's very next request, with the token bo already has.
    let res = app
        .patch(
            &bo_url,
            json!({"role": "admin", "daily_token_limit": 5000}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["role"], "admin");
    assert_eq!(res.json()["daily_token_limit"], 5000);
    assert_eq!(
        app.get("/api/v1/admin/users", Some(&bo.access))
            .await
            .status,
        StatusCode::OK
    );
    // `null` gives the default budget back; absent fields stay.
    let res = app
        .patch(
            &bo_url,
            json!({"daily_token_limit": null}),
            Some(&admin.access),
        )
        .await
        .json();
    assert_eq!(res["daily_token_limit"], Value::Null);
    assert_eq!(res["role"], "admin");

    // Now root may step down; bo is the last admin and demotes root... and cannot leave himself.
    let res = app
        .patch(&me_url, json!({"role": "user"}), Some(&admin.access))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    app.get("/api/v1/admin/users", Some(&admin.access))
        .await
        .problem(StatusCode::FORBIDDEN);
    app.patch(&bo_url, json!({"is_active": false}), Some(&bo.access))
        .await
        .problem(StatusCode::CONFLICT);

    // Deactivation ends cy's sessions at once; reactivation lets cy log in again.
    assert_eq!(app.me(&cy.access).await.status, StatusCode::OK);
    let res = app
        .patch(&cy_url, json!({"is_active": false}), Some(&bo.access))
        .await;
    assert_eq!(res.json()["is_active"], false);
    app.me(&cy.access).await.problem(StatusCode::UNAUTHORIZED);
    let inactive = app
        .get("/api/v1/admin/users?active=false", Some(&bo.access))
        .await
        .json();
    assert_eq!(inactive["items"][0]["email"], "cy@example.com");
    app.patch(&cy_url, json!({"is_active": true}), Some(&bo.access))
        .await;
    assert_eq!(
        app.login("cy@example.com", codechat_api_tests::PASSWORD)
            .await
            .status,
        StatusCode::OK
    );

    // Every admin action is in the audit log: who, what, which target, when.
    let audit = app
        .get("/api/v1/admin/audit", Some(&bo.access))
        .await
        .json();
    let entries = audit["items"].as_array().unwrap();
    let updates: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["action"] == "user.update")
        .map(|e| {
            (
                e["actor_id"].as_str().unwrap(),
                e["target_id"].as_str().unwrap(),
            )
        })
        .collect();
    let (root, bo_id, cy_id) = (id(&admin.user), id(&bo.user), id(&cy.user));
    assert_eq!(
        updates,
        [
            (bo_id.as_str(), cy_id.as_str()),
            (bo_id.as_str(), cy_id.as_str()),
            (root.as_str(), root.as_str()),
            (root.as_str(), bo_id.as_str()),
            (root.as_str(), bo_id.as_str()),
        ],
        "newest first; refused changes are not actions"
    );
    let promotion = entries
        .iter()
        .filter(|e| e["action"] == "user.update")
        .nth(4)
        .unwrap();
    assert_eq!(promotion["details"]["role"], "admin");
    assert_eq!(promotion["details"]["daily_token_limit"], 5000);
    assert!(promotion["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(entries.iter().any(|e| e["action"] == "users.list"));
}

#[tokio::test]
async fn admins_read_any_conversation_and_are_audited() {
    let (app, admin) = admin_app().await;
    let user = app.register("talker@example.com").await;
    let turn = app
        .chat(&user.access, json!({"message": "a private question"}), None)
        .await
        .json();
    let cid = turn["conversation_id"].as_str().unwrap();
    let uid = id(&user.user);

    let convs = app
        .get(
            &format!("/api/v1/admin/users/{uid}/conversations"),
            Some(&admin.access),
        )
        .await
        .json();
    assert_eq!(convs["items"][0]["id"], cid);
    let messages = app
        .get(
            &format!("/api/v1/admin/conversations/{cid}/messages?limit=1"),
            Some(&admin.access),
        )
        .await
        .json();
    assert_eq!(messages["items"][0]["content"], "a private question");
    assert!(messages["next_cursor"].is_string());
    for missing in [
        "/api/v1/admin/users/0190d6b2-0000-7000-8000-000000000000/conversations",
        "/api/v1/admin/conversations/0190d6b2-0000-7000-8000-000000000000/messages",
        "/api/v1/admin/conversations/nope/messages",
    ] {
        app.get(missing, Some(&admin.access))
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    let audit = app
        .get("/api/v1/admin/audit", Some(&admin.access))
        .await
        .json();
    let reads: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            ("conversation.messages.read", cid),
            ("user.conversations.read", uid.as_str())
        ]
    );
    // Reading the log is itself in the log, from the next read on.
    let audit = app
        .get("/api/v1/admin/audit", Some(&admin.access))
        .await
        .json();
    assert_eq!(audit["items"][0]["action"], "audit.read", "{audit}");
    assert_eq!(audit["items"][0]["actor_id"], admin.user["id"], "{audit}");
}

#[tokio::test]
async fn the_usage_report_sums_the_usage_rows_by_user_model_and_day() {
    let (app, admin) = admin_app().await;
    let a = app.register("ann@example.com").await;
    let b = app.register("ben@example.com").await;
    let mut expected = std::collections::BTreeMap::<String, (i64, i64, i64)>::new();
    let mut today = String::new();
    for (t, message) in [(&a, "one"), (&a, "two words"), (&b, "three words here")] {
        let turn = app
            .chat(&t.access, json!({"message": message}), None)
            .await
            .json();
        let u = &turn["usage"];
        today = turn["assistant_message"]["created_at"].as_str().unwrap()[..10].to_string();
        let e = expected.entry(id(&t.user)).or_default();
        e.0 += 1;
        e.1 += u["input_tokens"].as_i64().unwrap();
        e.2 += u["output_tokens"].as_i64().unwrap();
    }
    let report = app
        .get("/api/v1/admin/usage?group_by=user", Some(&admin.access))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let report = report.json();
    let got: std::collections::BTreeMap<String, (i64, i64, i64)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                (
                    g["calls"].as_i64().unwrap(),
                    g["input_tokens"].as_i64().unwrap(),
                    g["output_tokens"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let ann = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == a.user["id"])
        .unwrap();
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(report["total"]["calls"], 3);

    let by_model = app
        .get("/api/v1/admin/usage?group_by=model", Some(&admin.access))
        .await
        .json();
    assert_eq!(by_model["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_model["items"][0]["key"], "local/echo");
    assert_eq!(by_model["items"][0]["cost_usd"], 0.0);
    let by_day = app
        .get(
            &format!("/api/v1/admin/usage?group_by=day&from={today}&to={today}"),
            Some(&admin.access),
        )
        .await
        .json();
    assert_eq!(by_day["items"][0]["key"], today.as_str());
    assert_eq!(by_day["items"][0]["calls"], 3);
    let before = app
        .get(
            "/api/v1/admin/usage?from=2020-01-01&to=2020-12-31",
            Some(&admin.access),
        )
        .await
        .json();
    assert_eq!(before["items"], json!([]));
    assert_eq!(before["total"]["calls"], 0);

    // Whole days (the rollup) and a window ending now (the rows) agree, also after a conversation
    // and its usage rows are deleted.
    let calls = |report: Value| report["total"]["calls"].as_i64().unwrap();
    let whole_day = format!("/api/v1/admin/usage?from={today}&to={today}");
    let to_now = "/api/v1/admin/usage";
    assert_eq!(calls(app.get(to_now, Some(&admin.access)).await.json()), 3);
    let ben_conversation = app
        .get("/api/v1/conversations", Some(&b.access))
        .await
        .json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.delete(
        &format!("/api/v1/conversations/{ben_conversation}"),
        Some(&b.access),
    )
    .await;
    for url in [whole_day.as_str(), to_now] {
        let report = app.get(url, Some(&admin.access)).await.json();
        assert_eq!(calls(report.clone()), 2, "{url}: {report}");
    }

    for (query, fields) in [
        ("group_by=week", vec!["group_by"]),
        ("from=yesterday", vec!["from"]),
        ("from=2026-02-30", vec!["from"]),
        ("to=2026-01-01T25:00:00Z", vec!["to"]),
        ("from=2026-03-02&to=2026-03-01", vec!["to"]),
        ("from=2024-01-01&to=2026-01-01", vec!["from"]),
        ("group_by=hour&from=nope", vec!["group_by", "from"]),
    ] {
        let res = app
            .get(&format!("/api/v1/admin/usage?{query}"), Some(&admin.access))
            .await;
        assert_eq!(res.invalid_fields(), fields, "{query}");
    }
}

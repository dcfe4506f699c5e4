//! Admins change catalog entries at run time: `GET /admin/models`, `PATCH /admin/models/{id}`,
//! stored in libSQL, audited, checked against the whole catalog, and in force for new turns on
//! every instance within about a second.

use axum::http::StatusCode;
use codechat_api_tests::{eventually, TestApp, Tokens};
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "models-admin@example.com";

/// Two instances of the API over one store, an admin, and an OpenAI key (so the OpenAI models are
/// available; no call is made).
async fn two_instances() -> (TestApp, TestApp, Tokens) {
    let env = [
        ("BOOTSTRAP_ADMIN_EMAIL", ADMIN),
        ("OPENAI_API_KEY", "sk-test"),
    ];
    let a = TestApp::with_env(&env).await;
    let data_dir = a.data_dir().display().to_string();
    let mut shared = env.to_vec();
    shared.push(("CODECHAT_DATA_DIR", &data_dir));
    let b = TestApp::with_env(&shared).await;
    let admin = a.register(ADMIN).await;
    assert_eq!(admin.user["role"], "admin");
    (a, b, admin)
}

/// The `models` function as it runs: its own process's state, without the store or secrets, over
/// `app`'s data directory (its blob store).
async fn models_function(app: &TestApp) -> axum::Router {
    let data_dir = app.data_dir().display().to_string();
    let config = codechat::config::Config::load_for(codechat::config::Needs::Static, |k| match k {
        "CODECHAT_DATA_DIR" => Some(data_dir.clone()),
        "OPENAI_API_KEY" => Some("sk-test".into()),
        _ => None,
    })
    .await
    .unwrap();
    let state = codechat::AppState::new(config).await.unwrap();
    codechat::http::app(state, codechat::api::models::routes())
}

fn model<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {list}"))
}

const NANO: &str = "/api/v1/admin/models/openai%2Fgpt-4.1-nano";

#[tokio::test]
async fn a_change_on_one_instance_holds_on_another_within_a_second() {
    let (a, b, admin) = two_instances().await;
    let user = b.register("models-user@example.com").await;
    let create = |model: &'static str| {
        let b = &b;
        let token = user.access.clone();
        async move {
            b.post(
                "/api/v1/conversations",
                json!({"model": model}),
                Some(&token),
            )
            .await
            .status
        }
    };
    assert_eq!(create("openai/gpt-4.1-nano").await, StatusCode::CREATED);

    // Hidden on instance A: instance B refuses it for new conversations within about a second.
    let res = a
        .patch(NANO, json!({"enabled": false}), Some(&admin.access))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["enabled"], false);
    assert!(
        eventually(|| async {
            create("openai/gpt-4.1-nano").await == StatusCode::UNPROCESSABLE_ENTITY
        })
        .await,
        "instance B still takes the hidden model"
    );

    // The models function, which has no store, stops listing it too (from the published copy).
    let listed = |models: &axum::Router| {
        let models = models.clone();
        async move {
            let res = models
                .oneshot(
                    axum::http::Request::get("/api/v1/models")
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let list: Value = serde_json::from_slice(&body).unwrap();
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == "openai/gpt-4.1-nano")
        }
    };
    let models = models_function(&a).await;
    assert!(
        eventually(|| async { !listed(&models).await }).await,
        "the models function still lists the hidden model"
    );

    // A price change on A bills B's next turns at the new price.
    let res = a
        .patch(
            "/api/v1/admin/models/local%2Fecho",
            json!({"pricing": {"input_per_mtok_usd": 1000.0, "output_per_mtok_usd": 2000.0}}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let billed = || async {
        let turn = b
            .chat(
                &user.access,
                json!({"message": "price check", "model": "local/echo"}),
                None,
            )
            .await
            .json();
        let u = &turn["usage"];
        let expected = (u["input_tokens"].as_f64().unwrap() * 1000.0
            + u["output_tokens"].as_f64().unwrap() * 2000.0)
            / 1e6;
        (u["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-9 && expected > 0.0
    };
    assert!(
        eventually(billed).await,
        "instance B bills at the new price"
    );

    // The admin's view: every model, the hidden one too, with what admins changed.
    let list = b.get("/api/v1/admin/models", Some(&admin.access)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let list = list.json();
    let nano = model(&list, "openai/gpt-4.1-nano");
    assert_eq!(nano["enabled"], false);
    assert_eq!(nano["admin_changes"], json!({"enabled": false}));
    let echo = model(&list, "local/echo");
    assert_eq!(echo["pricing"]["input_per_mtok_usd"], 1000.0);
    assert_eq!(echo["pricing"]["output_per_mtok_usd"], 2000.0);

    // Re-enabled: changes merge over earlier ones, and the audit log has each.
    let res = a
        .patch(NANO, json!({"enabled": true}), Some(&admin.access))
        .await;
    assert_eq!(res.json()["admin_changes"], json!({"enabled": true}));
    assert!(
        eventually(|| async { create("openai/gpt-4.1-nano").await == StatusCode::CREATED }).await
    );
    let audit = a
        .get("/api/v1/admin/audit", Some(&admin.access))
        .await
        .json();
    let updates: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "model.update")
        .collect();
    assert_eq!(updates.len(), 3, "{audit}");
    assert!(updates.iter().any(|e| e["target_id"] == "local/echo"
        && e["details"]["pricing"]["input_per_mtok_usd"] == 1000.0));
}

#[tokio::test]
async fn bad_changes_are_422_naming_each_problem_and_store_nothing() {
    let (a, _b, admin) = two_instances().await;
    let patch = |path: &'static str, body: Value| {
        let a = &a;
        let token = admin.access.clone();
        async move { a.patch(path, body, Some(&token)).await }
    };
    let ok = patch(
        "/api/v1/admin/models/openai%2Fgpt-4.1",
        json!({"fallbacks": ["openai/gpt-4.1-mini"]}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["fallbacks"], json!(["openai/gpt-4.1-mini"]));

    let cycle = patch(
        "/api/v1/admin/models/openai%2Fgpt-4.1-mini",
        json!({"fallbacks": ["openai/gpt-4.1"]}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(cycle.to_string().contains("fallbacks go round"), "{cycle}");
    let missing = patch(
        "/api/v1/admin/models/openai%2Fgpt-4.1-mini",
        json!({"fallbacks": ["nowhere/model"]}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.to_string().contains("nowhere/model"), "{missing}");
    let negative = patch(NANO, json!({"pricing": {"input_per_mtok_usd": -1.0}}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        negative.to_string().contains("pricing.input_per_mtok_usd"),
        "{negative}"
    );
    // The default model (local/echo here) cannot be hidden.
    let default = patch(
        "/api/v1/admin/models/local%2Fecho",
        json!({"enabled": false}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(default.to_string().contains("DEFAULT_MODEL"), "{default}");
    let empty = patch(NANO, json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_field = patch(NANO, json!({"display_name": "x"})).await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    patch(
        "/api/v1/admin/models/nowhere%2Fmodel",
        json!({"enabled": false}),
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    // Only the first change was stored.
    let list = a
        .get("/api/v1/admin/models", Some(&admin.access))
        .await
        .json();
    assert!(model(&list, "openai/gpt-4.1-mini")
        .get("admin_changes")
        .is_none());
    assert_eq!(
        model(&list, "openai/gpt-4.1")["admin_changes"],
        json!({"fallbacks": ["openai/gpt-4.1-mini"]})
    );
}

#[tokio::test]
async fn only_admins_with_a_session_change_models() {
    let (a, _b, admin) = two_instances().await;
    let user = a.register("not-admin@example.com").await;
    a.get("/api/v1/admin/models", Some(&user.access))
        .await
        .problem(StatusCode::FORBIDDEN);
    a.patch(NANO, json!({"enabled": false}), Some(&user.access))
        .await
        .problem(StatusCode::FORBIDDEN);
    // An admin's API key is not an admin session (issue 29).
    let key = a
        .post(
            "/api/v1/api-keys",
            json!({"name": "k"}),
            Some(&admin.access),
        )
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    a.patch(NANO, json!({"enabled": false}), Some(&key))
        .await
        .problem(StatusCode::FORBIDDEN);
}

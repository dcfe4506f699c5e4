//! The models catalog at run time: `MODELS_FILE` (a path, or `s3://` read at start-up) merged over
//! the built-in entries, named OpenAI-compatible providers with their own endpoints and keys, and
//! a bad file stopping start-up with every problem named.

use axum::http::StatusCode;
use codechat_api_tests::{fakes, s3::S3Server, TestApp};
use serde_json::json;
use wiremock::{
    matchers::{body_partial_json, header, method, path},
    Mock, MockServer, ResponseTemplate,
};

const GROQ_MODELS: &str = r#"[
    {"id": "openai/gpt-4o", "enabled": false},
    {"id": "openai/gpt-4.1-nano", "pricing": {"input_per_mtok_usd": 1.0}},
    {"id": "groq/llama-3.3-70b", "provider": "groq",
     "provider_model_id": "llama-3.3-70b-versatile", "display_name": "Llama 3.3 70B (Groq)",
     "context_window": 131072, "max_output_tokens": 32768,
     "pricing": {"input_per_mtok_usd": 0.59, "output_per_mtok_usd": 0.79},
     "capabilities": {"streaming": true, "vision": false, "documents": false, "tools": true}}
]"#;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_named_provider_answers_from_its_own_endpoint_with_its_own_key() {
    let groq = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/v1/chat/completions"))
        .and(header("authorization", "Bearer gsk-test"))
        .and(body_partial_json(
            json!({"model": "llama-3.3-70b-versatile"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::openai_completion(
                "From Groq.",
                1000,
                200,
                0,
            )),
        )
        .expect(1)
        .mount(&groq)
        .await;
    let openai = MockServer::start().await;
    let files = tempfile::tempdir().unwrap();
    let providers = format!(
        r#"[{{"name": "groq", "base_url": "{}/openai/v1", "api_key_env": "GROQ_KEY"}}]"#,
        groq.uri()
    );
    let providers_file = write(&files, "providers.json", &providers);
    let models_file = write(&files, "models.json", GROQ_MODELS);
    let app = TestApp::with_openai_fake(
        &format!("{}/v1", openai.uri()),
        &[
            ("PROVIDERS_FILE", &providers_file),
            ("GROQ_KEY", "gsk-test"),
            ("MODELS_FILE", &models_file),
        ],
    )
    .await;
    let t = app.register("groq@example.com").await;

    let listed = app.get("/api/v1/models", Some(&t.access)).await.json();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"groq/llama-3.3-70b") && ids.contains(&"openai/gpt-4.1-nano"));
    assert!(!ids.contains(&"openai/gpt-4o"), "hidden by the file");
    let groq_entry = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "groq/llama-3.3-70b")
        .unwrap();
    assert_eq!(groq_entry["provider"], "groq");
    assert_eq!(groq_entry["available"], true);

    let res = app
        .chat(
            &t.access,
            json!({"message": "hi", "model": "groq/llama-3.3-70b"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    assert_eq!(turn["assistant_message"]["content"], "From Groq.");
    assert_eq!(turn["assistant_message"]["model"], "groq/llama-3.3-70b");
    let expected = (1000.0 * 0.59 + 200.0 * 0.79) / 1e6;
    let cost = turn["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - expected).abs() < 1e-12,
        "priced from the file: {cost}"
    );
    assert!(
        openai.received_requests().await.unwrap().is_empty(),
        "the default OpenAI endpoint is not called for a Groq model"
    );

    let hidden = app
        .chat(
            &t.access,
            json!({"message": "hi", "model": "openai/gpt-4o"}),
            None,
        )
        .await;
    assert_eq!(hidden.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(hidden.text().contains("unknown model"), "{}", hidden.text());
}

#[tokio::test]
async fn the_models_file_is_read_from_s3_at_start_up() {
    let s3 = S3Server::start().await;
    let client = s3.client().await;
    let overlay = r#"[{"id": "openai/gpt-4.1-mini", "display_name": "Mini, from S3"}]"#;
    client
        .put_object()
        .bucket(codechat_api_tests::s3::BUCKET)
        .key("config/models.json")
        .body(overlay.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let source = format!("s3://{}/config/models.json", codechat_api_tests::s3::BUCKET);
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("MODELS_FILE", source));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::with_env(&env).await;
    let listed = app.get("/api/v1/models", None).await.json();
    let mini = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "openai/gpt-4.1-mini")
        .unwrap()
        .clone();
    assert_eq!(mini["display_name"], "Mini, from S3");
}

/// A file with problems stops start-up with one error naming each; a missing file or object is
/// said as such.
#[tokio::test]
async fn a_bad_models_file_stops_start_up_naming_each_problem() {
    let files = tempfile::tempdir().unwrap();
    let bad = write(
        &files,
        "models.json",
        r#"[{"id": "openai/gpt-4o-mini", "provider": "grok"},
            {"id": "openai/gpt-4.1", "fallbacks": ["nowhere/model"]}]"#,
    );
    let data = tempfile::tempdir().unwrap();
    let start = |models_file: String| {
        let data_dir = data.path().display().to_string();
        async move {
            let config = codechat::config::Config::load(move |k| match k {
                "CODECHAT_DATA_DIR" => Some(data_dir.clone()),
                "JWT_SECRET" => Some("x".repeat(32)),
                "MODELS_FILE" => Some(models_file.clone()),
                _ => None,
            })
            .await
            .unwrap();
            codechat::AppState::new(config)
                .await
                .err()
                .unwrap()
                .to_string()
        }
    };
    let err = start(bad).await;
    assert!(err.starts_with("MODELS_FILE: "), "{err}");
    assert!(err.contains("provider `grok`"), "{err}");
    assert!(
        err.contains("fallback `nowhere/model` is not a model"),
        "{err}"
    );
    let missing = start(files.path().join("absent.json").display().to_string()).await;
    assert!(
        missing.contains("MODELS_FILE could not be read") && missing.contains("absent.json"),
        "{missing}"
    );
}

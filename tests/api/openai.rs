//! The OpenAI-compatible endpoint: Chat Completions and models in OpenAI's wire shapes (the
//! documented `chat.completion`, `chat.completion.chunk` and list objects, and its error shape),
//! authenticated with an API key or an access token, billed and stored like any turn.

use axum::http::StatusCode;
use codechat_api_tests::{TestApp, Tokens};
use serde_json::{json, Value};

const BASE: &str = "/api/v1/openai/v1";

async fn key_for(app: &TestApp, user: &Tokens) -> String {
    let res = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "sdk"}),
            Some(&user.access),
        )
        .await;
    res.json()["key"].as_str().unwrap().to_string()
}

fn openai_error(res: &codechat_api_tests::TestResponse, status: StatusCode) -> Value {
    assert_eq!(res.status, status, "{}", res.text());
    let body = res.json();
    let error = &body["error"];
    assert!(
        error["message"].is_string() && error["type"].is_string(),
        "{body}"
    );
    assert!(
        error.get("code").is_some() && error.get("param").is_some(),
        "{body}"
    );
    error.clone()
}

#[tokio::test]
async fn models_are_listed_in_openai_shape_for_keys_and_tokens() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-models@example.com").await;
    let key = key_for(&app, &ada).await;
    for credential in [&key, &ada.access] {
        let res = app.get(&format!("{BASE}/models"), Some(credential)).await;
        assert_eq!(res.status, StatusCode::OK);
        let list = res.json();
        assert_eq!(list["object"], "list");
        let echo = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "local/echo")
            .expect("local/echo");
        assert_eq!(
            (echo["object"].as_str(), echo["owned_by"].as_str()),
            (Some("model"), Some("local"))
        );
        assert!(echo["created"].is_i64());
    }
    let err = openai_error(
        &app.get(&format!("{BASE}/models"), None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(err["code"], "invalid_api_key");
}

#[tokio::test]
async fn a_completion_is_a_billed_turn_stored_out_of_the_app_list() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-completion@example.com").await;
    let key = key_for(&app, &ada).await;
    let res = app
        .post(
            &format!("{BASE}/chat/completions"),
            json!({
                "model": "local/echo",
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Earlier question"},
                    {"role": "assistant", "content": "Earlier answer"},
                    {"role": "user", "content": [{"type": "text", "text": "Say hello to the SDK"}]}
                ],
                "temperature": 0.2,
                "max_completion_tokens": 200,
                "user": "someone",
                "n": 1
            }),
            Some(&key),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let c = res.json();
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "local/echo");
    assert!(c["created"].is_i64());
    let choice = &c["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.contains("Say hello to the SDK"), "{content}");
    let usage = &c["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_i64().unwrap(),
        usage["completion_tokens"].as_i64().unwrap(),
    );
    assert!(prompt > 0 && completion > 0);
    assert_eq!(usage["total_tokens"].as_i64().unwrap(), prompt + completion);

    // Stored as a conversation marked as the API's: out of the default list, in ?source=api, and
    // billed like any turn.
    let app_list = app
        .get("/api/v1/conversations", Some(&ada.access))
        .await
        .json();
    assert_eq!(app_list["items"], json!([]));
    let api_list = app
        .get("/api/v1/conversations?source=api", Some(&ada.access))
        .await
        .json();
    let id = api_list["items"][0]["id"].as_str().unwrap().to_string();
    let messages = app.messages(&ada.access, &id).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["content"], content);
    let billed = app
        .get(
            &format!("/api/v1/conversations/{id}/usage"),
            Some(&ada.access),
        )
        .await
        .json();
    assert_eq!(
        billed["total"]["output_tokens"].as_i64().unwrap(),
        completion
    );
    app.get("/api/v1/conversations?source=elsewhere", Some(&ada.access))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_streamed_completion_is_chunks_then_usage_then_done() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-stream@example.com").await;
    let res = app
        .post(
            &format!("{BASE}/chat/completions"),
            json!({"model": "local/echo", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "Stream these words to me"}]}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data: Vec<String> = res
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .collect();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.contains("Stream these words to me"), "{text}");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_i64().unwrap() > 0);
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
}

#[tokio::test]
async fn bad_requests_and_refusals_use_openais_error_shape() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-errors@example.com").await;
    let key = key_for(&app, &ada).await;
    let path = format!("{BASE}/chat/completions");
    let user = |text: &str| json!([{"role": "user", "content": text}]);
    let cases = [
        (
            json!({"model": "nope/none", "messages": user("hi")}),
            StatusCode::NOT_FOUND,
            "model",
            Some("model_not_found"),
        ),
        (
            json!({"messages": user("hi")}),
            StatusCode::BAD_REQUEST,
            "model",
            None,
        ),
        (
            json!({"model": "local/echo"}),
            StatusCode::BAD_REQUEST,
            "messages",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "assistant", "content": "x"}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].role",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "n": 2}),
            StatusCode::BAD_REQUEST,
            "n",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "tools": [{"type": "function", "function": {"name": "f"}}]}),
            StatusCode::BAD_REQUEST,
            "tools",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "temperature": 3}),
            StatusCode::BAD_REQUEST,
            "temperature",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].content",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": "hi"}),
            StatusCode::BAD_REQUEST,
            "messages",
            None,
        ),
    ];
    for (body, status, param, code) in cases {
        let err = openai_error(&app.post(&path, body.clone(), Some(&key)).await, status);
        assert_eq!(err["param"], param, "{body}: {err}");
        if let Some(code) = code {
            assert_eq!(err["code"], code);
        }
    }
    let req = axum::http::Request::post(&path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let res = app.send(req).await;
    openai_error(&res, StatusCode::BAD_REQUEST);
    // Nothing was stored by any of them.
    let api_list = app
        .get("/api/v1/conversations?source=api", Some(&ada.access))
        .await
        .json();
    assert_eq!(api_list["items"], json!([]));

    // A deleted key is refused at once.
    let keys = app.get("/api/v1/api-keys", Some(&ada.access)).await.json();
    let id = keys["items"][0]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/api-keys/{id}"), Some(&ada.access))
        .await;
    let err = openai_error(
        &app.post(
            &path,
            json!({"model": "local/echo", "messages": user("hi")}),
            Some(&key),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(err["code"], "invalid_api_key");
}

#[tokio::test]
async fn a_budget_refusal_is_a_429_with_retry_after() {
    let app = TestApp::with_env(&[("DEFAULT_DAILY_TOKEN_LIMIT", "0")]).await;
    let ada = app.register("openai-quota@example.com").await;
    let res = app
        .post(
            &format!("{BASE}/chat/completions"),
            json!({"model": "local/echo", "messages": [{"role": "user", "content": "hi"}]}),
            Some(&ada.access),
        )
        .await;
    let err = openai_error(&res, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err["code"], "insufficient_quota");
    assert!(res.headers.get("retry-after").is_some());
}

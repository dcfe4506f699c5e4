//! The OpenAI-compatible endpoint: Chat Completions and models in OpenAI's wire shapes (the
//! documented `chat.completion`, `chat.completion.chunk` and list objects, and its error shape),
//! authenticated with an API key or an access token, billed and stored like any turn.

use axum::http::StatusCode;
use codechat_api_tests::{TestApp, Tokens};
use serde_json::{json, Value};

const BASE: &str = "/api/v1/openai/v1";

/// The start of a PNG file: what an image part's bytes are checked against.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

fn image_url(media_type: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A streamed completion's `chat.completion.chunk` objects, checked to end with `data: [DONE]`.
fn stream_chunks(res: &codechat_api_tests::TestResponse) -> Vec<Value> {
    let data: Vec<String> = res
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .collect();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn weather() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }})
}

fn call(id: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}})
}

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
    let chunks = stream_chunks(&res);
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
            json!({"model": "local/echo", "messages": user("hi"), "tools": [{"type": "function", "function": {"name": "no spaces"}}]}),
            StatusCode::BAD_REQUEST,
            "tools[0].function.name",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "tools": [{"type": "retrieval"}]}),
            StatusCode::BAD_REQUEST,
            "tools[0].type",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "tools": [weather(), weather()]}),
            StatusCode::BAD_REQUEST,
            "tools[1].function.name",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "tools": vec![weather(); 129]}),
            StatusCode::BAD_REQUEST,
            "tools",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [
                {"role": "user", "content": "hi", "tool_calls": [call("call_1", "{}")]}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].tool_calls",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [
                {"role": "assistant", "content": null, "tool_calls": [call("call_1", "{}")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}),
            StatusCode::BAD_REQUEST,
            "messages",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_url("image/bmp", PNG)}}]}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].content[0]",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "tool_choice": "required"}),
            StatusCode::BAD_REQUEST,
            "tool_choice",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": user("hi"), "tools": [weather()],
                   "tool_choice": {"type": "function", "function": {"name": "other"}}}),
            StatusCode::BAD_REQUEST,
            "tool_choice",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}),
            StatusCode::BAD_REQUEST,
            "messages[1].tool_call_id",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [call("call_1", "{}"), call("call_2", "{}")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}),
            StatusCode::BAD_REQUEST,
            "messages",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}}]}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].content[0]",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_url("image/jpeg", PNG)}}]}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].content[0]",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "assistant", "content": [
                {"type": "image_url", "image_url": {"url": image_url("image/png", PNG)}}]},
                {"role": "user", "content": "hi"}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].content[0]",
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
            "messages[0].content[0]",
            None,
        ),
        (
            json!({"model": "local/echo", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].content[0]",
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

#[tokio::test]
async fn client_tools_round_trip_with_the_offline_model() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-tools@example.com").await;
    let key = key_for(&app, &ada).await;
    let path = format!("{BASE}/chat/completions");
    let ask = json!({"role": "user", "content": "/tool get_weather {\"city\": \"Paris\"}"});
    let res = app
        .post(
            &path,
            json!({"model": "local/echo", "messages": [ask], "tools": [weather()], "tool_choice": "auto"}),
            Some(&key),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let c = res.json();
    let choice = &c["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    let call_id = calls[0]["id"].as_str().unwrap().to_string();

    // A tool the client did not offer is not called.
    let res = app
        .post(
            &path,
            json!({"model": "local/echo", "tools": [weather()],
                   "messages": [{"role": "user", "content": "/tool delete_everything {}"}]}),
            Some(&key),
        )
        .await;
    assert_eq!(res.json()["choices"][0]["finish_reason"], "stop");

    // The client runs the tool and sends its output back; the model answers with it.
    let res = app
        .post(
            &path,
            json!({"model": "local/echo", "tools": [weather()], "messages": [
                ask,
                choice["message"],
                {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
            ]}),
            Some(&key),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let answer = res.json();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("ok: 18C and sunny"), "{content}");

    // Both turns are stored whole: the calls with the first answer, the output as the second
    // turn's message.
    let api_list = app
        .get("/api/v1/conversations?source=api", Some(&ada.access))
        .await
        .json();
    let items = api_list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let mut stored_calls = Vec::new();
    let mut stored_outputs = Vec::new();
    for item in items {
        let messages = app
            .messages(&ada.access, item["id"].as_str().unwrap())
            .await;
        stored_calls.extend(
            messages[1]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        stored_outputs.push(messages[0]["content"].as_str().unwrap().to_string());
    }
    assert_eq!(
        stored_calls,
        vec![json!({"id": call_id, "name": "get_weather", "input": {"city": "Paris"}})]
    );
    assert!(stored_outputs
        .iter()
        .any(|m| m == &format!("[tool result {call_id}]\n18C and sunny")));
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_one_indexed_delta() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-tool-stream@example.com").await;
    let res = app
        .post(
            &format!("{BASE}/chat/completions"),
            json!({"model": "local/echo", "stream": true, "tools": [weather()],
                   "messages": [{"role": "user", "content": "/tool get_weather {\"city\": \"Oslo\"}"}]}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let chunks = stream_chunks(&res);
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(deltas.len(), 1, "{chunks:?}");
    assert_eq!(deltas[0]["index"], 0);
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert_eq!(deltas[0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn images_reach_the_offline_model_within_the_size_limit() {
    let limit = PNG.len();
    let app = TestApp::with_env(&[("MAX_CHAT_ATTACHMENT_BYTES", &limit.to_string())]).await;
    let ada = app.register("openai-images@example.com").await;
    let path = format!("{BASE}/chat/completions");
    let with_image = |bytes: &[u8]| {
        json!({"model": "local/echo", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": image_url("image/png", bytes), "detail": "low"}},
        ]}]})
    };
    let res = app.post(&path, with_image(PNG), Some(&ada.access)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let content = res.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        content.contains(&format!("image.png ({limit} bytes, image/png)")),
        "{content}"
    );
    // One byte over the limit is refused, and nothing is stored.
    let mut over = PNG.to_vec();
    over.push(0);
    let err = openai_error(
        &app.post(&path, with_image(&over), Some(&ada.access)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["param"], "messages[0].content[1]");
    let api_list = app
        .get("/api/v1/conversations?source=api", Some(&ada.access))
        .await
        .json();
    let items = api_list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let messages = app
        .messages(&ada.access, items[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(
        messages[0]["content"],
        format!("What is in this picture?\n\n[image: image/png, {limit} bytes]")
    );
}

#[tokio::test]
async fn tools_choices_tool_messages_and_images_reach_openai_as_sent() {
    use wiremock::{
        matchers::{method, path},
        Mock, MockServer, ResponseTemplate,
    };
    let server = MockServer::start().await;
    let mut upstream = codechat_api_tests::fakes::openai_completion("", 40, 12, 0);
    upstream["choices"][0]["message"] = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_up", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
    ]});
    upstream["choices"][0]["finish_reason"] = json!("tool_calls");
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(upstream))
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(&server, &[]).await;
    let ada = app.register("openai-upstream-tools@example.com").await;
    let key = key_for(&app, &ada).await;
    let png = image_url("image/png", PNG);
    let res = app
        .post(
            &format!("{BASE}/chat/completions"),
            json!({
                "model": "openai/gpt-4o-mini",
                "tools": [weather()],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "messages": [
                    {"role": "developer", "content": "Use tools."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather where this photo was taken?"},
                        {"type": "image_url", "image_url": {"url": png}},
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [call("call_1", "{\"city\":\"Paris\"}")]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                    {"role": "user", "content": "And in Rome?"},
                ],
            }),
            Some(&key),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let c = res.json();
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        c["choices"][0]["message"]["tool_calls"][0],
        json!({"id": "call_up", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}})
    );
    assert_eq!(c["usage"]["prompt_tokens"], 40);

    let sent = codechat_api_tests::fakes::sent_bodies(&server)
        .await
        .remove(0);
    assert_eq!(sent["tools"], json!([weather()]));
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(sent["stream"], false);
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Use tools."})
    );
    assert_eq!(
        messages[1]["content"],
        json!([
            {"type": "image_url", "image_url": {"url": png}},
            {"type": "text", "text": "Weather where this photo was taken?"},
        ])
    );
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "18C"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "user", "content": "And in Rome?"})
    );
}

/// `tool_choice` over Converse: `required` is `any`, a named tool is `tool`, `none` leaves the
/// tools out when no turn holds tool blocks (Converse cannot forbid calls).
#[tokio::test]
async fn tool_choices_map_to_converse_and_bedrock_tool_uses_come_back() {
    use wiremock::{
        matchers::{method, path_regex},
        Mock, MockServer, ResponseTemplate,
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tu-9", "name": "get_weather", "input": {"city": "Lima"}}}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 30, "outputTokens": 6, "totalTokens": 36},
            "metrics": {"latencyMs": 10}
        })))
        .mount(&server)
        .await;
    let app = TestApp::with_bedrock_fake(&server.uri(), &[]).await;
    let ada = app.register("openai-bedrock-tools@example.com").await;
    let path = format!("{BASE}/chat/completions");
    let choices = [
        (json!("required"), json!({"any": {}})),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            json!({"tool": {"name": "get_weather"}}),
        ),
        (json!("auto"), Value::Null),
    ];
    for (choice, _) in &choices {
        let res = app
            .post(
                &path,
                json!({"model": "bedrock/claude-sonnet-4", "tools": [weather()], "tool_choice": choice,
                       "messages": [{"role": "user", "content": "Weather in Lima?"}]}),
                Some(&ada.access),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let c = res.json();
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            c["choices"][0]["message"]["tool_calls"][0]["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Lima\"}"})
        );
    }
    let res = app
        .post(
            &path,
            json!({"model": "bedrock/claude-sonnet-4", "tools": [weather()], "tool_choice": "none",
                   "messages": [{"role": "user", "content": "Weather in Lima?"}]}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // An image for a model that reads none is refused before any call.
    let err = openai_error(
        &app.post(
            &path,
            json!({"model": "bedrock/claude-3-5-haiku", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image_url("image/png", PNG)}}]}]}),
            Some(&ada.access),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["param"], "messages", "{err}");
    let sent = codechat_api_tests::fakes::sent_bodies(&server).await;
    assert_eq!(sent.len(), 4, "the refused image made no call");
    for (i, (_, converse)) in choices.iter().enumerate() {
        let config = &sent[i]["toolConfig"];
        assert_eq!(config["tools"][0]["toolSpec"]["name"], "get_weather");
        assert_eq!(
            config["tools"][0]["toolSpec"]["inputSchema"]["json"],
            weather()["function"]["parameters"]
        );
        assert_eq!(&config["toolChoice"], converse, "{config}");
    }
    assert_eq!(sent[3].get("toolConfig"), None, "{}", sent[3]);
}

/// The client owns its history: nothing is summarised or dropped, so messages that leave no room
/// for an answer in the model's window are refused (local/echo: 8 192 tokens), and nothing is
/// stored. Up to 128 tools are taken (129 is in the error table).
#[tokio::test]
async fn over_the_window_is_a_400_and_128_tools_are_taken() {
    let app = TestApp::spawn().await;
    let ada = app.register("openai-window@example.com").await;
    let path = format!("{BASE}/chat/completions");
    let long = "word ".repeat(8192 * 4 / 5);
    let err = openai_error(
        &app.post(
            &path,
            json!({"model": "local/echo", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": long},
                {"role": "user", "content": "and now?"}]}),
            Some(&ada.access),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["param"], "messages", "{err}");
    let api_list = app
        .get("/api/v1/conversations?source=api", Some(&ada.access))
        .await
        .json();
    assert_eq!(api_list["items"], json!([]));

    let tools: Vec<Value> = (0..128)
        .map(|i| json!({"type": "function", "function": {"name": format!("tool_{i}")}}))
        .collect();
    let res = app
        .post(
            &path,
            json!({"model": "local/echo", "tools": tools,
                   "messages": [{"role": "user", "content": "/tool tool_127 {}"}]}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "tool_127"
    );
}

/// A provider failure in a client-tool turn: bounded retries, OpenAI's error shape with a stable
/// code, and the failed answer stored after the kept user message.
#[tokio::test]
async fn a_failing_upstream_in_a_tool_turn_is_a_502_and_the_turn_is_stored() {
    use codechat_api_tests::fakes;
    use wiremock::{MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(503).set_body_json(codechat_api_tests::fakes::openai_error(
            "overloaded",
            "server_error",
        )),
    )
    .await;
    let app = TestApp::with_openai_server(&server, &[("PROVIDER_MAX_ATTEMPTS", "2")]).await;
    let ada = app.register("openai-tool-failure@example.com").await;
    let err = openai_error(
        &app.post(
            &format!("{BASE}/chat/completions"),
            json!({"model": "openai/gpt-4o-mini", "tools": [weather()],
                   "messages": [{"role": "user", "content": "Weather in Oslo?"}]}),
            Some(&ada.access),
        )
        .await,
        StatusCode::BAD_GATEWAY,
    );
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("api_error"), Some("provider_unavailable"))
    );
    assert!(!err.to_string().contains("overloaded"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    let api_list = app
        .get("/api/v1/conversations?source=api", Some(&ada.access))
        .await
        .json();
    let id = api_list["items"][0]["id"].as_str().unwrap();
    let messages = app.messages(&ada.access, id).await;
    assert_eq!(messages[0]["content"], "Weather in Oslo?");
    assert_eq!(
        (
            messages[1]["status"].as_str(),
            messages[1]["error"].as_str()
        ),
        (Some("failed"), Some("provider_unavailable"))
    );
}

/// A client's earlier call and its output reach Converse as toolUse and toolResult blocks under
/// the client's call id; with `tool_choice: "none"` the tool list still goes (Converse needs it
/// beside tool blocks), without a `toolChoice`.
#[tokio::test]
async fn a_client_tool_round_trip_reaches_converse_as_tool_blocks() {
    use wiremock::{
        matchers::{method, path_regex},
        Mock, MockServer, ResponseTemplate,
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            codechat_api_tests::fakes::bedrock_converse("It is 18C.", 30, 4),
        ))
        .mount(&server)
        .await;
    let app = TestApp::with_bedrock_fake(&server.uri(), &[]).await;
    let ada = app.register("openai-bedrock-round-trip@example.com").await;
    let res = app
        .post(
            &format!("{BASE}/chat/completions"),
            json!({"model": "bedrock/claude-sonnet-4", "tools": [weather()], "tool_choice": "none",
                   "messages": [
                       {"role": "user", "content": "Weather in Paris?"},
                       {"role": "assistant", "content": null, "tool_calls": [call("call_1", "{\"city\":\"Paris\"}")]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let c = res.json();
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["choices"][0]["message"]["content"], "It is 18C.");

    let sent = codechat_api_tests::fakes::sent_bodies(&server).await;
    assert_eq!(sent.len(), 1);
    let config = &sent[0]["toolConfig"];
    assert_eq!(config["tools"][0]["toolSpec"]["name"], "get_weather");
    assert_eq!(config.get("toolChoice"), None, "{config}");
    let messages = sent[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(
        messages[1]["content"][0]["toolUse"],
        json!({"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(
        messages[2]["content"][0]["toolResult"],
        json!({"toolUseId": "call_1", "content": [{"text": "18C"}], "status": "success"})
    );
}

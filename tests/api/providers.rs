//! The Bedrock and OpenAI-compatible providers against local fakes of their wire formats, through
//! `POST /api/v1/chat`: answers, streams, usage and cost, throttling, errors, cuts and disconnects.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use codechat_api_tests::{
    eventually,
    fakes::{self, ScriptedSse},
    read_events, request, TestApp, Tokens,
};
use serde_json::{json, Value};
use wiremock::{
    matchers::{body_partial_json, header, method, path, path_regex},
    Mock, MockServer, ResponseTemplate,
};

async fn openai_app(base_url: &str, extra: &[(&str, &str)]) -> (TestApp, Tokens) {
    let app = TestApp::with_openai_fake(base_url, extra).await;
    let t = app.register("p@example.com").await;
    (app, t)
}

async fn bedrock_app(endpoint: &str) -> (TestApp, Tokens) {
    let app = TestApp::with_bedrock_fake(endpoint, &[]).await;
    let t = app.register("b@example.com").await;
    (app, t)
}

/// The stored messages of a conversation.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn openai_answer_usage_and_cost_to_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_partial_json(
            json!({"model": "gpt-4o-mini", "stream": false}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::openai_completion(
                "Use serde_json.",
                1200,
                345,
                200,
            )),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (app, t) = openai_app(&format!("{}/v1", server.uri()), &[]).await;
    let res = app
        .chat(
            &t.access,
            json!({"message": "How to parse JSON?", "temperature": 0.2, "max_tokens": 500}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    assert_eq!(turn["assistant_message"]["content"], "Use serde_json.");
    assert_eq!(turn["assistant_message"]["model"], "openai/gpt-4o-mini");
    let u = &turn["usage"];
    assert_eq!(
        (
            u["input_tokens"].as_i64(),
            u["output_tokens"].as_i64(),
            u["cached_tokens"].as_i64()
        ),
        (Some(1200), Some(345), Some(200))
    );
    // gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per million tokens.
    let expected = (1000.0 * 0.15 + 200.0 * 0.075 + 345.0 * 0.6) / 1e6;
    assert!(close(u["cost_usd"].as_f64().unwrap(), expected), "{u}");

    let sent: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "How to parse JSON?"})
    );
    assert_eq!(sent["max_tokens"], 500);
    assert!((sent["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
}

#[tokio::test]
async fn openai_stream_with_final_usage_chunk() {
    let server = MockServer::start().await;
    let body = format!(
        "{}{}{}",
        fakes::openai_chunk("Hel"),
        fakes::openai_chunk("lo!"),
        fakes::openai_end(30, 2, 0)
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let (app, t) = openai_app(&format!("{}/v1", server.uri()), &[]).await;
    let events = app
        .chat_stream(&t.access, json!({"message": "hi"}), None)
        .await;
    let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["meta", "delta", "delta", "done"]);
    let done = &events[3].data;
    assert_eq!(done["assistant_message"]["content"], "Hello!");
    assert_eq!(done["usage"]["input_tokens"], 30);
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert!(close(
        done["usage"]["cost_usd"].as_f64().unwrap(),
        (30.0 * 0.15 + 2.0 * 0.6) / 1e6
    ));
}

#[tokio::test]
async fn openai_throttling_is_retried_with_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(fakes::openai_error(
                    "Rate limit reached",
                    "rate_limit_exceeded",
                )),
        )
        .up_to_n_times(2)
        .mount(&server)
        .await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(200).set_body_json(fakes::openai_completion(
            "third time lucky",
            10,
            3,
            0,
        )),
    )
    .await;
    let (app, t) = openai_app(&format!("{}/v1", server.uri()), &[]).await;
    let res = app.chat(&t.access, json!({"message": "hi"}), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["assistant_message"]["content"],
        "third time lucky"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn openai_persistent_5xx_is_a_502_and_the_failed_turn_is_stored() {
    let server = MockServer::start().await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(503).set_body_json(fakes::openai_error("overloaded", "server_error")),
    )
    .await;
    let (app, t) = openai_app(
        &format!("{}/v1", server.uri()),
        &[("PROVIDER_MAX_ATTEMPTS", "3")],
    )
    .await;
    let res = app
        .chat(&t.access, json!({"message": "are you there?"}), None)
        .await;
    let p = res.problem(StatusCode::BAD_GATEWAY);
    // A stable code and a generic message: the provider's own words stay in the log.
    assert_eq!(p["code"], "provider_unavailable", "{p}");
    assert!(!p.to_string().contains("overloaded"), "{p}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "bounded retries"
    );

    // The user message is kept and the failure is on the turn.
    let list = app
        .get("/api/v1/conversations", Some(&t.access))
        .await
        .json();
    let id = list["items"][0]["id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["content"], "are you there?");
    assert_eq!(msgs[1]["status"], "failed");
    assert_eq!(msgs[1]["error"], "provider_unavailable");

    // The conversation stays usable.
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": id, "message": "again", "model": "local/echo"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn openai_client_errors_are_not_retried() {
    let server = MockServer::start().await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(400).set_body_json(fakes::openai_error(
            "context too long",
            "invalid_request_error",
        )),
    )
    .await;
    let (app, t) = openai_app(&format!("{}/v1", server.uri()), &[]).await;
    let p = app
        .chat(&t.access, json!({"message": "hi"}), None)
        .await
        .problem(StatusCode::BAD_GATEWAY);
    assert_eq!(p["code"], "provider_rejected", "{p}");
    assert!(!p.to_string().contains("context too long"), "{p}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_a_504() {
    let server = MockServer::start().await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(fakes::openai_completion("late", 1, 1, 0))
            .set_delay(Duration::from_secs(5)),
    )
    .await;
    let (app, t) = openai_app(
        &format!("{}/v1", server.uri()),
        &[
            ("PROVIDER_TIMEOUT_SECONDS", "1"),
            ("PROVIDER_MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    let p = app
        .chat(&t.access, json!({"message": "hi"}), None)
        .await
        .problem(StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(p["code"], "timeout", "{p}");
}

#[tokio::test]
async fn the_first_delta_reaches_the_client_before_the_model_finishes() {
    let fake = ScriptedSse::start().await;
    let (app, t) = openai_app(&fake.base_url, &[]).await;
    let req = request(
        Method::POST,
        "/api/v1/chat",
        Some(&t.access),
        Some(json!({"message": "hi", "stream": true})),
    );
    let res = app.send_streaming(req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();

    fake.send(fakes::openai_chunk("first "));
    let events = tokio::time::timeout(Duration::from_secs(5), read_events(&mut body, 2))
        .await
        .expect("first delta in time");
    assert_eq!(events[1].event, "delta");
    assert_eq!(events[1].data["text"], "first ");
    // The model has not finished: no assistant message is stored yet.
    let id = events[0].data["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.messages(&t.access, &id).await.len(), 1);

    fake.send(fakes::openai_chunk("second"));
    fake.send(fakes::openai_end(5, 2, 0));
    let events = read_events(&mut body, 4).await;
    assert_eq!(events.last().unwrap().event, "done");
    assert_eq!(
        events.last().unwrap().data["assistant_message"]["content"],
        "first second"
    );
    assert_eq!(fake.requests.lock().unwrap()[0]["stream"], true);
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_is_an_error_event_and_keeps_the_partial_text() {
    let fake = ScriptedSse::start().await;
    let (app, t) = openai_app(&fake.base_url, &[]).await;
    fake.send(fakes::openai_chunk("partial "));
    fake.send(fakes::openai_chunk("answer"));
    let ScriptedSse { chunks, .. } = fake;
    drop(chunks); // the connection closes without [DONE]
    let events = app
        .chat_stream(&t.access, json!({"message": "hi"}), None)
        .await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(last.data["status"], 502);
    let id = events[0].data["conversation_id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs[1]["status"], "failed");
    assert_eq!(msgs[1]["content"], "partial answer");
}

/// A client that leaves does not end the turn: the model's answer runs to its end and is stored
/// with the provider's own usage (the client may resume it, `resume.rs`).
#[tokio::test]
async fn a_client_that_disconnects_leaves_the_turn_running_to_its_end() {
    let fake = ScriptedSse::start().await;
    let (app, t) = openai_app(&fake.base_url, &[]).await;
    let req = request(
        Method::POST,
        "/api/v1/chat",
        Some(&t.access),
        Some(json!({"message": "hi", "stream": true, "max_tokens": 300})),
    );
    let mut body = app.send_streaming(req).await.into_body();
    fake.send(fakes::openai_chunk("so far "));
    let events = read_events(&mut body, 2).await;
    let id = events[0].data["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(body);

    fake.send(fakes::openai_chunk("and the rest"));
    fake.send(fakes::openai_end(12, 5, 0));
    let stored = eventually(|| {
        let (app, token, id) = (&app, &t.access, &id);
        async move { app.messages(token, id).await.len() == 2 }
    })
    .await;
    assert!(stored, "the turn ended and stored its answer");
    let msgs = app.messages(&t.access, &id).await;
    assert_eq!(msgs[1]["status"], "complete");
    assert_eq!(msgs[1]["content"], "so far and the rest");
    let usage = app
        .get(
            &format!("/api/v1/messages/{}/usage", msgs[1]["id"].as_str().unwrap()),
            Some(&t.access),
        )
        .await
        .json();
    let row = &usage["items"][0];
    assert_eq!(
        (row["input_tokens"].as_i64(), row["output_tokens"].as_i64()),
        (Some(12), Some(5)),
        "{usage}"
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out() {
    let fake = ScriptedSse::start().await;
    let (app, t) = openai_app(&fake.base_url, &[("STREAM_IDLE_TIMEOUT_SECONDS", "1")]).await;
    fake.send(fakes::openai_chunk("and then silence"));
    let events = app
        .chat_stream(&t.access, json!({"message": "hi"}), None)
        .await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(last.data["status"], 504);
}

#[tokio::test]
async fn a_streamed_turn_past_its_budget_ends_incomplete_with_the_text_so_far() {
    let fake = ScriptedSse::start().await;
    // The provider keeps trickling (never idle for long) but the answer never ends.
    let (app, t) = openai_app(&fake.base_url, &[("TURN_BUDGET_SECONDS", "1")]).await;
    fake.send(fakes::openai_chunk("slow and "));
    let trickle = {
        let chunks = fake.chunks.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = chunks.send(fakes::openai_chunk("more "));
            }
        })
    };
    let events = app
        .chat_stream(&t.access, json!({"message": "take your time"}), None)
        .await;
    trickle.abort();
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!(last.data["status"], 504);
    assert_eq!(last.data["code"], "turn_budget_exceeded", "{}", last.data);
    let id = events[0].data["conversation_id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs[1]["status"], "incomplete");
    assert_eq!(msgs[1]["error"], "turn_budget_exceeded");
    assert!(msgs[1]["content"]
        .as_str()
        .unwrap()
        .starts_with("slow and more"));
    let usage = app
        .get(
            &format!("/api/v1/messages/{}/usage", msgs[1]["id"].as_str().unwrap()),
            Some(&t.access),
        )
        .await
        .json();
    assert!(
        usage["items"][0]["output_tokens"].as_i64().unwrap() > 0,
        "{usage}"
    );
}

#[tokio::test]
async fn retries_fit_the_turn_budget() {
    let server = MockServer::start().await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(503).set_body_json(fakes::openai_error("busy", "server_error")),
    )
    .await;
    // Backoff alone (1 s, 2 s, 4 s...) would outlast the budget: the turn ends at the budget.
    let (app, t) = openai_app(
        &format!("{}/v1", server.uri()),
        &[
            ("TURN_BUDGET_SECONDS", "1"),
            ("PROVIDER_MAX_ATTEMPTS", "10"),
            ("PROVIDER_RETRY_BASE_MS", "1000"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    let p = app
        .chat(&t.access, json!({"message": "hi"}), None)
        .await
        .problem(StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(p["code"], "turn_budget_exceeded", "{p}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let list = app
        .get("/api/v1/conversations", Some(&t.access))
        .await
        .json();
    let id = list["items"][0]["id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs[1]["status"], "incomplete");
}

#[tokio::test]
async fn bedrock_converse_answer_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::bedrock_converse("Bonjour", 120, 7)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (app, t) = bedrock_app(&server.uri()).await;
    let res = app
        .chat(&t.access, json!({"message": "Say hello in French"}), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    assert_eq!(turn["assistant_message"]["content"], "Bonjour");
    assert_eq!(turn["usage"]["input_tokens"], 120);
    assert_eq!(turn["usage"]["output_tokens"], 7);
    assert!(close(
        turn["usage"]["cost_usd"].as_f64().unwrap(),
        (120.0 * 3.0 + 7.0 * 15.0) / 1e6
    ));

    let sent = &server.received_requests().await.unwrap()[0];
    assert!(
        sent.url.path().contains("us.anthropic.claude-sonnet-4"),
        "{}",
        sent.url
    );
    assert!(sent
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256"));
    let body: Value = sent.body_json().unwrap();
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(
        body["messages"][0]["content"][0]["text"],
        "Say hello in French"
    );
    assert!(body["system"][0]["text"]
        .as_str()
        .unwrap()
        .contains("CodeChat"));
}

#[tokio::test]
async fn bedrock_converse_stream_frames() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse-stream$"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fakes::bedrock_stream(&["Hel", "lo", " there"], 50, 3),
            "application/vnd.amazon.eventstream",
        ))
        .mount(&server)
        .await;
    let (app, t) = bedrock_app(&server.uri()).await;
    let events = app
        .chat_stream(&t.access, json!({"message": "hi"}), None)
        .await;
    let deltas: Vec<_> = events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, ["Hel", "lo", " there"]);
    let done = events.last().unwrap();
    assert_eq!(done.event, "done", "{events:?}");
    assert_eq!(done.data["assistant_message"]["content"], "Hello there");
    assert_eq!(done.data["usage"]["input_tokens"], 50);
    assert_eq!(done.data["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn bedrock_throttling_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header(
                    "x-amzn-errortype",
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                )
                .set_body_json(
                    json!({"message": "Too many requests, please wait before trying again."}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse-stream$"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fakes::bedrock_stream(&["ok"], 5, 1),
            "application/vnd.amazon.eventstream",
        ))
        .mount(&server)
        .await;
    let (app, t) = bedrock_app(&server.uri()).await;
    let events = app
        .chat_stream(&t.access, json!({"message": "hi"}), None)
        .await;
    assert_eq!(events.last().unwrap().event, "done", "{events:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn bedrock_persistent_throttling_is_a_502() {
    let server = MockServer::start().await;
    fakes::reply_always(
        &server,
        ResponseTemplate::new(429)
            .insert_header("x-amzn-errortype", "ThrottlingException")
            .set_body_json(json!({"message": "Too many requests"})),
    )
    .await;
    let (app, t) = bedrock_app(&server.uri()).await;
    let p = app
        .chat(&t.access, json!({"message": "hi"}), None)
        .await
        .problem(StatusCode::BAD_GATEWAY);
    assert_eq!(p["code"], "provider_throttled", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("throttling"));
    assert!(!p.to_string().contains("Too many requests"), "{p}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn bedrock_model_stream_error_mid_stream() {
    let server = MockServer::start().await;
    let mut body = fakes::bedrock_event("messageStart", json!({"role": "assistant"}));
    body.extend(fakes::bedrock_event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "half an"}}),
    ));
    body.extend(fakes::bedrock_frame(
        "exception",
        ":exception-type",
        "modelStreamErrorException",
        json!({"message": "The model crashed", "originalStatusCode": 500}),
    ));
    fakes::reply_always(
        &server,
        ResponseTemplate::new(200).set_body_raw(body, "application/vnd.amazon.eventstream"),
    )
    .await;
    let (app, t) = bedrock_app(&server.uri()).await;
    let events = app
        .chat_stream(&t.access, json!({"message": "hi"}), None)
        .await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!(last.data["code"], "provider_stream_failed", "{}", last.data);
    assert!(
        !last.data.to_string().contains("The model crashed"),
        "{}",
        last.data
    );
    let id = events[0].data["conversation_id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs[1]["status"], "failed");
    assert_eq!(msgs[1]["content"], "half an");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "output had started: no retry"
    );
}

#[tokio::test]
async fn a_retry_while_the_first_attempt_runs_is_a_conflict() {
    let fake = ScriptedSse::start().await;
    let (app, t) = openai_app(&fake.base_url, &[]).await;
    let body = json!({"message": "slow one"});
    let mut req = request(
        Method::POST,
        "/api/v1/chat",
        Some(&t.access),
        Some(json!({"message": "slow one", "stream": true})),
    );
    req.headers_mut()
        .insert("idempotency-key", "busy".parse().unwrap());
    let mut stream = app.send_streaming(req).await.into_body();
    fake.send(fakes::openai_chunk("still "));
    read_events(&mut stream, 2).await;

    // The model is still answering the first attempt: the retry neither waits nor runs a second turn.
    app.chat(&t.access, body.clone(), Some("busy"))
        .await
        .problem(StatusCode::CONFLICT);

    fake.send(fakes::openai_chunk("going"));
    fake.send(fakes::openai_end(4, 2, 0));
    let events = read_events(&mut stream, 4).await;
    assert_eq!(events.last().unwrap().event, "done");
    let replayed = app.chat(&t.access, body, Some("busy")).await;
    assert_eq!(replayed.status, StatusCode::OK);
    assert_eq!(
        replayed.json()["assistant_message"]["content"],
        "still going"
    );
    assert_eq!(
        fake.requests.lock().unwrap().len(),
        1,
        "one model call for the key"
    );
}

/// Bedrock prompt caching: a model whose entry says `prompt_cache` gets a cache point after a
/// system prompt long enough to be cached and after the history before the newest turn; the
/// answer's cache reads and writes (counted apart from `inputTokens` by Bedrock) are billed at the
/// catalog's cached and cache-write rates. The Converse answer is a recorded shape.
#[tokio::test]
async fn bedrock_prompt_caching_marks_cache_points_and_prices_reads_and_writes() {
    let server = MockServer::start().await;
    let mut answer = fakes::bedrock_converse("Cached.", 50, 10);
    answer["usage"] = json!({
        "inputTokens": 50, "outputTokens": 10, "totalTokens": 6060,
        "cacheReadInputTokens": 4000, "cacheWriteInputTokens": 2000
    });
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let (app, t) = bedrock_app(&server.uri()).await;
    let agent = app
        .post(
            "/api/v1/agents",
            json!({"name": "Long rules", "model": "bedrock/claude-sonnet-4",
                   "system_prompt": "Follow the house rules. ".repeat(400)}),
            Some(&t.access),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text());
    let agent_id = agent.json()["id"].as_str().unwrap().to_string();
    let first = app
        .chat(
            &t.access,
            json!({"message": "A long question. ".repeat(600), "agent_id": agent_id}),
            None,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let turn = first.json();
    let u = &turn["usage"];
    assert_eq!(
        u["input_tokens"], 6050,
        "reads and writes are part of the input: {u}"
    );
    assert_eq!(
        (
            u["cached_tokens"].as_i64(),
            u["cache_write_tokens"].as_i64()
        ),
        (Some(4000), Some(2000))
    );
    // Claude Sonnet 4: $3 input, $0.30 cached read, $3.75 cache write, $15 output per million.
    let expected = (50.0 * 3.0 + 4000.0 * 0.3 + 2000.0 * 3.75 + 10.0 * 15.0) / 1e6;
    assert!(close(u["cost_usd"].as_f64().unwrap(), expected), "{u}");

    let conversation = turn["conversation_id"].as_str().unwrap();
    let second = app
        .chat(
            &t.access,
            json!({"message": "And a short follow-up?", "conversation_id": conversation}),
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let sent: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    let cache_point = json!({"cachePoint": {"type": "default"}});
    // First call: the long system prompt is marked; there is no history yet.
    assert_eq!(
        sent[0]["system"].as_array().unwrap().last().unwrap(),
        &cache_point
    );
    assert!(!sent[0]["messages"].to_string().contains("cachePoint"));
    // Second call: the system prompt again, and the history up to the previous answer.
    assert_eq!(
        sent[1]["system"].as_array().unwrap().last().unwrap(),
        &cache_point
    );
    let messages = sent[1]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"].as_array().unwrap().last().unwrap(),
        &cache_point
    );
    assert!(!messages[2].to_string().contains("cachePoint"));

    // A short conversation on a model without caching gets no points.
    let plain = app
        .chat(
            &t.access,
            json!({"message": "hi", "model": "bedrock/llama-3-3-70b"}),
            None,
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text());
    let last: Value = server
        .received_requests()
        .await
        .unwrap()
        .last()
        .unwrap()
        .body_json()
        .unwrap();
    assert!(!last.to_string().contains("cachePoint"), "{last}");
}

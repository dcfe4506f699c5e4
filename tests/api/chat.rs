//! Chat turns on the offline model: lifecycle, streaming, limits, idempotency, rolling summary.

use axum::http::StatusCode;
use codechat_api_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn a_turn_without_conversation_creates_and_titles_one() {
    let app = TestApp::spawn().await;
    let t = app.register("chat@example.com").await;
    let res = app
        .chat(
            &t.access,
            json!({"message": "How do I read a file in Rust?\nWith errors handled."}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    let id = turn["conversation_id"].as_str().unwrap();
    assert_eq!(turn["user_message"]["role"], "user");
    assert_eq!(turn["user_message"]["status"], "complete");
    assert_eq!(turn["assistant_message"]["role"], "assistant");
    assert_eq!(turn["assistant_message"]["status"], "complete");
    assert_eq!(turn["assistant_message"]["model"], "local/echo");
    let answer = turn["assistant_message"]["content"].as_str().unwrap();
    assert!(
        answer.starts_with("Echo (offline model") && answer.ends_with("With errors handled."),
        "{answer}"
    );
    let usage = &turn["usage"];
    assert_eq!(usage["message_id"], turn["assistant_message"]["id"]);
    assert_eq!(usage["model"], "local/echo");
    assert!(usage["input_tokens"].as_i64().unwrap() > 0);
    assert_eq!(
        usage["output_tokens"].as_i64().unwrap(),
        (answer.chars().count() as i64 + 3) / 4
    );
    assert_eq!(usage["cost_usd"], 0.0);

    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    assert_eq!(c["title"], "How do I read a file in Rust?");
    assert_eq!(c["message_count"], 2);
    assert_eq!(
        c["last_message_at"],
        turn["assistant_message"]["created_at"]
    );

    let totals = app
        .get(
            &format!("/api/v1/conversations/{id}/usage"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(totals["total"]["output_tokens"], usage["output_tokens"]);
    assert_eq!(totals["by_model"][0]["model"], "local/echo");

    // The next turn goes to the same conversation and sees the history.
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": id, "message": "And write it?"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let second = res.json();
    assert_eq!(second["conversation_id"], id);
    assert!(second["usage"]["input_tokens"].as_i64() > usage["input_tokens"].as_i64());
}

#[tokio::test]
async fn streamed_turn_sends_meta_deltas_and_done() {
    let app = TestApp::spawn().await;
    let t = app.register("stream@example.com").await;
    let events = app
        .chat_stream(
            &t.access,
            json!({"message": "stream me some words please"}),
            None,
        )
        .await;
    assert_eq!(events[0].event, "meta");
    let conversation_id = events[0].data["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(events[0].data["user_message_id"].is_string());
    let done = events.last().unwrap();
    assert_eq!(done.event, "done", "{events:?}");
    let deltas: Vec<_> = events.iter().filter(|e| e.event == "delta").collect();
    assert!(deltas.len() > 3, "word by word");
    let streamed: String = deltas
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        streamed,
        done.data["assistant_message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        done.data["usage"]["message_id"],
        done.data["assistant_message"]["id"]
    );

    // What was streamed is what was stored.
    let msgs = app
        .get(
            &format!("/api/v1/conversations/{conversation_id}/messages"),
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(msgs["items"][1]["content"].as_str().unwrap(), streamed);
    assert_eq!(msgs["items"][1]["status"], "complete");

    // `Accept: text/event-stream` asks for the same.
    let mut req = codechat_api_tests::request(
        axum::http::Method::POST,
        "/api/v1/chat",
        Some(&t.access),
        Some(json!({"conversation_id": conversation_id, "message": "again"})),
    );
    req.headers_mut()
        .insert("accept", "text/event-stream".parse().unwrap());
    let res = app.send(req).await;
    let events = codechat_api_tests::parse_sse(&res.text());
    assert_eq!(events.last().unwrap().event, "done");
}

#[tokio::test]
async fn message_length_limit_is_exact_and_stores_nothing() {
    let app = TestApp::with_env(&[("MAX_MESSAGE_CHARS", "50")]).await;
    let t = app.register("limit@example.com").await;
    let res = app
        .chat(&t.access, json!({"message": "é".repeat(50)}), None)
        .await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "50 characters is within the limit"
    );
    let res = app
        .chat(&t.access, json!({"message": "é".repeat(51)}), None)
        .await;
    assert_eq!(res.invalid_fields(), ["message"]);
    let res = app.chat(&t.access, json!({"message": "   "}), None).await;
    assert_eq!(res.invalid_fields(), ["message"]);
    let list = app
        .get("/api/v1/conversations", Some(&t.access))
        .await
        .json();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "refused turns create nothing"
    );
    assert_eq!(list["items"][0]["message_count"], 2);
}

#[tokio::test]
async fn max_tokens_is_capped_to_what_fits_beside_a_long_message() {
    let app = TestApp::spawn().await;
    let t = app.register("room@example.com").await;
    // local/echo has an 8 192-token window; 30 000 characters (~7 500 tokens) leave ~400 for the
    // answer, not the 2 048 asked for.
    let message = "word ".repeat(6000);
    let res = app
        .chat(
            &t.access,
            json!({"message": message, "max_tokens": 2048}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let answer = res.json()["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .chars()
        .count();
    assert!(answer <= 450 * 4, "{answer} characters");
    assert!(answer >= 300 * 4, "{answer} characters");
}

#[tokio::test]
async fn chat_body_over_the_limit_is_413() {
    let app = TestApp::with_env(&[("MAX_JSON_BODY_BYTES", "2000")]).await;
    let t = app.register("big@example.com").await;
    app.chat(&t.access, json!({"message": "x".repeat(3000)}), None)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.get("/api/v1/conversations", Some(&t.access))
            .await
            .json()["items"],
        json!([])
    );
}

#[tokio::test]
async fn bad_turn_parameters_are_named() {
    let app = TestApp::spawn().await;
    let t = app.register("params@example.com").await;
    let cases = [
        (json!({"message": "hi", "model": "nope/x"}), "model"),
        (
            json!({"message": "hi", "model": "bedrock/nova-lite"}),
            "model",
        ),
        (json!({"message": "hi", "temperature": 2.5}), "temperature"),
        (json!({"message": "hi", "max_tokens": 0}), "max_tokens"),
        (json!({"message": "hi", "max_tokens": 999999}), "max_tokens"),
        (json!({"message": "hi", "agent_id": "x"}), "agent_id"),
        (
            json!({"message": "hi", "attachment_ids": ["x"]}),
            "attachment_ids[0]",
        ),
        (json!({"message": 5}), "message"),
        (json!({}), "message"),
    ];
    for (body, field) in cases {
        let res = app.chat(&t.access, body.clone(), None).await;
        assert_eq!(res.invalid_fields(), [field], "{body}");
    }
    app.chat(
        &t.access,
        json!({"message": "hi", "conversation_id": "nope"}),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/conversations", Some(&t.access))
            .await
            .json()["items"],
        json!([])
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = TestApp::spawn().await;
    let t = app.register("idem@example.com").await;
    let body = json!({"message": "exactly once"});
    let first = app.chat(&t.access, body.clone(), Some("key-1")).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = app.chat(&t.access, body.clone(), Some("key-1")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.json(), second.json());
    let id = first.json()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    assert_eq!(c["message_count"], 2, "the retry added no turn");
    assert_eq!(
        app.get("/api/v1/conversations", Some(&t.access))
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A streaming retry of the same request replays it as events.
    let events = app
        .chat_stream(&t.access, body.clone(), Some("key-1"))
        .await;
    assert_eq!(
        events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["meta", "delta", "done"]
    );
    assert_eq!(
        events[2].data["assistant_message"],
        first.json()["assistant_message"]
    );

    // The same key with another request is refused; another user has their own keys.
    let res = app
        .chat(
            &t.access,
            json!({"message": "something else"}),
            Some("key-1"),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["Idempotency-Key"]);
    let other = app.register("idem2@example.com").await;
    let res = app.chat(&other.access, body.clone(), Some("key-1")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_ne!(
        res.json()["conversation_id"],
        first.json()["conversation_id"]
    );

    // A refused request frees its key for the corrected retry.
    let res = app
        .chat(
            &t.access,
            json!({"message": "x", "temperature": 9.0}),
            Some("key-2"),
        )
        .await;
    res.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .chat(
            &t.access,
            json!({"message": "x", "temperature": 1.0}),
            Some("key-2"),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);

    let res = app.chat(&t.access, body, Some(&"k".repeat(256))).await;
    assert_eq!(res.invalid_fields(), ["Idempotency-Key"]);
}

#[tokio::test]
async fn deleting_the_conversation_frees_its_idempotency_keys() {
    let app = TestApp::spawn().await;
    let t = app.register("idem-del@example.com").await;
    let body = json!({"message": "remember me"});
    let first = app
        .chat(&t.access, body.clone(), Some("key-d"))
        .await
        .json();
    let id = first["conversation_id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/conversations/{id}"), Some(&t.access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // The record went with the conversation: the retry is a new turn in a new conversation, not a
    // replay of an answer whose conversation no longer exists.
    let again = app.chat(&t.access, body, Some("key-d")).await.json();
    assert_ne!(again["conversation_id"], first["conversation_id"]);
    assert_ne!(
        again["assistant_message"]["id"],
        first["assistant_message"]["id"]
    );
    let listed = app
        .get("/api/v1/conversations", Some(&t.access))
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_streamed_first_attempt_is_replayed_to_a_plain_retry() {
    let app = TestApp::spawn().await;
    let t = app.register("idem3@example.com").await;
    let body = json!({"message": "stream then retry"});
    let events = app.chat_stream(&t.access, body.clone(), Some("k")).await;
    let done = events.last().unwrap().data.clone();
    // The answer is recorded before `done` is sent, so the retry finds it.
    let res = app.chat(&t.access, body, Some("k")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["assistant_message"], done["assistant_message"]);
}

#[tokio::test]
async fn long_histories_are_summarised_and_the_summary_is_billed() {
    let app = TestApp::spawn().await;
    let t = app.register("summary@example.com").await;
    // local/echo has an 8192-token window: three ~5000-token turns cannot all fit.
    let long = |word: &str| format!("{word} ").repeat(4000);
    let first = app
        .chat(&t.access, json!({"message": long("alpha")}), None)
        .await
        .json();
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    assert!(c["summary"].is_null());

    let second = app
        .chat(
            &t.access,
            json!({"conversation_id": id, "message": long("beta")}),
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    let summary = c["summary"]
        .as_str()
        .expect("a summary once the history outgrew the window");
    assert!(summary.contains("alpha"), "{summary}");

    let message_id = second.json()["assistant_message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = app
        .get(
            &format!("/api/v1/messages/{message_id}/usage"),
            Some(&t.access),
        )
        .await
        .json();
    let kinds: Vec<_> = rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["summary", "chat"]);
    // The answer was computed without the summarised turns: its input is far below the history.
    let input = second.json()["usage"]["input_tokens"].as_i64().unwrap();
    assert!(input < 8192, "{input}");
}

/// A conversation created empty (`POST /conversations`) takes its first turn: the turn reads a
/// conversation with no history, keeps its title and model, and counts both messages.
#[tokio::test]
async fn the_first_turn_of_an_empty_conversation() {
    let app = TestApp::spawn().await;
    let t = app.register("empty-first@example.com").await;
    let c = app
        .post(
            "/api/v1/conversations",
            json!({"title": "Named first"}),
            Some(&t.access),
        )
        .await
        .json();
    let id = c["id"].as_str().unwrap();
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": id, "message": "hello there"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["conversation_id"], id);
    assert!(res.json()["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .contains("hello there"));
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    assert_eq!(c["title"], "Named first");
    assert_eq!(c["message_count"], 2, "{c}");
    assert_eq!(app.messages(&t.access, id).await.len(), 2);
}

//! Resumable streams: a streamed answer picked up again after the delta a client saw last, on any
//! instance, with nothing repeated or missing.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use codechat_api_tests::{read_events, request, SseEvent, TestApp};
use serde_json::{json, Value};

/// A streamed turn's body, its first `n` events read.
async fn start_turn(app: &TestApp, token: &str, body: Value, n: usize) -> (Body, Vec<SseEvent>) {
    let mut body_json = body;
    body_json["stream"] = json!(true);
    let res = app
        .send_streaming(request(
            Method::POST,
            "/api/v1/chat",
            Some(token),
            Some(body_json),
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let events = read_events(&mut body, n).await;
    (body, events)
}

/// `GET /messages/{id}/stream?after=`: the body and its first `n` events (all with `n` large).
async fn resume(app: &TestApp, token: &str, id: &str, after: i64, n: usize) -> Vec<SseEvent> {
    let res = app
        .send_streaming(request(
            Method::GET,
            &format!("/api/v1/messages/{id}/stream?after={after}"),
            Some(token),
            None,
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    read_events(&mut body, n).await
}

fn deltas(events: &[SseEvent]) -> Vec<(i64, String)> {
    events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| {
            let seq = e.data["seq"].as_i64().unwrap();
            assert_eq!(e.id.as_deref(), Some(seq.to_string().as_str()), "{e:?}");
            (seq, e.data["text"].as_str().unwrap().to_string())
        })
        .collect()
}

async fn stored(app: &TestApp, token: &str, conversation: &str) -> Value {
    let messages = app.messages(token, conversation).await;
    messages.last().unwrap().clone()
}

#[tokio::test]
async fn deltas_are_numbered_and_a_finished_answer_resumes_at_once() {
    let app = TestApp::spawn().await;
    let t = app.register("resume@example.com").await;
    let other = app.register("resume-other@example.com").await;
    let events = app
        .chat_stream(
            &t.access,
            json!({"message": "count these words one by one please"}),
            None,
        )
        .await;
    let id = events[0].data["assistant_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = events.last().unwrap();
    assert_eq!(done.event, "done");
    assert_eq!(done.data["assistant_message"]["id"], id.as_str());
    let live = deltas(&events);
    assert!(live.len() > 5);
    for (i, (seq, _)) in live.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "numbered from 1");
    }
    let content = done.data["assistant_message"]["content"].as_str().unwrap();

    // From the start: the whole text as one delta, then done.
    let again = resume(&app, &t.access, &id, 0, 99).await;
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(deltas(&again), [(live.len() as i64, content.to_string())]);
    assert_eq!(again[1].event, "done");
    assert_eq!(again[1].data["assistant_message"]["content"], content);
    assert_eq!(again[1].data["usage"]["kind"], "chat");
    // After any delta: exactly the rest.
    for k in [1, 3, live.len() - 1] {
        let rest = resume(&app, &t.access, &id, k as i64, 99).await;
        let seen: String = live[..k].iter().map(|(_, t)| t.as_str()).collect();
        let got: String = deltas(&rest).into_iter().map(|(_, t)| t).collect();
        assert_eq!(format!("{seen}{got}"), content, "after {k}");
        assert_eq!(rest.last().unwrap().event, "done");
    }
    let all = resume(&app, &t.access, &id, live.len() as i64, 99).await;
    assert_eq!(all.len(), 1, "nothing left but done: {all:?}");
    // Last-Event-ID says the same as ?after=.
    let res = app
        .send_streaming(
            Request::builder()
                .uri(format!("/api/v1/messages/{id}/stream"))
                .header(header::AUTHORIZATION, format!("Bearer {}", t.access))
                .header("last-event-id", "3")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let mut body = res.into_body();
    let by_header = read_events(&mut body, 99).await;
    let got: String = deltas(&by_header).into_iter().map(|(_, t)| t).collect();
    let seen: String = live[..3].iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(format!("{seen}{got}"), content);

    // Another user's answer, or none, is not found; a bad `after` is a 422.
    app.get(
        &format!("/api/v1/messages/{id}/stream"),
        Some(&other.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    app.get(
        "/api/v1/messages/01a24bb2-3733-73cb-9bb7-a698d1da2b4a/stream",
        Some(&t.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    for bad in ["-1", "x", "1.5"] {
        let res = app
            .get(
                &format!("/api/v1/messages/{id}/stream?after={bad}"),
                Some(&t.access),
            )
            .await;
        assert_eq!(res.invalid_fields(), ["after"], "{bad}");
    }
    app.post(
        &format!("/api/v1/messages/{id}/stop"),
        json!({}),
        Some(&other.access),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

/// A small deterministic generator for where the client drops.
struct Cuts(u64);

impl Cuts {
    fn next(&mut self, most: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1 + (self.0 >> 33) as usize % most
    }
}

/// One streamed turn, cut at random points and resumed alternately on `a` and `b` (instances over
/// one store) until its end: the deltas received, in order, are the stored answer exactly.
pub(crate) async fn reconnect_at_random_points(a: &TestApp, b: &TestApp, seed: u64) {
    let t = a.register(&format!("cuts{seed}@example.com")).await;
    let mut cuts = Cuts(seed);
    let message = (0..300)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (body, first) =
        start_turn(a, &t.access, json!({"message": message}), 1 + cuts.next(12)).await;
    drop(body); // the client goes away; the turn goes on
    let id = first[0].data["assistant_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let conversation = first[0].data["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut received = deltas(&first);
    let mut reconnects = 0;
    loop {
        let after = received.last().map_or(0, |(seq, _)| *seq);
        let app = if reconnects % 2 == 0 { b } else { a };
        let events = resume(app, &t.access, &id, after, cuts.next(3)).await;
        reconnects += 1;
        for (seq, text) in deltas(&events) {
            assert!(seq > after, "delta {seq} again after {after}");
            received.push((seq, text));
        }
        if events.iter().any(|e| e.event == "done") {
            break;
        }
        assert!(reconnects < 500, "the answer never ended");
    }
    let answer = stored(a, &t.access, &conversation).await;
    assert_eq!(
        answer["status"], "complete",
        "the turn ran on without its client"
    );
    let got: String = received.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        got,
        answer["content"].as_str().unwrap(),
        "after {reconnects} reconnects"
    );
    assert!(reconnects > 1);
}

#[tokio::test]
async fn reconnects_at_random_points_on_two_instances_lose_and_repeat_nothing() {
    let a = TestApp::with_env(&[("ECHO_DELAY_MS", "8"), ("RESUME_POLL_MS", "20")]).await;
    let dir = a.data_dir().to_str().unwrap().to_string();
    let b = TestApp::with_env(&[
        ("CODECHAT_DATA_DIR", &dir),
        ("ECHO_DELAY_MS", "8"),
        ("RESUME_POLL_MS", "20"),
    ])
    .await;
    for seed in 1..=2 {
        reconnect_at_random_points(&a, &b, seed).await;
    }
}

#[tokio::test]
async fn a_stop_ends_the_answer_where_it_is_and_a_long_tail_says_reconnect() {
    let app = TestApp::with_env(&[
        ("ECHO_DELAY_MS", "20"),
        ("RESUME_POLL_MS", "20"),
        ("RESUME_TAIL_SECONDS", "1"),
    ])
    .await;
    let t = app.register("stop@example.com").await;
    let message = (0..200)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (body, first) = start_turn(&app, &t.access, json!({"message": message}), 3).await;
    drop(body);
    let id = first[0].data["assistant_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let conversation = first[0].data["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The resume request's own time runs out (1 s) while the answer (4 s) goes on.
    let tail = resume(&app, &t.access, &id, 0, 999).await;
    let last = tail.last().unwrap();
    assert_eq!(last.event, "reconnect", "{tail:?}");
    assert_eq!(last.retry, Some(1000));
    let after = last.data["after"].as_i64().unwrap();
    assert_eq!(after, deltas(&tail).last().unwrap().0);

    let res = app
        .post(
            &format!("/api/v1/messages/{id}/stop"),
            json!({}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let rest = resume(&app, &t.access, &id, after, 999).await;
    let done = rest.last().unwrap();
    assert_eq!(done.event, "done", "{rest:?}");
    assert_eq!(done.data["assistant_message"]["status"], "incomplete");
    let answer = stored(&app, &t.access, &conversation).await;
    assert_eq!(answer["status"], "incomplete");
    let got: String = deltas(&tail)
        .into_iter()
        .chain(deltas(&rest))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(got, answer["content"].as_str().unwrap());
    assert!(!got.contains("w199"), "stopped before the end");
}

/// An answer whose turn died (its stream opened, nothing stored since for longer than a turn may
/// take, no answer) is reported to a resuming client as lost, not followed forever.
#[tokio::test]
async fn a_stream_whose_turn_died_ends_with_an_error() {
    let app = TestApp::with_env(&[("TURN_BUDGET_SECONDS", "1"), ("RESUME_POLL_MS", "100")]).await;
    let t = app.register("lost@example.com").await;
    let first = app
        .chat(&t.access, json!({"message": "a conversation"}), None)
        .await
        .json();
    let conversation = first["conversation_id"].as_str().unwrap().parse().unwrap();
    let answer = codechat::ids::MessageId::new();
    let conn = app.state.store().conn().await.unwrap();
    conn.start_answer_stream(answer, app.user_id(&t.access).await, conversation)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let events = resume(&app, &t.access, &answer.to_string(), 0, 99).await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!(last.data["code"], "answer_lost");
    assert!(started.elapsed() >= std::time::Duration::from_secs(10));
}

/// A conversation keeps its answers' chunks until its next answer: an older answer then resumes
/// from the start only, and from its middle says so (409) rather than guess.
#[tokio::test]
async fn an_older_answer_resumes_from_the_start_only() {
    let app = TestApp::spawn().await;
    let t = app.register("older@example.com").await;
    let first = app
        .chat_stream(&t.access, json!({"message": "one two three four"}), None)
        .await;
    let id = first[0].data["assistant_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let conversation = first[0].data["conversation_id"].as_str().unwrap();
    app.chat_stream(
        &t.access,
        json!({"conversation_id": conversation, "message": "next"}),
        None,
    )
    .await;
    let whole = resume(&app, &t.access, &id, 0, 99).await;
    assert_eq!(whole.last().unwrap().event, "done");
    app.get(
        &format!("/api/v1/messages/{id}/stream?after=2"),
        Some(&t.access),
    )
    .await
    .problem(StatusCode::CONFLICT);
}

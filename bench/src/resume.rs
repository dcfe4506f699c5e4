//! Resumable streams (issue 32), in-process:
//!
//! - what storing a streamed answer as it grows costs: a 200-word answer at a model's pace (a word
//!   every 15 ms, ~3 s), its chunks counted, and one chunk's write timed on the local store (the
//!   writes run in their own task, beside the stream);
//! - on sqld (through the counting proxy): the write statements such a turn makes, per second;
//! - a resume's first byte: a finished answer from the start and from its middle, and a live one.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{in_process::InProcess, Row, PASSWORD};

const TURNS: usize = 5;
const RESUMES: usize = 200;
const CHUNK_WRITES: usize = 300;

fn answer_id(sse: &str) -> (String, String) {
    for block in sse.split("\n\n") {
        if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            if let Some(id) = v["assistant_message_id"].as_str() {
                return (
                    id.to_string(),
                    v["conversation_id"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    panic!("no meta event: {sse}")
}

pub async fn measure(
    app: &InProcess,
    state: &codechat::AppState,
    remote: Option<(&InProcess, &codechat_api_tests::proxy::LatencyProxy)>,
) -> Vec<Row> {
    let token = app.register("resume@bench.dev", PASSWORD).await;
    let user = {
        let conn = state.store().conn().await.unwrap();
        conn.user_by_email("resume@bench.dev")
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let message = (0..200)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rows = Vec::new();

    // Turns at a model's pace: how many chunks each stores.
    let mut chunks = Vec::new();
    let mut turn_times = Vec::new();
    let mut ids = Vec::new();
    let mut conversations = Vec::new();
    for _ in 0..TURNS {
        let started = Instant::now();
        let (status, sse) = app
            .text(
                "POST",
                "/api/v1/chat",
                &token,
                Some(json!({"message": message, "stream": true})),
            )
            .await;
        turn_times.push(started.elapsed());
        assert_eq!(status, 200, "{sse}");
        let (id, conversation) = answer_id(&sse);
        chunks.push(count_chunks(state, user, &id).await);
        ids.push(id);
        conversations.push(conversation);
    }
    chunks.sort();
    eprintln!(
        "bench: a 200-word answer at 15 ms a word stored {:?} chunks (median {}); its turn took {:?}",
        chunks,
        chunks[chunks.len() / 2],
        turn_times
    );
    rows.push(Row::from_times(
        "in-process",
        "streamed turn, 200 words at 15 ms each",
        turn_times,
    ));

    // One chunk's write, as the journal makes it (about 500 ms of deltas: ~33 words).
    let conn = state.store().conn().await.unwrap();
    let id: codechat::ids::MessageId = ids[0].parse().unwrap();
    let conversation: codechat::ids::ConversationId = conversations[0].parse().unwrap();
    let text = "w1 ".repeat(33);
    let mut writes = Vec::with_capacity(CHUNK_WRITES);
    for i in 0..CHUNK_WRITES {
        let seq = 10_000 + i as i64 * 33;
        let chunk = codechat::store::Chunk {
            first_seq: seq,
            last_seq: seq + 32,
            start: 0,
            text: text.clone(),
            ends: (1..=33).map(|k| k * 3).collect(),
        };
        let started = Instant::now();
        conn.append_answer_chunk(id, user, conversation, &chunk)
            .await
            .unwrap();
        writes.push(started.elapsed());
    }
    rows.push(Row::from_times(
        "in-process",
        "one chunk of a growing answer stored",
        writes,
    ));

    // A resume's first byte: a finished answer from the start and from delta 100.
    for (route, after) in [
        ("resume a finished answer, first byte (after=0)", 0),
        ("resume a finished answer, first byte (after=100)", 100),
    ] {
        let mut times = Vec::with_capacity(RESUMES);
        for i in 0..RESUMES {
            let id = &ids[1 + i % (ids.len() - 1)];
            let (status, took, _) = app
                .first_byte(
                    "GET",
                    &format!("/api/v1/messages/{id}/stream?after={after}"),
                    &token,
                    None,
                )
                .await;
            assert_eq!(status, 200);
            times.push(took);
        }
        rows.push(Row::from_times("in-process", route, times));
    }
    // A live one: a turn under way, resumed from its start.
    let mut live = Vec::new();
    for _ in 0..TURNS {
        // The turn goes on once its client has gone (the body dropped after the meta event).
        let (_, _, meta) = app
            .first_byte(
                "POST",
                "/api/v1/chat",
                &token,
                Some(json!({"message": message, "stream": true})),
            )
            .await;
        let (id, _) = answer_id(&meta);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (status, took, _) = app
            .first_byte(
                "GET",
                &format!("/api/v1/messages/{id}/stream?after=0"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200);
        live.push(took);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    rows.push(Row::from_times(
        "in-process",
        "resume a live answer, first byte (after=0)",
        live,
    ));

    if let Some((remote, proxy)) = remote {
        let token = remote.register("resume-remote@bench.dev", PASSWORD).await;
        let mut rates = Vec::new();
        for _ in 0..TURNS {
            let before = proxy.writes();
            let started = Instant::now();
            let (status, sse) = remote
                .text(
                    "POST",
                    "/api/v1/chat",
                    &token,
                    Some(json!({"message": message, "stream": true})),
                )
                .await;
            assert_eq!(status, 200, "{sse}");
            let took = started.elapsed().as_secs_f64();
            let writes = proxy.writes() - before;
            rates.push((writes, took, writes as f64 / took));
        }
        eprintln!("bench: on sqld, a streamed 200-word turn at 15 ms a word: (writes, seconds, writes/s) {rates:?}");
        rates.sort_by(|a, b| a.2.total_cmp(&b.2));
        let (writes, took, rate) = rates[rates.len() / 2];
        println!(
            "{:<78} {:>5} {:>10} {:>10}",
            "sqld: write statements of a streamed turn (median run)",
            TURNS,
            writes,
            format!("{took:.2} s")
        );
        println!(
            "{:<78} {:>5} {:>10.2} {:>10}",
            "sqld: write statements a second, that turn", TURNS, rate, ""
        );
    }
    rows
}

async fn count_chunks(state: &codechat::AppState, user: codechat::ids::UserId, id: &str) -> usize {
    let conn = state.store().conn().await.unwrap();
    let progress = conn
        .answer_progress(id.parse().unwrap(), user, 0)
        .await
        .unwrap()
        .unwrap();
    progress.chunks.len()
}

//! WebSocket turns (`-- --ws-only`): what coalescing deltas costs and saves. Each turn goes through
//! the `ws` function's handler, its frames through the AWS SDK's PostToConnection to a local fake
//! of the Management API that notes when each arrives; the offline model streams a 200-word answer
//! at its default pace (a word every 15 ms, about 66 deltas a second) and with no pause. Figures:
//! the time from the frame's invocation to the first delta's arrival (first-token latency), the
//! whole turn, and the posts a turn makes and their rate, with coalescing at 50 posts a second and
//! with one post per delta.

use std::time::{Duration, Instant};

use codechat::function::Transport;
use codechat_api_tests::fakes::ManagementApi;
use serde_json::json;

use crate::{in_process::InProcess, Row, PASSWORD};

const TURNS: usize = 20;
const CONNECTION: &str = "bench-connection";

pub async fn measure() -> Vec<Row> {
    let mut rows = Vec::new();
    for (pace, echo_delay) in [("a word every 15 ms", "15"), ("no pause", "0")] {
        for (mode, posts) in [
            ("coalesced, 50 posts/s", "50"),
            ("one post per delta", "1000000"),
        ] {
            rows.extend(turns(pace, echo_delay, mode, posts).await);
        }
    }
    rows
}

async fn turns(pace: &str, echo_delay: &str, mode: &str, posts_per_second: &str) -> Vec<Row> {
    let fake = ManagementApi::start().await;
    let data = std::env::temp_dir().join(format!(
        "codechat-bench-ws-{}-{echo_delay}-{posts_per_second}",
        std::process::id()
    ));
    let (app, state) = InProcess::start_with(
        &data,
        &[
            ("WEBSOCKET_MANAGEMENT_ENDPOINT", fake.endpoint.as_str()),
            ("ECHO_DELAY_MS", echo_delay),
            ("WS_MAX_POSTS_PER_SECOND", posts_per_second),
            // Turns back to back are more frames a second than a person sends.
            ("WS_MAX_FRAMES_PER_SECOND", "1000"),
        ],
    )
    .await;
    let Transport::WebSocket(handler) = codechat::api::ws::FUNCTION.transport else {
        unreachable!("ws is a WebSocket function")
    };
    let token = app.register("ws@bench.dev", PASSWORD).await;
    let connect = json!({
        "queryStringParameters": {"token": token},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": CONNECTION,
            "domainName": "bench.invalid", "stage": "Prod", "requestId": "r",
            "connectedAt": 1_796_119_200_000_i64, "requestTimeEpoch": 1_796_119_200_000_i64},
        "isBase64Encoded": false,
    });
    let answer = handler(state.clone(), connect).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");

    let (mut first, mut whole, mut counts, mut rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..TURNS {
        fake.clear();
        let body =
            json!({"action": "chat", "message": format!("turn {i} {}", "word ".repeat(200))});
        let event = json!({
            "requestContext": {"routeKey": "chat", "eventType": "MESSAGE", "connectionId": CONNECTION,
                "domainName": "bench.invalid", "stage": "Prod", "requestId": "r",
            "connectedAt": 1_796_119_200_000_i64, "requestTimeEpoch": 1_796_119_200_000_i64},
            "body": body.to_string(),
            "isBase64Encoded": false,
        });
        let started = Instant::now();
        handler(state.clone(), event).await.unwrap();
        whole.push(started.elapsed());
        let timeline = fake.timeline(CONNECTION);
        let last = timeline.last().map(|(_, f)| f.clone()).unwrap_or_default();
        assert_eq!(last["type"], "done", "{last}");
        let deltas: Vec<Instant> = timeline
            .iter()
            .filter(|(_, f)| f["type"] == "delta")
            .map(|(at, _)| *at)
            .collect();
        first.push(deltas[0] - started);
        counts.push(timeline.len());
        let span = (timeline.last().unwrap().0 - timeline[0].0).max(Duration::from_millis(1));
        rates.push(timeline.len() as f64 / span.as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&data);
    counts.sort();
    rates.sort_by(f64::total_cmp);
    let label = format!(
        "{pace}, {mode}: {} posts a turn, {:.0}/s",
        counts[counts.len() / 2],
        rates[rates.len() / 2]
    );
    vec![
        Row::from_times("in-process", &format!("ws first delta, {label}"), first),
        Row::from_times(
            "in-process",
            &format!("ws whole turn, {pace}, {mode}"),
            whole,
        ),
    ]
}

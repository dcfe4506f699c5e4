//! The `ws` function: API Gateway WebSocket events from `events/` through its handler, frames
//! posted with the AWS SDK's PostToConnection to a fake Management API; and the local adapter end
//! to end with a real WebSocket client.

use std::time::{Duration, Instant};

use codechat::function::Transport;
use codechat_api_tests::{fakes::ManagementApi, repo_file, TestApp, Tokens};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

const CONNECTION: &str = "QFJs5cVeoAMCJtQ=";

async fn invoke(app: &TestApp, event: Value) -> Value {
    let Transport::WebSocket(handler) = codechat::api::ws::FUNCTION.transport else {
        panic!("ws is a WebSocket function")
    };
    handler(app.state.clone(), event).await.expect("handled")
}

fn event(file: &str) -> Value {
    serde_json::from_str(&repo_file(&format!("events/{file}"))).unwrap()
}

fn connect_event(token: Option<&str>, connection: &str) -> Value {
    let mut e = event("ws-connect.json");
    match token {
        Some(t) => {
            e["queryStringParameters"]["token"] = json!(t);
            e["multiValueQueryStringParameters"]["token"] = json!([t]);
        }
        None => {
            e["queryStringParameters"] = json!({});
            e["multiValueQueryStringParameters"] = json!({});
        }
    }
    e["requestContext"]["connectionId"] = json!(connection);
    e
}

fn message_event(connection: &str, body: &str) -> Value {
    let mut e = event("ws-chat.json");
    e["requestContext"]["connectionId"] = json!(connection);
    e["body"] = json!(body);
    e
}

async fn app_with(fake: &ManagementApi, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("WEBSOCKET_MANAGEMENT_ENDPOINT", fake.endpoint.as_str())];
    env.extend_from_slice(extra);
    TestApp::with_env(&env).await
}

async fn connected(app: &TestApp, email: &str, connection: &str) -> Tokens {
    let user = app.register(email).await;
    let res = invoke(app, connect_event(Some(&user.access), connection)).await;
    assert_eq!(res["statusCode"], 200, "{res}");
    user
}

/// A chat frame with this message, through the handler.
async fn chat(app: &TestApp, message: &str) {
    invoke(
        app,
        message_event(
            CONNECTION,
            &json!({"action": "chat", "message": message}).to_string(),
        ),
    )
    .await;
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn text_of(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "delta")
        .map(|f| f["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn connect_authorises_the_token_and_refuses_bad_ones() {
    let fake = ManagementApi::start().await;
    let app = app_with(&fake, &[]).await;
    let user = connected(&app, "ws-connect@example.com", CONNECTION).await;
    assert_eq!(
        app.state
            .store()
            .conn()
            .await
            .unwrap()
            .connection_count(user.user["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap(),
        1
    );

    let expired = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"sub": user.user["id"], "role": "user", "exp": now - 60, "iat": now - 960,
            "jti": "x", "typ": "access", "sep": 0, "sid": "s"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(codechat_api_tests::JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    for token in [
        None,
        Some("not-a-jwt"),
        Some(expired.as_str()),
        Some(&user.refresh),
    ] {
        let res = invoke(&app, connect_event(token, "refused")).await;
        assert_eq!(res["statusCode"], 401, "{token:?}: {res}");
        let problem: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        assert_eq!(problem["status"], 401);
        assert_eq!(
            res["headers"]["content-type"], "application/problem+json",
            "{res}"
        );
    }

    // A frame on a connection that never opened (or was refused) is refused, as a frame.
    invoke(&app, message_event("refused", r#"{"action":"ping"}"#)).await;
    let frames = fake.frames("refused");
    assert_eq!(kinds(&frames), ["error"]);
    assert_eq!(frames[0]["status"], 401);

    let res = invoke(&app, {
        let mut e = event("ws-disconnect.json");
        e["requestContext"]["connectionId"] = json!(CONNECTION);
        e
    })
    .await;
    assert_eq!(res["statusCode"], 200);
    invoke(&app, message_event(CONNECTION, r#"{"action":"ping"}"#)).await;
    assert_eq!(fake.frames(CONNECTION)[0]["status"], 401, "disconnected");
}

#[tokio::test]
async fn a_chat_frame_runs_the_turn_and_posts_its_frames() {
    let fake = ManagementApi::start().await;
    let app = app_with(&fake, &[]).await;
    let user = connected(&app, "ws-chat@example.com", CONNECTION).await;

    // The sample event as API Gateway sends it.
    let res = invoke(&app, {
        let mut e = event("ws-chat.json");
        e["requestContext"]["connectionId"] = json!(CONNECTION);
        e
    })
    .await;
    assert_eq!(res["statusCode"], 200);
    let frames = fake.frames(CONNECTION);
    let kinds = kinds(&frames);
    assert_eq!(kinds.first().map(String::as_str), Some("meta"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("done"), "{kinds:?}");
    assert!(
        frames.iter().all(|f| f["request_id"] == "req-1"),
        "{frames:?}"
    );
    let done = frames.last().unwrap();
    let conversation = frames[0]["conversation_id"].as_str().unwrap();
    assert_eq!(done["assistant_message"]["status"], "complete");
    assert_eq!(
        text_of(&frames),
        done["assistant_message"]["content"].as_str().unwrap()
    );
    assert!(fake.all_signed(), "PostToConnection calls are SigV4-signed");

    // Stored exactly as an SSE turn.
    let messages = app.messages(&user.access, conversation).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["content"], "Hello over the socket");
    assert_eq!(messages[1]["id"], done["assistant_message"]["id"]);

    // The same request_id again replays the turn: no second turn.
    fake.clear();
    invoke(&app, {
        let mut e = event("ws-chat.json");
        e["requestContext"]["connectionId"] = json!(CONNECTION);
        e
    })
    .await;
    let replay = fake.frames(CONNECTION);
    assert_eq!(self::kinds(&replay), ["meta", "delta", "done"]);
    assert_eq!(
        replay[2]["assistant_message"]["id"],
        done["assistant_message"]["id"]
    );
    assert_eq!(app.messages(&user.access, conversation).await.len(), 2);

    // Ping.
    fake.clear();
    invoke(
        &app,
        message_event(CONNECTION, r#"{"action":"ping","request_id":"p"}"#),
    )
    .await;
    assert_eq!(
        fake.frames(CONNECTION),
        [json!({"type": "pong", "request_id": "p"})]
    );
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_stays_usable() {
    let fake = ManagementApi::start().await;
    let app = app_with(
        &fake,
        &[
            ("WS_MAX_MESSAGE_BYTES", "1000"),
            ("WS_MAX_FRAMES_PER_SECOND", "1000"),
        ],
    )
    .await;
    connected(&app, "ws-bad@example.com", CONNECTION).await;
    let other = app.register("ws-other@example.com").await;
    let theirs = app
        .post(
            "/api/v1/conversations",
            json!({"title": "theirs"}),
            Some(&other.access),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let frame_of = |n: usize| format!(r#"{{"action":"chat","message":"{}"}}"#, "x".repeat(n));
    let filler = 1000 - frame_of(0).len();
    let (at_limit, over) = (frame_of(filler), frame_of(filler + 1));
    assert_eq!((at_limit.len(), over.len()), (1000, 1001));
    let cases: Vec<(String, u16)> = vec![
        ("not json".into(), 400),
        ("[1,2]".into(), 400),
        (r#"{"action":"dance"}"#.into(), 400),
        (r#"{"message":"no action"}"#.into(), 422),
        (
            r#"{"action":"chat","message":"   ","request_id":"r-bad"}"#.into(),
            422,
        ),
        (r#"{"action":"chat","message":42}"#.into(), 422),
        (
            r#"{"action":"chat","message":"hi","request_id":7}"#.into(),
            422,
        ),
        (
            format!(r#"{{"action":"chat","message":"hi","conversation_id":"{theirs}"}}"#),
            404,
        ),
        (over.clone(), 413),
    ];
    for (body, status) in &cases {
        fake.clear();
        invoke(&app, message_event(CONNECTION, body)).await;
        let frames = fake.frames(CONNECTION);
        assert_eq!(kinds(&frames), ["error"], "{body}");
        assert_eq!(frames[0]["status"], *status, "{body}: {:?}", frames[0]);
        let problem = &frames[0]["problem"];
        assert_eq!(problem["status"], *status);
        assert!(
            problem["type"].as_str().unwrap().starts_with("https://")
                && problem["detail"].is_string()
        );
    }
    // The error frame names the bad field, and carries the request_id when there is one.
    fake.clear();
    invoke(&app, message_event(CONNECTION, &cases[4].0)).await;
    let frame = &fake.frames(CONNECTION)[0];
    assert_eq!(frame["request_id"], "r-bad");
    assert_eq!(frame["problem"]["errors"][0]["field"], "message");

    // At the size limit the frame is read (and here answered as a turn).
    fake.clear();
    invoke(&app, message_event(CONNECTION, &at_limit)).await;
    assert_eq!(kinds(&fake.frames(CONNECTION)).last().unwrap(), "done");

    // Still usable after all of that.
    fake.clear();
    invoke(&app, message_event(CONNECTION, r#"{"action":"ping"}"#)).await;
    assert_eq!(kinds(&fake.frames(CONNECTION)), ["pong"]);
    // Nothing of theirs was touched.
    assert_eq!(app.messages(&other.access, &theirs).await.len(), 0);
}

/// A connection gone mid-answer does not end the turn: the answer runs to its end and is stored
/// (the client may resume it).
#[tokio::test]
async fn a_gone_connection_leaves_the_turn_running_to_its_end() {
    let fake = ManagementApi::start().await;
    // A slow offline model: many deltas, coalesced into several posts.
    let app = app_with(&fake, &[("ECHO_DELAY_MS", "5")]).await;
    let user = connected(&app, "ws-gone@example.com", CONNECTION).await;
    fake.gone_after(3);
    let message = "word ".repeat(60);
    chat(&app, &message).await;
    let frames = fake.frames(CONNECTION);
    assert_eq!(kinds(&frames)[0], "meta");
    assert!(!kinds(&frames).contains(&"done".to_string()), "{frames:?}");
    let conversation = frames[0]["conversation_id"].as_str().unwrap();
    let stored = app.messages(&user.access, conversation).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["status"], "complete", "{:?}", stored[1]);
    assert!(stored[1]["content"]
        .as_str()
        .unwrap()
        .starts_with(&text_of(&frames)));
    // The gone connection's row went with it.
    let id = user.user["id"].as_str().unwrap().parse().unwrap();
    let conn = app.state.store().conn().await.unwrap();
    assert_eq!(conn.connection_count(id).await.unwrap(), 0);
}

#[tokio::test]
async fn deltas_are_coalesced_and_the_first_goes_at_once() {
    let fake = ManagementApi::start().await;
    let app = app_with(
        &fake,
        &[("ECHO_DELAY_MS", "1"), ("WS_MAX_POSTS_PER_SECOND", "20")],
    )
    .await;
    connected(&app, "ws-coalesce@example.com", CONNECTION).await;
    let message = "token ".repeat(150);
    let started = Instant::now();
    chat(&app, &message).await;
    let took = started.elapsed();
    let frames = fake.frames(CONNECTION);
    let deltas = frames.iter().filter(|f| f["type"] == "delta").count();
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "done");
    let answer = done["assistant_message"]["content"].as_str().unwrap();
    let words = answer.split_whitespace().count();
    assert!(words > 100, "{answer}");
    assert_eq!(text_of(&frames), answer, "nothing lost or reordered");
    // At most one post per 50 ms after the first (plus the last flush), far fewer than the words.
    let allowed = 2 + (took.as_millis() / 50) as usize;
    assert!(
        deltas <= allowed && deltas < words / 2,
        "{deltas} delta posts for {words} words in {took:?}"
    );
    assert!(frames[1]["type"] == "delta", "the first delta follows meta");
}

#[tokio::test]
async fn frames_beyond_the_rate_limit_are_refused() {
    let fake = ManagementApi::start().await;
    let app = app_with(&fake, &[("WS_MAX_FRAMES_PER_SECOND", "3")]).await;
    connected(&app, "ws-rate@example.com", CONNECTION).await;
    let started = Instant::now();
    for _ in 0..8 {
        invoke(&app, message_event(CONNECTION, r#"{"action":"ping"}"#)).await;
    }
    // Under a second, so the frames fall in at most two one-second windows.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "eight frames within a second"
    );
    let frames = fake.frames(CONNECTION);
    let refused: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
    // Eight frames over at most two one-second windows: at most six pass.
    assert!(refused.len() >= 2, "{frames:?}");
    assert!(refused
        .iter()
        .all(|f| f["status"] == 429 && f["retry_after"] == 1));
}

#[tokio::test]
async fn a_logged_out_session_stops_its_socket_at_once() {
    let fake = ManagementApi::start().await;
    let app = app_with(&fake, &[]).await;
    let user = connected(&app, "ws-logout@example.com", CONNECTION).await;
    invoke(&app, message_event(CONNECTION, r#"{"action":"ping"}"#)).await;
    assert_eq!(kinds(&fake.frames(CONNECTION)), ["pong"]);
    app.logout(&user.refresh, Some(&user.access)).await;
    fake.clear();
    invoke(
        &app,
        message_event(CONNECTION, r#"{"action":"chat","message":"hi"}"#),
    )
    .await;
    let frames = fake.frames(CONNECTION);
    assert_eq!(kinds(&frames), ["error"]);
    assert_eq!(frames[0]["status"], 401);
}

// The local adapter, with a real WebSocket client.

async fn adapter(app: &TestApp) -> String {
    let Transport::WebSocket(handler) = codechat::api::ws::FUNCTION.transport else {
        panic!("ws is a WebSocket function")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = app.state.clone();
    tokio::spawn(codechat::http::websocket::serve(listener, state, handler));
    format!("ws://{addr}/ws")
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, token: &str) -> Client {
    let (socket, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}"))
        .await
        .expect("connected");
    socket
}

async fn next_frame(socket: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("open")
            .expect("a message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Frames until (and with) the turn's `done` or `error`.
async fn turn_frames(socket: &mut Client) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = next_frame(socket).await;
        let end = f["type"] == "done" || f["type"] == "error";
        frames.push(f);
        if end {
            return frames;
        }
    }
}

#[tokio::test]
async fn the_local_adapter_serves_the_same_flow_over_a_real_socket() {
    let app = TestApp::spawn().await;
    let url = adapter(&app).await;
    let user = app.register("ws-local@example.com").await;

    // A bad token is refused at the handshake, with the handler's status.
    match tokio_tungstenite::connect_async(format!("{url}?token=nope")).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }

    let mut socket = open(&url, &user.access).await;
    socket
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut socket).await, json!({"type": "pong"}));

    socket.send(Message::Text("{oops".into())).await.unwrap();
    let err = next_frame(&mut socket).await;
    assert_eq!(
        (err["type"].as_str(), err["status"].as_u64()),
        (Some("error"), Some(400))
    );

    socket
        .send(Message::Text(
            json!({"action": "chat", "message": "Hello, adapter", "request_id": "a1"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let frames = turn_frames(&mut socket).await;
    assert_eq!(frames[0]["type"], "meta");
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "done", "{frames:?}");
    assert!(frames.iter().all(|f| f["request_id"] == "a1"));
    assert_eq!(
        text_of(&frames),
        done["assistant_message"]["content"].as_str().unwrap()
    );
    let conversation = frames[0]["conversation_id"].as_str().unwrap().to_string();

    // Two sockets of one user at once, each with its own turn.
    let mut second = open(&url, &user.access).await;
    for (socket, text) in [
        (&mut socket, "first socket"),
        (&mut second, "second socket"),
    ] {
        socket
            .send(Message::Text(
                json!({"action": "chat", "message": text, "conversation_id": conversation})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(turn_frames(&mut socket), turn_frames(&mut second));
    for (frames, text) in [(a, "first socket"), (b, "second socket")] {
        let done = frames.last().unwrap();
        assert_eq!(done["type"], "done");
        assert!(done["assistant_message"]["content"]
            .as_str()
            .unwrap()
            .contains(text));
    }
    // Both answered the same leaf: two branches, one of them shown, nothing lost.
    assert_eq!(app.messages(&user.access, &conversation).await.len(), 4);
    let all = app
        .get(
            &format!("/api/v1/conversations/{conversation}/messages?all=true"),
            Some(&user.access),
        )
        .await
        .json();
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
    second.close(None).await.unwrap();
    socket.close(None).await.unwrap();
}

/// A socket closed mid-answer, then a new one resuming it: the rest arrives, nothing repeated.
#[tokio::test]
async fn a_socket_closed_mid_stream_is_resumed_on_another() {
    let app = TestApp::with_env(&[("ECHO_DELAY_MS", "10"), ("RESUME_POLL_MS", "20")]).await;
    let url = adapter(&app).await;
    let user = app.register("ws-cut@example.com").await;
    let mut socket = open(&url, &user.access).await;
    socket
        .send(Message::Text(
            json!({"action": "chat", "message": "long ".repeat(150)})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let meta = next_frame(&mut socket).await;
    assert_eq!(meta["type"], "meta");
    let first = next_frame(&mut socket).await;
    assert_eq!(first["type"], "delta");
    drop(socket);
    let answer = meta["assistant_message_id"].as_str().unwrap().to_string();
    let mut text = first["text"].as_str().unwrap().to_string();

    let mut again = open(&url, &user.access).await;
    again
        .send(Message::Text(
            json!({"action": "resume", "message_id": answer, "after": first["seq"], "request_id": "r1"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    loop {
        let frame = next_frame(&mut again).await;
        assert_eq!(frame["request_id"], "r1", "{frame}");
        match frame["type"].as_str() {
            Some("delta") => text.push_str(frame["text"].as_str().unwrap()),
            Some("done") => break,
            other => panic!("{other:?}: {frame}"),
        }
    }
    let conversation = meta["conversation_id"].as_str().unwrap();
    let messages = app.messages(&user.access, conversation).await;
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["content"].as_str().unwrap(), text);
    again
        .send(Message::Text(
            json!({"action": "resume", "message_id": "nope", "after": -1})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let refused = next_frame(&mut again).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["status"], 422);
}

#[tokio::test]
async fn health_publishes_the_websocket_url() {
    let app = TestApp::spawn().await;
    let health = app.get("/api/v1/health", None).await.json();
    assert_eq!(health["websocket_url"], "ws://127.0.0.1:9001/ws");
    let app = TestApp::with_env(&[(
        "WEBSOCKET_URL",
        "wss://abc.execute-api.us-east-1.amazonaws.com/Prod",
    )])
    .await;
    let health = app.get("/api/v1/health", None).await.json();
    assert_eq!(
        health["websocket_url"],
        "wss://abc.execute-api.us-east-1.amazonaws.com/Prod"
    );
}

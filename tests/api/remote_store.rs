//! The production store: remote libSQL over its HTTP protocol (sqld, as Turso runs it), with JWT
//! auth. Skipped, with a message, where `../shared/tools/sqld` is absent.

use axum::http::StatusCode;
use codechat::{
    config::DatabaseConfig,
    store::{Store, StoreError},
};
use codechat_api_tests::{sqld::Sqld, TestApp, PASSWORD};
use serde_json::json;

async fn remote_app(sqld: &Sqld) -> TestApp {
    TestApp::with_env(&[
        ("LIBSQL_URL", &sqld.url),
        ("LIBSQL_AUTH_TOKEN", &sqld.token()),
    ])
    .await
}

#[tokio::test]
async fn a_user_flow_runs_on_remote_libsql() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let app = remote_app(&sqld).await;
    let t = app.register("remote@example.com").await;
    assert_eq!(
        app.get("/api/v1/users/me", Some(&t.access)).await.status,
        StatusCode::OK
    );
    let turn = app
        .chat(
            &t.access,
            json!({"message": "over the wire"}),
            Some("remote-1"),
        )
        .await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.text());
    let turn = turn.json();
    let replay = app
        .chat(
            &t.access,
            json!({"message": "over the wire"}),
            Some("remote-1"),
        )
        .await
        .json();
    assert_eq!(
        replay["assistant_message"]["id"],
        turn["assistant_message"]["id"]
    );
    let id = turn["conversation_id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    // Knowledge on the server: the document and its chunks in one transaction, FTS5 and the
    // vector index (sqld is libSQL), and a turn that cites it.
    let doc = app
        .post(
            "/api/v1/knowledge/documents",
            json!({"title": "Wire", "content": "# Wire\n\nHrana carries statements over HTTP."}),
            Some(&t.access),
        )
        .await;
    assert_eq!(doc.status, StatusCode::CREATED, "{}", doc.text());
    let doc = doc.json();
    let hits = app
        .get(
            "/api/v1/knowledge/search?q=hrana%20statements",
            Some(&t.access),
        )
        .await
        .json();
    assert_eq!(hits["items"][0]["document_id"], doc["id"], "{hits}");
    let cited = app
        .chat(
            &t.access,
            json!({"message": "what carries statements?", "knowledge": true}),
            None,
        )
        .await
        .json();
    assert_eq!(
        cited["assistant_message"]["citations"][0]["title"], "Wire",
        "{cited}"
    );
    let gone = app
        .delete(
            &format!(
                "/api/v1/knowledge/documents/{}",
                doc["id"].as_str().unwrap()
            ),
            Some(&t.access),
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let stream = app
        .chat_stream(
            &t.access,
            json!({"conversation_id": id, "message": "and streamed"}),
            None,
        )
        .await;
    assert_eq!(stream.last().unwrap().event, "done");
    assert_eq!(app.refresh(&t.refresh).await.status, StatusCode::OK);
    assert_eq!(
        app.delete(&format!("/api/v1/conversations/{id}"), Some(&t.access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.login("remote@example.com", "wrong password")
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // The server's constraint error names the field, as the local engine's does.
    let again = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "remote@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let p = again.problem(StatusCode::CONFLICT);
    assert_eq!(p["errors"][0]["field"], "email", "{p}");
    assert_eq!(
        app.login("remote@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cold_starts_race_their_migrations_on_remote_libsql() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let config = DatabaseConfig::Remote {
        url: sqld.url.clone(),
        auth_token: sqld.token(),
    };
    let opens = (0..6).map(|_| {
        let config = config.clone();
        tokio::spawn(async move { Store::open(&config).await.map(|_| ()) })
    });
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let store = Store::open(&config).await.unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let local = Store::open(&DatabaseConfig::LocalFile(fresh.path().join("db")))
        .await
        .unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        local.schema_version().await.unwrap()
    );
}

#[tokio::test]
async fn a_missing_or_wrong_token_fails_start_up_clearly() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let other_key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIE9vE2Mtbj9xPJb1T3kZQJ0Rk1n3Ke5bBvI3l2pQqRzE\n-----END PRIVATE KEY-----\n";
    for token in [String::new(), codechat_api_tests::sqld::sign(other_key)] {
        let config = DatabaseConfig::Remote {
            url: sqld.url.clone(),
            auth_token: token,
        };
        let err = Store::open(&config).await.err().expect("start-up fails");
        assert!(matches!(err, StoreError::Open(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("token") || text.contains("401") || text.contains("nauthorized"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_server_going_away_is_a_503_and_loses_nothing() {
    let Some(mut sqld) = Sqld::start().await else {
        return;
    };
    let app = remote_app(&sqld).await;
    let t = app.register("gone@example.com").await;
    let turn = app
        .chat(&t.access, json!({"message": "kept"}), None)
        .await
        .json();
    sqld.stop();
    let res = app.get("/api/v1/users/me", Some(&t.access)).await;
    let p = res.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers.contains_key("retry-after"), "{p}");
    let res = app.chat(&t.access, json!({"message": "lost?"}), None).await;
    res.problem(StatusCode::SERVICE_UNAVAILABLE);
    sqld.restart().await;
    // Back: what was committed is there, and the refused turn left nothing behind.
    let id = turn["conversation_id"].as_str().unwrap();
    let msgs = app.messages(&t.access, id).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let list = app
        .get("/api/v1/conversations", Some(&t.access))
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

/// Each statement against a remote store is a network round trip (and a transaction adds BEGIN
/// and COMMIT): a chat turn is allowed 3 before the model call (the user, the conversation with its
/// history, the user message) and 1 after it (the answer with its usage), counted by a proxy in
/// front of the server. Today a new conversation costs exactly 3 and an existing one 4.
#[tokio::test]
async fn a_chat_turn_costs_few_round_trips() {
    use codechat_api_tests::proxy::LatencyProxy;
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let proxy = LatencyProxy::start(sqld.addr(), std::time::Duration::ZERO).await;
    let app = TestApp::with_env(&[
        ("LIBSQL_URL", &proxy.url()),
        ("LIBSQL_AUTH_TOKEN", &sqld.token()),
    ])
    .await;
    let t = app.register("trips@example.com").await;
    let trips = |before: u64| proxy.requests() - before;

    let before = proxy.requests();
    let first = app.chat(&t.access, json!({"message": "new"}), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    // The user; the conversation started with its first message; the answer.
    let n = trips(before);
    assert!(
        (1..=3).contains(&n),
        "a turn in a new conversation: {n} round trips"
    );
    let id = first.json()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();

    let before = proxy.requests();
    let res = app
        .chat(
            &t.access,
            json!({"conversation_id": id, "message": "again"}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let n = trips(before);
    assert!(
        (1..=4).contains(&n),
        "a turn in an existing conversation: {n} round trips"
    );

    let before = proxy.requests();
    let events = app
        .chat_stream(
            &t.access,
            json!({"conversation_id": id, "message": "streamed"}),
            None,
        )
        .await;
    assert_eq!(events.last().unwrap().event, "done");
    let n = trips(before);
    assert!((1..=4).contains(&n), "a streamed turn: {n} round trips");

    // Everything stored, counters included.
    let msgs = app.messages(&t.access, &id).await;
    assert_eq!(msgs.len(), 6, "{msgs:?}");
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    assert_eq!(c["message_count"], 6, "{c}");
    let before = proxy.requests();
    assert_eq!(app.me(&t.access).await.status, StatusCode::OK);
    assert_eq!(trips(before), 1, "GET /users/me reads the user once");
}

/// Daily budgets on the production store: two app instances (each its own store client) share the
/// server, and 30 streamed turns at once with room for 10 turns' maximum never overspend.
#[tokio::test]
async fn budgets_hold_across_instances_on_remote_libsql() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let env = [
        ("LIBSQL_URL", sqld.url.clone()),
        ("LIBSQL_AUTH_TOKEN", sqld.token()),
        ("ECHO_DELAY_MS", "50".to_string()),
        ("BOOTSTRAP_ADMIN_EMAIL", "boss@example.com".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = (TestApp::with_env(&env).await, TestApp::with_env(&env).await);
    let admin = a.register("boss@example.com").await;
    let t = a.register("budgeted@example.com").await;
    let user_url = format!("/api/v1/admin/users/{}", t.user["id"].as_str().unwrap());
    let turn = json!({"message": "remote quota", "max_tokens": 64, "stream": true});
    a.patch(
        &user_url,
        json!({"daily_token_limit": 1}),
        Some(&admin.access),
    )
    .await;
    let refused = b.chat(&t.access, turn.clone(), None).await;
    let detail = refused.problem(StatusCode::TOO_MANY_REQUESTS)["detail"]
        .as_str()
        .unwrap()
        .to_string();
    let reserved: i64 = detail
        .split("up to ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let limit = 10 * reserved;
    a.patch(
        &user_url,
        json!({"daily_token_limit": limit}),
        Some(&admin.access),
    )
    .await;

    let turns = (0..30).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.chat(&t.access, turn.clone(), None)
    });
    let statuses: Vec<u16> = futures_util::future::join_all(turns)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        ok + statuses.iter().filter(|s| **s == 429).count(),
        30,
        "{statuses:?}"
    );
    assert!((10..30).contains(&ok), "{statuses:?}");
    let report = a
        .get("/api/v1/admin/usage?group_by=user", Some(&admin.access))
        .await
        .json();
    let billed: i64 = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["key"] == t.user["id"])
        .map(|g| g["input_tokens"].as_i64().unwrap() + g["output_tokens"].as_i64().unwrap())
        .sum();
    assert!(billed <= limit, "billed {billed} of {limit}");
}

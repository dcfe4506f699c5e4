//! The production store: remote libSQL over its HTTP protocol (sqld, as Turso runs it), with JWT
//! auth. Skipped, with a message, where `../shared/tools/sqld` is absent.

use axum::http::StatusCode;
use codechat::{
    config::DatabaseConfig,
    store::{Store, StoreError},
};
use codechat_api_tests::{sqld::Sqld, TestApp, PASSWORD};
use serde_json::json;

/// An app on `sqld` through a proxy that counts what passes (no added delay).
async fn proxied_app(sqld: &Sqld) -> (codechat_api_tests::proxy::LatencyProxy, TestApp) {
    use codechat_api_tests::proxy::LatencyProxy;
    let proxy = LatencyProxy::start(sqld.addr(), std::time::Duration::ZERO).await;
    let app = TestApp::with_env(&[
        ("LIBSQL_URL", &proxy.url()),
        ("LIBSQL_AUTH_TOKEN", &sqld.token()),
    ])
    .await;
    (proxy, app)
}

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
    // Knowledge on the server: the document and its chunks in batches, FTS5 and the vector index
    // (sqld is libSQL), and a turn that cites it.
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
    assert_eq!(app.state.store().slow_writes(), 0, "see the warning logged");
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
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let (proxy, app) = proxied_app(&sqld).await;
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

    let (before, writes_before) = (proxy.requests(), proxy.writes());
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
    // The user message, then the answer with its usage: what bounds turns per database.
    assert_eq!(
        proxy.writes() - writes_before,
        2,
        "write statements of a turn"
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
    // A streamed turn also opens its answer's stream and stores its text as it grows (one chunk
    // for an answer this short): two statements more, written beside the stream.
    let n = trips(before);
    assert!((1..=6).contains(&n), "a streamed turn: {n} round trips");

    // Everything stored, counters included.
    let msgs = app.messages(&t.access, &id).await;
    assert_eq!(msgs.len(), 6, "{msgs:?}");
    let c = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&t.access))
        .await
        .json();
    assert_eq!(c["message_count"], 6, "{c}");
    let (before, writes_before) = (proxy.requests(), proxy.writes());
    assert_eq!(app.me(&t.access).await.status, StatusCode::OK);
    assert_eq!(trips(before), 1, "GET /users/me reads the user once");
    assert_eq!(proxy.writes(), writes_before, "a read writes nothing");
}

/// A branch turn (an edit, a regeneration) stores its message in the statement a plain turn uses:
/// the path moves inside it. So it costs the plain turn's round trips and write statements (a
/// regeneration stores no user message: one write fewer). Switching, sharing, forking and searching
/// work on the remote store too.
#[tokio::test]
async fn branch_turns_cost_what_a_plain_turn_costs_on_remote_libsql() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let (proxy, app) = proxied_app(&sqld).await;
    let t = app.register("branch-trips@example.com").await;
    let first = app
        .chat(&t.access, json!({"message": "first"}), None)
        .await
        .json();
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let second = app
        .chat(
            &t.access,
            json!({"conversation_id": id, "message": "second"}),
            None,
        )
        .await
        .json();

    let cost = |body: serde_json::Value| {
        let app = &app;
        let proxy = &proxy;
        let token = t.access.clone();
        async move {
            let (before, writes_before) = (proxy.requests(), proxy.writes());
            let res = app.chat(&token, body.clone(), None).await;
            assert_eq!(res.status, StatusCode::OK, "{body}: {}", res.text());
            (
                proxy.requests() - before,
                proxy.writes() - writes_before,
                res.json(),
            )
        }
    };
    let (plain, plain_writes, _) = cost(json!({"conversation_id": id, "message": "plain"})).await;
    let (edit, edit_writes, edited) = cost(json!({"conversation_id": id,
        "parent_id": first["assistant_message"]["id"], "message": "edited"}))
    .await;
    assert_eq!((edit, edit_writes), (plain, plain_writes), "an edit");
    let (regenerate, regenerate_writes, _) = cost(json!({"conversation_id": id,
        "regenerate": edited["assistant_message"]["id"]}))
    .await;
    assert_eq!(
        (regenerate, regenerate_writes),
        (plain - 1, plain_writes - 1),
        "a regeneration stores no user message"
    );
    // An answer off the shown path: the path moves there first (two statements and a read more).
    let (off_path, _, _) = cost(json!({"conversation_id": id,
        "regenerate": second["assistant_message"]["id"]}))
    .await;
    assert_eq!(off_path, plain - 1 + 3, "a regeneration off the path");

    // The regenerated answer's branch is shown; the first edit is one switch away.
    let path = app.messages(&t.access, &id).await;
    assert_eq!(path.len(), 4);
    assert_eq!(path[3]["sibling_ids"].as_array().unwrap().len(), 2);
    let res = app
        .put(
            &format!("/api/v1/conversations/{id}/active-leaf"),
            json!({"message_id": first["assistant_message"]["id"]}),
            Some(&t.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(app.messages(&t.access, &id).await.len(), 2);

    let share = app
        .post(
            &format!("/api/v1/conversations/{id}/shares"),
            json!({}),
            Some(&t.access),
        )
        .await;
    assert_eq!(share.status, StatusCode::CREATED, "{}", share.text());
    let token = share.json()["token"].as_str().unwrap().to_string();
    let shared = app
        .get(&format!("/api/v1/shared/{token}"), None)
        .await
        .json();
    assert_eq!(shared["messages"].as_array().unwrap().len(), 2);
    let fork = app
        .post(
            &format!("/api/v1/shared/{token}/fork"),
            json!({}),
            Some(&t.access),
        )
        .await;
    assert_eq!(fork.status, StatusCode::CREATED, "{}", fork.text());
    let found = app
        .get("/api/v1/search/messages?q=edited", Some(&t.access))
        .await
        .json();
    assert_eq!(found["items"].as_array().unwrap().len(), 3, "{found}");
}

/// Statements reuse a few kept streams instead of opening (and closing) one each: sqld checkpoints
/// on every stream it closes, and a stream per statement is what let 32 writers stall it
/// (bench/README.md). Statements at once never hold more than eight. A stream the server let go
/// (its baton refused) costs a new stream, and the statement on it runs once.
#[tokio::test]
async fn statements_share_kept_streams_and_outlive_a_lost_one() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let (proxy, app) = proxied_app(&sqld).await;
    let t = app.register("streams@example.com").await;

    let before = proxy.new_streams();
    for _ in 0..10 {
        assert_eq!(app.me(&t.access).await.status, StatusCode::OK);
    }
    let first = app.chat(&t.access, json!({"message": "kept"}), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let opened = proxy.new_streams() - before;
    assert!(
        opened <= 1,
        "10 reads and a turn, one after another, opened {opened} streams"
    );

    // Thirty at once share the process's eight streams (waiting for one) rather than open more.
    let before = proxy.new_streams();
    let reads = (0..30).map(|_| app.me(&t.access));
    for res in futures_util::future::join_all(reads).await {
        assert_eq!(res.status, StatusCode::OK);
    }
    let opened = proxy.new_streams() - before;
    assert!(opened <= 8, "30 reads at once opened {opened} streams");

    proxy.spoil_next_write_baton();
    let res = app.chat(&t.access, json!({"message": "once"}), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(proxy.spoiled(), 1, "a write went out on a kept stream");
    let id = res.json()["conversation_id"].as_str().unwrap().to_string();
    let msgs = app.messages(&t.access, &id).await;
    assert_eq!(msgs.len(), 2, "the question and its answer, once: {msgs:?}");
    assert_eq!(app.state.store().slow_writes(), 0);
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

/// A document of `bytes` bytes of Markdown: sections of prose with headings, words varied enough
/// to give the full-text index real work.
fn handbook(bytes: usize) -> String {
    let words = [
        "lambda", "socket", "stream", "batch", "index", "vector", "token", "budget", "answer",
        "project", "archive", "lease", "writer", "server", "request", "delta", "window", "cost",
    ];
    let mut text = String::with_capacity(bytes + 512);
    let mut n = 0usize;
    while text.len() < bytes - 400 {
        if n.is_multiple_of(60) {
            text.push_str(&format!("\n\n## Section {}\n\n", n / 60));
        }
        let w = words[(n * 7 + n / 3) % words.len()];
        text.push_str(&format!("{w}{} ", n % 97));
        if n % 13 == 12 {
            text.push_str(".\n");
        }
        n += 1;
    }
    text.truncate(bytes);
    text
}

/// A zip of `files` small text files in nested folders, deflated.
fn many_files_zip(files: usize) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..files {
        w.start_file(format!("src/m{:02}/f{i:05}.rs", i % 50), options)
            .unwrap();
        write!(w, "// file {i}\npub fn f{i}() -> usize {{ {i} }}\n").unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Long work beside live traffic on the remote store: a 512 KiB knowledge document (indexed inside
/// its request) and a 5 000-file zip, while other users log in, chat and read their profile. The
/// long work writes in bounded batches, so every request answers and none with a 5xx, the document
/// and the project end complete, and no write held the database past the slow-write threshold
/// (each would have logged a warning naming it). Before the batches, the document's chunks went
/// in one statement and the zip's rows in one transaction, which the server interrupts past 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_work_beside_live_traffic_on_remote_libsql() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let app = Arc::new(remote_app(&sqld).await);
    let owner = app.register("bulk@example.com").await.access;
    let live: Vec<String> = (0..3).map(|i| format!("live{i}@example.com")).collect();
    for email in &live {
        app.register(email).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let traffic: Vec<_> = live
        .into_iter()
        .map(|email| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
                let mut seen: Vec<(&'static str, StatusCode)> = Vec::new();
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    let login = app.login(&email, PASSWORD).await;
                    seen.push(("login", login.status));
                    let Some(token) = login.json()["access_token"].as_str().map(str::to_string)
                    else {
                        continue;
                    };
                    let turn = app
                        .chat(&token, json!({"message": "still answering?"}), None)
                        .await;
                    seen.push(("chat", turn.status));
                    seen.push(("me", app.me(&token).await.status));
                }
                seen
            })
        })
        .collect();

    let text = handbook(512 * 1024);
    let doc = app
        .post(
            "/api/v1/knowledge/documents",
            json!({"title": "Handbook", "content": text}),
            Some(&owner),
        )
        .await;
    assert_eq!(doc.status, StatusCode::CREATED, "{}", doc.text());
    let doc = doc.json();
    assert_eq!(doc["status"], "ready", "{doc}");
    assert!(doc["chunk_count"].as_i64().unwrap() > 300, "{doc}");

    let (content_type, body) = codechat_api_tests::multipart(&[(
        "file",
        Some("many.zip"),
        Some("application/zip"),
        &many_files_zip(5_000),
    )]);
    let project = app
        .send(
            axum::http::Request::post("/api/v1/projects/upload")
                .header("authorization", format!("Bearer {owner}"))
                .header("content-type", content_type)
                .body(axum::body::Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.text());
    let project = project.json();
    assert_eq!(project["file_count"], 5_000, "{project}");

    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for task in traffic {
        for (what, status) in task.await.unwrap() {
            assert!(!status.is_server_error(), "{what} answered {status}");
            answered += 1;
        }
    }
    assert!(answered >= 9, "the live traffic ran: {answered} requests");

    // Complete as stored: every chunk findable, every file listed.
    let hits = app
        .get("/api/v1/knowledge/search?q=archive", Some(&owner))
        .await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.text());
    assert_eq!(hits.json()["items"][0]["document_id"], doc["id"]);
    let id = project["id"].as_str().unwrap();
    let listed = app
        .get(&format!("/api/v1/projects/{id}"), Some(&owner))
        .await
        .json();
    assert_eq!(listed["file_count"], 5_000, "{listed}");
    assert_eq!(
        app.state.store().slow_writes(),
        0,
        "a write held the database past {:?} (see the warning logged)",
        codechat::store::SLOW_WRITE
    );

    // Deleting both goes in batches too.
    for path in [
        format!("/api/v1/projects/{id}"),
        format!(
            "/api/v1/knowledge/documents/{}",
            doc["id"].as_str().unwrap()
        ),
    ] {
        let gone = app.delete(&path, Some(&owner)).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{path}");
    }
    assert_eq!(app.state.store().slow_writes(), 0);
}

/// A streamed answer resumed at random points on two instances over one sqld: nothing repeated or
/// missing (the same walk as on the file store, `resume::reconnect_at_random_points`).
#[tokio::test]
async fn resumed_streams_lose_nothing_on_remote_libsql() {
    let Some(sqld) = Sqld::start().await else {
        return;
    };
    let env = [
        ("LIBSQL_URL", sqld.url.clone()),
        ("LIBSQL_AUTH_TOKEN", sqld.token()),
        ("ECHO_DELAY_MS", "8".into()),
        ("RESUME_POLL_MS", "20".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = (TestApp::with_env(&env).await, TestApp::with_env(&env).await);
    crate::resume::reconnect_at_random_points(&a, &b, 7).await;
}

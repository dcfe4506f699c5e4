//! Daily token budgets (reserved before the model is called, settled after, never overspent, even
//! by several processes at once) and the turn rate limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use codechat_api_tests::{TestApp, TestResponse, Tokens};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const ADMIN: &str = "quota-admin@example.com";

/// Seconds from now to the next 00:00 UTC.
fn to_midnight() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    86_400 - now % 86_400
}

fn assert_limited(res: &TestResponse, code: &str) -> String {
    let problem = res.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["code"], code, "{problem}");
    let retry: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    if code == "daily_token_limit" {
        assert!(retry.abs_diff(to_midnight()) <= 5, "{retry}");
    } else {
        assert!((1..=60).contains(&retry), "{retry}");
    }
    problem["detail"].as_str().unwrap().to_string()
}

/// The reservation a turn makes, from the problem of a user whose budget is 1 token.
fn reserved_tokens(detail: &str) -> i64 {
    let rest = detail.split("up to ").nth(1).expect(detail);
    rest.split(' ').next().unwrap().parse().expect(detail)
}

/// Tokens billed to `user` today, from the admin usage report.
async fn billed_today(app: &TestApp, admin: &Tokens, user: &Tokens) -> i64 {
    let today = time_today();
    let report = app
        .get(
            &format!("/api/v1/admin/usage?group_by=user&from={today}&to={today}"),
            Some(&admin.access),
        )
        .await
        .json();
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["key"] == user.user["id"])
        .map(|g| g["input_tokens"].as_i64().unwrap() + g["output_tokens"].as_i64().unwrap())
        .sum()
}

fn time_today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test]
async fn turns_over_the_budget_answer_429_and_store_nothing() {
    let app = TestApp::with_env(&[
        ("BOOTSTRAP_ADMIN_EMAIL", ADMIN),
        ("DEFAULT_DAILY_TOKEN_LIMIT", "1000000"),
    ])
    .await;
    let admin = app.register(ADMIN).await;
    let t = app.register("spender@example.com").await;
    let turn = json!({"message": "How much?", "max_tokens": 64});

    // 0 blocks, before anything is stored (streamed turns too: the refusal comes before the stream).
    app.set_daily_limit(&admin.access, &t, json!(0)).await;
    let detail = assert_limited(
        &app.chat(&t.access, turn.clone(), None).await,
        "daily_token_limit",
    );
    assert!(detail.contains("daily_token_limit is 0"), "{detail}");
    let mut streamed = turn.clone();
    streamed["stream"] = json!(true);
    assert_limited(
        &app.chat(&t.access, streamed, None).await,
        "daily_token_limit",
    );
    assert_eq!(
        app.get("/api/v1/conversations", Some(&t.access))
            .await
            .json()["items"],
        json!([])
    );

    // A budget below one turn's maximum names max_tokens as the way out.
    app.set_daily_limit(&admin.access, &t, json!(1)).await;
    let detail = assert_limited(
        &app.chat(&t.access, turn.clone(), None).await,
        "daily_token_limit",
    );
    assert!(detail.contains("lower max_tokens"), "{detail}");
    let reserved = reserved_tokens(&detail);

    // Exactly one turn's maximum: one turn goes, and what it really used is billed against the day.
    app.set_daily_limit(&admin.access, &t, json!(reserved))
        .await;
    let res = app.chat(&t.access, turn.clone(), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let used = billed_today(&app, &admin, &t).await;
    assert!(used > 0 && used <= reserved, "{used} of {reserved}");
    let detail = assert_limited(
        &app.chat(&t.access, turn.clone(), None).await,
        "daily_token_limit",
    );
    assert!(detail.contains(&format!("{used} used today")), "{detail}");
    assert_eq!(
        app.get("/api/v1/conversations", Some(&t.access))
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Room for the used tokens plus one more turn: it goes again. `null` is the default budget.
    app.set_daily_limit(&admin.access, &t, json!(used + reserved))
        .await;
    let res = app.chat(&t.access, turn.clone(), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    app.set_daily_limit(&admin.access, &t, Value::Null).await;
    let res = app.chat(&t.access, turn, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test]
async fn a_failed_model_call_gives_its_reservation_back() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            codechat_api_tests::fakes::openai_error("bad request", "invalid_request_error"),
        ))
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(
        &server,
        &[
            ("BOOTSTRAP_ADMIN_EMAIL", ADMIN),
            ("DEFAULT_MODEL", "local/echo"),
        ],
    )
    .await;
    let admin = app.register(ADMIN).await;
    let t = app.register("unlucky@example.com").await;
    let turn = json!({"message": "Hi", "max_tokens": 64, "model": "openai/gpt-4o-mini"});
    app.set_daily_limit(&admin.access, &t, json!(1)).await;
    let reserved = reserved_tokens(&assert_limited(
        &app.chat(&t.access, turn.clone(), None).await,
        "daily_token_limit",
    ));
    app.set_daily_limit(&admin.access, &t, json!(reserved))
        .await;
    // Each failed turn stores its failed answer and frees its hold; without that the second would
    // find the budget taken.
    for _ in 0..3 {
        let res = app.chat(&t.access, turn.clone(), None).await;
        assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.text());
    }
    assert_eq!(billed_today(&app, &admin, &t).await, 0);
    let mut local = turn;
    local["model"] = json!("local/echo");
    let res = app.chat(&t.access, local, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test]
async fn the_rate_limit_counts_turns_per_minute() {
    let app = TestApp::with_env(&[("RATE_LIMIT_TURNS_PER_MINUTE", "2")]).await;
    let t = app.register("hasty@example.com").await;
    let other = app.register("patient@example.com").await;
    // A minute can roll over mid-test: then the count starts again, and the test tries once more.
    for attempt in 0..2 {
        let minute = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60;
        let mut statuses = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let res = app.chat(&t.access, json!({"message": "go"}), None).await;
            statuses.push(res.status);
            last = Some(res);
        }
        if SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
            != minute
        {
            assert_eq!(attempt, 0, "two minute boundaries in one test");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let last = last.unwrap();
        if attempt == 0 {
            assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
        }
        assert_limited(&last, "rate_limit");
        // Another user's minute is their own.
        let res = app
            .chat(&other.access, json!({"message": "go"}), None)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        return;
    }
}

/// How many turns each child process makes, and how many child processes.
const CHILD_TURNS: usize = 12;
const CHILDREN: usize = 3;
const PARENT_TURNS: usize = 50 - CHILD_TURNS * CHILDREN;

/// Streamed, so the offline model's pause between words keeps the turns in flight together.
fn quota_turn() -> Value {
    json!({"message": "quota?", "max_tokens": 64, "stream": true})
}

/// Waits until the shared start instant (milliseconds since the epoch), so every process's turns
/// run at once.
async fn wait_until(start_ms: u128) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    if start_ms > now {
        tokio::time::sleep(Duration::from_millis((start_ms - now) as u64)).await;
    }
}

async fn concurrent_turns(app: &TestApp, token: &str, n: usize) -> Vec<TestResponse> {
    let turns = (0..n).map(|_| app.chat(token, quota_turn(), None));
    futures_util::future::join_all(turns).await
}

/// One of the function processes of [`fifty_turns_in_four_processes_never_overspend`]: an app on
/// the parent's database file making its turns at the agreed instant. Ignored when run directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a child process of fifty_turns_in_four_processes_never_overspend"]
async fn quota_child_process() {
    let Ok(db) = std::env::var("QUOTA_CHILD_DB") else {
        return;
    };
    let token = std::env::var("QUOTA_CHILD_TOKEN").unwrap();
    let start: u128 = std::env::var("QUOTA_CHILD_START_MS")
        .unwrap()
        .parse()
        .unwrap();
    let app = TestApp::with_env(&[
        ("LIBSQL_URL", &format!("file:{db}")),
        ("ECHO_DELAY_MS", "50"),
    ])
    .await;
    wait_until(start).await;
    for res in concurrent_turns(&app, &token, CHILD_TURNS).await {
        println!("QUOTA_CHILD_STATUS {}", res.status.as_u16());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_turns_in_four_processes_never_overspend() {
    let app = TestApp::with_env(&[("BOOTSTRAP_ADMIN_EMAIL", ADMIN), ("ECHO_DELAY_MS", "50")]).await;
    let admin = app.register(ADMIN).await;
    let t = app.register("crowd@example.com").await;
    app.set_daily_limit(&admin.access, &t, json!(1)).await;
    let reserved = reserved_tokens(&assert_limited(
        &app.chat(&t.access, quota_turn(), None).await,
        "daily_token_limit",
    ));
    let limit = 10 * reserved;
    app.set_daily_limit(&admin.access, &t, json!(limit)).await;

    let db = app.data_dir().join("codechat.db");
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3000;
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "quotas::quota_child_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env("QUOTA_CHILD_DB", &db)
                .env("QUOTA_CHILD_TOKEN", &t.access)
                .env("QUOTA_CHILD_START_MS", start.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("the test binary starts again as a child")
        })
        .collect();
    wait_until(start).await;
    let mut statuses: Vec<u16> = concurrent_turns(&app, &t.access, PARENT_TURNS)
        .await
        .iter()
        .map(|r| {
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                assert_limited(r, "daily_token_limit");
            }
            r.status.as_u16()
        })
        .collect();
    for child in children {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "a child process failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Vec<u16> = text
            .lines()
            .filter_map(|l| l.strip_prefix("QUOTA_CHILD_STATUS "))
            .map(|s| s.trim().parse().unwrap())
            .collect();
        assert_eq!(got.len(), CHILD_TURNS, "{text}");
        statuses.extend(got);
    }
    assert_eq!(statuses.len(), 50);
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + refused, 50, "only answers and refusals: {statuses:?}");
    // The first ten reservations always fit; what was billed never passes the budget.
    assert!(ok >= 10, "{ok} turns went through");
    let billed = billed_today(&app, &admin, &t).await;
    eprintln!("{ok} of 50 turns answered, {refused} refused; {billed} of {limit} tokens billed");
    assert!(
        billed <= limit,
        "billed {billed} of a {limit} budget ({ok} turns)"
    );
    // Without the reservation every turn would see an untouched budget and all 50 would run.
    assert!(refused > 0, "{statuses:?}");
    // A refused turn stored nothing: one conversation per answered turn.
    let listed = app
        .get("/api/v1/conversations?limit=100", Some(&t.access))
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), ok);
}

/// The files sent with a message count against the budget before the call: a 200 KB text file is
/// about 50 000 tokens, so a user with 3 000 left is refused before any model call, and nothing is
/// stored (the attachment stays unsent).
#[tokio::test]
async fn an_attached_file_counts_against_the_budget_before_the_call() {
    let server = MockServer::start().await;
    codechat_api_tests::fakes::reply_always(
        &server,
        ResponseTemplate::new(200).set_body_json(codechat_api_tests::fakes::openai_completion(
            "read it", 10, 2, 0,
        )),
    )
    .await;
    let app = TestApp::with_openai_server(&server, &[("BOOTSTRAP_ADMIN_EMAIL", ADMIN)]).await;
    let admin = app.register(ADMIN).await;
    let user = app.register("quota-files@example.com").await;
    app.set_daily_limit(&admin.access, &user, json!(3000)).await;

    let text = "a".repeat(200 * 1024);
    let res = app
        .post_multipart(
            "/api/v1/attachments",
            &user.access,
            &[("file", Some("big.txt"), Some("text/plain"), text.as_bytes())],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let attachment = res.json()["id"].as_str().unwrap().to_string();

    let res = app
        .chat(
            &user.access,
            json!({"message": "summarise", "attachment_ids": [attachment], "max_tokens": 500}),
            None,
        )
        .await;
    assert_limited(&res, "daily_token_limit");
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "no model call"
    );
    let conversations = app
        .get("/api/v1/conversations", Some(&user.access))
        .await
        .json();
    assert_eq!(conversations["items"], json!([]), "{conversations}");
    let a = app
        .get(
            &format!("/api/v1/attachments/{attachment}"),
            Some(&user.access),
        )
        .await
        .json();
    assert!(a["message_id"].is_null(), "{a}");

    // The same message without the file fits.
    let res = app
        .chat(
            &user.access,
            json!({"message": "summarise", "max_tokens": 500}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

//! What budgets cost a chat turn, and the admin usage report over many usage rows, on the local
//! store (in-process, no transport).
//!
//! - the reservation alone: one hold taken and given back through `codechat::quotas`, as a turn
//!   does (the answer's statement settles it in a real turn, so this over-counts by one statement);
//! - a new-conversation turn of a user with a budget against one without (interleaved, so the
//!   machine's noise falls on both alike);
//! - `GET /admin/usage` grouped by user, model and day over 100 000 usage rows (and 1 000 000).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{in_process::InProcess, Row, CHAT_INVOKES, PASSWORD};

pub const ADMIN_EMAIL: &str = "admin@bench.dev";
const RESERVATIONS: usize = 2000;
const REPORT_INVOKES: usize = 30;

pub async fn measure(app: &InProcess, data: &Path) -> Vec<Row> {
    let db_path = data.join("codechat.db");
    let db = libsql::Builder::new_local(&db_path).build().await.unwrap();
    let raw = db.connect().unwrap();
    raw.busy_timeout(Duration::from_secs(5)).unwrap();

    let free = app.register("free@bench.dev", PASSWORD).await;
    let budgeted = app.register("budget@bench.dev", PASSWORD).await;
    raw.execute(
        "UPDATE users SET daily_token_limit = 1000000000000 WHERE email = 'budget@bench.dev'",
        (),
    )
    .await
    .unwrap();

    let mut rows = vec![reservation(&db_path).await];

    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..CHAT_INVOKES * 2 {
        let token = if i % 2 == 0 { &free } else { &budgeted };
        let body = json!({"message": format!("budget {i}")});
        let started = Instant::now();
        let (status, answer) = app
            .call("POST", "/api/v1/chat", Some(token), Some(body))
            .await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{answer}");
        if i % 2 == 0 { &mut without } else { &mut with }.push(took);
    }
    rows.push(Row::from_times(
        "in-process",
        "POST /chat, new conversation, no budget",
        without,
    ));
    rows.push(Row::from_times(
        "in-process",
        "POST /chat, new conversation, with budget",
        with,
    ));

    let admin = match app.try_register(ADMIN_EMAIL, PASSWORD).await {
        Some(token) => token,
        None => app.login(ADMIN_EMAIL, PASSWORD).await,
    };
    for total in [100_000u64, 1_000_000] {
        seed_usage(&raw, total).await;
        for group in ["user", "model", "day"] {
            let path =
                format!("/api/v1/admin/usage?group_by={group}&from=2026-01-01&to=2026-12-31");
            let mut row = app
                .measure(
                    "",
                    REPORT_INVOKES,
                    |_| ("GET", path.clone(), None),
                    &admin,
                    200,
                )
                .await;
            row.route = format!("GET /admin/usage by {group}, {}k rows", total / 1000);
            rows.push(row);
        }
    }
    rows
}

/// One hold taken and released through the domain functions a turn uses.
async fn reservation(db_path: &Path) -> Row {
    let store = codechat::store::Store::open(&codechat::config::DatabaseConfig::LocalFile(
        db_path.to_path_buf(),
    ))
    .await
    .unwrap();
    let conn = store.conn().await.unwrap();
    let user = conn
        .user_by_email("budget@bench.dev")
        .await
        .unwrap()
        .unwrap();
    let budget = codechat::quotas::Budget {
        user_id: user.id,
        daily_limit: Some(1_000_000_000_000),
        settings: codechat::quotas::QuotaSettings {
            default_daily_limit: None,
            turns_per_minute: None,
            hold_ttl: Duration::from_secs(300),
        },
    };
    let mut times = Vec::with_capacity(RESERVATIONS);
    for _ in 0..RESERVATIONS {
        let started = Instant::now();
        let holds = codechat::quotas::reserve(&conn, &budget, 4096)
            .await
            .unwrap();
        holds.release(&conn).await;
        times.push(started.elapsed());
    }
    Row::from_times("in-process", "quota hold taken and released", times)
}

/// Usage rows up to `total` (of 200 users, 4 models, spread over 2026), in one transaction.
async fn seed_usage(conn: &libsql::Connection, total: u64) {
    let mut rows = conn.query("SELECT COUNT(*) FROM usage", ()).await.unwrap();
    let have: u64 = rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap() as u64;
    if have >= total {
        return;
    }
    let tx = conn.transaction().await.unwrap();
    let stmt = tx
        .prepare(
            "INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens,
                                output_tokens, cached_tokens, cost_usd, created_at)
             VALUES (?1, ?1, ?1, ?2, ?3, 'chat', ?4, ?5, 0, ?6, ?7)",
        )
        .await
        .unwrap();
    let models = [
        "local/echo",
        "openai/gpt-4o-mini",
        "bedrock/claude-sonnet-4",
        "bedrock/nova-lite",
    ];
    for i in have..total {
        let day = i % 360;
        let at = format!(
            "2026-{:02}-{:02}T{:02}:{:02}:00.{:06}Z",
            day / 30 + 1,
            day % 30 + 1,
            (i / 360) % 24,
            (i / 8640) % 60,
            i % 1_000_000
        );
        stmt.execute(libsql::params![
            format!("bench-usage-{i:09}"),
            format!("bench-user-{:03}", i % 200),
            models[(i % 4) as usize],
            (100 + i % 900) as i64,
            (20 + i % 300) as i64,
            (i % 1000) as f64 / 1e6,
            at
        ])
        .await
        .unwrap();
        stmt.reset();
    }
    tx.commit().await.unwrap();
}

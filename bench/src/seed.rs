//! Users and large tables for the page benchmarks, written straight into the store.

use serde_json::json;

use crate::runtime::{body, event, status, Function};

pub async fn bench_user(auth: &Function, email: &str) -> (String, String) {
    let (res, _) = auth
        .invoke(event(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": email, "password": crate::PASSWORD})),
        ))
        .await;
    assert_eq!(status(&res), 201, "register {email}: {res}");
    let b = body(&res);
    (
        b["user"]["id"].as_str().unwrap().to_string(),
        b["access_token"].as_str().unwrap().to_string(),
    )
}

/// A UUID-shaped id, distinct per (kind, n).
fn seeded_id(kind: u32, n: u64) -> String {
    format!("01900000-{kind:04x}-7000-8000-{n:012x}")
}

pub async fn seed_conversation(
    conn: &libsql::Connection,
    user_id: &str,
    n: u64,
    messages: u64,
) -> String {
    let id = seeded_id(1, n);
    let tx = conn.transaction().await.unwrap();
    tx.execute(
        // The store's trigger counts the messages as they are inserted.
        "INSERT INTO conversations (id, user_id, title, model, created_at, updated_at, activity_at)
         VALUES (?1, ?2, 'seeded', 'local/echo', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z',
                 '2026-01-01T00:00:00.000000Z')",
        libsql::params![id.clone(), user_id],
    )
    .await
    .unwrap();
    let stmt = tx
        .prepare("INSERT INTO messages (id, conversation_id, role, content, status, model, created_at) VALUES (?1, ?2, ?3, ?4, 'complete', 'local/echo', '2026-01-01T00:00:00.000000Z')")
        .await
        .unwrap();
    for i in 0..messages {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        stmt.execute(libsql::params![
            seeded_id(2 + n as u32, i),
            id.clone(),
            role,
            format!("seeded message number {i} with a little text")
        ])
        .await
        .unwrap();
        stmt.reset();
    }
    tx.commit().await.unwrap();
    id
}

pub async fn seed_conversations(conn: &libsql::Connection, user_id: &str, count: u64) {
    let tx = conn.transaction().await.unwrap();
    let stmt = tx
        .prepare(
            "INSERT INTO conversations (id, user_id, title, model, message_count, created_at, updated_at, activity_at)
             VALUES (?1, ?2, ?3, 'local/echo', 0, ?4, ?4, ?4)",
        )
        .await
        .unwrap();
    for i in 0..count {
        let at = format!("2026-01-01T00:{:02}:{:02}.{:06}Z", (i / 60) % 60, i % 60, i);
        stmt.execute(libsql::params![
            seeded_id(9, i + count * 100_000),
            user_id,
            format!("seeded {i}"),
            at
        ])
        .await
        .unwrap();
        stmt.reset();
    }
    tx.commit().await.unwrap();
}

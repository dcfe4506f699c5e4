//! Versioned schema migrations, embedded in every binary.
//!
//! Several cold starts may race on one database (every function is its own process under
//! `cargo lambda watch`, and Lambda starts many instances at once). The fast path is one read of the
//! applied version; only when something is pending does a process take the write lock
//! (`BEGIN IMMEDIATE`), re-read the version under it, and apply what is still missing, so each
//! migration runs exactly once.

use libsql::TransactionBehavior;

use super::{Conn, StoreResult};

/// Append-only: never edit a released migration, add a new one.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
        is_active INTEGER NOT NULL DEFAULT 1,
        daily_token_limit INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE refresh_tokens (
        jti TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        family_id TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        revoked_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
    CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
    "#,
    ),
    (
        2,
        r#"
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        model TEXT NOT NULL,
        agent_id TEXT,
        project_id TEXT,
        summary TEXT,
        -- messages with seq <= summary_through_seq are covered by the summary
        summary_through_seq INTEGER,
        message_count INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_message_at TEXT,
        -- the list's sort key: last_message_at, or created_at before the first message
        activity_at TEXT NOT NULL
    );
    CREATE INDEX conversations_user_activity ON conversations(user_id, activity_at DESC, id DESC);

    -- seq (the rowid) orders messages; ids are for clients.
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
        content TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('complete', 'incomplete', 'failed')),
        model TEXT,
        error TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_conversation ON messages(conversation_id, seq);

    CREATE TABLE usage (
        id TEXT PRIMARY KEY,
        message_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        model TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('chat', 'summary')),
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX usage_message ON usage(message_id);
    CREATE INDEX usage_conversation ON usage(conversation_id, model);
    CREATE INDEX usage_user_time ON usage(user_id, created_at);

    -- One row per (user, Idempotency-Key): the request it was first used with and, once the turn
    -- is over, the answer to replay.
    CREATE TABLE idempotency_keys (
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        request TEXT NOT NULL,
        status_code INTEGER,
        response TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    "#,
    ),
];

pub(super) async fn apply(conn: &Conn) -> StoreResult<()> {
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    conn.0
        .execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            (),
        )
        .await?;
    if current_version(&conn.0).await? >= latest {
        return Ok(());
    }
    let tx = conn
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .await?;
    let applied = current_version(&tx).await?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.execute_batch(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            libsql::params![*version, crate::ids::now()],
        )
        .await?;
        tracing::info!(version, "applied schema migration");
    }
    tx.commit().await?;
    Ok(())
}

async fn current_version(conn: &libsql::Connection) -> StoreResult<i64> {
    let mut rows = conn
        .query(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            (),
        )
        .await?;
    let row = rows
        .next()
        .await?
        .ok_or(super::StoreError::Corrupt("schema_migrations"))?;
    super::col(&row, 0, "schema_migrations.version")
}

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
pub(super) const MIGRATIONS: &[(i64, &str)] = &[(
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
)];

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

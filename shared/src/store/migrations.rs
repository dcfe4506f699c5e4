//! Versioned schema migrations: `shared/migrations/NNNN_name.sql`, embedded in every binary.
//!
//! Several cold starts may race on one database (every function is its own process under
//! `cargo lambda watch`, and Lambda starts many instances at once). The fast path is one read of the
//! applied version; only when something is pending does a process take the write lock
//! (`BEGIN IMMEDIATE`), re-read the version under it, and apply what is still missing, so each
//! migration runs exactly once.

use libsql::TransactionBehavior;

use super::{col, rows, Conn, StoreError, StoreResult};

macro_rules! migrations {
    ($($version:literal => $file:literal),+ $(,)?) => {
        &[$(($version, $file, include_str!(concat!("../../migrations/", $file)))),+]
    };
}

/// Append-only, in order: never edit a released migration, add a new file and a line here (a test
/// checks that this list and the folder agree).
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = migrations![
    1 => "0001_users_and_refresh_tokens.sql",
    2 => "0002_conversations_messages_usage.sql",
    3 => "0003_idempotency_leases.sql",
    4 => "0004_session_epoch.sql",
    5 => "0005_login_failures.sql",
    6 => "0006_one_statement_turn_writes.sql",
    7 => "0007_attachments.sql",
    8 => "0008_projects.sql",
    9 => "0009_upload_purpose.sql",
    10 => "0010_upload_outcomes.sql",
    11 => "0011_message_changes.sql",
    12 => "0012_unpack_lease.sql",
    13 => "0013_agents_admin_quotas.sql",
    14 => "0014_knowledge.sql",
    15 => "0015_knowledge_worker.sql",
    16 => "0016_vector_search_list.sql",
    17 => "0017_websocket_connections.sql",
    18 => "0018_api_keys.sql",
    19 => "0019_api_conversations.sql",
    20 => "0020_message_tool_calls.sql",
    21 => "0021_drop_chunks_vocab.sql",
    22 => "0022_bounded_imports.sql",
    23 => "0023_knowledge_fts_by_owner.sql",
    24 => "0024_fallbacks_and_usage_detail.sql",
    25 => "0025_model_settings.sql",
    26 => "0026_branches_and_history_search.sql",
];

pub(super) async fn apply(conn: &Conn) -> StoreResult<()> {
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    // One read on the fast path (a cold start against a remote store pays a round trip per statement).
    let applied = match current_version(conn).await {
        Ok(version) => version,
        Err(StoreError::Db(message)) if message.contains("no such table") => 0,
        Err(e) => return Err(e),
    };
    if applied >= latest {
        return Ok(());
    }
    conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            (),
        )
        .await?;
    let tx = conn
        .db
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .await?;
    let applied = version_in(rows(tx.query(VERSION, ()).await?).await?)?;
    for (version, file, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        tx.execute_batch(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            libsql::params![*version, crate::ids::now()],
        )
        .await?;
        tracing::info!(version, file, "applied schema migration");
    }
    tx.commit().await?;
    Ok(())
}

const VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

pub(super) async fn current_version(conn: &Conn) -> StoreResult<i64> {
    version_in(conn.query(VERSION, ()).await?)
}

fn version_in(rows: Vec<super::Row>) -> StoreResult<i64> {
    let row = rows
        .first()
        .ok_or(StoreError::Corrupt("schema_migrations"))?;
    col(row, 0, "schema_migrations.version")
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::{
        config::DatabaseConfig,
        store::{col, Conn, Store},
    };

    #[test]
    fn the_list_matches_the_folder_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.1).collect();
        assert_eq!(files, listed, "every migration file is listed, in order");
        for (i, (version, file, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
            assert!(file.starts_with(&format!("{version:04}_")), "{file}");
        }
    }

    /// A database as it was at `version`, holding two users' documents and `chunks` chunks
    /// ("word<i> common"), their owners alternating.
    async fn database_at(version: i64, path: &std::path::Path, chunks: i64) -> [String; 2] {
        let db = libsql::Builder::new_local(path).build().await.unwrap();
        let conn = db.connect().unwrap();
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            (),
        )
        .await
        .unwrap();
        for (v, _, sql) in MIGRATIONS.iter().filter(|m| m.0 <= version) {
            conn.execute_batch(sql).await.unwrap();
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 'then')", [*v])
                .await
                .unwrap();
        }
        let users = [crate::ids::UserId::new(), crate::ids::UserId::new()].map(|u| u.to_string());
        for (i, user) in users.iter().enumerate() {
            conn.execute(
                "INSERT INTO users (id, email, password_hash, display_name, created_at, updated_at)
                 VALUES (?1, ?2, 'x', 'x', 'then', 'then')",
                libsql::params![user.as_str(), format!("u{i}@example.com")],
            )
            .await
            .unwrap();
            conn.execute(
                "INSERT INTO documents (id, user_id, title, content_type, size, sha256, chunk_count,
                                        created_at, updated_at)
                 VALUES (?1, ?2, 'Doc', 'text/plain', 1, '0', ?3, 'then', 'then')",
                libsql::params![format!("d{i}"), user.as_str(), chunks / 2],
            )
            .await
            .unwrap();
        }
        for i in 1..=chunks {
            let owner = (i % 2) as usize;
            conn.execute(
                "INSERT INTO chunks (id, document_id, user_id, ord, heading, content, tokens)
                 VALUES (?1, ?2, ?3, ?1, '', ?4, 2)",
                libsql::params![
                    i,
                    format!("d{owner}"),
                    users[owner].as_str(),
                    format!("word{i} common")
                ],
            )
            .await
            .unwrap();
        }
        users
    }

    async fn matches(conn: &Conn, query: &str) -> i64 {
        let rows = conn
            .query(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?1",
                [query],
            )
            .await
            .unwrap();
        col(&rows[0], 0, "count").unwrap()
    }

    async fn add_chunk(conn: &Conn, user: &str, content: &str) -> i64 {
        let rows = conn
            .query(
                "INSERT INTO chunks (document_id, user_id, ord, heading, content, tokens)
                 VALUES ((SELECT id FROM documents WHERE user_id = ?1), ?1, 0, '', ?2, 2)
                 RETURNING id",
                [user, content],
            )
            .await
            .unwrap();
        col(&rows[0], 0, "chunks.id").unwrap()
    }

    #[tokio::test]
    async fn chunks_stored_before_the_owner_token_are_indexed_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let users = database_at(22, &path, 40).await;
        let store = Store::open(&DatabaseConfig::LocalFile(path)).await.unwrap();
        let (conn, other) = (store.conn().await.unwrap(), store.conn().await.unwrap());
        assert_eq!(
            matches(&conn, "common").await,
            0,
            "migration 23 indexes nothing itself"
        );

        assert!(conn.index_backfill_step(10).await.unwrap());
        assert_eq!(matches(&conn, "common").await, 10);
        // Chunks written meanwhile: one deleted after the step passed it, one before; a new one
        // takes the top id of the range still to do (SQLite reuses the largest free rowid), the
        // next one an id above it.
        conn.execute("DELETE FROM chunks WHERE id IN (5, 40)", ())
            .await
            .unwrap();
        assert_eq!(add_chunk(&conn, &users[0], "late arrival").await, 40);
        assert_eq!(add_chunk(&conn, &users[1], "latest arrival").await, 41);
        assert_eq!(matches(&conn, "arrival").await, 1, "41 is indexed at once");
        // Two instances stepping at once index each chunk once.
        let (a, b) = tokio::join!(conn.index_backfill_step(7), other.index_backfill_step(7));
        assert!(a.unwrap() && b.unwrap());
        while conn.index_backfill_step(10).await.unwrap() {}
        assert!(
            !conn.index_backfill_step(10).await.unwrap(),
            "done stays done"
        );

        assert_eq!(matches(&conn, "common").await, 38);
        assert_eq!(matches(&conn, "arrival").await, 2);
        conn.execute(
            "INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)",
            (),
        )
        .await
        .expect("the index agrees with the chunks");
        let owner0 = format!(
            "owner_token : \"{}0\" AND common",
            users[0].replace('-', "")
        );
        assert_eq!(matches(&conn, &owner0).await, 19);
    }
}

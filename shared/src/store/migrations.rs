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
    27 => "0027_resumable_streams.sql",
    28 => "0028_mcp_servers.sql",
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
        store::{col, Conn, FullText, Store},
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

        assert!(conn.backfill_step(FullText::Chunks, 10).await.unwrap());
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
        let (a, b) = tokio::join!(
            conn.backfill_step(FullText::Chunks, 7),
            other.backfill_step(FullText::Chunks, 7)
        );
        assert!(a.unwrap() && b.unwrap());
        while conn.backfill_step(FullText::Chunks, 10).await.unwrap() {}
        assert!(
            !conn.backfill_step(FullText::Chunks, 10).await.unwrap(),
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

    /// A flat conversation stored before migration 26: `messages` messages ("said <i>"), one user's.
    async fn conversation_at_25(path: &std::path::Path, messages: i64) -> (String, String) {
        let users = database_at(25, path, 0).await;
        let db = libsql::Builder::new_local(path).build().await.unwrap();
        let conn = db.connect().unwrap();
        let id = crate::ids::ConversationId::new().to_string();
        conn.execute(
            "INSERT INTO conversations (id, user_id, title, model, created_at, updated_at, activity_at)
             VALUES (?1, ?2, 'Old', 'local/echo', 'then', 'then', 'then')",
            libsql::params![id.as_str(), users[0].as_str()],
        )
        .await
        .unwrap();
        for i in 1..=messages {
            let role = if i % 2 == 1 { "user" } else { "assistant" };
            conn.execute(
                "INSERT INTO messages (id, conversation_id, role, content, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'complete', 'then')",
                libsql::params![
                    crate::ids::MessageId::new().to_string(),
                    id.as_str(),
                    role,
                    format!("said {i} earlier")
                ],
            )
            .await
            .unwrap();
        }
        (users[0].clone(), id)
    }

    /// One more old conversation of `user`'s, stored after the first, with one message.
    async fn conversation_at_25_beside(path: &std::path::Path, user: &str) -> (String, String) {
        let db = libsql::Builder::new_local(path).build().await.unwrap();
        let conn = db.connect().unwrap();
        let id = crate::ids::ConversationId::new().to_string();
        conn.execute(
            "INSERT INTO conversations (id, user_id, title, model, created_at, updated_at, activity_at)
             VALUES (?1, ?2, 'Beside', 'local/echo', 'then', 'then', 'then')",
            libsql::params![id.as_str(), user],
        )
        .await
        .unwrap();
        conn.execute(
            "INSERT INTO messages (id, conversation_id, role, content, status, created_at)
             VALUES (?1, ?2, 'user', 'said beside', 'complete', 'then')",
            libsql::params![crate::ids::MessageId::new().to_string(), id.as_str()],
        )
        .await
        .unwrap();
        (user.to_string(), id)
    }

    #[tokio::test]
    async fn flat_conversations_from_before_branches_read_as_paths_and_branch() {
        use crate::store::{NewMessage, Which};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (user, id) = conversation_at_25(&path, 4).await;
        let store = Store::open(&DatabaseConfig::LocalFile(path)).await.unwrap();
        let conn = store.conn().await.unwrap();
        let (user, id) = (user.parse().unwrap(), id.parse().unwrap());
        let conversation = conn.conversation(id, user).await.unwrap().unwrap();
        assert!(!conversation.branched);
        let path = conn
            .list_messages(&conversation, Which::ActivePath, None, 10)
            .await
            .unwrap();
        assert_eq!(path.len(), 4);
        assert_eq!(conversation.active_leaf_id, Some(path[3].id));
        // Each follows the one before it, alone under its parent.
        assert_eq!(path[0].parent, None);
        for pair in path.windows(2) {
            assert_eq!(pair[1].parent, Some(pair[0].as_parent()));
            assert_eq!(pair[1].sibling_ids, [pair[1].id]);
        }

        // An edit of the third message (under the second): the conversation becomes a tree.
        let new = NewMessage {
            id: crate::ids::MessageId::new(),
            conversation_id: id,
            role: crate::kinds::MessageRole::User,
            content: "said 3 again",
            status: crate::kinds::MessageStatus::Complete,
            model: None,
            error: None,
            changes: &[],
            agent_id: None,
            citations: &[],
            tool_calls: &[],
            fallback_from: None,
            parent: Some(path[1].as_parent()),
        };
        let edit = conn.append_message(new).await.unwrap();
        let conversation = conn.conversation(id, user).await.unwrap().unwrap();
        assert!(conversation.branched);
        assert_eq!(conversation.active_leaf_id, Some(edit.id));
        let now = conn
            .list_messages(&conversation, Which::ActivePath, None, 10)
            .await
            .unwrap();
        assert_eq!(
            now.iter().map(|m| m.id).collect::<Vec<_>>(),
            [path[0].id, path[1].id, edit.id]
        );
        assert_eq!(now[2].sibling_ids, [path[2].id, edit.id]);
        assert_eq!(now[1].parent, Some(path[0].as_parent()));
        let all = conn
            .list_messages(&conversation, Which::All, None, 10)
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(
            all[3].parent,
            Some(path[2].as_parent()),
            "learnt its parent"
        );
        assert!(!all[2].on_path && !all[3].on_path);

        // Back to the old branch.
        conn.set_active_path(id, path[3].id).await.unwrap();
        let conversation = conn.conversation(id, user).await.unwrap().unwrap();
        let back = conn
            .list_messages(&conversation, Which::ActivePath, None, 10)
            .await
            .unwrap();
        assert_eq!(
            back.iter().map(|m| m.id).collect::<Vec<_>>(),
            path.iter().map(|m| m.id).collect::<Vec<_>>()
        );
    }

    async fn history_hits(conn: &Conn, user: &str, word: &str) -> usize {
        conn.search_messages(user.parse().unwrap(), &[word.to_string()], None, 100)
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn messages_stored_before_history_search_are_indexed_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (user, id) = conversation_at_25(&path, 25).await;
        let (_, kept) = conversation_at_25_beside(&path, &user).await;
        let store = Store::open(&DatabaseConfig::LocalFile(path)).await.unwrap();
        let conn = store.conn().await.unwrap();
        let rows = conn
            .query(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'earlier'",
                (),
            )
            .await
            .unwrap();
        assert_eq!(
            col::<i64>(&rows[0], 0, "count").unwrap(),
            0,
            "migration 26 indexes nothing itself"
        );
        assert!(conn.backfill_step(FullText::Messages, 10).await.unwrap());
        // A conversation deleted while the backfill is under way, one after it.
        let (user_id, id) = (user.parse().unwrap(), id.parse().unwrap());
        assert!(conn.delete_conversation(id, user_id).await.unwrap());
        while conn.backfill_step(FullText::Messages, 10).await.unwrap() {}
        assert_eq!(history_hits(&conn, &user, "earlier").await, 0);
        assert_eq!(history_hits(&conn, &user, "beside").await, 1);
        assert!(conn
            .delete_conversation(kept.parse().unwrap(), user_id)
            .await
            .unwrap());
        assert_eq!(history_hits(&conn, &user, "beside").await, 0);
        conn.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            (),
        )
        .await
        .expect("the index agrees with the messages");
    }

    #[tokio::test]
    async fn the_first_search_starts_the_history_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (user, _) = conversation_at_25(&path, 3).await;
        let store = Store::open(&DatabaseConfig::LocalFile(path)).await.unwrap();
        let conn = store.conn().await.unwrap();
        assert_eq!(history_hits(&conn, &user, "earlier").await, 0);
        let mut found = 0;
        for _ in 0..100 {
            found = history_hits(&conn, &user, "earlier").await;
            if found == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(found, 3);
    }
}

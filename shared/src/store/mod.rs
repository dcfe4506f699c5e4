//! The store: libSQL, local file or remote, and every SQL statement of the service.
//!
//! One [`Store`] (a `libsql::Database`) is built per process; each request takes its own [`Conn`],
//! because a libSQL connection must not be shared between concurrent tasks. Connections go back to
//! an idle list when dropped and live as long as the process: opening one per request cost a
//! `PRAGMA` and, whenever the last connection closed, a WAL checkpoint and unlink (with fsyncs),
//! and a WAL re-created by the next request. Only local connections are kept: a remote one is a
//! handle on the shared HTTP client, free to make, and a kept one can hold a stream the server has
//! since expired ("invalid baton"). Queries live in the
//! submodules, one per table family, as methods on [`Conn`] named for what they do. Row types are
//! plain data: API shapes live in `api/` and convert from them.

mod admin;
mod agents;
mod api_keys;
mod attachments;
mod backfill;
mod connections;
mod conversations;
mod error;
mod history;
mod idempotency;
mod knowledge;
mod knowledge_search;
mod login_failures;
mod mcp_servers;
mod messages;
mod migrations;
mod model_settings;
mod pipeline;
mod project_files;
mod projects;
mod quotas;
mod row;
mod shares;
mod streams;
mod tokens;
mod usage;
mod users;
mod writes;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::config::DatabaseConfig;

pub use admin::{
    AdminUpdate, AuditEntry, NewAuditEntry, ReportRanges, UsageGroup, UsageReportRow,
    UserAdminChanges, UserFilter,
};
pub use agents::{Agent, AgentChanges, NewAgent};
pub use api_keys::{ApiKey, KeyOwner, NewApiKey};
pub use attachments::{Attachment, NewAttachment};
pub use backfill::{FullText, BACKFILL_STEP};
pub use connections::Connection;
pub use conversations::{
    Conversation, ConversationChanges, NewConversation, ParentPlace, TurnContext, TurnParent,
};
pub use error::{StoreError, StoreResult};
pub use history::MessageHit;
pub use idempotency::{IdempotencyRecord, NewClaim};
pub use knowledge::{
    document_hold_id, Document, DocumentCaps, EmbeddingBill, NewChunk, NewDocument,
};
pub use knowledge_search::{ChunkHit, CommonWords};
pub use login_failures::FailureScope;
pub use mcp_servers::{McpServer, NewMcpServer};
pub use messages::{AttachmentRef, Citation, FileChange, Message, NewMessage, ParentRef, Which};
pub use model_settings::ModelSetting;
pub use project_files::{FileLimits, NewProjectFile, ProjectFile};
pub use projects::Project;
pub use quotas::{HoldRequest, RateOutcome};
pub use shares::{Share, SharedMessage, Snapshot};
pub use streams::{Chunk, StreamProgress};
pub use tokens::{NewRefreshToken, RefreshOutcome};
pub use usage::{UsageRecord, UsageTotals};
pub use users::{NewUser, User, UserChanges};
pub use writes::SLOW_WRITE;

use row::{col, collect, first, rows, Row};

/// What a user stores, in bytes, as an SQL expression over `user` (a parameter or a subquery):
/// attachments (project zips on their way in included), project files (each project's
/// trigger-kept `total_bytes`) and knowledge documents. A write that checks it in its own
/// statement cannot race another (SQLite takes the write lock before the statement reads).
pub(crate) fn user_storage_bytes(user: &str) -> String {
    format!(
        "((SELECT COALESCE(SUM(size), 0) FROM attachments WHERE user_id = {user}) \
         + (SELECT COALESCE(SUM(total_bytes), 0) FROM projects WHERE user_id = {user}) \
         + (SELECT COALESCE(SUM(size), 0) FROM documents WHERE user_id = {user}))"
    )
}

#[derive(Clone)]
pub struct Store {
    db: Arc<libsql::Database>,
    kind: Kind,
    term_counts: Arc<knowledge_search::TermCounts>,
    history_shares: Arc<history::HistoryShares>,
    /// Whether a task of this process is indexing chunks stored before migration 23.
    backfilling: Arc<backfill::Backfilling>,
    /// Write transactions (and batch statements) that held the write lock past [`SLOW_WRITE`].
    slow_writes: Arc<AtomicU64>,
}

/// What differs between the two stores, shared by the store and each of its connections.
#[derive(Clone)]
enum Kind {
    /// A file: connections are kept for the process's life.
    Local(Idle),
    /// A server: single statements go over the pipeline, one round trip each.
    Remote(Arc<pipeline::Pipeline>),
}

/// Connections not in use. Lambda serves one request at a time, so one is usually enough; the
/// local server and the tests run requests concurrently and may need a few.
type Idle = Arc<std::sync::Mutex<Vec<libsql::Connection>>>;
const MAX_IDLE: usize = 8;

/// How long a local writer waits for another process's write lock before answering "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn open(config: &DatabaseConfig) -> StoreResult<Self> {
        let open_err = |e: libsql::Error| StoreError::Open(e.to_string());
        let store = match config {
            DatabaseConfig::LocalFile(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
                }
                let db = libsql::Builder::new_local(path)
                    .build()
                    .await
                    .map_err(open_err)?;
                Store {
                    db: Arc::new(db),
                    kind: Kind::Local(Idle::default()),
                    term_counts: Default::default(),
                    history_shares: Default::default(),
                    backfilling: Default::default(),
                    slow_writes: Default::default(),
                }
            }
            DatabaseConfig::Remote { url, auth_token } => {
                let db = libsql::Builder::new_remote(url.clone(), auth_token.clone())
                    .build()
                    .await
                    .map_err(open_err)?;
                Store {
                    db: Arc::new(db),
                    kind: Kind::Remote(Arc::new(pipeline::Pipeline::new(url, auth_token)?)),
                    term_counts: Default::default(),
                    history_shares: Default::default(),
                    backfilling: Default::default(),
                    slow_writes: Default::default(),
                }
            }
        };
        // The first round trips (the remote token, the schema) happen here: their failure is a
        // start-up failure, said as such.
        let first_use = |e: StoreError| match e {
            StoreError::Open(_) => e,
            other => StoreError::Open(other.to_string()),
        };
        store.prepare().await.map_err(first_use)?;
        Ok(store)
    }

    /// The journal mode (local files) and the schema.
    async fn prepare(&self) -> StoreResult<()> {
        let conn = self.conn().await?;
        if let Kind::Local(_) = self.kind {
            // WAL lets readers in every local process work while one writes. The mode is stored in
            // the file, so setting it once per process start is enough.
            conn.db.query("PRAGMA journal_mode=WAL", ()).await?;
        }
        migrations::apply(&conn).await
    }

    /// A connection for one request: an idle one, or a new one.
    pub async fn conn(&self) -> StoreResult<Conn> {
        let idle = match &self.kind {
            Kind::Local(idle) => idle.lock().unwrap_or_else(|e| e.into_inner()).pop(),
            Kind::Remote(_) => None,
        };
        let db = match idle {
            Some(db) => db,
            None => self.connect().await?,
        };
        Ok(Conn {
            db,
            store: self.clone(),
        })
    }

    async fn connect(&self) -> StoreResult<libsql::Connection> {
        let conn = self.db.connect()?;
        if let Kind::Local(_) = self.kind {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // In WAL mode, NORMAL syncs at checkpoints rather than at every commit: a commit can be
            // lost to a power cut, never to a crash of the process, and the file never corrupts.
            // That is the right trade for the embedded local database (production runs remote libSQL).
            conn.execute("PRAGMA synchronous = NORMAL", ()).await?;
            // Reads through a memory map (up to SQLite's 2 GiB cap) rather than a read() call per
            // page: the knowledge index's vector search touches many scattered pages, and at 100k
            // chunks this took a search from 12.9 to about 10 ms (bench/README.md).
            conn.query("PRAGMA mmap_size = 2147418112", ()).await?;
        }
        Ok(conn)
    }

    /// The schema version applied (the number of the last migration).
    pub async fn schema_version(&self) -> StoreResult<i64> {
        migrations::current_version(&self.conn().await?).await
    }

    /// How many writes of this process held the write lock past [`SLOW_WRITE`] (each was logged
    /// as a warning); the remote-store tests fail unless it stays 0.
    pub fn slow_writes(&self) -> u64 {
        self.slow_writes.load(Ordering::Relaxed)
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> StoreResult<()> {
        self.conn().await?.query("SELECT 1", ()).await?;
        Ok(())
    }
}

/// One request's connection; the query methods live in the submodules. Dropping it hands a local
/// connection back to the store's idle list.
pub struct Conn {
    /// The libsql connection: every statement locally, transactions remotely.
    db: libsql::Connection,
    /// The store it came from: its kind, its caches, and more connections.
    store: Store,
}

impl Conn {
    /// Another connection of the same store, for a statement run beside this one's (a libSQL
    /// connection runs one statement at a time).
    pub async fn fork(&self) -> StoreResult<Conn> {
        self.store.conn().await
    }
}

impl Conn {
    /// Runs one statement and returns its rows. Outside a transaction a remote store answers it in
    /// one round trip.
    async fn query(
        &self,
        sql: &str,
        params: impl libsql::params::IntoParams,
    ) -> StoreResult<Vec<Row>> {
        match &self.store.kind {
            Kind::Remote(pipeline) if self.db.is_autocommit() => {
                Ok(pipeline.execute(sql, params.into_params()?).await?.0)
            }
            _ => rows(self.db.query(sql, params).await?).await,
        }
    }

    /// Runs one statement and returns how many rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: impl libsql::params::IntoParams,
    ) -> StoreResult<u64> {
        match &self.store.kind {
            Kind::Remote(pipeline) if self.db.is_autocommit() => {
                Ok(pipeline.execute(sql, params.into_params()?).await?.1)
            }
            _ => Ok(self.db.execute(sql, params).await?),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Remote connections have no idle list; a connection left inside a transaction (an error
        // between BEGIN and COMMIT) is not reused.
        let Kind::Local(idle) = &self.store.kind else {
            return;
        };
        if !self.db.is_autocommit() {
            return;
        }
        let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(self.db.clone());
        }
    }
}

/// For unit tests: a fresh store in a temporary folder (kept while the `TempDir` lives) and one
/// user in it.
#[cfg(test)]
pub(crate) async fn test_conn_with_user() -> (tempfile::TempDir, Conn, crate::ids::UserId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseConfig::LocalFile(dir.path().join("db")))
        .await
        .unwrap();
    let conn = store.conn().await.unwrap();
    let user = conn
        .insert_user(NewUser {
            email: "unit@example.com",
            password_hash: "x",
            display_name: "unit",
            role: crate::kinds::Role::User,
        })
        .await
        .unwrap();
    (dir, conn, user.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Role;

    #[tokio::test]
    async fn concurrent_opens_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DatabaseConfig::LocalFile(dir.path().join("db.sqlite"));
        // Several cold starts racing on one file, as under `cargo lambda watch`.
        let opens = (0..6).map(|_| {
            let cfg = cfg.clone();
            tokio::spawn(async move { Store::open(&cfg).await.map(|_| ()) })
        });
        for handle in opens {
            handle.await.unwrap().unwrap();
        }
        let store = Store::open(&cfg).await.unwrap();
        let conn = store.conn().await.unwrap();
        let rows = conn
            .query(
                "SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations",
                (),
            )
            .await
            .unwrap();
        let n: i64 = col(&rows[0], 0, "count").unwrap();
        let distinct: i64 = col(&rows[0], 1, "distinct").unwrap();
        assert_eq!(n, distinct);
        assert_eq!(n as usize, migrations::MIGRATIONS.len());
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn local_connections_outlive_requests_so_the_wal_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&DatabaseConfig::LocalFile(path.clone()))
            .await
            .unwrap();
        let wal = dir.path().join("db-wal");
        for i in 0..3 {
            let conn = store.conn().await.unwrap();
            conn.insert_user(NewUser {
                email: &format!("u{i}@example.com"),
                password_hash: "x",
                display_name: "u",
                role: Role::User,
            })
            .await
            .unwrap();
            drop(conn);
            // Closing the last connection would checkpoint the WAL into the file and delete it.
            assert!(wal.exists(), "request {i} closed the last connection");
        }
        let Kind::Local(idle) = &store.kind else {
            panic!("a local store")
        };
        assert_eq!(
            idle.lock().unwrap().len(),
            1,
            "one connection serves them all"
        );

        // A connection dropped inside a transaction is not handed to the next request.
        let conn = store.conn().await.unwrap();
        conn.db.execute("BEGIN", ()).await.unwrap();
        drop(conn);
        assert!(idle.lock().unwrap().is_empty());
        assert!(store.conn().await.unwrap().db.is_autocommit());
    }

    #[tokio::test]
    async fn unique_violations_name_their_constraint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseConfig::LocalFile(dir.path().join("db")))
            .await
            .unwrap();
        let conn = store.conn().await.unwrap();
        let new = NewUser {
            email: "a@example.com",
            password_hash: "x",
            display_name: "a",
            role: Role::User,
        };
        conn.insert_user(new).await.unwrap();
        let err = conn
            .insert_user(NewUser {
                email: "a@example.com",
                password_hash: "x",
                display_name: "a",
                role: Role::User,
            })
            .await
            .unwrap_err();
        assert!(err.is_unique("users.email"), "{err:?}");
        assert!(!err.is_unique("users.id"));
    }
}

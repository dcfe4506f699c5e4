//! Full-text indexes filled after their migration, in bounded steps: rebuilding an index inside a
//! migration would hold the write lock for seconds on a large store (about 3 s per 100k chunks),
//! past the 5 s a remote store allows a write. Each index's `<name>_backfill` row holds the range
//! of rows still to index; the triggers of its migration keep the rest of the index in step.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{col, Conn, StoreError, StoreResult};

/// Rows indexed per backfill step: about 30 ms of write lock (the bench's 100k-chunk store: 31 ms
/// a step p50; the longest, 0.07 and 0.9 s in two runs, is a step in which FTS5 merges segments).
pub const BACKFILL_STEP: u32 = 1000;

/// A full-text index filled in steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullText {
    /// Knowledge chunks (migration 23).
    Chunks,
    /// Messages, for search over history (migration 26).
    Messages,
}

impl FullText {
    /// The backfill's table, and the indexed table and its integer key.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            FullText::Chunks => ("chunks_fts_backfill", "chunks", "id"),
            FullText::Messages => ("messages_fts_backfill", "messages", "seq"),
        }
    }
}

/// Whether this process runs a backfill task, per index.
#[derive(Default)]
pub(super) struct Backfilling {
    chunks: AtomicBool,
    messages: AtomicBool,
}

impl Backfilling {
    fn of(&self, index: FullText) -> &AtomicBool {
        match index {
            FullText::Chunks => &self.chunks,
            FullText::Messages => &self.messages,
        }
    }
}

impl super::Store {
    /// Indexes the rows stored before `index`'s migration, in steps, in a task of this process
    /// (unless one runs already). Until it ends, full-text search misses the rows not yet reached.
    /// The first search after the upgrade starts it; a step that fails ends the task, and the next
    /// search starts another.
    pub(super) fn finish_backfill(&self, index: FullText) {
        if self.backfilling.of(index).swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let steps = async {
                let conn = store.conn().await?;
                while conn.backfill_step(index, BACKFILL_STEP).await? {}
                Ok::<_, StoreError>(())
            };
            match steps.await {
                Ok(()) => tracing::info!(?index, "the full-text index holds every stored row"),
                Err(error) => tracing::warn!(?index, %error, "a full-text backfill step failed"),
            }
            store.backfilling.of(index).store(false, Ordering::Release);
        });
    }
}

impl Conn {
    /// Indexes up to `rows` of the rows stored before `index`'s migration, in one statement (one
    /// short write). Answers whether any are left. Steps may run on several instances at once:
    /// each moves the backfill's `next` only from where it read it, in the statement that indexes
    /// what it passed over, so a row is indexed once.
    pub async fn backfill_step(&self, index: FullText, rows: u32) -> StoreResult<bool> {
        let (backfill, table, key) = index.names();
        let found = self
            .query(
                &format!(
                    "UPDATE {backfill} SET next = COALESCE(
                         (SELECT {key} FROM {table} WHERE {key} >= next AND {key} < stop
                          ORDER BY {key} LIMIT 1 OFFSET ?1),
                         stop)
                     WHERE next < stop
                     RETURNING next < stop"
                ),
                libsql::params![rows as i64],
            )
            .await?;
        match found.first() {
            Some(row) => Ok(col(row, 0, "backfill.next")?),
            None => Ok(false),
        }
    }
}

//! Writes that hold the database's one write lock: named transactions and batch statements,
//! each noted when it holds the lock too long.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{Conn, Store, StoreResult};

/// A write that holds the lock longer than this is logged as a warning naming it. One libSQL
/// primary takes one writer at a time, so every other writer of every user waits meanwhile, and
/// the remote server (as Turso) interrupts a write transaction held over 5 s. Long work writes in
/// bounded batches instead (knowledge indexing, project imports, deletes).
pub const SLOW_WRITE: Duration = Duration::from_millis(500);

impl Conn {
    /// Begins a write transaction named for the log. Keep it to a few small statements with no
    /// other await inside (no provider call, no blob upload): it holds the database's one write
    /// lock until it ends.
    pub(super) async fn transaction(&self, name: &'static str) -> StoreResult<Transaction<'_>> {
        let started = Instant::now();
        let tx = self.db.transaction().await?;
        Ok(Transaction {
            tx: Some(tx),
            name,
            started,
            store: &self.store,
        })
    }

    /// Runs one write statement of a batch, named for the log like a transaction.
    pub(super) async fn write_batch(
        &self,
        name: &'static str,
        sql: &str,
        params: impl libsql::params::IntoParams,
    ) -> StoreResult<u64> {
        self.timed(name, self.execute(sql, params)).await
    }

    /// Awaits one write (a batch statement), noting it when it held the database too long.
    pub(super) async fn timed<T>(
        &self,
        name: &'static str,
        write: impl std::future::Future<Output = T>,
    ) -> T {
        let started = Instant::now();
        let out = write.await;
        self.store.note_write(name, started);
        out
    }
}

impl Store {
    fn note_write(&self, name: &'static str, started: Instant) {
        let held = started.elapsed();
        if held > SLOW_WRITE {
            self.slow_writes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                write = name,
                held_ms = held.as_millis() as u64,
                "a write held the database longer than {} ms",
                SLOW_WRITE.as_millis()
            );
        }
    }
}

/// A write transaction that logs a warning, with its name, when it stays open past
/// [`SLOW_WRITE`]. Dropped without `commit`, libsql rolls it back.
pub(super) struct Transaction<'c> {
    tx: Option<libsql::Transaction>,
    name: &'static str,
    started: Instant,
    store: &'c Store,
}

impl Transaction<'_> {
    pub(super) async fn commit(mut self) -> StoreResult<()> {
        match self.tx.take() {
            Some(tx) => Ok(tx.commit().await?),
            None => Ok(()),
        }
    }

    pub(super) async fn rollback(mut self) -> StoreResult<()> {
        match self.tx.take() {
            Some(tx) => Ok(tx.rollback().await?),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = libsql::Transaction;

    fn deref(&self) -> &libsql::Transaction {
        self.tx
            .as_ref()
            .expect("a transaction is used only before it ends")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        self.store.note_write(self.name, self.started);
    }
}

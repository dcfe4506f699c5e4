//! Knowledge documents and their chunks: full-text (FTS5) and vector (libSQL `vector_top_k`)
//! retrieval, each filtered to the owner inside the statement that ranks.

use super::{col, collect, first, Conn, Row, StoreError, StoreResult};
use crate::{
    ids::{DocumentId, UserId},
    kinds::DocumentStatus,
};

#[derive(Debug, Clone)]
pub struct Document {
    pub id: DocumentId,
    pub user_id: UserId,
    pub title: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub chunk_count: i64,
    pub embedder: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub status: DocumentStatus,
    /// Why indexing failed (a public message).
    pub error: Option<String>,
}

/// What a new document may not pass: the user's storage and their number of documents.
#[derive(Debug, Clone, Copy)]
pub struct DocumentCaps {
    pub storage_bytes: u64,
    pub documents: u64,
}

impl DocumentCaps {
    /// No cap (tests, and callers whose checks ran before).
    pub const NONE: DocumentCaps = DocumentCaps {
        storage_bytes: u64::MAX,
        documents: u64::MAX,
    };
}

pub struct NewDocument<'a> {
    pub user_id: UserId,
    pub title: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub embedder: Option<&'a str>,
}

/// A chunk as it is stored; `embedding` is its vector as a JSON array (what `vector32` reads).
#[derive(Debug, serde::Serialize)]
pub struct NewChunk {
    pub ord: i64,
    pub heading: String,
    pub content: String,
    pub tokens: i64,
    pub embedding: Option<String>,
}

/// What a remote embedding model's calls cost, billed as one usage row of kind `embedding`.
#[derive(Debug, Clone)]
pub struct EmbeddingBill {
    pub model: String,
    pub tokens: i64,
    pub cost_usd: f64,
}

const INSERT_EMBEDDING_USAGE: &str =
    "INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens,
                        output_tokens, cached_tokens, cost_usd, created_at, document_id)
     VALUES (?1, NULL, NULL, ?2, ?3, 'embedding', ?4, 0, 0, ?5, ?6, ?7)";

/// Chunks removed per statement when a document is deleted.
const CHUNK_DELETE_BATCH: i64 = 64;

const DOCUMENT_COLUMNS: &str = "id, user_id, title, content_type, size, sha256, chunk_count, \
     embedder, created_at, updated_at, status, error";

fn document_from_row(row: &Row) -> StoreResult<Document> {
    Ok(Document {
        id: col(row, 0, "documents.id")?,
        user_id: col(row, 1, "documents.user_id")?,
        title: col(row, 2, "documents.title")?,
        content_type: col(row, 3, "documents.content_type")?,
        size: col(row, 4, "documents.size")?,
        sha256: col(row, 5, "documents.sha256")?,
        chunk_count: col(row, 6, "documents.chunk_count")?,
        embedder: col(row, 7, "documents.embedder")?,
        created_at: col(row, 8, "documents.created_at")?,
        updated_at: col(row, 9, "documents.updated_at")?,
        status: col(row, 10, "documents.status")?,
        error: col(row, 11, "documents.error")?,
    })
}

/// The hold a document indexed after its request keeps against the budget until the indexing
/// bills (or fails): one per document, by name, so the run that settles it needs nothing else.
pub fn document_hold_id(id: DocumentId) -> String {
    format!("document-{id}")
}

impl Conn {
    /// Stores a document without chunks, `indexing`: its chunks follow in batches
    /// ([`Conn::add_chunks`]) and [`Conn::finish_indexing`] makes it ready. Until then it is listed
    /// as `indexing` and no search finds it. `lease_until` is when a run indexing it inside a
    /// request counts as dead (the sweep removes it); none for the worker's, claimed later. Refused,
    /// nothing written, past the user's `caps`: [`StoreError::StorageFull`] for their storage,
    /// [`StoreError::LimitReached`] for their number of documents.
    pub async fn insert_indexing_document(
        &self,
        id: DocumentId,
        new: NewDocument<'_>,
        lease_until: Option<&str>,
        caps: DocumentCaps,
    ) -> StoreResult<Document> {
        let sql = INSERT_DOCUMENT.replace("{used}", &super::user_storage_bytes("?2"));
        let user_id = new.user_id;
        let rows = self
            .query(
                &sql,
                new.params(id, DocumentStatus::Indexing, lease_until, caps),
            )
            .await?;
        if let Some(document) = first(rows, document_from_row)? {
            return Ok(document);
        }
        // Refused: say which cap.
        let rows = self
            .query(
                "SELECT COUNT(*) FROM documents WHERE user_id = ?1",
                libsql::params![user_id],
            )
            .await?;
        let held: i64 = match rows.first() {
            Some(row) => col(row, 0, "documents.count")?,
            None => 0,
        };
        Err(if held as u64 >= caps.documents {
            StoreError::LimitReached {
                what: "knowledge documents",
                limit: caps.documents,
            }
        } else {
            StoreError::StorageFull {
                limit: caps.storage_bytes,
            }
        })
    }

    /// Claims an `indexing` document for one run until `until`, and returns it: none when it is
    /// gone, indexed, failed, or claimed by a run whose claim has not expired.
    pub async fn claim_indexing(
        &self,
        id: DocumentId,
        user_id: UserId,
        now: &str,
        until: &str,
    ) -> StoreResult<Option<Document>> {
        let rows = self
            .query(
                &format!(
                    "UPDATE documents SET index_lease_until = ?4
                     WHERE id = ?1 AND user_id = ?2 AND status = 'indexing'
                       AND (index_lease_until IS NULL OR index_lease_until < ?3)
                     RETURNING {DOCUMENT_COLUMNS}"
                ),
                libsql::params![id, user_id, now, until],
            )
            .await?;
        first(rows, document_from_row)
    }

    /// Adds one batch of an `indexing` document's chunks, in one statement; false (nothing
    /// stored) when the document was deleted or finished meanwhile.
    pub async fn add_chunks(
        &self,
        id: DocumentId,
        user_id: UserId,
        chunks: &[NewChunk],
    ) -> StoreResult<bool> {
        let chunks_json =
            serde_json::to_string(chunks).map_err(|e| StoreError::Db(e.to_string()))?;
        let added = self
            .write_batch(
                "knowledge.add_chunks",
                "INSERT INTO chunks (document_id, user_id, ord, heading, content, tokens, embedding)
                 SELECT ?1, ?2, json_extract(value, '$.ord'), json_extract(value, '$.heading'),
                        json_extract(value, '$.content'), json_extract(value, '$.tokens'),
                        CASE WHEN json_extract(value, '$.embedding') IS NULL THEN NULL
                             ELSE vector32(json_extract(value, '$.embedding')) END
                 FROM json_each(?3)
                 WHERE EXISTS (SELECT 1 FROM documents
                               WHERE id = ?1 AND user_id = ?2 AND status = 'indexing')",
                libsql::params![id, user_id, chunks_json],
            )
            .await?;
        Ok(added > 0 || chunks.is_empty())
    }

    /// The position of the last chunk an `indexing` document has stored, if any: a run that died
    /// part-way is resumed after it.
    pub async fn indexed_through(&self, id: DocumentId) -> StoreResult<Option<i64>> {
        let rows = self
            .query(
                "SELECT max(ord) FROM chunks WHERE document_id = ?1",
                libsql::params![id],
            )
            .await?;
        Ok(first(rows, |row| col(row, 0, "chunks.ord"))?.flatten())
    }

    /// Marks an `indexing` document ready with `chunk_count` chunks (all stored by now), and bills
    /// its embedding calls, together; false when it was deleted or finished meanwhile, or its
    /// run's lease ran out (the sweep may be removing it).
    pub async fn finish_indexing(
        &self,
        id: DocumentId,
        user_id: UserId,
        chunk_count: usize,
        bill: Option<&EmbeddingBill>,
    ) -> StoreResult<bool> {
        let tx = self.transaction("knowledge.finish_indexing").await?;
        let n = tx
            .execute(
                "UPDATE documents SET status = 'ready', chunk_count = ?3, index_lease_until = NULL,
                     updated_at = ?4
                 WHERE id = ?1 AND user_id = ?2 AND status = 'indexing'
                   AND (index_lease_until IS NULL OR index_lease_until >= ?4)",
                libsql::params![id, user_id, chunk_count as i64, crate::ids::now()],
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(bill) = bill {
            tx.execute(
                INSERT_EMBEDDING_USAGE,
                usage_params(user_id, bill, Some(id)),
            )
            .await?;
        }
        // The bill replaces what the indexing kept reserved.
        tx.execute(
            "DELETE FROM quota_holds WHERE id = ?1",
            libsql::params![document_hold_id(id)],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `indexing` documents whose run's lease ran out before `now` (of any user): a run that died
    /// part-way. At most `limit`, oldest lease first.
    pub async fn stale_indexing(
        &self,
        now: &str,
        limit: u32,
    ) -> StoreResult<Vec<(DocumentId, UserId)>> {
        let rows = self
            .query(
                "SELECT id, user_id FROM documents
                 WHERE status = 'indexing' AND index_lease_until < ?1
                 ORDER BY index_lease_until LIMIT ?2",
                libsql::params![now, limit as i64],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    col(row, 0, "documents.id")?,
                    col(row, 1, "documents.user_id")?,
                ))
            })
            .collect()
    }

    /// Marks an `indexing` document failed, with a public reason.
    /// Marks a document failed and gives back the hold its indexing kept ([`document_hold_id`]).
    pub async fn fail_indexing(
        &self,
        id: DocumentId,
        user_id: UserId,
        error: &str,
    ) -> StoreResult<()> {
        let tx = self.transaction("knowledge.fail_indexing").await?;
        tx.execute(
            "UPDATE documents SET status = 'failed', error = ?3, index_lease_until = NULL,
                 updated_at = ?4
             WHERE id = ?1 AND user_id = ?2 AND status = 'indexing'",
            libsql::params![id, user_id, error, crate::ids::now()],
        )
        .await?;
        tx.execute(
            "DELETE FROM quota_holds WHERE id = ?1",
            libsql::params![document_hold_id(id)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The document if it belongs to `user_id`; another user's is simply not found.
    pub async fn document(&self, id: DocumentId, user_id: UserId) -> StoreResult<Option<Document>> {
        let rows = self
            .query(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND user_id = ?2"),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, document_from_row)
    }

    /// Newest first; `after` is the (created_at, id) of the previous page's last document.
    pub async fn list_documents(
        &self,
        user_id: UserId,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Document>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .query(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents
                     WHERE user_id = ?1 AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
                     ORDER BY created_at DESC, id DESC LIMIT ?4"
                ),
                libsql::params![user_id, after_at, after_id, limit as i64 + 1],
            )
            .await?;
        collect(rows, document_from_row)
    }

    pub async fn rename_document(
        &self,
        id: DocumentId,
        user_id: UserId,
        title: &str,
    ) -> StoreResult<Option<Document>> {
        let rows = self
            .query(
                &format!(
                    "UPDATE documents SET title = ?3, updated_at = ?4 WHERE id = ?1 AND user_id = ?2
                     RETURNING {DOCUMENT_COLUMNS}"
                ),
                libsql::params![id, user_id, title, crate::ids::now()],
            )
            .await?;
        first(rows, document_from_row)
    }

    /// Deletes the document with its chunks (their full-text rows and vectors go with them); the
    /// status it had, or none when there was no such document of the user's. The chunks go in
    /// batches (each vector's removal rewrites its neighbours in the index), then the last few
    /// with the row itself, so a concurrent batch of an indexing run leaves nothing behind. A
    /// delete that dies part-way leaves the document with fewer chunks; repeating it finishes.
    pub async fn delete_document(
        &self,
        id: DocumentId,
        user_id: UserId,
    ) -> StoreResult<Option<DocumentStatus>> {
        if self.document(id, user_id).await?.is_none() {
            return Ok(None);
        }
        loop {
            let removed = self
                .write_batch(
                    "knowledge.delete_chunks",
                    "DELETE FROM chunks WHERE id IN
                         (SELECT id FROM chunks WHERE document_id = ?1 LIMIT ?2)",
                    libsql::params![id, CHUNK_DELETE_BATCH],
                )
                .await?;
            if removed == 0 {
                break;
            }
        }
        let tx = self.transaction("knowledge.delete_document").await?;
        tx.execute(
            "DELETE FROM chunks WHERE document_id = (SELECT id FROM documents WHERE id = ?1 AND user_id = ?2)",
            libsql::params![id, user_id],
        )
        .await?;
        let rows = super::rows(
            tx.query(
                "DELETE FROM documents WHERE id = ?1 AND user_id = ?2 RETURNING status",
                libsql::params![id, user_id],
            )
            .await?,
        )
        .await?;
        tx.commit().await?;
        first(rows, |row| col(row, 0, "documents.status"))
    }

    /// Bills a query's embedding call (no document).
    pub async fn insert_embedding_usage(
        &self,
        user_id: UserId,
        bill: &EmbeddingBill,
    ) -> StoreResult<()> {
        self.execute(INSERT_EMBEDDING_USAGE, usage_params(user_id, bill, None))
            .await?;
        Ok(())
    }
}

const INSERT_DOCUMENT: &str =
    "INSERT INTO documents (id, user_id, title, content_type, size, sha256,
         chunk_count, embedder, created_at, updated_at, status, index_lease_until)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9, ?10
     WHERE {used} + ?5 <= ?11 AND (SELECT COUNT(*) FROM documents WHERE user_id = ?2) < ?12
     RETURNING id, user_id, title, content_type, size, sha256, chunk_count, embedder, created_at,
         updated_at, status, error";

impl NewDocument<'_> {
    fn params(
        &self,
        id: DocumentId,
        status: DocumentStatus,
        lease_until: Option<&str>,
        caps: DocumentCaps,
    ) -> impl libsql::params::IntoParams {
        libsql::params![
            id,
            self.user_id,
            self.title,
            self.content_type,
            self.size,
            self.sha256,
            self.embedder,
            crate::ids::now(),
            status.as_str(),
            lease_until,
            caps.storage_bytes.min(i64::MAX as u64) as i64,
            caps.documents.min(i64::MAX as u64) as i64
        ]
    }
}

/// An embedding usage row's parameters: a document's calls, or a query's (no document).
fn usage_params(
    user_id: UserId,
    bill: &EmbeddingBill,
    document: Option<DocumentId>,
) -> impl libsql::params::IntoParams {
    libsql::params![
        crate::ids::new_id(),
        user_id,
        bill.model.as_str(),
        bill.tokens,
        bill.cost_usd,
        crate::ids::now(),
        document
    ]
}

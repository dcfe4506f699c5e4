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

/// What a search learns of the index before it runs: how many chunks hold each of its terms,
/// about how many chunks there are, and how many of them are the user's.
#[derive(Debug)]
pub struct TermFrequencies {
    pub counts: Vec<i64>,
    pub total: i64,
    pub own: i64,
}

/// How many chunks (of all users) hold a word, per instance and database. Counting walks the
/// word's entries in the full-text index, so a common word (the ones most queries share) costs
/// the most: about 2.3 ms of a search at 100k chunks before this cache (README, Benchmarks). The
/// counts only decide which words are too common to search for, so a few minutes stale is harmless.
pub struct TermCounts(crate::cache::TtlCache<String, i64>);

const TERM_COUNT_ENTRIES: usize = 4096;
const TERM_COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl Default for TermCounts {
    fn default() -> Self {
        TermCounts(crate::cache::TtlCache::new(
            TERM_COUNT_ENTRIES,
            TERM_COUNT_TTL,
        ))
    }
}

/// A chunk found by a search, with its document's title.
#[derive(Debug, Clone)]
pub struct ChunkHit {
    pub chunk_id: i64,
    pub document_id: DocumentId,
    pub title: String,
    pub ord: i64,
    pub heading: String,
    pub content: String,
}

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

const HIT_COLUMNS: &str = "c.id, c.document_id, d.title, c.ord, c.heading, c.content";

fn hit_from_row(row: &Row) -> StoreResult<ChunkHit> {
    Ok(ChunkHit {
        chunk_id: col(row, 0, "chunks.id")?,
        document_id: col(row, 1, "chunks.document_id")?,
        title: col(row, 2, "documents.title")?,
        ord: col(row, 3, "chunks.ord")?,
        heading: col(row, 4, "chunks.heading")?,
        content: col(row, 5, "chunks.content")?,
    })
}

impl Conn {
    /// Stores a document without chunks, `indexing`: its chunks follow in batches
    /// ([`Conn::add_chunks`]) and [`Conn::finish_indexing`] makes it ready. Until then it is listed
    /// as `indexing` and no search finds it. `lease_until` is when a run indexing it inside a
    /// request counts as dead (the sweep removes it); none for the worker's, claimed later.
    pub async fn insert_indexing_document(
        &self,
        new: NewDocument<'_>,
        lease_until: Option<&str>,
    ) -> StoreResult<Document> {
        let rows = self
            .query(
                INSERT_DOCUMENT,
                new.params(DocumentId::new(), DocumentStatus::Indexing, lease_until),
            )
            .await?;
        first(rows, document_from_row)?.ok_or(StoreError::Corrupt("documents"))
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
    pub async fn fail_indexing(
        &self,
        id: DocumentId,
        user_id: UserId,
        error: &str,
    ) -> StoreResult<()> {
        self.execute(
            "UPDATE documents SET status = 'failed', error = ?3, index_lease_until = NULL,
                 updated_at = ?4
             WHERE id = ?1 AND user_id = ?2 AND status = 'indexing'",
            libsql::params![id, user_id, error, crate::ids::now()],
        )
        .await?;
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

    /// How many chunks (of all users) hold each term, about how many chunks there are (the
    /// highest id), and how many are the user's, in one statement. Counts come from the
    /// instance's cache where it has them; only the others are counted. A term is counted by
    /// matching it, so it is stemmed as the search will stem it: the index holds stems ("index"
    /// for "indexing"), and a look-up of the word as typed would count an inflected common word as
    /// absent, which kept it in every search.
    pub async fn term_frequencies(
        &self,
        user_id: UserId,
        terms: &[String],
    ) -> StoreResult<TermFrequencies> {
        let mut counts: Vec<Option<i64>> = terms
            .iter()
            .map(|t| self.store.term_counts.0.get(t))
            .collect();
        let missing: Vec<&String> = terms
            .iter()
            .zip(&counts)
            .filter(|(_, c)| c.is_none())
            .map(|(t, _)| t)
            .collect();
        let json = serde_json::to_string(&missing).map_err(|e| StoreError::Db(e.to_string()))?;
        let rows = self
            .query(
                r#"SELECT (SELECT COALESCE(max(id), 0) FROM chunks),
                        (SELECT COALESCE(sum(chunk_count), 0) FROM documents WHERE user_id = ?2),
                        NULL
                 UNION ALL
                 SELECT (SELECT count(*) FROM chunks_fts
                         WHERE chunks_fts MATCH '"' || replace(j.value, '"', '""') || '"'), 0, j.key
                 FROM json_each(?1) j
                 ORDER BY 3"#,
                libsql::params![json, user_id],
            )
            .await?;
        let Some((first, rest)) = rows.split_first() else {
            return Err(StoreError::Corrupt("chunks"));
        };
        if rest.len() != missing.len() {
            return Err(StoreError::Corrupt("chunks_fts"));
        }
        let mut counted = rest.iter().zip(missing);
        for count in counts.iter_mut().filter(|c| c.is_none()) {
            let Some((row, term)) = counted.next() else {
                break;
            };
            let n: i64 = col(row, 0, "chunks_fts.count")?;
            self.store.term_counts.0.put(term.clone(), n);
            *count = Some(n);
        }
        Ok(TermFrequencies {
            total: col(first, 0, "chunks.id")?,
            own: col(first, 1, "documents.chunk_count")?,
            counts: counts.into_iter().map(|c| c.unwrap_or(0)).collect(),
        })
    }

    /// The user's chunks that match an FTS5 query, best BM25 first (a heading match weighs double).
    pub async fn search_chunks_text(
        &self,
        user_id: UserId,
        fts_query: &str,
        limit: u32,
    ) -> StoreResult<Vec<ChunkHit>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM chunks_fts
                     JOIN chunks c ON c.id = chunks_fts.rowid
                     JOIN documents d ON d.id = c.document_id
                     WHERE chunks_fts MATCH ?1 AND c.user_id = ?2 AND d.status = 'ready'
                     ORDER BY rank LIMIT ?3"
                ),
                libsql::params![fts_query, user_id, limit as i64],
            )
            .await?;
        collect(rows, hit_from_row)
    }

    /// The user's chunks nearest to `vector` (a JSON array) by cosine distance, among documents
    /// embedded by `embedder`. The vector index
    /// is asked for `candidates` neighbours across all users and the owner filter applied in the
    /// same statement; when that leaves fewer than `limit` (another user's chunks crowd the
    /// neighbourhood, or the user has few), an exact scan of the user's own chunks answers.
    pub async fn search_chunks_vector(
        &self,
        user_id: UserId,
        embedder: &str,
        vector: &str,
        limit: u32,
        candidates: u32,
    ) -> StoreResult<Vec<ChunkHit>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM vector_top_k('chunks_embedding', vector32(?1), ?3) AS v
                     JOIN chunks c ON c.id = v.id
                     JOIN documents d ON d.id = c.document_id
                     WHERE c.user_id = ?2 AND d.embedder = ?5 AND d.status = 'ready'
                     ORDER BY vector_distance_cos(c.embedding, vector32(?1)) LIMIT ?4"
                ),
                libsql::params![vector, user_id, candidates.max(limit) as i64, limit as i64, embedder],
            )
            .await?;
        if rows.len() as u32 >= limit {
            return collect(rows, hit_from_row);
        }
        let rows = self
            .query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM chunks c
                     JOIN documents d ON d.id = c.document_id
                     WHERE c.user_id = ?2 AND c.embedding IS NOT NULL AND d.embedder = ?4
                       AND d.status = 'ready'
                     ORDER BY vector_distance_cos(c.embedding, vector32(?1)) LIMIT ?3"
                ),
                libsql::params![vector, user_id, limit as i64, embedder],
            )
            .await?;
        collect(rows, hit_from_row)
    }
}

const INSERT_DOCUMENT: &str =
    "INSERT INTO documents (id, user_id, title, content_type, size, sha256,
         chunk_count, embedder, created_at, updated_at, status, index_lease_until)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9, ?10)
     RETURNING id, user_id, title, content_type, size, sha256, chunk_count, embedder, created_at,
         updated_at, status, error";

impl NewDocument<'_> {
    fn params(
        &self,
        id: DocumentId,
        status: DocumentStatus,
        lease_until: Option<&str>,
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
            lease_until
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn terms_are_counted_by_their_stem_as_the_search_matches_them() {
        let (_dir, conn, user_id) = crate::store::test_conn_with_user().await;
        let chunk = |content: &str| NewChunk {
            ord: 0,
            heading: String::new(),
            content: content.into(),
            tokens: 3,
            embedding: None,
        };
        let document = NewDocument {
            user_id,
            title: "Words",
            content_type: "text/plain",
            size: 1,
            sha256: "0",
            embedder: None,
        };
        let chunks = [
            chunk("indexing the rows"),
            chunk("an index of rows"),
            chunk("indexes and keys"),
        ];
        let doc = conn.insert_indexing_document(document, None).await.unwrap();
        assert!(conn.add_chunks(doc.id, user_id, &chunks).await.unwrap());
        assert!(conn
            .finish_indexing(doc.id, user_id, chunks.len(), None)
            .await
            .unwrap());
        let terms: Vec<String> = ["indexing", "rows", "keys", "absent", "say \"hi\""]
            .map(String::from)
            .to_vec();
        let found = conn.term_frequencies(user_id, &terms).await.unwrap();
        // "indexing" is every chunk's stem "index"; "rows" two; a quote is text, not syntax.
        assert_eq!(found.counts, vec![3, 2, 1, 0, 0]);
        assert_eq!((found.total, found.own), (3, 3));
    }
}

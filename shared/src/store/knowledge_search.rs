//! Retrieval over the chunks: how common a search's words are, full-text (FTS5) and vector
//! (libSQL `vector_top_k`) search, each filtered to the owner inside the statement that ranks
//! and to `ready` documents.

use super::{col, collect, Conn, Row, StoreError, StoreResult};
use crate::ids::{DocumentId, UserId};

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
/// the most: about 2.3 ms of a search at 100k chunks before this cache (bench/README.md). The
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

#[cfg(test)]
mod tests {
    use crate::store::{NewChunk, NewDocument};

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
        let doc = conn
            .insert_indexing_document(
                crate::ids::DocumentId::new(),
                document,
                None,
                crate::store::DocumentCaps::NONE,
            )
            .await
            .unwrap();
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

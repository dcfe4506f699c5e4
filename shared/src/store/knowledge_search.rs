//! Retrieval over the chunks: how common a search's words are, full-text (FTS5) and vector
//! (libSQL `vector_top_k`) search, each filtered to the owner inside the statement that ranks
//! and to `ready` documents.

use super::{col, collect, Conn, FullText, Row, StoreError, StoreResult};
use crate::ids::{DocumentId, UserId};

/// What a search learns of the index before it runs: how many of the user's chunks hold each of
/// its terms (counting stops once a term is [`CommonWords`]), how many chunks the user has, and
/// about how many chunks all users have (for the vector index, which ranks them all).
#[derive(Debug)]
pub struct TermFrequencies {
    pub counts: Vec<i64>,
    pub own: i64,
    pub total: i64,
}

impl TermFrequencies {
    /// Whether a full-text search should match the user's owner token along with the words, so
    /// that FTS5 ranks only the user's chunks. It should unless the user holds half the chunks
    /// or more: then the owner filter after ranking costs less than matching the token (which
    /// every one of the user's chunks holds; about 6 against 11 ms a statement for the bench's
    /// questions in a Python SQLite copy of its 100k-chunk store), and the other users' chunks
    /// ranked and dropped are fewer than the user's.
    /// The answer is the same either way: the token weighs nothing in the rank.
    pub fn owner_in_match(&self) -> bool {
        self.own * 2 < self.total
    }
}

/// The user's word counts, per instance: counting a word walks its entries among the user's chunks
/// (up to the count that makes it common), about 1.3 ms a word for a user holding 100k chunks (5.0
/// ms for four words, uncached, in a Python SQLite copy of the bench's store), and
/// the counts only decide which words are searched, so a few minutes stale is harmless. Keyed by
/// user: what one user stores never changes another's counts.
pub struct TermCounts(crate::cache::TtlCache<(UserId, String), i64>);

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

/// When a word is too common to search for: once the user holds `from_chunks` chunks, a word in
/// more than one of their chunks in `share`. BM25 gives such a word almost no weight, and matching
/// it means ranking a large part of the user's chunks.
#[derive(Debug, Clone, Copy)]
pub struct CommonWords {
    pub from_chunks: i64,
    pub share: i64,
}

impl CommonWords {
    pub fn is_common(&self, count: i64, own: i64) -> bool {
        own >= self.from_chunks && count * self.share > own
    }
}

/// The token that stands for the user's chunks in the full-text index's `owner_token` column:
/// spelled as migration 23's generated column spells it (a test holds the two together).
pub(super) fn owner_token(user_id: UserId) -> String {
    format!("{}0", user_id.to_string().replace('-', ""))
}

/// An FTS5 phrase for a word: quoted, so FTS5 syntax in it is text, not operators.
pub(super) fn phrase(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
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
    /// How many of the user's chunks hold each term, in one statement (for the terms not in the
    /// instance's [`TermCounts`]). A term is counted by matching it, so it is stemmed as the search
    /// will stem it: the index holds stems ("index" for "indexing"), and a look-up of the word as
    /// typed would count an inflected common word as absent. Only the user's chunks are matched
    /// (their owner token ANDed in), and counting a term stops at the first count that makes it
    /// common, so a common word costs no more than a rare one.
    pub async fn term_frequencies(
        &self,
        user_id: UserId,
        terms: &[String],
        common: CommonWords,
    ) -> StoreResult<TermFrequencies> {
        let cache = &self.store.term_counts.0;
        let mut counts: Vec<Option<i64>> = terms
            .iter()
            .map(|t| cache.get(&(user_id, t.clone())))
            .collect();
        let owner = format!("owner_token : {}", phrase(&owner_token(user_id)));
        let missing: Vec<(usize, String)> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_none())
            .map(|(i, _)| {
                (
                    i,
                    format!("{owner} AND {{heading content}} : {}", phrase(&terms[i])),
                )
            })
            .collect();
        let queries: Vec<&String> = missing.iter().map(|(_, q)| q).collect();
        let json = serde_json::to_string(&queries).map_err(|e| StoreError::Db(e.to_string()))?;
        let rows = self
            .query(
                r#"WITH own AS (SELECT COALESCE(sum(chunk_count), 0) AS n FROM documents
                                WHERE user_id = ?2)
                 SELECT (SELECT n FROM own), (SELECT COALESCE(max(id), 0) FROM chunks),
                        (SELECT next < stop FROM chunks_fts_backfill), NULL
                 UNION ALL
                 SELECT (SELECT count(*) FROM (
                            SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH j.value
                            LIMIT (SELECT CASE WHEN n >= ?3 THEN n / ?4 + 1 ELSE -1 END FROM own))),
                        0, 0, j.key
                 FROM json_each(?1) j
                 ORDER BY 4"#,
                libsql::params![json, user_id, common.from_chunks, common.share],
            )
            .await?;
        let Some((first, rest)) = rows.split_first() else {
            return Err(StoreError::Corrupt("chunks"));
        };
        if rest.len() != missing.len() {
            return Err(StoreError::Corrupt("chunks_fts"));
        }
        if col(first, 2, "chunks_fts_backfill.next")? {
            self.store.finish_backfill(FullText::Chunks);
        }
        for (row, (i, _)) in rest.iter().zip(&missing) {
            let n: i64 = col(row, 0, "chunks_fts.count")?;
            cache.put((user_id, terms[*i].clone()), n);
            counts[*i] = Some(n);
        }
        Ok(TermFrequencies {
            own: col(first, 0, "documents.chunk_count")?,
            total: col(first, 1, "chunks.id")?,
            counts: counts.into_iter().map(|c| c.unwrap_or(0)).collect(),
        })
    }

    /// The user's chunks that hold any of `terms`, best BM25 first (a heading match weighs double).
    /// With `owner_in_match` (see [`TermFrequencies::owner_in_match`]) FTS5 matches and ranks only
    /// the user's chunks, their owner token ANDed in: another user's chunks holding the same
    /// words cost nothing. Either way the owner filter is in the statement.
    pub async fn search_chunks_text(
        &self,
        user_id: UserId,
        terms: &[String],
        owner_in_match: bool,
        limit: u32,
    ) -> StoreResult<Vec<ChunkHit>> {
        let any = terms
            .iter()
            .map(|t| phrase(t))
            .collect::<Vec<_>>()
            .join(" OR ");
        let fts_query = if owner_in_match {
            let owner = phrase(&owner_token(user_id));
            format!("owner_token : {owner} AND {{heading content}} : ({any})")
        } else {
            format!("{{heading content}} : ({any})")
        };
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
    use super::{owner_token, CommonWords};
    use crate::ids::{DocumentId, UserId};
    use crate::store::{Conn, DocumentCaps, NewChunk, NewDocument, NewUser};

    const NEVER_COMMON: CommonWords = CommonWords {
        from_chunks: i64::MAX,
        share: 1,
    };

    fn chunk(content: &str) -> NewChunk {
        NewChunk {
            ord: 0,
            heading: String::new(),
            content: content.into(),
            tokens: 3,
            embedding: None,
        }
    }

    /// A ready document of `user_id` holding `contents`, one chunk each.
    async fn document(conn: &Conn, user_id: UserId, contents: &[&str]) -> DocumentId {
        let new = NewDocument {
            user_id,
            title: "Words",
            content_type: "text/plain",
            size: 1,
            sha256: "0",
            embedder: None,
        };
        let doc = conn
            .insert_indexing_document(DocumentId::new(), new, None, DocumentCaps::NONE)
            .await
            .unwrap();
        let chunks: Vec<NewChunk> = contents.iter().map(|c| chunk(c)).collect();
        assert!(conn.add_chunks(doc.id, user_id, &chunks).await.unwrap());
        assert!(conn
            .finish_indexing(doc.id, user_id, chunks.len(), None)
            .await
            .unwrap());
        doc.id
    }

    async fn other_user(conn: &Conn, email: &str) -> UserId {
        let new = NewUser {
            email,
            password_hash: "x",
            display_name: "other",
            role: crate::kinds::Role::User,
        };
        conn.insert_user(new).await.unwrap().id
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[tokio::test]
    async fn terms_are_counted_by_their_stem_as_the_search_matches_them() {
        let (_dir, conn, user_id) = crate::store::test_conn_with_user().await;
        let contents = ["indexing the rows", "an index of rows", "indexes and keys"];
        document(&conn, user_id, &contents).await;
        let terms = strings(&["indexing", "rows", "keys", "absent", "say \"hi\""]);
        let found = conn
            .term_frequencies(user_id, &terms, NEVER_COMMON)
            .await
            .unwrap();
        // "indexing" is every chunk's stem "index"; "rows" two; a quote is text, not syntax.
        assert_eq!(found.counts, vec![3, 2, 1, 0, 0]);
        assert_eq!((found.total, found.own), (3, 3));
    }

    #[tokio::test]
    async fn terms_are_counted_and_matched_among_the_users_own_chunks_only() {
        let (_dir, conn, user_id) = crate::store::test_conn_with_user().await;
        let mine = document(
            &conn,
            user_id,
            &["alpha and beta", "gamma", "delta", "omega"],
        )
        .await;
        // Another user stores "alpha" in bulk: over all users it would be in 11 chunks of 14,
        // common by the rule below, and so dropped from the first user's search.
        let crowd = other_user(&conn, "crowd@example.com").await;
        document(&conn, crowd, &["alpha"; 10]).await;
        let rule = CommonWords {
            from_chunks: 4,
            share: 2,
        };
        let terms = strings(&["alpha", "beta", "zeta"]);
        let found = conn.term_frequencies(user_id, &terms, rule).await.unwrap();
        assert_eq!(found.counts, vec![1, 1, 0]);
        assert_eq!(found.own, 4);
        assert!(!rule.is_common(found.counts[0], found.own));
        assert!(found.owner_in_match(), "4 chunks of 14");
        for owner_in_match in [true, false] {
            let hits = conn
                .search_chunks_text(user_id, &strings(&["alpha"]), owner_in_match, 10)
                .await
                .unwrap();
            assert_eq!(hits.len(), 1);
            assert_eq!(hits[0].document_id, mine);
        }

        // For the crowd's owner the word is common: counting stops at the first count that
        // shows it (10 / 2 + 1), rather than walking all ten.
        let theirs = conn.term_frequencies(crowd, &terms, rule).await.unwrap();
        assert_eq!(theirs.counts, vec![6, 0, 0]);
        assert!(rule.is_common(theirs.counts[0], theirs.own));
        // An owner token typed as a word matches nothing: words are matched in the text only.
        let typed = conn
            .search_chunks_text(user_id, &[owner_token(crowd)], true, 10)
            .await
            .unwrap();
        assert!(typed.is_empty());
    }

    #[tokio::test]
    async fn the_owner_token_is_spelled_as_the_schema_spells_it() {
        let (_dir, conn, user_id) = crate::store::test_conn_with_user().await;
        document(&conn, user_id, &["words"]).await;
        let rows = conn
            .query("SELECT owner_token FROM chunks", ())
            .await
            .unwrap();
        let stored: String = super::col(&rows[0], 0, "chunks.owner_token").unwrap();
        assert_eq!(stored, owner_token(user_id));
    }
}

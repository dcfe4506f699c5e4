//! Search over a user's knowledge: full-text and vector retrieval fused by rank (RRF), with
//! snippets; and the sources a chat turn is given.

use super::*;
use crate::store::{ChunkHit, Citation};

/// A retrieved chunk with its fused score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: ChunkHit,
    pub score: f64,
    /// A piece of the chunk around the first query word it holds.
    pub snippet: String,
}

impl Hit {
    pub fn citation(&self) -> Citation {
        Citation {
            document_id: self.chunk.document_id.to_string(),
            title: self.chunk.title.clone(),
            chunk: self.chunk.ord,
            heading: self.chunk.heading.clone(),
            score: self.score,
            snippet: self.snippet.clone(),
        }
    }
}

/// The user's `limit` best chunks for `query`: FTS5 BM25 and vector ranks fused by reciprocal
/// rank fusion. A query without a word to search for is a 422 on `field`.
pub async fn search(
    conn: &Conn,
    embedding: Embedding<'_>,
    budget: &Budget,
    query: &str,
    limit: u32,
    field: &str,
) -> Result<Vec<Hit>> {
    let words = embedder::words(query);
    if words.is_empty() {
        return Err(Error::invalid(field, "must contain a word to search for"));
    }
    let user_id = budget.user_id;
    let candidates = limit * CANDIDATES_PER_RESULT;
    // Two steps, each of two parts run together. First the words' counts and the query's vector
    // (a remote embedder's call overlaps the statement). Then the full-text statement here and
    // the vector statement on a second connection in its own task: on a local file the two run on
    // two cores (at 100k chunks about 6 and 4.5 ms p50; bench/README.md), against a remote store
    // their round trips overlap.
    let ((plan, factor), vector) = tokio::try_join!(
        search_terms(conn, user_id, &words),
        embedding.query_vector(conn, budget, query),
    )?;
    let by_vector = match vector {
        Some(vector) => {
            let other = conn.fork().await?;
            let embedder = embedding.name();
            Some(tokio::spawn(async move {
                other
                    .search_chunks_vector(
                        user_id,
                        &embedder,
                        &vector,
                        candidates,
                        candidates * factor,
                    )
                    .await
            }))
        }
        None => None,
    };
    let by_text = if plan.terms.is_empty() {
        Vec::new()
    } else {
        conn.search_chunks_text(user_id, &plan.terms, plan.owner_in_match, candidates)
            .await?
    };
    let by_vector = match by_vector {
        Some(task) => task
            .await
            .map_err(|e| Error::Internal(format!("the vector search task failed: {e}")))??,
        None => Vec::new(),
    };
    Ok(fuse(&[by_text, by_vector], limit as usize)
        .into_iter()
        .map(|(chunk, score)| Hit {
            snippet: snippet(&chunk.content, &words),
            chunk,
            score,
        })
        .collect())
}

/// The words full-text search looks for: distinct, at most [`MAX_QUERY_TERMS`] of the rarest among
/// the user's own chunks, without the words [`COMMON_WORDS`] in them: matching such a word means
/// scoring a large part of the user's chunks (160 ms a query at 100k chunks, against about 10
/// without; bench/README.md) for almost no BM25 weight. A query of only such words is answered by
/// its vector neighbours alone. What other users store changes neither which words are searched
/// nor which of the user's chunks match. Also returns how many times the candidates the vector
/// index is asked for (see [`oversample`]).
async fn search_terms(conn: &Conn, user_id: UserId, words: &[String]) -> Result<(TextPlan, u32)> {
    let mut unique: Vec<String> = Vec::new();
    for w in words {
        if !unique.contains(w) && unique.len() < MAX_LOOKUP_TERMS {
            unique.push(w.clone());
        }
    }
    let stats = conn
        .term_frequencies(user_id, &unique, COMMON_WORDS)
        .await?;
    let factor = oversample(stats.total, stats.own);
    let plan = TextPlan {
        owner_in_match: stats.owner_in_match(),
        terms: rarest_terms(unique, stats.counts, stats.own),
    };
    Ok((plan, factor))
}

/// What the full-text statement looks for, and how (see `Conn::search_chunks_text`).
struct TextPlan {
    terms: Vec<String>,
    owner_in_match: bool,
}

/// How many neighbours per wanted candidate to ask the vector index for, which ranks all users'
/// chunks: about the index's size over the user's share of it, up to [`ANN_OVERSAMPLE`] (past
/// that, the exact scan of the user's own chunks answers). A user who holds most of the index
/// asks for no more than needed: every neighbour visited costs time.
fn oversample(total: i64, own: i64) -> u32 {
    if own <= 0 {
        return ANN_OVERSAMPLE;
    }
    let ratio = (total + own - 1) / own;
    ratio.clamp(1, ANN_OVERSAMPLE as i64) as u32
}

/// The words to search for, given how many of the user's chunks hold each and how many they hold.
fn rarest_terms(words: Vec<String>, counts: Vec<i64>, own: i64) -> Vec<String> {
    let mut ranked: Vec<(i64, String)> = counts.into_iter().zip(words).collect();
    ranked.retain(|(n, _)| !COMMON_WORDS.is_common(*n, own));
    ranked.sort();
    ranked.truncate(MAX_QUERY_TERMS);
    ranked.into_iter().map(|(_, w)| w).collect()
}

/// Reciprocal rank fusion: each list gives a chunk 1 / (k + rank); the best sums first (ties by
/// chunk id, so equal scores order the same every time).
fn fuse(lists: &[Vec<ChunkHit>], limit: usize) -> Vec<(ChunkHit, f64)> {
    let mut scored: Vec<(ChunkHit, f64)> = Vec::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f64 + 1.0);
            match scored.iter_mut().find(|(h, _)| h.chunk_id == hit.chunk_id) {
                Some((_, score)) => *score += add,
                None => scored.push((hit.clone(), add)),
            }
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.chunk_id.cmp(&b.0.chunk_id)));
    scored.truncate(limit);
    scored
}

/// About [`SNIPPET_CHARS`] of `content`, starting a little before the first query word it holds.
fn snippet(content: &str, words: &[String]) -> String {
    let lower = content.to_lowercase();
    let at = words
        .iter()
        .filter_map(|w| lower.find(w.as_str()))
        .min()
        .unwrap_or(0);
    // `lower` can differ in length from `content` for some scripts; fall back to the start.
    let at = if lower.len() == content.len() { at } else { 0 };
    let chars: Vec<char> = content.chars().collect();
    let start_char = content[..floor_boundary(content, at)]
        .chars()
        .count()
        .saturating_sub(40);
    let end_char = (start_char + SNIPPET_CHARS).min(chars.len());
    let mut out: String = chars[start_char..end_char].iter().collect();
    out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if start_char > 0 {
        out.insert(0, '…');
    }
    if end_char < chars.len() {
        out.push('…');
    }
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// What a chat turn is given from the user's knowledge: numbered sources for the system prompt,
/// as many of the best chunks as fit in `max_tokens`, and their citations in the same order.
pub async fn context_for(
    conn: &Conn,
    embedding: Embedding<'_>,
    budget: &Budget,
    question: &str,
    max_tokens: usize,
) -> Result<Option<(String, Vec<Citation>)>> {
    // A question without a searchable word retrieves nothing rather than refusing the turn.
    if embedder::words(question).is_empty() {
        return Ok(None);
    }
    let hits = search(conn, embedding, budget, question, 5, "message").await?;
    let mut text = String::from(
        "Sources from the user's knowledge base follow. Use them when they answer the question and \
         cite them by number, like [1]. Say so when they do not.",
    );
    let mut citations = Vec::new();
    let mut used = estimate_tokens(&text) as usize;
    for hit in hits {
        let n = citations.len() + 1;
        let heading = if hit.chunk.heading.is_empty() {
            String::new()
        } else {
            format!(" › {}", hit.chunk.heading)
        };
        let source = format!(
            "\n\n[{n}] {}{heading}\n{}",
            hit.chunk.title, hit.chunk.content
        );
        let cost = estimate_tokens(&source) as usize;
        if used + cost > max_tokens {
            break;
        }
        used += cost;
        text.push_str(&source);
        citations.push(hit.citation());
    }
    Ok((!citations.is_empty()).then_some((text, citations)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_start_near_the_first_word_and_mark_cuts() {
        let long = format!("{} whale {}", "x ".repeat(200), "y ".repeat(200));
        let s = snippet(&long, &["whale".to_string()]);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("whale"),
            "{s}"
        );
        assert_eq!(snippet("short text", &["none".into()]), "short text");
        assert_eq!(snippet("ÄÖÜ straße", &["straße".into()]), "ÄÖÜ straße");
    }

    #[test]
    fn the_vector_index_is_asked_for_the_users_share() {
        assert_eq!(oversample(100_000, 100_000), 1);
        assert_eq!(oversample(100_000, 60_000), 2);
        assert_eq!(oversample(100_000, 25_000), 4);
        assert_eq!(oversample(100_000, 100), ANN_OVERSAMPLE);
        assert_eq!(oversample(0, 0), ANN_OVERSAMPLE);
    }

    #[test]
    fn common_words_leave_full_text_search_only_in_a_large_set_of_the_users_chunks() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Small index: every word stays, rarest first.
        assert_eq!(
            rarest_terms(words(&["common", "rare"]), vec![900, 3], 1000),
            words(&["rare", "common"])
        );
        // Large index: a word in more than 1 chunk of 20 goes; all of them may go.
        assert_eq!(
            rarest_terms(
                words(&["common", "rare", "edge"]),
                vec![9000, 3, 5000],
                100_000
            ),
            words(&["rare", "edge"])
        );
        assert!(rarest_terms(words(&["the"]), vec![90_000], 100_000).is_empty());
        let many: Vec<String> = (0..40).map(|i| format!("w{i:02}")).collect();
        let counts: Vec<i64> = (0..40).rev().collect();
        let kept = rarest_terms(many, counts, 1000);
        assert_eq!(kept.len(), MAX_QUERY_TERMS);
        assert_eq!(kept[0], "w39", "the rarest first");
    }
}

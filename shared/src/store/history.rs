//! Search over history: full-text (FTS5, stemmed) over a user's own messages, best match first,
//! the owner filter inside the statement that ranks.

use super::{
    col, collect,
    knowledge_search::{owner_token, phrase},
    Conn, FullText, Row, StoreResult,
};
use crate::{
    ids::{ConversationId, MessageId, UserId},
    kinds::MessageRole,
};

/// A message found by a search.
#[derive(Debug, Clone)]
pub struct MessageHit {
    pub conversation_id: ConversationId,
    pub conversation_title: String,
    pub message_id: MessageId,
    pub role: MessageRole,
    /// The best-matching part of the message (FTS5's `snippet`, plain text).
    pub snippet: String,
    pub created_at: String,
    /// The BM25 rank (lower is better) and the message's seq: the page's order and its cursor.
    pub rank: f64,
    pub seq: i64,
}

fn hit_from_row(row: &Row) -> StoreResult<MessageHit> {
    Ok(MessageHit {
        conversation_id: col(row, 0, "messages.conversation_id")?,
        conversation_title: col(row, 1, "conversations.title")?,
        message_id: col(row, 2, "messages.id")?,
        role: col(row, 3, "messages.role")?,
        snippet: col(row, 4, "messages_fts.snippet")?,
        created_at: col(row, 5, "messages.created_at")?,
        rank: col(row, 6, "messages_fts.rank")?,
        seq: col(row, 7, "messages.seq")?,
    })
}

/// Matches a search ranks at most: the user's newest ones. Ranking costs about 3 µs a match (in a
/// Python SQLite copy of the bench's million-message store), so a word in 19 000 messages took
/// 52 ms to rank whole and one in 190 000 about 300 ms; the newest 1 000 take 4 to 7 ms whatever
/// the word. A search's answers are the best of those, best first.
pub const RANKED_MATCHES: u32 = 1000;

/// Whether each user holds half the messages or more, per instance (see
/// [`Conn::search_messages`]): it decides how the owner is filtered, never what is found, so a few
/// minutes stale is harmless.
pub struct HistoryShares(crate::cache::TtlCache<UserId, bool>);

impl Default for HistoryShares {
    fn default() -> Self {
        HistoryShares(crate::cache::TtlCache::new(
            4096,
            std::time::Duration::from_secs(300),
        ))
    }
}

impl Conn {
    /// Whether the user holds half the messages or more (cached per instance).
    async fn holds_most_messages(&self, user_id: UserId) -> StoreResult<bool> {
        if let Some(most) = self.store.history_shares.0.get(&user_id) {
            return Ok(most);
        }
        let rows = self
            .query(
                "SELECT (SELECT COALESCE(sum(message_count), 0) FROM conversations WHERE user_id = ?1) * 2
                        >= (SELECT COALESCE(max(seq), 0) FROM messages)",
                [user_id],
            )
            .await?;
        let most: bool = match rows.first() {
            Some(row) => col(row, 0, "conversations.message_count")?,
            None => false,
        };
        self.store.history_shares.0.put(user_id, most);
        Ok(most)
    }

    /// The user's messages holding every one of `terms` (each stemmed as the index stems it), best
    /// BM25 first among the newest [`RANKED_MATCHES`], after `after` (the previous page's last rank
    /// and seq); one more than `limit` if there are more. FTS5 matches the user's owner token with
    /// the words, so other users' messages are neither matched nor ranked, unless the user holds
    /// half the messages or more: then ranking every match and keeping the user's costs less (see
    /// `TermFrequencies::owner_in_match`); the answers are the same, the token weighing nothing.
    /// Snippets are made for the page's messages only.
    pub async fn search_messages(
        &self,
        user_id: UserId,
        terms: &[String],
        after: Option<(f64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<MessageHit>> {
        let words = terms
            .iter()
            .map(|t| phrase(t))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut query = format!("content : ({words})");
        if !self.holds_most_messages(user_id).await? {
            query = format!(
                "owner_token : {} AND {query}",
                phrase(&owner_token(user_id))
            );
        }
        let (after_rank, after_seq) = after.unzip();
        let rows = self
            .query(
                "WITH hits AS (
                     SELECT f.rowid AS seq, f.rank AS rank
                     FROM messages_fts f JOIN messages m ON m.seq = f.rowid
                     JOIN conversations c ON c.id = m.conversation_id
                     WHERE messages_fts MATCH ?2 AND c.user_id = ?1
                       AND f.rowid >= COALESCE((
                           SELECT min(rowid) FROM (
                               SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?2
                               ORDER BY rowid DESC LIMIT ?6)), 0)
                       AND (?3 IS NULL OR f.rank > ?3 OR (f.rank = ?3 AND f.rowid > ?4))
                     ORDER BY f.rank, f.rowid LIMIT ?5)
                 SELECT m.conversation_id, c.title, m.id, m.role,
                        (SELECT snippet(messages_fts, 0, '', '', '…', 16) FROM messages_fts
                         WHERE messages_fts MATCH ?2 AND rowid = h.seq),
                        m.created_at, h.rank, h.seq,
                        (SELECT next < stop FROM messages_fts_backfill)
                 FROM hits h JOIN messages m ON m.seq = h.seq
                 JOIN conversations c ON c.id = m.conversation_id
                 ORDER BY h.rank, h.seq",
                libsql::params![
                    user_id,
                    query,
                    after_rank,
                    after_seq,
                    limit as i64 + 1,
                    RANKED_MATCHES as i64
                ],
            )
            .await?;
        if self.messages_backfill_pending(rows.first()).await? {
            self.store.finish_backfill(FullText::Messages);
        }
        collect(rows, hit_from_row)
    }

    /// Whether messages stored before migration 26 are still to be indexed: read from the
    /// search's first row when it has one (its last column), else asked.
    async fn messages_backfill_pending(&self, row: Option<&Row>) -> StoreResult<bool> {
        if let Some(row) = row {
            return col(row, 8, "messages_fts_backfill.next");
        }
        let rows = self
            .query("SELECT next < stop FROM messages_fts_backfill", ())
            .await?;
        match rows.first() {
            Some(row) => col(row, 0, "messages_fts_backfill.next"),
            None => Ok(false),
        }
    }
}

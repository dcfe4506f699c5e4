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

impl Conn {
    /// The user's messages holding every one of `terms` (each stemmed as the index stems it), best
    /// BM25 first, after `after` (the previous page's last rank and seq); one more than `limit` if
    /// there are more. FTS5 matches the user's owner token with the words, so other users' messages
    /// are neither matched nor ranked, unless the user holds half the messages or more: then
    /// ranking every match and keeping the user's costs less (see
    /// `TermFrequencies::owner_in_match`); the answer is the same, the token weighing nothing.
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
        let words = format!("content : ({words})");
        let with_owner = format!(
            "owner_token : {} AND {words}",
            phrase(&owner_token(user_id))
        );
        let (after_rank, after_seq) = after.unzip();
        let rows = self
            .query(
                "WITH query AS (
                     SELECT CASE WHEN (SELECT COALESCE(sum(message_count), 0) FROM conversations
                                       WHERE user_id = ?1) * 2
                                      < (SELECT COALESCE(max(seq), 0) FROM messages)
                                 THEN ?2 ELSE ?3 END AS q),
                 hits AS (
                     SELECT f.rowid AS seq, f.rank AS rank
                     FROM messages_fts f JOIN messages m ON m.seq = f.rowid
                     JOIN conversations c ON c.id = m.conversation_id
                     WHERE messages_fts MATCH (SELECT q FROM query) AND c.user_id = ?1
                       AND (?4 IS NULL OR f.rank > ?4 OR (f.rank = ?4 AND f.rowid > ?5))
                     ORDER BY f.rank, f.rowid LIMIT ?6)
                 SELECT m.conversation_id, c.title, m.id, m.role,
                        (SELECT snippet(messages_fts, 0, '', '', '…', 16) FROM messages_fts
                         WHERE messages_fts MATCH (SELECT q FROM query) AND rowid = h.seq),
                        m.created_at, h.rank, h.seq,
                        (SELECT next < stop FROM messages_fts_backfill)
                 FROM hits h JOIN messages m ON m.seq = h.seq
                 JOIN conversations c ON c.id = m.conversation_id
                 ORDER BY h.rank, h.seq",
                libsql::params![
                    user_id,
                    with_owner,
                    words,
                    after_rank,
                    after_seq,
                    limit as i64 + 1
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

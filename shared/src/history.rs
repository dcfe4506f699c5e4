//! Search over history: the user's own messages by full text (stemmed), best match first.

use crate::{
    error::{FieldError, Result},
    ids::UserId,
    pagination::{Page, Paginated},
    store::{Conn, MessageHit},
};

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Words of a query searched for (each must be in a message); later ones are left out.
const MAX_WORDS: usize = 12;

/// A search's words: letters and digits, as the index's tokenizer cuts text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery(Vec<String>);

impl HistoryQuery {
    pub fn parse(q: &str) -> std::result::Result<Self, FieldError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(FieldError::new("q", "must not be empty"));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(FieldError::new(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let mut words: Vec<String> = Vec::new();
        for word in q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_lowercase();
            if !words.contains(&word) && words.len() < MAX_WORDS {
                words.push(word);
            }
        }
        if words.is_empty() {
            return Err(FieldError::new("q", "must hold a word (letters or digits)"));
        }
        Ok(HistoryQuery(words))
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }
}

/// A page of the user's messages holding every word of `query`, best match first.
pub async fn search(
    conn: &Conn,
    user_id: UserId,
    query: &HistoryQuery,
    page: Page<(f64, i64)>,
) -> Result<Paginated<MessageHit>> {
    let hits = conn
        .search_messages(user_id, query.words(), page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(hits, page.limit, |h| (h.rank, h.seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_words_within_limits() {
        assert_eq!(
            HistoryQuery::parse("  Deploy: the LAMBDA, deploy! ")
                .unwrap()
                .words(),
            ["deploy", "the", "lambda"]
        );
        assert_eq!(
            HistoryQuery::parse("\"x\" OR y*").unwrap().words(),
            ["x", "or", "y"],
            "FTS5 syntax is text"
        );
        for bad in ["", "   ", "!!! ???", &"a".repeat(MAX_QUERY_CHARS + 1)] {
            assert_eq!(HistoryQuery::parse(bad).unwrap_err().field, "q", "{bad}");
        }
        assert!(HistoryQuery::parse(&"a".repeat(MAX_QUERY_CHARS)).is_ok());
        let many = (0..20)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(HistoryQuery::parse(&many).unwrap().words().len(), MAX_WORDS);
    }
}

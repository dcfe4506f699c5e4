//! Keyset pagination: `?limit=` and an opaque `?cursor=` that encodes the sort key of the last item
//! returned, so each page costs an index seek however deep it is.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The raw query parameters; kept as strings so a bad value is a clear 422, not a generic 400.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page: 1 to 100 (larger values are clamped to 100); default 20.
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request; `K` is the sort key the cursor carries.
#[derive(Debug)]
pub struct Page<K> {
    pub limit: u32,
    pub after: Option<K>,
}

impl PageQuery {
    pub fn parse<K: DeserializeOwned>(&self) -> Result<Page<K>> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if n >= 1 => n.min(MAX_LIMIT as i64) as u32,
                _ => {
                    return Err(Error::invalid(
                        "limit",
                        "must be a whole number of at least 1",
                    ))
                }
            },
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                decode_cursor(raw)
                    .ok_or_else(|| Error::invalid("cursor", "is not a cursor this API issued"))?,
            ),
        };
        Ok(Page { limit, after })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paginated<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says another page exists.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Paginated {
            items: rows,
            next_cursor,
        }
    }
}

impl<T> Paginated<T> {
    /// The same page with each item converted (store rows to API shapes).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paginated<U> {
        Paginated {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("cursor keys serialize"))
}

fn decode_cursor<K: DeserializeOwned>(raw: &str) -> Option<K> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: Option<&str>, cursor: Option<&str>) -> PageQuery {
        PageQuery {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn limits_default_clamp_and_reject() {
        assert_eq!(q(None, None).parse::<String>().unwrap().limit, 20);
        assert_eq!(q(Some("1"), None).parse::<String>().unwrap().limit, 1);
        assert_eq!(q(Some("100"), None).parse::<String>().unwrap().limit, 100);
        assert_eq!(q(Some("101"), None).parse::<String>().unwrap().limit, 100);
        for bad in ["0", "-1", "ten", "1.5", ""] {
            let err = q(Some(bad), None).parse::<String>().unwrap_err();
            assert!(
                matches!(err, Error::Validation(ref e) if e[0].field == "limit"),
                "{bad}"
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_rejected() {
        let page = Paginated::from_rows(vec![("a", 1), ("b", 2), ("c", 3)], 2, |r| {
            (r.0.to_string(), r.1)
        });
        assert_eq!(page.items.len(), 2);
        let cursor = page.next_cursor.unwrap();
        let parsed = q(None, Some(&cursor)).parse::<(String, i32)>().unwrap();
        assert_eq!(parsed.after, Some(("b".to_string(), 2)));
        assert!(q(None, Some("not a cursor!"))
            .parse::<(String, i32)>()
            .is_err());
        assert!(q(None, Some(&URL_SAFE_NO_PAD.encode("[1]")))
            .parse::<(String, i32)>()
            .is_err());

        let last = Paginated::from_rows(vec![1, 2], 2, |r| *r);
        assert_eq!(last.next_cursor, None);
    }
}

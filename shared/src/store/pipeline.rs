//! One statement against a remote libSQL server in one round trip.
//!
//! The libsql crate's remote `query` costs three HTTP requests (a `describe` of the statement, a
//! cursor, and closing the stream), so every read of a page or a user paid three network round
//! trips. The Hrana pipeline endpoint takes the statement, its arguments and a `close` in one
//! request and answers with the rows; this client speaks exactly that. Transactions still go
//! through the libsql crate (they are few and need its stream handling).

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{Row, StoreError, StoreResult};

pub(super) struct Pipeline {
    http: reqwest::Client,
    url: String,
    auth: Option<String>,
}

impl Pipeline {
    /// For the database at `url` (`libsql://`, `https://` or `http://`).
    pub(super) fn new(url: &str, auth_token: &str) -> StoreResult<Self> {
        let base = match url.strip_prefix("libsql://") {
            Some(host) => format!("https://{host}"),
            None => url.to_string(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(Pipeline {
            http,
            url: format!("{}/v2/pipeline", base.trim_end_matches('/')),
            auth: (!auth_token.is_empty()).then(|| format!("Bearer {auth_token}")),
        })
    }

    /// Runs one statement (autocommit) and returns its rows and the number of rows it changed.
    ///
    /// A statement refused as busy did not run (autocommit: nothing of it was applied), so it is
    /// retried a few times after a short, jittered pause before the caller sees `Busy`: the server
    /// answers busy at once when another stream holds the write lock, where the local engine would
    /// have waited for it.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: libsql::params::Params,
    ) -> StoreResult<(Vec<Row>, u64)> {
        let body = Self::body(sql, params)?;
        let mut pause = BUSY_FIRST_PAUSE;
        for _ in 1..BUSY_ATTEMPTS {
            match self.send(&body).await {
                Err(StoreError::Busy) => {
                    tokio::time::sleep(jittered(pause)).await;
                    pause *= 2;
                }
                done => return done,
            }
        }
        self.send(&body).await
    }

    fn body(sql: &str, params: libsql::params::Params) -> StoreResult<Json> {
        let args = match params {
            libsql::params::Params::None => Vec::new(),
            libsql::params::Params::Positional(values) => values.iter().map(arg).collect(),
            libsql::params::Params::Named(_) => {
                return Err(StoreError::Db("named parameters are not used".into()))
            }
        };
        Ok(json!({
            "baton": null,
            "requests": [
                {"type": "execute", "stmt": {"sql": sql, "args": args, "want_rows": true}},
                {"type": "close"},
            ],
        }))
    }

    async fn send(&self, body: &Json) -> StoreResult<(Vec<Row>, u64)> {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(with_causes(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| StoreError::Unavailable(with_causes(&e)))?;
        match status.as_u16() {
            200 => {}
            401 | 403 => return Err(StoreError::Unauthorized(format!("status={status}"))),
            500.. => return Err(StoreError::Unavailable(format!("status={status}: {text}"))),
            _ => return Err(StoreError::Db(format!("status={status}: {text}"))),
        }
        let answer: Json =
            serde_json::from_str(&text).map_err(|e| StoreError::Db(e.to_string()))?;
        let first = &answer["results"][0];
        if first["type"] == "error" {
            return Err(sql_error(&first["error"]));
        }
        let result = &first["response"]["result"];
        let rows = result["rows"]
            .as_array()
            .ok_or(StoreError::Db("a pipeline answer without rows".into()))?
            .iter()
            .map(|cells| {
                let cells = cells.as_array().map(Vec::as_slice).unwrap_or_default();
                cells
                    .iter()
                    .map(value)
                    .collect::<StoreResult<Vec<_>>>()
                    .map(Row)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let changed = result["affected_row_count"].as_u64().unwrap_or(0);
        Ok((rows, changed))
    }
}

/// Busy answers are retried this many times in all, pausing 25, 50, 100 ms (jittered) between.
/// An error and the errors under it (reqwest's own message says only "error sending request"; what
/// went wrong, a refused connection, a timeout or a closed one, is further down).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

const BUSY_ATTEMPTS: u32 = 4;
const BUSY_FIRST_PAUSE: Duration = Duration::from_millis(25);

/// Between half and all of `pause`, so that instances refused together do not retry together.
fn jittered(pause: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let fraction = match getrandom::fill(&mut byte) {
        Ok(()) => 0.5 + byte[0] as f64 / 510.0,
        Err(_) => 0.75,
    };
    pause.mul_f64(fraction)
}

/// A statement's error as the libsql crate would report it, so one mapping serves both clients.
fn sql_error(error: &Json) -> StoreError {
    let message = error["message"]
        .as_str()
        .unwrap_or("unknown error")
        .to_string();
    let code = error["code"].as_str().unwrap_or("");
    if code.starts_with("SQLITE_BUSY") || code.starts_with("SQLITE_LOCKED") {
        StoreError::Busy
    } else {
        StoreError::classify(message, false)
    }
}

fn arg(v: &libsql::Value) -> Json {
    use base64::Engine;
    match v {
        libsql::Value::Null => json!({"type": "null"}),
        libsql::Value::Integer(n) => json!({"type": "integer", "value": n.to_string()}),
        libsql::Value::Real(x) => json!({"type": "float", "value": x}),
        libsql::Value::Text(s) => json!({"type": "text", "value": s}),
        libsql::Value::Blob(b) => json!({
            "type": "blob",
            "base64": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b),
        }),
    }
}

fn value(cell: &Json) -> StoreResult<libsql::Value> {
    use base64::Engine;
    let bad = || StoreError::Db(format!("an unreadable value in a pipeline answer: {cell}"));
    Ok(match cell["type"].as_str().ok_or_else(bad)? {
        "null" => libsql::Value::Null,
        "integer" => libsql::Value::Integer(
            cell["value"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?,
        ),
        "float" => libsql::Value::Real(cell["value"].as_f64().ok_or_else(bad)?),
        "text" => libsql::Value::Text(cell["value"].as_str().ok_or_else(bad)?.to_string()),
        "blob" => libsql::Value::Blob(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(
                    cell["base64"]
                        .as_str()
                        .ok_or_else(bad)?
                        .trim_end_matches('='),
                )
                .map_err(|_| bad())?,
        ),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_wire_format() {
        let values = [
            libsql::Value::Null,
            libsql::Value::Integer(-9_007_199_254_740_993),
            libsql::Value::Real(0.000_123_4),
            libsql::Value::Text("héllo \"quoted\"\n".into()),
            libsql::Value::Blob(vec![0, 255, 7, 1]),
        ];
        for v in values {
            // Integers travel as strings: no precision lost beyond 2^53.
            assert_eq!(value(&arg(&v)).unwrap(), v);
        }
        // The server may pad base64; both forms read.
        let padded = json!({"type": "blob", "base64": "AP8HAQ=="});
        assert_eq!(
            value(&padded).unwrap(),
            libsql::Value::Blob(vec![0, 255, 7, 1])
        );
        assert!(value(&json!({"type": "integer", "value": "x"})).is_err());
    }

    #[test]
    fn statement_errors_map_like_the_local_engine() {
        let busy = json!({"message": "database is locked", "code": "SQLITE_BUSY"});
        assert!(matches!(sql_error(&busy), StoreError::Busy));
        let unique = json!({
            "message": "SQLite error: UNIQUE constraint failed: users.email",
            "code": "SQLITE_CONSTRAINT"
        });
        assert!(sql_error(&unique).is_unique("users.email"));
    }
}

//! One statement against a remote libSQL server in one round trip, on a kept stream.
//!
//! The libsql crate's remote `query` costs three HTTP requests (a `describe` of the statement, a
//! cursor, and closing the stream), so every read of a page or a user paid three network round
//! trips. The Hrana pipeline endpoint takes the statement and its arguments in one request and
//! answers with the rows; this client speaks exactly that. Transactions still go through the libsql
//! crate (they are few and need its stream handling).
//!
//! Statements run on kept streams: at most [`KEPT_STREAMS`] per process, each used by one statement
//! at a time, a statement waiting for one when all are in use. A stream is a connection on the
//! server, and sqld checkpoints its WAL whenever it closes one; with a stream per statement,
//! concurrent writers wedged sqld's write queue on a connection that had already closed, and every
//! writer then waited for good (bench/README.md, "The stall's cause"). Kept streams close only
//! when they expire.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::{json, Value as Json};
use tokio::sync::Semaphore;

use super::{Row, StoreError, StoreResult};

pub(super) struct Pipeline {
    http: reqwest::Client,
    url: String,
    auth: Option<String>,
    /// One permit per kept stream: a statement holds one while it runs.
    permits: Semaphore,
    /// Streams open on the server and not in use; never more than the free permits.
    idle: Mutex<Vec<Stream>>,
}

/// An open stream: the baton that continues it and where to send it.
struct Stream {
    baton: String,
    url: String,
    idle_since: Instant,
}

/// Streams (and so statements at once) per process. Lambda runs one request at a time, so one or
/// two are in use; the local server and the tests run requests concurrently and queue here.
const KEPT_STREAMS: usize = 8;

/// sqld expires a stream idle for 10 s (Turso's limit is not published). One idle for longer than
/// this is left to expire instead of risking a refused round trip; a refused one is handled too.
const STREAM_IDLE_LIMIT: Duration = Duration::from_secs(5);

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
            url: pipeline_url(&base),
            auth: (!auth_token.is_empty()).then(|| format!("Bearer {auth_token}")),
            permits: Semaphore::new(KEPT_STREAMS),
            idle: Mutex::default(),
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
        let stmt = Self::statement(sql, params)?;
        let mut pause = BUSY_FIRST_PAUSE;
        for _ in 1..BUSY_ATTEMPTS {
            match self.send(&stmt).await {
                Err(StoreError::Busy) => {
                    tokio::time::sleep(jittered(pause)).await;
                    pause *= 2;
                }
                done => return done,
            }
        }
        self.send(&stmt).await
    }

    fn statement(sql: &str, params: libsql::params::Params) -> StoreResult<Json> {
        let args = match params {
            libsql::params::Params::None => Vec::new(),
            libsql::params::Params::Positional(values) => values.iter().map(arg).collect(),
            libsql::params::Params::Named(_) => {
                return Err(StoreError::Db("named parameters are not used".into()))
            }
        };
        Ok(json!({"sql": sql, "args": args, "want_rows": true}))
    }

    /// On a kept stream if there is one; on a new one if there is none or the server has let it go.
    async fn send(&self, stmt: &Json) -> StoreResult<(Vec<Row>, u64)> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        if let Some(stream) = self.take_idle() {
            match self.post(&stream.url, Some(&stream.baton), stmt).await {
                // The server no longer knows the stream (expired, or its baton refused): nothing
                // ran, so the statement goes on a new one.
                Err(Refused::Status(400, _)) => {}
                answer => return self.keep_and_read(answer, &stream.url),
            }
        }
        let answer = self.post(&self.url, None, stmt).await;
        self.keep_and_read(answer, &self.url)
    }

    /// A fresh idle stream, dropping the ones idle too long (the server expires them).
    fn take_idle(&self) -> Option<Stream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|s| s.idle_since.elapsed() < STREAM_IDLE_LIMIT);
        idle.pop()
    }

    /// The statement on the stream `baton` continues (a new stream without one), left open.
    async fn post(&self, url: &str, baton: Option<&str>, stmt: &Json) -> Result<Json, Refused> {
        let body = json!({"baton": baton, "requests": [{"type": "execute", "stmt": stmt}]});
        let mut request = self.http.post(url).json(&body);
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        Self::answer(request.send().await).await
    }

    /// Keeps the stream if the server answered with its next baton, and reads the statement's
    /// result.
    fn keep_and_read(
        &self,
        answer: Result<Json, Refused>,
        url: &str,
    ) -> StoreResult<(Vec<Row>, u64)> {
        let json = answer?;
        if let Some(baton) = json["baton"].as_str() {
            let next = Stream {
                baton: baton.to_string(),
                url: json["base_url"]
                    .as_str()
                    .map_or_else(|| url.to_string(), pipeline_url),
                idle_since: Instant::now(),
            };
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(next);
        }
        result(&json)
    }

    /// The answer's JSON, or why there is none.
    async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Json, Refused> {
        let response = sent.map_err(|e| Refused::Unreachable(with_causes(&e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| Refused::Unreachable(with_causes(&e)))?;
        if status != 200 {
            return Err(Refused::Status(status, text));
        }
        serde_json::from_str(&text).map_err(|e| Refused::Unreadable(e.to_string()))
    }
}

/// Why a pipeline request has no answer to read.
enum Refused {
    Unreachable(String),
    Status(u16, String),
    Unreadable(String),
}

impl From<Refused> for StoreError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Unreachable(why) => StoreError::Unavailable(why),
            Refused::Status(status @ (401 | 403), _) => {
                StoreError::Unauthorized(format!("status={status}"))
            }
            Refused::Status(status @ 500.., text) => {
                StoreError::Unavailable(format!("status={status}: {text}"))
            }
            Refused::Status(status, text) => StoreError::Db(format!("status={status}: {text}")),
            Refused::Unreadable(why) => StoreError::Db(why),
        }
    }
}

fn pipeline_url(base: &str) -> String {
    format!("{}/v2/pipeline", base.trim_end_matches('/'))
}

/// The statement's rows and changed-row count from a pipeline answer.
fn result(answer: &Json) -> StoreResult<(Vec<Row>, u64)> {
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

/// Busy answers are retried this many times in all, pausing 25, 50, 100 ms (jittered) between.
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

//! What a store operation can fail with, and which failures are safe to retry.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user already holds `limit` of `what` (API keys, projects, documents); nothing written.
    #[error("at most {limit} {what} per account; delete one first")]
    LimitReached { what: &'static str, limit: u64 },
    /// A project file write would pass the project's file count or size; nothing was written.
    #[error("{0}")]
    ProjectFull(&'static str),
    /// The write would take the user past `MAX_USER_STORAGE_BYTES`; nothing was written.
    #[error("this would store more than the {limit} bytes each account may keep (attachments, project files and knowledge documents together); delete some first")]
    StorageFull { limit: u64 },
    /// Another writer held the database past the busy timeout: safe to retry.
    #[error("the database is busy")]
    Busy,
    /// The remote database could not be reached (or answered 5xx): safe to retry.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The remote database refused the auth token.
    #[error(
        "the database refused the auth token (LIBSQL_AUTH_TOKEN / LIBSQL_AUTH_TOKEN_ARN): {0}"
    )]
    Unauthorized(String),
    /// A UNIQUE or PRIMARY KEY constraint refused a write; `constraint` names its columns as
    /// SQLite does (`users.email`), so the call site can map it to the field it concerns.
    #[error("unique constraint violated: {constraint}")]
    Unique { constraint: String },
    #[error("database error: {0}")]
    Db(String),
    #[error("could not open the database: {0}")]
    Open(String),
    #[error("unexpected data in column {0}")]
    Corrupt(&'static str),
}

impl From<libsql::Error> for StoreError {
    fn from(e: libsql::Error) -> Self {
        let message = e.to_string();
        let code = match &e {
            libsql::Error::SqliteFailure(code, _) => Some(*code),
            libsql::Error::RemoteSqliteFailure(code, _, _) => Some(*code),
            _ => None,
        };
        // Primary codes: 5 SQLITE_BUSY, 6 SQLITE_LOCKED; extended codes keep the primary in the low byte.
        if matches!(code.map(|c| c & 0xff), Some(5 | 6)) {
            return StoreError::Busy;
        }
        let unreachable = matches!(e, libsql::Error::ConnectionFailed(_))
            || (matches!(e, libsql::Error::Hrana(_)) && message.contains("http error"));
        StoreError::classify(message, unreachable)
    }
}

impl StoreError {
    /// Classifies an error by its text (as the local engine and the remote server word it);
    /// `unreachable` when the request never got an answer from the server.
    pub(super) fn classify(message: String, unreachable: bool) -> Self {
        let remote_status = message
            .split("status=")
            .nth(1)
            .and_then(|rest| rest.get(..3))
            .and_then(|s| s.parse::<u16>().ok());
        if message.contains("database is locked") {
            StoreError::Busy
        } else if matches!(remote_status, Some(401 | 403)) {
            StoreError::Unauthorized(message)
        } else if unreachable || matches!(remote_status, Some(500..=599)) {
            StoreError::Unavailable(message)
        } else if let Some(i) = message.find("UNIQUE constraint failed: ") {
            let rest = &message[i + "UNIQUE constraint failed: ".len()..];
            let constraint = rest
                .split(|c: char| !(c.is_alphanumeric() || "_., ".contains(c)))
                .next()
                .unwrap_or(rest)
                .trim()
                .to_string();
            StoreError::Unique { constraint }
        } else {
            StoreError::Db(message)
        }
    }
}

impl StoreError {
    /// Whether this is the unique constraint on `constraint` (e.g. `users.email`).
    pub fn is_unique(&self, constraint: &str) -> bool {
        matches!(self, StoreError::Unique { constraint: c } if c == constraint)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

//! Result rows and the column types the store reads.

use super::{StoreError, StoreResult};
use crate::{
    ids::{
        AgentId, ApiKeyId, AttachmentId, ConversationId, DocumentId, McpServerId, MessageId,
        ProjectId, ShareId, UserId,
    },
    kinds::{
        AgentStatus, AttachmentStatus, DocumentStatus, MessageRole, MessageStatus, Role,
        UploadPurpose,
    },
};

/// A result row: its values by column.
pub(super) struct Row(pub(super) Vec<libsql::Value>);

/// Reads every row of a libsql result (statements inside a transaction, and the local store).
pub(super) async fn rows(mut rows: libsql::Rows) -> StoreResult<Vec<Row>> {
    let columns = rows.column_count();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        let values = (0..columns)
            .map(|i| row.get_value(i))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Row(values));
    }
    Ok(out)
}

/// Reads a column, turning type mismatches into [`StoreError::Corrupt`].
pub(super) fn col<T: FromColumn>(row: &Row, idx: i32, name: &'static str) -> StoreResult<T> {
    usize::try_from(idx)
        .ok()
        .and_then(|i| row.0.get(i))
        .and_then(T::from_column)
        .ok_or(StoreError::Corrupt(name))
}

/// The column types the store reads (libsql's own conversion trait is sealed).
pub(super) trait FromColumn: Sized {
    fn from_column(v: &libsql::Value) -> Option<Self>;
}

impl FromColumn for String {
    fn from_column(v: &libsql::Value) -> Option<Self> {
        match v {
            libsql::Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromColumn for i64 {
    fn from_column(v: &libsql::Value) -> Option<Self> {
        match v {
            libsql::Value::Integer(n) => Some(*n),
            _ => None,
        }
    }
}

impl FromColumn for f64 {
    fn from_column(v: &libsql::Value) -> Option<Self> {
        match v {
            libsql::Value::Real(x) => Some(*x),
            libsql::Value::Integer(n) => Some(*n as f64),
            _ => None,
        }
    }
}

macro_rules! parsed_column {
    ($($t:ty => $parse:expr),+ $(,)?) => {$(
        impl FromColumn for $t {
            fn from_column(v: &libsql::Value) -> Option<Self> {
                match v {
                    libsql::Value::Text(s) => $parse(s.as_str()),
                    _ => None,
                }
            }
        }
    )+};
}

parsed_column!(
    UserId => |s: &str| s.parse().ok(),
    ConversationId => |s: &str| s.parse().ok(),
    MessageId => |s: &str| s.parse().ok(),
    AttachmentId => |s: &str| s.parse().ok(),
    ProjectId => |s: &str| s.parse().ok(),
    AgentId => |s: &str| s.parse().ok(),
    ApiKeyId => |s: &str| s.parse().ok(),
    DocumentId => |s: &str| s.parse().ok(),
    ShareId => |s: &str| s.parse().ok(),
    McpServerId => |s: &str| s.parse().ok(),
    AgentStatus => AgentStatus::parse,
    AttachmentStatus => AttachmentStatus::parse,
    DocumentStatus => DocumentStatus::parse,
    UploadPurpose => UploadPurpose::parse,
    Role => Role::parse,
    MessageRole => MessageRole::parse,
    MessageStatus => MessageStatus::parse,
);

impl FromColumn for Vec<u8> {
    fn from_column(v: &libsql::Value) -> Option<Self> {
        match v {
            libsql::Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl FromColumn for bool {
    fn from_column(v: &libsql::Value) -> Option<Self> {
        match v {
            libsql::Value::Integer(n) => Some(*n != 0),
            _ => None,
        }
    }
}

/// Reads every row with `f`.
pub(super) fn collect<T>(rows: Vec<Row>, f: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}

/// Reads the first row with `f`, if there is one.
pub(super) fn first<T>(rows: Vec<Row>, f: fn(&Row) -> StoreResult<T>) -> StoreResult<Option<T>> {
    rows.first().map(f).transpose()
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_column(v: &libsql::Value) -> Option<Self> {
        match v {
            libsql::Value::Null => Some(None),
            other => T::from_column(other).map(Some),
        }
    }
}

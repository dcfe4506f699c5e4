//! Identifiers and timestamps in the one format the API and the store share.
//!
//! Ids are UUIDv7 newtypes, one per kind of row, so a conversation id cannot be passed where a
//! message id is expected. Parsing accepts only the canonical hyphenated form: anything else cannot
//! name a row, so the path extractor answers 404 for it before any query.

use std::{fmt, str::FromStr};

use time::{format_description::BorrowedFormatItem, macros::format_description, OffsetDateTime};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id: primary keys double as creation order.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                parse_canonical(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                uuid_schema()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl From<$name> for libsql::Value {
            fn from(id: $name) -> Self {
                libsql::Value::Text(id.to_string())
            }
        }
    };
}

uuid_id!(
    /// An account.
    UserId
);
uuid_id!(
    /// A conversation.
    ConversationId
);
uuid_id!(
    /// A message of a conversation.
    MessageId
);
uuid_id!(
    /// A file uploaded to send with chat messages.
    AttachmentId
);
uuid_id!(
    /// A code workspace.
    ProjectId
);
uuid_id!(
    /// A configured assistant.
    AgentId
);
uuid_id!(
    /// A share link of a conversation.
    ShareId
);
uuid_id!(
    /// A knowledge document.
    DocumentId
);
uuid_id!(
    /// A personal API key.
    ApiKeyId
);
uuid_id!(
    /// A user's MCP tool server.
    McpServerId
);

/// A new UUIDv7 as text, for ids that never travel typed: token `jti`s and families, usage rows,
/// request ids.
pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an id")]
pub struct InvalidId;

fn parse_canonical(s: &str) -> Result<Uuid, InvalidId> {
    // `Uuid::parse_str` also takes braced, URN and simple forms; an id has exactly one spelling.
    if s.len() != 36 {
        return Err(InvalidId);
    }
    Uuid::parse_str(s).map_err(|_| InvalidId)
}

fn uuid_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )))
        .into()
}

/// RFC 3339 in UTC with a fixed six-digit fraction, so stored timestamps sort as text.
const RFC3339_MICROS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(RFC3339_MICROS)
        .expect("a UTC time always formats")
}

/// The current time, formatted for the store and the API.
pub fn now() -> String {
    format_time(OffsetDateTime::now_utc())
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_and_sort_as_text() {
        let a = format_time(time::macros::datetime!(2026-01-02 03:04:05.5 UTC));
        let b = format_time(time::macros::datetime!(2026-01-02 03:04:05.25 +01:00));
        assert_eq!(a, "2026-01-02T03:04:05.500000Z");
        assert_eq!(b, "2026-01-02T02:04:05.250000Z");
        assert!(b < a);
        assert_eq!(parse_time(&a).unwrap().unix_timestamp(), 1767323045);
    }

    #[test]
    fn ids_are_uuid_v7_in_creation_order_with_one_spelling() {
        let a = ConversationId::new();
        let b = ConversationId::new();
        assert!(a.to_string() < b.to_string() && a < b);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.to_string().parse::<ConversationId>(), Ok(a));
        let upper = a.to_string().to_uppercase();
        assert!(
            upper.parse::<ConversationId>().is_ok(),
            "hex case is not spelling"
        );
        for bad in [
            "",
            "../etc",
            "not-a-uuid",
            &a.0.simple().to_string(),
            &format!("{{{a}}}"),
            &format!("urn:uuid:{a}"),
        ] {
            assert_eq!(bad.parse::<ConversationId>(), Err(InvalidId), "{bad}");
        }
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<ConversationId>(&json).unwrap(), a);
        assert!(serde_json::from_str::<ConversationId>("\"x\"").is_err());
    }
}

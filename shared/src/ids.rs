//! Identifiers and timestamps in the one format the API and the store share.

use time::{format_description::BorrowedFormatItem, macros::format_description, OffsetDateTime};

/// A new UUIDv7: time-ordered, so primary keys double as creation order for keyset pagination.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `s` is a UUID in canonical form. Anything else cannot name a row, so handlers answer
/// 404 without touching the store.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
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
    fn ids_are_uuid_v7_in_creation_order() {
        let a = new_id();
        let b = new_id();
        assert!(is_uuid(&a) && a < b);
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
        assert!(!is_uuid("../etc") && !is_uuid(""));
    }
}

//! Time as Herald stores it: integer milliseconds since the Unix epoch, rendered as RFC 3339.

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

/// RFC 3339 in UTC with exactly three fractional digits, so timestamps sort as strings.
const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Milliseconds since the Unix epoch, the unit of every timestamp column.
pub type Millis = i64;

/// The current time in milliseconds.
pub fn now_ms() -> Millis {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Renders a stored timestamp as RFC 3339 in UTC with millisecond precision.
///
/// ```
/// assert_eq!(herald_core::clock::rfc3339(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
/// ```
pub fn rfc3339(ms: Millis) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(FORMAT).unwrap_or_default()
}

/// Serde helpers so model structs keep `Millis` and the wire gets RFC 3339.
pub mod serde_rfc3339 {
    use serde::Serializer;

    /// Serialises a timestamp.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ms))
    }

    /// Serialises an optional timestamp (`null` when absent).
    pub mod option {
        use serde::Serializer;

        /// Serialises an optional timestamp.
        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&super::super::rfc3339(*ms)),
                None => s.serialize_none(),
            }
        }
    }
}

//! The one spelling of a time in DOFS's machine output: RFC 3339, UTC,
//! millisecond precision, `Z` (`2026-12-02T19:30:00.123Z`).
//!
//! Every JSON document a client, a script or another step reads (the API's
//! orders, the step contracts, `dofs ... --json`, the console's JSON twins)
//! writes its times through [`format()`] or the serde helpers here, so a
//! reader parses one shape and can compare times as strings. Milliseconds
//! are the finest precision every backend is required to keep (DynamoDB
//! items written by the AWS adapters, SQLite documents locally), so nothing
//! finer is promised. Reading is lenient: any RFC 3339 time is accepted, so
//! documents written before this format (nanoseconds, `+00:00`) still load.

use chrono::{DateTime, SecondsFormat, Utc};

/// `at` as RFC 3339 UTC with milliseconds and `Z`; finer digits are
/// dropped, not rounded, so a time never moves into the next millisecond.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the epoch in [`format()`]'s spelling; `None` for an
/// instant outside chrono's range.
pub fn format_millis(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|at| format(&at))
}

/// Parses any RFC 3339 time (any offset, any precision) as UTC.
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
}

/// A stored time in [`format()`]'s spelling, for columns written by older
/// code in another spelling; text that is no RFC 3339 time is returned as
/// it is rather than hidden.
pub fn normalize(text: &str) -> String {
    parse(text).map_or_else(|_| text.to_owned(), |at| format(&at))
}

/// `#[serde(with = "dofs_core::timestamp::rfc3339_millis")]` on a
/// `DateTime<Utc>` field: written by [`format()`], read by [`parse`].
pub mod rfc3339_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// [`rfc3339_millis`] for an `Option<DateTime<Utc>>` field (`null` when
/// absent).
pub mod rfc3339_millis_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_str(&super::format(at)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?
            .map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `#[serde(with = "dofs_core::timestamp::normalized")]` on a `String`
/// field holding a stored time: written in [`format()`]'s spelling whatever
/// spelling the column has (see [`normalize`]).
pub mod normalized {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::normalize(text))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        String::deserialize(deserializer).map(|text| super::normalize(&text))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde::{Deserialize, Serialize};

    use super::*;

    fn instant() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 19, 30, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789)
    }

    /// The format every machine output shares, pinned.
    #[test]
    fn times_are_rfc3339_utc_milliseconds_with_z() {
        assert_eq!(format(&instant()), "2026-12-02T19:30:00.123Z");
        let whole = Utc.with_ymd_and_hms(2026, 12, 2, 19, 30, 0).unwrap();
        assert_eq!(format(&whole), "2026-12-02T19:30:00.000Z");
        assert_eq!(
            format_millis(1_796_239_800_123).as_deref(),
            Some("2026-12-02T19:30:00.123Z")
        );
    }

    #[test]
    fn older_spellings_are_read_and_rewritten() {
        for old in [
            "2026-12-02T19:30:00.123456789+00:00",
            "2026-12-02T19:30:00.123456789Z",
            "2026-12-02T20:30:00.123+01:00",
        ] {
            assert_eq!(normalize(old), "2026-12-02T19:30:00.123Z", "{old}");
        }
        assert_eq!(normalize("not a time"), "not a time");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Doc {
        #[serde(with = "rfc3339_millis")]
        at: DateTime<Utc>,
        #[serde(with = "rfc3339_millis_option")]
        stopped: Option<DateTime<Utc>>,
        #[serde(with = "normalized")]
        stored: String,
    }

    #[test]
    fn serde_helpers_write_the_format_and_read_any_rfc3339() {
        let doc = Doc {
            at: instant(),
            stopped: None,
            stored: "2026-12-02T19:30:00.123456789+00:00".to_owned(),
        };
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            json,
            r#"{"at":"2026-12-02T19:30:00.123Z","stopped":null,"stored":"2026-12-02T19:30:00.123Z"}"#
        );
        let back: Doc = serde_json::from_str(
            r#"{"at":"2026-12-02T19:30:00.123456789+00:00","stopped":"2026-12-02T19:30:01Z","stored":"x"}"#,
        )
        .unwrap();
        assert_eq!(back.at, instant());
        assert_eq!(
            back.stopped.map(|t| format(&t)).as_deref(),
            Some("2026-12-02T19:30:01.000Z")
        );
    }
}

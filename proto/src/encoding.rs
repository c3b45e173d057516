//! serde helpers for the protobuf JSON mapping as Sigstore clients enforce it: `bytes` as
//! standard base64 with padding (decoded strictly), 64-bit integers as decimal strings, and
//! `google.protobuf.Timestamp` as RFC 3339.
//!
//! Use with `#[serde(with = "crate::encoding::base64_bytes")]` and friends.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Standard base64 with canonical padding; anything else (URL-safe alphabet, missing padding,
/// spaces, non-zero trailing bits) is an error. Line breaks are skipped, as Go's decoder
/// (and so protojson) does: bundles made with `base64` on the command line contain them.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if s.contains(['\n', '\r']) {
        let joined: String = s.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        return STANDARD.decode(joined);
    }
    STANDARD.decode(s)
}

pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decimal integer as protobuf JSON writes it for 64-bit types: digits with an optional
/// leading minus, no plus sign, no spaces, no exponent.
fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_base64(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode_base64(&s).map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
    }
}

pub mod base64_vec {
    use super::*;
    use serde::ser::SerializeSeq;

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v {
            seq.serialize_element(&encode_base64(item))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let items = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        items
            .iter()
            .map(|s| decode_base64(s).map_err(|e| D::Error::custom(format!("invalid base64: {e}"))))
            .collect()
    }
}

pub mod u64_string {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_decimal(&s).ok_or_else(|| {
            D::Error::custom(format!("expected an unsigned decimal string, got {s:?}"))
        })
    }
}

pub mod i64_string {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_decimal(&s)
            .ok_or_else(|| D::Error::custom(format!("expected a decimal string, got {s:?}")))
    }
}

/// RFC 3339 timestamps, always written in UTC with a `Z` suffix.
pub mod rfc3339 {
    use super::*;

    pub fn format(t: &OffsetDateTime) -> String {
        // Moving a parsed time to UTC can leave `time`'s range (9999-12-31T23:59:59-01:00,
        // where `to_offset` panics) or RFC 3339's years (0000-01-01T00:00:00+01:00). Such a
        // time keeps the offset it was written with: still RFC 3339, still the same instant.
        t.checked_to_offset(time::UtcOffset::UTC)
            .and_then(|utc| utc.format(&Rfc3339).ok())
            .or_else(|| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| t.unix_timestamp().to_string())
    }

    pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
        OffsetDateTime::parse(s, &Rfc3339)
    }

    pub fn serialize<S: Serializer>(v: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s).map_err(|e| D::Error::custom(format!("invalid RFC 3339 timestamp {s:?}: {e}")))
    }

    /// For optional timestamps; `null` and absence both mean "not set".
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            v: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(t) => s.serialize_str(&format(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            let s = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.map(|s| {
                parse(&s)
                    .map_err(|e| D::Error::custom(format!("invalid RFC 3339 timestamp {s:?}: {e}")))
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    // Reproduced with the fuzz/ `trusted_root` round-trip check: writing these times
    // panicked, or wrote a Unix timestamp that does not parse back.
    #[test]
    fn rfc3339_times_at_the_ends_of_the_range_are_written_back_as_parsed() {
        for text in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            let t = rfc3339::parse(text).unwrap();
            let written = rfc3339::format(&t);
            assert_eq!(written, text);
            assert_eq!(rfc3339::parse(&written).unwrap(), t);
        }
        let t = rfc3339::parse("2025-06-01T02:00:00+02:00").unwrap();
        assert_eq!(rfc3339::format(&t), "2025-06-01T00:00:00Z");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "base64_bytes")]
        b: Vec<u8>,
        #[serde(with = "u64_string")]
        u: u64,
        #[serde(with = "i64_string")]
        i: i64,
        #[serde(with = "rfc3339")]
        t: OffsetDateTime,
    }

    #[test]
    fn round_trips_protobuf_json_scalars() {
        let json = r#"{"b":"aGk=","u":"18446744073709551615","i":"-5","t":"2025-01-01T00:00:00Z"}"#;
        let v: T = serde_json::from_str(json).unwrap();
        assert_eq!(v.b, b"hi");
        assert_eq!(v.u, u64::MAX);
        assert_eq!(v.i, -5);
        assert_eq!(v.t.unix_timestamp(), 1735689600);
        assert_eq!(serde_json::to_string(&v).unwrap(), json);
    }

    #[test]
    fn rejects_loose_encodings() {
        let ok = |b: &str, u: &str, i: &str, t: &str| {
            serde_json::from_str::<T>(&format!(r#"{{"b":{b},"u":{u},"i":{i},"t":{t}}}"#)).is_ok()
        };
        assert!(ok(
            r#""aGk=""#,
            r#""1""#,
            r#""1""#,
            r#""2025-01-01T00:00:00Z""#
        ));
        assert!(
            !ok(r#""aGk""#, r#""1""#, r#""1""#, r#""2025-01-01T00:00:00Z""#),
            "missing padding"
        );
        assert!(
            !ok(
                r#""aG k=""#,
                r#""1""#,
                r#""1""#,
                r#""2025-01-01T00:00:00Z""#
            ),
            "space"
        );
        assert!(
            ok(
                r#""aG\nk=""#,
                r#""1""#,
                r#""1""#,
                r#""2025-01-01T00:00:00Z""#
            ),
            "line break"
        );
        assert!(
            !ok(r#""a-k=""#, r#""1""#, r#""1""#, r#""2025-01-01T00:00:00Z""#),
            "url-safe alphabet"
        );
        assert!(
            !ok(r#""aGk=""#, "1", r#""1""#, r#""2025-01-01T00:00:00Z""#),
            "u64 as number"
        );
        assert!(
            !ok(
                r#""aGk=""#,
                r#""-1""#,
                r#""1""#,
                r#""2025-01-01T00:00:00Z""#
            ),
            "negative u64"
        );
        assert!(
            !ok(
                r#""aGk=""#,
                r#""+1""#,
                r#""1""#,
                r#""2025-01-01T00:00:00Z""#
            ),
            "plus sign"
        );
        assert!(
            !ok(r#""aGk=""#, r#""1""#, "1", r#""2025-01-01T00:00:00Z""#),
            "i64 as number"
        );
        assert!(
            !ok(r#""aGk=""#, r#""1""#, r#""1""#, r#""2025-01-01""#),
            "date only"
        );
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        let t = rfc3339::parse("2025-01-01T02:00:00.5+02:00").unwrap();
        assert_eq!(rfc3339::format(&t), "2025-01-01T00:00:00.5Z");
    }
}

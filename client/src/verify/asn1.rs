//! A minimal DER walker. Signatures must be checked over the exact bytes that were signed
//! (TBSCertificate, CMS signed attributes), and the precertificate TBS has to be rebuilt
//! with one extension removed; both are simpler on raw TLVs than through typed decoders
//! that re-encode.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed DER: {0}")]
pub struct DerError(pub &'static str);

/// One TLV: `tag` (single-byte tags only, which is all X.509/CMS use), its `content`, and
/// the whole encoding in `raw`.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const BOOLEAN: u8 = 0x01;

/// Context-specific constructed tag `[n]`.
pub const fn ctx(n: u8) -> u8 {
    0xa0 | n
}

/// Reads the first TLV of `input`, returning it and the rest.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError("unexpected end"))?;
    if tag & 0x1f == 0x1f {
        return Err(DerError("multi-byte tags are not supported"));
    }
    let (&first, rest) = rest.split_first().ok_or(DerError("missing length"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DerError("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerError("length exceeds input"));
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            content: &rest[..len],
            raw: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// Parses `input` as exactly one TLV with the given tag.
pub fn expect(input: &[u8], tag: u8) -> Result<Tlv<'_>, DerError> {
    let (tlv, rest) = read(input)?;
    if tlv.tag != tag {
        return Err(DerError("unexpected tag"));
    }
    if !rest.is_empty() {
        return Err(DerError("trailing data"));
    }
    Ok(tlv)
}

/// The children of a constructed TLV.
pub fn children(content: &[u8]) -> Result<Vec<Tlv<'_>>, DerError> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (tlv, r) = read(rest)?;
        out.push(tlv);
        rest = r;
    }
    Ok(out)
}

/// Encodes a TLV with a definite DER length.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }`: the raw
/// TBS and the signature bytes (BIT STRING without its unused-bits octet).
pub fn split_certificate(der: &[u8]) -> Result<(&[u8], &[u8]), DerError> {
    let cert = expect(der, SEQUENCE)?;
    let parts = children(cert.content)?;
    if parts.len() != 3 || parts[0].tag != SEQUENCE || parts[2].tag != 0x03 {
        return Err(DerError("not a certificate"));
    }
    let sig = parts[2]
        .content
        .split_first()
        .ok_or(DerError("empty signature"))?
        .1;
    Ok((parts[0].raw, sig))
}

/// Re-encodes a TBSCertificate without the extension whose OID content bytes are
/// `oid`; the order of everything else is kept, as RFC 6962 precertificates require.
pub fn tbs_without_extension(tbs: &[u8], oid: &[u8]) -> Result<Vec<u8>, DerError> {
    let tbs = expect(tbs, SEQUENCE)?;
    let mut content = Vec::with_capacity(tbs.content.len());
    let mut found = false;
    for field in children(tbs.content)? {
        if field.tag != ctx(3) {
            content.extend_from_slice(field.raw);
            continue;
        }
        let exts = expect(field.content, SEQUENCE)?;
        let mut kept = Vec::with_capacity(exts.content.len());
        for ext in children(exts.content)? {
            let first = children(ext.content)?
                .into_iter()
                .next()
                .ok_or(DerError("empty extension"))?;
            if first.tag == OID && first.content == oid {
                found = true;
            } else {
                kept.extend_from_slice(ext.raw);
            }
        }
        content.extend_from_slice(&encode(ctx(3), &encode(SEQUENCE, &kept)));
    }
    if !found {
        return Err(DerError("extension not present"));
    }
    Ok(encode(SEQUENCE, &content))
}

/// Parses `YYYYMMDDHHMMSS[.f*]Z` (RFC 5280/3161 GeneralizedTime) to Unix seconds.
pub fn generalized_time(content: &[u8]) -> Result<time::OffsetDateTime, DerError> {
    let s = std::str::from_utf8(content).map_err(|_| DerError("time is not ASCII"))?;
    let s = s.strip_suffix('Z').ok_or(DerError("time must be UTC"))?;
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    if main.len() != 14
        || !main.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DerError("bad GeneralizedTime"));
    }
    let n = |r: std::ops::Range<usize>| main[r].parse::<u32>().unwrap_or(0);
    let month = time::Month::try_from(n(4..6) as u8).map_err(|_| DerError("bad month"))?;
    let date = time::Date::from_calendar_date(n(0..4) as i32, month, n(6..8) as u8)
        .map_err(|_| DerError("bad date"))?;
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<u32>().unwrap_or(0)
    };
    let t = time::Time::from_hms_nano(n(8..10) as u8, n(10..12) as u8, n(12..14) as u8, nanos)
        .map_err(|_| DerError("bad time of day"))?;
    Ok(time::PrimitiveDateTime::new(date, t).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let long = encode(OCTET_STRING, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let tlv = expect(&long, OCTET_STRING).unwrap();
        assert_eq!(tlv.content.len(), 300);
        assert_eq!(tlv.raw, &long[..]);
        assert!(read(&[0x04, 0x05, 1]).is_err());
        assert!(expect(&[0x04, 0x00, 0x00], OCTET_STRING).is_err());
    }

    #[test]
    fn removes_one_extension_and_keeps_order() {
        let ext = |oid: u8| {
            encode(
                SEQUENCE,
                &[encode(OID, &[oid]), encode(OCTET_STRING, &[oid])].concat(),
            )
        };
        let exts = encode(
            ctx(3),
            &encode(SEQUENCE, &[ext(1), ext(2), ext(3)].concat()),
        );
        let tbs = encode(SEQUENCE, &[encode(INTEGER, &[1]), exts].concat());
        let stripped = tbs_without_extension(&tbs, &[2]).unwrap();
        let want = encode(
            SEQUENCE,
            &[
                encode(INTEGER, &[1]),
                encode(ctx(3), &encode(SEQUENCE, &[ext(1), ext(3)].concat())),
            ]
            .concat(),
        );
        assert_eq!(stripped, want);
        assert!(tbs_without_extension(&tbs, &[9]).is_err());
    }

    #[test]
    fn parses_generalized_time() {
        let t = generalized_time(b"20250101000000.5Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1735689600);
        assert_eq!(t.nanosecond(), 500_000_000);
        assert!(generalized_time(b"20250101000000").is_err());
    }
}

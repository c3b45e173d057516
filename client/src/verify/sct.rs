//! The embedded SCT (RFC 6962 §3.2 precertificate entry) against the trusted root's CT logs.

use const_oid::ObjectIdentifier;
use sigil_proto::trust::TransparencyLogInstance;
use time::OffsetDateTime;

use super::asn1;
use super::certs::ParsedCert;
use super::keys::{HashAlg, PublicKey};

const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const PRECERT_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.4");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SctError {
    #[error("certificate has no embedded SCT extension")]
    Missing,
    #[error("certificate must carry exactly one SCT, found {0}")]
    Count(usize),
    #[error("malformed SCT list: {0}")]
    Malformed(&'static str),
    #[error("SCT must use SHA-256, found hash algorithm {0}")]
    HashAlgorithm(u8),
    #[error("no issuing CA to compute the SCT issuer key hash")]
    NoIssuer,
    #[error("SCT signature does not verify with any CT log key in the trusted root (log id {0})")]
    Unverified(String),
}

struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    signature: &'a [u8],
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], SctError> {
    if input.len() < n {
        return Err(SctError::Malformed("truncated"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn take_u16_prefixed<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], SctError> {
    let len = take(input, 2)?;
    take(input, u16::from_be_bytes([len[0], len[1]]) as usize)
}

fn parse_list(tls: &[u8]) -> Result<Vec<Sct<'_>>, SctError> {
    let mut outer = tls;
    let mut list = take_u16_prefixed(&mut outer)?;
    if !outer.is_empty() {
        return Err(SctError::Malformed("trailing bytes after list"));
    }
    let mut out = Vec::new();
    while !list.is_empty() {
        let mut sct = take_u16_prefixed(&mut list)?;
        if take(&mut sct, 1)?[0] != 0 {
            return Err(SctError::Malformed("unknown SCT version"));
        }
        let log_id = take(&mut sct, 32)?;
        let ts = take(&mut sct, 8)?;
        let extensions = take_u16_prefixed(&mut sct)?;
        let hash_alg = take(&mut sct, 1)?[0];
        let _sig_alg = take(&mut sct, 1)?[0];
        let signature = take_u16_prefixed(&mut sct)?;
        if !sct.is_empty() {
            return Err(SctError::Malformed("trailing bytes in SCT"));
        }
        out.push(Sct {
            log_id,
            timestamp_ms: u64::from_be_bytes(ts.try_into().expect("8 bytes")),
            extensions,
            hash_alg,
            signature,
        });
    }
    Ok(out)
}

/// Verifies the leaf's single embedded SCT. `issuers` is the verified issuer path (issuing
/// CA first).
pub fn verify_embedded_sct(
    leaf: &ParsedCert,
    issuers: &[ParsedCert],
    ctlogs: &[TransparencyLogInstance],
) -> Result<(), SctError> {
    let ext = leaf.extension(&SCT_LIST).ok_or(SctError::Missing)?;
    let tls = asn1::expect(ext, asn1::OCTET_STRING)
        .map_err(|_| SctError::Malformed("extension is not an OCTET STRING"))?
        .content;
    let scts = parse_list(tls)?;
    if scts.len() != 1 {
        return Err(SctError::Count(scts.len()));
    }
    let sct = &scts[0];
    if sct.hash_alg != 4 {
        return Err(SctError::HashAlgorithm(sct.hash_alg));
    }
    let mut path = issuers.iter();
    let mut issuer = path.next().ok_or(SctError::NoIssuer)?;
    let is_precert_signer = issuer
        .extended_key_usage()
        .is_some_and(|(_, ekus)| ekus.contains(&PRECERT_SIGNING));
    if is_precert_signer {
        issuer = path.next().ok_or(SctError::NoIssuer)?;
    }
    let issuer_key_hash = HashAlg::Sha256.digest(issuer.spki_der());
    let tbs = asn1::tbs_without_extension(leaf.tbs_der(), SCT_LIST.as_bytes())
        .map_err(|_| SctError::Malformed("cannot rebuild the precertificate TBS"))?;

    let mut signed = Vec::with_capacity(tbs.len() + 64);
    signed.extend_from_slice(&[0, 0]); // v1, certificate_timestamp
    signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
    signed.extend_from_slice(&issuer_key_hash);
    signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
    signed.extend_from_slice(&tbs);
    signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
    signed.extend_from_slice(sct.extensions);

    let sct_time = OffsetDateTime::from_unix_timestamp_nanos(sct.timestamp_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // The log id is only a hint: prefer the matching log, then try the others.
    let mut candidates: Vec<&TransparencyLogInstance> = ctlogs
        .iter()
        .filter(|l| l.log_id.key_id == sct.log_id)
        .collect();
    candidates.extend(ctlogs.iter().filter(|l| l.log_id.key_id != sct.log_id));
    for log in candidates {
        if log
            .public_key
            .valid_for
            .as_ref()
            .is_some_and(|v| !v.contains(sct_time))
        {
            continue;
        }
        let Some(Ok(key)) = log
            .public_key
            .raw_bytes
            .as_deref()
            .map(PublicKey::from_spki_der)
        else {
            continue;
        };
        if key.verify(HashAlg::Sha256, &signed, sct.signature).is_ok() {
            return Ok(());
        }
    }
    Err(SctError::Unverified(hex::encode(sct.log_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sct(ext: &[u8], sig: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&[7; 32]);
        out.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        out.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        out.extend_from_slice(ext);
        out.extend_from_slice(&[4, 3]);
        out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        out.extend_from_slice(sig);
        out
    }

    fn list(scts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for s in scts {
            body.extend_from_slice(&(s.len() as u16).to_be_bytes());
            body.extend_from_slice(s);
        }
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn parses_scts_with_and_without_extensions() {
        let bytes = list(&[sct(b"", b"sig"), sct(&[0, 0, 0, 0, 0, 1, 2, 3], b"sig2")]);
        let parsed = parse_list(&bytes).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(parsed[1].extensions.len(), 8);
        assert_eq!(parsed[1].signature, b"sig2");
        assert_eq!(parsed[0].log_id, &[7; 32]);
    }

    #[test]
    fn rejects_truncated_or_padded_lists() {
        let good = list(&[sct(b"", b"sig")]);
        assert!(parse_list(&good[..good.len() - 1]).is_err());
        let mut padded = good.clone();
        padded.push(0);
        assert!(parse_list(&padded).is_err());
        let mut bad_version = sct(b"", b"sig");
        bad_version[0] = 1;
        assert!(matches!(
            parse_list(&list(&[bad_version])),
            Err(SctError::Malformed(_))
        ));
    }
}

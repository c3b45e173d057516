//! RFC 6962 TLS-encoded structures for precertificate entries (interop §2.2): the SCT, the
//! SCT list carried in the certificate extension, the signed data an SCT covers, the Merkle
//! tree leaf, the STH signature input and the `extra_data` of `get-entries`.

use thiserror::Error;

/// `Version v1` of RFC 6962.
pub const V1: u8 = 0;
/// TLS `HashAlgorithm.sha256`.
pub const HASH_SHA256: u8 = 4;
/// TLS `SignatureAlgorithm.ecdsa`.
pub const SIG_ECDSA: u8 = 3;
/// `SignatureType.certificate_timestamp`.
const SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP: u8 = 0;
/// `SignatureType.tree_hash`.
const SIGNATURE_TYPE_TREE_HASH: u8 = 1;
/// `MerkleLeafType.timestamped_entry`.
const LEAF_TYPE_TIMESTAMPED_ENTRY: u8 = 0;
/// `LogEntryType.precert_entry`.
const ENTRY_TYPE_PRECERT: u16 = 1;

const U24_MAX: usize = (1 << 24) - 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{0} is too long for its TLS length prefix")]
    TooLong(&'static str),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("unsupported SCT version {0}")]
    UnsupportedVersion(u8),
    #[error("{0} bytes left over after the {1}")]
    TrailingBytes(usize, &'static str),
}

/// A v1 signed certificate timestamp whose signature is a TLS `DigitallySigned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    pub log_id: [u8; 32],
    pub timestamp_ms: u64,
    pub extensions: Vec<u8>,
    pub hash_algorithm: u8,
    pub signature_algorithm: u8,
    /// DER ECDSA signature for sigil's log.
    pub signature: Vec<u8>,
}

impl Sct {
    /// The TLS `SignedCertificateTimestamp` encoding.
    pub fn to_tls(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(47 + self.extensions.len() + self.signature.len());
        out.push(V1);
        out.extend_from_slice(&self.log_id);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        put_u16_prefixed(&mut out, &self.extensions, "SCT extensions")?;
        out.push(self.hash_algorithm);
        out.push(self.signature_algorithm);
        put_u16_prefixed(&mut out, &self.signature, "SCT signature")?;
        Ok(out)
    }

    pub fn from_tls(bytes: &[u8]) -> Result<Sct, CodecError> {
        let mut r = Reader(bytes);
        let version = r.u8("SCT")?;
        if version != V1 {
            return Err(CodecError::UnsupportedVersion(version));
        }
        let log_id = r
            .take(32, "SCT log id")?
            .try_into()
            .expect("32 bytes taken");
        let timestamp_ms =
            u64::from_be_bytes(r.take(8, "SCT timestamp")?.try_into().expect("8 bytes"));
        let ext_len = r.u16("SCT extensions")? as usize;
        let extensions = r.take(ext_len, "SCT extensions")?.to_vec();
        let hash_algorithm = r.u8("SCT hash algorithm")?;
        let signature_algorithm = r.u8("SCT signature algorithm")?;
        let sig_len = r.u16("SCT signature")? as usize;
        let signature = r.take(sig_len, "SCT signature")?.to_vec();
        r.finish("SCT")?;
        Ok(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash_algorithm,
            signature_algorithm,
            signature,
        })
    }

    /// The TLS `DigitallySigned` struct (what RFC 6962's JSON calls `signature`).
    pub fn digitally_signed(&self) -> Result<Vec<u8>, CodecError> {
        digitally_signed(
            self.hash_algorithm,
            self.signature_algorithm,
            &self.signature,
        )
    }
}

/// `SignedCertificateTimestampList`: the content of the OCTET STRING inside the
/// 1.3.6.1.4.1.11129.2.4.2 extension value.
pub fn sct_list(scts: &[Sct]) -> Result<Vec<u8>, CodecError> {
    let mut body = Vec::new();
    for sct in scts {
        put_u16_prefixed(&mut body, &sct.to_tls()?, "SCT")?;
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    put_u16_prefixed(&mut out, &body, "SCT list")?;
    Ok(out)
}

pub fn parse_sct_list(bytes: &[u8]) -> Result<Vec<Sct>, CodecError> {
    let mut outer = Reader(bytes);
    let total = outer.u16("SCT list")? as usize;
    let mut list = Reader(outer.take(total, "SCT list")?);
    outer.finish("SCT list")?;
    let mut scts = Vec::new();
    while !list.0.is_empty() {
        let len = list.u16("SCT")? as usize;
        scts.push(Sct::from_tls(list.take(len, "SCT")?)?);
    }
    Ok(scts)
}

/// The data an SCT for a precertificate signs (RFC 6962 §3.2, `digitally-signed struct`).
pub fn precert_signed_data(
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs_without_poison: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, CodecError> {
    precert_timestamped(
        SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP,
        timestamp_ms,
        issuer_key_hash,
        tbs_without_poison,
        extensions,
    )
}

/// The `MerkleTreeLeaf` (RFC 6962 §3.4) for a precertificate entry: the log's leaf input.
pub fn precert_leaf(
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs_without_poison: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, CodecError> {
    precert_timestamped(
        LEAF_TYPE_TIMESTAMPED_ENTRY,
        timestamp_ms,
        issuer_key_hash,
        tbs_without_poison,
        extensions,
    )
}

// Both structures are `version ‖ type ‖ timestamp ‖ entry_type ‖ PreCert ‖ extensions`; for v1
// both type bytes are 0, so leaf and signed data coincide byte for byte.
fn precert_timestamped(
    kind: u8,
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(50 + tbs.len() + extensions.len());
    out.push(V1);
    out.push(kind);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&ENTRY_TYPE_PRECERT.to_be_bytes());
    out.extend_from_slice(issuer_key_hash);
    put_u24_prefixed(&mut out, tbs, "TBSCertificate")?;
    put_u16_prefixed(&mut out, extensions, "CT extensions")?;
    Ok(out)
}

/// What a parsed precert `MerkleTreeLeaf` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecertLeaf {
    pub timestamp_ms: u64,
    pub issuer_key_hash: [u8; 32],
    pub tbs_certificate: Vec<u8>,
    pub extensions: Vec<u8>,
}

pub fn parse_precert_leaf(bytes: &[u8]) -> Result<PrecertLeaf, CodecError> {
    let mut r = Reader(bytes);
    let version = r.u8("leaf")?;
    if version != V1 {
        return Err(CodecError::UnsupportedVersion(version));
    }
    if r.u8("leaf type")? != LEAF_TYPE_TIMESTAMPED_ENTRY {
        return Err(CodecError::Truncated("timestamped entry"));
    }
    let timestamp_ms =
        u64::from_be_bytes(r.take(8, "leaf timestamp")?.try_into().expect("8 bytes"));
    if r.u16("entry type")? != ENTRY_TYPE_PRECERT {
        return Err(CodecError::Truncated("precert entry"));
    }
    let issuer_key_hash = r.take(32, "issuer key hash")?.try_into().expect("32 bytes");
    let tbs_len = r.u24("TBSCertificate")?;
    let tbs_certificate = r.take(tbs_len, "TBSCertificate")?.to_vec();
    let ext_len = r.u16("CT extensions")? as usize;
    let extensions = r.take(ext_len, "CT extensions")?.to_vec();
    r.finish("leaf")?;
    Ok(PrecertLeaf {
        timestamp_ms,
        issuer_key_hash,
        tbs_certificate,
        extensions,
    })
}

/// The input of an STH signature (RFC 6962 §3.5 `TreeHeadSignature`).
pub fn tree_head_signed_data(timestamp_ms: u64, tree_size: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(50);
    out.push(V1);
    out.push(SIGNATURE_TYPE_TREE_HASH);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&tree_size.to_be_bytes());
    out.extend_from_slice(root);
    out
}

/// TLS `DigitallySigned`: `hash ‖ signature algorithm ‖ u16 length ‖ signature`.
pub fn digitally_signed(hash: u8, sig_alg: u8, signature: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(4 + signature.len());
    out.push(hash);
    out.push(sig_alg);
    put_u16_prefixed(&mut out, signature, "signature")?;
    Ok(out)
}

/// `PrecertChainEntry` (RFC 6962 §4.6 `extra_data`): the precertificate, then the chain
/// from its issuer up to the root, each as a u24-prefixed DER certificate.
pub fn precert_chain_entry(precert: &[u8], chain: &[Vec<u8>]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    put_u24_prefixed(&mut out, precert, "precertificate")?;
    let mut certs = Vec::new();
    for cert in chain {
        put_u24_prefixed(&mut certs, cert, "chain certificate")?;
    }
    put_u24_prefixed(&mut out, &certs, "certificate chain")?;
    Ok(out)
}

/// Splits a `PrecertChainEntry` back into the precertificate and its chain.
pub fn parse_precert_chain_entry(bytes: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), CodecError> {
    let mut r = Reader(bytes);
    let len = r.u24("precertificate")?;
    let precert = r.take(len, "precertificate")?.to_vec();
    let total = r.u24("certificate chain")?;
    let mut certs = Reader(r.take(total, "certificate chain")?);
    r.finish("chain entry")?;
    let mut chain = Vec::new();
    while !certs.0.is_empty() {
        let len = certs.u24("chain certificate")?;
        chain.push(certs.take(len, "chain certificate")?.to_vec());
    }
    Ok((precert, chain))
}

fn put_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), CodecError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CodecError::TooLong(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_u24_prefixed(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), CodecError> {
    if bytes.len() > U24_MAX {
        return Err(CodecError::TooLong(what));
    }
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(bytes);
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }
    fn u24(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let b = self.take(3, what)?;
        Ok(((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize)
    }
    fn finish(&self, what: &'static str) -> Result<(), CodecError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes(self.0.len(), what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_sct() -> Sct {
        Sct {
            log_id: [7; 32],
            timestamp_ms: 0x0102_0304_0506_0708,
            extensions: vec![],
            hash_algorithm: HASH_SHA256,
            signature_algorithm: SIG_ECDSA,
            signature: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        }
    }

    #[test]
    fn sct_layout_matches_rfc6962() {
        let tls = sample_sct().to_tls().unwrap();
        // version, log id, timestamp, ext len, hash, sig alg, sig len, sig
        assert_eq!(tls.len(), 1 + 32 + 8 + 2 + 1 + 1 + 2 + 5);
        assert_eq!(tls[0], 0);
        assert_eq!(&tls[33..41], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&tls[41..43], &[0, 0]);
        assert_eq!(&tls[43..47], &[4, 3, 0, 5]);
        assert_eq!(Sct::from_tls(&tls).unwrap(), sample_sct());
    }

    #[test]
    fn sct_list_round_trips_and_agrees_with_x509_cert() {
        let list = sct_list(&[sample_sct()]).unwrap();
        let inner_len = sample_sct().to_tls().unwrap().len();
        assert_eq!(&list[..2], &((inner_len + 2) as u16).to_be_bytes());
        assert_eq!(&list[2..4], &(inner_len as u16).to_be_bytes());
        assert_eq!(parse_sct_list(&list).unwrap(), vec![sample_sct()]);

        // x509-cert's independent TLS parser must read the same fields from the
        // extension value (an OCTET STRING around the list).
        use der::{Decode, Encode};
        let ext_value = der::asn1::OctetString::new(list).unwrap().to_der().unwrap();
        let parsed = x509_cert::ext::pkix::SignedCertificateTimestampList::from_der(&ext_value)
            .unwrap()
            .parse_timestamps()
            .unwrap();
        assert_eq!(parsed.len(), 1);
        let sct = parsed[0].parse_timestamp().unwrap();
        assert_eq!(sct.timestamp, sample_sct().timestamp_ms);
        assert_eq!(sct.log_id.key_id, [7; 32]);
        assert_eq!(
            sct.signature.signature.as_slice(),
            &sample_sct().signature[..]
        );
    }

    #[test]
    fn leaf_and_signed_data_layout() {
        let leaf = precert_leaf(1, &[9; 32], b"tbs", b"").unwrap();
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        expected.extend_from_slice(&[9; 32]);
        expected.extend_from_slice(&[0, 0, 3, b't', b'b', b's', 0, 0]);
        assert_eq!(leaf, expected);
        assert_eq!(
            precert_signed_data(1, &[9; 32], b"tbs", b"").unwrap(),
            expected
        );
        let parsed = parse_precert_leaf(&leaf).unwrap();
        assert_eq!(parsed.tbs_certificate, b"tbs");
        assert_eq!(parsed.timestamp_ms, 1);
        assert!(parse_precert_leaf(&leaf[..leaf.len() - 1]).is_err());
    }

    #[test]
    fn sth_signed_data_layout() {
        let data = tree_head_signed_data(2, 3, &[5; 32]);
        assert_eq!(&data[..2], &[0, 1]);
        assert_eq!(&data[2..10], &2u64.to_be_bytes());
        assert_eq!(&data[10..18], &3u64.to_be_bytes());
        assert_eq!(&data[18..], &[5; 32]);
    }

    #[test]
    fn chain_entry_round_trips() {
        let chain = vec![b"issuer".to_vec(), b"root".to_vec()];
        let entry = precert_chain_entry(b"pre", &chain).unwrap();
        assert_eq!(&entry[..6], &[0, 0, 3, b'p', b'r', b'e']);
        assert_eq!(&entry[6..9], &[0, 0, 16]);
        assert_eq!(
            parse_precert_chain_entry(&entry).unwrap(),
            (b"pre".to_vec(), chain)
        );
    }

    #[test]
    fn oversized_fields_are_refused() {
        let big = vec![0u8; 70_000];
        let mut sct = sample_sct();
        sct.signature = big;
        assert_eq!(sct.to_tls(), Err(CodecError::TooLong("SCT signature")));
    }
}

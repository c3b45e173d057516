//! RFC 3161 signed timestamps (TimeStampResp or bare TimeStampToken) against the trusted
//! root's timestamp authorities.

use const_oid::ObjectIdentifier;
use sigil_proto::trust::{CertificateAuthority, TimeRange};
use time::OffsetDateTime;

use super::asn1::{self, DerError, OCTET_STRING, SEQUENCE, SET, ctx};
use super::certs::{CertError, ParsedCert, TIME_STAMPING};
use super::keys::{HashAlg, signature_hash_from_oid};

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
use sigil_keys::{EC_PUBLIC_KEY, RSA as RSA_ENCRYPTION};
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimestampError {
    #[error("timestamp is malformed: {0}")]
    Malformed(&'static str),
    #[error("timestamp request was not granted (status {0})")]
    NotGranted(u8),
    #[error("timestamp has {0} signers; exactly one is required")]
    SignerCount(usize),
    #[error("timestamp uses an unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("timestamp message digest attribute does not match its content")]
    ContentDigest,
    #[error("timestamp is not over this bundle's signature")]
    ImprintMismatch,
    #[error("timestamp is not signed by any timestamp authority in the trusted root")]
    UntrustedAuthority,
    #[error("timestamp's signer identifier does not name the trusted authority's certificate")]
    SignerIdentifierMismatch,
    #[error("timestamp's embedded signer certificate is not the trusted authority's certificate")]
    EmbeddedCertificateMismatch,
    #[error("timestamp authority certificate lacks the timeStamping extended key usage")]
    NotTimestampingCertificate,
    #[error("timestamp authority certificate chain in the trusted root is broken")]
    BrokenChain,
    #[error("timestamp time {0} is outside the authority's validity window in the trusted root")]
    OutsideAuthorityValidity(OffsetDateTime),
    #[error("timestamp time {0} is outside the validity of the authority's certificate chain")]
    OutsideCertificateValidity(OffsetDateTime),
    #[error("the trusted root has no timestamp authorities")]
    NoAuthorities,
}

impl From<DerError> for TimestampError {
    fn from(e: DerError) -> Self {
        TimestampError::Malformed(e.0)
    }
}

/// A timestamp authority from the trusted root, parsed once.
pub struct TrustedTsa {
    pub valid_for: TimeRange,
    /// TSA leaf first, root last.
    pub chain: Vec<ParsedCert>,
}

impl TrustedTsa {
    pub fn parse_all(tsas: &[CertificateAuthority]) -> Result<Vec<TrustedTsa>, CertError> {
        tsas.iter()
            .map(|ca| {
                Ok(TrustedTsa {
                    valid_for: ca.valid_for.clone(),
                    chain: ca
                        .cert_chain
                        .certificates
                        .iter()
                        .map(|c| ParsedCert::from_der(&c.raw_bytes))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }
}

struct Token<'a> {
    tst_info: &'a [u8],
    /// SignerIdentifier: issuerAndSerialNumber (SEQUENCE) or [0] subjectKeyIdentifier.
    sid: asn1::Tlv<'a>,
    embedded_certs: Vec<&'a [u8]>,
    digest_alg: HashAlg,
    signed_attrs: Option<&'a [u8]>,
    sig_hash: Option<HashAlg>,
    signature: &'a [u8],
}

fn oid_is(tlv: &asn1::Tlv<'_>, oid: &ObjectIdentifier) -> bool {
    tlv.tag == asn1::OID && tlv.content == oid.as_bytes()
}

fn alg_oid(alg_id: &asn1::Tlv<'_>) -> Result<ObjectIdentifier, TimestampError> {
    let first = asn1::children(alg_id.content)?
        .into_iter()
        .next()
        .filter(|f| alg_id.tag == SEQUENCE && f.tag == asn1::OID)
        .ok_or(TimestampError::Malformed("bad AlgorithmIdentifier"))?;
    ObjectIdentifier::from_bytes(first.content).map_err(|_| TimestampError::Malformed("bad OID"))
}

fn parse_token(der: &[u8]) -> Result<Token<'_>, TimestampError> {
    let top = asn1::expect(der, SEQUENCE)?;
    let parts = asn1::children(top.content)?;
    // A TimeStampResp starts with PKIStatusInfo (a SEQUENCE); a ContentInfo with an OID.
    let content_info = match parts.first() {
        Some(first) if first.tag == SEQUENCE => {
            let status = asn1::children(first.content)?;
            let code = status
                .first()
                .filter(|s| s.tag == asn1::INTEGER)
                .map(|s| s.content);
            match code {
                Some([0]) | Some([1]) => {}
                Some([n]) => return Err(TimestampError::NotGranted(*n)),
                _ => return Err(TimestampError::Malformed("bad PKIStatus")),
            }
            parts
                .get(1)
                .filter(|t| t.tag == SEQUENCE)
                .ok_or(TimestampError::Malformed(
                    "granted response without a token",
                ))?
                .content
        }
        _ => top.content,
    };
    let ci = asn1::children(content_info)?;
    if ci.len() != 2 || !oid_is(&ci[0], &SIGNED_DATA) || ci[1].tag != ctx(0) {
        return Err(TimestampError::Malformed("token is not CMS SignedData"));
    }
    let sd = asn1::expect(ci[1].content, SEQUENCE)?;
    let fields = asn1::children(sd.content)?;
    let encap = fields
        .get(2)
        .ok_or(TimestampError::Malformed("SignedData too short"))?;
    let encap_parts = asn1::children(encap.content)?;
    if encap_parts.len() != 2 || !oid_is(&encap_parts[0], &TST_INFO) || encap_parts[1].tag != ctx(0)
    {
        return Err(TimestampError::Malformed("content is not TSTInfo"));
    }
    let tst_info = asn1::expect(encap_parts[1].content, OCTET_STRING)?.content;
    let mut embedded_certs = Vec::new();
    let mut signer_infos = None;
    for f in &fields[3..] {
        match f.tag {
            t if t == ctx(0) => {
                embedded_certs = asn1::children(f.content)?
                    .into_iter()
                    .map(|c| c.raw)
                    .collect()
            }
            t if t == ctx(1) => {}
            SET => signer_infos = Some(asn1::children(f.content)?),
            _ => return Err(TimestampError::Malformed("unexpected SignedData field")),
        }
    }
    let signer_infos = signer_infos.ok_or(TimestampError::Malformed("no signerInfos"))?;
    if signer_infos.len() != 1 {
        return Err(TimestampError::SignerCount(signer_infos.len()));
    }
    let si = asn1::children(signer_infos[0].content)?;
    // version, sid, digestAlgorithm, [0] signedAttrs?, signatureAlgorithm, signature, ...
    let digest_alg_id = si
        .get(2)
        .ok_or(TimestampError::Malformed("SignerInfo too short"))?;
    let digest_alg =
        HashAlg::from_oid(&alg_oid(digest_alg_id)?).ok_or(TimestampError::UnsupportedAlgorithm)?;
    let (signed_attrs, rest) = match si.get(3) {
        Some(a) if a.tag == ctx(0) => (Some(a.content), &si[4..]),
        _ => (None, si.get(3..).unwrap_or_default()),
    };
    let [sig_alg, signature, ..] = rest else {
        return Err(TimestampError::Malformed("SignerInfo too short"));
    };
    // CMS allows naming just the key algorithm, the hash then being the digest algorithm.
    let sig_oid = alg_oid(sig_alg)?;
    let sig_hash = match signature_hash_from_oid(&sig_oid) {
        Some(hash) => hash,
        None if sig_oid == EC_PUBLIC_KEY || sig_oid == RSA_ENCRYPTION => None,
        None => return Err(TimestampError::UnsupportedAlgorithm),
    };
    if signature.tag != OCTET_STRING {
        return Err(TimestampError::Malformed(
            "signature is not an OCTET STRING",
        ));
    }
    let sid = *si
        .get(1)
        .ok_or(TimestampError::Malformed("SignerInfo too short"))?;
    Ok(Token {
        tst_info,
        sid,
        embedded_certs,
        digest_alg,
        signed_attrs,
        sig_hash,
        signature: signature.content,
    })
}

/// `(imprint hash, imprint, genTime)` from a TSTInfo.
fn parse_tst_info(der: &[u8]) -> Result<(HashAlg, &[u8], OffsetDateTime), TimestampError> {
    let tst = asn1::expect(der, SEQUENCE)?;
    let f = asn1::children(tst.content)?;
    if f.len() < 5 || f[2].tag != SEQUENCE || f[4].tag != asn1::GENERALIZED_TIME {
        return Err(TimestampError::Malformed("TSTInfo fields"));
    }
    let imprint = asn1::children(f[2].content)?;
    let [alg, hashed] = imprint.as_slice() else {
        return Err(TimestampError::Malformed("messageImprint"));
    };
    let alg = HashAlg::from_oid(&alg_oid(alg)?).ok_or(TimestampError::UnsupportedAlgorithm)?;
    if hashed.tag != OCTET_STRING {
        return Err(TimestampError::Malformed("messageImprint digest"));
    }
    Ok((alg, hashed.content, asn1::generalized_time(f[4].content)?))
}

fn message_digest_attr(signed_attrs: &[u8]) -> Result<&[u8], TimestampError> {
    for attr in asn1::children(signed_attrs)? {
        let parts = asn1::children(attr.content)?;
        if parts.len() == 2 && oid_is(&parts[0], &MESSAGE_DIGEST) {
            let values = asn1::children(parts[1].content)?;
            if let [v] = values.as_slice() {
                return Ok(asn1::expect(v.raw, OCTET_STRING)?.content);
            }
        }
    }
    Err(TimestampError::Malformed("no messageDigest attribute"))
}

/// Verifies one timestamp over `signature` (the bundle's artifact signature) and returns
/// the time it attests.
pub fn verify_timestamp(
    der: &[u8],
    signature: &[u8],
    tsas: &[TrustedTsa],
) -> Result<OffsetDateTime, TimestampError> {
    if tsas.is_empty() {
        return Err(TimestampError::NoAuthorities);
    }
    let token = parse_token(der)?;
    let (imprint_alg, imprint, gen_time) = parse_tst_info(token.tst_info)?;
    if imprint_alg.digest(signature) != imprint {
        return Err(TimestampError::ImprintMismatch);
    }
    // With signed attributes the signature covers their DER SET encoding, which binds the
    // content through the messageDigest attribute.
    let signed_message = match token.signed_attrs {
        Some(attrs) => {
            if message_digest_attr(attrs)? != token.digest_alg.digest(token.tst_info).as_slice() {
                return Err(TimestampError::ContentDigest);
            }
            asn1::encode(SET, attrs)
        }
        None => token.tst_info.to_vec(),
    };
    let hash = token.sig_hash.unwrap_or(token.digest_alg);
    // Report why the authority that did sign it was not good enough, if one did.
    let mut error = TimestampError::UntrustedAuthority;
    for tsa in tsas {
        let Some(leaf) = tsa.chain.first() else {
            continue;
        };
        if leaf
            .key
            .verify(hash, &signed_message, token.signature)
            .is_err()
        {
            continue;
        }
        match check_authority(tsa, leaf, &token, gen_time) {
            Ok(()) => return Ok(gen_time),
            Err(e) => error = e,
        }
    }
    Err(error)
}

fn check_authority(
    tsa: &TrustedTsa,
    leaf: &ParsedCert,
    token: &Token<'_>,
    gen_time: OffsetDateTime,
) -> Result<(), TimestampError> {
    if !sid_names(&token.sid, leaf) {
        return Err(TimestampError::SignerIdentifierMismatch);
    }
    if !token.embedded_certs.is_empty() && !token.embedded_certs.contains(&leaf.der.as_slice()) {
        return Err(TimestampError::EmbeddedCertificateMismatch);
    }
    if !leaf
        .extended_key_usage()
        .is_some_and(|(_, ekus)| ekus.contains(&TIME_STAMPING))
    {
        return Err(TimestampError::NotTimestampingCertificate);
    }
    if !tsa.chain.windows(2).all(|w| w[0].is_issued_by(&w[1])) {
        return Err(TimestampError::BrokenChain);
    }
    if !tsa.valid_for.contains(gen_time) {
        return Err(TimestampError::OutsideAuthorityValidity(gen_time));
    }
    if !tsa.chain.iter().all(|c| c.valid_at(gen_time)) {
        return Err(TimestampError::OutsideCertificateValidity(gen_time));
    }
    Ok(())
}

/// Does the SignerInfo's `sid` identify `cert` (by issuer and serial, or by key identifier)?
fn sid_names(sid: &asn1::Tlv<'_>, cert: &ParsedCert) -> bool {
    if sid.tag == asn1::SEQUENCE {
        let Ok(tbs) = asn1::expect(cert.tbs_der(), SEQUENCE) else {
            return false;
        };
        let Ok(fields) = asn1::children(tbs.content) else {
            return false;
        };
        // TBSCertificate: [0] version?, serialNumber, signature, issuer, ...
        let skip = usize::from(fields.first().is_some_and(|f| f.tag == ctx(0)));
        let (Some(serial), Some(issuer)) = (fields.get(skip), fields.get(skip + 2)) else {
            return false;
        };
        let mut expected = issuer.raw.to_vec();
        expected.extend_from_slice(serial.raw);
        sid.content == expected.as_slice()
    } else if sid.tag == 0x80 {
        cert.extension(&SUBJECT_KEY_ID)
            .and_then(|ext| asn1::expect(ext, OCTET_STRING).ok())
            .is_some_and(|ski| ski.content == sid.content)
    } else {
        false
    }
}

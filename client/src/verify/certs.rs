//! X.509 handling: parsing, chain building to the trusted root's CAs, the Fulcio leaf
//! profile and the Fulcio extensions that carry the OIDC identity.

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};

use super::asn1;
use super::keys::{PublicKey, signature_hash_from_oid};

pub const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
pub const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
pub const PRECERT_POISON: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
/// Extensions a verifier may see marked critical and still understand: key usage, SAN,
/// basic constraints, extended key usage.
const UNDERSTOOD_CRITICAL: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("2.5.29.15"),
    ObjectIdentifier::new_unwrap("2.5.29.17"),
    ObjectIdentifier::new_unwrap("2.5.29.19"),
    ObjectIdentifier::new_unwrap("2.5.29.37"),
];
const OTHER_NAME_USERNAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("certificate is not valid DER X.509: {0}")]
    Parse(String),
    #[error("certificate public key: {0}")]
    Key(#[from] super::keys::KeyError),
}

/// A certificate parsed once, with what verification needs close at hand.
#[derive(Debug)]
pub struct ParsedCert {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub key: PublicKey,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

fn to_datetime(t: x509_cert::time::Time) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl ParsedCert {
    pub fn from_der(der: &[u8]) -> Result<ParsedCert, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        let (tbs, signature) =
            asn1::split_certificate(der).map_err(|e| CertError::Parse(e.to_string()))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| CertError::Parse(e.to_string()))?;
        let key = PublicKey::from_spki_der(&spki)?;
        let validity = cert.tbs_certificate().validity();
        Ok(ParsedCert {
            der: der.to_vec(),
            not_before: to_datetime(validity.not_before),
            not_after: to_datetime(validity.not_after),
            tbs: tbs.to_vec(),
            signature: signature.to_vec(),
            key,
            cert,
        })
    }

    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs
    }

    /// Inclusive at both ends, as X.509 defines validity.
    pub fn valid_at(&self, t: OffsetDateTime) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    pub fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate().subject() == self.cert.tbs_certificate().issuer()
    }

    /// Issuer name matches and `issuer`'s key verifies this certificate's signature.
    pub fn is_issued_by(&self, issuer: &ParsedCert) -> bool {
        if self.cert.tbs_certificate().issuer() != issuer.cert.tbs_certificate().subject() {
            return false;
        }
        let Some(hash) = signature_hash_from_oid(&self.cert.signature_algorithm().oid) else {
            return false;
        };
        let hash = hash.unwrap_or(issuer.key.default_hash());
        issuer.key.verify(hash, &self.tbs, &self.signature).is_ok()
    }

    pub fn spki_der(&self) -> &[u8] {
        self.key.spki_der()
    }

    pub fn is_ca(&self) -> bool {
        matches!(
            self.cert.tbs_certificate().get_extension::<BasicConstraints>(),
            Ok(Some((_, bc))) if bc.ca
        )
    }

    pub fn has_digital_signature_usage(&self) -> bool {
        matches!(
            self.cert.tbs_certificate().get_extension::<KeyUsage>(),
            Ok(Some((_, ku))) if ku.digital_signature()
        )
    }

    /// `(critical, purposes)` of the EKU extension.
    pub fn extended_key_usage(&self) -> Option<(bool, Vec<ObjectIdentifier>)> {
        match self
            .cert
            .tbs_certificate()
            .get_extension::<ExtendedKeyUsage>()
        {
            Ok(Some((critical, eku))) => Some((critical, eku.0)),
            _ => None,
        }
    }

    pub fn has_unknown_critical_extension(&self) -> bool {
        self.cert
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .any(|e| e.critical && !UNDERSTOOD_CRITICAL.contains(&e.extn_id))
    }

    /// Raw extnValue contents of the extension `oid`, if present.
    pub fn extension(&self, oid: &ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate()
            .extensions()?
            .iter()
            .find(|e| &e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// Every SAN value that names an identity: email, URI, and the Fulcio username otherName.
    pub fn san_identities(&self) -> Vec<String> {
        let Ok(Some((_, san))) = self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
        else {
            return Vec::new();
        };
        san.0
            .iter()
            .filter_map(|name| match name {
                GeneralName::Rfc822Name(s) => Some(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                GeneralName::DnsName(s) => Some(s.to_string()),
                GeneralName::OtherName(o) if o.type_id == OTHER_NAME_USERNAME => {
                    std::str::from_utf8(o.value.value())
                        .ok()
                        .map(str::to_string)
                }
                _ => None,
            })
            .collect()
    }
}

/// A Fulcio extension value: 1.1–1.6 hold raw UTF-8, 1.8 onwards a DER UTF8String.
pub fn fulcio_extension(cert: &ParsedCert, arc: u32) -> Option<String> {
    let oid = ObjectIdentifier::new(&format!("1.3.6.1.4.1.57264.1.{arc}")).ok()?;
    let raw = cert.extension(&oid)?;
    let bytes = if arc <= 6 {
        raw
    } else {
        asn1::expect(raw, 0x0c).ok()?.content
    };
    String::from_utf8(bytes.to_vec()).ok()
}

/// The trusted root's certificate authorities, parsed once.
pub struct TrustedCa {
    pub valid_for: sigil_proto::trust::TimeRange,
    /// Leaf-most first, root last.
    pub chain: Vec<ParsedCert>,
}

impl TrustedCa {
    pub fn parse_all(
        cas: &[sigil_proto::trust::CertificateAuthority],
    ) -> Result<Vec<TrustedCa>, CertError> {
        cas.iter()
            .map(|ca| {
                Ok(TrustedCa {
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("no certificate authority in the trusted root issued this certificate")]
    UnknownIssuer,
    #[error("certificate chain is broken inside the trusted root's CA chain")]
    BrokenChain,
    #[error(
        "certificate authority {0:?} is not valid at {1} (trusted root validFor or certificate validity)"
    )]
    NotValidAt(String, OffsetDateTime),
}

/// Builds `cert`'s path to a trusted CA and checks that every certificate on it, and the
/// CA's trusted-root validity window, covers every time in `times`. Returns the issuer
/// path (issuing CA first, root last).
pub fn verify_chain<'a>(
    cert: &ParsedCert,
    cas: &'a [TrustedCa],
    times: &[OffsetDateTime],
) -> Result<&'a [ParsedCert], ChainError> {
    let mut last = ChainError::UnknownIssuer;
    for ca in cas {
        let Some(start) = ca.chain.iter().position(|issuer| cert.is_issued_by(issuer)) else {
            continue;
        };
        let path = &ca.chain[start..];
        let linked = path.windows(2).all(|w| w[0].is_issued_by(&w[1]));
        if !linked {
            last = ChainError::BrokenChain;
            continue;
        }
        let name = path
            .first()
            .map(|c| c.cert.tbs_certificate().subject().to_string())
            .unwrap_or_default();
        if let Some(t) = times
            .iter()
            .find(|t| !ca.valid_for.contains(**t) || !path.iter().all(|c| c.valid_at(**t)))
        {
            last = ChainError::NotValidAt(name, *t);
            continue;
        }
        return Ok(path);
    }
    Err(last)
}

//! X.509 assembly: a TBSCertificate we control field by field (x509-cert keeps its own
//! fields private), signing it with a [`CaSigner`], and small encoding helpers.

use std::time::SystemTime;

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use der::asn1::{Any, BitString, OctetString};
use der::pem::LineEnding;
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use thiserror::Error;
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::signer::{CaSigner, LocalSigner, SignError};

#[derive(Debug, Error)]
pub enum CertError {
    #[error("DER encoding failed: {0}")]
    Der(#[from] der::Error),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// RFC 5280 TBSCertificate (v3, no unique IDs).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub version: Version,
    pub serial_number: SerialNumber,
    pub signature: AlgorithmIdentifierOwned,
    pub issuer: Name,
    pub validity: Validity,
    pub subject: Name,
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

#[derive(Sequence)]
struct SignedCertificate {
    tbs_certificate: Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

impl TbsCertificate {
    /// This TBS with `extension` appended last (poison or SCT list), leaving `self` as is.
    pub fn with_extension(&self, extension: Extension) -> TbsCertificate {
        let mut out = self.clone();
        out.extensions.get_or_insert_with(Vec::new).push(extension);
        out
    }
}

/// Signs `tbs` with the CA key and returns the certificate DER.
pub async fn sign(tbs: &TbsCertificate, signer: &dyn CaSigner) -> Result<Vec<u8>, CertError> {
    let tbs_der = tbs.to_der()?;
    let signature = signer.sign(&tbs_der).await?;
    assemble(tbs, &tbs_der, &signature)
}

/// [`sign`] for a key held in this process, usable outside a runtime (CA creation).
pub fn sign_local(tbs: &TbsCertificate, signer: &LocalSigner) -> Result<Vec<u8>, CertError> {
    let tbs_der = tbs.to_der()?;
    let signature = signer.sign_now(&tbs_der)?;
    assemble(tbs, &tbs_der, &signature)
}

fn assemble(tbs: &TbsCertificate, tbs_der: &[u8], signature: &[u8]) -> Result<Vec<u8>, CertError> {
    let cert = SignedCertificate {
        tbs_certificate: Any::from_der(tbs_der)?,
        signature_algorithm: tbs.signature.clone(),
        signature: BitString::from_bytes(signature)?,
    };
    Ok(cert.to_der()?)
}

/// A positive 20-byte serial from the OS RNG (CA/B and Fulcio practice).
pub fn random_serial() -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SignError::Failed("the RNG failed".into()))?;
    // Clear the sign bit and keep the first byte non-zero so DER keeps all 20 bytes.
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    Ok(SerialNumber::new(&bytes)?)
}

/// RFC 5280 §4.2.1.2 method 1: SHA-1 over the subjectPublicKey BIT STRING contents.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    digest(
        &SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    )
    .as_ref()
    .to_vec()
}

/// X.509 validity `[not_before, not_before + lifetime]`, truncated to whole seconds the way
/// X.509 times are.
pub fn validity(
    not_before: SystemTime,
    lifetime: std::time::Duration,
) -> Result<Validity, CertError> {
    let secs = not_before
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| der::Error::from(der::ErrorKind::DateTime))?
        .as_secs();
    let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Ok(Validity::new(
        Time::try_from(start)?,
        Time::try_from(start + lifetime)?,
    ))
}

pub fn to_pem(der: &[u8]) -> Result<String, CertError> {
    Ok(der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).map_err(der::Error::from)?)
}

/// DER of a certificate given as PEM (`CERTIFICATE`) or DER.
pub fn cert_der_from_pem_or_der(bytes: &[u8]) -> Result<Vec<u8>, CertError> {
    if bytes.starts_with(b"-----") {
        let (label, der) = der::pem::decode_vec(bytes).map_err(der::Error::from)?;
        if label != "CERTIFICATE" {
            return Err(der::Error::from(der::ErrorKind::Failed).into());
        }
        Ok(der)
    } else {
        Ok(bytes.to_vec())
    }
}

/// An `Extension` whose value is the DER of `value`.
pub fn extension(
    oid: const_oid::ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CertError> {
    raw_extension(oid, critical, value.to_der()?)
}

/// An `Extension` whose `extnValue` content is exactly `bytes`.
pub fn raw_extension(
    oid: const_oid::ObjectIdentifier,
    critical: bool,
    bytes: Vec<u8>,
) -> Result<Extension, CertError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(bytes)?,
    })
}

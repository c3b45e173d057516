//! Certificate profiles (interop §1.7, §11.3): the short-lived code-signing leaf, and the
//! root and intermediate sigil creates on first start.
//!
//! Leaf extension order is fixed: KeyUsage, ExtKeyUsage, SKI, AKI, SAN, 1.1, [1.2–1.6], 1.8,
//! [1.9–1.24], then the CT poison (precertificate) or SCT list (final certificate) last, so
//! that final-TBS-minus-SCT equals precert-TBS-minus-poison byte for byte.

use std::time::{Duration, SystemTime};

use der::asn1::{Any, Ia5String, Null, OctetString, Utf8StringRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use thiserror::Error;
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName as SanExt, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use crate::certificate::{self, CertError, TbsCertificate};
use crate::identity::{ExtEncoding, FulcioExtension, Principal, SubjectAltName};
use crate::oids;

/// Default leaf lifetime (Fulcio's).
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(10 * 60);
/// Lifetime of the CA certificates sigil generates.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error(
        "the identity {0:?} cannot be put in a certificate: only ASCII is allowed in email and URI names"
    )]
    NonAsciiIdentity(String),
    #[error(transparent)]
    Cert(#[from] CertError),
}

impl From<der::Error> for ProfileError {
    fn from(e: der::Error) -> Self {
        ProfileError::Cert(CertError::Der(e))
    }
}

/// What the leaf needs to know about the CA that issues it.
#[derive(Debug, Clone)]
pub struct IssuerInfo {
    pub subject: Name,
    pub key_identifier: Vec<u8>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
}

/// The leaf TBS without any CT extension: exactly what precert-minus-poison and
/// final-minus-SCT must both equal.
pub fn leaf_tbs(
    issuer: &IssuerInfo,
    principal: &Principal,
    subject_key: SubjectPublicKeyInfoOwned,
    not_before: SystemTime,
    lifetime: Duration,
) -> Result<TbsCertificate, ProfileError> {
    let ski = certificate::key_identifier(&subject_key);
    let mut extensions = vec![
        certificate::extension(
            oids::KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::DigitalSignature.into()),
        )?,
        certificate::extension(
            oids::EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![oids::CODE_SIGNING]),
        )?,
        certificate::extension(
            oids::SUBJECT_KEY_ID,
            false,
            &SubjectKeyIdentifier(OctetString::new(ski)?),
        )?,
        certificate::extension(
            oids::AUTHORITY_KEY_ID,
            false,
            &authority_key_id(&issuer.key_identifier)?,
        )?,
        certificate::extension(
            oids::SUBJECT_ALT_NAME,
            true,
            &SanExt(vec![general_name(&principal.san)?]),
        )?,
    ];
    extensions.extend(fulcio_extensions(principal)?);
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: certificate::random_serial()?,
        signature: issuer.signature_algorithm.clone(),
        issuer: issuer.subject.clone(),
        validity: certificate::validity(not_before, lifetime)?,
        subject: Name::default(),
        subject_public_key_info: subject_key,
        extensions: Some(extensions),
    })
}

/// RFC 6962 poison: critical, value ASN.1 NULL.
pub fn poison_extension() -> Result<Extension, ProfileError> {
    Ok(certificate::extension(oids::CT_POISON, true, &Null)?)
}

/// Embedded SCTs: non-critical, `extnValue` = DER OCTET STRING around the TLS list.
pub fn sct_list_extension(tls_sct_list: &[u8]) -> Result<Extension, ProfileError> {
    Ok(certificate::extension(
        oids::CT_SCT_LIST,
        false,
        &OctetString::new(tls_sct_list)?,
    )?)
}

fn general_name(san: &SubjectAltName) -> Result<GeneralName, ProfileError> {
    let ia5 =
        |s: &str| Ia5String::new(s).map_err(|_| ProfileError::NonAsciiIdentity(s.to_string()));
    Ok(match san {
        SubjectAltName::Email(email) => GeneralName::Rfc822Name(ia5(email)?),
        SubjectAltName::Uri(uri) => GeneralName::UniformResourceIdentifier(ia5(uri)?),
        SubjectAltName::Username(name) => GeneralName::OtherName(OtherName {
            type_id: oids::FULCIO_USERNAME,
            value: Any::from_der(&Utf8StringRef::new(name)?.to_der()?)?,
        }),
    })
}

/// 1.1 (raw) and 1.8 (UTF8String) for the issuer, merged with the principal's CI
/// extensions in OID order (all share the 1.3.6.1.4.1.57264.1 arc).
fn fulcio_extensions(principal: &Principal) -> Result<Vec<Extension>, ProfileError> {
    let mut all: Vec<FulcioExtension> = vec![
        FulcioExtension {
            oid: oids::FULCIO_ISSUER_V1,
            value: principal.issuer.clone(),
            encoding: ExtEncoding::Raw,
        },
        FulcioExtension {
            oid: oids::FULCIO_ISSUER_V2,
            value: principal.issuer.clone(),
            encoding: ExtEncoding::Utf8String,
        },
    ];
    all.extend(
        principal
            .extensions
            .iter()
            .filter(|e| e.oid != oids::FULCIO_ISSUER_V1 && e.oid != oids::FULCIO_ISSUER_V2)
            .cloned(),
    );
    all.sort_by_key(|e| e.oid.arcs().last().unwrap_or(0));
    all.iter()
        .map(|e| {
            let value = match e.encoding {
                ExtEncoding::Raw => e.value.as_bytes().to_vec(),
                ExtEncoding::Utf8String => Utf8StringRef::new(&e.value)?.to_der()?,
            };
            Ok(certificate::raw_extension(e.oid, false, value)?)
        })
        .collect()
}

fn authority_key_id(key_identifier: &[u8]) -> Result<AuthorityKeyIdentifier, ProfileError> {
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_identifier)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}

/// Self-signed root: KU keyCertSign+cRLSign (critical), BC CA (critical), SKI.
pub fn root_tbs(
    subject: Name,
    key: SubjectPublicKeyInfoOwned,
    signature_algorithm: AlgorithmIdentifierOwned,
    not_before: SystemTime,
) -> Result<TbsCertificate, ProfileError> {
    let ski = certificate::key_identifier(&key);
    let extensions = vec![
        certificate::extension(oids::KEY_USAGE, true, &ca_key_usage())?,
        certificate::extension(
            oids::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?,
        certificate::extension(
            oids::SUBJECT_KEY_ID,
            false,
            &SubjectKeyIdentifier(OctetString::new(ski)?),
        )?,
    ];
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: certificate::random_serial()?,
        signature: signature_algorithm,
        issuer: subject.clone(),
        validity: certificate::validity(not_before, CA_VALIDITY)?,
        subject,
        subject_public_key_info: key,
        extensions: Some(extensions),
    })
}

/// Issuing intermediate: KU certSign+CRLSign (critical), EKU codeSigning,
/// BC CA pathlen 0 (critical), SKI, AKI.
pub fn intermediate_tbs(
    root: &IssuerInfo,
    subject: Name,
    key: SubjectPublicKeyInfoOwned,
    not_before: SystemTime,
) -> Result<TbsCertificate, ProfileError> {
    let ski = certificate::key_identifier(&key);
    let extensions = vec![
        certificate::extension(oids::KEY_USAGE, true, &ca_key_usage())?,
        certificate::extension(
            oids::EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![oids::CODE_SIGNING]),
        )?,
        certificate::extension(
            oids::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
        )?,
        certificate::extension(
            oids::SUBJECT_KEY_ID,
            false,
            &SubjectKeyIdentifier(OctetString::new(ski)?),
        )?,
        certificate::extension(
            oids::AUTHORITY_KEY_ID,
            false,
            &authority_key_id(&root.key_identifier)?,
        )?,
    ];
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: certificate::random_serial()?,
        signature: root.signature_algorithm.clone(),
        issuer: root.subject.clone(),
        validity: certificate::validity(not_before, CA_VALIDITY)?,
        subject,
        subject_public_key_info: key,
        extensions: Some(extensions),
    })
}

fn ca_key_usage() -> KeyUsage {
    KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
}

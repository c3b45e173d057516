//! The identity a verified OIDC token proves, in the shape the certificate needs (interop §1.5, §1.6).

use const_oid::ObjectIdentifier;

/// The single subject alternative name of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    /// rfc822Name.
    Email(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// otherName with type-id 1.3.6.1.4.1.57264.1.7 and a UTF8String value `"<sub>!<domain>"`.
    Username(String),
}

/// How a Fulcio extension value is put into `extnValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtEncoding {
    /// OIDs 1.1–1.6: the raw UTF-8 bytes, no DER wrapper.
    Raw,
    /// OIDs 1.8–1.24: a DER UTF8String.
    Utf8String,
}

/// One non-critical Fulcio extension (arc 1.3.6.1.4.1.57264.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulcioExtension {
    pub oid: ObjectIdentifier,
    pub value: String,
    pub encoding: ExtEncoding,
}

/// Who a verified token says the signer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Goes into 1.1 and 1.8: the token's `iss`, or the issuer's IssuerClaim value.
    pub issuer: String,
    pub san: SubjectAltName,
    /// What a proof of possession signs (Fulcio `Name()`): the email for email issuers, else `sub`.
    pub challenge: String,
    /// CI claims (1.2–1.6 raw, 1.9–1.24 UTF8String) in OID order; never 1.1/1.8.
    pub extensions: Vec<FulcioExtension>,
}

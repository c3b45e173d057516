//! X.509 certificates as the client reads them during verification (leaf profile, Fulcio
//! extensions, chain building, the precertificate TBS rebuild, embedded SCTs), as the CA
//! imports them (PEM or DER files), as the client receives them from a CA (`signingCert`
//! response), and the RFC 3161 timestamp tokens that are checked against TSA certificates.

#![no_main]

use std::sync::LazyLock;

use const_oid::ObjectIdentifier;
use libfuzzer_sys::fuzz_target;
use sigil_ca::certificate::cert_der_from_pem_or_der;
use sigil_client::sign::fulcio::parse_response;
use sigil_client::verify::asn1;
use sigil_client::verify::certs::{ParsedCert, TrustedCa, fulcio_extension, verify_chain};
use sigil_client::verify::timestamp::{TrustedTsa, verify_timestamp};
use sigil_log::ct::codec::{parse_sct_list, sct_list};
use sigil_proto::bundle::{Bundle, SignatureContent};
use sigil_proto::trust::TrustedRoot;

const SCT_LIST_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// Real authorities, so that a certificate or token close to a valid one gets checked all
/// the way: the production root's CAs and the staging root's TSA.
struct Trust {
    cas: Vec<TrustedCa>,
    tsas: Vec<TrustedTsa>,
    /// The artifact signature the staging bundle's timestamp covers.
    timestamped_signature: Vec<u8>,
}

static TRUST: LazyLock<Trust> = LazyLock::new(|| {
    let production =
        TrustedRoot::from_json(include_bytes!("../fixtures/production_trusted_root.json"))
            .expect("fixture root parses");
    let staging = TrustedRoot::from_json(include_bytes!("../fixtures/staging_trusted_root.json"))
        .expect("fixture root parses");
    let bundle = Bundle::from_json(include_bytes!("../fixtures/bundle_rekor_v2.json"))
        .expect("fixture bundle parses");
    let SignatureContent::MessageSignature(signed) = bundle.content else {
        panic!("fixture bundle is a message signature");
    };
    Trust {
        cas: TrustedCa::parse_all(&production.certificate_authorities).expect("fixture CAs"),
        tsas: TrustedTsa::parse_all(&staging.timestamp_authorities).expect("fixture TSAs"),
        timestamped_signature: signed.signature,
    }
});

fn exercise(cert: &ParsedCert) {
    let _ = cert.is_self_issued();
    let _ = cert.is_ca();
    let _ = cert.has_digital_signature_usage();
    let _ = cert.extended_key_usage();
    let _ = cert.has_unknown_critical_extension();
    let _ = cert.san_identities();
    // Arcs 1.1-1.6 are raw UTF-8 and 1.8 on are DER strings; read a few past the last one
    // defined so far, as a verifier meeting a newer certificate would.
    for arc in 1..=24 {
        let _ = fulcio_extension(cert, arc);
    }
    let _ = cert.is_issued_by(cert);
    let times = [cert.not_before, cert.not_after];
    let _ = verify_chain(cert, &TRUST.cas, &times);

    if let Ok(stripped) = asn1::tbs_without_extension(cert.tbs_der(), SCT_LIST_OID.as_bytes()) {
        asn1::expect(&stripped, asn1::SEQUENCE).expect("the rebuilt TBS is one SEQUENCE");
    }
    if let Some(ext) = cert.extension(&SCT_LIST_OID)
        && let Ok(octets) = asn1::expect(ext, asn1::OCTET_STRING)
        && let Ok(scts) = parse_sct_list(octets.content)
    {
        // The CA writes lists with this encoder, so parse and encode must agree.
        assert_eq!(sct_list(&scts).as_deref(), Ok(octets.content));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = ParsedCert::from_der(data) {
        exercise(&cert);
    }
    // PEM only: the DER case is the one above.
    if data.starts_with(b"-----")
        && let Ok(der) = cert_der_from_pem_or_der(data)
        && let Ok(cert) = ParsedCert::from_der(&der)
    {
        exercise(&cert);
    }
    if let Ok(issued) = parse_response(data) {
        for der in &issued.chain_der {
            if let Ok(cert) = ParsedCert::from_der(der) {
                exercise(&cert);
            }
        }
    }
    let _ = verify_timestamp(data, &TRUST.timestamped_signature, &TRUST.tsas);
});

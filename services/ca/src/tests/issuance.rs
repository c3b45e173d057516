//! The leaf profile, the precert/SCT relationship and the CT log entry, on real issuance.

use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
use der::asn1::{Ia5String, OctetString, Utf8StringRef};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use sigil_log::ct::codec;
use sigil_log::signer::verify_p256;
use sigil_proto::merkle::{leaf_hash, verify_inclusion};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};

use super::support::*;
use crate::certificate::TbsCertificate;
use crate::identity::fulcio_oid;
use crate::oids;
use crate::signer::CaKeyAlgorithm;

fn spki(key: &TestKey) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_der(&key.spki_der).unwrap()
}

fn ext(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> &Extension {
    cert.tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oid)
        .unwrap_or_else(|| panic!("extension {oid} missing"))
}

fn verify_signed_by(
    cert_der: &[u8],
    issuer_der: &[u8],
    alg: &'static dyn sig::VerificationAlgorithm,
) {
    let cert = Certificate::from_der(cert_der).unwrap();
    let issuer = Certificate::from_der(issuer_der).unwrap();
    let key = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    UnparsedPublicKey::new(alg, key)
        .verify(
            &cert.tbs_certificate().to_der().unwrap(),
            cert.signature().raw_bytes(),
        )
        .expect("certificate signature verifies with the issuer key");
}

#[tokio::test]
async fn leaf_follows_the_fulcio_profile() {
    let t = test_ca(ci_principal()).await;
    let key = p256();
    let before = SystemTime::now();
    let issued = t.ca.issue(&ci_principal(), spki(&key)).await.unwrap();
    let cert = Certificate::from_der(&issued.certificate_der).unwrap();
    let tbs = cert.tbs_certificate();
    let intermediate = Certificate::from_der(&t.ca.chain_der()[0]).unwrap();

    assert_eq!(tbs.version(), x509_cert::certificate::Version::V3);
    let serial = tbs.serial_number().as_bytes();
    assert_eq!(serial.len(), 20, "20-byte serial");
    assert!(serial[0] < 0x80 && serial[0] != 0, "positive, minimal");
    assert!(tbs.subject().is_empty(), "empty subject");
    assert_eq!(tbs.issuer(), intermediate.tbs_certificate().subject());
    assert_eq!(
        tbs.subject_public_key_info().to_der().unwrap(),
        key.spki_der
    );
    assert_eq!(cert.signature_algorithm().oid, oids::ECDSA_WITH_SHA256);

    let validity = tbs.validity();
    let nb = validity.not_before.to_system_time();
    let na = validity.not_after.to_system_time();
    assert_eq!(na.duration_since(nb).unwrap(), Duration::from_secs(600));
    assert!(
        nb <= SystemTime::now() && nb + Duration::from_secs(1) >= before,
        "no backdating"
    );

    // Order: KU, EKU, SKI, AKI, SAN, 1.1, 1.2, 1.3, 1.8, 1.9, 1.12, SCT list.
    let order: Vec<_> = tbs
        .extensions()
        .unwrap()
        .iter()
        .map(|e| (e.extn_id, e.critical))
        .collect();
    assert_eq!(
        order,
        vec![
            (oids::KEY_USAGE, true),
            (oids::EXT_KEY_USAGE, false),
            (oids::SUBJECT_KEY_ID, false),
            (oids::AUTHORITY_KEY_ID, false),
            (oids::SUBJECT_ALT_NAME, true),
            (fulcio_oid(1), false),
            (fulcio_oid(2), false),
            (fulcio_oid(3), false),
            (fulcio_oid(8), false),
            (fulcio_oid(9), false),
            (fulcio_oid(12), false),
            (oids::CT_SCT_LIST, false),
        ]
    );
    assert!(!order.iter().any(|(oid, _)| *oid == oids::BASIC_CONSTRAINTS));

    let (_, ku) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
    assert_eq!(ku, KeyUsage(KeyUsages::DigitalSignature.into()));
    let (_, eku) = tbs.get_extension::<ExtendedKeyUsage>().unwrap().unwrap();
    assert_eq!(eku.0, vec![oids::CODE_SIGNING]);
    let (_, ski) = tbs
        .get_extension::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    let expected_ski = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        tbs.subject_public_key_info().subject_public_key.raw_bytes(),
    );
    assert_eq!(ski.0.as_bytes(), expected_ski.as_ref());
    let (_, aki) = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .unwrap()
        .unwrap();
    let (_, inter_ski) = intermediate
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert_eq!(aki.key_identifier.unwrap(), inter_ski.0);
    let (_, san) = tbs.get_extension::<SubjectAltName>().unwrap().unwrap();
    assert_eq!(
        san.0,
        vec![GeneralName::UniformResourceIdentifier(
            Ia5String::new("https://github.com/o/r/.github/workflows/w.yml@refs/heads/main")
                .unwrap()
        )]
    );

    // 1.1–1.6 raw bytes; 1.8+ DER UTF8String.
    let issuer = "https://token.actions.githubusercontent.com";
    assert_eq!(
        ext(&cert, fulcio_oid(1)).extn_value.as_bytes(),
        issuer.as_bytes()
    );
    assert_eq!(
        ext(&cert, fulcio_oid(8)).extn_value.as_bytes(),
        Utf8StringRef::new(issuer).unwrap().to_der().unwrap()
    );
    assert_eq!(ext(&cert, fulcio_oid(2)).extn_value.as_bytes(), b"push");
    assert_eq!(
        Utf8StringRef::from_der(ext(&cert, fulcio_oid(12)).extn_value.as_bytes())
            .unwrap()
            .as_str(),
        "https://github.com/o/r"
    );

    verify_signed_by(
        &issued.certificate_der,
        &t.ca.chain_der()[0],
        &sig::ECDSA_P256_SHA256_ASN1,
    );
    // The response chain is [leaf, intermediate, root].
    assert_eq!(issued.chain_pem.len(), 3);
    let chain = Certificate::load_pem_chain(issued.chain_pem.concat().as_bytes()).unwrap();
    assert_eq!(chain[0], cert);
    assert_eq!(chain[1].to_der().unwrap(), t.ca.chain_der()[0]);
    assert_eq!(chain[2].to_der().unwrap(), t.ca.chain_der()[1]);
}

#[tokio::test]
async fn email_and_username_identities_are_encoded_as_fulcio_does() {
    let t = test_ca(email_principal()).await;
    let issued = t.ca.issue(&email_principal(), spki(&p256())).await.unwrap();
    let cert = Certificate::from_der(&issued.certificate_der).unwrap();
    let (critical, san) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .unwrap()
        .unwrap();
    assert!(critical);
    assert_eq!(
        san.0,
        vec![GeneralName::Rfc822Name(
            Ia5String::new("alice@example.com").unwrap()
        )]
    );

    let mut username = email_principal();
    username.san = crate::identity::SubjectAltName::Username("alice!example.com".into());
    let issued = t.ca.issue(&username, spki(&p256())).await.unwrap();
    let cert = Certificate::from_der(&issued.certificate_der).unwrap();
    let (_, san) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .unwrap()
        .unwrap();
    match &san.0[..] {
        [GeneralName::OtherName(other)] => {
            assert_eq!(other.type_id, oids::FULCIO_USERNAME);
            assert_eq!(
                other
                    .value
                    .decode_as::<Utf8StringRef<'_>>()
                    .unwrap()
                    .as_str(),
                "alice!example.com"
            );
        }
        other => panic!("unexpected SAN {other:?}"),
    }

    let mut non_ascii = email_principal();
    non_ascii.san = crate::identity::SubjectAltName::Email("ålice@example.com".into());
    assert!(matches!(
        t.ca.issue(&non_ascii, spki(&p256())).await,
        Err(crate::ca::IssueError::Profile(
            crate::profile::ProfileError::NonAsciiIdentity(_)
        ))
    ));
}

/// Removes the last extension (poison or SCT list) and returns the TBS DER.
fn tbs_without_last_extension(
    cert_der: &[u8],
    expected_last: const_oid::ObjectIdentifier,
) -> (Vec<u8>, Extension) {
    let tbs_der = Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate()
        .to_der()
        .unwrap();
    let mut tbs = TbsCertificate::from_der(&tbs_der).unwrap();
    let last = tbs.extensions.as_mut().unwrap().pop().unwrap();
    assert_eq!(last.extn_id, expected_last);
    (tbs.to_der().unwrap(), last)
}

#[tokio::test]
async fn embedded_sct_verifies_over_the_reconstructed_precertificate() {
    let t = test_ca(email_principal()).await;
    let issued = t.ca.issue(&email_principal(), spki(&p256())).await.unwrap();

    let (final_minus_sct, sct_ext) =
        tbs_without_last_extension(&issued.certificate_der, oids::CT_SCT_LIST);
    let (precert_minus_poison, poison) =
        tbs_without_last_extension(&issued.precertificate_der, oids::CT_POISON);
    assert_eq!(
        final_minus_sct, precert_minus_poison,
        "final TBS - SCT == precert TBS - poison"
    );
    assert!(poison.critical);
    assert_eq!(poison.extn_value.as_bytes(), &[0x05, 0x00]);
    assert!(!sct_ext.critical);
    verify_signed_by(
        &issued.precertificate_der,
        &t.ca.chain_der()[0],
        &sig::ECDSA_P256_SHA256_ASN1,
    );

    // extnValue = OCTET STRING(TLS list) holding exactly one SCT (sigstore-python's rule).
    let list = OctetString::from_der(sct_ext.extn_value.as_bytes()).unwrap();
    let scts = codec::parse_sct_list(list.as_bytes()).unwrap();
    assert_eq!(scts.len(), 1);
    let sct = &scts[0];
    assert_eq!(sct, &issued.sct);
    assert_eq!(sct.hash_algorithm, codec::HASH_SHA256);
    assert_eq!(sct.signature_algorithm, codec::SIG_ECDSA);
    assert_eq!(
        sct.log_id,
        <[u8; 32]>::from(Sha256::digest(t.ct.public_key_spki_der()))
    );

    let intermediate = Certificate::from_der(&t.ca.chain_der()[0]).unwrap();
    let issuer_key_hash: [u8; 32] = Sha256::digest(
        intermediate
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
    )
    .into();
    assert_eq!(issuer_key_hash, t.ca.issuer_key_hash());
    let signed =
        codec::precert_signed_data(sct.timestamp_ms, &issuer_key_hash, &final_minus_sct, &[])
            .unwrap();
    assert!(verify_p256(
        t.ct.public_key_spki_der(),
        &signed,
        &sct.signature
    ));
    let tampered = codec::precert_signed_data(
        sct.timestamp_ms + 1,
        &issuer_key_hash,
        &final_minus_sct,
        &[],
    )
    .unwrap();
    assert!(!verify_p256(
        t.ct.public_key_spki_der(),
        &tampered,
        &sct.signature
    ));
}

#[tokio::test]
async fn precertificate_is_in_the_ct_log_with_a_valid_inclusion_proof() {
    let t = test_ca(email_principal()).await;
    let first = t.ca.issue(&email_principal(), spki(&p256())).await.unwrap();
    let second = t.ca.issue(&email_principal(), spki(&p256())).await.unwrap();

    for issued in [&first, &second] {
        let (tbs, _) = tbs_without_last_extension(&issued.certificate_der, oids::CT_SCT_LIST);
        let leaf = codec::precert_leaf(issued.sct.timestamp_ms, &t.ca.issuer_key_hash(), &tbs, &[])
            .unwrap();
        let hash = leaf_hash(&leaf);
        let index =
            t.ct.engine()
                .index_of_leaf_hash(&hash)
                .await
                .unwrap()
                .expect("precert is logged");
        let head = t.ct.engine().tree_head();
        assert_eq!(head.size, 2);
        let proof =
            t.ct.engine()
                .inclusion_proof(index, head.size)
                .await
                .unwrap();
        verify_inclusion(&hash, index, head.size, &proof, &head.root).unwrap();

        let entry = t.ct.engine().entry(index).await.unwrap().unwrap();
        assert_eq!(entry.leaf, leaf);
        let (precert, chain) = codec::parse_precert_chain_entry(&entry.extra).unwrap();
        assert_eq!(precert, issued.precertificate_der);
        assert_eq!(chain, t.ca.chain_der().to_vec());
    }
    assert_eq!(t.ct.accepted_roots(), vec![t.ca.chain_der()[1].clone()]);
}

#[tokio::test]
async fn p384_ca_signs_with_ecdsa_sha384() {
    let t = test_ca_with(email_principal(), CaKeyAlgorithm::EcdsaP384).await;
    let issued = t.ca.issue(&email_principal(), spki(&p256())).await.unwrap();
    let cert = Certificate::from_der(&issued.certificate_der).unwrap();
    assert_eq!(cert.signature_algorithm().oid, oids::ECDSA_WITH_SHA384);
    assert_eq!(
        cert.tbs_certificate().signature().oid,
        oids::ECDSA_WITH_SHA384
    );
    verify_signed_by(
        &issued.certificate_der,
        &t.ca.chain_der()[0],
        &sig::ECDSA_P384_SHA384_ASN1,
    );
    verify_signed_by(
        &t.ca.chain_der()[0],
        &t.ca.chain_der()[1],
        &sig::ECDSA_P384_SHA384_ASN1,
    );
}

#[tokio::test]
async fn no_leaf_outlives_the_issuing_certificate() {
    let t = test_ca(email_principal()).await;
    let material = crate::keystore::CaMaterial {
        signer: std::sync::Arc::new(
            crate::signer::LocalSigner::generate(CaKeyAlgorithm::EcdsaP256)
                .unwrap()
                .0,
        ),
        chain: t.ca.chain_der().to_vec(),
    };
    // The intermediate lives 10 years; a 20-year leaf cannot be issued under it.
    let long = crate::ca::Ca::from_material(
        material,
        Duration::from_secs(20 * 365 * 24 * 3600),
        FixedIdentity(email_principal(), Default::default()),
        t.ct.clone(),
    )
    .unwrap();
    assert!(matches!(
        long.issue(&email_principal(), spki(&p256())).await,
        Err(crate::ca::IssueError::IssuerExpiring)
    ));
    assert_eq!(t.ct.engine().tree_head().size, 0);
}

/// What the log indexes for each kind of certificate this CA issues: a mixed-case email is
/// searched in lower case, a CI identity (URI) and a username (otherName) as subjects, and
/// every certificate by its hash and its key's hash.
#[tokio::test]
async fn the_log_indexes_every_identity_these_certificates_carry() {
    use sigil_log::rekor_v1::keys::KeyMaterial;
    let mut mixed_case = email_principal();
    mixed_case.san = crate::identity::SubjectAltName::Email("Alice.Smith@Example.COM".into());
    let mut username = email_principal();
    username.san = crate::identity::SubjectAltName::Username("alice!example.com".into());
    for (principal, expected) in [
        (mixed_case, "email:alice.smith@example.com"),
        (
            ci_principal(),
            "subject:https://github.com/o/r/.github/workflows/w.yml@refs/heads/main",
        ),
        (username, "subject:alice!example.com"),
    ] {
        let t = test_ca(principal.clone()).await;
        let issued = t.ca.issue(&principal, spki(&p256())).await.unwrap();
        let keys = KeyMaterial::from_pem(issued.chain_pem[0].as_bytes())
            .unwrap()
            .index_keys();
        assert!(
            keys.contains(&expected.to_string()),
            "{expected} not in {keys:?}"
        );
        let cert_key = format!(
            "cert:{}",
            hex::encode(Sha256::digest(&issued.certificate_der))
        );
        assert!(keys.contains(&cert_key), "{keys:?}");
        assert!(
            !keys.iter().any(|k| k.starts_with("key:")),
            "a certificate entry is found by its certificate, not its bare key: {keys:?}"
        );
        assert_eq!(
            keys.iter()
                .filter(|k| k.starts_with("email:") || k.starts_with("subject:"))
                .count(),
            1,
            "one identity per certificate: {keys:?}"
        );
    }
}

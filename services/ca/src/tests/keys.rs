//! Both request shapes (§1.2) end to end through `handle_signing_request`, for every
//! supported subject key type, and the ways a proof can be wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use sigil_proto::fulcio::{
    CreateSigningCertificateRequest, Credentials, PublicKey, PublicKeyRequest,
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

use super::support::*;
use crate::ca::IssueError;
use crate::oids;
use crate::subject_key::{SubjectKey, SubjectKeyError};

fn csr_request(csr: Vec<u8>) -> CreateSigningCertificateRequest {
    CreateSigningCertificateRequest {
        certificate_signing_request: Some(csr),
        ..Default::default()
    }
}

fn pop_request(
    key: &TestKey,
    proof: Vec<u8>,
    token_in_body: bool,
) -> CreateSigningCertificateRequest {
    CreateSigningCertificateRequest {
        credentials: token_in_body.then(|| Credentials {
            oidc_identity_token: TOKEN.into(),
        }),
        public_key_request: Some(PublicKeyRequest {
            public_key: PublicKey {
                algorithm: "ECDSA".into(),
                content: key.spki_pem(),
            },
            proof_of_possession: proof,
        }),
        certificate_signing_request: None,
    }
}

fn leaf_spki(chain_pem: &[String]) -> Vec<u8> {
    let leaf = Certificate::load_pem_chain(chain_pem[0].as_bytes())
        .unwrap()
        .remove(0);
    leaf.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap()
}

#[tokio::test]
async fn csr_path_issues_for_every_supported_key_type() {
    let t = test_ca(email_principal()).await;
    for key in all_key_types() {
        // sigstore-python sends base64 of the PEM CSR; DER must work too.
        for csr in [key.csr_pem().into_bytes(), key.csr_der()] {
            let resp =
                t.ca.handle_signing_request(csr_request(csr), Some(TOKEN))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", key.name));
            let chain = resp
                .signed_certificate_embedded_sct
                .unwrap()
                .chain
                .certificates;
            assert_eq!(chain.len(), 3);
            assert_eq!(leaf_spki(&chain), key.spki_der, "{}", key.name);
        }
    }
}

#[tokio::test]
async fn proof_of_possession_path_issues_for_every_supported_key_type() {
    let t = test_ca(email_principal()).await;
    for key in all_key_types() {
        let proof = key.sign(b"alice@example.com");
        // sigstore-js: token in the body; cosign: token in the Authorization header.
        for (in_body, bearer) in [(true, None), (false, Some(TOKEN))] {
            let resp =
                t.ca.handle_signing_request(pop_request(&key, proof.clone(), in_body), bearer)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", key.name));
            let chain = resp
                .signed_certificate_embedded_sct
                .unwrap()
                .chain
                .certificates;
            assert_eq!(leaf_spki(&chain), key.spki_der, "{}", key.name);
        }
    }
}

#[tokio::test]
async fn a_proof_over_anything_but_the_challenge_is_rejected() {
    let t = test_ca(email_principal()).await;
    for key in all_key_types() {
        let proof = key.sign(b"mallory@example.com");
        let err =
            t.ca.handle_signing_request(pop_request(&key, proof, true), None)
                .await
                .unwrap_err();
        assert!(
            matches!(err, IssueError::Key(SubjectKeyError::BadProofOfPossession)),
            "{}: {err}",
            key.name
        );
    }
    // A valid proof by a different key does not prove possession of this one.
    let other = p256().sign(b"alice@example.com");
    let err =
        t.ca.handle_signing_request(pop_request(&p256(), other, true), None)
            .await
            .unwrap_err();
    assert!(matches!(
        err,
        IssueError::Key(SubjectKeyError::BadProofOfPossession)
    ));
    assert_eq!(t.ct.engine().tree_head().size, 0, "nothing was logged");
}

#[tokio::test]
async fn a_csr_with_a_bad_self_signature_is_rejected() {
    let t = test_ca(email_principal()).await;
    for key in all_key_types() {
        let mut csr = key.csr_der();
        let last = csr.len() - 1;
        csr[last] ^= 0x01;
        let err =
            t.ca.handle_signing_request(csr_request(csr), Some(TOKEN))
                .await
                .unwrap_err();
        assert!(
            matches!(err, IssueError::Key(SubjectKeyError::BadCsrSignature)),
            "{}: {err}",
            key.name
        );
    }
    // A CSR signed by another key.
    let key = p256();
    let mut req = x509_cert::request::CertReq::from_der(&key.csr_der()).unwrap();
    req.signature =
        der::asn1::BitString::from_bytes(&p256().sign(&req.info.to_der().unwrap())).unwrap();
    let err =
        t.ca.handle_signing_request(csr_request(req.to_der().unwrap()), Some(TOKEN))
            .await
            .unwrap_err();
    assert!(matches!(
        err,
        IssueError::Key(SubjectKeyError::BadCsrSignature)
    ));
    // A signature algorithm that does not match the key.
    let mut req = x509_cert::request::CertReq::from_der(&key.csr_der()).unwrap();
    req.algorithm = AlgorithmIdentifierOwned {
        oid: oids::SHA256_WITH_RSA,
        parameters: None,
    };
    let err =
        t.ca.handle_signing_request(csr_request(req.to_der().unwrap()), Some(TOKEN))
            .await
            .unwrap_err();
    assert!(matches!(
        err,
        IssueError::Key(SubjectKeyError::UnsupportedSignatureAlgorithm(_))
    ));
    let err =
        t.ca.handle_signing_request(csr_request(b"not a csr".to_vec()), Some(TOKEN))
            .await
            .unwrap_err();
    assert!(matches!(
        err,
        IssueError::Key(SubjectKeyError::MalformedCsr(_))
    ));
}

#[test]
fn a_der_csr_ending_in_a_whitespace_byte_is_accepted() {
    // Found by the issuance bench: DER must never be trimmed like PEM.
    let key = p256();
    let csr = (0..5000)
        .map(|_| key.csr_der())
        .find(|csr| csr.last().unwrap().is_ascii_whitespace())
        .expect("about 1 in 50 ECDSA signatures ends in a whitespace byte");
    crate::subject_key::verify_csr(&csr).unwrap();
}

#[tokio::test]
async fn token_and_request_shape_errors() {
    let t = test_ca(email_principal()).await;
    let key = p256();
    let err =
        t.ca.handle_signing_request(csr_request(key.csr_der()), None)
            .await
            .unwrap_err();
    assert!(matches!(err, IssueError::MissingToken));
    let err =
        t.ca.handle_signing_request(csr_request(key.csr_der()), Some("wrong"))
            .await
            .unwrap_err();
    assert!(matches!(err, IssueError::Token(_)));
    // A token in the body wins over the header.
    let mut req = pop_request(&key, key.sign(b"alice@example.com"), true);
    assert!(
        t.ca.handle_signing_request(req.clone(), Some("wrong"))
            .await
            .is_ok()
    );
    req.credentials = Some(Credentials {
        oidc_identity_token: "wrong".into(),
    });
    assert!(
        t.ca.handle_signing_request(req.clone(), Some(TOKEN))
            .await
            .is_err()
    );

    let mut both = pop_request(&key, vec![1], true);
    both.certificate_signing_request = Some(key.csr_der());
    for bad in [
        both,
        CreateSigningCertificateRequest::default(),
        pop_request(&key, vec![], true),
    ] {
        let err =
            t.ca.handle_signing_request(bad, Some(TOKEN))
                .await
                .unwrap_err();
        assert!(matches!(err, IssueError::BadRequest(_)), "{err}");
    }
}

#[test]
fn public_key_content_accepts_pem_and_base64_der() {
    let key = p256();
    for content in [key.spki_pem(), STANDARD.encode(&key.spki_der)] {
        let parsed = SubjectKey::from_request_content(&content).unwrap();
        assert_eq!(parsed.spki().to_der().unwrap(), key.spki_der);
    }
    assert!(SubjectKey::from_request_content("garbage").is_err());
}

fn rsa_spki(modulus_bytes: usize, exponent: &[u8]) -> Vec<u8> {
    use der::asn1::{BitString, UintRef};
    #[derive(der::Sequence)]
    struct Rsa<'a> {
        n: UintRef<'a>,
        e: UintRef<'a>,
    }
    let mut n = vec![0xc5u8; modulus_bytes];
    n[modulus_bytes - 1] = 0x01;
    let key = Rsa {
        n: UintRef::new(&n).unwrap(),
        e: UintRef::new(exponent).unwrap(),
    }
    .to_der()
    .unwrap();
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(&key).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn key_policy_rejects_weak_and_unknown_keys() {
    assert_eq!(
        SubjectKey::from_spki_der(&rsa_spki(128, &[1, 0, 1])).unwrap_err(),
        SubjectKeyError::WeakRsaKey,
        "1024-bit RSA"
    );
    assert_eq!(
        SubjectKey::from_spki_der(&rsa_spki(1024, &[1, 0, 1])).unwrap_err(),
        SubjectKeyError::WeakRsaKey,
        "8192-bit RSA"
    );
    assert_eq!(
        SubjectKey::from_spki_der(&rsa_spki(256, &[3])).unwrap_err(),
        SubjectKeyError::WeakRsaKey,
        "e = 3"
    );
    assert!(SubjectKey::from_spki_der(&rsa_spki(256, &[1, 0, 1])).is_ok());
    assert!(SubjectKey::from_spki_der(&rsa_spki(512, &[1, 0, 1])).is_ok());

    // secp256k1 is not allowed.
    let mut spki = SubjectPublicKeyInfoOwned::from_der(&p256().spki_der).unwrap();
    spki.algorithm.parameters =
        Some(const_oid::ObjectIdentifier::new_unwrap("1.3.132.0.10").into());
    assert_eq!(
        SubjectKey::from_spki(spki).unwrap_err(),
        SubjectKeyError::UnsupportedKey
    );
}

//! CA keys at rest: creation, the CA certificate profiles, encryption, reload, import.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
use der::zeroize::Zeroizing;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};

use crate::keystore::{
    self, CaMaterial, ImportedCa, KeyProtection, KeyStoreError, KeyStoreOptions,
};
use crate::oids;
use crate::signer::CaKeyAlgorithm;

fn options(dir: &std::path::Path, protection: KeyProtection) -> KeyStoreOptions {
    KeyStoreOptions {
        data_dir: dir.to_path_buf(),
        algorithm: CaKeyAlgorithm::EcdsaP256,
        protection,
        imported: None,
        organization: "Example, Inc.".into(),
    }
}

fn passphrase(p: &str) -> KeyProtection {
    KeyProtection::Passphrase(Zeroizing::new(p.to_string()))
}

fn verify(cert_der: &[u8], issuer_der: &[u8]) -> bool {
    let cert = Certificate::from_der(cert_der).unwrap();
    let issuer = Certificate::from_der(issuer_der).unwrap();
    UnparsedPublicKey::new(
        &sig::ECDSA_P256_SHA256_ASN1,
        issuer
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    )
    .verify(
        &cert.tbs_certificate().to_der().unwrap(),
        cert.signature().raw_bytes(),
    )
    .is_ok()
}

async fn sign_and_check(material: &CaMaterial) {
    let msg = b"tbs";
    let signature = material.signer.sign(msg).await.unwrap();
    let cert = Certificate::from_der(material.issuing_cert_der()).unwrap();
    UnparsedPublicKey::new(
        &sig::ECDSA_P256_SHA256_ASN1,
        cert.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    )
    .verify(msg, &signature)
    .expect("the signer is the intermediate's key");
}

#[tokio::test]
async fn first_start_creates_an_encrypted_root_and_intermediate_with_the_ca_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let material =
        keystore::load_or_create(&options(dir.path(), passphrase("correct horse"))).unwrap();
    assert_eq!(material.chain.len(), 2);
    sign_and_check(&material).await;

    let root = Certificate::from_der(material.root_der()).unwrap();
    let inter = Certificate::from_der(material.issuing_cert_der()).unwrap();
    let (rt, it) = (root.tbs_certificate(), inter.tbs_certificate());
    assert_eq!(rt.subject(), rt.issuer(), "self-signed");
    assert!(verify(material.root_der(), material.root_der()));
    assert!(verify(material.issuing_cert_der(), material.root_der()));
    assert_eq!(it.issuer(), rt.subject());
    assert_eq!(rt.subject().to_string(), "CN=sigil root,O=Example\\, Inc.");

    let ca_usage = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
    assert_eq!(
        rt.get_extension::<KeyUsage>().unwrap().unwrap(),
        (true, ca_usage)
    );
    assert_eq!(
        rt.get_extension::<BasicConstraints>().unwrap().unwrap(),
        (
            true,
            BasicConstraints {
                ca: true,
                path_len_constraint: None
            }
        )
    );
    let (_, root_ski) = rt.get_extension::<SubjectKeyIdentifier>().unwrap().unwrap();

    assert_eq!(
        it.get_extension::<KeyUsage>().unwrap().unwrap(),
        (true, ca_usage)
    );
    assert_eq!(
        it.get_extension::<BasicConstraints>().unwrap().unwrap(),
        (
            true,
            BasicConstraints {
                ca: true,
                path_len_constraint: Some(0)
            }
        )
    );
    let (_, eku) = it.get_extension::<ExtendedKeyUsage>().unwrap().unwrap();
    assert_eq!(eku.0, vec![oids::CODE_SIGNING]);
    assert!(
        it.get_extension::<SubjectKeyIdentifier>()
            .unwrap()
            .is_some()
    );
    let (_, aki) = it
        .get_extension::<AuthorityKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert_eq!(aki.key_identifier.unwrap(), root_ski.0);

    // Keys are encrypted PKCS#8 with owner-only permissions; the passphrase is not in them.
    for name in ["root-key.pem", "intermediate-key.pem"] {
        let path = dir.path().join("ca").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{name}"
        );
        assert!(!text.contains("correct horse"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    // A restart loads the same CA; a wrong or missing passphrase is refused.
    let again =
        keystore::load_or_create(&options(dir.path(), passphrase("correct horse"))).unwrap();
    assert_eq!(again.chain, material.chain);
    assert_eq!(again.signer.spki_der(), material.signer.spki_der());
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), passphrase("wrong"))),
        Err(KeyStoreError::Decrypt(_))
    ));
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), KeyProtection::None)),
        Err(KeyStoreError::NoPassphrase)
    ));
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), KeyProtection::InsecureUnencrypted)),
        Err(KeyStoreError::NoPassphrase)
    ));
}

#[test]
fn unencrypted_keys_need_the_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), KeyProtection::None)),
        Err(KeyStoreError::NoPassphrase)
    ));
    assert!(
        !dir.path().join("ca").exists(),
        "nothing written without protection"
    );

    let material =
        keystore::load_or_create(&options(dir.path(), KeyProtection::InsecureUnencrypted)).unwrap();
    let text = std::fs::read_to_string(dir.path().join("ca/intermediate-key.pem")).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    // Once a passphrase is configured, a plain key on disk is refused rather than trusted.
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), passphrase("p"))),
        Err(KeyStoreError::UnencryptedKeyRefused(_))
    ));
    let again =
        keystore::load_or_create(&options(dir.path(), KeyProtection::InsecureUnencrypted)).unwrap();
    assert_eq!(again.chain, material.chain);
}

#[test]
fn an_incomplete_ca_directory_is_reported_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    keystore::load_or_create(&options(dir.path(), KeyProtection::InsecureUnencrypted)).unwrap();
    std::fs::remove_file(dir.path().join("ca/root.pem")).unwrap();
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), KeyProtection::InsecureUnencrypted)),
        Err(KeyStoreError::Incomplete(_))
    ));
    // Only the root key left: still not a fresh directory.
    for name in ["intermediate.pem", "intermediate-key.pem"] {
        std::fs::remove_file(dir.path().join("ca").join(name)).unwrap();
    }
    assert!(matches!(
        keystore::load_or_create(&options(dir.path(), KeyProtection::InsecureUnencrypted)),
        Err(KeyStoreError::Incomplete(_))
    ));
}

#[tokio::test]
async fn the_root_key_can_be_moved_offline_after_creation() {
    let dir = tempfile::tempdir().unwrap();
    let created = keystore::load_or_create(&options(dir.path(), passphrase("p"))).unwrap();
    std::fs::rename(
        dir.path().join("ca/root-key.pem"),
        dir.path().join("offline-root-key.pem"),
    )
    .unwrap();
    let loaded = keystore::load_or_create(&options(dir.path(), passphrase("p"))).unwrap();
    assert_eq!(loaded.chain, created.chain);
    sign_and_check(&loaded).await;
    assert!(
        !dir.path().join("ca/root-key.pem").exists(),
        "no new root key was generated"
    );
}

#[tokio::test]
async fn an_existing_key_and_chain_can_be_imported() {
    let source = tempfile::tempdir().unwrap();
    let created = keystore::load_or_create(&options(source.path(), passphrase("s3cret"))).unwrap();
    let ca_dir = source.path().join("ca");
    let chain_path = source.path().join("chain.pem");
    let chain_pem = [
        std::fs::read_to_string(ca_dir.join("intermediate.pem")).unwrap(),
        std::fs::read_to_string(ca_dir.join("root.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(&chain_path, chain_pem).unwrap();

    let target = tempfile::tempdir().unwrap();
    let mut opts = options(target.path(), passphrase("s3cret"));
    opts.imported = Some(ImportedCa {
        key_pem: ca_dir.join("intermediate-key.pem"),
        chain_pem: chain_path.clone(),
    });
    let imported = keystore::load_or_create(&opts).unwrap();
    assert_eq!(imported.chain, created.chain);
    sign_and_check(&imported).await;
    assert!(
        !target.path().join("ca").exists(),
        "imports do not generate keys"
    );

    // The root key does not belong to the intermediate certificate.
    opts.imported = Some(ImportedCa {
        key_pem: ca_dir.join("root-key.pem"),
        chain_pem: chain_path,
    });
    assert!(matches!(
        keystore::load_or_create(&opts),
        Err(KeyStoreError::KeyMismatch { .. })
    ));
}

#[test]
fn p384_keys_are_created_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), passphrase("p"));
    opts.algorithm = CaKeyAlgorithm::EcdsaP384;
    let material = keystore::load_or_create(&opts).unwrap();
    assert_eq!(
        material.signer.signature_algorithm().oid,
        oids::ECDSA_WITH_SHA384
    );
    let again = keystore::load_or_create(&opts).unwrap();
    assert_eq!(
        again.signer.signature_algorithm().oid,
        oids::ECDSA_WITH_SHA384
    );
    assert_eq!(again.chain, material.chain);
}

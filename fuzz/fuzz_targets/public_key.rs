//! Public (and private) key material from the network and from files: the shared key
//! parser (`sigil-keys`) directly, and through each caller: the PEM keys and certificates
//! in Rekor entries, the CA's `publicKeyRequest` content, cosign key files on the client,
//! and the log's own key file.

#![no_main]

use const_oid::ObjectIdentifier;
use libfuzzer_sys::fuzz_target;
use sigil_ca::subject_key::SubjectKey;
use sigil_client::keys::SigningKey;
use sigil_keys::{PublicKey, decode_pem, encode_pem};
use sigil_log::LogSigner;
use sigil_log::rekor_v1::keys::KeyMaterial;

/// Signature algorithms a certificate or CSR may name, valid and not, for `verify_x509`.
const X509_ALGORITHMS: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
    ObjectIdentifier::new_unwrap("1.3.101.112"),
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5"),
];

/// Garbage signatures only: this is about keys being usable without a panic.
const NOT_A_SIGNATURE: &[u8] = b"\x30\x06\x02\x01\x01\x02\x01\x01";

fn exercise(key: &PublicKey) {
    let _ = key.rsa_modulus_bits();
    let _ = key.rsa_exponent_is_65537();
    let _ = key.ed25519_raw();
    let _ = key.verify_default(b"message", NOT_A_SIGNATURE);
    let _ = key.verify_prehashed(key.default_hash(), &[0u8; 32], NOT_A_SIGNATURE);
    for algorithm in &X509_ALGORITHMS {
        let _ = key.verify_x509(algorithm, b"message", NOT_A_SIGNATURE);
    }
    // Keys are stored and sent on as canonical PEM: it must read back as the same key.
    let again = PublicKey::from_pem(&encode_pem("PUBLIC KEY", key.spki_der()))
        .expect("the canonical PEM of an accepted key parses");
    assert_eq!(&again, key);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        exercise(&key);
    }
    if let Ok(material) = KeyMaterial::from_pem(data) {
        let _ = material.index_keys();
        let _ = material.verify_message(b"message", NOT_A_SIGNATURE);
        // The log stores the canonical PEM and reads it again (search, dedup): it must name
        // the same key and certificate.
        let again = KeyMaterial::from_pem(material.canonical_pem.as_bytes())
            .expect("the canonical PEM of accepted key material parses");
        assert_eq!(again.key, material.key);
        assert_eq!(again.cert_der, material.cert_der);
    }
    if let Ok(key) = SubjectKey::from_spki_der(data) {
        let _ = key.verify_proof_of_possession(b"user@example.com", NOT_A_SIGNATURE);
    }
    let _ = SigningKey::from_pkcs8(data);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode_pem(text);
    if let Ok(key) = PublicKey::from_pem(text) {
        exercise(&key);
    }
    if let Ok(key) = SubjectKey::from_request_content(text) {
        let _ = key.verify_proof_of_possession(b"user@example.com", NOT_A_SIGNATURE);
    }
    // Reaches scrypt only for cosign's exact (N, r, p) triples; see docs/fuzzing.md.
    let _ = SigningKey::from_encrypted_pem(text, b"fuzz");
    let _ = LogSigner::from_pem(text);
});

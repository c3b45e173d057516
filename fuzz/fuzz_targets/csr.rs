//! `POST /api/v2/signingCert` key proofs: the request body, a PKCS#10 request (PEM or DER,
//! self-signature checked) or a public key with a proof of possession over the challenge.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_ca::subject_key::{SubjectKey, verify_csr};
use sigil_proto::fulcio::CreateSigningCertificateRequest;

/// The identity the seed proofs of possession sign, so that valid proofs stay reachable.
const CHALLENGE: &[u8] = b"user@example.com";

fuzz_target!(|data: &[u8]| {
    let _ = verify_csr(data);
    if let Ok(request) = serde_json::from_slice::<CreateSigningCertificateRequest>(data) {
        if let Some(csr) = &request.certificate_signing_request {
            let _ = verify_csr(csr);
        }
        if let Some(pkr) = &request.public_key_request
            && let Ok(key) = SubjectKey::from_request_content(&pkr.public_key.content)
        {
            let _ = key.verify_proof_of_possession(CHALLENGE, &pkr.proof_of_possession);
        }
    }
});

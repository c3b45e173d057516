//! Trust documents a client loads from a file or a TUF/HTTP fetch: the trusted root (and
//! the certificates, keys and validity ranges in it, parsed as verification uses them), the
//! signing config and the combined client trust config, and the service selection made
//! from a signing config.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_client::sign::config::select;
use sigil_client::verify::{PublicKey, Verifier};
use sigil_proto::trust::{ClientTrustConfig, SigningConfig, TrustedRoot};
use time::OffsetDateTime;

/// A fixed "now" keeps runs reproducible; it lies inside the seed documents' validity.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).expect("valid timestamp")
}

fn check_root(root: &TrustedRoot) {
    let _ = Verifier::new(root);
    for log in root.tlogs.iter().chain(&root.ctlogs) {
        if let Some(der) = &log.public_key.raw_bytes {
            let _ = PublicKey::from_spki_der(der);
        }
        if let Some(range) = &log.public_key.valid_for {
            let _ = range.contains(now());
        }
    }
    // `--trusted-root` files are also written back out (`sigil trust` commands); what is
    // written must read back unchanged.
    let again = TrustedRoot::from_json(root.to_json_pretty().as_bytes())
        .expect("a serialised trusted root parses");
    assert_eq!(&again, root, "trusted root changed in a JSON round trip");
}

fn check_signing_config(config: &SigningConfig) {
    let _ = select(config, now());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = TrustedRoot::from_json(data) {
        check_root(&root);
    }
    if let Ok(config) = SigningConfig::from_json(data) {
        check_signing_config(&config);
    }
    if let Ok(config) = ClientTrustConfig::from_json(data) {
        check_root(&config.trusted_root);
        check_signing_config(&config.signing_config);
    }
});

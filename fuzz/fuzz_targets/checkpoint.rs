//! Signed notes and tlog checkpoints: from a bundle's inclusion proof, a tiles-API
//! `/checkpoint`, or a witness. Parsed on their own, and put in place of a real log entry's
//! checkpoint so that the client's whole check (note, checkpoint, root and size against the
//! proof, key hint, signature) runs on them with the real log keys.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sigil_client::verify::PublicKey;
use sigil_client::verify::tlog::{find_log, verify_inclusion};
use sigil_proto::bundle::{Bundle, CheckpointEnvelope, TransparencyLogEntry};
use sigil_proto::checkpoint::{Checkpoint, SignedNote};
use sigil_proto::trust::TrustedRoot;

/// Real entries (Rekor v1 and Rekor v2) with their log's key.
static ENTRIES: LazyLock<Vec<(TransparencyLogEntry, PublicKey)>> = LazyLock::new(|| {
    [
        (
            include_bytes!("../fixtures/bundle_rekor_v1.json").as_slice(),
            include_bytes!("../fixtures/production_trusted_root.json").as_slice(),
        ),
        (
            include_bytes!("../fixtures/bundle_rekor_v2.json"),
            include_bytes!("../fixtures/staging_trusted_root.json"),
        ),
    ]
    .into_iter()
    .map(|(bundle, root)| {
        let bundle = Bundle::from_json(bundle).expect("fixture bundle parses");
        let root = TrustedRoot::from_json(root).expect("fixture root parses");
        let entry = bundle.verification_material.tlog_entries[0].clone();
        let (_, key) = find_log(&root.tlogs, &entry).expect("fixture log is in its root");
        (entry, key)
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(note) = SignedNote::parse(text) {
        // Notes are relayed (bundles, witnesses): the parts must reassemble to the input.
        assert_eq!(note.to_text(), text, "signed note does not round-trip");
        if let Ok(checkpoint) = Checkpoint::parse(&note.text) {
            assert_eq!(
                checkpoint.to_text(),
                note.text,
                "checkpoint does not round-trip"
            );
        }
    }
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.to_text(), text, "checkpoint does not round-trip");
    }
    for (entry, key) in ENTRIES.iter() {
        let mut entry = entry.clone();
        if let Some(proof) = entry.inclusion_proof.as_mut() {
            proof.checkpoint = Some(CheckpointEnvelope {
                envelope: text.to_string(),
            });
        }
        let _ = verify_inclusion(&entry, key);
    }
});

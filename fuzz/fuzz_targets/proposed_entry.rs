//! `POST /api/v1/log/entries` and the other Rekor v1 request bodies: parsed, then validated
//! exactly as the log does before sequencing (signature checks included).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_log::rekor_v1::entries::{MAX_BODY_BYTES, validate};
use sigil_proto::rekor_v1::{ProposedEntry, RetrieveRequest, SearchIndexRequest};

/// Retrieve requests may carry many entries; a few are enough to reach every branch and
/// keep one input's cost bounded.
const MAX_RETRIEVE_ENTRIES: usize = 4;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = ProposedEntry::from_json(data)
        && let Ok(validated) = validate(&entry)
    {
        assert!(validated.body.len() <= MAX_BODY_BYTES);
        // A hashedrekord body has the proposed-entry shape: submitting it again must be
        // accepted and canonicalise to the same bytes, or resubmissions would not be
        // recognised as the same entry.
        if matches!(entry, ProposedEntry::HashedRekord(_)) {
            let again = ProposedEntry::from_json(&validated.body)
                .expect("a canonical hashedrekord body parses as a proposed entry");
            let revalidated = validate(&again).expect("a canonical body validates");
            assert_eq!(
                revalidated.body, validated.body,
                "canonical body is not stable"
            );
        }
    }
    if let Ok(request) = serde_json::from_slice::<RetrieveRequest>(data) {
        for value in request.entries.into_iter().take(MAX_RETRIEVE_ENTRIES) {
            if let Ok(entry) = ProposedEntry::from_value(value) {
                let _ = validate(&entry);
            }
        }
    }
    let _ = serde_json::from_slice::<SearchIndexRequest>(data);
});

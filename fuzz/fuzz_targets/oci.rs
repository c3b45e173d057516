//! What an OCI registry and the image commands hand the client: image references (command
//! line, annotations), digests, manifests and indexes, the registry's `Link` and
//! `WWW-Authenticate` headers, and the cosign payloads stored in images (simple signing,
//! the `dev.sigstore.cosign/bundle` annotation, DSSE envelopes and in-toto statements).

#![no_main]

use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue};
use sigil_client::oci::reference::ImageRef;
use sigil_client::oci::registry::{check_realm, next_link};
use sigil_proto::cosign::{RekorBundle, SimpleSigning, predicate_type};
use sigil_proto::dsse::{Envelope, pae};
use sigil_proto::intoto::Statement;
use sigil_proto::oci::{Descriptor, Digest, Index, Manifest, declared_media_type, parse_reference};

const SOME_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn check_text(text: &str) {
    if let Ok(parsed) = parse_reference(text) {
        // The normalised form is what gets printed and stored (annotations, tags), and is
        // parsed again later: it must name the same image.
        let mut written = format!("{}/{}", parsed.registry, parsed.repository);
        if let Some(tag) = &parsed.tag {
            written.push_str(&format!(":{tag}"));
        }
        if let Some(digest) = &parsed.digest {
            written.push_str(&format!("@{digest}"));
        }
        let again = parse_reference(&written).expect("a normalised reference parses");
        assert_eq!(
            again, parsed,
            "normalised reference {written:?} names another image"
        );
    }
    if let Ok(image) = ImageRef::parse(text) {
        let _ = image.manifest_reference();
        let _ = image.name();
        let digest = Digest::parse(SOME_DIGEST).expect("constant digest");
        let _ = image.at_digest(&digest);
    }
    if let Ok(digest) = Digest::parse(text) {
        assert_eq!(digest.to_string(), text, "digest is not kept verbatim");
        let _ = digest.sha256_bytes();
        let _ = digest.tag_stem();
    }
    let _ = predicate_type(text);
    if let Ok(bundle) = RekorBundle::parse(text) {
        let _ = bundle.to_log_entry();
    }
    let _ = check_realm(text, "registry.example.com", "https");
    let _ = check_realm(text, "localhost:5000", "http");
}

fn check_header(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("link", value);
    let _ = next_link(&headers, "https://registry.example.com");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_json(data) {
        // The client pushes manifests it re-serialised (attachments): they must parse.
        Manifest::from_json(&manifest.to_json()).expect("a serialised manifest parses");
    }
    if let Ok(mut index) = Index::from_json(data) {
        Index::from_json(&index.to_json()).expect("a serialised index parses");
        index.add_unique(Descriptor::new("application/vnd.oci.empty.v1+json", b"{}"));
    }
    let _ = declared_media_type(data);
    let _ = SimpleSigning::parse(data);
    if let Ok(statement) = Statement::parse(data) {
        let _ = statement.names_sha256(&SOME_DIGEST[7..]);
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let _ = pae(&envelope.payload_type, &envelope.payload);
    }
    check_header(data);
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
});

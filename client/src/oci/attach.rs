//! Writing signatures and attestations next to an image, in the layout cosign v3 writes
//! (a bundle per signature, stored as an OCI 1.1 referrer, with the referrers tag schema
//! where the registry has no referrers API) or, when asked, cosign's legacy tags.
//!
//! The referrers tag index and the legacy `.sig`/`.att` manifests are read-modify-write
//! under a tag, and registries do not offer compare-and-swap on tags. Two signers can each
//! read the old state and the later write would drop the earlier one's entry. So a writer
//! re-reads after writing and only stops when two reads, spaced wider than one of its own
//! read-write cycles, both show its entry; otherwise it adds it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sigil_proto::cosign::{self, LegacyLayer};
use sigil_proto::oci::{self, Descriptor, Digest, Index, LegacyTag, Manifest};

use super::reference::ImageRef;
use super::registry::{Registry, RegistryError};

/// Read-modify-write rounds before giving up on a contended tag.
const MAX_ROUNDS: u32 = 12;
/// cosign refuses to grow a legacy signature image beyond this many layers.
const MAX_LEGACY_LAYERS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("tag {tag} holds something other than {expected}: {detail}")]
    Occupied {
        tag: String,
        expected: &'static str,
        detail: String,
    },
    #[error("gave up adding to {tag} after {MAX_ROUNDS} rounds: other writers kept replacing it{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Contended {
        tag: String,
        last_error: Option<RegistryError>,
    },
    #[error("{tag} already has {MAX_LEGACY_LAYERS} layers; cosign's layout allows no more")]
    Full { tag: String },
}

/// Where an attachment ended up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attached {
    /// The referrer manifest, or the legacy tag's manifest after the write.
    pub reference: String,
    pub layout: &'static str,
}

/// A Sigstore bundle for `subject` (an image manifest or index, by digest).
pub struct BundleAttachment<'a> {
    pub bundle_json: &'a [u8],
    /// `dsse-envelope` or `message-signature`.
    pub content: &'a str,
    pub predicate_type: &'a str,
    /// RFC 3339, whole seconds, UTC.
    pub created: &'a str,
}

/// Stores a bundle as a referrer of `subject`: blobs first (`{}` and the bundle), then the
/// manifest by digest; then, if the registry has no referrers API, the tag schema index.
pub async fn attach_bundle(
    registry: &Registry,
    subject_ref: &ImageRef,
    subject: &Descriptor,
    attachment: &BundleAttachment<'_>,
) -> Result<Attached, AttachError> {
    registry.push_blob(subject_ref, oci::EMPTY_CONTENT).await?;
    registry
        .push_blob(subject_ref, attachment.bundle_json)
        .await?;
    let manifest = cosign::bundle_referrer_manifest(
        subject,
        attachment.bundle_json,
        attachment.content,
        attachment.predicate_type,
        attachment.created,
    );
    let manifest_json = manifest.to_json();
    let digest = registry
        .push_manifest(
            &subject_ref.at_digest(&Digest::sha256_of(&manifest_json)),
            &manifest_json,
            oci::MANIFEST_V1,
        )
        .await?;
    let referrer = subject_ref.at_digest(&digest).to_string();
    if registry.has_referrers_api(subject_ref).await? {
        return Ok(Attached {
            reference: referrer,
            layout: "referrers-api",
        });
    }
    let entry = cosign::referrer_index_entry(&manifest, &manifest_json);
    add_to_tag_index(registry, subject_ref, &subject.digest, entry).await?;
    Ok(Attached {
        reference: referrer,
        layout: "referrers-tag-schema",
    })
}

/// Spacing of the confirming re-reads: wider than a read-write cycle of this writer, so
/// that a competitor that read before our write has written by the time we look again.
fn settle_time(cycle: Duration) -> Duration {
    let jitter = Duration::from_millis(u64::from(rand::random::<u8>() % 20));
    (cycle * 3).clamp(Duration::from_millis(20), Duration::from_secs(2)) + jitter
}

/// Adds `entry` to the referrers tag schema index of `subject`.
pub async fn add_to_tag_index(
    registry: &Registry,
    subject_ref: &ImageRef,
    subject: &Digest,
    entry: Descriptor,
) -> Result<(), AttachError> {
    let tag = &subject_ref.at_tag(&subject.tag_stem());
    let entry = &entry;
    converge(&tag.to_string(), |_| async move {
        let current = match registry.manifest(tag).await? {
            None => Index::empty(),
            Some(f) => Index::from_json(&f.bytes).map_err(|e| AttachError::Occupied {
                tag: tag.to_string(),
                expected: "an image index",
                detail: e.to_string(),
            })?,
        };
        let mut next = current.clone();
        if !next.add_unique(entry.clone()) {
            return Ok(Round::Present);
        }
        registry
            .push_manifest(tag, &next.to_json(), oci::INDEX_V1)
            .await?;
        Ok(Round::Written)
    })
    .await
}

enum Round {
    /// Our entry was there when read.
    Present,
    /// It was not; we wrote it.
    Written,
}

/// A failure another writer can cause and a later round can get past: registries answer
/// concurrent writes of one tag with 5xx (distribution 2.8 does, from its filesystem driver).
fn transient(e: &AttachError) -> bool {
    matches!(
        e,
        AttachError::Registry(RegistryError::Http { status, .. }) if *status >= 500
    ) || matches!(e, AttachError::Registry(RegistryError::Request { .. }))
}

/// Runs read-modify-write rounds until two spaced reads in a row find our entry.
async fn converge<F, Fut>(tag: &str, mut round: F) -> Result<(), AttachError>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Round, AttachError>>,
{
    let mut confirmations = 0;
    let mut cycle = Duration::from_millis(5);
    let mut last_error = None;
    for n in 0..MAX_ROUNDS * 2 {
        let started = Instant::now();
        match round(n).await {
            Ok(Round::Present) => {
                confirmations += 1;
                if confirmations >= 2 {
                    return Ok(());
                }
            }
            Ok(Round::Written) => {
                confirmations = 0;
                cycle = started.elapsed();
            }
            Err(e) if transient(&e) => {
                confirmations = 0;
                if let AttachError::Registry(e) = e {
                    last_error = Some(e);
                }
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(settle_time(cycle)).await;
    }
    Err(AttachError::Contended {
        tag: tag.to_string(),
        last_error,
    })
}

/// One layer of a legacy `.sig`/`.att` image.
pub struct LegacyAttachment<'a> {
    pub payload: &'a [u8],
    pub media_type: &'a str,
    pub layer: LegacyLayer<'a>,
}

/// Appends a layer to `subject`'s legacy tag (`sha256-<hex>.sig` or `.att`), keeping the
/// layers already there. The same payload with the same signature is not added twice.
pub async fn attach_legacy(
    registry: &Registry,
    subject_ref: &ImageRef,
    subject: &Digest,
    kind: LegacyTag,
    attachment: &LegacyAttachment<'_>,
) -> Result<Attached, AttachError> {
    registry.push_blob(subject_ref, attachment.payload).await?;
    let mut ours = Descriptor::new(attachment.media_type, attachment.payload);
    let annotations: BTreeMap<String, String> = attachment.layer.annotations();
    ours.annotations = Some(annotations);
    append_legacy_layers(registry, subject_ref, subject, kind, &[ours]).await
}

/// Whether two legacy layers are the same signature: one payload, one signature, one signer.
fn same_layer(a: &Descriptor, b: &Descriptor) -> bool {
    a.digest == b.digest
        && a.annotation(cosign::ANNOTATION_SIGNATURE) == b.annotation(cosign::ANNOTATION_SIGNATURE)
        && a.annotation(cosign::ANNOTATION_CERTIFICATE)
            == b.annotation(cosign::ANNOTATION_CERTIFICATE)
}

/// Adds `layers` (whose blobs are already in the repository) to `subject`'s legacy tag of
/// `kind`, keeping what is there and skipping layers it already has.
pub async fn append_legacy_layers(
    registry: &Registry,
    subject_ref: &ImageRef,
    subject: &Digest,
    kind: LegacyTag,
    layers: &[Descriptor],
) -> Result<Attached, AttachError> {
    let tag = &subject_ref.at_tag(&kind.tag_for(subject));
    converge(&tag.to_string(), |_| async move {
        let existing = match registry.manifest(tag).await? {
            None => Vec::new(),
            Some(f) => {
                Manifest::from_json(&f.bytes)
                    .map_err(|e| AttachError::Occupied {
                        tag: tag.to_string(),
                        expected: "an image manifest",
                        detail: e.to_string(),
                    })?
                    .layers
            }
        };
        let missing: Vec<&Descriptor> = layers
            .iter()
            .filter(|l| !existing.iter().any(|e| same_layer(e, l)))
            .collect();
        if missing.is_empty() {
            return Ok(Round::Present);
        }
        if existing.len() + missing.len() > MAX_LEGACY_LAYERS {
            return Err(AttachError::Full {
                tag: tag.to_string(),
            });
        }
        let mut next = existing;
        next.extend(missing.into_iter().cloned());
        let (manifest, config) = cosign::legacy_manifest(next);
        registry.push_blob(subject_ref, &config).await?;
        registry
            .push_manifest(tag, &manifest.to_json(), oci::MANIFEST_V1)
            .await?;
        Ok(Round::Written)
    })
    .await?;
    Ok(Attached {
        reference: tag.to_string(),
        layout: "legacy-tags",
    })
}

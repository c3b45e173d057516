//! Finding what is attached to an image, in every layout cosign has written: bundles as
//! OCI 1.1 referrers (listed by the referrers API or the referrers tag schema), cosign's
//! older referrer mode (simple-signing layers as referrers), and the legacy `.sig`, `.att`
//! and `.sbom` tags.
//!
//! Every manifest and blob is fetched by digest and checked against it. One attachment
//! that cannot be fetched or parsed is recorded with the reason and does not hide the rest.

use futures_util::future::join_all;
use sigil_proto::cosign;
use sigil_proto::oci::{Descriptor, Digest, LegacyTag, Manifest};

use super::reference::ImageRef;
use super::registry::{MAX_ATTACHMENT_BYTES, Referrers, ReferrersSource, Registry, RegistryError};

/// Referrers examined at most per image (each costs a manifest fetch).
const MAX_REFERRERS: usize = 1000;

/// A Sigstore bundle stored as a referrer.
#[derive(Clone, Debug)]
pub struct FoundBundle {
    /// The referrer manifest's descriptor as listed.
    pub referrer: Descriptor,
    pub source: ReferrersSource,
    pub manifest: Manifest,
    pub bundle_json: Vec<u8>,
}

/// A signature or attestation layer in cosign's legacy formats.
#[derive(Clone, Debug)]
pub struct FoundLegacy {
    pub kind: LegacyTag,
    /// Where it was found: the tag, or the referrer manifest for cosign's older referrer mode.
    pub origin: String,
    pub layer: Descriptor,
    pub payload: Vec<u8>,
}

/// A referrer that is not a signature or attestation sigil understands (an SBOM, another
/// tool's artifact): listed, not verified.
#[derive(Clone, Debug)]
pub struct OtherReferrer {
    pub referrer: Descriptor,
    pub source: ReferrersSource,
    pub artifact_type: Option<String>,
}

/// Something that was listed but could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

#[derive(Clone, Debug, Default)]
pub struct Discovered {
    pub bundles: Vec<FoundBundle>,
    pub legacy: Vec<FoundLegacy>,
    pub other: Vec<OtherReferrer>,
    pub skipped: Vec<Skipped>,
    /// Legacy tags that exist, with their manifest digests.
    pub legacy_tags: Vec<(LegacyTag, String)>,
    /// Whether the registry answered the referrers API.
    pub referrers_api: bool,
    /// Whether the referrers tag schema index exists.
    pub referrers_tag: bool,
}

/// What to look for.
#[derive(Clone, Copy, Debug)]
pub struct Want<'a> {
    pub referrers: bool,
    pub legacy: &'a [LegacyTag],
    /// Download legacy layers and bundles (false: list only, for `tree`).
    pub contents: bool,
}

fn skipped(what: impl Into<String>, why: impl std::fmt::Display) -> Skipped {
    Skipped {
        what: what.into(),
        why: why.to_string(),
    }
}

/// Everything attached to `subject` (which must name a digest).
pub async fn discover(
    registry: &Registry,
    subject: &ImageRef,
    want: Want<'_>,
) -> Result<Discovered, RegistryError> {
    let digest = subject
        .digest()
        .cloned()
        .ok_or_else(|| RegistryError::Malformed {
            what: subject.to_string(),
            detail: "attachments are found for a digest, not a tag".into(),
        })?;
    let mut found = Discovered::default();
    // The referrers listing and every legacy tag are independent reads: issue them together.
    let referrers = async {
        if want.referrers {
            Some(registry.referrers(subject).await)
        } else {
            None
        }
    };
    let legacy = join_all(
        want.legacy
            .iter()
            .map(|kind| read_legacy_tag(registry, subject, &digest, *kind, want.contents)),
    );
    let (referrers, legacy) = futures_util::join!(referrers, legacy);
    if let Some(referrers) = referrers {
        let referrers = referrers?;
        found.referrers_api = referrers.api.is_some();
        found.referrers_tag = referrers.tag_schema.is_some();
        read_referrers(
            registry,
            subject,
            &digest,
            &referrers,
            want.contents,
            &mut found,
        )
        .await;
    }
    for part in legacy {
        let part = part?;
        found.legacy_tags.extend(part.legacy_tags);
        found.legacy.extend(part.legacy);
        found.skipped.extend(part.skipped);
    }
    Ok(found)
}

/// One referrer, read: its manifest and, for a bundle, the bundle.
enum Read {
    Bundle(Box<FoundBundle>),
    Legacy(Discovered),
    Other(OtherReferrer),
    Skipped(Skipped),
}

async fn read_referrers(
    registry: &Registry,
    subject: &ImageRef,
    digest: &Digest,
    referrers: &Referrers,
    contents: bool,
    found: &mut Discovered,
) {
    let listed = referrers.all();
    if listed.len() > MAX_REFERRERS {
        found.skipped.push(skipped(
            format!("referrers of {subject}"),
            format!(
                "{} listed; only the first {MAX_REFERRERS} are examined",
                listed.len()
            ),
        ));
    }
    // Each referrer's manifest and then its bundle, all referrers at once: on a registry
    // that takes milliseconds per request, one chain at a time is what makes verification slow.
    let reads = listed
        .iter()
        .take(MAX_REFERRERS)
        .map(|(source, d)| read_referrer(registry, subject, digest, *source, d, contents));
    for read in join_all(reads).await {
        match read {
            Read::Bundle(b) => found.bundles.push(*b),
            Read::Legacy(d) => {
                found.legacy.extend(d.legacy);
                found.skipped.extend(d.skipped);
            }
            Read::Other(o) => found.other.push(o),
            Read::Skipped(s) => found.skipped.push(s),
        }
    }
}

async fn read_referrer(
    registry: &Registry,
    subject: &ImageRef,
    digest: &Digest,
    source: ReferrersSource,
    referrer: &Descriptor,
    contents: bool,
) -> Read {
    let what = format!("referrer {}", referrer.digest);
    let manifest = match registry
        .require_manifest(&subject.at_digest(&referrer.digest))
        .await
        .and_then(|f| {
            Manifest::from_json(&f.bytes).map_err(|e| RegistryError::Malformed {
                what: what.clone(),
                detail: e.to_string(),
            })
        }) {
        Ok(m) => m,
        Err(e) => return Read::Skipped(skipped(what, e)),
    };
    // A tag schema index is anyone's to write: a listed manifest must name this image as its
    // subject, or it is about something else.
    match &manifest.subject {
        Some(s) if s.digest == *digest => {}
        Some(s) => {
            return Read::Skipped(skipped(
                what,
                format!("its subject is {}, not {digest}", s.digest),
            ));
        }
        None => {
            return Read::Skipped(skipped(
                what,
                "it names no subject, so it refers to nothing",
            ));
        }
    }
    let artifact_type = manifest
        .artifact_type
        .clone()
        .or_else(|| Some(manifest.config.media_type.clone()));
    let bundle_layer = match manifest.layers.as_slice() {
        [only]
            if only
                .media_type
                .starts_with(cosign::BUNDLE_MEDIA_TYPE_PREFIX) =>
        {
            Some(only.clone())
        }
        _ => None,
    };
    if let Some(layer) = bundle_layer {
        let bundle_json = if contents {
            match registry.blob(subject, &layer, MAX_ATTACHMENT_BYTES).await {
                Ok(b) => b,
                Err(e) => return Read::Skipped(skipped(what, e)),
            }
        } else {
            Vec::new()
        };
        Read::Bundle(Box::new(FoundBundle {
            referrer: referrer.clone(),
            source,
            manifest,
            bundle_json,
        }))
    } else if artifact_type.as_deref() == Some(cosign::LEGACY_REFERRER_ARTIFACT_TYPE) {
        let mut part = Discovered::default();
        let origin = format!("referrer {}", referrer.digest);
        read_layers(
            registry,
            subject,
            LegacyTag::Signatures,
            &origin,
            &manifest.layers,
            contents,
            &mut part,
        )
        .await;
        Read::Legacy(part)
    } else {
        Read::Other(OtherReferrer {
            referrer: referrer.clone(),
            source,
            artifact_type,
        })
    }
}

/// One legacy tag, read into a part of the result.
async fn read_legacy_tag(
    registry: &Registry,
    subject: &ImageRef,
    digest: &Digest,
    kind: LegacyTag,
    contents: bool,
) -> Result<Discovered, RegistryError> {
    let mut found = Discovered::default();
    let tag = subject.at_tag(&kind.tag_for(digest));
    let Some(fetched) = registry.manifest(&tag).await? else {
        return Ok(found);
    };
    found.legacy_tags.push((kind, fetched.digest.to_string()));
    let manifest = match Manifest::from_json(&fetched.bytes) {
        Ok(m) => m,
        Err(e) => {
            found.skipped.push(skipped(tag.to_string(), e));
            return Ok(found);
        }
    };
    read_layers(
        registry,
        subject,
        kind,
        &tag.to_string(),
        &manifest.layers,
        contents,
        &mut found,
    )
    .await;
    Ok(found)
}

async fn read_layers(
    registry: &Registry,
    subject: &ImageRef,
    kind: LegacyTag,
    origin: &str,
    layers: &[Descriptor],
    contents: bool,
    found: &mut Discovered,
) {
    let fetches = layers.iter().map(|layer| async move {
        let payload = if contents {
            registry.blob(subject, layer, MAX_ATTACHMENT_BYTES).await
        } else {
            Ok(Vec::new())
        };
        (layer.clone(), payload)
    });
    for (layer, payload) in join_all(fetches).await {
        match payload {
            Ok(payload) => found.legacy.push(FoundLegacy {
                kind,
                origin: origin.to_string(),
                layer,
                payload,
            }),
            Err(e) => found
                .skipped
                .push(skipped(format!("layer {} of {origin}", layer.digest), e)),
        }
    }
}

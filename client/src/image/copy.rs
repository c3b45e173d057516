//! Copying an image with its signatures and attestations to another repository (promotion
//! between environments): every manifest of the image (an index and its platforms), their
//! blobs, the referrers of each, and cosign's legacy `.sig`/`.att`/`.sbom` tags.
//!
//! Nothing is re-signed: a signature names a digest, and the digests do not change. Blobs
//! stream between registries (or are mounted within one), so large layers never sit in memory.

use serde::Serialize;
use sigil_proto::oci::{self, Descriptor, Digest, LegacyTag, Manifest};

use super::{Target, TargetError, resolve_recursive};
use crate::oci::attach::{AttachError, add_to_tag_index, append_legacy_layers};
use crate::oci::{ImageRef, Registry, RegistryError};

/// What to copy besides the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// The image's manifests and blobs.
    Image,
    /// OCI 1.1 referrers (bundle signatures and attestations, SBOMs, other artifacts).
    Referrers,
    /// cosign's legacy `.sig` tag.
    Signatures,
    /// cosign's legacy `.att` tag.
    Attestations,
    /// cosign's legacy `.sbom` tag.
    Sboms,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Image,
        Part::Referrers,
        Part::Signatures,
        Part::Attestations,
        Part::Sboms,
    ];

    fn legacy(self) -> Option<LegacyTag> {
        match self {
            Part::Signatures => Some(LegacyTag::Signatures),
            Part::Attestations => Some(LegacyTag::Attestations),
            Part::Sboms => Some(LegacyTag::Sboms),
            Part::Image | Part::Referrers => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error("{tag} already names {existing}, not {copied}; pass --force to move it")]
    TagExists {
        tag: String,
        existing: String,
        copied: String,
    },
    #[error("{what} is not valid: {detail}")]
    Malformed { what: String, detail: String },
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    pub digest: String,
    pub manifests: usize,
    pub referrers: usize,
    pub legacy_tags: Vec<String>,
    pub tag: Option<String>,
}

fn malformed(what: impl Into<String>, e: impl std::fmt::Display) -> CopyError {
    CopyError::Malformed {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// Copies the blobs a manifest or index names (an index names manifests, copied on their
/// own) and then the manifest itself, by digest.
async fn copy_manifest(
    registry: &Registry,
    from: &ImageRef,
    to: &ImageRef,
    digest: &Digest,
) -> Result<Descriptor, CopyError> {
    let fetched = registry.require_manifest(&from.at_digest(digest)).await?;
    if !oci::is_index_media_type(&fetched.media_type) {
        let manifest = Manifest::from_json(&fetched.bytes)
            .map_err(|e| malformed(format!("manifest {digest}"), e))?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            registry.copy_blob(from, to, blob).await?;
        }
    }
    registry
        .push_manifest(&to.at_digest(digest), &fetched.bytes, &fetched.media_type)
        .await?;
    Ok(fetched.descriptor())
}

/// Copies `source` (tag or digest) to the repository of `destination`, with the parts in
/// `parts`. The tag is `destination`'s, else `source`'s; an existing tag that names other
/// content is only moved with `force`.
pub async fn copy(
    registry: &Registry,
    source: &ImageRef,
    destination: &ImageRef,
    parts: &[Part],
    force: bool,
) -> Result<CopyReport, CopyError> {
    let targets: Vec<Target> = resolve_recursive(registry, source).await?;
    let root = targets[0].descriptor.digest.clone();
    let mut report = CopyReport {
        source: source.to_string(),
        destination: destination.to_string(),
        digest: root.to_string(),
        ..CopyReport::default()
    };
    let tag = destination.explicit_tag().map(str::to_string).or_else(|| {
        source
            .digest()
            .is_none()
            .then(|| source.tag().unwrap_or("latest").to_string())
    });
    let dst_tag = tag.as_ref().map(|t| destination.at_tag(t));
    if parts.contains(&Part::Image)
        && let Some(dst_tag) = &dst_tag
        && let Some(existing) = registry.manifest(dst_tag).await?
        && existing.digest != root
        && !force
    {
        return Err(CopyError::TagExists {
            tag: dst_tag.to_string(),
            existing: existing.digest.to_string(),
            copied: root.to_string(),
        });
    }
    // Platform manifests before the index that lists them: registries refuse an index
    // whose manifests they do not have.
    if parts.contains(&Part::Image) {
        for target in targets.iter().rev() {
            copy_manifest(registry, source, destination, &target.descriptor.digest).await?;
            report.manifests += 1;
        }
    }
    for target in &targets {
        let digest = &target.descriptor.digest;
        if parts.contains(&Part::Referrers) {
            report.referrers += copy_referrers(registry, source, destination, digest).await?;
        }
        for part in parts {
            let Some(kind) = part.legacy() else { continue };
            if let Some(tag) = copy_legacy(registry, source, destination, digest, kind).await? {
                report.legacy_tags.push(tag);
            }
        }
    }
    if parts.contains(&Part::Image)
        && let Some(dst_tag) = dst_tag
    {
        let fetched = registry.require_manifest(&source.at_digest(&root)).await?;
        registry
            .push_manifest(&dst_tag, &fetched.bytes, &fetched.media_type)
            .await?;
        report.tag = Some(dst_tag.to_string());
    }
    Ok(report)
}

/// Every referrer of `digest` (from the API and the tag schema), with its blobs; listed in
/// the destination's tag schema index when the destination has no referrers API.
async fn copy_referrers(
    registry: &Registry,
    from: &ImageRef,
    to: &ImageRef,
    digest: &Digest,
) -> Result<usize, CopyError> {
    let referrers = registry.referrers(&from.at_digest(digest)).await?;
    let listed: Vec<Descriptor> = referrers
        .all()
        .into_iter()
        .map(|(_, d)| d.clone())
        .collect();
    if listed.is_empty() {
        return Ok(0);
    }
    let mut copied = Vec::new();
    for descriptor in &listed {
        let fetched = registry
            .require_manifest(&from.at_digest(&descriptor.digest))
            .await?;
        let manifest = Manifest::from_json(&fetched.bytes)
            .map_err(|e| malformed(format!("referrer {}", descriptor.digest), e))?;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            registry.copy_blob(from, to, blob).await?;
        }
        registry
            .push_manifest(
                &to.at_digest(&descriptor.digest),
                &fetched.bytes,
                &fetched.media_type,
            )
            .await?;
        let mut entry = fetched.descriptor();
        entry.artifact_type = manifest
            .artifact_type
            .clone()
            .or_else(|| Some(manifest.config.media_type.clone()));
        entry.annotations = manifest.annotations.clone();
        copied.push(entry);
    }
    let subject = to.at_digest(digest);
    if !registry.has_referrers_api(&subject).await? {
        for entry in copied.iter().cloned() {
            add_to_tag_index(registry, &subject, digest, entry).await?;
        }
    }
    Ok(copied.len())
}

/// One legacy tag of `digest`, merged into the destination's tag of the same name.
async fn copy_legacy(
    registry: &Registry,
    from: &ImageRef,
    to: &ImageRef,
    digest: &Digest,
    kind: LegacyTag,
) -> Result<Option<String>, CopyError> {
    let tag = kind.tag_for(digest);
    let Some(fetched) = registry.manifest(&from.at_tag(&tag)).await? else {
        return Ok(None);
    };
    let manifest = Manifest::from_json(&fetched.bytes)
        .map_err(|e| malformed(from.at_tag(&tag).to_string(), e))?;
    for layer in &manifest.layers {
        registry.copy_blob(from, to, layer).await?;
    }
    let attached = append_legacy_layers(
        registry,
        &to.at_digest(digest),
        digest,
        kind,
        &manifest.layers,
    )
    .await?;
    Ok(Some(attached.reference))
}

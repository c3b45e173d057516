//! Signing and verifying container images: what gets signed (a digest, resolved once from a
//! tag), who signs (an ephemeral key certified by the CA, or a managed key), and what is
//! written and read in the registry (`crate::oci`).

pub mod copy;
pub mod sign;
pub mod verify;

use sigil_proto::oci::{self, Descriptor, Index};
use sigil_proto::trust::TrustedRoot;

use crate::keys::SigningKey;
use crate::oci::{ImageRef, Registry, RegistryError};
use crate::sign::{
    Certified, SignError, SignedBundle, sign_blob_keyed, sign_digest_certified,
    sign_statement_certified, sign_statement_keyed,
};

/// An image manifest or index to sign, pinned to its digest.
#[derive(Clone, Debug)]
pub struct Target {
    /// The repository at the digest.
    pub image: ImageRef,
    /// The manifest's descriptor (media type from the registry, digest, size).
    pub descriptor: Descriptor,
    /// The tag it was resolved from, if the user named a tag.
    pub from_tag: Option<String>,
    /// For a platform manifest of an index: its platform.
    pub platform: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{image}: {detail}")]
    Unsupported { image: String, detail: String },
}

/// Resolves `image` (tag or digest) to the digest of what the registry holds now. A digest
/// reference is fetched too, so that a digest the registry does not have is an error here,
/// not a dangling signature.
pub async fn resolve(registry: &Registry, image: &ImageRef) -> Result<Target, TargetError> {
    let fetched = registry.require_manifest(image).await?;
    if !oci::MANIFEST_MEDIA_TYPES.contains(&fetched.media_type.as_str()) {
        return Err(TargetError::Unsupported {
            image: image.to_string(),
            detail: format!(
                "media type {} is not an image manifest or index",
                fetched.media_type
            ),
        });
    }
    if fetched.digest.sha256_bytes().is_none() {
        return Err(TargetError::Unsupported {
            image: image.to_string(),
            detail: "only sha256 image digests can be signed".into(),
        });
    }
    Ok(Target {
        image: image.at_digest(&fetched.digest),
        descriptor: fetched.descriptor(),
        from_tag: image
            .digest()
            .is_none()
            .then(|| image.tag().unwrap_or("latest").to_string()),
        platform: None,
    })
}

/// The index first, then every manifest it lists (recursing into nested indexes), as
/// `cosign sign --recursive` signs them. A plain manifest is just itself.
pub async fn resolve_recursive(
    registry: &Registry,
    image: &ImageRef,
) -> Result<Vec<Target>, TargetError> {
    let top = resolve(registry, image).await?;
    let mut out = vec![top];
    let mut next = 0;
    while next < out.len() {
        let current = out[next].clone();
        next += 1;
        if !oci::is_index_media_type(&current.descriptor.media_type) {
            continue;
        }
        let fetched = registry.require_manifest(&current.image).await?;
        let index = Index::from_json(&fetched.bytes).map_err(|e| TargetError::Unsupported {
            image: current.image.to_string(),
            detail: e.to_string(),
        })?;
        for child in &index.manifests {
            if !oci::MANIFEST_MEDIA_TYPES.contains(&child.media_type.as_str()) {
                return Err(TargetError::Unsupported {
                    image: current.image.to_string(),
                    detail: format!(
                        "lists {} of unknown media type {}",
                        child.digest, child.media_type
                    ),
                });
            }
            if out.iter().any(|t| t.descriptor.digest == child.digest) {
                continue;
            }
            let mut target = resolve(registry, &current.image.at_digest(&child.digest)).await?;
            target.platform = child.platform.as_ref().map(|p| p.to_string());
            out.push(target);
        }
    }
    Ok(out)
}

/// Who signs: an ephemeral key the CA certified (one certificate for every target of a
/// command), or a managed key.
pub enum ImageSigner<'a> {
    Keyless {
        certified: Certified,
        rekor_url: String,
        trusted_root: &'a TrustedRoot,
    },
    Keyed {
        key: &'a SigningKey,
        rekor_url: String,
        trusted_root: Option<&'a TrustedRoot>,
    },
}

impl ImageSigner<'_> {
    /// A DSSE envelope over an in-toto statement, logged as dsse.
    pub async fn sign_statement(
        &self,
        http: &reqwest::Client,
        statement: &[u8],
    ) -> Result<SignedBundle, SignError> {
        match self {
            ImageSigner::Keyless {
                certified,
                rekor_url,
                trusted_root,
            } => {
                sign_statement_certified(http, statement, certified, rekor_url, trusted_root).await
            }
            ImageSigner::Keyed {
                key,
                rekor_url,
                trusted_root,
            } => sign_statement_keyed(http, statement, key, rekor_url, *trusted_root).await,
        }
    }

    /// A plain signature over `payload` (its SHA-256), logged as hashedrekord: cosign's
    /// legacy image signatures.
    pub async fn sign_payload(
        &self,
        http: &reqwest::Client,
        payload: &[u8],
    ) -> Result<SignedBundle, SignError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        match self {
            ImageSigner::Keyless {
                certified,
                rekor_url,
                trusted_root,
            } => sign_digest_certified(http, sha256, certified, rekor_url, trusted_root).await,
            ImageSigner::Keyed {
                key,
                rekor_url,
                trusted_root,
            } => sign_blob_keyed(http, sha256, key, rekor_url, *trusted_root).await,
        }
    }

    /// PEM of the signing certificate (keyless) for the legacy layout's annotation.
    pub fn certificate_pem(&self) -> Option<&str> {
        match self {
            ImageSigner::Keyless { certified, .. } => Some(certified.leaf_pem()),
            ImageSigner::Keyed { .. } => None,
        }
    }
}

/// Now as RFC 3339 in whole seconds, UTC (`org.opencontainers.image.created`, cosign's
/// `custom` predicate timestamp).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

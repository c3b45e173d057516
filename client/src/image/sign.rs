//! Signing and attesting an image: the statement or payload, the signature and log entry,
//! and the attachment in the chosen layout.

use std::collections::BTreeMap;

use serde::Serialize;
use sigil_proto::cosign::{self, LegacyLayer, RekorBundle, SimpleSigning};
use sigil_proto::oci::LegacyTag;

use super::{ImageSigner, Target, now_rfc3339};
use crate::keys::encode_pem;
use crate::oci::Registry;
use crate::oci::attach::{
    AttachError, Attached, BundleAttachment, LegacyAttachment, attach_bundle, attach_legacy,
};
use crate::sign::{SignError, SignedBundle, SignedBy};

/// Where signatures go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// A bundle per signature as an OCI 1.1 referrer (cosign v3's default), with the
    /// referrers tag schema where the registry has no referrers API.
    Referrers,
    /// cosign's `sha256-<hex>.sig` / `.att` tags.
    LegacyTags,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageSignError {
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("attaching to the image failed: {0}")]
    Attach(#[from] AttachError),
}

/// Where and whether a signature is stored.
#[derive(Clone, Copy, Debug)]
pub struct Publish {
    pub layout: Layout,
    /// `false`: sign and log, but leave the registry alone (`--upload=false`).
    pub upload: bool,
}

/// What one signature or attestation of one image produced.
#[derive(Clone, Debug)]
pub struct SignedImage {
    pub target: Target,
    pub signed: SignedBundle,
    /// Where it was stored; `None` with `--upload=false`.
    pub attached: Option<Attached>,
    pub layout: Layout,
}

/// A DSSE bundle stored as a referrer of `target`.
async fn store_bundle(
    registry: &Registry,
    target: &Target,
    signed: &SignedBundle,
    predicate_type: &str,
) -> Result<Attached, AttachError> {
    let bundle_json = signed.bundle.to_json();
    attach_bundle(
        registry,
        &target.image,
        &target.descriptor,
        &BundleAttachment {
            bundle_json: bundle_json.as_bytes(),
            content: "dsse-envelope",
            predicate_type,
            created: &now_rfc3339(),
        },
    )
    .await
}

fn legacy_bundle_annotation(signed: &SignedBundle) -> Option<RekorBundle> {
    signed
        .bundle
        .verification_material
        .tlog_entries
        .first()
        .and_then(RekorBundle::from_log_entry)
}

fn certificate_pem(signed: &SignedBundle, signer: &ImageSigner<'_>) -> Option<String> {
    match &signed.signed_by {
        SignedBy::Certificate { .. } => {
            signer.certificate_pem().map(str::to_string).or_else(|| {
                match &signed.bundle.verification_material.content {
                    sigil_proto::bundle::VerificationContent::Certificate(der) => {
                        Some(encode_pem("CERTIFICATE", der))
                    }
                    _ => None,
                }
            })
        }
        SignedBy::Key { .. } => None,
    }
}

/// Signs `target` with `annotations` (cosign's `-a`), storing the signature as `publish` says.
pub async fn sign_image(
    http: &reqwest::Client,
    registry: &Registry,
    target: &Target,
    signer: &ImageSigner<'_>,
    annotations: &BTreeMap<String, String>,
    publish: Publish,
) -> Result<SignedImage, ImageSignError> {
    let Publish { layout, upload } = publish;
    let digest = &target.descriptor.digest;
    let (signed, attached) = match layout {
        Layout::Referrers => {
            let statement = cosign::image_signature_statement(digest, annotations).to_json();
            let signed = signer.sign_statement(http, &statement).await?;
            let attached = if upload {
                Some(store_bundle(registry, target, &signed, cosign::SIGN_PREDICATE_TYPE).await?)
            } else {
                None
            };
            (signed, attached)
        }
        Layout::LegacyTags => {
            let payload = SimpleSigning::new(&target.image.name(), digest, annotations).to_json();
            let signed = signer.sign_payload(http, &payload).await?;
            let attached = if upload {
                let signature = match &signed.bundle.content {
                    sigil_proto::bundle::SignatureContent::MessageSignature(m) => {
                        sigil_proto::encoding::encode_base64(&m.signature)
                    }
                    sigil_proto::bundle::SignatureContent::DsseEnvelope(_) => String::new(),
                };
                let cert = certificate_pem(&signed, signer);
                let rekor = legacy_bundle_annotation(&signed);
                Some(
                    attach_legacy(
                        registry,
                        &target.image,
                        digest,
                        LegacyTag::Signatures,
                        &LegacyAttachment {
                            payload: &payload,
                            media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE,
                            layer: LegacyLayer {
                                signature_b64: &signature,
                                certificate_pem: cert.as_deref(),
                                rekor_bundle: rekor.as_ref(),
                                predicate_type: None,
                            },
                        },
                    )
                    .await?,
                )
            } else {
                None
            };
            (signed, attached)
        }
    };
    Ok(SignedImage {
        target: target.clone(),
        signed,
        attached,
        layout,
    })
}

/// Attests `target`: an in-toto statement (cosign's shape: v0.1, subject named after the
/// repository) with `predicate_type` and `predicate`, signed as DSSE.
pub async fn attest_image(
    http: &reqwest::Client,
    registry: &Registry,
    target: &Target,
    signer: &ImageSigner<'_>,
    predicate_type: &str,
    predicate: serde_json::Value,
    publish: Publish,
) -> Result<SignedImage, ImageSignError> {
    let Publish { layout, upload } = publish;
    let digest = &target.descriptor.digest;
    let statement = cosign::attestation_statement(
        &target.image.name(),
        digest.hex(),
        predicate_type,
        predicate,
    )
    .to_json();
    let signed = signer.sign_statement(http, &statement).await?;
    let attached = match (upload, layout) {
        (false, _) => None,
        (true, Layout::Referrers) => {
            Some(store_bundle(registry, target, &signed, predicate_type).await?)
        }
        (true, Layout::LegacyTags) => {
            let sigil_proto::bundle::SignatureContent::DsseEnvelope(envelope) =
                &signed.bundle.content
            else {
                return Err(SignError::Statement(
                    "the signed statement is not a DSSE envelope".into(),
                )
                .into());
            };
            // The layer must be the very bytes that were logged: cosign compares the
            // entry's envelope hash with the layer's digest.
            let envelope_json = serde_json::to_vec(envelope).expect("envelopes serialise");
            let cert = certificate_pem(&signed, signer);
            let rekor = legacy_bundle_annotation(&signed);
            Some(
                attach_legacy(
                    registry,
                    &target.image,
                    digest,
                    LegacyTag::Attestations,
                    &LegacyAttachment {
                        payload: &envelope_json,
                        media_type: cosign::DSSE_LAYER_MEDIA_TYPE,
                        layer: LegacyLayer {
                            signature_b64: "",
                            certificate_pem: cert.as_deref(),
                            rekor_bundle: rekor.as_ref(),
                            predicate_type: Some(predicate_type),
                        },
                    },
                )
                .await?,
            )
        }
    };
    Ok(SignedImage {
        target: target.clone(),
        signed,
        attached,
        layout,
    })
}

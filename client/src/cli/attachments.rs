//! `sigil tree`, `sigil download`, `sigil triangulate` and `sigil copy`: what is attached to
//! an image, where it lives, and taking it along to another repository.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use sigil_proto::cosign;
use sigil_proto::oci::LegacyTag;

use super::exit;
use super::image::{Failure, Output, failed, parse_image, registry, report_failure, runtime};
use super::registry_args::RegistryArgs;
use crate::image::copy::{Part, copy};
use crate::image::resolve;
use crate::oci::attached::{Discovered, FoundBundle, Want, discover};
use crate::oci::registry::ReferrersSource;
use crate::oci::{ImageRef, Registry};

/// What a bundle referrer holds, from its (unsigned) annotations: enough to list it.
fn bundle_kind(predicate_type: Option<&str>) -> &'static str {
    match predicate_type {
        Some(cosign::SIGN_PREDICATE_TYPE) => "signature",
        Some(p)
            if p.starts_with("https://spdx.dev/") || p.starts_with("https://cyclonedx.org/") =>
        {
            "sbom"
        }
        Some(_) => "attestation",
        None => "bundle",
    }
}

fn predicate_of(b: &FoundBundle) -> Option<&str> {
    b.manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(cosign::ANNOTATION_BUNDLE_PREDICATE_TYPE))
        .map(String::as_str)
        .or_else(|| {
            b.referrer
                .annotation(cosign::ANNOTATION_BUNDLE_PREDICATE_TYPE)
        })
}

fn source_name(s: ReferrersSource) -> &'static str {
    match s {
        ReferrersSource::Api => "referrers API",
        ReferrersSource::TagSchema => "referrers tag schema",
    }
}

fn legacy_name(kind: LegacyTag) -> &'static str {
    match kind {
        LegacyTag::Signatures => "signatures",
        LegacyTag::Attestations => "attestations",
        LegacyTag::Sboms => "SBOMs",
    }
}

async fn resolve_and_discover(
    registry: &Registry,
    image: &ImageRef,
    want: Want<'_>,
) -> Result<(crate::image::Target, Discovered), Failure> {
    let target = resolve(registry, image).await.map_err(failed)?;
    let found = discover(registry, &target.image, want)
        .await
        .map_err(failed)?;
    Ok((target, found))
}

// ---- tree ----------------------------------------------------------------------------------

const TREE_ABOUT: &str = "\
List what is attached to an image: signatures, attestations and SBOMs, in each storage layout
(OCI 1.1 referrers, found through the referrers API or the referrers tag schema, and cosign's
legacy sha256-<hex>.sig/.att/.sbom tags), plus any other referrers. Nothing is verified here;
use `sigil verify` / `sigil verify-attestation` for that.

Example:
  sigil tree registry.example.com/app:v1";

#[derive(Debug, Args)]
#[command(about = "List the signatures, attestations and SBOMs attached to an image", long_about = TREE_ABOUT)]
pub struct TreeArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn tree(args: TreeArgs) -> u8 {
    let json_output = args.output == Output::Json;
    let result = (|| {
        let image = parse_image(&args.image)?;
        let registry = registry(&args.registry)?;
        runtime()?.block_on(resolve_and_discover(
            &registry,
            &image,
            Want {
                referrers: true,
                legacy: &LegacyTag::ALL,
                contents: false,
            },
        ))
    })();
    let (target, found) = match result {
        Ok(r) => r,
        Err(f) => return report_failure(f, json_output),
    };
    let referrers: Vec<Value> = found
        .bundles
        .iter()
        .map(|b| {
            json!({
                "digest": b.referrer.digest.to_string(),
                "source": b.source,
                "kind": bundle_kind(predicate_of(b)),
                "predicateType": predicate_of(b),
                "artifactType": b.manifest.artifact_type,
            })
        })
        .chain(found.other.iter().map(|o| {
            json!({
                "digest": o.referrer.digest.to_string(),
                "source": o.source,
                "kind": "artifact",
                "artifactType": o.artifact_type,
            })
        }))
        .collect();
    let legacy: Vec<Value> = found
        .legacy_tags
        .iter()
        .map(|(kind, manifest)| {
            let layers: Vec<Value> = found
                .legacy
                .iter()
                .filter(|l| l.kind == *kind && !l.origin.starts_with("referrer"))
                .map(|l| {
                    json!({
                        "digest": l.layer.digest.to_string(),
                        "mediaType": l.layer.media_type,
                        "predicateType": l.layer.annotation(cosign::ANNOTATION_PREDICATE_TYPE),
                    })
                })
                .collect();
            json!({
                "kind": kind.suffix(),
                "tag": target.image.at_tag(&kind.tag_for(&target.descriptor.digest)).to_string(),
                "manifest": manifest,
                "layers": layers,
            })
        })
        .collect();
    if json_output {
        println!(
            "{}",
            json!({
                "image": target.image.to_string(),
                "digest": target.descriptor.digest.to_string(),
                "referrersApi": found.referrers_api,
                "referrersTagSchema": found.referrers_tag,
                "referrers": referrers,
                "legacy": legacy,
                "skipped": found.skipped,
            })
        );
        return exit::OK;
    }
    println!("Artifacts attached to {}", target.image);
    if let Some(tag) = &target.from_tag {
        println!("  (resolved from tag {tag})");
    }
    let listed_by = match (found.referrers_api, found.referrers_tag) {
        (true, true) => "the referrers API and the referrers tag schema".to_string(),
        (true, false) => "the referrers API".to_string(),
        (false, true) => format!(
            "the referrers tag schema ({})",
            target.image.at_tag(&target.descriptor.digest.tag_stem())
        ),
        (false, false) => String::new(),
    };
    if !referrers.is_empty() {
        println!("Referrers, listed by {listed_by}:");
        for b in &found.bundles {
            println!(
                "  {:<12} {}  {} [{}]",
                bundle_kind(predicate_of(b)),
                b.referrer.digest,
                predicate_of(b).unwrap_or("-"),
                source_name(b.source)
            );
        }
        for o in &found.other {
            println!(
                "  {:<12} {}  {} [{}]",
                "artifact",
                o.referrer.digest,
                o.artifact_type.as_deref().unwrap_or("-"),
                source_name(o.source)
            );
        }
    }
    for (kind, _) in &found.legacy_tags {
        println!(
            "Legacy {} ({}):",
            legacy_name(*kind),
            target
                .image
                .at_tag(&kind.tag_for(&target.descriptor.digest))
        );
        for l in found
            .legacy
            .iter()
            .filter(|l| l.kind == *kind && !l.origin.starts_with("referrer"))
        {
            let extra = l
                .layer
                .annotation(cosign::ANNOTATION_PREDICATE_TYPE)
                .map(|p| format!("  {p}"))
                .unwrap_or_default();
            println!("  layer {}  {}{extra}", l.layer.digest, l.layer.media_type);
        }
    }
    for l in found
        .legacy
        .iter()
        .filter(|l| l.origin.starts_with("referrer"))
    {
        println!(
            "  signature    {}  (cosign's older referrer mode, {})",
            l.layer.digest, l.origin
        );
    }
    for s in &found.skipped {
        println!("  unreadable   {}: {}", s.what, s.why);
    }
    if referrers.is_empty() && found.legacy_tags.is_empty() {
        println!("  nothing attached");
    }
    exit::OK
}

// ---- download ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DownloadKind {
    Signature,
    Attestation,
    Sbom,
}

const DOWNLOAD_ABOUT: &str = "\
Print what is attached to an image, one JSON document per line, without verifying it.

signature: each signature bundle (bundle layout), then each legacy .sig layer as
{\"Base64Signature\",\"Payload\",\"Cert\",\"Bundle\"}. attestation: each attestation bundle, then
each legacy .att DSSE envelope (--predicate-type filters). sbom: the legacy .sbom layers as
stored, and SBOM attestation bundles.

Example:
  sigil download attestation registry.example.com/app@sha256:4f2c... --predicate-type slsaprovenance1";

#[derive(Debug, Args)]
#[command(about = "Print an image's signatures, attestations or SBOMs (unverified)", long_about = DOWNLOAD_ABOUT)]
pub struct DownloadArgs {
    #[arg(value_enum)]
    pub kind: DownloadKind,
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Only attestations of this predicate type (a short name or a URI).
    #[arg(long)]
    pub predicate_type: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn legacy_signature_json(l: &crate::oci::attached::FoundLegacy) -> Value {
    let bundle = l
        .layer
        .annotation(cosign::ANNOTATION_BUNDLE)
        .and_then(|b| serde_json::from_str::<Value>(b).ok());
    json!({
        "Base64Signature": l.layer.annotation(cosign::ANNOTATION_SIGNATURE).unwrap_or_default(),
        "Payload": sigil_proto::encoding::encode_base64(&l.payload),
        "Cert": l.layer.annotation(cosign::ANNOTATION_CERTIFICATE),
        "Chain": l.layer.annotation(cosign::ANNOTATION_CHAIN),
        "Bundle": bundle,
    })
}

pub fn download(args: DownloadArgs) -> u8 {
    let result = (|| {
        let image = parse_image(&args.image)?;
        let wanted_predicate = args
            .predicate_type
            .as_deref()
            .map(|t| cosign::predicate_type(t).map_err(|e| Failure::Usage(e.to_string())))
            .transpose()?;
        let legacy = match args.kind {
            DownloadKind::Signature => [LegacyTag::Signatures],
            DownloadKind::Attestation => [LegacyTag::Attestations],
            DownloadKind::Sbom => [LegacyTag::Sboms],
        };
        let registry = registry(&args.registry)?;
        let (_, found) = runtime()?.block_on(resolve_and_discover(
            &registry,
            &image,
            Want {
                referrers: true,
                legacy: &legacy,
                contents: true,
            },
        ))?;
        let mut lines: Vec<String> = Vec::new();
        for b in &found.bundles {
            let kind = bundle_kind(predicate_of(b));
            let wanted = match args.kind {
                DownloadKind::Signature => kind == "signature",
                DownloadKind::Attestation => {
                    kind != "signature"
                        && wanted_predicate
                            .as_deref()
                            .is_none_or(|w| predicate_of(b) == Some(w))
                }
                DownloadKind::Sbom => kind == "sbom",
            };
            if wanted {
                lines.push(String::from_utf8_lossy(&b.bundle_json).trim().to_string());
            }
        }
        for l in &found.legacy {
            match args.kind {
                DownloadKind::Signature => lines.push(legacy_signature_json(l).to_string()),
                DownloadKind::Attestation => {
                    let predicate = l.layer.annotation(cosign::ANNOTATION_PREDICATE_TYPE);
                    if wanted_predicate
                        .as_deref()
                        .is_none_or(|w| predicate == Some(w))
                    {
                        lines.push(String::from_utf8_lossy(&l.payload).trim().to_string());
                    }
                }
                DownloadKind::Sbom => {
                    lines.push(String::from_utf8_lossy(&l.payload).trim().to_string())
                }
            }
        }
        for s in &found.skipped {
            eprintln!("warning: {}: {}", s.what, s.why);
        }
        if lines.is_empty() {
            return Err(failed(format!(
                "no {} attached to {image}",
                match args.kind {
                    DownloadKind::Signature => "signatures",
                    DownloadKind::Attestation => "attestations",
                    DownloadKind::Sbom => "SBOMs",
                }
            )));
        }
        Ok(lines)
    })();
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            exit::OK
        }
        Err(f) => report_failure(f, false),
    }
}

// ---- triangulate ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TriangulateKind {
    /// cosign's legacy signature tag.
    Signature,
    /// cosign's legacy attestation tag.
    Attestation,
    /// cosign's legacy SBOM tag.
    Sbom,
    /// The image by digest.
    Digest,
    /// Where referrers (the bundle layout) are listed: the referrers API, or the tag schema.
    Referrers,
}

#[derive(Debug, Args)]
#[command(about = "Print where an image's signatures, attestations or referrers are stored")]
pub struct TriangulateArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[arg(long = "type", value_enum, default_value = "signature")]
    pub kind: TriangulateKind,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn triangulate(args: TriangulateArgs) -> u8 {
    let result = (|| {
        let image = parse_image(&args.image)?;
        let registry = registry(&args.registry)?;
        runtime()?.block_on(async {
            let target = resolve(&registry, &image).await.map_err(failed)?;
            let digest = &target.descriptor.digest;
            let line = match args.kind {
                TriangulateKind::Signature => target
                    .image
                    .at_tag(&LegacyTag::Signatures.tag_for(digest))
                    .to_string(),
                TriangulateKind::Attestation => target
                    .image
                    .at_tag(&LegacyTag::Attestations.tag_for(digest))
                    .to_string(),
                TriangulateKind::Sbom => target
                    .image
                    .at_tag(&LegacyTag::Sboms.tag_for(digest))
                    .to_string(),
                TriangulateKind::Digest => target.image.to_string(),
                TriangulateKind::Referrers => {
                    if registry
                        .has_referrers_api(&target.image)
                        .await
                        .map_err(failed)?
                    {
                        format!(
                            "{}://{}/v2/{}/referrers/{digest}",
                            registry
                                .scheme(target.image.registry())
                                .await
                                .map_err(failed)?,
                            target.image.registry(),
                            target.image.repository()
                        )
                    } else {
                        target.image.at_tag(&digest.tag_stem()).to_string()
                    }
                }
            };
            Ok::<_, Failure>(line)
        })
    })();
    match result {
        Ok(line) => {
            println!("{line}");
            exit::OK
        }
        Err(f) => report_failure(f, false),
    }
}

// ---- copy ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnlyPart {
    /// Referrers (bundle signatures and attestations, SBOMs).
    Referrers,
    /// Legacy .sig tag.
    Sig,
    /// Legacy .att tag.
    Att,
    /// Legacy .sbom tag.
    Sbom,
}

const COPY_ABOUT: &str = "\
Copy an image, with everything attached to it, to another repository (or registry): every
manifest of an index, their blobs (streamed, or mounted within one registry), the referrers of
each manifest, and cosign's legacy .sig/.att/.sbom tags. Signatures stay valid: they name
digests, which do not change. The destination tag is DST's tag, else SRC's; an existing tag
naming other content is only moved with --force.

Examples:
  sigil copy staging.example.com/app:v1.2.0 prod.example.com/app:v1.2.0
  sigil copy staging.example.com/app@sha256:4f2c... prod.example.com/app --only referrers,sig";

#[derive(Debug, Args)]
#[command(about = "Copy an image with its signatures and attestations", long_about = COPY_ABOUT)]
pub struct CopyArgs {
    #[arg(value_name = "SRC")]
    pub source: String,
    #[arg(value_name = "DST")]
    pub destination: String,
    /// Copy only these attachments (comma-separated), not the image itself.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<OnlyPart>,
    /// Move an existing destination tag that names other content.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn copy_image(args: CopyArgs) -> u8 {
    let json_output = args.output == Output::Json;
    let result = (|| {
        let source = parse_image(&args.source)?;
        let destination = parse_image(&args.destination)?;
        let parts: Vec<Part> = if args.only.is_empty() {
            Part::ALL.to_vec()
        } else {
            args.only
                .iter()
                .map(|o| match o {
                    OnlyPart::Referrers => Part::Referrers,
                    OnlyPart::Sig => Part::Signatures,
                    OnlyPart::Att => Part::Attestations,
                    OnlyPart::Sbom => Part::Sboms,
                })
                .collect()
        };
        let registry = registry(&args.registry)?;
        runtime()?
            .block_on(copy(&registry, &source, &destination, &parts, args.force))
            .map_err(failed)
    })();
    match result {
        Ok(report) if json_output => {
            println!("{}", json!({"ok": true, "copied": report}));
            exit::OK
        }
        Ok(report) => {
            eprintln!(
                "Copied {} ({}) to {}: {} manifests, {} referrers{}{}",
                report.source,
                report.digest,
                report.destination,
                report.manifests,
                report.referrers,
                if report.legacy_tags.is_empty() {
                    String::new()
                } else {
                    format!(", legacy tags {}", report.legacy_tags.join(", "))
                },
                report
                    .tag
                    .map(|t| format!("; tagged {t}"))
                    .unwrap_or_default()
            );
            exit::OK
        }
        Err(f) => report_failure(f, json_output),
    }
}

//! The parts of the OCI image and distribution specs that image signing touches: digests,
//! descriptors, image manifests and indexes, and the tag names of the referrers tag schema.
//!
//! Parsing is lenient about fields we do not use (registries and other tools add them) and
//! keeps them, so that an index we rewrite (the referrers tag schema) loses nothing that
//! other writers put there. It is strict about the fields we rely on.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

pub const MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const IMAGE_CONFIG_V1: &str = "application/vnd.oci.image.config.v1+json";
/// The empty descriptor's media type and content (OCI image-spec "Guidance for an Empty
/// Descriptor").
pub const EMPTY_V1: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONTENT: &[u8] = b"{}";

/// Every manifest media type a signer may meet as the thing being signed.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    MANIFEST_V1,
    INDEX_V1,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST_V2,
];

pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == INDEX_V1 || media_type == DOCKER_MANIFEST_LIST_V2
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OciError {
    #[error("{0:?} is not a digest (expected sha256:<64 hex> or sha512:<128 hex>)")]
    BadDigest(String),
    #[error("not an OCI manifest: {0}")]
    BadManifest(String),
    #[error("unsupported manifest schemaVersion {0} (expected 2)")]
    SchemaVersion(u64),
    #[error("{0}")]
    Reference(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

/// A content digest, `<algorithm>:<lowercase hex>`. Only the two registered algorithms are
/// accepted, with their exact lengths, so that a digest compared by string is compared by value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, OciError> {
        let bad = || OciError::BadDigest(s.chars().take(200).collect());
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let (algorithm, len) = match alg {
            "sha256" => (DigestAlgorithm::Sha256, 64),
            "sha512" => (DigestAlgorithm::Sha512, 128),
            _ => return Err(bad()),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The SHA-256 digest of `content`.
    pub fn sha256_of(content: &[u8]) -> Digest {
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(content)),
        }
    }

    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex::encode(bytes),
        }
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The 32 bytes of a SHA-256 digest (`None` for other algorithms).
    pub fn sha256_bytes(&self) -> Option<[u8; 32]> {
        match self.algorithm {
            DigestAlgorithm::Sha256 => hex::decode(&self.hex).ok()?.try_into().ok(),
            DigestAlgorithm::Sha512 => None,
        }
    }

    /// Whether `content` hashes to this digest.
    pub fn matches(&self, content: &[u8]) -> bool {
        let actual = match self.algorithm {
            DigestAlgorithm::Sha256 => hex::encode(sha2::Sha256::digest(content)),
            DigestAlgorithm::Sha512 => hex::encode(sha2::Sha512::digest(content)),
        };
        actual == self.hex
    }

    fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// `sha256-<hex>`: the referrers tag schema's tag for this subject, and the stem of
    /// cosign's legacy `.sig`/`.att`/`.sbom` tags.
    pub fn tag_stem(&self) -> String {
        format!("{}-{}", self.algorithm_name(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm_name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Which of cosign's legacy tags (`sha256-<hex>.sig` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegacyTag {
    Signatures,
    Attestations,
    Sboms,
}

impl LegacyTag {
    pub const ALL: [LegacyTag; 3] = [
        LegacyTag::Signatures,
        LegacyTag::Attestations,
        LegacyTag::Sboms,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            LegacyTag::Signatures => "sig",
            LegacyTag::Attestations => "att",
            LegacyTag::Sboms => "sbom",
        }
    }

    pub fn tag_for(self, subject: &Digest) -> String {
        format!("{}.{}", subject.tag_stem(), self.suffix())
    }
}

/// A content descriptor. Fields this crate does not model are kept in `extra`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, content: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::sha256_of(content),
            size: content.len() as u64,
            artifact_type: None,
            annotations: None,
            platform: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema 2; they share this shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An image index (OCI, or a Docker manifest list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn check_schema(bytes: &[u8]) -> Result<(), OciError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        schema_version: u64,
    }
    let v: Versioned =
        serde_json::from_slice(bytes).map_err(|e| OciError::BadManifest(e.to_string()))?;
    if v.schema_version != 2 {
        return Err(OciError::SchemaVersion(v.schema_version));
    }
    Ok(())
}

impl Manifest {
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, OciError> {
        check_schema(bytes)?;
        serde_json::from_slice(bytes).map_err(|e| OciError::BadManifest(e.to_string()))
    }

    /// Compact JSON: the bytes that are pushed and whose digest names the manifest.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifests serialise")
    }
}

impl Index {
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_V1.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Index, OciError> {
        check_schema(bytes)?;
        serde_json::from_slice(bytes).map_err(|e| OciError::BadManifest(e.to_string()))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("indexes serialise")
    }

    /// Adds `entry` unless a descriptor with its digest is already listed, keeping the list
    /// sorted by digest (as cosign and go-containerregistry write it). Returns whether the
    /// index changed.
    pub fn add_unique(&mut self, entry: Descriptor) -> bool {
        if self.manifests.iter().any(|d| d.digest == entry.digest) {
            return false;
        }
        self.manifests.push(entry);
        self.manifests.sort_by_key(|d| d.digest.to_string());
        true
    }
}

/// Docker Hub, as references name it and as its registry answers.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_REGISTRY: &str = "index.docker.io";

/// An image reference split into its parts: `[registry/]repository[:tag][@digest]`, with
/// Docker's defaults (no registry means Docker Hub, and a one-part Hub name is under
/// `library/`). `tag` is `None` when none was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Parses a reference by the distribution grammar (`docker/distribution/reference`): a host
/// is the first component when it has a `.` or a `:` or is `localhost`; repository
/// components are lowercase alphanumerics joined by `.`, `_`, `__` or dashes; a tag is a
/// word character then up to 127 of `[A-Za-z0-9_.-]`.
pub fn parse_reference(input: &str) -> Result<ParsedReference, OciError> {
    let bad = OciError::Reference;
    if input.is_empty() || input.len() > 4096 {
        return Err(bad("empty or over-long reference"));
    }
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((n, d)) => (
            n,
            Some(
                Digest::parse(d)
                    .map_err(|_| bad("the digest is not sha256:<64 hex> or sha512:<128 hex>"))?,
            ),
        ),
        None => (input, None),
    };
    // A tag is after the last ':' that follows the last '/'.
    let last_slash = name_and_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
        }
        None => (name_and_tag, None),
    };
    if let Some(t) = tag {
        let mut chars = t.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok
            || t.len() > 128
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(bad("the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => (DOCKER_HUB, name.to_string()),
    };
    if !valid_registry(registry) {
        return Err(bad("the registry is not host[:port]"));
    }
    let repository = if (registry == DOCKER_HUB || registry == DOCKER_HUB_REGISTRY)
        && !repository.contains('/')
    {
        format!("library/{repository}")
    } else {
        repository
    };
    if repository.len() > 255 {
        return Err(bad("the repository name is longer than 255 characters"));
    }
    if !repository.split('/').all(valid_path_component) {
        return Err(bad(
            "repository components must be lowercase letters and digits, joined by '.', '_', '__' or '-'",
        ));
    }
    Ok(ParsedReference {
        registry: if registry == DOCKER_HUB {
            DOCKER_HUB_REGISTRY.to_string()
        } else {
            registry.to_string()
        },
        repository,
        tag: tag.map(str::to_string),
        digest,
    })
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (None, after.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// The media type a manifest declares in its body, if any (Docker schema 2 and OCI both
/// put it there; the OCI spec only recommends it).
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
        manifests: Option<Value>,
    }
    let t: Typed = serde_json::from_slice(bytes).ok()?;
    t.media_type.or_else(|| {
        // An OCI index without mediaType is still recognisable by its `manifests` list.
        t.manifests.map(|_| INDEX_V1.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn digests_parse_strictly_and_name_their_tags() {
        let d = Digest::sha256_of(EMPTY_CONTENT);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(Digest::parse(EMPTY_SHA256).unwrap(), d);
        assert!(d.matches(b"{}"));
        assert!(!d.matches(b"{} "));
        assert_eq!(d.tag_stem(), format!("sha256-{}", d.hex()));
        assert_eq!(
            LegacyTag::Attestations.tag_for(&d),
            format!("sha256-{}.att", d.hex())
        );
        for bad in [
            "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        let sha512 = format!("sha512:{}", "0".repeat(128));
        assert_eq!(
            Digest::parse(&sha512).unwrap().algorithm(),
            DigestAlgorithm::Sha512
        );
        assert_eq!(Digest::parse(&sha512).unwrap().sha256_bytes(), None);
    }

    #[test]
    fn manifests_keep_unknown_fields_and_refuse_other_schemas() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_V1}","config":{{"mediaType":"{EMPTY_V1}","digest":"{EMPTY_SHA256}","size":2,"data":"e30="}},"layers":[],"x-vendor":{{"a":1}}}}"#
        );
        let m = Manifest::from_json(json.as_bytes()).unwrap();
        assert_eq!(m.config.extra["data"], "e30=");
        let back: Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(back["x-vendor"]["a"], 1);
        assert_eq!(back["config"]["data"], "e30=");
        assert_eq!(
            Manifest::from_json(br#"{"schemaVersion":1,"config":{},"layers":[]}"#).unwrap_err(),
            OciError::SchemaVersion(1)
        );
        assert!(matches!(
            Manifest::from_json(br#"{"schemaVersion":2,"layers":[]}"#),
            Err(OciError::BadManifest(_))
        ));
        assert!(Manifest::from_json(b"\x00\x01").is_err());
    }

    #[test]
    fn index_entries_stay_unique_and_sorted_by_digest() {
        let mut index = Index::empty();
        let a = Descriptor::new(MANIFEST_V1, b"a");
        let b = Descriptor::new(MANIFEST_V1, b"b");
        let (first, second) = if a.digest.to_string() < b.digest.to_string() {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        assert!(index.add_unique(second.clone()));
        assert!(index.add_unique(first.clone()));
        assert!(!index.add_unique(first.clone()));
        assert_eq!(index.manifests, vec![first, second]);
        let parsed = Index::from_json(&index.to_json()).unwrap();
        assert_eq!(parsed, index);
    }

    #[test]
    fn references_parse_by_the_distribution_grammar() {
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let p = |s: &str| parse_reference(s).unwrap();
        let hub = p("ubuntu");
        assert_eq!(
            (
                hub.registry.as_str(),
                hub.repository.as_str(),
                hub.tag,
                hub.digest
            ),
            ("index.docker.io", "library/ubuntu", None, None)
        );
        assert_eq!(p("docker.io/acme/app:1.0").repository, "acme/app");
        assert_eq!(p("acme/app").registry, "index.docker.io");
        let local = p("localhost:5000/team/app:v1.2_rc-1");
        assert_eq!(local.registry, "localhost:5000");
        assert_eq!(local.repository, "team/app");
        assert_eq!(local.tag.as_deref(), Some("v1.2_rc-1"));
        let pinned = p(&format!("127.0.0.1:5000/app@{d}"));
        assert_eq!(pinned.registry, "127.0.0.1:5000");
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest.unwrap().to_string(), d);
        let both = p(&format!("r.example/a/b/c:tag@{d}"));
        assert_eq!(
            (both.repository.as_str(), both.tag.as_deref()),
            ("a/b/c", Some("tag"))
        );
        assert_eq!(p("[::1]:5000/app").registry, "[::1]:5000");
        assert_eq!(
            p("r.example/a__b/c-d/e.f/g--h").repository,
            "a__b/c-d/e.f/g--h"
        );
        for bad in [
            "",
            "r.example/UPPER",
            "r.example/app@sha256:abc",
            "r.example/app@md5:d41d8cd98f00b204e9800998ecf8427e",
            "r.example/app:tag with space",
            "https://r.example/app",
            "r.example/app:.tag",
            "r.example/-app",
            "r.example/a...b",
            "r.example/a/",
            "bad_host.example/app",
            "r.example:port/app",
            "r.example/app:",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad:?}");
        }
        let long_tag = format!("r.example/app:{}", "t".repeat(129));
        assert!(parse_reference(&long_tag).is_err());
    }

    #[test]
    fn declared_media_types() {
        assert_eq!(
            declared_media_type(br#"{"schemaVersion":2,"mediaType":"x"}"#).as_deref(),
            Some("x")
        );
        assert_eq!(
            declared_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(INDEX_V1)
        );
        assert_eq!(declared_media_type(br#"{"schemaVersion":2}"#), None);
    }
}

//! Trust configuration (`dev.sigstore.trustroot.v1`): TrustedRoot, SigningConfig v0.2 and
//! ClientTrustConfig, in the strict protobuf JSON form sigstore-python 4.5.1 reads.
//!
//! Optional fields that are `null` in the input are accepted and omitted on output.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bundle::{LogId, X509CertificateChain};
use crate::encoding::rfc3339;

/// The trusted-root media type sigstore-python 4.5.1 accepts; sigil emits this one.
pub const TRUSTED_ROOT_MEDIA_TYPE_V0_1: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// The newer spelling; parsed, never emitted.
pub const TRUSTED_ROOT_MEDIA_TYPE_V0_2: &str = "application/vnd.dev.sigstore.trustedroot.v0.2+json";
pub const SIGNING_CONFIG_MEDIA_TYPE_V0_2: &str =
    "application/vnd.dev.sigstore.signingconfig.v0.2+json";
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE_V0_1: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

#[derive(Debug, thiserror::Error)]
pub enum TrustParseError {
    #[error("invalid trust document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported media type {0:?}")]
    MediaType(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustedRoot {
    pub media_type: String,
    #[serde(default)]
    pub tlogs: Vec<TransparencyLogInstance>,
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default)]
    pub ctlogs: Vec<TransparencyLogInstance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

impl TrustedRoot {
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, TrustParseError> {
        let root: TrustedRoot = serde_json::from_slice(bytes)?;
        root.check_media_type()?;
        Ok(root)
    }

    fn check_media_type(&self) -> Result<(), TrustParseError> {
        match self.media_type.as_str() {
            TRUSTED_ROOT_MEDIA_TYPE_V0_1 | TRUSTED_ROOT_MEDIA_TYPE_V0_2 => Ok(()),
            other => Err(TrustParseError::MediaType(other.to_string())),
        }
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("trusted root serialises")
    }
}

/// A transparency log (Rekor) or a CT log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransparencyLogInstance {
    pub base_url: String,
    /// Enum name, e.g. `SHA2_256`.
    pub hash_algorithm: String,
    pub public_key: PublicKey,
    /// Rekor v1 and CT: SHA-256 of the SPKI DER. Rekor v2: the full C2SP checkpoint key id.
    pub log_id: LogId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_key_id: Option<LogId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// `dev.sigstore.common.v1.PublicKey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicKey {
    /// SPKI DER (Ed25519 keys too).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_base64")]
    pub raw_bytes: Option<Vec<u8>>,
    /// Enum name, e.g. `PKIX_ECDSA_P256_SHA_256`, `PKIX_ED25519`.
    pub key_details: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for: Option<TimeRange>,
}

/// A closed interval `[start, end]`; no `end` means open-ended. `start` is required.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    #[serde(with = "rfc3339")]
    pub start: OffsetDateTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub end: Option<OffsetDateTime>,
}

impl TimeRange {
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.start <= t && self.end.is_none_or(|end| t <= end)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateAuthority {
    pub subject: DistinguishedName,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Leaf-most first, root last.
    pub cert_chain: X509CertificateChain,
    pub valid_for: TimeRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DistinguishedName {
    pub organization: String,
    pub common_name: String,
}

/// SigningConfig v0.2: where a signer finds its services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningConfig {
    pub media_type: String,
    #[serde(default)]
    pub ca_urls: Vec<Service>,
    #[serde(default)]
    pub oidc_urls: Vec<Service>,
    #[serde(default)]
    pub rekor_tlog_urls: Vec<Service>,
    #[serde(default)]
    pub tsa_urls: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_tlog_config: Option<ServiceConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_config: Option<ServiceConfiguration>,
}

impl SigningConfig {
    pub fn from_json(bytes: &[u8]) -> Result<SigningConfig, TrustParseError> {
        let config: SigningConfig = serde_json::from_slice(bytes)?;
        if config.media_type != SIGNING_CONFIG_MEDIA_TYPE_V0_2 {
            return Err(TrustParseError::MediaType(config.media_type));
        }
        Ok(config)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub url: String,
    /// uint32, so a JSON number in the protobuf mapping.
    pub major_api_version: u32,
    pub valid_for: TimeRange,
    /// Required by sigstore-python's parser.
    pub operator: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfiguration {
    /// `ALL`, `ANY` or `EXACT`.
    pub selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// A trusted root and a signing config in one file (`--trust-config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTrustConfig {
    pub media_type: String,
    pub trusted_root: TrustedRoot,
    pub signing_config: SigningConfig,
}

impl ClientTrustConfig {
    pub fn from_json(bytes: &[u8]) -> Result<ClientTrustConfig, TrustParseError> {
        let config: ClientTrustConfig = serde_json::from_slice(bytes)?;
        if config.media_type != CLIENT_TRUST_CONFIG_MEDIA_TYPE_V0_1 {
            return Err(TrustParseError::MediaType(config.media_type));
        }
        config.trusted_root.check_media_type()?;
        if config.signing_config.media_type != SIGNING_CONFIG_MEDIA_TYPE_V0_2 {
            return Err(TrustParseError::MediaType(config.signing_config.media_type));
        }
        Ok(config)
    }
}

mod opt_base64 {
    use crate::encoding::{decode_base64, encode_base64};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&encode_base64(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.map(|s| decode_base64(&s).map_err(|e| D::Error::custom(format!("invalid base64: {e}"))))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn assets() -> Option<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance-assets");
        if dir.is_dir() {
            Some(dir)
        } else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "conformance assets missing"
            );
            None
        }
    }

    /// Drops nulls and rewrites timestamps to one spelling (`.000Z` and `Z` are the same
    /// instant), so that a round trip can be compared as JSON values.
    fn normalise(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(normalise);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(normalise),
            serde_json::Value::String(s) => {
                if let Ok(t) = rfc3339::parse(s) {
                    *s = rfc3339::format(&t);
                }
            }
            _ => {}
        }
    }

    fn round_trips(path: &std::path::Path) {
        let bytes = std::fs::read(path).unwrap();
        let root =
            TrustedRoot::from_json(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        normalise(&mut original);
        let ours: serde_json::Value = serde_json::from_str(&root.to_json_pretty()).unwrap();
        assert_eq!(
            TrustedRoot::from_json(root.to_json_pretty().as_bytes()).unwrap(),
            root
        );
        assert_eq!(ours, original, "{} does not round-trip", path.display());
    }

    #[test]
    fn production_and_case_trusted_roots_parse_and_round_trip() {
        let Some(dir) = assets() else { return };
        round_trips(&dir.join("production_trusted_root.json"));
        let mut n = 0;
        for entry in std::fs::read_dir(dir.join("bundle-verify")).unwrap() {
            let path = entry.unwrap().path().join("trusted_root.json");
            if !path.exists() {
                continue;
            }
            if path
                .to_string_lossy()
                .contains("trust-root-tlog-missing-validity-start_fail")
            {
                assert!(TrustedRoot::from_json(&std::fs::read(&path).unwrap()).is_err());
                continue;
            }
            round_trips(&path);
            n += 1;
        }
        assert!(n >= 30, "only {n} trusted roots found");
    }

    #[test]
    fn production_root_has_the_expected_shape() {
        let Some(dir) = assets() else { return };
        let root = TrustedRoot::from_json(
            &std::fs::read(dir.join("production_trusted_root.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(root.media_type, TRUSTED_ROOT_MEDIA_TYPE_V0_1);
        let rekor = root
            .tlogs
            .iter()
            .find(|t| t.base_url == "https://rekor.sigstore.dev")
            .unwrap();
        assert_eq!(rekor.public_key.key_details, "PKIX_ECDSA_P256_SHA_256");
        assert_eq!(rekor.log_id.key_id.len(), 32);
        assert!(
            root.certificate_authorities
                .iter()
                .all(|ca| !ca.cert_chain.certificates.is_empty())
        );
    }

    #[test]
    fn time_ranges_are_closed_intervals() {
        let r: TimeRange = serde_json::from_str(
            r#"{"start":"2025-01-01T00:00:00Z","end":"2025-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(r.contains(r.start));
        assert!(r.contains(r.end.unwrap()));
        assert!(!r.contains(r.start - time::Duration::seconds(1)));
        assert!(!r.contains(r.end.unwrap() + time::Duration::seconds(1)));
        assert!(serde_json::from_str::<TimeRange>(r#"{"end":"2025-01-02T00:00:00Z"}"#).is_err());
    }

    #[test]
    fn client_trust_config_round_trips_with_strict_fields() {
        let json = r#"{"mediaType":"application/vnd.dev.sigstore.clienttrustconfig.v0.1+json","trustedRoot":{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[{"baseUrl":"http://127.0.0.1:3000","hashAlgorithm":"SHA2_256","publicKey":{"rawBytes":"AAEC","keyDetails":"PKIX_ECDSA_P256_SHA_256","validFor":{"start":"2025-01-01T00:00:00Z"}},"logId":{"keyId":"AQID"},"operator":"sigil"}],"certificateAuthorities":[{"subject":{"organization":"sigil","commonName":"root"},"uri":"http://127.0.0.1:3000","certChain":{"certificates":[{"rawBytes":"AAEC"}]},"validFor":{"start":"2025-01-01T00:00:00Z"}}],"ctlogs":[]},"signingConfig":{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","caUrls":[{"url":"http://127.0.0.1:3000","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"sigil"}],"oidcUrls":[],"rekorTlogUrls":[],"tsaUrls":[],"rekorTlogConfig":{"selector":"ANY"},"tsaConfig":{"selector":"ANY"}}}"#;
        let cfg = ClientTrustConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(cfg.signing_config.ca_urls[0].major_api_version, 1);
        assert_eq!(serde_json::to_string(&cfg).unwrap(), json);
        let unknown = json.replace(
            r#""operator":"sigil"}],"certificateAuthorities""#,
            r#""operator":"sigil","x":1}],"certificateAuthorities""#,
        );
        assert!(ClientTrustConfig::from_json(unknown.as_bytes()).is_err());
        let v02 = json.replace("trustedroot+json;version=0.1", "trustedroot.v0.2+json");
        assert!(ClientTrustConfig::from_json(v02.as_bytes()).is_ok());
        let bad = json.replace("trustedroot+json;version=0.1", "trustedroot+json;version=9");
        assert!(matches!(
            ClientTrustConfig::from_json(bad.as_bytes()),
            Err(TrustParseError::MediaType(_))
        ));
    }
}

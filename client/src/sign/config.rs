//! Choosing the CA and transparency log from a SigningConfig v0.2 (interop §7.2).

use sigil_proto::trust::{Service, ServiceConfiguration, SigningConfig};
use time::OffsetDateTime;

/// Fulcio is published as `majorApiVersion: 1` although its paths are `/api/v2/...`.
pub const SUPPORTED_CA_VERSIONS: &[u32] = &[1];
/// Only Rekor v1 can be written to by this client.
pub const SUPPORTED_REKOR_VERSIONS: &[u32] = &[1];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    #[error("signing config lists no usable {0} (none valid now with a supported API version)")]
    NoService(&'static str),
    #[error("signing config asks for exactly {wanted} {what}, but only {found} are usable")]
    TooFew {
        what: &'static str,
        wanted: u32,
        found: usize,
    },
    #[error("signing config selector {0:?} is not ALL, ANY or EXACT")]
    BadSelector(String),
}

/// Services valid at `now` with a supported version; per operator only the highest version.
/// The order of first appearance is kept, so "first" means what the config author put first.
pub fn usable_services<'a>(
    services: &'a [Service],
    supported: &[u32],
    now: OffsetDateTime,
) -> Vec<&'a Service> {
    let mut chosen: Vec<&Service> = Vec::new();
    for s in services {
        if !s.valid_for.contains(now) || !supported.contains(&s.major_api_version) {
            continue;
        }
        match chosen.iter_mut().find(|c| c.operator == s.operator) {
            Some(c) if c.major_api_version < s.major_api_version => *c = s,
            Some(_) => {}
            None => chosen.push(s),
        }
    }
    chosen
}

/// Applies a `ServiceConfiguration` selector to usable services.
pub fn apply_selector<'a>(
    usable: Vec<&'a Service>,
    config: Option<&ServiceConfiguration>,
    what: &'static str,
) -> Result<Vec<&'a Service>, SelectionError> {
    if usable.is_empty() {
        return Err(SelectionError::NoService(what));
    }
    let selector = config.map(|c| c.selector.as_str()).unwrap_or("ANY");
    match selector {
        "ALL" => Ok(usable),
        "ANY" => Ok(usable.into_iter().take(1).collect()),
        "EXACT" => {
            let wanted = config.and_then(|c| c.count).unwrap_or(1);
            if usable.len() < wanted as usize {
                return Err(SelectionError::TooFew {
                    what,
                    wanted,
                    found: usable.len(),
                });
            }
            Ok(usable.into_iter().take(wanted as usize).collect())
        }
        other => Err(SelectionError::BadSelector(other.to_string())),
    }
}

/// The services a signer uses: one CA and the transparency logs to write to (this client
/// writes to the first, as sigstore-python does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedServices {
    pub ca_url: Option<String>,
    pub rekor_urls: Vec<String>,
}

pub fn select(
    config: &SigningConfig,
    now: OffsetDateTime,
) -> Result<SelectedServices, SelectionError> {
    let ca_url = usable_services(&config.ca_urls, SUPPORTED_CA_VERSIONS, now)
        .first()
        .map(|s| s.url.clone());
    let rekor = apply_selector(
        usable_services(&config.rekor_tlog_urls, SUPPORTED_REKOR_VERSIONS, now),
        config.rekor_tlog_config.as_ref(),
        "transparency log",
    )?;
    Ok(SelectedServices {
        ca_url,
        rekor_urls: rekor.into_iter().map(|s| s.url.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn config(json: &str) -> SigningConfig {
        SigningConfig::from_json(json.as_bytes()).unwrap()
    }

    const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);

    #[test]
    fn drops_expired_future_and_unsupported_and_keeps_highest_per_operator() {
        let c = config(
            r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls":[
              {"url":"https://old-ca","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z","end":"2025-01-01T00:00:00Z"},"operator":"a"},
              {"url":"https://ca","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"a"}],
            "rekorTlogUrls":[
              {"url":"https://future","majorApiVersion":1,"validFor":{"start":"2027-01-01T00:00:00Z"},"operator":"x"},
              {"url":"https://v2","majorApiVersion":2,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"y"},
              {"url":"https://rekor-y","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"y"},
              {"url":"https://rekor-z","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"z"},
              {"url":"https://rekor-z2","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"z"}],
            "rekorTlogConfig":{"selector":"ALL"}}"#,
        );
        let s = select(&c, NOW).unwrap();
        assert_eq!(s.ca_url.as_deref(), Some("https://ca"));
        // v2 is unsupported, so operator y falls back to its v1 log; z keeps its first.
        assert_eq!(s.rekor_urls, vec!["https://rekor-y", "https://rekor-z"]);
    }

    #[test]
    fn any_takes_the_first_and_exact_needs_enough() {
        let base = r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "rekorTlogUrls":[
              {"url":"https://r1","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"a"},
              {"url":"https://r2","majorApiVersion":1,"validFor":{"start":"2025-01-01T00:00:00Z"},"operator":"b"}],
            "rekorTlogConfig":SELECTOR}"#;
        let any = config(&base.replace("SELECTOR", r#"{"selector":"ANY"}"#));
        assert_eq!(select(&any, NOW).unwrap().rekor_urls, vec!["https://r1"]);
        let exact2 = config(&base.replace("SELECTOR", r#"{"selector":"EXACT","count":2}"#));
        assert_eq!(select(&exact2, NOW).unwrap().rekor_urls.len(), 2);
        let exact3 = config(&base.replace("SELECTOR", r#"{"selector":"EXACT","count":3}"#));
        assert_eq!(
            select(&exact3, NOW).unwrap_err(),
            SelectionError::TooFew {
                what: "transparency log",
                wanted: 3,
                found: 2
            }
        );
        assert_eq!(select(&any, NOW).unwrap().ca_url, None);
    }

    #[test]
    fn no_valid_log_is_an_error() {
        let c = config(
            r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "rekorTlogUrls":[{"url":"https://r","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z","end":"2021-01-01T00:00:00Z"},"operator":"a"}]}"#,
        );
        assert_eq!(
            select(&c, NOW).unwrap_err(),
            SelectionError::NoService("transparency log")
        );
    }
}

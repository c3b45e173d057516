//! What a monitor reports about an entry. Each rule is a pure function of the decoded entry
//! and a small persisted state, and its only clock is the entry's own signing time, so the
//! same log always yields the same findings, whenever and however often it is read.
//!
//! The rules file is JSON (unknown fields refused):
//!
//! ```json
//! {
//!   "watch": { "identities": ["release@example.com"], "issuers": [], "repositories": [], "digests": [] },
//!   "expectedSigners": [
//!     { "identity": "release@example.com", "issuers": ["https://accounts.example.com"] },
//!     { "repository": "https://github.com/org/app",
//!       "identityRegexps": ["^https://github\\.com/org/app/\\.github/workflows/release\\.yml@.*$"],
//!       "issuers": ["https://token.actions.githubusercontent.com"] }
//!   ],
//!   "signingHours": { "identities": ["release@example.com"], "days": ["mon", "tue", "wed", "thu", "fri"],
//!                     "from": "08:00", "to": "18:00", "utcOffset": "+01:00" },
//!   "burst": { "identities": [], "count": 20, "minutes": 10 },
//!   "repeatedDigest": { "identities": ["release@example.com"] }
//! }
//! ```

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::audit::DescribedBody;

/// Every rule a monitor applies.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub watch: Watch,
    #[serde(default)]
    pub expected_signers: Vec<ExpectedSigners>,
    pub signing_hours: Option<SigningHours>,
    pub burst: Option<Burst>,
    pub repeated_digest: Option<RepeatedDigest>,
}

/// Entries reported whoever signed them: by identity (email or subject, any case), issuer,
/// source repository, or artifact digest (`sha256:<hex>` or bare hex).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Watch {
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub issuers: Vec<String>,
    #[serde(default)]
    pub repositories: Vec<String>,
    #[serde(default)]
    pub digests: Vec<String>,
}

/// Who may sign as `identity` (then only `issuers` apply) or for `repository`: an entry the
/// selector picks whose identity or issuer is not listed is reported.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedSigners {
    pub identity: Option<String>,
    pub repository: Option<String>,
    #[serde(default)]
    pub identities: Vec<String>,
    /// Whole-identity regular expressions, as cosign's `--certificate-identity-regexp`.
    #[serde(default)]
    pub identity_regexps: Vec<String>,
    #[serde(default)]
    pub issuers: Vec<String>,
    #[serde(skip)]
    compiled: Vec<Regex>,
}

/// When signing is expected: on `days`, between `from` (inclusive) and `to` (exclusive), in
/// the zone `utcOffset`. A window whose `to` is before its `from` runs over midnight.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningHours {
    /// Signers the hours apply to; empty means every signer.
    #[serde(default)]
    pub identities: Vec<String>,
    /// `mon` … `sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub utc_offset: Option<String>,
    #[serde(skip)]
    window: Window,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Window {
    /// Bit 0 is Monday.
    days: u8,
    from_minute: i64,
    to_minute: i64,
    offset_minutes: i64,
}

/// `count` signatures by one identity within `minutes`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Burst {
    /// Identities counted; empty means every identity.
    #[serde(default)]
    pub identities: Vec<String>,
    pub count: u32,
    pub minutes: u32,
}

/// An artifact digest signed again by one of `identities` (a release never re-signs the same
/// bytes). Limited to named identities because the monitor must remember their digests.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepeatedDigest {
    pub identities: Vec<String>,
}

/// What the rules remember between entries and between runs (kept in the monitor's state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleState {
    /// Per identity (lower case), the signing times inside the burst window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bursts: BTreeMap<String, BurstWindow>,
    /// Per artifact digest signed by a `repeatedDigest` identity, the first entry's index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signed_digests: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurstWindow {
    pub times: Vec<i64>,
    /// Already reported; cleared when the window falls below the count again, so one burst
    /// is one finding.
    pub reported: bool,
}

/// One reported entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: &'static str,
    pub log_index: u64,
    pub kind: String,
    pub artifact_digest: Option<String>,
    pub identity: Option<String>,
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// RFC 3339, from the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// Idle identities are dropped from the burst state once it holds this many.
const BURST_PRUNE_AT: usize = 4096;

impl Rules {
    /// Parses and checks a rules file.
    pub fn from_json(bytes: &[u8]) -> Result<Rules, String> {
        let mut rules: Rules = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for (n, e) in rules.expected_signers.iter_mut().enumerate() {
            let at = format!("expectedSigners[{n}]");
            match (&e.identity, &e.repository) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(format!("{at}: give exactly one of identity and repository"));
                }
                (Some(_), None) if !e.identities.is_empty() || !e.identity_regexps.is_empty() => {
                    return Err(format!(
                        "{at}: an identity selector takes issuers only (the identity is fixed)"
                    ));
                }
                _ => {}
            }
            if e.identities.is_empty() && e.identity_regexps.is_empty() && e.issuers.is_empty() {
                return Err(format!("{at}: list the expected identities or issuers"));
            }
            e.compiled = e
                .identity_regexps
                .iter()
                .map(|r| Regex::new(&format!("^(?:{r})$")).map_err(|err| format!("{at}: {err}")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(h) = &mut rules.signing_hours {
            h.window = parse_window(h).map_err(|e| format!("signingHours: {e}"))?;
        }
        if let Some(b) = &rules.burst
            && (b.count < 2 || b.minutes == 0)
        {
            return Err("burst: count must be at least 2 and minutes at least 1".into());
        }
        if let Some(r) = &rules.repeated_digest
            && r.identities.is_empty()
        {
            return Err(
                "repeatedDigest: name the identities (the monitor keeps every digest \
                        they sign, so it cannot watch everyone)"
                    .into(),
            );
        }
        Ok(rules)
    }

    /// Whether any rule needs the entries decoded.
    pub fn is_empty(&self) -> bool {
        let w = &self.watch;
        w.identities.is_empty()
            && w.issuers.is_empty()
            && w.repositories.is_empty()
            && w.digests.is_empty()
            && self.expected_signers.is_empty()
            && self.signing_hours.is_none()
            && self.burst.is_none()
            && self.repeated_digest.is_none()
    }

    /// Whether any rule judges a certificate on its own (see [`Rules::check_certificate`]).
    pub fn judges_certificates(&self) -> bool {
        let w = &self.watch;
        !(w.identities.is_empty()
            && w.issuers.is_empty()
            && w.repositories.is_empty()
            && self.expected_signers.is_empty()
            && self.signing_hours.is_none())
    }

    /// Applies every rule to the entry at `index`, in a fixed order.
    pub fn check(
        &self,
        state: &mut RuleState,
        index: u64,
        entry: &DescribedBody,
        findings: &mut Vec<Finding>,
    ) {
        let finding = |rule, detail| Finding::new(rule, index, entry, detail);
        let identity = entry.identity.as_deref();
        self.check_signer(entry, &mut |rule, detail| {
            findings.push(finding(rule, detail))
        });
        if entry
            .artifact_digest
            .as_deref()
            .is_some_and(|d| self.watch.digests.iter().any(|x| same_digest(x, d)))
        {
            findings.push(finding("watched-digest", None));
        }
        let Some(at) = entry.signed_at else {
            return;
        };
        if let (Some(burst), Some(who)) = (&self.burst, identity)
            && applies(&burst.identities, Some(who))
        {
            let span = i64::from(burst.minutes) * 60;
            let window = state.bursts.entry(who.to_ascii_lowercase()).or_default();
            window.times.push(at);
            window.times.retain(|&t| t > at - span);
            if window.times.len() < burst.count as usize {
                window.reported = false;
            } else if !window.reported {
                window.reported = true;
                findings.push(finding(
                    "burst",
                    Some(format!(
                        "{} signatures within {} minutes",
                        window.times.len(),
                        burst.minutes
                    )),
                ));
            }
            if state.bursts.len() >= BURST_PRUNE_AT {
                state
                    .bursts
                    .retain(|_, w| w.times.last().is_some_and(|&t| t > at - span));
            }
        }
        if let (Some(rule), Some(who), Some(digest)) = (
            &self.repeated_digest,
            identity,
            entry.artifact_digest.as_deref(),
        ) && any_eq(&rule.identities, who)
        {
            let key = digest.to_ascii_lowercase();
            match state.signed_digests.get(&key) {
                Some(first) => findings.push(finding(
                    "repeated-digest",
                    Some(format!("first signed at entry {first}")),
                )),
                None => {
                    state.signed_digests.insert(key, index);
                }
            }
        }
    }
}

impl Rules {
    /// The rules about who signed and when, which also judge a certificate seen in the CT
    /// log (rule names prefixed `ct-`): a certificate issued to a watched or unexpected
    /// identity matters even if it never signs anything.
    pub fn check_certificate(&self, index: u64, cert: &DescribedBody, findings: &mut Vec<Finding>) {
        self.check_signer(cert, &mut |rule, detail| {
            findings.push(Finding::new(ct_rule(rule), index, cert, detail));
        });
    }

    /// Watched signers, expected signers and signing hours: the rules that need no state.
    fn check_signer(
        &self,
        entry: &DescribedBody,
        report: &mut dyn FnMut(&'static str, Option<String>),
    ) {
        let identity = entry.identity.as_deref();
        let w = &self.watch;
        if identity.is_some_and(|i| any_eq(&w.identities, i)) {
            report("watched-identity", None);
        }
        if entry
            .issuer
            .as_deref()
            .is_some_and(|i| w.issuers.iter().any(|x| x == i))
        {
            report("watched-issuer", None);
        }
        if entry
            .repository
            .as_deref()
            .is_some_and(|r| w.repositories.iter().any(|x| x == r))
        {
            report("watched-repository", None);
        }
        for rule in &self.expected_signers {
            if let Some(why) = rule.unexpected(entry) {
                report("unexpected-signer", Some(why));
            }
        }
        if let (Some(hours), Some(at)) = (&self.signing_hours, entry.signed_at)
            && applies(&hours.identities, identity)
            && !hours.window.contains(at)
        {
            let detail = format!(
                "signed outside {} {}-{} (UTC{})",
                if hours.days.is_empty() {
                    "every day".to_string()
                } else {
                    hours.days.join(",")
                },
                hours.from,
                hours.to,
                hours.utc_offset.as_deref().unwrap_or("+00:00")
            );
            report("off-hours", Some(detail));
        }
    }
}

impl Finding {
    fn new(rule: &'static str, index: u64, entry: &DescribedBody, detail: Option<String>) -> Self {
        Finding {
            rule,
            log_index: index,
            kind: entry.kind.clone(),
            artifact_digest: entry.artifact_digest.clone(),
            identity: entry.identity.clone(),
            issuer: entry.issuer.clone(),
            repository: entry.repository.clone(),
            signed_at: entry.signed_at.and_then(rfc3339),
            detail,
        }
    }
}

fn ct_rule(rule: &'static str) -> &'static str {
    match rule {
        "watched-identity" => "ct-watched-identity",
        "watched-issuer" => "ct-watched-issuer",
        "watched-repository" => "ct-watched-repository",
        "unexpected-signer" => "ct-unexpected-signer",
        "off-hours" => "ct-off-hours",
        other => other,
    }
}

impl ExpectedSigners {
    /// Why `entry` breaks this rule, if it is picked by the selector and does.
    fn unexpected(&self, entry: &DescribedBody) -> Option<String> {
        let picked = match (&self.identity, &self.repository) {
            (Some(i), _) => entry
                .identity
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(i)),
            (_, Some(r)) => entry.repository.as_deref() == Some(r.as_str()),
            _ => false,
        };
        if !picked {
            return None;
        }
        let selector = self
            .identity
            .as_deref()
            .or(self.repository.as_deref())
            .unwrap_or_default();
        let identity = entry.identity.as_deref().unwrap_or("(no identity)");
        let issuer = entry.issuer.as_deref().unwrap_or("(no issuer)");
        let identity_ok = (self.identities.is_empty() && self.compiled.is_empty())
            || any_eq(&self.identities, identity)
            || self.compiled.iter().any(|r| r.is_match(identity));
        if !identity_ok {
            return Some(format!(
                "{identity} is not an expected signer for {selector}"
            ));
        }
        if !self.issuers.is_empty() && !self.issuers.iter().any(|x| x == issuer) {
            return Some(format!("issuer {issuer} is not expected for {selector}"));
        }
        None
    }
}

impl Window {
    fn contains(&self, unix_seconds: i64) -> bool {
        let local = unix_seconds.div_euclid(60) + self.offset_minutes;
        let day_number = local.div_euclid(24 * 60);
        let minute = local.rem_euclid(24 * 60);
        // 1970-01-01 was a Thursday (index 3 from Monday).
        let weekday = (day_number + 3).rem_euclid(7);
        let (day, in_hours) = if self.from_minute <= self.to_minute {
            (
                weekday,
                self.from_minute <= minute && minute < self.to_minute,
            )
        } else if minute >= self.from_minute {
            (weekday, true)
        } else {
            // Past midnight in a window that began the day before: that day's rule applies.
            ((weekday + 6) % 7, minute < self.to_minute)
        };
        in_hours && self.days & (1 << day) != 0
    }
}

fn parse_window(h: &SigningHours) -> Result<Window, String> {
    let minute_of_day = |s: &str| -> Result<i64, String> {
        let bad = || format!("{s:?} is not a time of day (HH:MM)");
        let (hh, mm) = s.split_once(':').ok_or_else(bad)?;
        let (hh, mm): (i64, i64) = (
            hh.parse().map_err(|_| bad())?,
            mm.parse().map_err(|_| bad())?,
        );
        if !(0..=24).contains(&hh) || !(0..60).contains(&mm) || hh * 60 + mm > 24 * 60 {
            return Err(bad());
        }
        Ok(hh * 60 + mm)
    };
    let mut days = 0u8;
    for d in &h.days {
        let n = DAYS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(d))
            .ok_or_else(|| format!("{d:?} is not one of {}", DAYS.join(", ")))?;
        days |= 1 << n;
    }
    if days == 0 {
        days = 0x7f;
    }
    let offset_minutes = match h.utc_offset.as_deref() {
        None => 0,
        Some(o) => {
            let bad = || format!("utcOffset {o:?} is not +HH:MM or -HH:MM");
            let (sign, rest) = match o.as_bytes().first() {
                Some(b'+') => (1, &o[1..]),
                Some(b'-') => (-1, &o[1..]),
                _ => return Err(bad()),
            };
            let m = minute_of_day(rest).map_err(|_| bad())?;
            if m > 14 * 60 {
                return Err(bad());
            }
            sign * m
        }
    };
    let (from_minute, to_minute) = (minute_of_day(&h.from)?, minute_of_day(&h.to)?);
    if from_minute == to_minute {
        return Err(
            "from and to are the same time; leave signingHours out to allow any hour".into(),
        );
    }
    Ok(Window {
        days,
        from_minute,
        to_minute,
        offset_minutes,
    })
}

fn applies(identities: &[String], identity: Option<&str>) -> bool {
    identities.is_empty() || identity.is_some_and(|i| any_eq(identities, i))
}

fn any_eq(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(value))
}

/// `watched` as written in a rule (`sha256:<hex>` or bare hex) against `algorithm:hex`.
fn same_digest(watched: &str, digest: &str) -> bool {
    let bare = digest.split_once(':').map_or(digest, |(_, v)| v);
    watched.eq_ignore_ascii_case(digest) || watched.eq_ignore_ascii_case(bare)
}

fn rfc3339(unix_seconds: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests;

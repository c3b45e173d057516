use super::*;

/// 2026-11-30 (a Monday) 00:00:00 UTC.
const MONDAY: i64 = 1_795_996_800;
const HOUR: i64 = 3600;

fn rules(json: &str) -> Rules {
    Rules::from_json(json.as_bytes()).unwrap()
}

fn entry(identity: &str, issuer: &str, digest: &str, at: i64) -> DescribedBody {
    DescribedBody {
        kind: "hashedrekord".into(),
        artifact_digest: Some(format!("sha256:{digest}")),
        identity: Some(identity.into()),
        issuer: Some(issuer.into()),
        signed_at: Some(at),
        ..DescribedBody::default()
    }
}

/// The rule names each entry fires, entry by entry, with one state carried through.
fn run(rules: &Rules, entries: &[DescribedBody]) -> Vec<Vec<&'static str>> {
    let mut state = RuleState::default();
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut found = Vec::new();
            rules.check(&mut state, i as u64, e, &mut found);
            found.iter().map(|f| f.rule).collect()
        })
        .collect()
}

#[test]
fn the_monday_constant_is_a_monday() {
    let t = time::OffsetDateTime::from_unix_timestamp(MONDAY).unwrap();
    assert_eq!(t.weekday(), time::Weekday::Monday);
    assert_eq!((t.hour(), t.minute()), (0, 0));
}

#[test]
fn watched_identities_issuers_repositories_and_digests() {
    let r = rules(
        r#"{"watch": {"identities": ["Release@Example.com"], "issuers": ["https://ci"],
             "repositories": ["https://github.com/org/app"], "digests": ["AB12"]}}"#,
    );
    let mut repo = entry("bot", "https://other", "ff", MONDAY);
    repo.repository = Some("https://github.com/org/app".into());
    assert_eq!(
        run(
            &r,
            &[
                entry("release@example.com", "https://idp", "00", MONDAY),
                entry("x@example.com", "https://ci", "00", MONDAY),
                repo,
                entry("x@example.com", "https://idp", "ab12", MONDAY),
                entry("x@example.com", "https://idp", "ab123", MONDAY),
            ]
        ),
        vec![
            vec!["watched-identity"],
            vec!["watched-issuer"],
            vec!["watched-repository"],
            vec!["watched-digest"],
            vec![],
        ]
    );
}

#[test]
fn expected_signers_by_identity_check_the_issuer() {
    let r = rules(
        r#"{"expectedSigners": [{"identity": "release@example.com", "issuers": ["https://idp"]}]}"#,
    );
    let mut state = RuleState::default();
    let mut found = Vec::new();
    r.check(
        &mut state,
        0,
        &entry("RELEASE@example.com", "https://idp", "00", MONDAY),
        &mut found,
    );
    assert!(found.is_empty());
    r.check(
        &mut state,
        1,
        &entry("release@example.com", "https://evil", "00", MONDAY),
        &mut found,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, "unexpected-signer");
    assert_eq!(
        found[0].detail.as_deref(),
        Some("issuer https://evil is not expected for release@example.com")
    );
    r.check(
        &mut state,
        2,
        &entry("someone@example.com", "https://evil", "00", MONDAY),
        &mut found,
    );
    assert_eq!(
        found.len(),
        1,
        "entries the selector does not pick are not judged"
    );
}

#[test]
fn expected_signers_by_repository_check_identity_and_issuer() {
    let r = rules(
        r#"{"expectedSigners": [{"repository": "https://github.com/org/app",
             "identityRegexps": ["https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/tags/v.*"],
             "issuers": ["https://token.actions.githubusercontent.com"]}]}"#,
    );
    let gha = "https://token.actions.githubusercontent.com";
    let ci = |identity: &str, issuer: &str| {
        let mut e = entry(identity, issuer, "00", MONDAY);
        e.repository = Some("https://github.com/org/app".into());
        e
    };
    let release = "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1.2.0";
    let other = "https://github.com/org/app/.github/workflows/test.yml@refs/heads/main";
    // The regexp matches whole identities only.
    let suffixed = format!("x{release}");
    assert_eq!(
        run(
            &r,
            &[
                ci(release, gha),
                ci(other, gha),
                ci(release, "https://evil"),
                ci(&suffixed, gha)
            ]
        ),
        vec![
            vec![],
            vec!["unexpected-signer"],
            vec!["unexpected-signer"],
            vec!["unexpected-signer"]
        ]
    );
}

#[test]
fn signing_hours_use_the_signing_time_in_the_given_zone() {
    let r = rules(
        r#"{"signingHours": {"identities": ["release@example.com"], "days": ["mon", "tue", "wed", "thu", "fri"],
             "from": "08:00", "to": "18:00", "utcOffset": "+02:00"}}"#,
    );
    let at = |t| entry("release@example.com", "i", "00", t);
    assert_eq!(
        run(
            &r,
            &[
                at(MONDAY + 6 * HOUR),                                // 08:00 local: allowed
                at(MONDAY + 16 * HOUR - 1),                           // 17:59:59 local
                at(MONDAY + 16 * HOUR),                               // 18:00 local: closed
                at(MONDAY + HOUR),                                    // 03:00 local
                at(MONDAY + 5 * 24 * HOUR + 8 * HOUR),                // Saturday 10:00 local
                entry("other@example.com", "i", "00", MONDAY + HOUR), // not covered
            ]
        ),
        vec![
            vec![],
            vec![],
            vec!["off-hours"],
            vec!["off-hours"],
            vec!["off-hours"],
            vec![]
        ]
    );
}

#[test]
fn a_night_window_runs_over_midnight_and_belongs_to_the_day_it_starts() {
    let r = rules(r#"{"signingHours": {"days": ["fri"], "from": "22:00", "to": "02:00"}}"#);
    let friday = MONDAY + 4 * 24 * HOUR;
    let at = |t| entry("ops@example.com", "i", "00", t);
    assert_eq!(
        run(
            &r,
            &[
                at(friday + 23 * HOUR), // Friday 23:00
                at(friday + 25 * HOUR), // Saturday 01:00, Friday's night
                at(friday + 26 * HOUR), // Saturday 02:00
                at(friday + HOUR),      // Friday 01:00, Thursday's night
            ]
        ),
        vec![vec![], vec![], vec!["off-hours"], vec!["off-hours"]]
    );
}

#[test]
fn a_burst_is_reported_once_and_again_after_it_ends() {
    let r = rules(r#"{"burst": {"count": 3, "minutes": 10}}"#);
    let at = |who: &str, minute: i64| entry(who, "i", "00", MONDAY + minute * 60);
    assert_eq!(
        run(
            &r,
            &[
                at("a@x", 0),
                at("b@x", 1),
                at("a@x", 2),
                at("A@x", 3), // third for a within 10 minutes (any case)
                at("a@x", 4), // same burst
                at("a@x", 30),
                at("a@x", 31),
                at("a@x", 32), // a new burst
                at("b@x", 40),
            ]
        ),
        vec![
            vec![],
            vec![],
            vec![],
            vec!["burst"],
            vec![],
            vec![],
            vec![],
            vec!["burst"],
            vec![]
        ]
    );
}

#[test]
fn a_burst_spans_monitor_runs_through_the_state() {
    let r = rules(r#"{"burst": {"identities": ["a@x"], "count": 2, "minutes": 5}}"#);
    let mut state = RuleState::default();
    let mut found = Vec::new();
    r.check(&mut state, 0, &entry("a@x", "i", "00", MONDAY), &mut found);
    let saved: RuleState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(saved, state);
    let mut state = saved;
    r.check(
        &mut state,
        1,
        &entry("a@x", "i", "00", MONDAY + 60),
        &mut found,
    );
    assert_eq!(found.iter().map(|f| f.rule).collect::<Vec<_>>(), ["burst"]);
}

#[test]
fn a_repeated_digest_names_the_first_entry() {
    let r = rules(r#"{"repeatedDigest": {"identities": ["release@example.com"]}}"#);
    let mut state = RuleState::default();
    let mut found = Vec::new();
    for (i, (who, digest)) in [
        ("release@example.com", "aa"),
        ("release@example.com", "bb"),
        ("other@example.com", "aa"),
        ("release@example.com", "AA"),
    ]
    .into_iter()
    .enumerate()
    {
        r.check(
            &mut state,
            i as u64 + 10,
            &entry(who, "i", digest, MONDAY),
            &mut found,
        );
    }
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, "repeated-digest");
    assert_eq!(found[0].log_index, 13);
    assert_eq!(found[0].detail.as_deref(), Some("first signed at entry 10"));
    assert_eq!(
        state.signed_digests.len(),
        2,
        "only the named identity's digests are kept"
    );
}

#[test]
fn findings_carry_the_signing_time() {
    let r = rules(r#"{"watch": {"identities": ["a@x"]}}"#);
    let mut found = Vec::new();
    r.check(
        &mut RuleState::default(),
        0,
        &entry("a@x", "i", "00", MONDAY + 90),
        &mut found,
    );
    assert_eq!(found[0].signed_at.as_deref(), Some("2026-11-30T00:01:30Z"));
}

#[test]
fn bad_rules_files_are_refused_with_the_reason() {
    for (json, expected) in [
        (
            r#"{"watch": {"identity": ["a"]}}"#,
            "unknown field `identity`",
        ),
        (
            r#"{"expectedSigners": [{"issuers": ["i"]}]}"#,
            "exactly one of identity and repository",
        ),
        (
            r#"{"expectedSigners": [{"identity": "a", "identities": ["b"]}]}"#,
            "takes issuers only",
        ),
        (
            r#"{"expectedSigners": [{"repository": "r"}]}"#,
            "list the expected",
        ),
        (
            r#"{"expectedSigners": [{"repository": "r", "identityRegexps": ["("]}]}"#,
            "regex",
        ),
        (
            r#"{"signingHours": {"from": "8", "to": "18:00"}}"#,
            "not a time of day",
        ),
        (
            r#"{"signingHours": {"from": "08:00", "to": "18:00", "days": ["mo"]}}"#,
            "not one of",
        ),
        (
            r#"{"signingHours": {"from": "08:00", "to": "18:00", "utcOffset": "2"}}"#,
            "utcOffset",
        ),
        (
            r#"{"signingHours": {"from": "08:00", "to": "08:00"}}"#,
            "same time",
        ),
        (r#"{"burst": {"count": 1, "minutes": 5}}"#, "at least 2"),
        (
            r#"{"repeatedDigest": {"identities": []}}"#,
            "name the identities",
        ),
    ] {
        let error = Rules::from_json(json.as_bytes()).unwrap_err();
        assert!(error.contains(expected), "{json}: {error}");
    }
}

#[test]
fn the_rules_file_in_the_auditing_guide_is_accepted() {
    let guide = include_str!("../../../../docs/auditing.md");
    let section = &guide[guide.find("### Rules").unwrap()..];
    let start = section.find("```json\n").unwrap() + "```json\n".len();
    let end = start + section[start..].find("```").unwrap();
    let rules = Rules::from_json(&section.as_bytes()[start..end]).unwrap();
    assert_eq!(rules.expected_signers.len(), 2);
    assert!(rules.signing_hours.is_some() && rules.burst.is_some());
}

#[test]
fn only_signer_rules_make_certificates_worth_decoding() {
    assert!(!rules(r#"{"burst": {"count": 2, "minutes": 1}}"#).judges_certificates());
    assert!(!rules(r#"{"watch": {"digests": ["aa"]}}"#).judges_certificates());
    assert!(rules(r#"{"watch": {"issuers": ["i"]}}"#).judges_certificates());
    assert!(rules(r#"{"signingHours": {"from": "08:00", "to": "18:00"}}"#).judges_certificates());
}

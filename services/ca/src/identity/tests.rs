use serde_json::json;

use super::*;
use crate::config::IssuersConfig;

fn claims(value: Value) -> Claims {
    value.as_object().unwrap().clone()
}

fn issuer(json: &str, url: &str) -> IssuerConfig {
    IssuersConfig::from_json(json)
        .unwrap()
        .find(url)
        .unwrap()
        .clone()
}

fn ext_values(p: &Principal) -> Vec<(String, String, ExtEncoding)> {
    p.extensions
        .iter()
        .map(|e| (e.oid.to_string(), e.value.clone(), e.encoding))
        .collect()
}

fn github_claims() -> Value {
    json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
        "aud": "sigstore",
        "ref": "refs/heads/main",
        "sha": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "repository": "octo-org/octo-repo",
        "repository_owner": "octo-org",
        "repository_owner_id": "123456",
        "repository_id": "987654321",
        "repository_visibility": "public",
        "run_id": "4242424242",
        "run_number": "7",
        "run_attempt": "2",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "Release",
        "event_name": "push",
        "ref_type": "branch",
        "workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
        "workflow_sha": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "job_workflow_ref": "octo-org/shared/.github/workflows/build.yml@refs/tags/v1",
        "job_workflow_sha": "fedcba9876543210fedcba9876543210fedcba98"
    })
}

const GITHUB: &str = r#"{"OIDCIssuers": {"https://token.actions.githubusercontent.com": {"Type": "github-workflow"}}}"#;

#[test]
fn github_workflow_maps_to_san_and_extensions() {
    let config = issuer(GITHUB, "https://token.actions.githubusercontent.com");
    let p = principal_from_claims(&config, &claims(github_claims())).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri(
            "https://github.com/octo-org/shared/.github/workflows/build.yml@refs/tags/v1".into()
        )
    );
    assert_eq!(p.issuer, "https://token.actions.githubusercontent.com");
    assert_eq!(p.challenge, "repo:octo-org/octo-repo:ref:refs/heads/main");
    let raw = ExtEncoding::Raw;
    let utf8 = ExtEncoding::Utf8String;
    let sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let expected: Vec<(&str, &str, ExtEncoding)> = vec![
        ("1.3.6.1.4.1.57264.1.2", "push", raw),
        ("1.3.6.1.4.1.57264.1.3", sha, raw),
        ("1.3.6.1.4.1.57264.1.4", "Release", raw),
        ("1.3.6.1.4.1.57264.1.5", "octo-org/octo-repo", raw),
        ("1.3.6.1.4.1.57264.1.6", "refs/heads/main", raw),
        (
            "1.3.6.1.4.1.57264.1.9",
            "https://github.com/octo-org/shared/.github/workflows/build.yml@refs/tags/v1",
            utf8,
        ),
        (
            "1.3.6.1.4.1.57264.1.10",
            "fedcba9876543210fedcba9876543210fedcba98",
            utf8,
        ),
        ("1.3.6.1.4.1.57264.1.11", "github-hosted", utf8),
        (
            "1.3.6.1.4.1.57264.1.12",
            "https://github.com/octo-org/octo-repo",
            utf8,
        ),
        ("1.3.6.1.4.1.57264.1.13", sha, utf8),
        ("1.3.6.1.4.1.57264.1.14", "refs/heads/main", utf8),
        ("1.3.6.1.4.1.57264.1.15", "987654321", utf8),
        (
            "1.3.6.1.4.1.57264.1.16",
            "https://github.com/octo-org",
            utf8,
        ),
        ("1.3.6.1.4.1.57264.1.17", "123456", utf8),
        (
            "1.3.6.1.4.1.57264.1.18",
            "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
            utf8,
        ),
        ("1.3.6.1.4.1.57264.1.19", sha, utf8),
        ("1.3.6.1.4.1.57264.1.20", "push", utf8),
        (
            "1.3.6.1.4.1.57264.1.21",
            "https://github.com/octo-org/octo-repo/actions/runs/4242424242/attempts/2",
            utf8,
        ),
        ("1.3.6.1.4.1.57264.1.22", "public", utf8),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(o, v, e)| (o.to_string(), v.to_string(), e))
        .collect();
    assert_eq!(ext_values(&p), expected);
}

#[test]
fn github_workflow_numeric_ids_and_environment() {
    let config = issuer(GITHUB, "https://token.actions.githubusercontent.com");
    let mut c = github_claims();
    c["repository_id"] = json!(987654321);
    c["environment"] = json!("production");
    let p = principal_from_claims(&config, &claims(c)).unwrap();
    let exts = ext_values(&p);
    assert!(exts.contains(&(
        "1.3.6.1.4.1.57264.1.15".into(),
        "987654321".into(),
        ExtEncoding::Utf8String
    )));
    assert_eq!(
        exts.last().unwrap(),
        &(
            "1.3.6.1.4.1.57264.1.23".into(),
            "production".into(),
            ExtEncoding::Utf8String
        )
    );
}

#[test]
fn github_workflow_requires_its_claims() {
    let config = issuer(GITHUB, "https://token.actions.githubusercontent.com");
    let mut c = github_claims();
    c.as_object_mut().unwrap().remove("job_workflow_ref");
    assert_eq!(
        principal_from_claims(&config, &claims(c)).unwrap_err(),
        IdentityError::MissingClaim {
            claim: "job_workflow_ref".into(),
            issuer_type: "github-workflow"
        }
    );
}

fn gitlab_claims() -> Value {
    json!({
        "iss": "https://gitlab.com",
        "sub": "project_path:my-group/my-project:ref_type:branch:ref:main",
        "aud": "sigstore",
        "namespace_id": "1730270",
        "namespace_path": "my-group",
        "project_id": "42",
        "project_path": "my-group/my-project",
        "pipeline_id": "2000",
        "pipeline_source": "push",
        "job_id": "3000",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "runner_id": 1,
        "runner_environment": "gitlab-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "project_visibility": "public",
        "ci_config_ref_uri": "gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc"
    })
}

#[test]
fn gitlab_pipeline_maps_to_san_and_extensions() {
    let config = issuer(
        r#"{"OIDCIssuers": {"https://gitlab.com": {"Type": "gitlab-pipeline"}}}"#,
        "https://gitlab.com",
    );
    let p = principal_from_claims(&config, &claims(gitlab_claims())).unwrap();
    let san = "https://gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main";
    assert_eq!(p.san, SubjectAltName::Uri(san.into()));
    assert_eq!(p.issuer, "https://gitlab.com");
    assert_eq!(
        p.challenge,
        "project_path:my-group/my-project:ref_type:branch:ref:main"
    );
    let sha = "714a629c0b401fdce83e847fc9589983fc6f46bc";
    let expected: Vec<(String, String, ExtEncoding)> = [
        ("1.3.6.1.4.1.57264.1.9", san),
        ("1.3.6.1.4.1.57264.1.10", sha),
        ("1.3.6.1.4.1.57264.1.11", "gitlab-hosted"),
        (
            "1.3.6.1.4.1.57264.1.12",
            "https://gitlab.com/my-group/my-project",
        ),
        ("1.3.6.1.4.1.57264.1.13", sha),
        ("1.3.6.1.4.1.57264.1.14", "refs/heads/main"),
        ("1.3.6.1.4.1.57264.1.15", "42"),
        ("1.3.6.1.4.1.57264.1.16", "https://gitlab.com/my-group"),
        ("1.3.6.1.4.1.57264.1.17", "1730270"),
        ("1.3.6.1.4.1.57264.1.18", san),
        ("1.3.6.1.4.1.57264.1.19", sha),
        ("1.3.6.1.4.1.57264.1.20", "push"),
        (
            "1.3.6.1.4.1.57264.1.21",
            "https://gitlab.com/my-group/my-project/-/jobs/3000",
        ),
        ("1.3.6.1.4.1.57264.1.22", "public"),
    ]
    .into_iter()
    .map(|(o, v)| (o.to_string(), v.to_string(), ExtEncoding::Utf8String))
    .collect();
    assert_eq!(ext_values(&p), expected);
}

#[test]
fn gitlab_tag_refs_and_self_hosted_scheme() {
    let config = issuer(
        r#"{"OIDCIssuers": {"http://127.0.0.1:8929": {"Type": "gitlab-pipeline"}}}"#,
        "http://127.0.0.1:8929",
    );
    let mut c = gitlab_claims();
    c["iss"] = json!("http://127.0.0.1:8929");
    c["ref_type"] = json!("tag");
    c["ref"] = json!("v1.2.3");
    c["ci_config_ref_uri"] = json!("127.0.0.1/g/p//.gitlab-ci.yml@refs/tags/v1.2.3");
    let p = principal_from_claims(&config, &claims(c)).unwrap();
    // Same host as the instance: the instance's scheme (http) is kept.
    assert_eq!(
        p.san,
        SubjectAltName::Uri("http://127.0.0.1/g/p//.gitlab-ci.yml@refs/tags/v1.2.3".into())
    );
    let exts = ext_values(&p);
    assert!(
        exts.iter()
            .any(|(o, v, _)| o == "1.3.6.1.4.1.57264.1.14" && v == "refs/tags/v1.2.3")
    );
    assert!(exts.iter().any(|(o, v, _)| o == "1.3.6.1.4.1.57264.1.12"
        && v == "http://127.0.0.1:8929/my-group/my-project"));

    let mut bad = gitlab_claims();
    bad["ref_type"] = json!("merge_request");
    assert!(matches!(
        principal_from_claims(&config, &claims(bad)),
        Err(IdentityError::InvalidClaim { claim, .. }) if claim == "ref_type"
    ));
}

const EMAIL: &str = r#"{"OIDCIssuers": {
  "https://dex.example.com": {"Type": "email", "IssuerClaim": "$.federated_claims.connector_id"},
  "https://plain.example.com": {"Type": "email"},
  "https://lax.example.com": {"Type": "email", "SkipEmailVerification": true}
}}"#;

#[test]
fn email_identity_and_verification() {
    let config = issuer(EMAIL, "https://plain.example.com");
    let c = json!({"iss": "https://plain.example.com", "sub": "1234", "email": "alice@example.com", "email_verified": true});
    let p = principal_from_claims(&config, &claims(c.clone())).unwrap();
    assert_eq!(p.san, SubjectAltName::Email("alice@example.com".into()));
    assert_eq!(p.challenge, "alice@example.com");
    assert_eq!(p.issuer, "https://plain.example.com");
    assert!(p.extensions.is_empty());

    let mut unverified = c.clone();
    unverified["email_verified"] = json!(false);
    assert_eq!(
        principal_from_claims(&config, &claims(unverified.clone())).unwrap_err(),
        IdentityError::EmailNotVerified
    );
    let mut absent = c.clone();
    absent.as_object_mut().unwrap().remove("email_verified");
    assert_eq!(
        principal_from_claims(&config, &claims(absent)).unwrap_err(),
        IdentityError::EmailNotVerified
    );
    let mut string_true = c.clone();
    string_true["email_verified"] = json!("true");
    assert!(principal_from_claims(&config, &claims(string_true)).is_ok());

    let lax = issuer(EMAIL, "https://lax.example.com");
    unverified["iss"] = json!("https://lax.example.com");
    assert!(principal_from_claims(&lax, &claims(unverified)).is_ok());

    let mut no_email = c;
    no_email.as_object_mut().unwrap().remove("email");
    assert!(matches!(
        principal_from_claims(&config, &claims(no_email)),
        Err(IdentityError::MissingClaim { claim, issuer_type: "email" }) if claim == "email"
    ));
}

#[test]
fn email_issuer_claim_replaces_iss() {
    let config = issuer(EMAIL, "https://dex.example.com");
    let c = json!({"iss": "https://dex.example.com", "sub": "x", "email": "bob@example.com",
        "email_verified": true, "federated_claims": {"connector_id": "https://github.com/login/oauth", "user_id": "1"}});
    let p = principal_from_claims(&config, &claims(c)).unwrap();
    assert_eq!(p.issuer, "https://github.com/login/oauth");
    let c = json!({"iss": "https://dex.example.com", "sub": "x", "email": "bob@example.com", "email_verified": true});
    assert!(matches!(
        principal_from_claims(&config, &claims(c)),
        Err(IdentityError::MissingClaim { .. })
    ));
}

#[test]
fn spiffe_uri_username_kubernetes_buildkite() {
    let json = r#"{"OIDCIssuers": {
      "https://spire.example.com": {"Type": "spiffe", "SPIFFETrustDomain": "example.com"},
      "https://uri.example.com": {"Type": "uri", "SubjectDomain": "https://example.com"},
      "https://user.example.com": {"Type": "username", "SubjectDomain": "example.com"},
      "https://k8s.example.com": {"Type": "kubernetes"},
      "https://agent.buildkite.com": {"Type": "buildkite-job"}
    }}"#;
    let base = |iss: &str, sub: &str| json!({"iss": iss, "sub": sub});

    let spiffe = issuer(json, "https://spire.example.com");
    let p = principal_from_claims(
        &spiffe,
        &claims(base(
            "https://spire.example.com",
            "spiffe://example.com/ns/prod/sa/api",
        )),
    )
    .unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("spiffe://example.com/ns/prod/sa/api".into())
    );
    assert_eq!(p.challenge, "spiffe://example.com/ns/prod/sa/api");
    for bad in [
        "spiffe://evil.com/ns/x",
        "https://example.com/x",
        "spiffe://example.com",
    ] {
        assert!(
            principal_from_claims(&spiffe, &claims(base("https://spire.example.com", bad)))
                .is_err(),
            "{bad}"
        );
    }

    let uri = issuer(json, "https://uri.example.com");
    let p = principal_from_claims(
        &uri,
        &claims(base(
            "https://uri.example.com",
            "https://example.com/users/alice",
        )),
    )
    .unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("https://example.com/users/alice".into())
    );
    for bad in [
        "https://evil.com/users/alice",
        "http://example.com/users/alice",
        "alice@example.com",
    ] {
        assert!(
            principal_from_claims(&uri, &claims(base("https://uri.example.com", bad))).is_err(),
            "{bad}"
        );
    }

    let user = issuer(json, "https://user.example.com");
    let p =
        principal_from_claims(&user, &claims(base("https://user.example.com", "alice"))).unwrap();
    assert_eq!(p.san, SubjectAltName::Username("alice!example.com".into()));
    assert_eq!(p.challenge, "alice");
    for bad in ["al!ce", "alice@example.com"] {
        assert!(
            principal_from_claims(&user, &claims(base("https://user.example.com", bad))).is_err(),
            "{bad}"
        );
    }

    let k8s = issuer(json, "https://k8s.example.com");
    let c = json!({"iss": "https://k8s.example.com", "sub": "system:serviceaccount:prod:builder",
        "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "builder", "uid": "u"}}});
    let p = principal_from_claims(&k8s, &claims(c)).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("https://kubernetes.io/namespaces/prod/serviceaccounts/builder".into())
    );
    assert_eq!(p.challenge, "system:serviceaccount:prod:builder");
    assert!(principal_from_claims(&k8s, &claims(base("https://k8s.example.com", "s"))).is_err());

    let bk = issuer(json, "https://agent.buildkite.com");
    let c = json!({"iss": "https://agent.buildkite.com", "sub": "organization:acme:pipeline:app:ref:refs/heads/main",
        "organization_slug": "acme", "pipeline_slug": "app"});
    let p = principal_from_claims(&bk, &claims(c)).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("https://buildkite.com/acme/app".into())
    );
    assert!(p.extensions.is_empty());
}

#[test]
fn claim_paths() {
    assert_eq!(parse_claim_path("$.a.b").unwrap(), vec!["a", "b"]);
    assert!(parse_claim_path("a.b").is_err());
    assert!(parse_claim_path("$.a..b").is_err());
}

const CI_PROVIDERS: &str = r#"{
  "OIDCIssuers": {
    "https://token.actions.githubusercontent.com": {"Type": "ci-provider", "CIProvider": "github-workflow"},
    "https://ci.acme.example": {"Type": "ci-provider", "CIProvider": "acme-ci"}
  },
  "CIIssuerMetadata": {
    "github-workflow": {
      "DefaultTemplateValues": {"url": "https://github.com"},
      "ExtensionTemplates": {
        "GithubWorkflowTrigger": "event_name", "GithubWorkflowSHA": "sha", "GithubWorkflowName": "workflow",
        "GithubWorkflowRepository": "repository", "GithubWorkflowRef": "ref",
        "BuildSignerURI": "{{ .url }}/{{ .job_workflow_ref }}", "BuildSignerDigest": "job_workflow_sha",
        "RunnerEnvironment": "runner_environment", "SourceRepositoryURI": "{{ .url }}/{{ .repository }}",
        "SourceRepositoryDigest": "sha", "SourceRepositoryRef": "ref", "SourceRepositoryIdentifier": "repository_id",
        "SourceRepositoryOwnerURI": "{{ .url }}/{{ .repository_owner }}",
        "SourceRepositoryOwnerIdentifier": "repository_owner_id",
        "BuildConfigURI": "{{ .url }}/{{ .workflow_ref }}", "BuildConfigDigest": "workflow_sha",
        "BuildTrigger": "event_name",
        "RunInvocationURI": "{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}",
        "SourceRepositoryVisibilityAtSigning": "repository_visibility"
      },
      "SubjectAlternativeNameTemplate": "{{ .url }}/{{ .job_workflow_ref }}"
    },
    "acme-ci": {
      "DefaultTemplateValues": {"url": "https://ci.acme.example", "runner": "acme-hosted"},
      "ExtensionTemplates": {
        "build-signer-uri": "{{ .url }}/pipelines/{{ .pipeline }}",
        "runner-environment": "runner",
        "source-repository-digest": "commit"
      },
      "SubjectAlternativeNameTemplate": "{{ .url }}/pipelines/{{ .pipeline }}"
    }
  }
}"#;

#[test]
fn ci_provider_templates_reproduce_the_github_mapping() {
    let templated = issuer(CI_PROVIDERS, "https://token.actions.githubusercontent.com");
    let builtin = issuer(GITHUB, "https://token.actions.githubusercontent.com");
    let c = claims(github_claims());
    assert_eq!(
        principal_from_claims(&templated, &c).unwrap(),
        principal_from_claims(&builtin, &c).unwrap()
    );
}

#[test]
fn ci_provider_for_a_new_vendor_is_configuration() {
    let acme = issuer(CI_PROVIDERS, "https://ci.acme.example");
    let c = json!({"iss": "https://ci.acme.example", "sub": "pipeline:web:42",
        "pipeline": "web", "commit": "deadbeef", "runner": "self-hosted"});
    let p = principal_from_claims(&acme, &claims(c)).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("https://ci.acme.example/pipelines/web".into())
    );
    assert_eq!(p.challenge, "pipeline:web:42");
    assert_eq!(
        ext_values(&p),
        vec![
            (
                "1.3.6.1.4.1.57264.1.9".to_string(),
                "https://ci.acme.example/pipelines/web".to_string(),
                ExtEncoding::Utf8String
            ),
            // the claim wins over the default value
            (
                "1.3.6.1.4.1.57264.1.11".to_string(),
                "self-hosted".to_string(),
                ExtEncoding::Utf8String
            ),
            (
                "1.3.6.1.4.1.57264.1.13".to_string(),
                "deadbeef".to_string(),
                ExtEncoding::Utf8String
            ),
        ]
    );
    let c = json!({"iss": "https://ci.acme.example", "sub": "s", "pipeline": "web"});
    assert_eq!(
        principal_from_claims(&acme, &claims(c)).unwrap_err(),
        IdentityError::MissingClaim {
            claim: "commit".into(),
            issuer_type: "ci-provider"
        }
    );
}

#[test]
fn ci_provider_config_errors() {
    let bad = [
        // CIProvider without metadata
        r#"{"OIDCIssuers": {"https://ci.example": {"Type": "ci-provider", "CIProvider": "nope"}}}"#,
        // ci-provider without CIProvider
        r#"{"OIDCIssuers": {"https://ci.example": {"Type": "ci-provider"}}}"#,
        // unknown extension key
        r#"{"CIIssuerMetadata": {"x": {"ExtensionTemplates": {"BuildSignerUrl": "a"}, "SubjectAlternativeNameTemplate": "{{ .u }}"}}}"#,
        // unsupported template syntax
        r#"{"CIIssuerMetadata": {"x": {"SubjectAlternativeNameTemplate": "{{ .u | html }}"}}}"#,
        // empty SAN template
        r#"{"CIIssuerMetadata": {"x": {"SubjectAlternativeNameTemplate": " "}}}"#,
    ];
    for text in bad {
        assert!(IssuersConfig::from_json(text).is_err(), "accepted: {text}");
    }
}

#[test]
fn challenge_claim_override_is_what_pop_signs() {
    let config = issuer(
        r#"{"OIDCIssuers": {"https://ids.example.com": {"Type": "uri", "SubjectDomain": "https://example.com", "ChallengeClaim": "email"}}}"#,
        "https://ids.example.com",
    );
    let c = json!({"iss": "https://ids.example.com", "sub": "https://example.com/u/alice", "email": "alice@example.com"});
    let p = principal_from_claims(&config, &claims(c)).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("https://example.com/u/alice".into())
    );
    assert_eq!(p.challenge, "alice@example.com");
    let c = json!({"iss": "https://ids.example.com", "sub": "https://example.com/u/alice"});
    assert!(matches!(
        principal_from_claims(&config, &claims(c)),
        Err(IdentityError::MissingClaim { claim, .. }) if claim == "email"
    ));
}

#[test]
fn codefresh_and_chainguard() {
    let json = r#"{"OIDCIssuers": {
      "https://oidc.codefresh.io": {"Type": "codefresh-workflow"},
      "https://issuer.enforce.dev": {"Type": "chainguard-identity"}
    }}"#;
    let cf = issuer(json, "https://oidc.codefresh.io");
    let c = json!({"iss": "https://oidc.codefresh.io", "sub": "account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1",
        "account_id": "628a80b693a15c0f9c13ab75", "account_name": "codefresh-account",
        "pipeline_id": "65e5a53e52853dc51a5b0cc1", "pipeline_name": "oidc-test/get-token",
        "workflow_id": "65e6d5551e6a8ed6e8e3a1b8", "runner_environment": "cloud",
        "scm_repo_url": "https://github.com/codefresh-user/oidc-test", "scm_ref": "main"});
    let p = principal_from_claims(&cf, &claims(c)).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri(
            "https://g.codefresh.io/codefresh-account/oidc-test/get-token:628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1".into()
        )
    );
    let build = "https://g.codefresh.io/build/65e6d5551e6a8ed6e8e3a1b8";
    let utf8 = ExtEncoding::Utf8String;
    let expected: Vec<(String, String, ExtEncoding)> = [
        ("1.3.6.1.4.1.57264.1.9", build),
        ("1.3.6.1.4.1.57264.1.11", "cloud"),
        (
            "1.3.6.1.4.1.57264.1.12",
            "https://github.com/codefresh-user/oidc-test",
        ),
        ("1.3.6.1.4.1.57264.1.14", "main"),
        ("1.3.6.1.4.1.57264.1.18", build),
        ("1.3.6.1.4.1.57264.1.21", build),
    ]
    .into_iter()
    .map(|(o, v)| (o.to_string(), v.to_string(), utf8))
    .collect();
    assert_eq!(ext_values(&p), expected);
    let c = json!({"iss": "https://oidc.codefresh.io", "sub": "s", "account_id": "a", "pipeline_id": "p"});
    assert!(matches!(
        principal_from_claims(&cf, &claims(c)),
        Err(IdentityError::MissingClaim { claim, .. }) if claim == "workflow_id"
    ));

    let cg = issuer(json, "https://issuer.enforce.dev");
    let c = json!({"iss": "https://issuer.enforce.dev", "sub": "0f0b6d2b5a1e/4d6c2b"});
    let p = principal_from_claims(&cg, &claims(c)).unwrap();
    assert_eq!(
        p.san,
        SubjectAltName::Uri("https://issuer.enforce.dev/0f0b6d2b5a1e/4d6c2b".into())
    );
    assert_eq!(p.challenge, "0f0b6d2b5a1e/4d6c2b");
    let c = json!({"iss": "https://issuer.enforce.dev", "sub": "x", "email": "ci@example.com", "email_verified": true});
    assert_eq!(
        principal_from_claims(&cg, &claims(c)).unwrap().challenge,
        "ci@example.com"
    );
    let c = json!({"iss": "https://issuer.enforce.dev", "sub": "x", "email": "ci@example.com"});
    assert_eq!(
        principal_from_claims(&cg, &claims(c)).unwrap_err(),
        IdentityError::EmailNotVerified
    );
}

#[test]
fn san_must_fit_an_ia5string() {
    let config = issuer(EMAIL, "https://plain.example.com");
    for email in ["jürgen@example.com", "a\u{7}b@example.com"] {
        let c = json!({"iss": "https://plain.example.com", "sub": "1", "email": email, "email_verified": true});
        assert!(
            matches!(
                principal_from_claims(&config, &claims(c)),
                Err(IdentityError::InvalidClaim { .. })
            ),
            "{email:?}"
        );
    }
}

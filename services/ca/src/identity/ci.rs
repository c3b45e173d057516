//! CI workload identities: the SAN and the Fulcio provenance extensions (interop §1.6).

use super::{ClaimReader, ExtEncoding, FulcioExtension, IdentityError, SubjectAltName, fulcio_oid};

/// Collects extensions in OID order, leaving out empty values as Fulcio does.
struct Extensions(Vec<FulcioExtension>);

impl Extensions {
    fn push(&mut self, n: u32, value: impl Into<String>) {
        let value = value.into();
        if value.is_empty() {
            return;
        }
        let encoding = if n <= 6 {
            ExtEncoding::Raw
        } else {
            ExtEncoding::Utf8String
        };
        self.0.push(FulcioExtension {
            oid: fulcio_oid(n),
            value,
            encoding,
        });
    }
}

fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// GitHub Actions: SAN `https://github.com/<job_workflow_ref>`, legacy 1.2–1.6 and 1.9–1.23.
pub(super) fn github_workflow(
    get: &ClaimReader<'_>,
    base: &str,
) -> Result<(SubjectAltName, Vec<FulcioExtension>), IdentityError> {
    let job_workflow_ref = get.required("job_workflow_ref")?;
    let job_workflow_sha = get.required("job_workflow_sha")?;
    let sha = get.required("sha")?;
    let event_name = get.required("event_name")?;
    let repository = get.required("repository")?;
    let repository_id = get.required("repository_id")?;
    let repository_owner = get.required("repository_owner")?;
    let repository_owner_id = get.required("repository_owner_id")?;
    let workflow = get.required("workflow")?;
    let workflow_ref = get.required("workflow_ref")?;
    let workflow_sha = get.required("workflow_sha")?;
    let git_ref = get.required("ref")?;
    let run_id = get.required("run_id")?;
    let run_attempt = get.required("run_attempt")?;
    let runner_environment = get.optional("runner_environment").unwrap_or_default();
    let visibility = get.optional("repository_visibility").unwrap_or_default();
    let environment = get.optional("environment").unwrap_or_default();

    let signer_uri = join(base, &job_workflow_ref);
    let mut ext = Extensions(Vec::new());
    ext.push(2, event_name.clone());
    ext.push(3, sha.clone());
    ext.push(4, workflow);
    ext.push(5, repository.clone());
    ext.push(6, git_ref.clone());
    ext.push(9, signer_uri.clone());
    ext.push(10, job_workflow_sha);
    ext.push(11, runner_environment);
    ext.push(12, join(base, &repository));
    ext.push(13, sha);
    ext.push(14, git_ref);
    ext.push(15, repository_id);
    ext.push(16, join(base, &repository_owner));
    ext.push(17, repository_owner_id);
    ext.push(18, join(base, &workflow_ref));
    ext.push(19, workflow_sha);
    ext.push(20, event_name);
    ext.push(
        21,
        join(
            base,
            &format!("{repository}/actions/runs/{run_id}/attempts/{run_attempt}"),
        ),
    );
    ext.push(22, visibility);
    ext.push(23, environment);
    Ok((SubjectAltName::Uri(signer_uri), ext.0))
}

/// GitLab CI: SAN `https://<ci_config_ref_uri>` and 1.9–1.22 (GitLab has no legacy 1.2–1.6).
pub(super) fn gitlab_pipeline(
    get: &ClaimReader<'_>,
    base: &str,
) -> Result<(SubjectAltName, Vec<FulcioExtension>), IdentityError> {
    let config_ref_uri = get.required("ci_config_ref_uri")?;
    let config_sha = get.optional("ci_config_sha").unwrap_or_default();
    let project_path = get.required("project_path")?;
    let project_id = get.required("project_id")?;
    let namespace_path = get.required("namespace_path")?;
    let namespace_id = get.required("namespace_id")?;
    let pipeline_source = get.required("pipeline_source")?;
    let job_id = get.required("job_id")?;
    let sha = get.required("sha")?;
    let runner_environment = get.required("runner_environment")?;
    let visibility = get.optional("project_visibility").unwrap_or_default();
    let git_ref = match (
        get.required("ref_type")?.as_str(),
        get.required("ref")?.as_str(),
    ) {
        ("branch", r) => format!("refs/heads/{r}"),
        ("tag", r) => format!("refs/tags/{r}"),
        (other, _) => {
            return Err(get.invalid("ref_type", &format!("unexpected value {other:?}")));
        }
    };

    // The claim has no scheme; like Fulcio, use the instance's scheme when it is the same host.
    let base_url = url::Url::parse(base).ok();
    let ref_host = config_ref_uri.split('/').next().unwrap_or_default();
    let scheme = match &base_url {
        Some(u) if u.host_str() == Some(ref_host) => u.scheme().to_string(),
        _ => "https".to_string(),
    };
    let config_uri = format!("{scheme}://{config_ref_uri}");

    let mut ext = Extensions(Vec::new());
    ext.push(9, config_uri.clone());
    ext.push(10, config_sha.clone());
    ext.push(11, runner_environment);
    ext.push(12, join(base, &project_path));
    ext.push(13, sha);
    ext.push(14, git_ref);
    ext.push(15, project_id);
    ext.push(16, join(base, &namespace_path));
    ext.push(17, namespace_id);
    ext.push(18, config_uri.clone());
    ext.push(19, config_sha);
    ext.push(20, pipeline_source);
    ext.push(21, join(base, &format!("{project_path}/-/jobs/{job_id}")));
    ext.push(22, visibility);
    Ok((SubjectAltName::Uri(config_uri), ext.0))
}

/// Codefresh: SAN `<platform_url>/<account_name>/<pipeline_name>:<account_id>/<pipeline_id>`
/// (names may change, ids do not, so both are there); the build URL fills 1.9, 1.18 and 1.21.
pub(super) fn codefresh_workflow(
    get: &ClaimReader<'_>,
) -> Result<(SubjectAltName, Vec<FulcioExtension>), IdentityError> {
    let account_id = get.required("account_id")?;
    let pipeline_id = get.required("pipeline_id")?;
    let workflow_id = get.required("workflow_id")?;
    let account_name = get.optional("account_name").unwrap_or_default();
    let pipeline_name = get.optional("pipeline_name").unwrap_or_default();
    let platform = get
        .optional("platform_url")
        .unwrap_or_else(|| "https://g.codefresh.io".to_string());
    let san = join(
        &platform,
        &format!("{account_name}/{pipeline_name}:{account_id}/{pipeline_id}"),
    );
    let build = join(&platform, &format!("build/{workflow_id}"));
    let mut ext = Extensions(Vec::new());
    ext.push(9, build.clone());
    ext.push(11, get.optional("runner_environment").unwrap_or_default());
    ext.push(12, get.optional("scm_repo_url").unwrap_or_default());
    ext.push(14, get.optional("scm_ref").unwrap_or_default());
    ext.push(18, build.clone());
    ext.push(21, build);
    Ok((SubjectAltName::Uri(san), ext.0))
}

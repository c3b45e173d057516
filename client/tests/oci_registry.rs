//! The registry layer against real registries: concurrent writers of the referrers tag
//! schema index and of legacy `.sig` manifests all land; Basic auth, TLS with a private CA
//! and Docker config credentials work, and credentials never follow a redirect to another
//! host.

use std::collections::BTreeMap;
use std::sync::Arc;

use sigil_client::oci::attach::{BundleAttachment, LegacyAttachment, attach_bundle, attach_legacy};
use sigil_client::oci::{CredentialSource, ImageRef, Registry, RegistryOptions};
use sigil_proto::cosign::{self, LegacyLayer};
use sigil_proto::oci::{Descriptor, Digest, Index, LegacyTag, Manifest};
use sigil_tests::registry::{CommitFault, DockerRegistry, FaultyProxy, Images};

const WRITERS: usize = 8;

fn anonymous() -> Registry {
    Registry::new(RegistryOptions {
        credentials: CredentialSource {
            explicit: None,
            docker_config: None,
        },
        ..RegistryOptions::default()
    })
}

async fn subject(registry: &Registry, image: &ImageRef) -> Descriptor {
    registry.require_manifest(image).await.unwrap().descriptor()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_of_the_referrers_tag_index_all_land() {
    let reg = DockerRegistry::start();
    let images = Images::new();
    let digest = images.push(
        &format!("{}/race:v1", reg.host()),
        &[("a", b"race".as_slice())],
    );
    let image = ImageRef::parse(&format!("{}/race@{digest}", reg.host())).unwrap();
    let registry = Arc::new(anonymous());
    let subject = subject(&registry, &image).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let (registry, image, subject, barrier) = (
            registry.clone(),
            image.clone(),
            subject.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let bundle = format!("{{\"writer\":{n}}}");
            barrier.wait().await;
            attach_bundle(
                &registry,
                &image,
                &subject,
                &BundleAttachment {
                    bundle_json: bundle.as_bytes(),
                    content: "dsse-envelope",
                    predicate_type: cosign::SIGN_PREDICATE_TYPE,
                    created: "2026-11-30T00:00:00Z",
                },
            )
            .await
            .unwrap()
        }));
    }
    let mut stored = Vec::new();
    for t in tasks {
        stored.push(t.await.unwrap().reference);
    }
    let tag = image.at_tag(&Digest::parse(&digest).unwrap().tag_stem());
    let index = Index::from_json(&registry.require_manifest(&tag).await.unwrap().bytes).unwrap();
    for reference in &stored {
        let d = reference.rsplit_once('@').unwrap().1;
        assert!(
            index.manifests.iter().any(|m| m.digest.to_string() == d),
            "{reference} lost from the index of {} entries",
            index.manifests.len()
        );
    }
    assert_eq!(index.manifests.len(), WRITERS);
}

/// Pushes a blob through a proxy that fails the registry's first `times` upload commits with
/// `fault`, and returns the result with the number of faults the proxy injected.
async fn push_through_faults(
    fault: CommitFault,
    times: usize,
) -> (
    Result<Digest, sigil_client::oci::RegistryError>,
    usize,
    Vec<u8>,
) {
    let reg = DockerRegistry::start();
    let proxy = FaultyProxy::start(&reg.host(), fault, times).await;
    let repository = ImageRef::parse(&format!("{}/faults:v1", proxy.host())).unwrap();
    let registry = anonymous();
    let content = format!("{{\"fault\":\"{fault:?}\"}}").into_bytes();
    let pushed = registry.push_blob(&repository, &content).await;
    (pushed, proxy.faults_injected(), content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_upload_the_registry_fails_is_sent_again() {
    let (pushed, injected, content) = push_through_faults(CommitFault::FailBeforeStoring, 2).await;
    assert_eq!(injected, 2);
    assert_eq!(pushed.unwrap(), Digest::sha256_of(&content));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_stored_despite_a_failed_commit_counts_as_pushed() {
    let (pushed, injected, content) = push_through_faults(CommitFault::FailAfterStoring, 10).await;
    assert_eq!(
        injected, 1,
        "the blob was found stored instead of being sent again"
    );
    assert_eq!(pushed.unwrap(), Digest::sha256_of(&content));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_keeps_failing_uploads_is_reported() {
    let (pushed, injected, _) = push_through_faults(CommitFault::FailBeforeStoring, 100).await;
    assert_eq!(injected, 4, "one upload and three retries");
    let error = pushed.unwrap_err().to_string();
    assert!(error.contains("500"), "{error}");
}

/// Attaches a bundle to an image through a proxy that refuses the first `times` manifest
/// uploads with `MANIFEST_BLOB_UNKNOWN`; returns the result and the refusals injected.
async fn attach_through_blob_unknown(times: usize) -> (Result<String, String>, usize) {
    let reg = DockerRegistry::start();
    let digest = Images::new().push(
        &format!("{}/link-race:v1", reg.host()),
        &[("a", b"link race".as_slice())],
    );
    let proxy = FaultyProxy::start(&reg.host(), CommitFault::ManifestBlobUnknown, times).await;
    let image = ImageRef::parse(&format!("{}/link-race@{digest}", proxy.host())).unwrap();
    let registry = anonymous();
    let subject = subject(&registry, &image).await;
    let attached = attach_bundle(
        &registry,
        &image,
        &subject,
        &BundleAttachment {
            bundle_json: b"{\"writer\":0}",
            content: "dsse-envelope",
            predicate_type: cosign::SIGN_PREDICATE_TYPE,
            created: "2026-11-30T00:00:00Z",
        },
    )
    .await
    .map(|a| a.reference)
    .map_err(|e| e.to_string());
    (attached, proxy.faults_injected())
}

/// Signers attaching to one image at once all commit the same empty config blob, and
/// distribution can refuse a manifest naming it while another commit rewrites its link. The
/// refusal (seen once in CI in the racing-writers test above) is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_refused_for_a_blob_being_rewritten_is_sent_again() {
    let (attached, injected) = attach_through_blob_unknown(2).await;
    assert_eq!(injected, 2);
    let reference = attached.unwrap();
    assert!(reference.contains("/link-race@sha256:"), "{reference}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_whose_blob_stays_unknown_is_reported() {
    let (attached, injected) = attach_through_blob_unknown(100).await;
    assert_eq!(injected, 4, "one upload and three retries");
    let error = attached.unwrap_err();
    assert!(error.contains("MANIFEST_BLOB_UNKNOWN"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_of_a_legacy_signature_tag_all_land() {
    let reg = DockerRegistry::start();
    let images = Images::new();
    let digest = images.push(
        &format!("{}/legacy-race:v1", reg.host()),
        &[("a", b"legacy".as_slice())],
    );
    let digest = Digest::parse(&digest).unwrap();
    let image = ImageRef::parse(&format!("{}/legacy-race@{digest}", reg.host())).unwrap();
    let registry = Arc::new(anonymous());
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let (registry, image, digest, barrier) = (
            registry.clone(),
            image.clone(),
            digest.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let payload = cosign::SimpleSigning::new(
                &image.name(),
                &digest,
                &BTreeMap::from([("writer".to_string(), n.to_string())]),
            )
            .to_json();
            barrier.wait().await;
            attach_legacy(
                &registry,
                &image,
                &digest,
                LegacyTag::Signatures,
                &LegacyAttachment {
                    payload: &payload,
                    media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE,
                    layer: LegacyLayer {
                        signature_b64: "c2ln",
                        certificate_pem: None,
                        rekor_bundle: None,
                        predicate_type: None,
                    },
                },
            )
            .await
            .unwrap();
            Digest::sha256_of(&payload)
        }));
    }
    let mut payloads = Vec::new();
    for t in tasks {
        payloads.push(t.await.unwrap());
    }
    let tag = image.at_tag(&LegacyTag::Signatures.tag_for(&digest));
    let manifest =
        Manifest::from_json(&registry.require_manifest(&tag).await.unwrap().bytes).unwrap();
    for p in &payloads {
        assert!(
            manifest.layers.iter().any(|l| &l.digest == p),
            "a signature layer was lost ({} layers)",
            manifest.layers.len()
        );
    }
    assert_eq!(manifest.layers.len(), WRITERS);
}

fn docker_config(
    dir: &std::path::Path,
    host: &str,
    user: &str,
    password: &str,
) -> std::path::PathBuf {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_with_a_private_ca() {
    use sigil_client::oci::{Credential, Insecure, RegistryError};
    let reg = DockerRegistry::start_with(sigil_tests::registry::RegistryOptions {
        basic_auth: Some(("ci".into(), "s3cret".into())),
        tls: true,
        ..Default::default()
    });
    let host = reg.host();
    let ca = reg.ca_path().unwrap();
    let creds = tempfile::tempdir().unwrap();
    let config = docker_config(creds.path(), &host, "ci", "s3cret");
    let images = Images::with_env(&[
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("DOCKER_CONFIG", creds.path().to_str().unwrap()),
    ]);
    let digest = images.push(
        &format!("{host}/private:v1"),
        &[("p", b"private".as_slice())],
    );
    let image = ImageRef::parse(&format!("{host}/private:v1")).unwrap();
    let ca_pem = std::fs::read(&ca).unwrap();
    let options = |credentials: CredentialSource, ca: bool, insecure: Insecure| RegistryOptions {
        credentials,
        ca_certs_pem: if ca { vec![ca_pem.clone()] } else { Vec::new() },
        insecure,
        ..RegistryOptions::default()
    };
    let none = || CredentialSource {
        explicit: None,
        docker_config: None,
    };
    let explicit = |password: &str| CredentialSource {
        explicit: Some(Credential::Basic {
            username: "ci".into(),
            password: password.into(),
        }),
        docker_config: None,
    };

    // From the Docker config, over TLS trusting the test CA.
    let from_config = Registry::new(options(
        CredentialSource {
            explicit: None,
            docker_config: Some(config.clone()),
        },
        true,
        Insecure::No,
    ));
    let fetched = from_config.require_manifest(&image).await.unwrap();
    assert_eq!(fetched.digest.to_string(), digest);
    assert_eq!(from_config.scheme(&host).await.unwrap(), "https");
    // Writes work with the same credentials (a push token or Basic).
    from_config
        .push_blob(&image, b"written with config credentials")
        .await
        .unwrap();

    // Explicit flags.
    let flagged = Registry::new(options(explicit("s3cret"), true, Insecure::No));
    assert_eq!(
        flagged
            .require_manifest(&image)
            .await
            .unwrap()
            .digest
            .to_string(),
        digest
    );

    // Anonymous and a wrong password are refused with advice.
    for (what, credentials) in [("anonymous", none()), ("wrong password", explicit("nope"))] {
        let err = Registry::new(options(credentials, true, Insecure::No))
            .require_manifest(&image)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { status: 401, .. }),
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("--registry-username"),
            "{what}: {err}"
        );
    }

    // Without the CA the certificate is not trusted, and http is not tried for a registry
    // that speaks https.
    let err = Registry::new(options(explicit("s3cret"), false, Insecure::No))
        .require_manifest(&image)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // --allow-insecure-registry skips verification.
    let insecure = Registry::new(options(
        explicit("s3cret"),
        false,
        Insecure::AllowHttpAndUnverifiedTls,
    ));
    assert_eq!(
        insecure
            .require_manifest(&image)
            .await
            .unwrap()
            .digest
            .to_string(),
        digest
    );
}

/// A registry that asks for Basic auth and redirects blob downloads to another host, as
/// registries backed by object storage do; the storage host records what it was sent.
struct RedirectingRegistry {
    registry: String,
    seen_by_storage: Arc<std::sync::Mutex<Vec<String>>>,
}

fn serve(listener: std::net::TcpListener, answer: impl Fn(&str) -> String + Send + 'static) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            use std::io::{BufRead, BufReader, Write};
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = stream.write_all(answer(&head).as_bytes());
        }
    });
}

impl RedirectingRegistry {
    fn start(blob: &'static [u8]) -> RedirectingRegistry {
        let storage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let storage_addr = storage.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_storage = seen.clone();
        serve(storage, move |head| {
            seen_storage.lock().unwrap().push(head.to_string());
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                blob.len(),
                String::from_utf8_lossy(blob)
            )
        });
        let registry = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let registry_addr = registry.local_addr().unwrap();
        serve(registry, move |head| {
            let authorized = head.to_ascii_lowercase().contains("authorization: basic");
            let path = head
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            if !authorized {
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else if path == "/v2/" {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else {
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{storage_addr}/bucket{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            }
        });
        RedirectingRegistry {
            registry: registry_addr.to_string(),
            seen_by_storage: seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_do_not_follow_a_redirect_to_another_host() {
    use sigil_client::oci::Credential;
    const BLOB: &[u8] = b"blob content from object storage";
    let fake = RedirectingRegistry::start(BLOB);
    let registry = Registry::new(RegistryOptions {
        credentials: CredentialSource {
            explicit: Some(Credential::Basic {
                username: "ci".into(),
                password: "hunter2".into(),
            }),
            docker_config: None,
        },
        ..RegistryOptions::default()
    });
    let repo = ImageRef::parse(&format!("{}/app:v1", fake.registry)).unwrap();
    let blob = registry
        .blob(
            &repo,
            &Descriptor::new("application/octet-stream", BLOB),
            1024,
        )
        .await
        .unwrap();
    assert_eq!(blob, BLOB);
    let seen = fake.seen_by_storage.lock().unwrap();
    assert_eq!(seen.len(), 1, "the storage host was asked once");
    assert!(
        !seen[0].to_ascii_lowercase().contains("authorization"),
        "credentials were sent to the storage host:\n{}",
        seen[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_challenge_with_credentials_from_the_docker_config() {
    use sigil_client::oci::RegistryError;
    use sigil_tests::registry::TokenServer;
    let tokens = TokenServer::start("ci", "s3cret");
    let reg = DockerRegistry::start_with(sigil_tests::registry::RegistryOptions {
        token_auth: Some(tokens.auth.clone()),
        ..Default::default()
    });
    let host = reg.host();
    let creds = tempfile::tempdir().unwrap();
    let config = docker_config(creds.path(), &host, "ci", "s3cret");
    let registry = Registry::new(RegistryOptions {
        credentials: CredentialSource {
            explicit: None,
            docker_config: Some(config),
        },
        ..RegistryOptions::default()
    });
    // crane (go-containerregistry) refuses any token server on a private address, so the
    // image is pushed by sigil's own registry client.
    let repo = ImageRef::parse(&format!("{host}/tokened:v1")).unwrap();
    let layer = b"behind tokens".to_vec();
    let config_blob = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    registry.push_blob(&repo, &layer).await.unwrap();
    registry.push_blob(&repo, config_blob).await.unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256_of(config_blob).to_string(), "size": config_blob.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": Digest::sha256_of(&layer).to_string(), "size": layer.len()}]
    })
    .to_string();
    let digest = registry
        .push_manifest(
            &repo,
            manifest.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    assert!(
        tokens.issued() > 0,
        "the push went through the token server"
    );
    let issued_before_reads = tokens.issued();
    let image = ImageRef::parse(&format!("{host}/tokened@{digest}")).unwrap();
    let subject = registry
        .require_manifest(&image)
        .await
        .unwrap()
        .descriptor();
    // A write (push scope) and the read-back of the tag schema index, all with tokens.
    let attached = attach_bundle(
        &registry,
        &image,
        &subject,
        &BundleAttachment {
            bundle_json: b"{\"behind\":\"tokens\"}",
            content: "dsse-envelope",
            predicate_type: cosign::SIGN_PREDICATE_TYPE,
            created: "2026-11-30T00:00:00Z",
        },
    )
    .await
    .unwrap();
    assert_eq!(attached.layout, "referrers-tag-schema");
    let listed = registry.referrers(&image).await.unwrap();
    assert_eq!(listed.all().len(), 1);
    assert!(
        tokens.issued() > issued_before_reads,
        "reads asked for a pull token"
    );

    // Without credentials the token grants nothing, and the registry says so.
    let err = anonymous().require_manifest(&image).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

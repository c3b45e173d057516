//! sigstore-js (npm `sigstore` 5.0.1) signs against sigil: it uses the Fulcio
//! `publicKeyRequest` + proof-of-possession shape with the token in the body (sigstore-python
//! uses a CSR), and Rekor v1 hashedrekord / dsse entries. sigstore-python then verifies the
//! bundles sigstore-js wrote, so two independent clients judge the CA's work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use sigil_tests::oidc_provider::OidcProvider;
use sigil_tests::sigstore_python;
use sigil_tests::stack::{Stack, target_dir};

const VERSION: &str = "5.0.1";
/// `@sigstore/oci` of the same era (make-fetch-happen 16, like `@sigstore/sign` 5).
const OCI_VERSION: &str = "0.7.2";
static INSTALL: Mutex<()> = Mutex::new(());

/// The npm package directory, installed once under `target/` (a failure fails the test).
fn sigstore_js() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = target_dir()
        .join("sigil-test-peers")
        .join(format!("sigstore-js-{VERSION}-oci-{OCI_VERSION}"));
    let marker = dir.join(".installed");
    if marker.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"sigil-sigstore-js-peer","private":true}"#,
    )
    .unwrap();
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            &format!("sigstore@{VERSION}"),
            &format!("@sigstore/oci@{OCI_VERSION}"),
        ])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("sigstore-js interop needs npm on PATH: {e}"));
    assert!(
        out.status.success(),
        "npm install sigstore@{VERSION} @sigstore/oci@{OCI_VERSION} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, VERSION).unwrap();
    dir
}

const SIGN_JS: &str = r#"
const fs = require('fs');
const { sign, attest } = require(process.env.SIGSTORE_JS + '/node_modules/sigstore');
// With `node -e`, argv is [node, ...args].
const [mode, artifact, out] = process.argv.slice(1);
const options = {
  fulcioURL: process.env.SIGIL_URL,
  rekorURL: process.env.SIGIL_URL,
  identityToken: process.env.ID_TOKEN,
  retry: 0,
};
const data = fs.readFileSync(artifact);
const run = mode === 'attest'
  ? attest(data, 'application/vnd.in-toto+json', options)
  : sign(data, options);
run.then(
  (bundle) => fs.writeFileSync(out, JSON.stringify(bundle)),
  (err) => { console.error(err && (err.stack || err)); if (err && err.cause) console.error('cause:', err.cause); process.exit(1); },
);
"#;

fn js(mode: &str, stack: &Stack, token: &str, artifact: &Path, bundle: &Path) -> Output {
    Command::new("node")
        .args(["-e", SIGN_JS, mode])
        .arg(artifact)
        .arg(bundle)
        .env("SIGSTORE_JS", sigstore_js())
        .env("SIGIL_URL", &stack.url)
        .env("ID_TOKEN", token)
        .output()
        .expect("run node")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstore_js_signs_with_sigil_and_sigstore_python_verifies() {
    let idp = OidcProvider::start();
    let stack = Stack::start(idp.issuer_url());
    let work = tempfile::tempdir().unwrap();
    let tc = stack.trust_config_file(work.path()).await;
    let tc = tc.to_str().unwrap();

    // sigstore-js writes protobuf JSON that omits zero values, so an entry at log index 0
    // comes out without `logIndex`, which sigstore-python's strict model rejects (a client
    // interop quirk, not a sigil one). Occupy index 0 first.
    let warm_up = work.path().join("warm-up.txt");
    std::fs::write(&warm_up, b"index 0\n").unwrap();
    let out = js(
        "sign",
        &stack,
        &idp.token("alice@example.com").await,
        &warm_up,
        &work.path().join("warm-up.sigstore.json"),
    );
    assert!(
        out.status.success(),
        "sigstore-js sign failed: {}",
        text(&out)
    );

    let artifact = work.path().join("a.txt");
    std::fs::write(&artifact, b"signed by sigstore-js through sigil\n").unwrap();
    let bundle = work.path().join("a.txt.sigstore.json");
    let out = js(
        "sign",
        &stack,
        &idp.token("alice@example.com").await,
        &artifact,
        &bundle,
    );
    assert!(
        out.status.success(),
        "sigstore-js sign failed: {}",
        text(&out)
    );
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "hashedrekord"
    );

    let verify = |bundle: &Path, artifact: &Path, identity: &str| {
        sigstore_python::run(&[
            "--trust-config",
            tc,
            "verify",
            "identity",
            "--bundle",
            bundle.to_str().unwrap(),
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            idp.issuer_url(),
            artifact.to_str().unwrap(),
        ])
    };
    let ok = verify(&bundle, &artifact, "alice@example.com");
    assert!(
        ok.status.success(),
        "sigstore-python rejected sigstore-js's bundle: {}",
        text(&ok)
    );
    assert!(
        !verify(&bundle, &artifact, "mallory@example.com")
            .status
            .success(),
        "a wrong identity was accepted"
    );

    // DSSE attestation over the artifact: the same PoP path, a dsse entry in the log, and
    // sigstore-python checks the statement's subject against the artifact.
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&artifact).unwrap()));
    let statement = work.path().join("statement.json");
    let body = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a.txt", "digest": {"sha256": digest}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {}
    });
    std::fs::write(&statement, body.to_string()).unwrap();
    let att = work.path().join("statement.sigstore.json");
    let out = js(
        "attest",
        &stack,
        &idp.token("alice@example.com").await,
        &statement,
        &att,
    );
    assert!(
        out.status.success(),
        "sigstore-js attest failed: {}",
        text(&out)
    );
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&att).unwrap()).unwrap();
    assert_eq!(
        a["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    let ok = verify(&att, &artifact, "alice@example.com");
    assert!(
        ok.status.success(),
        "sigstore-python rejected sigstore-js's attestation: {}",
        text(&ok)
    );
}

/// Attests an image with sigstore-js and attaches the bundle with `@sigstore/oci`, the way
/// GitHub's actions/attest does (annotations naming the content and predicate type).
const ATTACH_JS: &str = r#"
const { attest } = require(process.env.SIGSTORE_JS + '/node_modules/sigstore');
const { attachArtifactToImage } = require(process.env.SIGSTORE_JS + '/node_modules/@sigstore/oci');
const [imageName, imageDigest, predicateType] = process.argv.slice(1);
const statement = {
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ name: imageName, digest: { sha256: imageDigest.replace('sha256:', '') } }],
  predicateType,
  predicate: { builder: { id: 'https://ci.example.com/sigstore-js' } },
};
(async () => {
  const bundle = await attest(Buffer.from(JSON.stringify(statement)), 'application/vnd.in-toto+json', {
    fulcioURL: process.env.SIGIL_URL,
    rekorURL: process.env.SIGIL_URL,
    identityToken: process.env.ID_TOKEN,
    retry: 0,
  });
  const descriptor = await attachArtifactToImage({
    imageName,
    imageDigest,
    credentials: undefined,
    artifact: Buffer.from(JSON.stringify(bundle)),
    mediaType: bundle.mediaType,
    annotations: {
      'dev.sigstore.bundle.content': 'dsse-envelope',
      'dev.sigstore.bundle.predicateType': predicateType,
    },
    fetchOpts: { timeout: 30000, retry: 2 },
  });
  console.log(JSON.stringify(descriptor));
})().catch((err) => { console.error(err && (err.stack || err)); process.exit(1); });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstore_js_attaches_an_image_attestation_that_sigil_verifies() {
    use sigil_tests::registry::{DockerRegistry, Images, ReferrersRegistry};
    use sigil_tests::stack::workspace_binary;
    let idp = OidcProvider::start();
    let stack = Stack::start(idp.issuer_url());
    let work = tempfile::tempdir().unwrap();
    let trusted_root = work.path().join("trusted_root.json");
    let root = reqwest::get(format!("{}/api/v1/trusted-root", stack.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(&trusted_root, root).unwrap();
    let plain = DockerRegistry::start();
    let referrers = ReferrersRegistry::start();
    let images = Images::new();
    let predicate_type = "https://slsa.dev/provenance/v1";
    for host in [plain.host(), referrers.host()] {
        let digest = images.push(
            &format!("{host}/js-attested:v1"),
            &[("js", b"attested by sigstore-js".as_slice())],
        );
        let out = Command::new("node")
            .args([
                "-e",
                ATTACH_JS,
                &format!("{host}/js-attested"),
                &digest,
                predicate_type,
            ])
            .env("SIGSTORE_JS", sigstore_js())
            .env("SIGIL_URL", &stack.url)
            .env("ID_TOKEN", idp.token("carol@example.com").await)
            .output()
            .expect("run node");
        assert!(
            out.status.success(),
            "@sigstore/oci attach failed ({host}): {}",
            text(&out)
        );
        let verify = |identity: &str| {
            Command::new(workspace_binary("sigil-client", "sigil"))
                .args([
                    "verify-attestation",
                    &format!("{host}/js-attested@{digest}"),
                    "--type",
                    predicate_type,
                    "--trusted-root",
                    trusted_root.to_str().unwrap(),
                    "--certificate-identity",
                    identity,
                    "--certificate-oidc-issuer",
                    idp.issuer_url(),
                    "--output",
                    "json",
                ])
                .env("DOCKER_CONFIG", work.path().join("none"))
                .output()
                .expect("run sigil")
        };
        let out = verify("carol@example.com");
        assert!(
            out.status.success(),
            "sigil rejected sigstore-js's attestation ({host}): {}",
            text(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["verified"][0]["predicateType"], predicate_type,
            "{report}"
        );
        assert!(
            !verify("mallory@example.com").status.success(),
            "a wrong identity was accepted"
        );
    }
}

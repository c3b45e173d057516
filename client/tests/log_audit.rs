//! `sigil log` against a real sigild (`--dev`, its loopback token issuer): the checkpoint is
//! verified, entries are decoded with their proofs checked, and a saved checkpoint proves the
//! log only grew, while an edited checkpoint or one from another log is refused.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sigil_tests::files::copy_dir;
use sigil_tests::stack::{Stack, Witness};

fn sigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUSTED_ROOT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok_json(out: Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

async fn dev_token(issuer: &str, email: &str) -> String {
    let answer: Value = reqwest::get(format!("{issuer}/token?email={email}"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["id_token"].as_str().unwrap().to_string()
}

async fn sign(stack: &Stack, issuer: &str, dir: &Path, name: &str, email: &str) {
    let file = dir.join(name);
    std::fs::write(&file, format!("artifact {name}\n")).unwrap();
    let token = dev_token(issuer, email).await;
    let out = sigil(&[
        "sign-blob",
        file.to_str().unwrap(),
        "--server",
        &stack.url,
        "--identity-token",
        &token,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn info_get_and_consistency_are_verified_against_the_trusted_root() {
    let (stack, issuer) = Stack::start_dev();
    let dir = tempfile::tempdir().unwrap();
    sign(&stack, &issuer, dir.path(), "one.txt", "alice@example.com").await;

    // info: verified checkpoint, saved for later.
    let saved = dir.path().join("log.checkpoint");
    let info = ok_json(sigil(&[
        "log",
        "info",
        "--server",
        &stack.url,
        "--save-checkpoint",
        saved.to_str().unwrap(),
        "--output",
        "json",
    ]));
    assert_eq!(info["treeSize"], 1);
    assert!(info["origin"].as_str().unwrap().starts_with("127.0.0.1 - "));
    assert!(std::fs::read_to_string(&saved).unwrap().contains("\n\n— "));

    // get: the keyless entry names its signer and issuer, with the proof checked.
    let entry = ok_json(sigil(&[
        "log",
        "get",
        "--log-index",
        "0",
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(entry["identity"], "alice@example.com");
    assert_eq!(entry["issuer"], issuer);
    assert_eq!(entry["kind"], "hashedrekord");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"artifact one.txt\n"))
    };
    assert_eq!(entry["artifactDigest"], format!("sha256:{digest}"));
    let by_uuid = ok_json(sigil(&[
        "log",
        "get",
        "--uuid",
        entry["uuid"].as_str().unwrap(),
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(by_uuid["logIndex"], 0);
    let text = sigil(&["log", "get", "--log-index", "0", "--server", &stack.url]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("identity:   alice@example.com"), "{text}");

    // The log grows; the saved checkpoint is a prefix of it.
    sign(&stack, &issuer, dir.path(), "two.txt", "bob@example.com").await;
    sign(&stack, &issuer, dir.path(), "three.txt", "bob@example.com").await;
    let consistent = ok_json(sigil(&[
        "log",
        "verify-consistency",
        "--from",
        saved.to_str().unwrap(),
        "--update",
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(consistent["from"]["treeSize"], 1);
    assert_eq!(consistent["to"]["treeSize"], 3);
    let updated = std::fs::read_to_string(&saved).unwrap();
    assert!(updated.contains("\n3\n"), "{updated}");

    // search: by email (any case), by artifact, combined; with details, newest first.
    let found = ok_json(sigil(&[
        "log",
        "search",
        "--email",
        "BOB@example.com",
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(found["count"], 2);
    let two = dir.path().join("two.txt");
    let found = ok_json(sigil(&[
        "log",
        "search",
        "--artifact",
        two.to_str().unwrap(),
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(found["count"], 1);
    let either = ok_json(sigil(&[
        "log",
        "search",
        "--email",
        "alice@example.com",
        "--artifact",
        two.to_str().unwrap(),
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(either["count"], 2, "or by default");
    let both = ok_json(sigil(&[
        "log",
        "search",
        "--email",
        "alice@example.com",
        "--artifact",
        two.to_str().unwrap(),
        "--operator",
        "and",
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(both["count"], 0);
    let detailed = ok_json(sigil(&[
        "log",
        "search",
        "--email",
        "bob@example.com",
        "--details",
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    let indexes: Vec<u64> = detailed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["logIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![2, 1], "newest first");
    assert!(
        detailed["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["identity"] == "bob@example.com")
    );

    // A saved checkpoint edited since (another root for the same size) is not evidence.
    let mut lines: Vec<String> = updated.lines().map(str::to_string).collect();
    lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let forged = dir.path().join("forged.checkpoint");
    std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
    let out = sigil(&[
        "log",
        "verify-consistency",
        "--from",
        forged.to_str().unwrap(),
        "--server",
        &stack.url,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not signed by any transparency log"),
        "{stderr}"
    );

    // A checkpoint of another log (another sigild) is refused as unknown.
    let (other, other_issuer) = Stack::start_dev();
    sign(
        &other,
        &other_issuer,
        dir.path(),
        "elsewhere.txt",
        "eve@example.com",
    )
    .await;
    let other_cp = dir.path().join("other.checkpoint");
    ok_json(sigil(&[
        "log",
        "info",
        "--server",
        &other.url,
        "--save-checkpoint",
        other_cp.to_str().unwrap(),
        "--output",
        "json",
    ]));
    let out = sigil(&[
        "log",
        "verify-consistency",
        "--from",
        other_cp.to_str().unwrap(),
        "--server",
        &stack.url,
    ]);
    assert_eq!(out.status.code(), Some(1));

    // Usage errors exit 2.
    let out = sigil(&["log", "get", "--server", &stack.url]);
    assert_eq!(out.status.code(), Some(2));
}

/// `sigil log search` pages through every match: 1,001 entries by one key are more than the
/// log's page of 1,000.
#[tokio::test]
async fn search_follows_every_page() {
    let (stack, _issuer) = Stack::start_dev();
    let signer = KeyedSigner::new();
    let pem = signer.pem.clone();
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1001 {
        let body = signer.hashedrekord(&format!("paged artifact {i}"));
        let (http, url) = (http.clone(), stack.url.clone());
        tasks.spawn(async move {
            let r = http
                .post(format!("{url}/api/v1/log/entries"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        });
        if tasks.len() >= 32 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.pem");
    std::fs::write(&key_file, &pem).unwrap();
    let found = ok_json(sigil(&[
        "log",
        "search",
        "--public-key",
        key_file.to_str().unwrap(),
        "--server",
        &stack.url,
        "--output",
        "json",
    ]));
    assert_eq!(found["count"], 1001, "no silent cap at the log's page size");

    // A monitor reads all of them through the tiles API: three full tiles and a partial one.
    let state = dir.path().join("monitor.json");
    let out = run_monitor(&stack.url, &state, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read entries 0..1001"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sigil log monitor --once --output json` over `state`, with `extra` flags.
fn run_monitor(url: &str, state: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "log",
        "monitor",
        "--server",
        url,
        "--state",
        state.to_str().unwrap(),
        "--once",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    sigil(&args)
}

fn findings(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `sigil log monitor --once`: every entry read once, watched identities reported once, the
/// state carried across runs, and a tampered state refused.
#[tokio::test]
async fn monitor_reads_every_entry_once_and_resumes() {
    let (stack, issuer) = Stack::start_dev();
    let dir = tempfile::tempdir().unwrap();
    sign(&stack, &issuer, dir.path(), "a.txt", "alice@example.com").await;
    sign(&stack, &issuer, dir.path(), "b.txt", "bob@example.com").await;
    let state = dir.path().join("monitor.json");

    let out = run_monitor(&stack.url, &state, &["--watch-identity", "BOB@example.com"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = findings(&out);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["identity"], "bob@example.com");
    assert_eq!(found[0]["rule"], "watched-identity");
    assert_eq!(found[0]["logIndex"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("read entries 0..2"));

    // Nothing new: nothing read, nothing reported again.
    let out = run_monitor(&stack.url, &state, &["--watch-identity", "bob@example.com"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("read entries 2..2"));

    // Two more: only they are read, only the new one by bob is reported.
    sign(&stack, &issuer, dir.path(), "c.txt", "carol@example.com").await;
    sign(&stack, &issuer, dir.path(), "d.txt", "bob@example.com").await;
    let out = run_monitor(&stack.url, &state, &["--watch-identity", "bob@example.com"]);
    assert_eq!(out.status.code(), Some(3));
    let found = findings(&out);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["logIndex"], 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("read entries 2..4"));

    // A state whose tree edge was edited does not build its own checkpoint: refused.
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    saved["frontier"][0] = Value::String("00".repeat(32));
    std::fs::write(&state, saved.to_string()).unwrap();
    let out = run_monitor(&stack.url, &state, &[]);
    assert_eq!(out.status.code(), Some(1));
    // With --output json the failure is a JSON object on stdout.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("does not build its checkpoint's root"),
        "{said}"
    );
}

/// Rules from a file against real keyless entries: a signer with an unexpected issuer, a
/// signature outside the allowed hours, a burst counted across two runs, a digest signed
/// twice by the release identity; each reported exactly once, on stdout and in the findings
/// file, and a second run over the same entries reports nothing.
#[tokio::test]
async fn monitor_rules_fire_exactly_when_they_should() {
    let (stack, issuer) = Stack::start_dev();
    let dir = tempfile::tempdir().unwrap();
    let hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    // Allowed hours that exclude the present by hours on either side.
    let (from, to) = ((hour + 3) % 24, (hour + 4) % 24);
    let rules = serde_json::json!({
        "expectedSigners": [
            {"identity": "release@example.com", "issuers": [issuer]},
            {"identity": "deploy@example.com", "issuers": ["https://token.actions.githubusercontent.com"]}
        ],
        "signingHours": {"identities": ["night@example.com"], "from": format!("{from:02}:00"), "to": format!("{to:02}:00")},
        "burst": {"identities": ["burst@example.com"], "count": 3, "minutes": 60},
        "repeatedDigest": {"identities": ["release@example.com"]}
    });
    let rules_file = dir.path().join("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let state = dir.path().join("monitor.json");
    let findings_file = dir.path().join("findings.jsonl");
    let monitor = || {
        run_monitor(
            &stack.url,
            &state,
            &[
                "--rules",
                rules_file.to_str().unwrap(),
                "--findings",
                findings_file.to_str().unwrap(),
            ],
        )
    };
    let reported = |out: &Output| -> Vec<(String, u64)> {
        findings(out)
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_string(),
                    f["logIndex"].as_u64().unwrap(),
                )
            })
            .collect()
    };

    for (name, who) in [
        ("a.txt", "release@example.com"),
        ("d.txt", "deploy@example.com"),
        ("n.txt", "night@example.com"),
        ("b1.txt", "burst@example.com"),
        ("b2.txt", "burst@example.com"),
    ] {
        sign(&stack, &issuer, dir.path(), name, who).await;
    }
    let out = monitor();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        reported(&out),
        [("unexpected-signer".into(), 1), ("off-hours".into(), 2)]
    );
    let first = findings(&out);
    assert_eq!(
        first[0]["detail"],
        "issuer ".to_string() + &issuer + " is not expected for deploy@example.com"
    );
    assert!(first[1]["signedAt"].as_str().unwrap().ends_with('Z'));

    // The third burst signature arrives in the next run: the window was kept in the state.
    for (name, who) in [
        ("b3.txt", "burst@example.com"),
        ("a.txt", "release@example.com"),
        ("c.txt", "release@example.com"),
        ("b4.txt", "burst@example.com"),
    ] {
        sign(&stack, &issuer, dir.path(), name, who).await;
    }
    let out = monitor();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        reported(&out),
        [("burst".into(), 5), ("repeated-digest".into(), 6)]
    );
    assert_eq!(findings(&out)[1]["detail"], "first signed at entry 0");

    let out = monitor();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = std::fs::read_to_string(&findings_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rules_in_file: Vec<&str> = lines.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules_in_file,
        ["unexpected-signer", "off-hours", "burst", "repeated-digest"]
    );

    // A rules file with a mistake is a usage error that names it.
    std::fs::write(&rules_file, r#"{"burst": {"count": 3}}"#).unwrap();
    let out = monitor();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing field `minutes`"));
}

/// `sigil log monitor --ct` also reads the CA's CT log: a certificate issued to a watched
/// identity that never signed anything (so never reached the Rekor log) is reported, the
/// signer rules judge every certificate, and the next run reads only new certificates.
#[tokio::test]
async fn monitor_reads_the_ct_log_and_sees_certificates_that_never_signed() {
    let (stack, issuer) = Stack::start_dev();
    let dir = tempfile::tempdir().unwrap();
    sign(&stack, &issuer, dir.path(), "a.txt", "alice@example.com").await;
    let token = dev_token(&issuer, "mallory@example.com").await;
    sigil_client::sign::certify(&reqwest::Client::new(), &token, &stack.url)
        .await
        .unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        serde_json::json!({
            "watch": {"identities": ["mallory@example.com"]},
            "expectedSigners": [{"identity": "alice@example.com", "issuers": ["https://elsewhere.example.com"]}]
        })
        .to_string(),
    )
    .unwrap();
    let state = dir.path().join("monitor.json");
    let monitor = || {
        run_monitor(
            &stack.url,
            &state,
            &["--rules", rules.to_str().unwrap(), "--ct"],
        )
    };
    let out = monitor();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<(String, u64, String)> = findings(&out)
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["logIndex"].as_u64().unwrap(),
                f["identity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("unexpected-signer".into(), 0, "alice@example.com".into()),
            ("ct-unexpected-signer".into(), 0, "alice@example.com".into()),
            (
                "ct-watched-identity".into(),
                1,
                "mallory@example.com".into()
            ),
        ]
    );
    assert_eq!(findings(&out)[2]["kind"], "precertificate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read certificates 0..2"), "{stderr}");

    let out = monitor();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("read certificates 2..2"));

    // A state whose CT root was edited is a split view of the CT log.
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    saved["ct"]["root"] = Value::String("00".repeat(32));
    std::fs::write(&state, saved.to_string()).unwrap();
    let out = monitor();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("split view"));
}

/// `sigil log monitor` following a live log (no --once) serves its progress on
/// --metrics-listen and picks up entries signed while it runs.
#[tokio::test]
async fn a_following_monitor_serves_metrics_and_sees_new_entries() {
    use std::io::BufRead;
    let (stack, issuer) = Stack::start_dev();
    let dir = tempfile::tempdir().unwrap();
    sign(&stack, &issuer, dir.path(), "a.txt", "alice@example.com").await;
    let state = dir.path().join("monitor.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args([
            "log",
            "monitor",
            "--server",
            &stack.url,
            "--state",
            state.to_str().unwrap(),
            "--interval",
            "1",
            "--watch-identity",
            "bob@example.com",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env_remove("SIGIL_TRUSTED_ROOT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let metrics_url = loop {
        let line = lines.next().expect("monitor exited").unwrap();
        if let Some(url) = line.strip_prefix("metrics at ") {
            break url.to_string();
        }
    };
    // Keep draining stderr so the monitor never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let metric = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    let wait_for = |name: &'static str, value: u64| {
        let url = metrics_url.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
                if metric(&text, name) == Some(value) {
                    return text;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name} never reached {value}:\n{text}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    wait_for("sigil_monitor_tree_size", 1).await;
    sign(&stack, &issuer, dir.path(), "b.txt", "bob@example.com").await;
    sign(&stack, &issuer, dir.path(), "c.txt", "carol@example.com").await;
    let text = wait_for("sigil_monitor_tree_size", 3).await;
    assert_eq!(metric(&text, "sigil_monitor_entries_read_total"), Some(3));
    assert_eq!(
        metric(
            &text,
            "sigil_monitor_findings_total{rule=\"watched-identity\"}"
        ),
        Some(1)
    );
    assert_eq!(
        metric(&text, "sigil_monitor_scans_total{outcome=\"failed\"}"),
        Some(0)
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("entry 1: watched-identity bob@example.com"),
        "{stdout}"
    );
}

/// sigild over `dir` with --dev (its trust route and a token issuer on a fresh port), and
/// that issuer's URL.
fn start_dev_in(dir: &Path, extra: &[&str]) -> (Stack, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("127.0.0.1:{port}");
    let mut args = vec!["--dev", "--dev-issuer-listen", &issuer];
    args.extend_from_slice(extra);
    (Stack::spawn_in(dir, &args), format!("http://{issuer}"))
}

/// sigild over `dir` under the public URL http://fork.test, so that copies of one data dir
/// are one log to their clients.
fn start_named(dir: &Path, extra: &[&str]) -> Stack {
    let mut args = vec!["--public-url", "http://fork.test"];
    args.extend_from_slice(extra);
    start_dev_in(dir, &args).0
}

/// A real fork: a sigild data dir copied while stopped, both copies run with the same key and
/// name, each given different entries. Each log is self-consistent; a monitor that has seen
/// one and then reads the other, or that compares its view with a peer monitor's, says so.
#[tokio::test]
async fn a_forked_log_is_caught_by_a_monitor_and_by_comparing_monitors() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let start = |dir: &Path| start_named(dir, &[]);
    let a = start(a_dir.path());
    let work = tempfile::tempdir().unwrap();
    let signer = KeyedSigner::new();
    let sign_keyed = |url: &str, name: &str| {
        let (url, body) = (url.to_string(), signer.hashedrekord(name));
        async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/api/v1/log/entries"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        }
    };
    sign_keyed(&a.url, "shared-1").await;
    sign_keyed(&a.url, "shared-2").await;
    a.stop();
    copy_dir(a_dir.path(), b_dir.path());
    let a = start(a_dir.path());
    let b = start(b_dir.path());
    sign_keyed(&a.url, "only-on-a").await;
    sign_keyed(&b.url, "only-on-b").await;

    // Each copy alone looks fine to a fresh monitor.
    let a_state = work.path().join("a.json");
    let out = run_monitor(&a.url, &a_state, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let b_state = work.path().join("b.json");
    let out = run_monitor(&b.url, &b_state, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A monitor that saw A and now reads B: same size, another root.
    std::fs::copy(&a_state, work.path().join("moved.json")).unwrap();
    let out = run_monitor(&b.url, &work.path().join("moved.json"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("split view"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Two monitors comparing notes: B's monitor is shown A's view.
    let out = run_monitor(
        &b.url,
        &b_state,
        &["--peer-state", a_state.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("split view"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // After one more entry on A, sizes differ: B cannot prove A's larger tree extends its own.
    sign_keyed(&a.url, "only-on-a-2").await;
    let out = run_monitor(&a.url, &a_state, &[]);
    assert_eq!(out.status.code(), Some(0));
    let out = run_monitor(
        &b.url,
        &b_state,
        &["--peer-state", a_state.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And a peer on the same history passes.
    let out = run_monitor(
        &a.url,
        &a_state,
        &["--peer-state", a_state.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key making hashedrekord entries, as a keyed client would.
struct KeyedSigner {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    rng: aws_lc_rs::rand::SystemRandom,
    pem: String,
}

impl KeyedSigner {
    fn new() -> KeyedSigner {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        use base64::Engine;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(key.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        KeyedSigner { key, rng, pem }
    }

    fn hashedrekord(&self, artifact: &str) -> Value {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use sha2::Digest;
        serde_json::json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {
                "signature": {
                    "content": STANDARD.encode(self.key.sign(&self.rng, artifact.as_bytes()).unwrap()),
                    "publicKey": {"content": STANDARD.encode(&self.pem)}
                },
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(artifact.as_bytes()))}}
            }
        })
    }
}

/// sigild as a C2SP witness of another sigild's log: the log sends each new checkpoint with a
/// consistency proof and serves the cosigned one; `sigil log info --require-witnesses`
/// accepts it with the witness's key and refuses it without. A fork of the log (a copied data
/// dir given other entries) is refused by the witness, which counts the conflict, so the fork
/// never gets a cosignature.
#[tokio::test]
async fn a_witness_cosigns_one_history_and_refuses_a_fork() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let signer = KeyedSigner::new();
    let submit = |url: &str, name: &str| {
        let (url, body, http) = (url.to_string(), signer.hashedrekord(name), http.clone());
        async move {
            let r = http
                .post(format!("{url}/api/v1/log/entries"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        }
    };

    // The log's origin and key, for the witness's configuration.
    // Without --public-url both copies of the data dir below are the log "127.0.0.1 - <tree>",
    // and each serves a trusted root naming its own address.
    let (a, _) = start_dev_in(a_dir.path(), &[]);
    submit(&a.url, "shared-1").await;
    let witness = Witness::for_log(&a, "witness.test/w1", work.path()).await;
    a.stop();
    let vkey = witness.vkey.clone();
    assert!(vkey.starts_with("witness.test/w1+"), "{vkey}");
    let witness_flag = witness.endpoint();

    let (a, issuer) = start_dev_in(a_dir.path(), &["--witness", &witness_flag]);
    submit(&a.url, "shared-2").await;
    let info_witnessed = |url: &str, trusted: &str| {
        sigil(&[
            "log",
            "info",
            "--server",
            url,
            "--require-witnesses",
            "1",
            "--witness",
            trusted,
            "--output",
            "json",
        ])
    };
    // The log asks its witness about once a second.
    let wait_witnessed = |url: String, size: u64| {
        let vkey = vkey.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let out = info_witnessed(&url, &vkey);
                if out.status.success() {
                    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                    if v["witnessedSize"] == size {
                        return v;
                    }
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "size {size} never witnessed: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    };
    let seen = wait_witnessed(a.url.clone(), 2).await;
    assert_eq!(seen["witnesses"], serde_json::json!(["witness.test/w1"]));
    // Without --witness the keys come from $SIGIL_WITNESS_KEYS, else ~/.config/sigil/witnesses.
    let home = tempfile::tempdir().unwrap();
    let info_from = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sigil"));
        command
            .args([
                "log",
                "info",
                "--server",
                &a.url,
                "--require-witnesses",
                "1",
            ])
            .env_remove("SIGIL_WITNESS_KEYS")
            .env("HOME", home.path());
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = info_from(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGIL_WITNESS_KEYS"));
    assert!(info_from(&[("SIGIL_WITNESS_KEYS", &vkey)]).status.success());
    std::fs::create_dir_all(home.path().join(".config/sigil")).unwrap();
    std::fs::write(
        home.path().join(".config/sigil/witnesses"),
        format!("# our witness\n{vkey}\n"),
    )
    .unwrap();
    let out = info_from(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A witness key the verifier does not trust is no witness.
    let stranger = sigil_proto::witness::VerifierKey::new(
        "witness.test/w1",
        sigil_proto::witness::COSIGNATURE_ED25519,
        [9; 32],
    );
    let out = info_witnessed(&a.url, &stranger.to_text());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 valid cosignature(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A keyless bundle logged at size 3: verify-blob --require-witnesses holds once the
    // witnessed checkpoint covers the bundle's (the witness follows through a consistency
    // proof from size 2).
    sign(&a, &issuer, work.path(), "release.txt", "alice@example.com").await;
    let artifact = work.path().join("release.txt");
    let verify = |trusted: &str| {
        sigil(&[
            "verify-blob",
            artifact.to_str().unwrap(),
            "--server",
            &a.url,
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            &issuer,
            "--require-witnesses",
            "1",
            "--witness",
            trusted,
            "--output",
            "json",
        ])
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let verified = loop {
        let out = verify(&vkey);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            said.contains("does not cover this one") && std::time::Instant::now() < deadline,
            "{said}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(
        verified["witnesses"],
        serde_json::json!(["witness.test/w1"])
    );
    // An attestation about the same file, logged at size 4, once the witness has seen it.
    let predicate = work.path().join("predicate.json");
    std::fs::write(&predicate, r#"{"release": "1.0"}"#).unwrap();
    let token = dev_token(&issuer, "alice@example.com").await;
    let out = sigil(&[
        "attest-blob",
        artifact.to_str().unwrap(),
        "--predicate",
        predicate.to_str().unwrap(),
        "--server",
        &a.url,
        "--identity-token",
        &token,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = sigil(&[
            "verify-blob-attestation",
            artifact.to_str().unwrap(),
            "--server",
            &a.url,
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            &issuer,
            "--require-witnesses",
            "1",
            "--witness",
            &vkey,
        ]);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.success() {
            assert!(said.contains("Witnessed by witness.test/w1"), "{said}");
            break;
        }
        assert!(
            said.contains("does not cover this one") && std::time::Instant::now() < deadline,
            "{said}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let out = verify(&stranger.to_text());
    assert_eq!(out.status.code(), Some(1));
    let failure: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failure["check"], "witnesses");

    // Fork: the data dir copied at size 4, each copy then given its own entry.
    a.stop();
    copy_dir(a_dir.path(), b_dir.path());
    let (a, _) = start_dev_in(a_dir.path(), &["--witness", &witness_flag]);
    submit(&a.url, "only-on-a").await;
    wait_witnessed(a.url.clone(), 5).await;
    let (b, _) = start_dev_in(b_dir.path(), &["--witness", &witness_flag]);
    submit(&b.url, "only-on-b").await;
    // The witness has cosigned size 5 of the other history: the fork's size 5 conflicts.
    let metrics_url = format!("{}/metrics", witness.stack.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let conflicts = text
            .lines()
            .find_map(|l| l.strip_prefix("sigil_witness_conflicts_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if conflicts > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the witness never refused the fork:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // The fork inherited the cosigned checkpoint of size 4 (the history both copies share),
    // and nothing of its own since: its entry 4 is in no witnessed history.
    let out = info_witnessed(&b.url, &vkey);
    let on_b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&on_b["treeSize"], &on_b["witnessedSize"]),
        (&serde_json::json!(5), &serde_json::json!(4)),
        "{on_b}"
    );
    // The honest copy is witnessed to its head.
    assert_eq!(wait_witnessed(a.url.clone(), 5).await["treeSize"], 5);
    // A monitor that requires the witness passes on the honest copy.
    let out = run_monitor(
        &a.url,
        &work.path().join("a.json"),
        &["--require-witnesses", "1", "--witness", &vkey],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The cosigned checkpoint is kept in the log's database: restarted with its witness out
    // of reach, the log serves it at once.
    a.stop();
    witness.stack.stop();
    let unreachable = format!("{vkey}@http://127.0.0.1:9/witness");
    let (a, _) = start_dev_in(a_dir.path(), &["--witness", &unreachable]);
    let restarted: Value = serde_json::from_slice(&info_witnessed(&a.url, &vkey).stdout).unwrap();
    assert_eq!(restarted["witnessedSize"], 5, "{restarted}");
    b.stop();
    a.stop();
}

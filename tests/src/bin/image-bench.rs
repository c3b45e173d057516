//! Image signing and verification, whole processes, wall clock: `sigil sign` of an image
//! (keyless: token given, CA and log round trips and the registry writes included), and
//! `sigil verify` against `cosign verify` of one image carrying 10 signatures and 10
//! attestations, on a loopback registry, in the same run.
//!
//!   cargo build --release -p sigild -p sigil-client -p sigil-tests
//!   target/release/image-bench [--runs 20] [--registry docker-registry|referrers-api]
//!
//! It starts its own release `sigild --dev` (the dev issuer mints the tokens), a registry, and
//! the Go peers (cosign, crane) from tests/peers/build-go-peers.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sigil_tests::go_peers;
use sigil_tests::peers::free_port;
use sigil_tests::registry::{DockerRegistry, Images, ReferrersRegistry};
use sigil_tests::stack::target_dir;

struct Args {
    runs: usize,
    registry: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        runs: 20,
        registry: "docker-registry".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => a.runs = val().parse().expect("--runs N"),
            "--registry" => a.registry = val(),
            "--help" | "-h" => {
                println!("image-bench [--runs N] [--registry docker-registry|referrers-api]");
                std::process::exit(0);
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn release(bin: &str) -> PathBuf {
    let path = target_dir().join("release").join(bin);
    assert!(
        path.exists(),
        "{} missing: cargo build --release -p sigild -p sigil-client -p sigil-tests",
        path.display()
    );
    path
}

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Wall time of one process run (spawn to exit).
fn timed(cmd: &mut Command, what: &str) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("spawn");
    let took = start.elapsed();
    check(out, what);
    took
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.9), *samples.last().unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args = parse_args();
    let sigil = release("sigil");
    let sigild = release("sigild");
    let cosign = go_peers::cosign();
    let work = tempfile::tempdir().unwrap();

    let port = free_port();
    let issuer_port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    let mut server = Command::new(&sigild)
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--dev-issuer-listen", &format!("127.0.0.1:{issuer_port}")])
        .arg("--data-dir")
        .arg(work.path().join("sigil-data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sigild did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));

    let (_plain, _referrers, host) = if args.registry == "referrers-api" {
        let r = ReferrersRegistry::start();
        let h = r.host();
        (None, Some(r), h)
    } else {
        let r = DockerRegistry::start();
        let h = r.host();
        (Some(r), None, h)
    };
    let images = Images::new();
    let digest = images.push(
        &format!("{host}/bench:v1"),
        &[
            ("bin", &[7u8; 256 * 1024][..]),
            ("etc", b"config".as_slice()),
        ],
    );
    let image = format!("{host}/bench@{digest}");

    let token = |email: &str| -> String {
        let body = Command::new("curl")
            .args(["-sf", &format!("{issuer}/token?email={email}")])
            .output()
            .expect("curl");
        let v: serde_json::Value = serde_json::from_slice(&body.stdout).expect("token JSON");
        v["id_token"].as_str().unwrap().to_string()
    };
    let trusted_root = work.path().join("trusted_root.json");
    let root = Command::new("curl")
        .args(["-sf", &format!("{url}/api/v1/trusted-root")])
        .output()
        .unwrap();
    std::fs::write(&trusted_root, &root.stdout).unwrap();
    let predicate = work.path().join("predicate.json");
    std::fs::write(
        &predicate,
        br#"{"buildDefinition":{"buildType":"https://example.com/b"}}"#,
    )
    .unwrap();
    let home = work.path().to_path_buf();
    let sigil_cmd = |args: &[&str]| {
        let mut c = Command::new(&sigil);
        c.args(args)
            .env("HOME", &home)
            .env("DOCKER_CONFIG", home.join("none"))
            .env_remove("SIGSTORE_ID_TOKEN");
        c
    };

    // 10 signatures and 10 attestations; the signing time of each is a sample.
    let mut sign_times = Vec::new();
    for n in 0..10 {
        let t = token(&format!("signer{n}@example.com"));
        sign_times.push(timed(
            &mut sigil_cmd(&[
                "sign",
                &image,
                "--server",
                &url,
                "--identity-token",
                &t,
                "--yes",
            ]),
            "sigil sign",
        ));
        let t = token(&format!("signer{n}@example.com"));
        check(
            sigil_cmd(&[
                "attest",
                &image,
                "--server",
                &url,
                "--identity-token",
                &t,
                "--yes",
                "--predicate",
                predicate.to_str().unwrap(),
                "--type",
                "slsaprovenance1",
            ])
            .output()
            .unwrap(),
            "sigil attest",
        );
    }

    let tr = trusted_root.to_str().unwrap();
    let policy = [
        "--trusted-root",
        tr,
        "--certificate-identity",
        "signer3@example.com",
        "--certificate-oidc-issuer",
        &issuer,
    ];
    let verify_args: Vec<&str> = [&["verify", image.as_str()][..], &policy[..]].concat();
    let cosign_args: Vec<&str> = [&["verify"][..], &policy[..], &[image.as_str()][..]].concat();
    // Warm both once (page cache, cosign's first-run work), then alternate.
    check(sigil_cmd(&verify_args).output().unwrap(), "sigil verify");
    let cosign_cmd = || {
        let mut c = Command::new(&cosign);
        c.args(&cosign_args)
            .env("HOME", &home)
            .env("TUF_ROOT", home.join("tuf"))
            .env("DOCKER_CONFIG", home.join("none"));
        c
    };
    check(cosign_cmd().output().unwrap(), "cosign verify");
    let (mut sigil_times, mut cosign_times) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        sigil_times.push(timed(&mut sigil_cmd(&verify_args), "sigil verify"));
        cosign_times.push(timed(&mut cosign_cmd(), "cosign verify"));
    }

    let (s50, s90, smax) = stats(sign_times);
    let (v50, v90, vmax) = stats(sigil_times);
    let (c50, c90, cmax) = stats(cosign_times);
    println!(
        "registry: {} ({host}); image with 10 signatures + 10 attestations",
        args.registry
    );
    println!(
        "sigil sign (keyless, CA + log + registry): p50 {} p90 {} max {}",
        ms(s50),
        ms(s90),
        ms(smax)
    );
    println!(
        "sigil verify:  p50 {} p90 {} max {}  ({} runs)",
        ms(v50),
        ms(v90),
        ms(vmax),
        args.runs
    );
    println!(
        "cosign verify: p50 {} p90 {} max {}",
        ms(c50),
        ms(c90),
        ms(cmax)
    );
    println!(
        "cosign / sigil at p50: {:.1}x",
        c50.as_secs_f64() / v50.as_secs_f64()
    );
    let _ = server.kill();
    let _ = server.wait();
}

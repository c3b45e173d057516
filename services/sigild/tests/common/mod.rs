//! Test harness: a real `sigild` process on loopback, real SQLite or PostgreSQL storage, and
//! a client-side signer for making entries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_proto::checkpoint::{Checkpoint, SignedNote};

pub mod cluster;
pub mod netns;

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// The address it listens on.
    host: String,
    port: u16,
    /// A command sigild runs under (`ip netns exec NAME`); empty for none.
    prefix: Vec<String>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        Server::start_with(data_dir, database_url, &[])
    }

    pub fn start_with(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> Server {
        Server::start_at("127.0.0.1", &[], data_dir, database_url, extra)
    }

    /// Starts sigild listening on `host`, run under the command `prefix` (e.g. `ip netns
    /// exec NAME`, which replaces itself with sigild, so the child is sigild).
    pub fn start_at(
        host: &str,
        prefix: &[String],
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> Server {
        let port = free_port();
        let mut s = Server {
            child: None,
            url: format!("http://{host}:{port}"),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.map(str::to_string),
            host: host.to_string(),
            port,
            prefix: prefix.to_vec(),
        };
        s.spawn(extra);
        s
    }

    fn spawn(&mut self, extra: &[&str]) {
        let sigild = env!("CARGO_BIN_EXE_sigild");
        let mut cmd = match self.prefix.split_first() {
            None => Command::new(sigild),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(sigild);
                cmd
            }
        };
        cmd.args(["serve", "--listen", &format!("{}:{}", self.host, self.port)])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(db) = &self.database_url {
            cmd.args(["--database-url", db]);
        }
        self.child = Some(cmd.spawn().expect("spawn sigild"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect((self.host.as_str(), self.port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = stream.read_to_string(&mut buf);
                if buf.contains("200 OK") {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sigild exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "sigild did not become healthy in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts sigild where it must refuse to start; returns what it printed.
    pub fn refused(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigild"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(db) = database_url {
            cmd.args(["--database-url", db]);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sigild");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sigild kept running where it must refuse to start");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "sigild exited 0 where it must refuse");
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        stderr
    }

    /// Restarts with extra flags.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.stop();
        self.spawn(extra);
    }

    /// SIGKILL: no graceful shutdown, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn(&[]);
    }

    /// SIGKILL, then start again with extra flags.
    pub fn restart_after_kill_with(&mut self, extra: &[&str]) {
        self.kill9();
        self.spawn(extra);
    }

    pub fn restart_after_kill(&mut self) {
        self.kill9();
        self.spawn(&[]);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub use sigil_tests::postgres::fresh_database as fresh_postgres_database;

/// A client key that signs artifacts the way cosign and sigstore-python do.
pub struct ClientKey {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl ClientKey {
    pub fn new() -> ClientKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        ClientKey {
            key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap(),
            rng,
        }
    }

    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        der.extend_from_slice(self.key.public_key().as_ref());
        der
    }

    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der())
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key.sign(&self.rng, msg).unwrap().as_ref().to_vec()
    }

    /// A hashedrekord 0.0.1 proposed entry for `artifact`.
    pub fn hashedrekord(&self, artifact: &[u8]) -> Value {
        json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "signature": {
                    "content": STANDARD.encode(self.sign(artifact)),
                    "publicKey": {"content": STANDARD.encode(self.public_pem())}
                },
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(artifact))}}
            }
        })
    }

    /// A dsse 0.0.1 proposed entry for an in-toto statement about `artifact`.
    pub fn dsse(&self, artifact: &[u8]) -> Value {
        self.dsse_signed(artifact, 1)
    }

    /// The same with `count` signatures (ECDSA signatures differ each time) by this key.
    pub fn dsse_signed(&self, artifact: &[u8], count: usize) -> Value {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": hex::encode(Sha256::digest(artifact))}}],
            "predicateType": "https://example.com/p",
            "predicate": {}
        })
        .to_string();
        let ptype = "application/vnd.in-toto+json";
        let pae = sigil_proto::dsse::pae(ptype, statement.as_bytes());
        let signatures: Vec<Value> = (0..count)
            .map(|_| json!({"sig": STANDARD.encode(self.sign(&pae)), "keyid": ""}))
            .collect();
        let envelope = json!({"payload": STANDARD.encode(&statement), "payloadType": ptype, "signatures": signatures}).to_string();
        json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "proposedContent": {"envelope": envelope, "verifiers": [STANDARD.encode(self.public_pem())]},
            "signatures": null, "envelopeHash": null, "payloadHash": null}})
    }
}

pub use sigil_tests::pem::pem;

pub fn spki_from_pem(text: &str) -> Vec<u8> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// Verifies a Rekor v1 checkpoint's signature with the log key and returns its body.
pub fn verified_checkpoint(note_text: &str, log_spki: &[u8]) -> Checkpoint {
    let note = SignedNote::parse(note_text).expect("checkpoint parses");
    assert_eq!(
        note.signatures.len(),
        1,
        "Rekor v1 checkpoints carry exactly the log's signature"
    );
    let sig = &note.signatures[0];
    let key_id = Sha256::digest(log_spki);
    assert_eq!(sig.key_hint, key_id[..4], "key hint is SHA-256(SPKI)[:4]");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, log_spki)
        .verify(note.text.as_bytes(), &sig.signature)
        .expect("checkpoint signature verifies with the log key");
    Checkpoint::parse(&note.text).unwrap()
}

pub fn verify_p256(spki: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki)
        .verify(msg, sig)
        .is_ok()
}

pub fn hash_from_hex(h: &str) -> sigil_proto::merkle::Hash {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// `GET /api/v1/log/proof`: (root hash at `last`, proof hashes).
pub async fn consistency_proof(
    http: &reqwest::Client,
    url: &str,
    first: u64,
    last: u64,
) -> (sigil_proto::merkle::Hash, Vec<sigil_proto::merkle::Hash>) {
    let proof: sigil_proto::rekor_v1::ConsistencyProof = http
        .get(format!(
            "{url}/api/v1/log/proof?firstSize={first}&lastSize={last}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        hash_from_hex(&proof.root_hash),
        proof.hashes.iter().map(|h| hash_from_hex(h)).collect(),
    )
}

/// `GET /api/v1/log`.
pub async fn log_info(http: &reqwest::Client, url: &str) -> sigil_proto::rekor_v1::LogInfo {
    http.get(format!("{url}/api/v1/log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /metrics`: the Prometheus text.
pub async fn metrics(http: &reqwest::Client, url: &str) -> String {
    http.get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A Fulcio v2 `signingCert` request for `email`: an ID token from the development issuer at
/// `issuer` and a fresh key with its proof of possession over the email.
pub async fn certificate_request(http: &reqwest::Client, issuer: &str, email: &str) -> Value {
    let token: Value = http
        .get(format!("{issuer}/token?email={email}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = ClientKey::new();
    let proof = STANDARD.encode(key.sign(email.as_bytes()));
    json!({
        "credentials": {"oidcIdentityToken": token["id_token"]},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": key.public_pem()},
            "proofOfPossession": proof,
        }
    })
}

/// Every acknowledged entry is still there (at the index it was given, when `Some`), and every
/// head in `old` is a prefix of the current tree. Returns the current head.
pub async fn assert_log_kept(
    http: &reqwest::Client,
    url: &str,
    acked: &[(String, Option<u64>)],
    old: &[sigil_proto::rekor_v1::LogInfo],
) -> sigil_proto::rekor_v1::LogInfo {
    for (id, index) in acked {
        let r = http
            .get(format!("{url}/api/v1/log/entries/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged entry {id} is gone");
        if let Some(index) = index {
            let map: sigil_proto::rekor_v1::LogEntryMap = r.json().await.unwrap();
            assert_eq!(map[id].log_index, *index, "entry {id} moved");
        }
    }
    let now = log_info(http, url).await;
    let new_root = hash_from_hex(&now.root_hash);
    // An empty tree is a prefix of every tree; the API takes no proof from size 0.
    for head in old.iter().filter(|h| h.tree_size > 0) {
        let (_, proof) = consistency_proof(http, url, head.tree_size, now.tree_size).await;
        sigil_proto::merkle::verify_consistency(
            head.tree_size,
            now.tree_size,
            &hash_from_hex(&head.root_hash),
            &new_root,
            &proof,
        )
        .expect("an earlier head is a prefix of the current tree");
    }
    now
}

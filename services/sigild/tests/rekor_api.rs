//! The Rekor v1 API and tiles over HTTP, against a real sigild, on SQLite and PostgreSQL.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{
    ClientKey, Server, consistency_proof, fresh_postgres_database, hash_from_hex, spki_from_pem,
    verified_checkpoint, verify_p256,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_proto::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use sigil_proto::rekor_v1::{LogEntry, LogEntryMap, LogInfo, set_payload};

struct Api {
    http: reqwest::Client,
    url: String,
    log_spki: Vec<u8>,
}

impl Api {
    async fn new(url: &str) -> Api {
        let http = reqwest::Client::new();
        let pem = http
            .get(format!("{url}/api/v1/log/publicKey"))
            .send()
            .await
            .unwrap();
        assert_eq!(pem.headers()["content-type"], "application/x-pem-file");
        let log_spki = spki_from_pem(&pem.text().await.unwrap());
        Api {
            http,
            url: url.to_string(),
            log_spki,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_raw(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    async fn info(&self) -> LogInfo {
        self.get("/api/v1/log").await.json().await.unwrap()
    }

    /// Checks everything a client checks on a LogEntry, and returns (entryID, entry).
    fn check_entry(&self, map: LogEntryMap) -> (String, LogEntry) {
        assert_eq!(map.len(), 1);
        let (id, e) = map.into_iter().next().unwrap();
        let body = STANDARD.decode(&e.body).unwrap();
        assert_eq!(id.len(), 80);
        assert_eq!(
            &id[16..],
            hex::encode(leaf_hash(&body)),
            "entry UUID is the leaf hash"
        );
        assert_eq!(e.log_id, hex::encode(Sha256::digest(&self.log_spki)));
        let p = &e.verification.inclusion_proof;
        assert_eq!(p.log_index, e.log_index);
        assert!(p.tree_size > p.log_index);
        let cp = verified_checkpoint(&p.checkpoint, &self.log_spki);
        assert_eq!(cp.size, p.tree_size);
        assert_eq!(hex::encode(cp.root_hash), p.root_hash);
        assert!(
            cp.origin.starts_with("127.0.0.1 - "),
            "Rekor v1 origin: {}",
            cp.origin
        );
        let hashes: Vec<Hash> = p
            .hashes
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect();
        verify_inclusion(
            &leaf_hash(&body),
            p.log_index,
            p.tree_size,
            &hashes,
            &cp.root_hash,
        )
        .expect("inclusion proof");
        let set = STANDARD
            .decode(&e.verification.signed_entry_timestamp)
            .unwrap();
        let payload = set_payload(&e.body, e.integrated_time, &e.log_id, e.log_index);
        assert!(verify_p256(&self.log_spki, &payload, &set), "SET verifies");
        (id, e)
    }
}

async fn api_suite(server: &Server) {
    let api = Api::new(&server.url).await;
    let key = ClientKey::new();
    let empty = api.info().await;
    assert_eq!(empty.tree_size, 0);

    // Submit a hashedrekord: 201 with Location and ETag, body canonical, proofs good.
    let artifact = b"hello sigil".to_vec();
    let proposed = key.hashedrekord(&artifact);
    let resp = api.post("/api/v1/log/entries", &proposed).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let (id, entry) = api.check_entry(resp.json().await.unwrap());
    assert_eq!(etag, id);
    assert_eq!(location, format!("{}/api/v1/log/entries/{id}", server.url));
    let body: Value = serde_json::from_slice(&STANDARD.decode(&entry.body).unwrap()).unwrap();
    assert_eq!(body["kind"], "hashedrekord");
    assert_eq!(
        body["spec"]["data"]["hash"]["value"],
        hex::encode(Sha256::digest(&artifact))
    );
    let canonical = sigil_proto::canonical_json::to_canonical_vec(&body);
    assert_eq!(
        STANDARD.decode(&entry.body).unwrap(),
        canonical,
        "stored body is RFC 8785 canonical"
    );

    // Duplicate: 409 pointing at the existing entry; nothing new is written.
    let dup = api.post("/api/v1/log/entries", &proposed).await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    assert_eq!(dup.headers()["location"].to_str().unwrap(), location);
    let err: Value = dup.json().await.unwrap();
    assert_eq!(err["code"], 409);
    assert!(err["message"].as_str().unwrap().contains(&id));

    // DSSE entry, with a verifier that did not sign and the signer's key twice: the key that
    // verifies is the one stored.
    let mut dsse = key.dsse(b"attested artifact");
    let signer_pem = STANDARD.encode(key.public_pem());
    dsse["spec"]["proposedContent"]["verifiers"] = serde_json::json!([
        STANDARD.encode(ClientKey::new().public_pem()),
        signer_pem,
        signer_pem
    ]);
    let resp = api.post("/api/v1/log/entries", &dsse).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (dsse_id, dsse_entry) = api.check_entry(resp.json().await.unwrap());
    let dsse_body: Value =
        serde_json::from_slice(&STANDARD.decode(&dsse_entry.body).unwrap()).unwrap();
    assert_eq!(dsse_body["kind"], "dsse");
    assert_eq!(dsse_body["spec"]["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(
        dsse_body["spec"]["signatures"][0]["verifier"],
        Value::String(signer_pem)
    );

    // More entries, so proofs have some depth.
    for i in 0..20 {
        let resp = api
            .post(
                "/api/v1/log/entries",
                &key.hashedrekord(format!("artifact {i}").as_bytes()),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let info = api.info().await;
    assert_eq!(info.tree_size, 22);
    let cp = verified_checkpoint(&info.signed_tree_head, &api.log_spki);
    assert_eq!(hex::encode(cp.root_hash), info.root_hash);
    assert_eq!(cp.origin, format!("127.0.0.1 - {}", info.tree_id));

    // Reads: by index, by UUID (64 and 80 hex), retrieve (both paths), search.
    let by_index: LogEntryMap = api
        .get(&format!("/api/v1/log/entries?logIndex={}", entry.log_index))
        .await
        .json()
        .await
        .unwrap();
    let (id2, e2) = api.check_entry(by_index);
    assert_eq!(
        (id2.as_str(), e2.body.as_str()),
        (id.as_str(), entry.body.as_str())
    );
    assert_eq!(
        e2.verification.inclusion_proof.tree_size, 22,
        "reads prove against the current head"
    );
    for uuid in [&id[..], &id[16..]] {
        let r = api.get(&format!("/api/v1/log/entries/{uuid}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        api.check_entry(r.json().await.unwrap());
    }
    assert_eq!(
        api.get(&format!("/api/v1/log/entries/{}", "ab".repeat(32)))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v1/log/entries?logIndex=22").await.status(),
        StatusCode::NOT_FOUND
    );
    for path in [
        "/api/v1/log/entries/retrieve",
        "/api/v1/log/entries/retrieve/",
    ] {
        let r = api
            .post(
                path,
                &json!({"entryUUIDs": [id.clone()], "logIndexes": [1]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let list: Vec<LogEntryMap> = r.json().await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[1].contains_key(&dsse_id));
    }
    let r = api
        .post(
            "/api/v1/log/entries/retrieve",
            &json!({"logIndexes": (0..11).collect::<Vec<u64>>()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let by_entry = api
        .post(
            "/api/v1/log/entries/retrieve",
            &json!({"entries": [proposed.clone()]}),
        )
        .await;
    let list: Vec<LogEntryMap> = by_entry.json().await.unwrap();
    assert!(
        list[0].contains_key(&id),
        "retrieve by proposed entry finds the original"
    );

    let hash = format!("sha256:{}", hex::encode(Sha256::digest(&artifact)));
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &json!({"hash": hash}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found, vec![id.clone()]);
    let attested = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(b"attested artifact"))
    );
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &json!({"hash": attested}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found, vec![dsse_id.clone()], "in-toto subjects are indexed");
    let pk = json!({"publicKey": {"format": "x509", "content": STANDARD.encode(key.public_pem())}});
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &pk)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 22, "every entry by this key");
    let both = json!({"publicKey": pk["publicKey"], "hash": hash, "operator": "and"});
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &both)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found, vec![id.clone()]);
    // Without an operator the terms are joined with "or", as in Rekor; a digest without its
    // algorithm prefix is read by its length; the dsse envelope's own hash is indexed.
    let either = json!({"publicKey": pk["publicKey"], "hash": hash});
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &either)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 22, "the union, not the intersection");
    let bare = hash.trim_start_matches("sha256:").to_uppercase();
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &json!({"hash": bare}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found, vec![id.clone()]);
    let envelope_hash = hex::encode(Sha256::digest(
        dsse["spec"]["proposedContent"]["envelope"]
            .as_str()
            .unwrap()
            .as_bytes(),
    ));
    let found: Vec<String> = api
        .post("/api/v1/index/retrieve", &json!({"hash": envelope_hash}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found, vec![dsse_id.clone()], "the envelope hash is indexed");

    // Consistency proof between two sizes.
    let (_, hashes) = consistency_proof(&api.http, &api.url, 3, 22).await;
    let (old_root, _) = consistency_proof(&api.http, &api.url, 1, 3).await;
    verify_consistency(3, 22, &old_root, &cp.root_hash, &hashes)
        .expect("consistency proof verifies");
    assert_eq!(
        api.get("/api/v1/log/proof?firstSize=5&lastSize=99")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get("/api/v1/log/proof?firstSize=5&lastSize=2")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    // Tiles read API over the same tree.
    let r = api.get("/checkpoint").await;
    assert_eq!(r.status(), StatusCode::OK);
    verified_checkpoint(&r.text().await.unwrap(), &api.log_spki);
    let tile = api.get("/tile/0/000.p/22").await.bytes().await.unwrap();
    assert_eq!(tile.len(), 22 * 32);
    assert_eq!(
        &tile[32 * entry.log_index as usize..][..32],
        &hex::decode(&id[16..]).unwrap()[..]
    );
    let leaves: Vec<Hash> = tile.chunks(32).map(|c| c.try_into().unwrap()).collect();
    assert_eq!(
        sigil_proto::merkle::root_of_leaf_hashes(&leaves),
        cp.root_hash,
        "level-0 tile rebuilds the root"
    );
    assert_eq!(
        api.get("/tile/0/000.p/23").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/tile/0/000").await.status(),
        StatusCode::NOT_FOUND,
        "no full tile yet"
    );
    let bundle = api
        .get("/tile/entries/000.p/2")
        .await
        .bytes()
        .await
        .unwrap();
    let len = u16::from_be_bytes([bundle[0], bundle[1]]) as usize;
    assert_eq!(STANDARD.encode(&bundle[2..2 + len]), entry.body);

    // Bad input: a clear 4xx JSON error each, and nothing is written.
    let before = api.info().await.tree_size;
    let bad_sig = {
        let mut p = key.hashedrekord(b"x");
        p["spec"]["signature"]["content"] = json!(STANDARD.encode(key.sign(b"y")));
        p
    };
    let mut bad_b64 = key.hashedrekord(b"x");
    bad_b64["spec"]["signature"]["content"] = json!("not base64!!");
    let mut bad_hash = key.hashedrekord(b"x");
    bad_hash["spec"]["data"]["hash"]["value"] = json!("abcd");
    let mut bad_key = key.hashedrekord(b"x");
    bad_key["spec"]["signature"]["publicKey"]["content"] =
        json!(STANDARD.encode("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
    let mut unknown_field = key.hashedrekord(b"x");
    unknown_field["spec"]["extra"] = json!(1);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            b"{\"apiVersion\":".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            "unknown kind",
            br#"{"apiVersion":"0.0.1","kind":"rpm","spec":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unsupported entry kind",
        ),
        (
            "unknown version",
            br#"{"apiVersion":"9.9.9","kind":"hashedrekord","spec":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "apiVersion",
        ),
        (
            "bad signature",
            bad_sig.to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "does not verify",
        ),
        (
            "bad base64",
            bad_b64.to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "not valid base64",
        ),
        (
            "bad digest",
            bad_hash.to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "hex characters",
        ),
        (
            "bad key",
            bad_key.to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "publicKey",
        ),
        (
            "unknown field",
            unknown_field.to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "over the limit",
            vec![b' '; 200 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        ),
    ];
    for (name, body, status, needle) in cases {
        let r = api.post_raw("/api/v1/log/entries", body).await;
        assert_eq!(r.status(), status, "{name}");
        let err: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: error body is not JSON: {e}"));
        assert_eq!(err["code"], status.as_u16(), "{name}");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{name}: {msg:?} should mention {needle:?}"
        );
    }
    let r = api.get("/api/v1/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 404);
    assert_eq!(
        api.info().await.tree_size,
        before,
        "rejected submissions write nothing"
    );

    // Requests that used to panic a handler: a truncated PEM key, an entry ID with a
    // multi-byte character across byte 16, tile levels whose Merkle level overflowed a u8,
    // and a non-canonical tile index. Each gets a clean answer and the server stays up.
    let mut bad_key = key.hashedrekord(b"truncated pem");
    bad_key["spec"]["signature"]["publicKey"]["content"] =
        Value::String(STANDARD.encode("-----BEGIN PUBLIC KEY-----END PUBLIC KEY-----"));
    let r = api.post("/api/v1/log/entries", &bad_key).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let odd_id = format!("{}%C3%A9{}", "a".repeat(15), "a".repeat(63));
    let r = api.get(&format!("/api/v1/log/entries/{odd_id}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    for tile in [
        "/tile/32/000",
        "/tile/63/000.p/1",
        "/tile/8/000",
        "/tile/0/x000/001",
    ] {
        let r = api.get(tile).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tile}");
    }
    // dsse entries are bounded per entry: every signature is tried against every verifier,
    // and the stored body repeats the verifier per signature.
    let big = key.dsse_signed(b"amplified", 200);
    let r = api.post("/api/v1/log/entries", &big).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let message = r.json::<Value>().await.unwrap()["message"].to_string();
    assert!(message.contains("200 signatures; at most 16"), "{message}");
    let mut many_verifiers = key.dsse(b"many verifiers");
    many_verifiers["spec"]["proposedContent"]["verifiers"] =
        Value::Array(vec![Value::String(STANDARD.encode(key.public_pem())); 17]);
    let r = api.post("/api/v1/log/entries", &many_verifiers).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let message = r.json::<Value>().await.unwrap()["message"].to_string();
    assert!(message.contains("17 verifiers; at most 16"), "{message}");
    let mut repeated = key.dsse(b"repeated signature");
    let mut envelope: Value = serde_json::from_str(
        repeated["spec"]["proposedContent"]["envelope"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let first = envelope["signatures"][0].clone();
    envelope["signatures"] = Value::Array(vec![first.clone(), first]);
    repeated["spec"]["proposedContent"]["envelope"] = Value::String(envelope.to_string());
    let r = api.post("/api/v1/log/entries", &repeated).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let message = r.json::<Value>().await.unwrap()["message"].to_string();
    assert!(
        message.contains("signature 1 repeats signature 0"),
        "{message}"
    );
    assert_eq!(
        api.info().await.tree_size,
        before,
        "none of them wrote anything"
    );

    let metrics = api.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("sigil_log_entries_appended_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rekor_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    api_suite(&server).await;
}

#[tokio::test]
async fn rekor_api_on_postgres() {
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(&db));
    api_suite(&server).await;
}

async fn consistent_across_restarts(server: &mut Server) {
    let key = ClientKey::new();
    let api = Api::new(&server.url).await;
    for i in 0..7 {
        assert_eq!(
            api.post(
                "/api/v1/log/entries",
                &key.hashedrekord(format!("a{i}").as_bytes())
            )
            .await
            .status(),
            StatusCode::CREATED
        );
    }
    let before = api.info().await;
    server.restart();
    let api = Api::new(&server.url).await;
    assert_eq!(api.log_spki, Api::new(&server.url).await.log_spki);
    let same = api.info().await;
    assert_eq!(
        (same.tree_size, &same.root_hash, &same.tree_id),
        (before.tree_size, &before.root_hash, &before.tree_id)
    );
    for i in 7..30 {
        assert_eq!(
            api.post(
                "/api/v1/log/entries",
                &key.hashedrekord(format!("a{i}").as_bytes())
            )
            .await
            .status(),
            StatusCode::CREATED
        );
    }
    let after = api.info().await;
    let (_, hashes) =
        consistency_proof(&api.http, &api.url, before.tree_size, after.tree_size).await;
    let old = hash_from_hex(&before.root_hash);
    let new = hash_from_hex(&after.root_hash);
    verify_consistency(before.tree_size, after.tree_size, &old, &new, &hashes)
        .expect("old and new heads are consistent");
}

#[tokio::test]
async fn consistent_across_restarts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), None);
    consistent_across_restarts(&mut server).await;
}

#[tokio::test]
async fn consistent_across_restarts_on_postgres() {
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), Some(&db));
    consistent_across_restarts(&mut server).await;
}

#[tokio::test]
async fn a_second_sigild_cannot_write_the_same_postgres_log() {
    let db = fresh_postgres_database().await;
    let dir1 = tempfile::tempdir().unwrap();
    let _first = Server::start(dir1.path(), Some(&db));
    let dir2 = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigild"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .args(["--lock-wait", "1"])
        .arg("--data-dir")
        .arg(dir2.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another sigild already holds the log"),
        "{stderr}"
    );
    // It waited for the lock before giving up, and said so.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(stderr.contains("waiting for it"), "{stderr}");
}

/// A sigild killed a moment ago can leave its database session, and the log's lock, behind
/// for a while (a commit in flight finishes first). A restart in that window waits for the
/// lock instead of exiting: here the lock is held by a session of our own and let go 1.5 s
/// after sigild starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_waits_for_a_lock_left_by_the_previous_session_on_postgres() {
    use sqlx::{Connection, Row};
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), Some(&db));
    server.stop();

    let mut session = sqlx::PgConnection::connect(&db).await.unwrap();
    let log_id: i64 = sqlx::query("SELECT id FROM logs WHERE name = 'rekor'")
        .fetch_one(&mut session)
        .await
        .unwrap()
        .get(0);
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(sigil_log::store::writer_lock_key(log_id))
        .execute(&mut session)
        .await
        .unwrap();
    let hold = std::time::Duration::from_millis(1500);
    let release = tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        session.close().await.unwrap();
    });
    let started = std::time::Instant::now();
    // Blocks until sigild answers /healthz; it exits (and this panics) if it gave up.
    server.restart();
    assert!(
        started.elapsed() >= hold,
        "sigild started while another session held the log's lock"
    );
    release.await.unwrap();
    let api = Api::new(&server.url).await;
    let resp = api
        .post(
            "/api/v1/log/entries",
            &ClientKey::new().hashedrekord(b"after the wait"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn each_service_can_be_mounted_alone_and_keys_can_be_given() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("given-rekor.pem");
    let key = sigil_log::LogSigner::load_or_create(&key_path).unwrap();
    let key_arg = key_path.to_str().unwrap().to_string();
    let server = Server::start_with(
        dir.path(),
        None,
        &["--services", "tiles", "--rekor-key", &key_arg],
    );
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/checkpoint", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    verified_checkpoint(&r.text().await.unwrap(), key.spki_der());
    let r = http
        .get(format!("{}/api/v1/log", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the Rekor API is not mounted"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 404);
}

/// Search beyond one page: 2,501 matches, followed through `Link: <…>; rel="next"`, with the
/// any/all logic done by the database.
async fn search_pages(server: &Server) {
    let http = reqwest::Client::new();
    let (a, b) = (ClientKey::new(), ClientKey::new());
    let mut tasks = tokio::task::JoinSet::new();
    let submit = |http: reqwest::Client, url: String, body: Value| async move {
        let r = http
            .post(format!("{url}/api/v1/log/entries"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    };
    for i in 0..2500 {
        let body = a.hashedrekord(format!("page {i}").as_bytes());
        tasks.spawn(submit(http.clone(), server.url.clone(), body));
        if tasks.len() >= 32 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    // Key B signs one artifact key A also signed.
    submit(http.clone(), server.url.clone(), b.hashedrekord(b"page 7")).await;
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(b"page 7")));
    let key_a = json!({"format": "x509", "content": STANDARD.encode(a.public_pem())});

    let search = |url: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let next = r
                .headers()
                .get("link")
                .map(|v| v.to_str().unwrap().to_string());
            (r.json::<Vec<String>>().await.unwrap(), next)
        }
    };
    let either = json!({"publicKey": key_a, "hash": hash});
    let mut url = format!("{}/api/v1/index/retrieve", server.url);
    let mut pages = Vec::new();
    let mut all = std::collections::HashSet::new();
    loop {
        let (page, next) = search(url.clone(), either.clone()).await;
        pages.push(page.len());
        all.extend(page);
        let Some(link) = next else { break };
        url = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(u, _)| u.to_string())
            .expect("a Link header naming the next page");
    }
    assert_eq!(pages, vec![1000, 1000, 501], "pages of 1,000, newest first");
    assert_eq!(all.len(), 2501, "every match exactly once");

    let both = json!({"publicKey": key_a, "hash": hash, "operator": "and"});
    let (found, next) = search(format!("{}/api/v1/index/retrieve", server.url), both).await;
    assert_eq!(found.len(), 1, "only key A's entry for that artifact");
    assert!(next.is_none());
    let (first, _) = search(
        format!("{}/api/v1/index/retrieve?limit=10", server.url),
        json!({"publicKey": key_a}),
    )
    .await;
    assert_eq!(first.len(), 10);
    // Newest first: the highest index of all key A's entries leads the first page.
    let entry: LogEntryMap = http
        .get(format!("{}/api/v1/log/entries/{}", server.url, first[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let head: LogInfo = http
        .get(format!("{}/api/v1/log", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newest = entry.values().next().unwrap().log_index;
    assert!(
        newest + 2 >= head.tree_size,
        "first result is index {newest}, the log has {}",
        head.tree_size
    );
    for bad in ["limit=0", "limit=1001", "cursor=x", "page=2"] {
        let r = http
            .post(format!("{}/api/v1/index/retrieve?{bad}", server.url))
            .json(&json!({"publicKey": key_a}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "?{bad}");
    }
}

#[tokio::test]
async fn search_pages_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    search_pages(&server).await;
}

#[tokio::test]
async fn search_pages_on_postgres() {
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(&db));
    search_pages(&server).await;
}

/// Every request's time in the server is in /metrics under the route pattern that matched,
/// so operators see proof and write latencies without a proxy in front.
#[tokio::test]
async fn request_durations_are_recorded_per_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let http = reqwest::Client::new();
    let key = ClientKey::new();
    let created = http
        .post(format!("{}/api/v1/log/entries", server.url))
        .json(&key.hashedrekord(b"timed"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let uuid = created
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    for path in [
        format!("/api/v1/log/entries/{uuid}"),
        "/api/v1/log".to_string(),
        "/no/such/route/a1b2".to_string(),
    ] {
        http.get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
    }
    let text = common::metrics(&http, &server.url).await;
    for series in [
        r#"sigil_http_request_seconds_count{route="/api/v1/log/entries",method="POST",status="201"} 1"#,
        r#"sigil_http_request_seconds_count{route="/api/v1/log/entries/{uuid}",method="GET",status="200"} 1"#,
        r#"sigil_http_request_seconds_count{route="/api/v1/log",method="GET",status="200"} 1"#,
        r#"sigil_http_request_seconds_count{route="unmatched",method="GET",status="404"} 1"#,
    ] {
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
    assert!(
        !text.contains("a1b2"),
        "a client's path must not become a label"
    );
}

/// Writes `request` on a fresh connection and reads until the server closes it.
fn exchange(url: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    conn.write_all(request).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .expect("the server closes the connection");
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test]
async fn a_body_refused_before_it_was_read_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);

    // A body over the limit (128 KiB) without a declared length, of which the server reads
    // only the start: the answer says the connection closes (so a client does not send its
    // next request on it), and it does.
    let mut request = b"POST /api/v1/log/entries HTTP/1.1\r\nhost: sigil\r\n\
        content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        request.extend_from_slice(&[b' '; 64 * 1024]);
        request.extend_from_slice(b"\r\n");
    }
    let answer = exchange(&server.url, &request);
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    // A body declared over the limit is refused before any of it is read: a client that
    // waits for 100 Continue before sending it (curl does past 1 MiB) is answered at once
    // rather than left waiting.
    let answer = exchange(
        &server.url,
        b"POST /api/v1/log/entries HTTP/1.1\r\nhost: sigil\r\ncontent-type: application/json\r\n\
          content-length: 1048576\r\nexpect: 100-continue\r\n\r\n",
    );
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than the server's limit"),
        "{answer}"
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    // A client that sends a declared, too large body anyway has it read and dropped before
    // the answer, so the connection is not reset under it and stays usable: the request
    // pipelined after it is answered too.
    let mut request = format!(
        "POST /api/v1/log/entries HTTP/1.1\r\nhost: sigil\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        200 * 1024
    )
    .into_bytes();
    request.extend_from_slice(&[b' '; 200 * 1024]);
    request
        .extend_from_slice(b"GET /api/v1/log HTTP/1.1\r\nhost: sigil\r\nconnection: close\r\n\r\n");
    let answer = exchange(&server.url, &request);
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    let second = answer
        .find("http/1.1 200")
        .unwrap_or_else(|| panic!("no answer to the request after the refused one: {answer}"));
    assert!(!answer[..second].contains("connection: close"), "{answer}");

    // A refusal after the whole body was read keeps the connection: the second request on
    // it (which asks to close) is answered too.
    let answer = exchange(
        &server.url,
        b"POST /api/v1/log/entries HTTP/1.1\r\nhost: sigil\r\ncontent-type: application/json\r\n\
          content-length: 1\r\n\r\n{\
          GET /api/v1/log HTTP/1.1\r\nhost: sigil\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("http/1.1 400"), "{answer}");
    let second = answer
        .find("http/1.1 200")
        .unwrap_or_else(|| panic!("no answer to the second request: {answer}"));
    assert!(!answer[..second].contains("connection: close"), "{answer}");
}

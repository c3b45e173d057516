//! `--preload N`: fills a fresh log with N keyless-shaped hashedrekord entries through the
//! log engine's batch path (no HTTP, no signature checks), so that a 10M-entry log takes
//! minutes to build. The bodies are the size real keyless entries are: each carries a
//! certificate our CA issued, with its serial number rewritten per entry so that every body
//! and certificate hash is distinct, as they are when every signing gets a fresh key.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use sigil_log::{LogEngine, NewLeaf, Store};

/// How many identities the preloaded entries are spread over: a search by one email then
/// matches N / IDENTITIES entries.
pub const IDENTITIES: u64 = 1000;

/// Appends in flight at once: enough to fill the sequencer's largest batches.
const IN_FLIGHT: usize = 8192;

pub struct Template {
    /// DER certificates issued by a real sigild CA.
    certs: Vec<Vec<u8>>,
}

impl Template {
    pub fn new(certs: Vec<Vec<u8>>) -> Template {
        assert!(!certs.is_empty(), "at least one template certificate");
        Template { certs }
    }

    /// Entry `i`: its canonical body and the search keys the Rekor personality would index.
    fn entry(&self, run: u64, i: u64) -> (Vec<u8>, Vec<String>) {
        let mut der = self.certs[(i as usize) % self.certs.len()].clone();
        rewrite_serial(&mut der, run, i);
        let pem = super::pem("CERTIFICATE", &der);
        let digest = hex::encode(Sha256::digest(format!("preload {run} artifact {i}")));
        // An ECDSA P-256 signature is 70-72 bytes of DER; its content does not matter here.
        let sig: Vec<u8> = Sha256::digest(format!("sig {run} {i}"))
            .iter()
            .chain(Sha256::digest(format!("sig2 {run} {i}")).iter())
            .chain([0x30u8, 0x45, 0x02, 0x20, 0x02, 0x21].iter())
            .copied()
            .collect();
        let body = sigil_proto::rekor_v1::hashedrekord_body(
            "sha256",
            &digest,
            &STANDARD.encode(&sig),
            &STANDARD.encode(pem.as_bytes()),
        );
        let keys = vec![
            format!("sha256:{digest}"),
            format!("cert:{}", hex::encode(Sha256::digest(&der))),
            format!("email:user{}@example.com", i % IDENTITIES),
        ];
        (body, keys)
    }
}

/// Rewrites the bytes of the certificate's serial number (the first INTEGER of the TBS) so
/// each entry's certificate is distinct, keeping every length, hence the DER, valid.
pub fn rewrite_serial(der: &mut [u8], run: u64, i: u64) {
    // Certificate SEQUENCE, TBS SEQUENCE (both long-form lengths), [0] version, INTEGER serial.
    let mut at = 0;
    for _ in 0..2 {
        at += 1; // tag
        let len = der[at];
        at += 1 + if len & 0x80 != 0 {
            (len & 0x7f) as usize
        } else {
            0
        };
    }
    assert_eq!(
        der[at], 0xa0,
        "template certificate has an explicit version"
    );
    at += 2 + der[at + 1] as usize;
    assert_eq!(der[at], 0x02, "serial number INTEGER");
    let len = der[at + 1] as usize;
    let serial = &mut der[at + 2..at + 2 + len];
    let fresh = Sha256::digest(format!("serial {run} {i}"));
    for (b, f) in serial.iter_mut().zip(fresh.iter()).skip(1) {
        *b = *f;
    }
    // Keep the INTEGER positive and minimally encoded.
    serial[0] = 0x01 | (serial[0] & 0x3f);
}

/// Opens the log as sigild would and appends `n` entries. Returns when all are durable.
pub fn run(database_url: Option<&str>, data_dir: &Path, template: Template, n: u64) {
    let database_url = database_url.map(str::to_string);
    let data_dir = data_dir.to_path_buf();
    // Its own runtime: dropping it ends the sequencer and releases the store (and SQLite's lock
    // file) before sigild opens the same data.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let store = Store::open(database_url.as_deref(), &data_dir)
                .await
                .expect("open store");
            let engine = LogEngine::open(store.clone(), "rekor")
                .await
                .expect("open log");
            fill(&engine, Arc::new(template), n).await;
            // The sequencer ends when the last handle is gone and gives its connection back.
            drop(engine);
            store.close().await;
        });
        rt.shutdown_timeout(std::time::Duration::from_secs(10));
    })
    .join()
    .expect("preload thread");
}

async fn fill(engine: &LogEngine, template: Arc<Template>, n: u64) {
    let run = super::rand_tag();
    let started = Instant::now();
    let now = sigil_log::engine::now_ms();
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_report = Instant::now();
    for i in 0..n {
        if tasks.len() >= IN_FLIGHT {
            tasks.join_next().await.expect("task").expect("append");
        }
        let (engine, template) = (engine.clone(), template.clone());
        tasks.spawn(async move {
            let (leaf, index_keys) = template.entry(run, i);
            match engine
                .append(NewLeaf {
                    leaf,
                    extra: Vec::new(),
                    timestamp_ms: now + i / 1000,
                    index_keys,
                })
                .await
            {
                Ok(sigil_log::AppendOutcome::New(_)) => {}
                other => panic!("preload entry {i}: {other:?}"),
            }
        });
        if last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            let rate = i as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "preload: {i} of {n} entries ({:.0}%), {rate:.0}/s, about {:.0} s left",
                100.0 * i as f64 / n as f64,
                (n - i) as f64 / rate.max(1.0)
            );
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("append");
    }
    eprintln!(
        "preload: {n} entries in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
}

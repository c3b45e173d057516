use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use sigil_proto::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use tower::ServiceExt as _;

use super::http::{
    GetEntriesResponse, GetProofByHashResponse, GetRootsResponse, GetSthConsistencyResponse,
    GetSthResponse,
};
use super::*;
use crate::signer::verify_p256;
use crate::store::Store;

async fn open_log(dir: &std::path::Path) -> CtLog {
    let store = Store::open_sqlite(dir).await.unwrap();
    let engine = LogEngine::open(store, "ct").await.unwrap();
    CtLog::new(engine, LogSigner::generate())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    ct: &CtLog,
    uri: &str,
) -> (StatusCode, Option<T>) {
    let resp = http::router(ct.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).ok())
}

#[tokio::test]
async fn sct_verifies_and_entry_is_provably_included() {
    let dir = tempfile::tempdir().unwrap();
    let ct = open_log(dir.path()).await;
    let issuer_spki = b"issuer spki".to_vec();
    let tbs = b"tbs without poison".to_vec();
    let chain = vec![b"precert".to_vec(), b"issuer".to_vec(), b"root".to_vec()];

    let sct = ct
        .add_pre_chain(&tbs, &issuer_spki, chain.clone())
        .await
        .unwrap();
    assert_eq!(
        sct.log_id,
        <[u8; 32]>::from(Sha256::digest(ct.public_key_spki_der()))
    );
    let issuer_key_hash: [u8; 32] = Sha256::digest(&issuer_spki).into();
    let signed = codec::precert_signed_data(sct.timestamp_ms, &issuer_key_hash, &tbs, &[]).unwrap();
    assert!(verify_p256(
        ct.public_key_spki_der(),
        &signed,
        &sct.signature
    ));
    let other =
        codec::precert_signed_data(sct.timestamp_ms, &issuer_key_hash, b"other tbs", &[]).unwrap();
    assert!(!verify_p256(
        ct.public_key_spki_der(),
        &other,
        &sct.signature
    ));

    let head = ct.engine().tree_head();
    assert_eq!(head.size, 1);
    let entry = ct.engine().entry(0).await.unwrap().unwrap();
    let leaf = codec::parse_precert_leaf(&entry.leaf).unwrap();
    assert_eq!(leaf.tbs_certificate, tbs);
    assert_eq!(leaf.timestamp_ms, sct.timestamp_ms);
    assert_eq!(leaf.issuer_key_hash, issuer_key_hash);
    let (precert, rest) = codec::parse_precert_chain_entry(&entry.extra).unwrap();
    assert_eq!(precert, chain[0]);
    assert_eq!(rest, chain[1..].to_vec());

    // A second entry so the proof is not trivially empty.
    ct.add_pre_chain(b"tbs 2", &issuer_spki, chain.clone())
        .await
        .unwrap();
    let head = ct.engine().tree_head();
    let proof = ct.engine().inclusion_proof(0, head.size).await.unwrap();
    verify_inclusion(&leaf_hash(&entry.leaf), 0, head.size, &proof, &head.root).unwrap();
}

#[tokio::test]
async fn short_chains_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ct = open_log(dir.path()).await;
    assert!(matches!(
        ct.add_pre_chain(b"tbs", b"spki", vec![b"precert".to_vec()])
            .await,
        Err(CtError::ShortChain)
    ));
    assert_eq!(ct.engine().tree_head().size, 0);
}

#[tokio::test]
async fn read_api_serves_signed_heads_proofs_entries_and_roots() {
    let dir = tempfile::tempdir().unwrap();
    let ct = open_log(dir.path()).await;
    ct.add_accepted_root(b"root".to_vec());
    ct.add_accepted_root(b"root".to_vec());
    for i in 0..5u8 {
        ct.add_pre_chain(&[i; 10], b"spki", vec![vec![i], b"root".to_vec()])
            .await
            .unwrap();
    }

    let (status, sth) = get_json::<GetSthResponse>(&ct, "/ct/v1/get-sth").await;
    assert_eq!(status, StatusCode::OK);
    let sth = sth.unwrap();
    assert_eq!(sth.tree_size, 5);
    let root: [u8; 32] = STANDARD
        .decode(&sth.sha256_root_hash)
        .unwrap()
        .try_into()
        .unwrap();
    let ds = STANDARD.decode(&sth.tree_head_signature).unwrap();
    assert_eq!(&ds[..2], &[codec::HASH_SHA256, codec::SIG_ECDSA]);
    assert_eq!(u16::from_be_bytes([ds[2], ds[3]]) as usize, ds.len() - 4);
    let signed = codec::tree_head_signed_data(sth.timestamp, sth.tree_size, &root);
    assert!(verify_p256(ct.public_key_spki_der(), &signed, &ds[4..]));

    let (status, entries) =
        get_json::<GetEntriesResponse>(&ct, "/ct/v1/get-entries?start=1&end=9").await;
    assert_eq!(status, StatusCode::OK);
    let entries = entries.unwrap().entries;
    assert_eq!(entries.len(), 4, "end is clamped to the tree");
    let leaf2 = STANDARD.decode(&entries[1].leaf_input).unwrap();
    assert_eq!(
        codec::parse_precert_leaf(&leaf2).unwrap().tbs_certificate,
        vec![2u8; 10]
    );
    let extra2 = STANDARD.decode(&entries[1].extra_data).unwrap();
    assert_eq!(
        codec::parse_precert_chain_entry(&extra2).unwrap().0,
        vec![2u8]
    );

    let hash = leaf_hash(&leaf2);
    let uri = format!(
        "/ct/v1/get-proof-by-hash?tree_size=5&hash={}",
        STANDARD
            .encode(hash)
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let (status, proof) = get_json::<GetProofByHashResponse>(&ct, &uri).await;
    assert_eq!(status, StatusCode::OK);
    let proof = proof.unwrap();
    assert_eq!(proof.leaf_index, 2);
    let path: Vec<[u8; 32]> = proof
        .audit_path
        .iter()
        .map(|h| STANDARD.decode(h).unwrap().try_into().unwrap())
        .collect();
    verify_inclusion(&hash, 2, 5, &path, &root).unwrap();

    let old_root = ct.engine().root_at(3).await.unwrap();
    let (status, cons) =
        get_json::<GetSthConsistencyResponse>(&ct, "/ct/v1/get-sth-consistency?first=3&second=5")
            .await;
    assert_eq!(status, StatusCode::OK);
    let cons: Vec<[u8; 32]> = cons
        .unwrap()
        .consistency
        .iter()
        .map(|h| STANDARD.decode(h).unwrap().try_into().unwrap())
        .collect();
    verify_consistency(3, 5, &old_root, &root, &cons).unwrap();

    let (status, roots) = get_json::<GetRootsResponse>(&ct, "/ct/v1/get-roots").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(roots.unwrap().certificates, vec![STANDARD.encode(b"root")]);
}

#[tokio::test]
async fn read_api_rejects_bad_parameters_as_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ct = open_log(dir.path()).await;
    ct.add_pre_chain(b"tbs", b"spki", vec![b"p".to_vec(), b"r".to_vec()])
        .await
        .unwrap();
    for uri in [
        "/ct/v1/get-entries?start=1&end=0",
        "/ct/v1/get-entries?start=5&end=6",
        "/ct/v1/get-entries?start=x&end=1",
        "/ct/v1/get-sth-consistency?first=1&second=9",
        "/ct/v1/get-proof-by-hash?tree_size=1&hash=notbase64",
        "/ct/v1/get-proof-by-hash?tree_size=0",
    ] {
        let (status, _) = get_json::<serde_json::Value>(&ct, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
    }
    let unknown = STANDARD.encode([0u8; 32]);
    let (status, _) = get_json::<serde_json::Value>(
        &ct,
        &format!("/ct/v1/get-proof-by-hash?tree_size=1&hash={unknown}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

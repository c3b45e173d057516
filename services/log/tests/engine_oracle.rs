//! The storage-backed engine against ct-merkle, an independent RFC 6962 implementation:
//! roots, inclusion proofs and consistency proofs at every size, read back from SQLite after
//! concurrent (batched) appends and after reopening.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2::Sha256;
use sigil_log::{AppendOutcome, LogEngine, NewLeaf, Store};
use sigil_proto::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};

fn leaf(i: u64) -> Vec<u8> {
    format!("leaf number {i} with some padding").into_bytes()
}

async fn append_concurrently(
    engine: &LogEngine,
    range: std::ops::Range<u64>,
) -> Vec<(u64, Vec<u8>)> {
    let mut set = tokio::task::JoinSet::new();
    for i in range {
        let engine = engine.clone();
        set.spawn(async move {
            let data = leaf(i);
            let out = engine
                .append(NewLeaf {
                    leaf: data.clone(),
                    extra: vec![1, 2],
                    timestamp_ms: i,
                    index_keys: vec![format!("k:{i}")],
                })
                .await
                .expect("append");
            match out {
                AppendOutcome::New(a) => {
                    verify_inclusion(
                        &leaf_hash(&data),
                        a.index,
                        a.tree_head.size,
                        &a.inclusion_proof,
                        &a.tree_head.root,
                    )
                    .expect("proof returned by append verifies");
                    (a.index, data)
                }
                AppendOutcome::Duplicate { .. } => panic!("unexpected duplicate"),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

fn oracle(leaves: &[Vec<u8>], size: usize) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut t = MemoryBackedTree::new();
    for l in &leaves[..size] {
        t.push(l.clone());
    }
    t
}

fn chunks(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks(32).map(|c| c.try_into().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_matches_ct_merkle_at_every_size_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let n = 150u64;
    let mut leaves: Vec<Vec<u8>> = vec![Vec::new(); n as usize];
    {
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let engine = LogEngine::open(store, "oracle").await.unwrap();
        for (start, end) in [(0, 1), (1, 40), (40, 41), (41, n)] {
            for (index, data) in append_concurrently(&engine, start..end).await {
                leaves[index as usize] = data;
            }
        }
        assert_eq!(engine.tree_head().size, n);
        // The same leaf again is a duplicate pointing at the original index.
        match engine
            .append(NewLeaf {
                leaf: leaves[7].clone(),
                extra: vec![],
                timestamp_ms: 0,
                index_keys: vec![],
            })
            .await
            .unwrap()
        {
            AppendOutcome::Duplicate { index } => assert_eq!(index, 7),
            AppendOutcome::New(_) => panic!("duplicate accepted"),
        }
    }
    // Reopen: only the head and frontier are loaded; everything else is read on demand.
    let store = loop {
        match Store::open_sqlite(dir.path()).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let engine = LogEngine::open(store, "oracle").await.unwrap();
    let head = engine.tree_head();
    assert_eq!(head.size, n);
    let full = oracle(&leaves, n as usize);
    assert_eq!(&head.root[..], &full.root().as_bytes()[..]);

    for size in 1..=n {
        let t = oracle(&leaves, size as usize);
        let root = engine.root_at(size).await.unwrap();
        assert_eq!(&root[..], &t.root().as_bytes()[..], "root at {size}");
        // Every index for small trees, a spread for larger ones.
        let indexes: Vec<u64> = if size <= 40 {
            (0..size).collect()
        } else {
            vec![0, size / 3, size / 2, size - 1]
        };
        for i in indexes {
            let ours = engine.inclusion_proof(i, size).await.unwrap();
            let theirs = chunks(t.prove_inclusion(i as usize).as_bytes());
            assert_eq!(ours, theirs, "inclusion {i}@{size}");
            verify_inclusion(&leaf_hash(&leaves[i as usize]), i, size, &ours, &root).unwrap();
        }
        let olds: Vec<u64> = if size <= 40 {
            (1..size).collect()
        } else {
            vec![1, size / 2, size - 1]
        };
        for old in olds {
            let ours = engine.consistency_proof(old, size).await.unwrap();
            let theirs = chunks(t.prove_consistency((size - old) as usize).as_bytes());
            assert_eq!(ours, theirs, "consistency {old}->{size}");
            let old_root = engine.root_at(old).await.unwrap();
            verify_consistency(old, size, &old_root, &root, &ours).unwrap();
        }
    }
    // Stored entries and search keys come back as written.
    let e = engine.entry(42).await.unwrap().unwrap();
    assert_eq!(e.leaf, leaves[42]);
    assert_eq!(e.extra, vec![1, 2]);
    let found = engine
        .search(
            &[vec![format!("k:{}", e.timestamp_ms)]],
            false,
            u64::MAX,
            10,
        )
        .await
        .unwrap();
    assert_eq!(found, vec![(42, e.leaf_hash)]);
    assert!(
        engine.inclusion_proof(0, n + 1).await.is_err(),
        "proofs beyond the head are refused"
    );
}

#[tokio::test]
async fn a_second_writer_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open_sqlite(dir.path()).await.unwrap();
    let second = Store::open_sqlite(dir.path()).await;
    assert!(
        matches!(second, Err(sigil_log::store::StoreError::Locked(_))),
        "{second:?}"
    );
}

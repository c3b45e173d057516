//! Property tests: proofs shaped by `sigil_proto::merkle` against ct-merkle, an independent
//! RFC 6962 implementation, for random tree sizes, indexes and size pairs.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use proptest::prelude::*;
use sha2::Sha256;
use sigil_proto::merkle::{
    Hash, Range, consistency_ranges, fold_range, inclusion_ranges, leaf_hash, range_nodes,
    root_of_leaf_hashes, verify_consistency, verify_inclusion,
};

fn leaves(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn tree(leaves: &[Vec<u8>]) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut t = MemoryBackedTree::new();
    for l in leaves {
        t.push(l.clone());
    }
    t
}

/// A proof from our range shapes, with each range hashed from its complete subtrees.
fn proof(hashes: &[Hash], ranges: Vec<Range>) -> Vec<Hash> {
    ranges
        .into_iter()
        .map(|r| {
            let parts: Vec<Hash> = range_nodes(r)
                .iter()
                .map(|n| root_of_leaf_hashes(&hashes[n.start() as usize..n.end() as usize]))
                .collect();
            fold_range(&parts)
        })
        .collect()
}

fn chunks(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks(32).map(|c| c.try_into().unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_and_consistency_match_ct_merkle(size in 1u64..700, index_seed in any::<u64>(), old_seed in any::<u64>()) {
        let data = leaves(size);
        let hashes: Vec<Hash> = data.iter().map(|l| leaf_hash(l)).collect();
        let theirs = tree(&data);
        let root = root_of_leaf_hashes(&hashes);
        let their_root = theirs.root();
        prop_assert_eq!(&root[..], &their_root.as_bytes()[..]);

        let index = index_seed % size;
        let ours = proof(&hashes, inclusion_ranges(index, size).unwrap());
        prop_assert_eq!(&ours, &chunks(theirs.prove_inclusion(index as usize).as_bytes()));
        prop_assert!(verify_inclusion(&hashes[index as usize], index, size, &ours, &root).is_ok());

        if size > 1 {
            let old = 1 + old_seed % (size - 1);
            let ours = proof(&hashes, consistency_ranges(old, size).unwrap());
            prop_assert_eq!(&ours, &chunks(theirs.prove_consistency((size - old) as usize).as_bytes()));
            let old_root = root_of_leaf_hashes(&hashes[..old as usize]);
            prop_assert!(verify_consistency(old, size, &old_root, &root, &ours).is_ok());
            // A proof for the wrong pair of sizes must not verify.
            if old + 1 < size {
                prop_assert!(verify_consistency(old + 1, size, &old_root, &root, &ours).is_err());
            }
        }
    }
}

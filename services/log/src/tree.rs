//! The in-memory part of a log's tree: its right edge (`Frontier`, in proto, since monitors
//! build the same tree from the entries they read). That is O(log n) hashes, enough to append
//! leaves and compute the new root; everything else stays in storage.

use std::collections::HashMap;

pub use sigil_proto::merkle::Frontier;
use sigil_proto::merkle::{Hash, NodeId, Range, fold_range, range_nodes};

/// Builds proofs from a map of known node hashes (a batch's new nodes plus the frontier it
/// grew from), which covers every node an inclusion proof for a new leaf can name.
pub fn proof_from_map(ranges: &[Range], known: &HashMap<NodeId, Hash>) -> Option<Vec<Hash>> {
    ranges
        .iter()
        .map(|r| {
            let hashes: Option<Vec<Hash>> = range_nodes(*r)
                .iter()
                .map(|id| known.get(id).copied())
                .collect();
            hashes.map(|h| fold_range(&h))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::merkle::{inclusion_ranges, leaf_hash, root_of_leaf_hashes, verify_inclusion};

    #[test]
    fn frontier_root_matches_reference_for_every_size() {
        let mut f = Frontier::default();
        let mut leaves = Vec::new();
        for i in 0u64..300 {
            let lh = f.push(&i.to_be_bytes(), &mut |_, _| {});
            leaves.push(lh);
            assert_eq!(f.root(), root_of_leaf_hashes(&leaves), "size {}", i + 1);
            assert_eq!(f.nodes().len() as u32, f.size().count_ones());
        }
    }

    #[test]
    fn batch_nodes_plus_old_frontier_answer_every_new_proof() {
        for old in [0u64, 1, 5, 8, 13, 64, 100] {
            let mut f = Frontier::default();
            for i in 0..old {
                f.push(&i.to_be_bytes(), &mut |_, _| {});
            }
            let mut known: HashMap<NodeId, Hash> = f.nodes().iter().copied().collect();
            let mut all: Vec<Hash> = (0..old).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            for i in old..old + 37 {
                all.push(f.push(&i.to_be_bytes(), &mut |id, h| {
                    known.insert(id, h);
                }));
            }
            let size = f.size();
            let root = f.root();
            for index in old..size {
                let proof = proof_from_map(&inclusion_ranges(index, size).unwrap(), &known)
                    .expect("all nodes known");
                verify_inclusion(&all[index as usize], index, size, &proof, &root).unwrap();
            }
        }
    }

    #[test]
    fn frontier_reloads_from_its_node_ids() {
        let mut f = Frontier::default();
        let mut store: HashMap<NodeId, Hash> = HashMap::new();
        for i in 0u64..77 {
            f.push(&i.to_be_bytes(), &mut |id, h| {
                store.insert(id, h);
            });
        }
        let ids = Frontier::node_ids(77);
        let reloaded = Frontier::from_nodes(77, ids.iter().map(|id| store[id]).collect());
        assert_eq!(reloaded, f);
    }
}

//! RFC 6962 Merkle tree maths as pure functions.
//!
//! Proof *generation* needs stored hashes and lives in the log engine; what lives here is what
//! both sides need: the hash rules, the shape of proofs (which subtrees a proof names) and proof
//! verification. The shape functions let a storage-backed tree fetch exactly the O(log n)
//! complete subtrees it needs instead of rebuilding anything in memory.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// SHA-256 of the empty string: the root of the empty tree.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A complete (perfect) subtree: leaves `[index << level, (index + 1) << level)`.
/// Its hash never changes once the tree has grown past it, which is what makes it storable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }
    pub fn start(&self) -> u64 {
        self.index << self.level
    }
    pub fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// A range of leaves `[start, end)` whose RFC 6962 hash a proof needs. The hash of a range is
/// the fold (right to left) of the hashes of its complete-subtree decomposition, see
/// [`range_nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("consistency proof needs 0 < old size <= new size, got {old} and {new}")]
    BadSizes { old: u64, new: u64 },
    #[error("proof has {got} hashes, expected {want}")]
    WrongProofLength { got: usize, want: usize },
    #[error("computed root does not match the expected root")]
    RootMismatch,
}

/// Largest power of two strictly less than `n` (n >= 2): RFC 6962's split point `k`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees that make up leaves `[start, end)`, left to right, assuming `start`
/// is the left edge of an RFC 6962 subtree (true for every range a proof names). The RFC
/// hash of the range is `fold_right(node_hash)` over them.
pub fn range_nodes(range: Range) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let remaining = range.end - start;
        // Largest aligned power of two that starts at `start` and fits in the range.
        let mut level = 63 - remaining.leading_zeros() as u8;
        if start != 0 {
            level = level.min(start.trailing_zeros() as u8);
        }
        out.push(NodeId::new(level, start >> level));
        start += 1u64 << level;
    }
    out
}

/// Combines the hashes of a range's decomposition into the range's RFC 6962 hash.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let mut acc = match iter.next() {
        Some(h) => *h,
        None => return EMPTY_ROOT,
    };
    for h in iter {
        acc = node_hash(h, &acc);
    }
    acc
}

/// The ranges whose hashes form the RFC 6962 inclusion proof (audit path) of `index` in a
/// tree of `size` leaves, ordered leaf to root.
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(index, 0, size, &mut out);
    out.reverse();
    Ok(out)
}

// PATH(m, D[start:end]) from RFC 6962 §2.1.1, emitting root-to-leaf.
fn path(m: u64, start: u64, end: u64, out: &mut Vec<Range>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m - start < k {
        out.push(Range {
            start: start + k,
            end,
        });
        path(m, start, start + k, out);
    } else {
        out.push(Range {
            start,
            end: start + k,
        });
        path(m, start + k, end, out);
    }
}

/// The ranges whose hashes form the RFC 6962 consistency proof from `old` to `new` leaves.
pub fn consistency_ranges(old: u64, new: u64) -> Result<Vec<Range>, MerkleError> {
    if old == 0 || old > new {
        return Err(MerkleError::BadSizes { old, new });
    }
    let mut out = Vec::new();
    if old < new {
        subproof(old, 0, new, true, &mut out);
    }
    out.reverse();
    Ok(out)
}

// SUBPROOF(m, D[start:end], b) from RFC 6962 §2.1.2, emitting in reverse order.
fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Range>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(Range { start, end });
        }
        return;
    }
    let k = split(n);
    if m <= k {
        out.push(Range {
            start: start + k,
            end,
        });
        subproof(m, start, start + k, whole, out);
    } else {
        out.push(Range {
            start,
            end: start + k,
        });
        subproof(m - k, start + k, end, false, out);
    }
}

/// Verifies an RFC 6962 inclusion proof (RFC 9162 §2.1.3.2 algorithm).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if &computed == root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// The root that an inclusion proof implies, for callers that compare it themselves.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decomp_inclusion(index, size);
    if proof.len() != inner + border {
        return Err(MerkleError::WrongProofLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let mut h = *leaf_hash;
    for (i, p) in proof[..inner].iter().enumerate() {
        h = if (index >> i) & 1 == 0 {
            node_hash(&h, p)
        } else {
            node_hash(p, &h)
        };
    }
    for p in &proof[inner..] {
        h = node_hash(p, &h);
    }
    Ok(h)
}

// Number of proof nodes below the point where the leaf's path and the tree's right border
// meet, and the number on the border itself.
fn decomp_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    // Sizes come from bundles and requests: above 2^63 leaves `inner` is 64, where `>>`
    // overflows (a panic with overflow checks) instead of leaving nothing of the index.
    let border = index.checked_shr(inner).unwrap_or(0).count_ones() as usize;
    (inner as usize, border)
}

/// Verifies an RFC 6962 consistency proof (RFC 9162 §2.1.4.2 algorithm).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old == 0 || old > new {
        return Err(MerkleError::BadSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let (mut inner, border) = decomp_inclusion(old - 1, new);
    let shift = old.trailing_zeros() as usize;
    inner -= shift;
    // When `old` is a power of two... the old root itself is the first node of the path.
    let (seed, rest) = if old == 1u64 << shift {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(MerkleError::WrongProofLength {
                    got: 0,
                    want: inner + border + 1,
                });
            }
        }
    };
    if rest.len() != inner + border {
        let extra = usize::from(old != 1u64 << shift);
        return Err(MerkleError::WrongProofLength {
            got: proof.len(),
            want: inner + border + extra,
        });
    }
    let mask = (old - 1) >> shift;
    let mut h1 = seed;
    let mut h2 = seed;
    for (i, p) in rest[..inner].iter().enumerate() {
        if (mask >> i) & 1 == 1 {
            h1 = node_hash(p, &h1);
            h2 = node_hash(p, &h2);
        } else {
            h2 = node_hash(&h2, p);
        }
    }
    for p in &rest[inner..] {
        h1 = node_hash(p, &h1);
        h2 = node_hash(p, &h2);
    }
    if &h1 != old_root || &h2 != new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// RFC 6962 MTH over a list of leaf hashes; a reference for tests and tiny trees only
/// (it is O(n) and the log never calls it on its tree).
pub fn root_of_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(
                &root_of_leaf_hashes(&leaves[..k]),
                &root_of_leaf_hashes(&leaves[k..]),
            )
        }
    }
}

/// The complete subtrees that make up the tree's leaves, left to right (largest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// The node ids a frontier for `size` leaves consists of, for loading it from storage.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        range_nodes(Range {
            start: 0,
            end: size,
        })
    }

    pub fn from_nodes(size: u64, hashes: Vec<Hash>) -> Frontier {
        let nodes = Frontier::node_ids(size).into_iter().zip(hashes).collect();
        Frontier { size, nodes }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.nodes.iter().map(|(_, h)| *h).collect();
        fold_range(&hashes)
    }

    pub fn nodes(&self) -> &[(NodeId, Hash)] {
        &self.nodes
    }

    /// Appends a leaf; reports every complete subtree it creates (level 0 included) to `created`.
    /// Returns the leaf's hash.
    pub fn push(&mut self, leaf: &[u8], created: &mut impl FnMut(NodeId, Hash)) -> Hash {
        let lh = leaf_hash(leaf);
        self.push_hash(lh, created);
        lh
    }

    pub fn push_hash(&mut self, lh: Hash, created: &mut impl FnMut(NodeId, Hash)) {
        let mut node = (NodeId::new(0, self.size), lh);
        created(node.0, node.1);
        while let Some((last_id, last_hash)) = self.nodes.last().copied() {
            if last_id.level != node.0.level {
                break;
            }
            self.nodes.pop();
            let parent = NodeId::new(node.0.level + 1, node.0.index >> 1);
            node = (parent, node_hash(&last_hash, &node.1));
            created(node.0, node.1);
        }
        self.nodes.push(node);
        self.size += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reproduced with the fuzz/ `bundle` target: a bundle whose inclusion proof claims a tree
    // of 2^63 + 1 leaves panicked in the verifier instead of being refused.
    #[test]
    fn trees_above_two_to_the_63_leaves_are_refused_not_a_panic() {
        let leaf = leaf_hash(b"x");
        let size = (1u64 << 63) + 1;
        assert_eq!(
            root_from_inclusion_proof(&leaf, 0, size, &[]),
            Err(MerkleError::WrongProofLength { got: 0, want: 64 })
        );
        assert_eq!(
            verify_consistency(1, u64::MAX, &leaf, &leaf, &[]),
            Err(MerkleError::WrongProofLength { got: 0, want: 64 })
        );
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn range_hash(all: &[Hash], r: Range) -> Hash {
        let hs: Vec<Hash> = range_nodes(r)
            .iter()
            .map(|n| root_of_leaf_hashes(&all[n.start() as usize..n.end() as usize]))
            .collect();
        fold_range(&hs)
    }

    // RFC 6962 test vectors as published with the Go and C++ CT implementations: the eight
    // leaves below and the roots of their prefixes.
    fn rfc_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    #[test]
    fn rfc6962_roots() {
        let want = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let all: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
        for (n, w) in want.iter().enumerate() {
            assert_eq!(
                hex::encode(root_of_leaf_hashes(&all[..=n])),
                *w,
                "size {}",
                n + 1
            );
        }
        assert_eq!(root_of_leaf_hashes(&[]), EMPTY_ROOT);
    }

    #[test]
    fn rfc6962_inclusion_vectors() {
        // (index, size, path) from the reference test data.
        let cases: &[(u64, u64, &[&str])] = &[
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let all: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
        for (index, size, want) in cases {
            let proof: Vec<Hash> = inclusion_ranges(*index, *size)
                .unwrap()
                .into_iter()
                .map(|r| range_hash(&all, r))
                .collect();
            let got: Vec<String> = proof.iter().map(hex::encode).collect();
            assert_eq!(got, *want, "index {index} size {size}");
            let root = root_of_leaf_hashes(&all[..*size as usize]);
            verify_inclusion(&all[*index as usize], *index, *size, &proof, &root).unwrap();
        }
    }

    #[test]
    fn rfc6962_consistency_vectors() {
        let cases: &[(u64, u64, &[&str])] = &[
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let all: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
        for (old, new, want) in cases {
            let proof: Vec<Hash> = consistency_ranges(*old, *new)
                .unwrap()
                .into_iter()
                .map(|r| range_hash(&all, r))
                .collect();
            let got: Vec<String> = proof.iter().map(hex::encode).collect();
            assert_eq!(got, *want, "{old} -> {new}");
            let r1 = root_of_leaf_hashes(&all[..*old as usize]);
            let r2 = root_of_leaf_hashes(&all[..*new as usize]);
            verify_consistency(*old, *new, &r1, &r2, &proof).unwrap();
        }
    }

    #[test]
    fn proofs_for_every_size_up_to_70_verify_and_fail_when_tampered() {
        let all = leaves(70);
        for size in 1..=70u64 {
            let root = root_of_leaf_hashes(&all[..size as usize]);
            for index in 0..size {
                let proof: Vec<Hash> = inclusion_ranges(index, size)
                    .unwrap()
                    .into_iter()
                    .map(|r| range_hash(&all, r))
                    .collect();
                verify_inclusion(&all[index as usize], index, size, &proof, &root).unwrap();
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(
                        verify_inclusion(&all[index as usize], index, size, &bad, &root).is_err()
                    );
                }
            }
            for old in 1..=size {
                let old_root = root_of_leaf_hashes(&all[..old as usize]);
                let proof: Vec<Hash> = consistency_ranges(old, size)
                    .unwrap()
                    .into_iter()
                    .map(|r| range_hash(&all, r))
                    .collect();
                verify_consistency(old, size, &old_root, &root, &proof).unwrap();
                assert!(
                    verify_consistency(old, size, &root, &old_root, &proof).is_err() || old == size
                );
            }
        }
    }

    #[test]
    fn range_nodes_decompose_exactly() {
        for start in 0..40u64 {
            for end in start + 1..100u64 {
                let mut at = start;
                for n in range_nodes(Range { start, end }) {
                    assert_eq!(n.start(), at, "[{start},{end})");
                    at = n.end();
                }
                assert_eq!(at, end);
            }
        }
    }
}

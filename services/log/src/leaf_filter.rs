//! A filter over the leaf hashes of one search run: says "not here" for almost every hash the
//! run lacks, so the duplicate check probes a run's B-tree only when it may hold the hash.
//!
//! A blocked Bloom filter: each hash sets and tests bits within one 512-bit block (one cache
//! line), so a test costs one memory miss however many bits it checks. Leaf hashes are
//! SHA-256 outputs, so their own bytes choose the block and the bits; nothing is hashed again.
//! At [`BITS_PER_HASH`] bits per hash and [`BITS_SET`] bits set, about 1 % of absent hashes
//! pass (measured in the tests below). A present hash always passes.

use sigil_proto::merkle::Hash;

/// Bits of filter per leaf hash it holds.
pub const BITS_PER_HASH: usize = 10;
/// Bits each hash sets in its block: 9 bits of the hash choose each one.
const BITS_SET: u32 = 7;

const BLOCK_WORDS: usize = 8;

#[derive(Debug)]
pub struct LeafFilter {
    blocks: Vec<[u64; BLOCK_WORDS]>,
}

impl LeafFilter {
    /// An empty filter sized for `hashes` leaf hashes.
    pub fn with_capacity(hashes: usize) -> LeafFilter {
        LeafFilter {
            blocks: vec![[0; BLOCK_WORDS]; blocks_for(hashes)],
        }
    }

    /// What a filter for `hashes` leaf hashes takes in memory.
    pub fn bytes_for(hashes: usize) -> usize {
        blocks_for(hashes) * BLOCK_WORDS * 8
    }

    pub fn bytes(&self) -> usize {
        self.blocks.len() * BLOCK_WORDS * 8
    }

    pub fn insert(&mut self, hash: &Hash) {
        let block = self.block_of(hash);
        for bit in bits_of(hash) {
            self.blocks[block][bit / 64] |= 1 << (bit % 64);
        }
    }

    /// False only if `hash` was never inserted.
    pub fn may_contain(&self, hash: &Hash) -> bool {
        let block = &self.blocks[self.block_of(hash)];
        bits_of(hash).all(|bit| block[bit / 64] & (1 << (bit % 64)) != 0)
    }

    fn block_of(&self, hash: &Hash) -> usize {
        let x = u64::from_le_bytes(hash[0..8].try_into().expect("8 bytes"));
        // Multiply-shift maps x onto 0..len without the bias of a modulo.
        ((x as u128 * self.blocks.len() as u128) >> 64) as usize
    }
}

fn blocks_for(hashes: usize) -> usize {
    let bits = hashes.saturating_mul(BITS_PER_HASH);
    bits.div_ceil(BLOCK_WORDS * 64).max(1)
}

/// The bit positions within a block that `hash` sets (bytes 8..16 of the hash, 9 bits each).
fn bits_of(hash: &Hash) -> impl Iterator<Item = usize> {
    let x = u64::from_le_bytes(hash[8..16].try_into().expect("8 bytes"));
    (0..BITS_SET).map(move |i| ((x >> (9 * i)) & 0x1ff) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn hash(n: u64, salt: &str) -> Hash {
        Sha256::new()
            .chain_update(salt)
            .chain_update(n.to_le_bytes())
            .finalize()
            .into()
    }

    #[test]
    fn every_inserted_hash_passes() {
        let mut f = LeafFilter::with_capacity(20_000);
        for n in 0..20_000 {
            f.insert(&hash(n, "in"));
        }
        assert!((0..20_000).all(|n| f.may_contain(&hash(n, "in"))));
    }

    #[test]
    fn about_one_absent_hash_in_a_hundred_passes() {
        let mut f = LeafFilter::with_capacity(50_000);
        for n in 0..50_000 {
            f.insert(&hash(n, "in"));
        }
        let passed = (0..100_000)
            .filter(|n| f.may_contain(&hash(*n, "out")))
            .count();
        // 10 bits per hash, 7 set, in 512-bit blocks: about 1 %; a broken bit choice (the
        // same bit for every i, one block for every hash) passes far more.
        assert!(passed < 2_000, "{passed} of 100000 absent hashes passed");
        assert!(
            passed > 100,
            "{passed}: suspiciously few; is the filter sized as planned?"
        );
    }

    #[test]
    fn an_empty_filter_passes_nothing_and_has_one_block() {
        let f = LeafFilter::with_capacity(0);
        assert_eq!(f.bytes(), 64);
        assert!(!f.may_contain(&hash(1, "x")));
    }

    #[test]
    fn size_is_ten_bits_per_hash_in_whole_blocks() {
        assert_eq!(LeafFilter::bytes_for(10_000_000), 12_500_032);
        assert_eq!(LeafFilter::bytes_for(51), 64);
        assert_eq!(LeafFilter::bytes_for(52), 128);
    }
}

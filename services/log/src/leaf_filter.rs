//! A filter over the leaf hashes of one search run: says "not here" for almost every hash the
//! run lacks, so the duplicate check probes a run's B-tree only when it may hold the hash.
//!
//! A blocked Bloom filter: each hash sets and tests bits within one 64-byte block, so a test
//! reads one block however many bits it checks. Leaf hashes are SHA-256 outputs, so their own
//! bytes choose the block and the bits; nothing is hashed again. At [`BITS_PER_HASH`] bits per
//! hash and [`BITS_SET`] bits set, about 0.08 % of absent hashes pass (measured in the tests
//! below). A present hash always passes.
//!
//! Why so few: every hash that passes costs a probe of the run's B-tree at a random leaf page,
//! and a large log's runs do not all stay in the page cache; at 10 bits per hash (1 %) those
//! probes were most of the disk reads of a write run at 10M entries. 16 bits cost 2 bytes per
//! entry on disk and cut the probes twelvefold; 9 bits set is the best count for 16 bits in a
//! 512-bit block.
//!
//! The filter lives in a file, not in sigild's memory: it grows with the log (2 bytes per
//! entry), and the process's memory must not. A test is one `pread` of a block (about 0.4 µs
//! from the page cache on the reference machine), and the kernel keeps the blocks in use
//! cached and drops the rest under pressure, as it does the database's pages.
//!
//! The block of a hash grows with the hash read big-endian, so hashes in sorted order (the
//! order a run stores them) fill the blocks front to back: [`Builder`] writes the file
//! through a small window instead of holding the whole filter.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sigil_proto::merkle::Hash;

/// Bits of filter per leaf hash it holds.
pub const BITS_PER_HASH: usize = 16;
/// Bits each hash sets in its block: 9 bits of the hash choose each one.
const BITS_SET: u32 = 9;
const BLOCK_BYTES: usize = 64;
/// Blocks a [`Builder`] holds in memory at once (1 MiB; tests move it often).
const WINDOW_BLOCKS: u64 = if cfg!(test) { 64 } else { 16_384 };

type Block = [u8; BLOCK_BYTES];

/// A finished filter: its file, open for reading, removed from the directory when dropped.
#[derive(Debug)]
pub struct LeafFilter {
    file: File,
    path: PathBuf,
    blocks: u64,
}

impl LeafFilter {
    /// The file size of a filter for `hashes` leaf hashes.
    pub fn bytes_for(hashes: usize) -> u64 {
        blocks_for(hashes) * BLOCK_BYTES as u64
    }

    pub fn bytes(&self) -> u64 {
        self.blocks * BLOCK_BYTES as u64
    }

    /// False only if `hash` was never inserted. A block that cannot be read passes
    /// everything: the run is then probed, which is slower and still right.
    pub fn may_contain(&self, hash: &Hash) -> bool {
        let mut block = [0; BLOCK_BYTES];
        let at = block_of(self.blocks, hash) * BLOCK_BYTES as u64;
        match self.file.read_exact_at(&mut block, at) {
            Ok(()) => holds(&block, hash),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "reading a leaf-hash filter");
                true
            }
        }
    }
}

impl Drop for LeafFilter {
    fn drop(&mut self) {
        // Readers holding the filter keep the open file; only the name goes.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes a filter for a known number of hashes. Any order is right; ascending order (each
/// log's keys in a run) moves the window forward only, so each block is written about once.
/// A builder dropped unfinished removes its file.
#[derive(Debug)]
pub struct Builder {
    filter: LeafFilter,
    // Blocks window_start.. held in memory, written back when the window moves on.
    window_start: u64,
    window: Vec<Block>,
}

impl Builder {
    /// Creates (replacing) the file at `path`, sized for `hashes` hashes, all bits clear.
    pub fn create(path: &Path, hashes: usize) -> io::Result<Builder> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let blocks = blocks_for(hashes);
        file.set_len(blocks * BLOCK_BYTES as u64)?;
        Ok(Builder {
            filter: LeafFilter {
                file,
                path: path.to_path_buf(),
                blocks,
            },
            window_start: 0,
            window: Vec::new(),
        })
    }

    pub fn insert(&mut self, hash: &Hash) -> io::Result<()> {
        let block = block_of(self.filter.blocks, hash);
        let end = self.window_start + self.window.len() as u64;
        if block < self.window_start || block >= end {
            self.flush()?;
            self.load(block)?;
        }
        set(&mut self.window[(block - self.window_start) as usize], hash);
        Ok(())
    }

    /// Writes the last window and hands over the filter. Not durable, and need not be: a
    /// filter is rebuilt from its run at every start-up.
    pub fn finish(mut self) -> io::Result<LeafFilter> {
        self.flush()?;
        Ok(self.filter)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.window.is_empty() {
            self.filter.file.write_all_at(
                self.window.as_flattened(),
                self.window_start * BLOCK_BYTES as u64,
            )?;
        }
        Ok(())
    }

    fn load(&mut self, first: u64) -> io::Result<()> {
        let n = WINDOW_BLOCKS.min(self.filter.blocks - first) as usize;
        self.window.clear();
        self.window.resize(n, [0; BLOCK_BYTES]);
        self.filter
            .file
            .read_exact_at(self.window.as_flattened_mut(), first * BLOCK_BYTES as u64)?;
        self.window_start = first;
        Ok(())
    }
}

fn blocks_for(hashes: usize) -> u64 {
    let bits = hashes.saturating_mul(BITS_PER_HASH) as u64;
    bits.div_ceil(BLOCK_BYTES as u64 * 8).max(1)
}

/// The block `hash` lives in, of `blocks`: multiply-shift maps the hash's first 8 bytes onto
/// 0..blocks without a modulo's bias, and in their order.
fn block_of(blocks: u64, hash: &Hash) -> u64 {
    let x = u64::from_be_bytes(hash[0..8].try_into().expect("8 bytes"));
    ((x as u128 * blocks as u128) >> 64) as u64
}

/// The bit positions within a block that `hash` sets (bytes 8..24 of the hash, 9 bits each).
fn bits_of(hash: &Hash) -> impl Iterator<Item = usize> {
    let x = u128::from_le_bytes(hash[8..24].try_into().expect("16 bytes"));
    (0..BITS_SET).map(move |i| ((x >> (9 * i)) & 0x1ff) as usize)
}

fn set(block: &mut Block, hash: &Hash) {
    for bit in bits_of(hash) {
        block[bit / 8] |= 1 << (bit % 8);
    }
}

fn holds(block: &Block, hash: &Hash) -> bool {
    bits_of(hash).all(|bit| block[bit / 8] & (1 << (bit % 8)) != 0)
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

    fn sorted(n: u64, salt: &str) -> Vec<Hash> {
        let mut v: Vec<Hash> = (0..n).map(|i| hash(i, salt)).collect();
        v.sort();
        v
    }

    fn build(path: &Path, runs: &[&[Hash]]) -> LeafFilter {
        let total = runs.iter().map(|r| r.len()).sum();
        let mut b = Builder::create(path, total).unwrap();
        for run in runs {
            for h in *run {
                b.insert(h).unwrap();
            }
        }
        b.finish().unwrap()
    }

    #[test]
    fn every_inserted_hash_passes() {
        let dir = tempfile::tempdir().unwrap();
        // Large enough for several windows, in two sorted runs as two logs' keys come.
        let (a, b) = (sorted(200_000, "a"), sorted(150_000, "b"));
        let f = build(&dir.path().join("f"), &[&a, &b]);
        assert!(f.bytes() > 100 * WINDOW_BLOCKS * BLOCK_BYTES as u64);
        assert!(a.iter().chain(&b).all(|h| f.may_contain(h)));
    }

    #[test]
    fn about_one_absent_hash_in_a_thousand_passes() {
        let dir = tempfile::tempdir().unwrap();
        let f = build(&dir.path().join("f"), &[&sorted(50_000, "in")]);
        let passed = (0..100_000)
            .filter(|n| f.may_contain(&hash(*n, "out")))
            .count();
        // 16 bits per hash, 9 set, in 512-bit blocks: about 0.08 %; a broken bit choice (the
        // same bit for every i, one block for every hash) passes far more.
        assert!(passed < 200, "{passed} of 100000 absent hashes passed");
        assert!(
            passed > 20,
            "{passed}: suspiciously few; is the filter sized as planned?"
        );
    }

    #[test]
    fn an_empty_filter_passes_nothing_and_has_one_block() {
        let dir = tempfile::tempdir().unwrap();
        let f = build(&dir.path().join("f"), &[]);
        assert_eq!(f.bytes(), 64);
        assert!(!f.may_contain(&hash(1, "x")));
    }

    #[test]
    fn size_is_sixteen_bits_per_hash_in_whole_blocks() {
        assert_eq!(LeafFilter::bytes_for(10_000_000), 20_000_000);
        assert_eq!(LeafFilter::bytes_for(32), 64);
        assert_eq!(LeafFilter::bytes_for(33), 128);
    }

    #[test]
    fn the_file_is_removed_with_the_filter_and_kept_while_it_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let hs = sorted(1_000, "k");
        let f = build(&path, &[&hs]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes());
        drop(f);
        assert!(!path.exists());
    }

    #[test]
    fn sorted_hashes_take_blocks_in_order() {
        let hs = sorted(10_000, "o");
        let blocks: Vec<u64> = hs.iter().map(|h| block_of(977, h)).collect();
        assert!(blocks.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((blocks[0], *blocks.last().unwrap()), (0, 976));
    }
}

//! sigil's transparency log: one storage-backed RFC 6962 engine, and the API personalities
//! that sit on it (Rekor v1, the C2SP tiles read API, and the CT log used by the CA).

pub mod admission;
pub mod cluster;
pub mod copy;
pub mod cosigning;
pub mod ct;
pub mod engine;
pub mod head_file;
pub mod http;
pub mod leaf_filter;
pub mod leaf_index;
pub mod rekor_v1;
pub mod search_runs;
pub mod signer;
pub mod store;
pub mod tiles;
mod tree;
pub mod witness;
pub mod work;

pub use engine::{
    AppendOutcome, Appended, EngineError, EngineOptions, LogEngine, NewLeaf, StoredEntry, TreeHead,
};
pub use signer::LogSigner;
pub use store::Store;

//! Sigstore wire types for sigil. Everything here is plain data plus pure encoding and
//! parsing: no I/O, no clocks, no network. Services and the client both build on it.
//!
//! JSON rules follow the protobuf JSON mapping that Sigstore clients enforce strictly:
//! camelCase names, u64/i64 as decimal strings, bytes as padded standard base64, and no
//! unknown fields.

pub mod bundle;
pub mod canonical_json;
pub mod checkpoint;
pub mod cosign;
pub mod dsse;
pub mod encoding;
pub mod fulcio;
pub mod intoto;
pub mod merkle;
pub mod oci;
pub mod rekor_v1;
pub mod trust;
pub mod witness;

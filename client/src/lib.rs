//! The sigil client: offline verification of Sigstore bundles (and, later, signing).
//!
//! `verify` is the reusable library; `cli` holds the `sigil` command line, one module per
//! subcommand group, so that adding a subcommand is a local change.

pub mod audit;
pub mod cli;
pub mod image;
pub mod keys;
pub mod monitor;
pub mod oci;
pub mod oidc;
pub mod sign;
pub mod trust_source;
pub mod verify;
pub mod witness;

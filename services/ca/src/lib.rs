pub mod api;
pub mod ca;
pub mod certificate;
pub mod config;
pub mod dev_issuer;
pub mod identity;
pub mod keystore;
pub mod oidc;
pub mod oids;
pub mod profile;
pub mod signer;
pub mod subject_key;
pub mod trust_config;

pub use api::{router, router_with_trust};
pub use ca::{Ca, CaOptions, IdentityCheck, IdentityVerifier, IssueError, Issued};
pub use keystore::{ImportedCa, KeyProtection, KeyStoreOptions, PASSPHRASE_ENV};
pub use signer::{CaKeyAlgorithm, CaSigner, LocalSigner};
pub use trust_config::TrustConfigInputs;

#[cfg(test)]
mod tests;

//! Test harness: starts real peers (sigild, oidc-provider, sigstore-python) for end-to-end tests.
pub mod files;
pub mod go_peers;
pub mod oidc_mock;
pub mod oidc_provider;
pub mod peers;
pub mod pem;
pub mod postgres;
pub mod registry;
pub mod sigstore_python;
pub mod stack;
pub mod world;

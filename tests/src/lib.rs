//! Test harness: starts real peers (sigild, oidc-provider, PostgreSQL) for end-to-end tests.
pub mod oidc_provider;

pub mod identity;
pub mod oidc;

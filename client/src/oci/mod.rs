//! Container images in OCI registries: references, credentials, the registry client, and
//! the storage layouts of signatures and attestations (bundle referrers, the referrers tag
//! schema, cosign's legacy tags).

pub mod attach;
pub mod attached;
pub mod auth;
pub mod reference;
pub mod registry;

pub use auth::{Credential, CredentialSource};
pub use reference::ImageRef;
pub use registry::{Fetched, Insecure, Registry, RegistryError, RegistryOptions};

//! The registry flags every image command shares: credentials and transport.

use std::path::PathBuf;

use clap::Args;

use crate::oci::{Credential, CredentialSource, Insecure, RegistryOptions};

#[derive(Debug, Args)]
#[command(next_help_heading = "Registry access")]
pub struct RegistryArgs {
    /// Registry username, for every registry this command touches (default: the Docker
    /// config's credentials for each registry).
    #[arg(long, env = "SIGIL_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// Registry password or access token, with --registry-username.
    #[arg(long, env = "SIGIL_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// A registry bearer token, sent as is.
    #[arg(
        long,
        env = "SIGIL_REGISTRY_TOKEN",
        hide_env_values = true,
        conflicts_with = "registry_username"
    )]
    pub registry_token: Option<String>,
    /// PEM file of CA certificates to trust for registry TLS (beside the system's).
    #[arg(long, value_name = "FILE")]
    pub registry_cacert: Option<PathBuf>,
    /// Fall back to plain http for registries that do not speak https (loopback
    /// registries always may).
    #[arg(long)]
    pub allow_http_registry: bool,
    /// Like --allow-http-registry, and also skip TLS certificate verification.
    #[arg(long)]
    pub allow_insecure_registry: bool,
}

impl RegistryArgs {
    pub fn options(&self) -> Result<RegistryOptions, String> {
        let explicit = match (
            &self.registry_username,
            &self.registry_password,
            &self.registry_token,
        ) {
            (Some(username), Some(password), _) => Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            (Some(_), None, _) => {
                return Err("--registry-username needs --registry-password".into());
            }
            (None, Some(_), _) => {
                return Err("--registry-password needs --registry-username".into());
            }
            (None, None, Some(token)) => Some(Credential::Bearer(token.clone())),
            (None, None, None) => None,
        };
        let ca_certs_pem =
            match &self.registry_cacert {
                Some(path) => vec![std::fs::read(path).map_err(|e| {
                    format!("cannot read --registry-cacert {}: {e}", path.display())
                })?],
                None => Vec::new(),
            };
        let insecure = if self.allow_insecure_registry {
            Insecure::AllowHttpAndUnverifiedTls
        } else if self.allow_http_registry {
            Insecure::AllowHttp
        } else {
            Insecure::No
        };
        Ok(RegistryOptions {
            credentials: CredentialSource::new(explicit),
            ca_certs_pem,
            insecure,
            ..RegistryOptions::default()
        })
    }
}

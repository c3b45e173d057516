//! The identity-token flags of keyless signing: where the token comes from, and how a person
//! at a terminal logs in when no token source exists.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;

use crate::oidc::interactive::{
    ClientCredentials, DEFAULT_CLIENT_ID, DEFAULT_ISSUER, LoginOptions, login,
};
use crate::oidc::{TokenError, resolve_token};

/// How long the browser flow waits for the redirect back to the client.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Log in through the OIDC issuer even if a token is available from the environment.
    #[arg(long, conflicts_with = "identity_token")]
    pub interactive: bool,
    /// OIDC issuer to log in with [default: the issuer the server's signing config names,
    /// else https://oauth2.sigstore.dev/auth].
    #[arg(long, value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// OAuth client id registered at the issuer.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub oidc_client_id: String,
    /// OAuth client secret, for issuers whose client is confidential.
    #[arg(long)]
    pub oidc_client_secret: Option<String>,
    /// Log in with the device flow (a code to enter on another device) instead of a browser.
    #[arg(long)]
    pub oidc_device_flow: bool,
}

/// The identity token for keyless signing: with `--interactive`, a login; else the first
/// non-interactive source ([`resolve_token`]), falling back to a login when stdin is a terminal.
/// The login goes to `--oidc-issuer`, else to `configured_issuer` (the signing config's
/// `oidcUrls`), else to Sigstore's public issuer.
pub async fn identity_token(
    http: &reqwest::Client,
    explicit: Option<&str>,
    args: &LoginArgs,
    configured_issuer: Option<&str>,
) -> Result<String, String> {
    if !args.interactive {
        match resolve_token(http, explicit).await {
            Ok((token, _)) => return Ok(token),
            Err(TokenError::Missing) if std::io::stdin().is_terminal() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let options = LoginOptions {
        issuer: args
            .oidc_issuer
            .clone()
            .or_else(|| configured_issuer.map(str::to_string))
            .unwrap_or_else(|| DEFAULT_ISSUER.to_string()),
        client: ClientCredentials {
            client_id: args.oidc_client_id.clone(),
            client_secret: args.oidc_client_secret.clone(),
        },
        device_flow: args.oidc_device_flow,
        timeout: BROWSER_TIMEOUT,
    };
    login(http, &options)
        .await
        .map_err(|e| format!("interactive login: {e}"))
}

//! Interactive login against a real OpenID Provider (npm oidc-provider, started by the
//! harness). A person's browser is played by a cookie-keeping HTTP client that fills in the
//! provider's development login and consent forms and follows redirects, including the final
//! one to the client's loopback listener.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sigil_client::oidc::TokenClaims;
use sigil_client::oidc::interactive::{
    BrowserLogin, CALLBACK_PATH, ClientCredentials, LoginError, discover, form_body,
    poll_device_login, start_device_login,
};
use sigil_tests::oidc_provider::{CLIENT_ID, CLIENT_SECRET, OidcProvider};

/// What a person does in the browser, minus the rendering.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    url: Url,
    status: reqwest::StatusCode,
    body: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, url: &Url, form: Option<String>) -> reqwest::Response {
        let mut request = match &form {
            Some(body) => self
                .http
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone()),
            None => self.http.get(url.clone()),
        };
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(COOKIE, jar.join("; "));
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        for set in response.headers().get_all(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        response
    }

    /// Visits `start`, follows redirects and submits every form met (logging in as `login`
    /// and consenting), until a page without a form. Returns that last page.
    async fn log_in(&mut self, start: &str, login: &str) -> Page {
        let input = regex::Regex::new(r"<input\b[^>]*>").unwrap();
        let attr = |tag: &str, name: &str| {
            regex::Regex::new(&format!(r#"\b{name}="([^"]*)""#))
                .unwrap()
                .captures(tag)
                .map(|c| c[1].to_string())
        };
        let mut url = Url::parse(start).unwrap();
        let mut form: Option<String> = None;
        for _ in 0..30 {
            let response = self.send(&url, form.take()).await;
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers()[LOCATION].to_str().unwrap().to_string();
                url = url.join(&location).unwrap();
                continue;
            }
            let body = response.text().await.unwrap();
            let Some(start) = body.find("<form") else {
                return Page { url, status, body };
            };
            let end = body[start..]
                .find("</form>")
                .map_or(body.len(), |e| start + e);
            let html = &body[start..end];
            let action = attr(html, "action").expect("form has an action");
            let mut fields: Vec<(&str, String)> = Vec::new();
            let mut names = Vec::new();
            for tag in input.find_iter(html) {
                if let Some(name) = attr(tag.as_str(), "name") {
                    names.push((name, attr(tag.as_str(), "value").unwrap_or_default()));
                }
            }
            for (name, value) in &names {
                let value = match name.as_str() {
                    "login" => login.to_string(),
                    "password" => "any password".to_string(),
                    _ => value.clone(),
                };
                fields.push((name.as_str(), value));
            }
            form = Some(form_body(&fields));
            url = url.join(&action).unwrap();
        }
        panic!("the login did not finish within 30 steps (at {url})");
    }
}

fn credentials() -> ClientCredentials {
    ClientCredentials {
        client_id: CLIENT_ID.to_string(),
        client_secret: Some(CLIENT_SECRET.to_string()),
    }
}

#[tokio::test]
async fn browser_login_returns_an_id_token_for_the_person_who_logged_in() {
    let idp = OidcProvider::start();
    let http = reqwest::Client::new();
    let discovery = discover(&http, idp.issuer_url()).await.unwrap();
    let client = credentials();
    let login = BrowserLogin::start(&discovery, &client).await.unwrap();
    let authorization_url = login.authorization_url().to_string();
    assert!(authorization_url.contains("code_challenge_method=S256"));
    let waiting = {
        let (http, discovery, client) = (http.clone(), discovery.clone(), client.clone());
        tokio::spawn(async move {
            login
                .finish(&http, &discovery, &client, Duration::from_secs(60))
                .await
        })
    };

    let last = Browser::new()
        .log_in(&authorization_url, "alice@example.com")
        .await;
    assert_eq!(last.url.host_str(), Some("127.0.0.1"));
    assert_eq!(last.url.path(), CALLBACK_PATH);
    assert!(last.status.is_success(), "{}", last.body);

    let token = waiting.await.unwrap().unwrap();
    let claims = TokenClaims::from_unverified_jwt(&token).unwrap();
    assert_eq!(claims.iss, idp.issuer_url());
    assert_eq!(claims.sub, "alice@example.com");
    assert_eq!(claims.challenge().unwrap(), "alice@example.com");
}

#[tokio::test]
async fn a_redirect_with_another_state_is_refused() {
    let idp = OidcProvider::start();
    let http = reqwest::Client::new();
    let discovery = discover(&http, idp.issuer_url()).await.unwrap();
    let client = credentials();
    let login = BrowserLogin::start(&discovery, &client).await.unwrap();
    let authorization = Url::parse(login.authorization_url()).unwrap();
    let redirect_uri = authorization
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    let waiting = {
        let (http, discovery, client) = (http.clone(), discovery.clone(), client.clone());
        tokio::spawn(async move {
            login
                .finish(&http, &discovery, &client, Duration::from_secs(30))
                .await
        })
    };
    // A page the user did not start sends its own code to the listener.
    let forged = format!("{redirect_uri}?code=stolen&state=not-this-login");
    let answer = reqwest::get(&forged).await.unwrap();
    assert!(answer.status().is_success());
    assert!(matches!(
        waiting.await.unwrap(),
        Err(LoginError::StateMismatch)
    ));
}

#[tokio::test]
async fn device_login_returns_an_id_token_once_the_user_approves() {
    let idp = OidcProvider::start();
    let http = reqwest::Client::new();
    let discovery = discover(&http, idp.issuer_url()).await.unwrap();
    let client = credentials();
    let device = start_device_login(&http, &discovery, &client)
        .await
        .unwrap();
    assert!(!device.user_code.is_empty());
    let polling = {
        let (http, discovery, client, device) = (
            http.clone(),
            discovery.clone(),
            client.clone(),
            device.clone(),
        );
        tokio::spawn(async move { poll_device_login(&http, &discovery, &client, &device).await })
    };
    // The user types the code on the verification page, then logs in and consents.
    let visit = format!(
        "{}?user_code={}",
        device.verification_uri,
        url_escape(&device.user_code)
    );
    let last = Browser::new().log_in(&visit, "bob@example.com").await;
    assert!(last.status.is_success(), "{}", last.body);

    let token = tokio::time::timeout(Duration::from_secs(60), polling)
        .await
        .expect("polling ends once the user approved")
        .unwrap()
        .unwrap();
    let claims = TokenClaims::from_unverified_jwt(&token).unwrap();
    assert_eq!(claims.sub, "bob@example.com");
}

fn url_escape(s: &str) -> String {
    form_body(&[("x", s.to_string())])
        .trim_start_matches("x=")
        .to_string()
}

/// A stand-in CA for the command-line tests: it records the certificate request (whose
/// `credentials.oidcIdentityToken` is what these tests are about) and refuses it, so `sigil`
/// stops there with exit 1. Its configuration endpoint is absent, which the client tolerates.
async fn recording_ca() -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ca_url = format!("http://{}", ca.local_addr().unwrap());
    let received = tokio::spawn(async move {
        loop {
            let (mut socket, _) = ca.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            let body_start = loop {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed mid-request");
                request.extend_from_slice(&buf[..n]);
                if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while request.len() < body_start + length {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed mid-body");
                request.extend_from_slice(&buf[..n]);
            }
            // The optional configuration endpoint is absent; the certificate request is refused.
            if !head.starts_with("post /api/v2/signingcert ") {
                let absent =
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                socket.write_all(absent.as_bytes()).await.unwrap();
                continue;
            }
            let refusal = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            socket.write_all(refusal.as_bytes()).await.unwrap();
            break (head, request[body_start..].to_vec());
        }
    });

    (ca_url, received)
}

/// A trust config naming `ca_url` as CA and log, and a file to sign, in `dir`.
fn signing_inputs(dir: &std::path::Path, ca_url: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [], "ctlogs": [], "timestampAuthorities": [],
            "certificateAuthorities": [{
                "subject": {"organization": "sigil", "commonName": "root"}, "uri": ca_url,
                "certChain": {"certificates": [{"rawBytes": "AAEC"}]},
                "validFor": {"start": "2025-01-01T00:00:00Z"}
            }]
        },
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": ca_url, "majorApiVersion": 1,
                        "validFor": {"start": "2025-01-01T00:00:00Z"}, "operator": "test"}],
            "oidcUrls": [],
            "rekorTlogUrls": [{"url": ca_url, "majorApiVersion": 1,
                               "validFor": {"start": "2025-01-01T00:00:00Z"}, "operator": "test"}],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"}
        }
    });
    let config_path = dir.join("trust_config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let artifact = dir.join("artifact");
    std::fs::write(&artifact, b"signed interactively").unwrap();

    (config_path, artifact)
}

/// The claims of the token `sigil` sent to the CA, once it has.
async fn token_sent(received: tokio::task::JoinHandle<(String, Vec<u8>)>) -> TokenClaims {
    let (head, body) = tokio::time::timeout(Duration::from_secs(60), received)
        .await
        .expect("the client reaches the CA")
        .unwrap();
    assert!(head.contains("content-type: application/json"), "{head}");
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = request["credentials"]["oidcIdentityToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {request}"));
    TokenClaims::from_unverified_jwt(token).unwrap()
}

/// `sigil` with no token source from the environment of the machine running the tests.
fn sigil_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"));
    for var in [
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "BUILDKITE_AGENT_ACCESS_TOKEN",
        "CIRCLECI",
    ] {
        command.env_remove(var);
    }
    command.stdin(std::process::Stdio::null());
    command
}

/// `sigil sign-blob --interactive --oidc-device-flow` as a user runs it: it prints where to
/// approve the login, waits, and hands the ID token it got to the CA. The CA here is a
/// one-request listener that records what the client sent (the test is about the token, not
/// about certificates), so the command then fails at the CA, after the login.
#[tokio::test]
async fn sign_blob_logs_in_with_the_device_flow_and_sends_the_token_to_the_ca() {
    use std::io::BufRead;

    let idp = OidcProvider::start();
    let (ca_url, received) = recording_ca().await;
    let dir = tempfile::tempdir().unwrap();
    let (config_path, artifact) = signing_inputs(dir.path(), &ca_url);

    let mut child = sigil_command()
        .arg("sign-blob")
        .arg(&artifact)
        .arg("--trust-config")
        .arg(&config_path)
        .args(["--interactive", "--oidc-device-flow", "--oidc-issuer"])
        .arg(idp.issuer_url())
        .args(["--oidc-client-secret", CLIENT_SECRET])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let prompt = lines_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("sigil prints where to log in");
    let rest = prompt
        .strip_prefix("To sign in, visit ")
        .unwrap_or_else(|| panic!("unexpected prompt: {prompt}"));
    let (url, code) = rest.split_once(" and enter the code ").unwrap();
    assert!(!code.trim().is_empty());

    let last = Browser::new().log_in(url, "carol@example.com").await;
    assert!(last.status.is_success(), "{}", last.body);

    let claims = token_sent(received).await;
    assert_eq!(claims.sub, "carol@example.com");
    assert_eq!(claims.iss, idp.issuer_url());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the unavailable CA fails the signing"
    );
}

/// The order of the non-interactive sources as `sigil sign-blob` applies it: Buildkite's agent
/// before CircleCI's CLI, and `$SIGSTORE_ID_TOKEN` before both. The vendors' tools only run
/// inside their CI, so stand-in scripts first on `PATH` print tokens minted by the real
/// provider, each for its own identity.
#[cfg(unix)]
#[tokio::test]
async fn sign_blob_takes_ci_tokens_in_the_documented_order() {
    use std::os::unix::fs::PermissionsExt;

    let idp = OidcProvider::start();
    let tools = tempfile::tempdir().unwrap();
    for (tool, identity) in [
        ("buildkite-agent", "buildkite@example.com"),
        ("circleci", "circleci@example.com"),
    ] {
        let path = tools.path().join(tool);
        let token = idp.token(identity).await;
        std::fs::write(&path, format!("#!/bin/sh\necho {token}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let environment_token = idp.token("env@example.com").await;

    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("BUILDKITE_AGENT_ACCESS_TOKEN", "x"), ("CIRCLECI", "true")],
            "buildkite@example.com",
        ),
        (&[("CIRCLECI", "true")], "circleci@example.com"),
        (
            &[
                ("BUILDKITE_AGENT_ACCESS_TOKEN", "x"),
                ("SIGSTORE_ID_TOKEN", &environment_token),
            ],
            "env@example.com",
        ),
    ];
    for (vars, expected) in cases {
        let (ca_url, received) = recording_ca().await;
        let dir = tempfile::tempdir().unwrap();
        let (config_path, artifact) = signing_inputs(dir.path(), &ca_url);
        let mut child = sigil_command()
            .arg("sign-blob")
            .arg(&artifact)
            .arg("--trust-config")
            .arg(&config_path)
            .env("PATH", &path)
            .envs(vars.iter().copied())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let claims = token_sent(received).await;
        assert_eq!(claims.sub, expected, "with {vars:?}");
        assert_eq!(child.wait().unwrap().code(), Some(1));
    }
}

/// The quick start signs interactively: `sigil sign-blob --server URL --interactive` with no
/// `--oidc-issuer` logs in at the issuer the server's signing config names (here the `--dev`
/// issuer), through its login page, and the bundle carries the email entered there.
#[tokio::test]
async fn interactive_login_uses_the_servers_issuer_and_the_dev_login_page() {
    use std::io::BufRead;
    let (stack, issuer) = sigil_tests::stack::Stack::start_dev();
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("quick.txt");
    std::fs::write(&artifact, b"signed through the dev login page\n").unwrap();
    let mut child = sigil_command()
        .arg("sign-blob")
        .arg(&artifact)
        .args(["--server", &stack.url, "--interactive"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("sigil prints the login URL");
        if let Some(u) = line.trim().strip_prefix(&format!("{issuer}/authorize?")) {
            break format!("{issuer}/authorize?{u}");
        }
    };

    // The person: open the page, enter an email, follow the redirect to sigil's listener.
    let mut browser = Browser::new();
    let page = browser.send(&Url::parse(&url).unwrap(), None).await;
    assert!(page.status().is_success());
    let html = page.text().await.unwrap();
    let mut fields: Vec<(String, String)> = vec![("email".into(), "dana@example.com".into())];
    for input in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            input
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
                .map(|v| v.replace("&amp;", "&").replace("&quot;", "\""))
        };
        let (Some(name), Some(value)) = (attr("name"), attr("value")) else {
            continue;
        };
        fields.push((name, value));
    }
    let form: Vec<(&str, String)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let answer = browser
        .send(
            &Url::parse(&format!("{issuer}/authorize")).unwrap(),
            Some(form_body(&form)),
        )
        .await;
    assert!(
        answer.status().is_redirection(),
        "the login page redirects back"
    );
    let callback = answer.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(callback.contains(CALLBACK_PATH), "{callback}");
    let done = browser.send(&Url::parse(&callback).unwrap(), None).await;
    assert!(done.status().is_success());

    let status = child.wait().unwrap();
    assert!(status.success(), "sign-blob failed after the login");
    // The reader thread may not have passed on the last lines when the process exits; it
    // ends at the pipe's end of file, which closes the channel.
    let rest: Vec<String> = lines_rx.iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("Signed by dana@example.com")),
        "{rest:?}"
    );
}

/// A browser login against `idp` as `email`, through the library API, with `discovery` made
/// beforehand (it may be stale on purpose).
async fn browser_login_with(
    discovery: &sigil_client::oidc::interactive::Discovery,
    email: &str,
) -> Result<String, LoginError> {
    let http = reqwest::Client::new();
    let client = credentials();
    let login = BrowserLogin::start(discovery, &client).await.unwrap();
    let authorization_url = login.authorization_url().to_string();
    let waiting = {
        let (http, discovery, client) = (http.clone(), discovery.clone(), client.clone());
        tokio::spawn(async move {
            login
                .finish(&http, &discovery, &client, Duration::from_secs(60))
                .await
        })
    };
    let last = Browser::new().log_in(&authorization_url, email).await;
    assert_eq!(last.url.path(), CALLBACK_PATH);
    waiting.await.unwrap()
}

/// The client verifies ID tokens with the issuer's JWKS: each signing algorithm the test
/// provider offers (RS256 is the other tests' default) verifies.
#[tokio::test]
async fn browser_login_verifies_id_tokens_of_each_signing_algorithm() {
    for alg in ["ES256", "PS256", "EdDSA"] {
        let idp = OidcProvider::start_with_alg(alg);
        let discovery = discover(&reqwest::Client::new(), idp.issuer_url())
            .await
            .unwrap();
        let token = browser_login_with(&discovery, "erin@example.com")
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let claims = TokenClaims::from_unverified_jwt(&token).unwrap();
        assert_eq!(claims.sub, "erin@example.com", "{alg}");
    }
}

/// An ID token signed with a key the discovered JWKS does not hold is refused, even when the
/// issuer, audience and nonce are right: here the provider rotated its keys after discovery.
#[tokio::test]
async fn an_id_token_signed_with_an_unknown_key_is_refused() {
    let mut idp = OidcProvider::start();
    let discovery = discover(&reqwest::Client::new(), idp.issuer_url())
        .await
        .unwrap();
    idp.rotate_keys();
    match browser_login_with(&discovery, "frank@example.com").await {
        Err(LoginError::BadIdToken(why)) => {
            assert!(why.contains("not signed by the issuer's keys"), "{why}")
        }
        other => panic!("expected the ID token to be refused, got {other:?}"),
    }
}

/// The issuer may be typed with or without a trailing slash; discovery reports it as the
/// document spells it, with the device endpoint the test provider offers.
#[tokio::test]
async fn discovery_takes_the_issuer_with_a_trailing_slash() {
    let idp = OidcProvider::start();
    let http = reqwest::Client::new();
    let discovery = discover(&http, &format!("{}/", idp.issuer_url()))
        .await
        .unwrap();
    assert_eq!(discovery.issuer(), idp.issuer_url());
    assert!(discovery.device_authorization_endpoint().is_some());
    assert!(discovery.token_endpoint().starts_with(idp.issuer_url()));
}

//! CA key material on disk: on first start a root and an intermediate are created in
//! `<data_dir>/ca/`; later starts load them. An operator may instead supply an existing
//! intermediate key and chain.
//!
//! Private keys are PKCS#8 `ENCRYPTED PRIVATE KEY` PEM (PBES2: scrypt N=2^15 r=8 p=1 +
//! AES-256-CBC; OpenSSL reads it) under the passphrase in `SIGIL_CA_PASSPHRASE`. Without a
//! passphrase sigil refuses to create or load CA keys unless the operator explicitly opts
//! in to unencrypted keys (`--insecure-unencrypted-ca-keys`, for development only); an
//! unencrypted key on disk is likewise only loaded with that opt-in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use der::pem::LineEnding;
use der::zeroize::Zeroizing;
use der::{Decode, Encode};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use spki::SubjectPublicKeyInfoOwned;
use thiserror::Error;
use x509_cert::Certificate;
use x509_cert::name::Name;

use crate::certificate::{self, CertError};
use crate::profile::{self, IssuerInfo, ProfileError};
use crate::signer::{CaKeyAlgorithm, CaSigner, LocalSigner, SignError};

/// Environment variable holding the CA key passphrase.
pub const PASSPHRASE_ENV: &str = "SIGIL_CA_PASSPHRASE";

const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
const PLAIN_LABEL: &str = "PRIVATE KEY";

#[derive(Debug, Error)]
pub enum KeyStoreError {
    #[error(
        "no CA key passphrase: set {PASSPHRASE_ENV} (or, for development only, allow unencrypted CA keys with --insecure-unencrypted-ca-keys)"
    )]
    NoPassphrase,
    #[error(
        "{0} holds an unencrypted CA key; encrypt it or allow unencrypted CA keys (development only)"
    )]
    UnencryptedKeyRefused(PathBuf),
    #[error("cannot decrypt the CA key in {0}: wrong passphrase or corrupt file")]
    Decrypt(PathBuf),
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error(
        "the CA directory {0} is incomplete (some key or certificate files are missing); restore it or move it away"
    )]
    Incomplete(PathBuf),
    #[error("the CA key in {key} does not match the first certificate in {chain}")]
    KeyMismatch { key: PathBuf, chain: PathBuf },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

impl From<CertError> for KeyStoreError {
    fn from(e: CertError) -> Self {
        KeyStoreError::Profile(ProfileError::Cert(e))
    }
}

/// How CA private keys are protected at rest.
#[derive(Clone)]
pub enum KeyProtection {
    Passphrase(Zeroizing<String>),
    /// Development only: keys stored as plain PKCS#8.
    InsecureUnencrypted,
    /// Neither a passphrase nor the opt-in: loading or creating keys fails.
    None,
}

impl std::fmt::Debug for KeyProtection {
    // The passphrase never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProtection::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            KeyProtection::InsecureUnencrypted => f.write_str("InsecureUnencrypted"),
            KeyProtection::None => f.write_str("None"),
        }
    }
}

impl KeyProtection {
    /// `SIGIL_CA_PASSPHRASE` if set and non-empty, else the insecure opt-in if given.
    pub fn from_env(allow_insecure_unencrypted: bool) -> KeyProtection {
        match std::env::var(PASSPHRASE_ENV) {
            Ok(p) if !p.is_empty() => KeyProtection::Passphrase(Zeroizing::new(p)),
            _ if allow_insecure_unencrypted => KeyProtection::InsecureUnencrypted,
            _ => KeyProtection::None,
        }
    }
}

/// An existing intermediate key plus its chain `[intermediate, ..., root]`, both PEM.
#[derive(Debug, Clone)]
pub struct ImportedCa {
    pub key_pem: PathBuf,
    pub chain_pem: PathBuf,
}

/// Where the CA keys come from.
#[derive(Debug, Clone)]
pub struct KeyStoreOptions {
    /// Keys live in `<data_dir>/ca/`.
    pub data_dir: PathBuf,
    pub algorithm: CaKeyAlgorithm,
    pub protection: KeyProtection,
    pub imported: Option<ImportedCa>,
    /// Subject organization of generated CA certificates.
    pub organization: String,
}

/// The issuing key and the chain above it.
pub struct CaMaterial {
    pub signer: Arc<dyn CaSigner>,
    /// `[intermediate, ..., root]`, DER.
    pub chain: Vec<Vec<u8>>,
}

impl CaMaterial {
    pub fn issuing_cert_der(&self) -> &[u8] {
        &self.chain[0]
    }

    pub fn root_der(&self) -> &[u8] {
        self.chain.last().expect("chain is never empty")
    }
}

struct CaFiles {
    dir: PathBuf,
}

impl CaFiles {
    fn root_key(&self) -> PathBuf {
        self.dir.join("root-key.pem")
    }
    fn root_cert(&self) -> PathBuf {
        self.dir.join("root.pem")
    }
    fn intermediate_key(&self) -> PathBuf {
        self.dir.join("intermediate-key.pem")
    }
    fn intermediate_cert(&self) -> PathBuf {
        self.dir.join("intermediate.pem")
    }
    /// What issuing needs; the root key is only needed to create the intermediate and may
    /// be moved offline afterwards.
    fn needed_to_issue(&self) -> [PathBuf; 3] {
        [
            self.root_cert(),
            self.intermediate_key(),
            self.intermediate_cert(),
        ]
    }
}

/// Loads the CA, creating a fresh root + intermediate on first start.
pub fn load_or_create(opts: &KeyStoreOptions) -> Result<CaMaterial, KeyStoreError> {
    if let Some(imported) = &opts.imported {
        return load_imported(imported, &opts.protection);
    }
    if matches!(opts.protection, KeyProtection::None) {
        return Err(KeyStoreError::NoPassphrase);
    }
    let files = CaFiles {
        dir: opts.data_dir.join("ca"),
    };
    let present = files
        .needed_to_issue()
        .iter()
        .filter(|p| p.exists())
        .count();
    match (present, files.root_key().exists()) {
        (0, false) => create(&files, opts),
        (3, _) => {
            let signer = read_key(&files.intermediate_key(), &opts.protection)?;
            let intermediate = read_cert_chain(&files.intermediate_cert())?;
            let root = read_cert_chain(&files.root_cert())?;
            let chain = vec![
                first(intermediate, &files.intermediate_cert())?,
                first(root, &files.root_cert())?,
            ];
            check_key_matches(
                &*signer,
                &chain[0],
                &files.intermediate_key(),
                &files.intermediate_cert(),
            )?;
            Ok(CaMaterial { signer, chain })
        }
        _ => Err(KeyStoreError::Incomplete(files.dir)),
    }
}

fn create(files: &CaFiles, opts: &KeyStoreOptions) -> Result<CaMaterial, KeyStoreError> {
    std::fs::create_dir_all(&files.dir).map_err(|source| KeyStoreError::Io {
        path: files.dir.clone(),
        source,
    })?;
    let now = SystemTime::now();
    let (root_key, root_pkcs8) = LocalSigner::generate(opts.algorithm)?;
    let (inter_key, inter_pkcs8) = LocalSigner::generate(opts.algorithm)?;

    let root_name = ca_name("sigil root", &opts.organization)?;
    let root_spki = spki_of(&root_key)?;
    let root_info = IssuerInfo {
        subject: root_name.clone(),
        key_identifier: certificate::key_identifier(&root_spki),
        signature_algorithm: root_key.signature_algorithm(),
    };
    let root_tbs = profile::root_tbs(root_name, root_spki, root_key.signature_algorithm(), now)?;
    let root_der = certificate::sign_local(&root_tbs, &root_key)?;

    let inter_name = ca_name("sigil intermediate", &opts.organization)?;
    let inter_tbs = profile::intermediate_tbs(&root_info, inter_name, spki_of(&inter_key)?, now)?;
    let inter_der = certificate::sign_local(&inter_tbs, &root_key)?;

    // Keys first, certificates last: a crash in between leaves an "incomplete" directory
    // that is reported, never a certificate without its key.
    write_new(
        &files.root_key(),
        key_pem(&root_pkcs8, &opts.protection)?.as_bytes(),
        true,
    )?;
    write_new(
        &files.intermediate_key(),
        key_pem(&inter_pkcs8, &opts.protection)?.as_bytes(),
        true,
    )?;
    write_new(
        &files.root_cert(),
        certificate::to_pem(&root_der)?.as_bytes(),
        false,
    )?;
    write_new(
        &files.intermediate_cert(),
        certificate::to_pem(&inter_der)?.as_bytes(),
        false,
    )?;
    tracing::info!(dir = %files.dir.display(), algorithm = ?opts.algorithm, "created a new CA root and intermediate");
    Ok(CaMaterial {
        signer: Arc::new(inter_key),
        chain: vec![inter_der, root_der],
    })
}

fn load_imported(
    imported: &ImportedCa,
    protection: &KeyProtection,
) -> Result<CaMaterial, KeyStoreError> {
    let signer = read_key(&imported.key_pem, protection)?;
    let chain = read_cert_chain(&imported.chain_pem)?;
    if chain.is_empty() {
        return Err(KeyStoreError::BadFile {
            path: imported.chain_pem.clone(),
            reason: "no certificates".into(),
        });
    }
    check_key_matches(&*signer, &chain[0], &imported.key_pem, &imported.chain_pem)?;
    Ok(CaMaterial { signer, chain })
}

fn check_key_matches(
    signer: &dyn CaSigner,
    cert_der: &[u8],
    key: &Path,
    chain: &Path,
) -> Result<(), KeyStoreError> {
    let cert = Certificate::from_der(cert_der).map_err(|e| KeyStoreError::BadFile {
        path: chain.to_path_buf(),
        reason: e.to_string(),
    })?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(CertError::from)?;
    if spki != signer.spki_der() {
        return Err(KeyStoreError::KeyMismatch {
            key: key.to_path_buf(),
            chain: chain.to_path_buf(),
        });
    }
    Ok(())
}

fn ca_name(common_name: &str, organization: &str) -> Result<Name, KeyStoreError> {
    // Build through the RFC 4514 parser with escaping, so any organization string works.
    let escape = |s: &str| {
        s.chars()
            .flat_map(|c| {
                let needs = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '/');
                needs.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect::<String>()
    };
    Name::from_str(&format!(
        "CN={},O={}",
        escape(common_name),
        escape(organization)
    ))
    .map_err(|e| KeyStoreError::Profile(ProfileError::Cert(CertError::Der(e))))
}

fn spki_of(signer: &dyn CaSigner) -> Result<SubjectPublicKeyInfoOwned, KeyStoreError> {
    Ok(SubjectPublicKeyInfoOwned::from_der(signer.spki_der()).map_err(CertError::from)?)
}

fn key_pem(
    pkcs8_der: &[u8],
    protection: &KeyProtection,
) -> Result<Zeroizing<String>, KeyStoreError> {
    let der_err = |e: der::Error| KeyStoreError::from(CertError::from(e));
    match protection {
        KeyProtection::Passphrase(pass) => {
            let info = PrivateKeyInfoRef::try_from(pkcs8_der)
                .map_err(|e| SignError::Failed(format!("bad PKCS#8 key: {e}")))?;
            let encrypted = info
                .encrypt(pass.as_bytes())
                .map_err(|e| SignError::Failed(format!("encrypting the CA key: {e}")))?;
            Ok(Zeroizing::new(
                der::pem::encode_string(ENCRYPTED_LABEL, LineEnding::LF, encrypted.as_bytes())
                    .map_err(|e| der_err(e.into()))?,
            ))
        }
        KeyProtection::InsecureUnencrypted => Ok(Zeroizing::new(
            der::pem::encode_string(PLAIN_LABEL, LineEnding::LF, pkcs8_der)
                .map_err(|e| der_err(e.into()))?,
        )),
        KeyProtection::None => Err(KeyStoreError::NoPassphrase),
    }
}

fn read_key(path: &Path, protection: &KeyProtection) -> Result<Arc<dyn CaSigner>, KeyStoreError> {
    let text = Zeroizing::new(std::fs::read(path).map_err(|source| KeyStoreError::Io {
        path: path.to_path_buf(),
        source,
    })?);
    let bad = |reason: String| KeyStoreError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let (label, der) =
        der::pem::decode_vec(text.trim_ascii()).map_err(|e| bad(format!("not PEM: {e}")))?;
    let der = Zeroizing::new(der);
    let pkcs8 = match (label, protection) {
        (ENCRYPTED_LABEL, KeyProtection::Passphrase(pass)) => {
            let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                .map_err(|e| bad(e.to_string()))?;
            let doc = info
                .decrypt(pass.as_bytes())
                .map_err(|_| KeyStoreError::Decrypt(path.to_path_buf()))?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
        (ENCRYPTED_LABEL, _) => return Err(KeyStoreError::NoPassphrase),
        (PLAIN_LABEL, KeyProtection::InsecureUnencrypted) => der,
        (PLAIN_LABEL, _) => return Err(KeyStoreError::UnencryptedKeyRefused(path.to_path_buf())),
        (other, _) => return Err(bad(format!("unexpected PEM label {other:?}"))),
    };
    Ok(Arc::new(LocalSigner::from_pkcs8(&pkcs8)?))
}

fn read_cert_chain(path: &Path) -> Result<Vec<Vec<u8>>, KeyStoreError> {
    let text = std::fs::read(path).map_err(|source| KeyStoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = Certificate::load_pem_chain(&text).map_err(|e| KeyStoreError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    certs
        .iter()
        .map(|c| {
            c.to_der()
                .map_err(|e| KeyStoreError::from(CertError::from(e)))
        })
        .collect()
}

fn first(mut certs: Vec<Vec<u8>>, path: &Path) -> Result<Vec<u8>, KeyStoreError> {
    if certs.len() != 1 {
        return Err(KeyStoreError::BadFile {
            path: path.to_path_buf(),
            reason: format!("expected one certificate, found {}", certs.len()),
        });
    }
    Ok(certs.remove(0))
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), KeyStoreError> {
    let io = |source| KeyStoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = opts.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

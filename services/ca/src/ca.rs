//! The certificate authority: issues short-lived code-signing certificates with an embedded
//! SCT from sigil's CT log (interop §2.1): precertificate → CT log → final certificate.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use sigil_log::admission::{DEFAULT_MAX_KEYS, Rate, RateLimiter};
use sigil_log::ct::{CtError, CtLog, Sct, codec};
use sigil_log::work::{WorkError, WorkPool};
use sigil_proto::fulcio::{
    CertificateChain, Configuration, CreateSigningCertificateRequest, SignedCertificateEmbeddedSct,
    SigningCertificate, TrustBundle,
};
use sigil_proto::trust::ClientTrustConfig;
use spki::SubjectPublicKeyInfoOwned;
use thiserror::Error;
use x509_cert::Certificate;

use crate::certificate::{self, CertError};
use crate::identity::Principal;
use crate::keystore::{self, CaMaterial, KeyStoreOptions};
use crate::oidc::{TokenError, TokenVerifier};
use crate::profile::{self, IssuerInfo, ProfileError};
use crate::subject_key::{SubjectKey, SubjectKeyError, verify_csr};
use crate::trust_config::{self, TrustConfigError, TrustConfigInputs, TrustMaterial};

/// What is left of an identity check once nothing in it waits: CPU work (a signature check,
/// the claims), run on the CA's work pool.
pub type IdentityCheck = Box<dyn FnOnce() -> Result<Principal, TokenError> + Send>;

/// Turns an identity token into a [`Principal`]. [`TokenVerifier`] is the production
/// implementation; the trait keeps issuance testable with principals built by hand.
pub trait IdentityVerifier: Send + Sync + 'static {
    /// Does what may wait (fetching the issuer's keys) and returns the rest, which the CA runs
    /// on its work pool: a signature check is not work for an async worker.
    fn prepare<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<IdentityCheck, TokenError>> + Send + 'a>>;
    /// The body of `GET /api/v2/configuration`.
    fn configuration(&self) -> Configuration;
}

impl IdentityVerifier for TokenVerifier {
    fn prepare<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<IdentityCheck, TokenError>> + Send + 'a>> {
        Box::pin(async move {
            let pending = TokenVerifier::prepare(self, token).await?;
            Ok(Box::new(move || pending.finish()) as IdentityCheck)
        })
    }

    fn configuration(&self) -> Configuration {
        serde_json::from_value(self.issuers().configuration_json()).unwrap_or_else(|e| {
            // Both shapes are ours; a mismatch is a bug, not a reason to fail requests.
            tracing::error!(error = %e, "issuer configuration does not fit the Fulcio shape");
            Configuration {
                issuers: Vec::new(),
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct CaOptions {
    pub keys: KeyStoreOptions,
    /// Leaf lifetime; Fulcio's is 10 minutes.
    pub leaf_validity: Duration,
}

#[derive(Debug, Error)]
pub enum IssueError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "no identity token: send it in credentials.oidcIdentityToken or an Authorization: Bearer header"
    )]
    MissingToken,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Key(#[from] SubjectKeyError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("the CT log did not accept the precertificate: {0}")]
    Ct(#[from] CtError),
    #[error("the issuing CA certificate expires before a new certificate would; rotate the CA")]
    IssuerExpiring,
    #[error("{0}")]
    Busy(WorkError),
    #[error("too many certificate requests for {identity}; try again in {} s", retry_after.as_secs().max(1))]
    IdentityRateLimited {
        identity: String,
        retry_after: Duration,
    },
}

impl From<CertError> for IssueError {
    fn from(e: CertError) -> Self {
        IssueError::Profile(ProfileError::Cert(e))
    }
}

/// One issuance, with the intermediate results tests and tools may want to inspect.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate_der: Vec<u8>,
    pub precertificate_der: Vec<u8>,
    pub sct: Sct,
    /// `[leaf, intermediate, ..., root]` PEM.
    pub chain_pem: Vec<String>,
}

pub struct Ca {
    material: CaMaterial,
    issuer: IssuerInfo,
    issuer_spki_der: Vec<u8>,
    chain_pem: Vec<String>,
    verifier: Box<dyn IdentityVerifier>,
    ct: CtLog,
    leaf_validity: Duration,
    /// No leaf may outlive the certificate that issued it.
    issuer_not_after: SystemTime,
    /// Where CSRs and proofs of possession are checked.
    work: WorkPool,
    /// Certificates per identity (issuer and subject), when limited.
    per_identity: Option<RateLimiter<(String, String)>>,
}

impl Ca {
    /// Loads (or on first start creates) the CA keys and registers the root with the CT log.
    pub async fn open(
        opts: CaOptions,
        verifier: impl IdentityVerifier,
        ct: CtLog,
    ) -> anyhow::Result<Ca> {
        // scrypt key derivation is deliberately slow: keep it off the async workers.
        let keys = opts.keys.clone();
        let material =
            tokio::task::spawn_blocking(move || keystore::load_or_create(&keys)).await??;
        Ca::from_material(material, opts.leaf_validity, verifier, ct)
    }

    pub fn from_material(
        material: CaMaterial,
        leaf_validity: Duration,
        verifier: impl IdentityVerifier,
        ct: CtLog,
    ) -> anyhow::Result<Ca> {
        let issuing = Certificate::from_der(material.issuing_cert_der())?;
        let issuer_spki_der = issuing
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()?;
        let issuer = IssuerInfo {
            subject: issuing.tbs_certificate().subject().clone(),
            key_identifier: certificate::key_identifier(
                issuing.tbs_certificate().subject_public_key_info(),
            ),
            signature_algorithm: material.signer.signature_algorithm(),
        };
        let chain_pem = material
            .chain
            .iter()
            .map(|der| certificate::to_pem(der))
            .collect::<Result<Vec<_>, _>>()?;
        let issuer_not_after = issuing
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time();
        ct.add_accepted_root(material.root_der().to_vec());
        Ok(Ca {
            material,
            issuer,
            issuer_spki_der,
            chain_pem,
            verifier: Box::new(verifier),
            ct,
            leaf_validity,
            issuer_not_after,
            work: WorkPool::default(),
            per_identity: None,
        })
    }

    /// Checks keys in `pool` (shared with the other services of the process).
    pub fn with_work_pool(mut self, pool: WorkPool) -> Ca {
        self.work = pool;
        self
    }

    pub fn work_pool(&self) -> &WorkPool {
        &self.work
    }

    /// Limits how many certificates one identity may get.
    pub fn with_identity_rate_limit(mut self, rate: Rate) -> Ca {
        self.per_identity = Some(RateLimiter::new(rate, DEFAULT_MAX_KEYS));
        self
    }

    /// `[intermediate, ..., root]`, DER.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.material.chain
    }

    pub fn ct(&self) -> &CtLog {
        &self.ct
    }

    pub fn trust_bundle(&self) -> TrustBundle {
        TrustBundle {
            chains: vec![CertificateChain {
                certificates: self.chain_pem.clone(),
            }],
        }
    }

    pub fn configuration(&self) -> Configuration {
        self.verifier.configuration()
    }

    pub fn client_trust_config(
        &self,
        inputs: &TrustConfigInputs,
    ) -> Result<ClientTrustConfig, TrustConfigError> {
        trust_config::client_trust_config(
            &TrustMaterial {
                ca_chain: &self.material.chain,
                ct_spki_der: self.ct.public_key_spki_der(),
            },
            inputs,
        )
    }

    /// `POST /api/v2/signingCert`: token from the body or `bearer`, key from a CSR or a
    /// public key plus proof of possession.
    pub async fn handle_signing_request(
        &self,
        request: CreateSigningCertificateRequest,
        bearer: Option<&str>,
    ) -> Result<SigningCertificate, IssueError> {
        enum KeyProof {
            Csr(Vec<u8>),
            PublicKey { content: String, proof: Vec<u8> },
        }
        let proof = match (
            request.certificate_signing_request,
            request.public_key_request,
        ) {
            (Some(_), Some(_)) => {
                return Err(IssueError::BadRequest(
                    "send either certificateSigningRequest or publicKeyRequest, not both".into(),
                ));
            }
            (Some(csr), None) => KeyProof::Csr(csr),
            (None, Some(pkr)) => {
                if pkr.public_key.content.is_empty() {
                    return Err(IssueError::BadRequest(
                        "publicKeyRequest.publicKey.content is empty".into(),
                    ));
                }
                if pkr.proof_of_possession.is_empty() {
                    return Err(IssueError::BadRequest(
                        "publicKeyRequest.proofOfPossession is empty".into(),
                    ));
                }
                KeyProof::PublicKey {
                    content: pkr.public_key.content,
                    proof: pkr.proof_of_possession,
                }
            }
            (None, None) => {
                return Err(IssueError::BadRequest(
                    "the request has neither certificateSigningRequest nor publicKeyRequest".into(),
                ));
            }
        };
        let token = request
            .credentials
            .map(|c| c.oidc_identity_token)
            .filter(|t| !t.is_empty())
            .or_else(|| bearer.map(str::to_string))
            .ok_or(IssueError::MissingToken)?;
        let check = self.verifier.prepare(&token).await?;
        let cost = token.len()
            + match &proof {
                KeyProof::Csr(csr) => csr.len(),
                KeyProof::PublicKey { content, proof } => content.len() + proof.len(),
            };
        // The token's signature and the key's proof in one job: each hand-off to the pool
        // costs two context switches, and as two jobs issuance ran about a fifth slower.
        let (principal, key) = self
            .work
            .run(cost, move || -> Result<_, IssueError> {
                let principal = check()?;
                let key = match proof {
                    KeyProof::Csr(csr) => verify_csr(&csr)?,
                    KeyProof::PublicKey { content, proof } => {
                        let key = SubjectKey::from_request_content(&content)?;
                        key.verify_proof_of_possession(principal.challenge.as_bytes(), &proof)?;
                        key
                    }
                };
                Ok((principal, key))
            })
            .await
            .map_err(IssueError::Busy)??;
        // After the proof: a limited identity's refusal costs a key check too, which the
        // work pool's budget bounds like any other.
        if let Some(limiter) = &self.per_identity {
            let identity = (principal.issuer.clone(), principal.challenge.clone());
            if let Err(limited) = limiter.check(&identity) {
                metrics::counter!("sigil_requests_refused_total", "reason" => "identity_rate")
                    .increment(1);
                return Err(IssueError::IdentityRateLimited {
                    identity: principal.challenge.clone(),
                    retry_after: limited.retry_after,
                });
            }
        }
        let issued = self.issue(&principal, key.into_spki()).await?;
        Ok(SigningCertificate {
            signed_certificate_embedded_sct: Some(SignedCertificateEmbeddedSct {
                chain: CertificateChain {
                    certificates: issued.chain_pem,
                },
            }),
            signed_certificate_detached_sct: None,
        })
    }

    /// Issues a certificate for an already verified principal and key.
    pub async fn issue(
        &self,
        principal: &Principal,
        subject_key: SubjectPublicKeyInfoOwned,
    ) -> Result<Issued, IssueError> {
        let started = Instant::now();
        let now = SystemTime::now();
        if now + self.leaf_validity > self.issuer_not_after {
            return Err(IssueError::IssuerExpiring);
        }
        let tbs = profile::leaf_tbs(
            &self.issuer,
            principal,
            subject_key,
            now,
            self.leaf_validity,
        )?;
        let tbs_without_poison = tbs.to_der().map_err(CertError::from)?;
        let signer = &*self.material.signer;
        let precertificate_der =
            certificate::sign(&tbs.with_extension(profile::poison_extension()?), signer).await?;

        let mut ct_chain = Vec::with_capacity(1 + self.material.chain.len());
        ct_chain.push(precertificate_der.clone());
        ct_chain.extend(self.material.chain.iter().cloned());
        let sct = self
            .ct
            .add_pre_chain(&tbs_without_poison, &self.issuer_spki_der, ct_chain)
            .await?;

        let sct_list = codec::sct_list(std::slice::from_ref(&sct)).map_err(CtError::from)?;
        let certificate_der = certificate::sign(
            &tbs.with_extension(profile::sct_list_extension(&sct_list)?),
            signer,
        )
        .await?;

        let mut chain_pem = Vec::with_capacity(1 + self.chain_pem.len());
        chain_pem.push(certificate::to_pem(&certificate_der)?);
        chain_pem.extend(self.chain_pem.iter().cloned());
        metrics::counter!("sigil_ca_certificates_issued_total").increment(1);
        metrics::histogram!("sigil_ca_issue_seconds").record(started.elapsed().as_secs_f64());
        Ok(Issued {
            certificate_der,
            precertificate_der,
            sct,
            chain_pem,
        })
    }

    /// SHA-256 of the issuing CA's SPKI: the `issuer_key_hash` in SCT signed data.
    pub fn issuer_key_hash(&self) -> [u8; 32] {
        Sha256::digest(&self.issuer_spki_der).into()
    }
}

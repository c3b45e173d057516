//! cosign's encrypted key format read and written by an independent implementation:
//! PyNaCl (libsodium's secretbox), Python's hashlib.scrypt (OpenSSL) and pyca/cryptography
//! for PKCS#8 and ECDSA. Keys go both ways: sigil's key is decrypted and used by Python, and
//! a key Python encrypted is loaded and used by sigil.
//!
//! The venv is installed once under `<target>/sigil-test-peers/`. A missing Python fails the
//! test (never a skip).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sigil_client::keys::{DEFAULT_SCRYPT_PARAMS, SigningKey};
use sigil_client::verify::{HashAlg, PublicKey};

const REQUIREMENTS: &str = "pynacl==1.6.2\ncryptography==50.0.2\n";
const VENV_DIR: &str = "cosign-key-peers-pynacl-1.6.2";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (is python3 installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A venv with the pinned peers; built in a staging dir and renamed so that concurrent test
/// processes never see a half-installed one.
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let root = target_dir().join("sigil-test-peers");
            let venv = root.join(VENV_DIR);
            let python = venv.join("bin/python");
            if python.exists() {
                return python;
            }
            std::fs::create_dir_all(&root).unwrap();
            let staging = root.join(format!("{VENV_DIR}.staging-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            let system = std::env::var_os("SIGIL_TEST_PYTHON").unwrap_or_else(|| "python3".into());
            run(Command::new(system).arg("-m").arg("venv").arg(&staging));
            let requirements = staging.join("requirements.txt");
            std::fs::write(&requirements, REQUIREMENTS).unwrap();
            run(Command::new(staging.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements));
            if std::fs::rename(&staging, &venv).is_err() {
                // Another process won the race; use its venv.
                let _ = std::fs::remove_dir_all(&staging);
            }
            python
        })
        .clone()
}

/// Decrypts a cosign key (argv: key file, password, message), checks it against the public
/// key file, and prints a base64 ECDSA-SHA256 signature over the message.
const DECRYPT_AND_SIGN: &str = r#"
import base64, hashlib, json, sys
import nacl.secret
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

key_path, pub_path, password, message = sys.argv[1:5]
text = open(key_path).read().strip().splitlines()
assert text[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----", text[0]
doc = json.loads(base64.b64decode("".join(text[1:-1])))
assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
p = doc["kdf"]["params"]
key = hashlib.scrypt(password.encode(), salt=base64.b64decode(doc["kdf"]["salt"]),
                     n=p["N"], r=p["r"], p=p["p"], maxmem=512 * 1024 * 1024, dklen=32)
der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                         base64.b64decode(doc["cipher"]["nonce"]))
private = serialization.load_der_private_key(der, password=None)
public = serialization.load_pem_public_key(open(pub_path, "rb").read())
assert private.public_key().public_numbers() == public.public_numbers(), "public key mismatch"
sig = private.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
print(base64.b64encode(sig).decode())
"#;

/// Writes a fresh P-256 key in cosign's legacy-labelled format with N=32768 (argv: key file,
/// public key file, password).
const ENCRYPT: &str = r#"
import base64, hashlib, json, os, sys
import nacl.secret, nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

key_path, pub_path, password = sys.argv[1:4]
private = ec.generate_private_key(ec.SECP256R1())
der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
salt = os.urandom(32)
key = hashlib.scrypt(password.encode(), salt=salt, n=32768, r=8, p=1,
                     maxmem=512 * 1024 * 1024, dklen=32)
nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
box = nacl.secret.SecretBox(key).encrypt(der, nonce)
doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
               "salt": base64.b64encode(salt).decode()},
       "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
       "ciphertext": base64.b64encode(box.ciphertext).decode()}
body = base64.b64encode(json.dumps(doc).encode()).decode()
lines = [body[i:i + 64] for i in range(0, len(body), 64)]
with open(key_path, "w") as f:
    f.write("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n")
with open(pub_path, "wb") as f:
    f.write(private.public_key().public_bytes(serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))
"#;

fn py(script: &str, args: &[&Path], extra: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .args(extra)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn python_reads_sigil_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, pub_path) = (dir.path().join("cosign.key"), dir.path().join("cosign.pub"));
    let key = SigningKey::generate().unwrap();
    let password = "pässword with spaces";
    std::fs::write(
        &key_path,
        key.to_encrypted_pem(password.as_bytes(), DEFAULT_SCRYPT_PARAMS)
            .unwrap(),
    )
    .unwrap();
    std::fs::write(&pub_path, key.public_key_pem()).unwrap();

    let sig_b64 = py(
        DECRYPT_AND_SIGN,
        &[&key_path, &pub_path],
        &[password, "signed by python"],
    );
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .unwrap();
    let public = PublicKey::from_pem(&key.public_key_pem()).unwrap();
    public
        .verify(HashAlg::Sha256, b"signed by python", &sig)
        .unwrap();
    assert!(
        public
            .verify(HashAlg::Sha256, b"something else", &sig)
            .is_err()
    );
}

#[test]
fn sigil_reads_python_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, pub_path) = (dir.path().join("py.key"), dir.path().join("py.pub"));
    py(ENCRYPT, &[&key_path, &pub_path], &["from python"]);
    let pem = std::fs::read_to_string(&key_path).unwrap();
    let key = SigningKey::from_encrypted_pem(&pem, b"from python").unwrap();
    let public_pem = std::fs::read_to_string(&pub_path).unwrap();
    let public = PublicKey::from_pem(&public_pem).unwrap();
    assert_eq!(public.spki_der(), key.public_key_der().as_slice());
    let sig = key.sign(b"signed by sigil").unwrap();
    public
        .verify(HashAlg::Sha256, b"signed by sigil", &sig)
        .unwrap();
    assert!(SigningKey::from_encrypted_pem(&pem, b"wrong").is_err());
}

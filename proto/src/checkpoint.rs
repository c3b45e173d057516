//! C2SP signed notes and tlog checkpoints: text in, text out. Signing and verifying the
//! signatures is the caller's job (it needs crypto); this module only fixes the bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("signed note must end with a newline")]
    MissingFinalNewline,
    #[error("signed note has no blank line separating text from signatures")]
    NoSignatureBlock,
    #[error("signed note has no signatures")]
    NoSignatures,
    #[error("malformed signature line: {0:?}")]
    BadSignatureLine(String),
    #[error("checkpoint has fewer than three lines")]
    ShortCheckpoint,
    #[error("checkpoint origin line is empty")]
    EmptyOrigin,
    #[error("checkpoint tree size {0:?} is not a canonical decimal number")]
    BadSize(String),
    #[error("checkpoint root hash is not base64 of 32 bytes")]
    BadRootHash,
    #[error("checkpoint has an empty extension line")]
    EmptyExtension,
}

/// The note body of a C2SP tlog checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root_hash: Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The exact signed bytes, including the final newline.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root_hash)
        );
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let (origin, size, root) = match (lines.next(), lines.next(), lines.next()) {
            (Some(o), Some(s), Some(r)) => (o, s, r),
            _ => return Err(NoteError::ShortCheckpoint),
        };
        if origin.is_empty() {
            return Err(NoteError::EmptyOrigin);
        }
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size_num: u64 = match size.parse() {
            Ok(n) if canonical => n,
            _ => return Err(NoteError::BadSize(size.to_string())),
        };
        let root_hash: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(NoteError::BadRootHash)?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(NoteError::EmptyExtension);
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size: size_num,
            root_hash,
            extensions,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hint: [u8; 4],
    /// The signature bytes after the 4-byte key hint (for cosignatures this still includes
    /// the 8-byte timestamp that precedes the Ed25519 signature).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_hint);
        raw.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, STANDARD.encode(raw))
    }
}

/// A signed note: the signed text and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed bytes, including their final newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    pub fn parse(envelope: &str) -> Result<SignedNote, NoteError> {
        if !envelope.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        // The text ends at the last blank line: signatures never contain one.
        let split = envelope.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let text = &envelope[..split + 1];
        let sig_block = &envelope[split + 2..];
        let mut signatures = Vec::new();
        for line in sig_block
            .strip_suffix('\n')
            .unwrap_or(sig_block)
            .split('\n')
        {
            signatures.push(parse_signature_line(line)?);
        }
        if signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        Ok(SignedNote {
            text: text.to_string(),
            signatures,
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for sig in &self.signatures {
            out.push_str(&sig.to_line());
        }
        out
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let bad = || NoteError::BadSignatureLine(line.chars().take(120).collect());
    let rest = line.strip_prefix("\u{2014} ").ok_or_else(bad)?;
    let (name, b64) = rest.split_once(' ').ok_or_else(bad)?;
    if name.is_empty() || name.contains('+') || b64.contains(' ') {
        return Err(bad());
    }
    let raw = STANDARD.decode(b64).map_err(|_| bad())?;
    if raw.len() < 5 {
        return Err(bad());
    }
    Ok(NoteSignature {
        name: name.to_string(),
        key_hint: raw[..4].try_into().expect("four bytes"),
        signature: raw[4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like a sigstage Rekor v1 checkpoint (origin, key hint); root and signature are filler.
    const SIGSTAGE: &str = "rekor.sigstage.dev - 8050909264565447525\n25901138\nx2Ig7XRa1M1bGeDKBhQ3TSUzuVFuvMeBqLjCa/mOLns=\n\n\u{2014} rekor.sigstage.dev 0y8wozBFAiEAqFfXUDgFxwp1uVWT6wqjJYuPfT0ekyBjSEN0ewMdhMsCIHXHwoGUNbjRQx+VUXm7dIckefSgkJaK/NbXfwP3pDxW\n";

    #[test]
    fn parses_a_rekor_v1_checkpoint() {
        let note = SignedNote::parse(SIGSTAGE).unwrap();
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "rekor.sigstage.dev");
        assert_eq!(hex::encode(note.signatures[0].key_hint), "d32f30a3");
        let cp = Checkpoint::parse(&note.text).unwrap();
        assert_eq!(cp.origin, "rekor.sigstage.dev - 8050909264565447525");
        assert_eq!(cp.size, 25901138);
        assert_eq!(cp.to_text(), note.text);
        assert_eq!(note.to_text(), SIGSTAGE);
    }

    #[test]
    fn rejects_malformed_notes() {
        assert_eq!(
            SignedNote::parse("a\n1\n"),
            Err(NoteError::NoSignatureBlock)
        );
        assert_eq!(
            SignedNote::parse("a\n\n— x AAAA"),
            Err(NoteError::MissingFinalNewline)
        );
        assert!(matches!(
            SignedNote::parse("a\n\n— x AAAA\n"),
            Err(NoteError::BadSignatureLine(_))
        ));
        assert!(matches!(
            SignedNote::parse("a\n\n- x AAAAAAA=\n"),
            Err(NoteError::BadSignatureLine(_))
        ));
        assert_eq!(
            Checkpoint::parse("o\n01\nAAAA\n"),
            Err(NoteError::BadSize("01".into()))
        );
        assert_eq!(
            Checkpoint::parse("o\n1\nAAAA\n"),
            Err(NoteError::BadRootHash)
        );
        assert_eq!(
            Checkpoint::parse("\n1\nAAAA\n"),
            Err(NoteError::EmptyOrigin)
        );
    }

    #[test]
    fn keeps_extension_lines() {
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 3,
            root_hash: [7; 32],
            extensions: vec!["Timestamp: 1".into()],
        };
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    }
}

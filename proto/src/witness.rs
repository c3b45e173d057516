//! Witnessing: C2SP tlog-witness (`add-checkpoint` requests) and tlog-cosignature (the
//! Ed25519 cosignature lines a witness adds to a checkpoint), plus the signed-note verifier
//! key text (`vkey`) that names a witness. Bytes only; signing and verifying are the
//! caller's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::checkpoint::NoteSignature;
use crate::merkle::Hash;

/// Signature type byte of an Ed25519 signed-note key.
pub const NOTE_ED25519: u8 = 0x01;
/// Signature type byte of an Ed25519 tlog-cosignature/v1 key.
pub const COSIGNATURE_ED25519: u8 = 0x04;
/// At most this many consistency proof lines in an `add-checkpoint` request.
pub const MAX_PROOF_LINES: usize = 63;
/// Content type of a 409 answer to `add-checkpoint`: the witness's size for the log.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WitnessError {
    #[error("verifier key must be <name>+<8 hex key id>+<base64 key>")]
    VkeyShape,
    #[error("verifier key name must be non-empty, without spaces or '+'")]
    VkeyName,
    #[error("verifier key is not an Ed25519 key of type 0x01 or 0x04")]
    VkeyType,
    #[error("verifier key id {given} does not match its key ({computed})")]
    VkeyId { given: String, computed: String },
    #[error("add-checkpoint request: {0}")]
    Request(&'static str),
}

/// The 4-byte key id of a signed-note key: the start of SHA-256(name ‖ 0x0A ‖ type ‖ key).
pub fn key_id(name: &str, key_type: u8, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type]);
    h.update(key);
    let full = h.finalize();
    [full[0], full[1], full[2], full[3]]
}

/// A verifier key: `<name>+<hex key id>+<base64(type ‖ Ed25519 key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub key_type: u8,
    pub key: [u8; 32],
    pub key_id: [u8; 4],
}

impl VerifierKey {
    pub fn new(name: &str, key_type: u8, key: [u8; 32]) -> VerifierKey {
        VerifierKey {
            name: name.to_string(),
            key_type,
            key,
            key_id: key_id(name, key_type, &key),
        }
    }

    pub fn parse(text: &str) -> Result<VerifierKey, WitnessError> {
        // Names have no '+'; the key's base64 may.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(WitnessError::VkeyShape);
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(WitnessError::VkeyName);
        }
        let given: [u8; 4] = hex::decode(id)
            .ok()
            .filter(|_| id.len() == 8)
            .and_then(|b| b.try_into().ok())
            .ok_or(WitnessError::VkeyShape)?;
        let raw = STANDARD.decode(b64).map_err(|_| WitnessError::VkeyShape)?;
        let (key_type, key) = match raw.split_first() {
            Some((&t, k)) if (t == NOTE_ED25519 || t == COSIGNATURE_ED25519) && k.len() == 32 => {
                (t, k)
            }
            _ => return Err(WitnessError::VkeyType),
        };
        let vkey = VerifierKey::new(name, key_type, key.try_into().expect("32 bytes"));
        if vkey.key_id != given {
            return Err(WitnessError::VkeyId {
                given: id.to_string(),
                computed: hex::encode(vkey.key_id),
            });
        }
        Ok(vkey)
    }

    pub fn to_text(&self) -> String {
        let mut raw = vec![self.key_type];
        raw.extend_from_slice(&self.key);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(raw)
        )
    }
}

/// What a witness signs for a checkpoint at `timestamp` (POSIX seconds):
/// `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's note text.
pub fn cosigned_message(timestamp: u64, checkpoint_text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// A cosignature as a signature line: key id ‖ timestamp (u64 big-endian) ‖ signature.
pub fn cosignature_line(
    witness: &VerifierKey,
    timestamp: u64,
    signature: &[u8; 64],
) -> NoteSignature {
    let mut sig = Vec::with_capacity(72);
    sig.extend_from_slice(&timestamp.to_be_bytes());
    sig.extend_from_slice(signature);
    NoteSignature {
        name: witness.name.clone(),
        key_hint: witness.key_id,
        signature: sig,
    }
}

/// The timestamp and Ed25519 signature of a line that claims to be `witness`'s cosignature.
pub fn split_cosignature(witness: &VerifierKey, line: &NoteSignature) -> Option<(u64, [u8; 64])> {
    if line.name != witness.name || line.key_hint != witness.key_id || line.signature.len() != 72 {
        return None;
    }
    let (ts, sig) = line.signature.split_at(8);
    Some((
        u64::from_be_bytes(ts.try_into().ok()?),
        sig.try_into().ok()?,
    ))
}

/// A tlog-witness `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the last checkpoint the witness cosigned for this log (0 for none).
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size (empty from 0).
    pub proof: Vec<Hash>,
    /// The signed checkpoint (note text and signature lines).
    pub checkpoint: String,
}

impl AddCheckpoint {
    pub fn to_body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    pub fn parse(body: &str) -> Result<AddCheckpoint, WitnessError> {
        let bad = WitnessError::Request;
        let (old, mut rest) = body.split_once('\n').ok_or(bad("no old size line"))?;
        let size = old
            .strip_prefix("old ")
            .ok_or(bad("first line is not `old <size>`"))?;
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let old_size = size
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or(bad("old size is not a canonical decimal"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(bad("no empty line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let hash: Hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(bad("a proof line is not base64 of 32 bytes"))?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_match_published_vectors() {
        // The signed-note spec's example verifier key.
        let vkey = VerifierKey::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        assert_eq!(vkey.key_type, NOTE_ED25519);
        assert_eq!(hex::encode(vkey.key_id), "530d903a");
        assert_eq!(
            vkey.to_text(),
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
        );
        // sigstage's Rekor v2 log key (its trusted root's logId starts d3d3a70c).
        let key = hex::decode("943ddd55cf3268fdb998fb53fec279f43dcb2f1181816fea62b33ac7a2a63aa9")
            .unwrap();
        assert_eq!(
            hex::encode(key_id(
                "log2025-alpha3.rekor.sigstage.dev",
                NOTE_ED25519,
                &key
            )),
            "d3d3a70c"
        );
    }

    #[test]
    fn bad_verifier_keys_are_refused() {
        let good = VerifierKey::new("w.example/1", COSIGNATURE_ED25519, [7; 32]).to_text();
        assert_eq!(VerifierKey::parse(&good).unwrap().key, [7; 32]);
        let (head, _) = good.rsplit_once('+').unwrap();
        let wrong_id = good.replacen(&good[12..20], "00000000", 1);
        for (text, expected) in [
            ("no-plus", WitnessError::VkeyShape),
            ("+00000000+AQ==", WitnessError::VkeyName),
            (&format!("{head}+AQ=="), WitnessError::VkeyType),
            (&format!("{good}+x"), WitnessError::VkeyShape),
            ("w.example/1+1234567+AQ==", WitnessError::VkeyShape),
        ] {
            assert_eq!(VerifierKey::parse(text).unwrap_err(), expected, "{text}");
        }
        assert!(matches!(
            VerifierKey::parse(&wrong_id).unwrap_err(),
            WitnessError::VkeyId { .. }
        ));
    }

    #[test]
    fn keys_whose_base64_holds_a_plus_parse() {
        // 0x04 followed by 0xfb… encodes to "BPv…": the base64 alphabet has '+' and '/'.
        let mut key = [0xfb; 32];
        key[1] = 0xef;
        let vkey = VerifierKey::new("w.example/1", COSIGNATURE_ED25519, key);
        let text = vkey.to_text();
        assert!(text.matches('+').count() > 2, "{text}");
        assert_eq!(VerifierKey::parse(&text).unwrap(), vkey);
    }

    #[test]
    fn cosignature_lines_round_trip() {
        let witness = VerifierKey::new("w.example/1", COSIGNATURE_ED25519, [1; 32]);
        let line = cosignature_line(&witness, 1_700_000_000, &[9; 64]);
        // 4-byte id + 8-byte time + 64-byte signature = 76 bytes, 104 base64 characters.
        let text = line.to_line();
        assert_eq!(text.trim_end().rsplit_once(' ').unwrap().1.len(), 104);
        assert_eq!(
            split_cosignature(&witness, &line),
            Some((1_700_000_000, [9; 64]))
        );
        let other = VerifierKey::new("w.example/2", COSIGNATURE_ED25519, [1; 32]);
        assert_eq!(split_cosignature(&other, &line), None);
        assert_eq!(
            cosigned_message(5, "origin\n1\nroot\n"),
            b"cosignature/v1\ntime 5\norigin\n1\nroot\n"
        );
    }

    #[test]
    fn add_checkpoint_bodies_round_trip_and_bad_ones_are_named() {
        let request = AddCheckpoint {
            old_size: 20,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: "o\n30\nAAAA\n\n— o AAAA\n".into(),
        };
        assert_eq!(AddCheckpoint::parse(&request.to_body()).unwrap(), request);
        let empty = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: "c\n".into(),
        };
        assert_eq!(empty.to_body(), "old 0\n\nc\n");
        for (body, expected) in [
            ("old 01\n\nc", "canonical"),
            ("new 1\n\nc", "old <size>"),
            ("old 1\nAAAA\n\nc", "base64 of 32 bytes"),
            ("old 1\n", "no empty line"),
        ] {
            let e = AddCheckpoint::parse(body).unwrap_err().to_string();
            assert!(e.contains(expected), "{body:?}: {e}");
        }
        let long = format!(
            "old 1\n{}\nc",
            format!("{}\n", STANDARD.encode([0; 32])).repeat(64)
        );
        assert!(
            AddCheckpoint::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("63")
        );
    }
}

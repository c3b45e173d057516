//! `sigil log monitor`: follow a log from a saved state and look at every entry. The entries
//! come from the tiles API (entry bundles, read in parallel); their leaf hashes are appended to
//! the tree's right edge (frontier) kept in the state, and the root that builds must equal the
//! root of a checkpoint signed by the log. So a scan that ends "ok" has seen every entry of
//! that checkpoint's tree, each exactly once, with no proof fetched per entry.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sigil_proto::merkle::{Frontier, Hash, leaf_hash};
use sigil_proto::trust::TransparencyLogInstance;

use crate::audit::{self, AuditError, VerifiedCheckpoint, describe_body, verify_checkpoint};

pub mod ct;
pub mod metrics;
pub mod rules;
pub use rules::{Finding, RuleState, Rules};

/// Entries per tile (C2SP tlog-tiles).
pub const TILE_WIDTH: u64 = 256;
/// Entry bundles fetched at once.
const PARALLEL_TILES: usize = 8;

/// What a monitor keeps between runs (a JSON file): the last verified checkpoint, how many
/// entries it has read, and the tree's right edge after them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitorState {
    /// The signed note as the log served it.
    pub checkpoint: String,
    /// Entries [0, scanned) were read and checked.
    pub scanned: u64,
    /// Hex hashes of the frontier of the tree of `scanned` leaves.
    pub frontier: Vec<String>,
    /// What the rules remember (burst windows, digests already signed).
    #[serde(default, skip_serializing_if = "is_default")]
    pub rules: RuleState,
    /// Where the CA's certificate-transparency log was read up to (with `--ct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct: Option<ct::CtState>,
}

fn is_default(state: &RuleState) -> bool {
    *state == RuleState::default()
}

/// The outcome of one scan.
#[derive(Debug)]
pub struct Scan {
    pub state: MonitorState,
    pub checkpoint: VerifiedCheckpoint,
    /// Entries read in this scan: [from, to).
    pub from: u64,
    pub to: u64,
    pub findings: Vec<Finding>,
}

/// Reads every entry since `state` (from the first without one) up to the log's current
/// checkpoint, checks that they build that checkpoint's tree (and, on the way, the saved
/// checkpoint's), and applies `rules`.
pub async fn scan(
    http: &reqwest::Client,
    rekor_url: &str,
    tlogs: &[TransparencyLogInstance],
    state: Option<&MonitorState>,
    rules: &Rules,
) -> Result<Scan, AuditError> {
    let (_, now) = audit::log_info(http, rekor_url, tlogs).await?;
    let (mut frontier, saved) = match state {
        None => (Frontier::default(), None),
        Some(state) => restore(state, &now, tlogs)?,
    };
    let from = frontier.size();
    let to = now.checkpoint.size;
    let mut findings = Vec::new();
    let mut rule_state = state.map(|s| s.rules.clone()).unwrap_or_default();
    let first_tile = from / TILE_WIDTH;
    let end_tile = to.div_ceil(TILE_WIDTH);
    let mut bundles = futures_util::stream::iter(first_tile..end_tile)
        .map(|tile| fetch_entry_bundle(http, rekor_url, tile, to))
        .buffered(PARALLEL_TILES);
    while let Some(bundle) = bundles.next().await {
        let (tile, entries) = bundle?;
        for (offset, body) in entries.iter().enumerate() {
            let index = tile * TILE_WIDTH + offset as u64;
            if index < from {
                continue;
            }
            frontier.push_hash(leaf_hash(body), &mut |_, _| {});
            if let Some(saved) = &saved
                && frontier.size() == saved.checkpoint.size
                && frontier.root() != saved.checkpoint.root_hash
            {
                return Err(AuditError::SplitView {
                    size: saved.checkpoint.size,
                    saved: hex::encode(saved.checkpoint.root_hash),
                    current: hex::encode(frontier.root()),
                });
            }
            if !rules.is_empty()
                && let Ok(entry) = describe_body(body)
            {
                rules.check(&mut rule_state, index, &entry, &mut findings);
            }
        }
    }
    if frontier.size() != to || frontier.root() != now.checkpoint.root_hash {
        return Err(AuditError::Inconsistent {
            old: from,
            new: to,
            reason: format!(
                "the {} entries served build root {} at size {}, but the checkpoint says {}",
                frontier.size() - from,
                hex::encode(frontier.root()),
                frontier.size(),
                hex::encode(now.checkpoint.root_hash)
            ),
        });
    }
    let state = MonitorState {
        checkpoint: now.note.clone(),
        scanned: to,
        frontier: frontier
            .nodes()
            .iter()
            .map(|(_, h)| hex::encode(h))
            .collect(),
        rules: rule_state,
        ct: state.and_then(|s| s.ct.clone()),
    };
    Ok(Scan {
        state,
        checkpoint: now,
        from,
        to,
        findings,
    })
}

/// Checks another view of the log (another monitor's state, a witness's or an auditor's saved
/// checkpoint) against ours: its checkpoint must be signed by the log and lie on the same
/// history, with the same root at the same size or a consistency proof from the log between
/// the two. A log that shows two parties two histories fails here.
pub async fn compare_with_peer(
    http: &reqwest::Client,
    rekor_url: &str,
    tlogs: &[TransparencyLogInstance],
    ours: &VerifiedCheckpoint,
    peer_note: &str,
) -> Result<(), AuditError> {
    let peer = verify_checkpoint(peer_note, tlogs)?;
    let (old, new) = if peer.checkpoint.size <= ours.checkpoint.size {
        (&peer.checkpoint, &ours.checkpoint)
    } else {
        (&ours.checkpoint, &peer.checkpoint)
    };
    let proof = if old.size == 0 || old.size == new.size || old.origin != new.origin {
        Vec::new()
    } else {
        audit::consistency_proof(http, rekor_url, old.size, new.size)
            .await
            .map_err(|e| AuditError::Inconsistent {
                old: old.size,
                new: new.size,
                reason: format!("the log gives no consistency proof between the two views: {e}"),
            })?
    };
    audit::check_consistency(old, new, &proof)
}

/// The saved frontier, after checking the saved checkpoint against the log's current one.
fn restore(
    state: &MonitorState,
    now: &VerifiedCheckpoint,
    tlogs: &[TransparencyLogInstance],
) -> Result<(Frontier, Option<VerifiedCheckpoint>), AuditError> {
    let saved = verify_checkpoint(&state.checkpoint, tlogs)?;
    if saved.checkpoint.origin != now.checkpoint.origin {
        return Err(AuditError::OtherLog {
            saved: saved.checkpoint.origin.clone(),
            current: now.checkpoint.origin.clone(),
        });
    }
    if now.checkpoint.size < saved.checkpoint.size {
        return Err(AuditError::Shrunk {
            saved: saved.checkpoint.size,
            current: now.checkpoint.size,
        });
    }
    if now.checkpoint.size == saved.checkpoint.size
        && now.checkpoint.root_hash != saved.checkpoint.root_hash
    {
        return Err(AuditError::SplitView {
            size: saved.checkpoint.size,
            saved: hex::encode(saved.checkpoint.root_hash),
            current: hex::encode(now.checkpoint.root_hash),
        });
    }
    let bad = |why: &str| AuditError::Malformed(format!("monitor state: {why}"));
    if state.scanned > saved.checkpoint.size {
        return Err(bad("it has read beyond its own checkpoint"));
    }
    let hashes: Vec<Hash> = state
        .frontier
        .iter()
        .map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a frontier hash is not 32 bytes of hex"))?;
    if hashes.len() != Frontier::node_ids(state.scanned).len() {
        return Err(bad("the frontier does not fit its size"));
    }
    let frontier = Frontier::from_nodes(state.scanned, hashes);
    // Read up to its checkpoint: the frontier must build that checkpoint's root.
    if state.scanned == saved.checkpoint.size && frontier.root() != saved.checkpoint.root_hash {
        return Err(bad("the frontier does not build its checkpoint's root"));
    }
    Ok((frontier, Some(saved)))
}

/// `GET /tile/entries/<N>[.p/<W>]` for a tree of `size` entries: the tile's entries in order.
async fn fetch_entry_bundle(
    http: &reqwest::Client,
    rekor_url: &str,
    tile: u64,
    size: u64,
) -> Result<(u64, Vec<Vec<u8>>), AuditError> {
    let width = (size - tile * TILE_WIDTH).min(TILE_WIDTH);
    let mut url = format!("{rekor_url}/tile/entries/{}", tile_path(tile));
    if width < TILE_WIDTH {
        url.push_str(&format!(".p/{width}"));
    }
    let failed = |reason: String| audit::http_failure(&url, reason);
    let (status, bytes) = audit::get_raw(http, &url).await?;
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let entries = parse_entry_bundle(&bytes).map_err(failed)?;
    if entries.len() as u64 != width {
        return Err(failed(format!(
            "the bundle holds {} entries, the tile {width}",
            entries.len()
        )));
    }
    Ok((tile, entries))
}

/// A C2SP entry bundle: each entry as a big-endian 16-bit length and its bytes.
pub fn parse_entry_bundle(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let [hi, lo, rest @ ..] = bytes else {
            return Err("truncated entry length".into());
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if rest.len() < len {
            return Err(format!("entry {} is truncated", entries.len()));
        }
        entries.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Ok(entries)
}

/// A tile index as C2SP path elements: 1234067 is `x001/x234/067`.
pub fn tile_path(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_the_spec() {
        assert_eq!(tile_path(0), "000");
        assert_eq!(tile_path(67), "067");
        assert_eq!(tile_path(1234067), "x001/x234/067");
        assert_eq!(tile_path(1000), "x001/000");
    }

    #[test]
    fn entry_bundles_parse_and_refuse_truncation() {
        let bundle = [&[0u8, 2, b'h', b'i'][..], &[0, 0], &[0, 1, b'x']].concat();
        assert_eq!(
            parse_entry_bundle(&bundle).unwrap(),
            vec![b"hi".to_vec(), vec![], b"x".to_vec()]
        );
        assert!(parse_entry_bundle(&[0, 3, b'a']).is_err());
        assert!(parse_entry_bundle(&[0]).is_err());
    }
}

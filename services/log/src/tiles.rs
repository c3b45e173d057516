//! The C2SP tlog-tiles read API over the same tree: `/checkpoint`, `/tile/<L>/<N>[.p/<W>]`
//! and `/tile/entries/<N>[.p/<W>]`. Full tiles never change, so they are served immutable
//! for CDNs; partial tiles and the checkpoint are short-lived.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::HttpError;
use crate::rekor_v1::RekorLog;

pub const TILE_WIDTH: u64 = 256;
const TILE_HEIGHT: u8 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePath {
    /// `None` for entry bundles.
    pub level: Option<u8>,
    pub index: u64,
    /// `None` for a full tile.
    pub partial_width: Option<u64>,
}

/// Parses what follows `/tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, where N is
/// written as 3-digit groups with all but the last prefixed by `x`.
pub fn parse_tile_path(path: &str) -> Option<TilePath> {
    let (level, rest) = path.split_once('/')?;
    let level = match level {
        "entries" => None,
        l => {
            let n: u8 = l.parse().ok().filter(|n| *n < 64)?;
            if l != n.to_string() {
                return None;
            }
            Some(n)
        }
    };
    let (index_part, partial) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let width: u64 = w.parse().ok().filter(|w| (1..TILE_WIDTH).contains(w))?;
            if w != width.to_string() {
                return None;
            }
            (i, Some(width))
        }
        None => (rest, None),
    };
    let groups: Vec<&str> = index_part.split('/').collect();
    // One spelling per index: a leading group of zeros (`x000/001`) names tile 1 too.
    if groups.len() > 1 && groups[0] == "x000" {
        return None;
    }
    let mut index: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() {
            g.strip_prefix('x')?
        } else {
            g
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some(TilePath {
        level,
        index,
        partial_width: partial,
    })
}

pub fn router(log: Arc<RekorLog>) -> Router {
    Router::new()
        .route("/checkpoint", get(get_checkpoint))
        .route("/tile/{*path}", get(get_tile))
        .with_state(log)
}

async fn get_checkpoint(State(log): State<Arc<RekorLog>>) -> Response {
    let head = log.engine().tree_head();
    let mut resp = log.checkpoint(&head).to_string().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn get_tile(
    State(log): State<Arc<RekorLog>>,
    Path(path): Path<String>,
) -> Result<Response, HttpError> {
    let tile = parse_tile_path(&path)
        .ok_or_else(|| HttpError::not_found(format!("not a tile path: {path}")))?;
    let size = log.engine().tree_head().size;
    let width = tile.partial_width.unwrap_or(TILE_WIDTH);
    let start = tile
        .index
        .checked_mul(TILE_WIDTH)
        .ok_or_else(|| HttpError::not_found("tile index out of range"))?;
    // Tile levels go to 63 but a 64-bit tree has Merkle levels below 64 only; computed wide,
    // since `level * 8` overflows a u8 (and in release builds wrapped to a lower level).
    let merkle_level = u32::from(tile.level.unwrap_or(0)) * u32::from(TILE_HEIGHT);
    let beyond = || HttpError::not_found(format!("tile {path} is beyond the tree"));
    // Hashes at this level that are final at the current size.
    let available = if merkle_level >= 64 {
        0
    } else {
        size >> merkle_level
    };
    let end = start.checked_add(width).ok_or_else(beyond)?;
    if end > available {
        return Err(beyond());
    }
    let merkle_level = u8::try_from(merkle_level).map_err(|_| beyond())?;
    let bytes: Vec<u8> = match tile.level {
        Some(_) => log
            .engine()
            .level_hashes(merkle_level, start, width)
            .await?
            .concat(),
        None => {
            let entries = log.engine().entries(start, end).await?;
            let mut out = Vec::new();
            for e in entries {
                let len = u16::try_from(e.leaf.len())
                    .map_err(|_| HttpError::internal("entry larger than 64 KiB"))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&e.leaf);
            }
            out
        }
    };
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let cache = if tile.partial_width.is_none() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tile_paths_per_the_spec() {
        assert_eq!(
            parse_tile_path("0/x001/x234/067"),
            Some(TilePath {
                level: Some(0),
                index: 1_234_067,
                partial_width: None
            })
        );
        assert_eq!(
            parse_tile_path("2/000.p/7"),
            Some(TilePath {
                level: Some(2),
                index: 0,
                partial_width: Some(7)
            })
        );
        assert_eq!(
            parse_tile_path("entries/x001/002.p/255"),
            Some(TilePath {
                level: None,
                index: 1002,
                partial_width: Some(255)
            })
        );
        for bad in [
            "0/1",
            "0/x001",
            "0/001/002",
            "0/001.p/0",
            "0/001.p/256",
            "01/000",
            "64/000",
            "0/000.p/07",
            "0/x000/001",
            "0/x000/x000/001",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }
}

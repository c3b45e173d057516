//! `/tile/<path>` of the tiles read API: the path comes straight from the request URL.
//!
//! Besides "no panic", a parsed path must be the one canonical spelling of its tile: the
//! API serves full tiles as immutable, so two URLs for one tile would split CDN caches and
//! let a client be shown different bytes under different names.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_log::tiles::{TILE_WIDTH, TilePath, parse_tile_path};

/// The C2SP tlog-tiles spelling of `tile`, written independently of the parser.
fn spell(tile: &TilePath) -> String {
    let mut out = match tile.level {
        Some(l) => l.to_string(),
        None => "entries".to_string(),
    };
    let digits = tile.index.to_string();
    let padded = format!("{}{digits}", "0".repeat((3 - digits.len() % 3) % 3));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).expect("ASCII digits"))
        .collect();
    for (i, g) in groups.iter().enumerate() {
        out.push('/');
        if i + 1 < groups.len() {
            out.push('x');
        }
        out.push_str(g);
    }
    if let Some(w) = tile.partial_width {
        out.push_str(&format!(".p/{w}"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(tile) = parse_tile_path(path) {
        assert!(
            tile.level.is_none_or(|l| l < 64),
            "level out of range: {tile:?}"
        );
        assert!(
            tile.partial_width
                .is_none_or(|w| (1..TILE_WIDTH).contains(&w)),
            "width out of range: {tile:?}"
        );
        assert_eq!(spell(&tile), path, "accepted a non-canonical spelling");
    }
});

//! SHA-256 of a file, streamed, with a progress bar for large files on a terminal.

use std::io::{IsTerminal, Read};
use std::path::Path;

use aws_lc_rs::digest::{Context, SHA256};

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let bar = (len >= PROGRESS_THRESHOLD && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "hashing {msg} {bar:40} {bytes}/{total_bytes} ({eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(path.display().to_string());
        bar
    });
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let expect = aws_lc_rs::digest::digest(&SHA256, &data);
        assert_eq!(sha256_file(&path).unwrap().as_slice(), expect.as_ref());
        // The well-known empty-input digest.
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            hex::encode(sha256_file(&path).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

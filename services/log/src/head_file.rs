//! The last tree head a log committed, kept outside the database.
//!
//! A database can come back behind what the log already published: a restored backup, an
//! asynchronous replica promoted after a failover. Started on such a database, a log would
//! hand out the same indexes again and sign a second checkpoint for a size that already has
//! one: a fork that every monitor would (rightly) report. The file is written and fsynced
//! after every commit, before any submitter is answered, so no checkpoint can name a head
//! the file does not cover; at start-up the database must hold that head or extend it.

use std::io::Write;
use std::path::{Path, PathBuf};

use sigil_proto::merkle::Hash;

use crate::engine::TreeHead;

/// What the file records: which tree, and its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedHead {
    pub tree_id: i64,
    pub size: u64,
    pub root: Hash,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadFileError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a tree-head record: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

/// The file for one log.
#[derive(Clone, Debug)]
pub struct HeadFile {
    path: PathBuf,
}

impl HeadFile {
    pub fn new(path: PathBuf) -> HeadFile {
        HeadFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded head, or None before the first commit.
    pub fn read(&self) -> Result<Option<RecordedHead>, HeadFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HeadFileError::Io {
                    action: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        parse(&text)
            .map(Some)
            .map_err(|reason| HeadFileError::Malformed {
                path: self.path.clone(),
                reason,
            })
    }

    /// Replaces the record atomically and durably: a crash leaves the old or the new record.
    pub fn write(&self, tree_id: i64, head: &TreeHead) -> Result<(), HeadFileError> {
        let io = |action| {
            let path = self.path.clone();
            move |source| HeadFileError::Io {
                action,
                path,
                source,
            }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        let tmp = self.path.with_extension("tmp");
        let text = format!(
            "sigil tree head\ntree_id {tree_id}\nsize {}\nroot {}\n",
            head.size,
            hex::encode(head.root)
        );
        let mut file = std::fs::File::create(&tmp).map_err(io("create"))?;
        file.write_all(text.as_bytes()).map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
        std::fs::rename(&tmp, &self.path).map_err(io("replace"))?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the directory of"))?;
        Ok(())
    }
}

fn parse(text: &str) -> Result<RecordedHead, String> {
    let mut lines = text.lines();
    if lines.next() != Some("sigil tree head") {
        return Err("missing the `sigil tree head` header".into());
    }
    let mut field = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|v| v.strip_prefix(' '))
            .map(str::to_string)
            .ok_or_else(|| format!("missing the {name} line"))
    };
    let tree_id = field("tree_id")?
        .parse()
        .map_err(|_| "tree_id is not an integer".to_string())?;
    let size = field("size")?
        .parse()
        .map_err(|_| "size is not an integer".to_string())?;
    let root = hex::decode(field("root")?)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| "root is not 32 bytes of hex".to_string())?;
    Ok(RecordedHead {
        tree_id,
        size,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_head_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = HeadFile::new(dir.path().join("heads/rekor"));
        assert_eq!(file.read().unwrap(), None);
        let head = TreeHead {
            size: 42,
            root: [7; 32],
            timestamp_ms: 1,
        };
        file.write(9, &head).unwrap();
        assert_eq!(
            file.read().unwrap(),
            Some(RecordedHead {
                tree_id: 9,
                size: 42,
                root: [7; 32]
            })
        );
        file.write(9, &TreeHead { size: 43, ..head }).unwrap();
        assert_eq!(file.read().unwrap().unwrap().size, 43);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rekor");
        std::fs::write(&path, "sigil tree head\ntree_id 1\nsize x\n").unwrap();
        let err = HeadFile::new(path).read().unwrap_err().to_string();
        assert!(err.contains("size is not an integer"), "{err}");
    }
}

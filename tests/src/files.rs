//! Files for tests that set up more than one sigild over the same material.

use std::path::Path;

/// Copies a directory tree: a stopped node's data dir (a fork), or its keys and CA directories
/// (nodes that sign as one log and one CA).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

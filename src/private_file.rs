//! Files of a node's own (friends, last seen) replaced whole: written
//! beside the old one, then renamed over it, so a crash leaves the old
//! contents or the new, never half of either.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn replace(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    let staged = PathBuf::from(staged);
    fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .and_then(|()| fs::rename(&staged, path))
}

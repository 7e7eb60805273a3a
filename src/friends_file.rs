//! Friends accepted by nospam are remembered in a file beside the key file,
//! one 64-hex key a line, so they stay friends across restarts.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::id::{PeerRef, PublicKey};

pub fn path_for(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".friends");
    PathBuf::from(name)
}

pub fn load(path: &Path) -> Result<Vec<PublicKey>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(n, line)| {
            line.parse::<PeerRef>()
                .map(|p| p.key())
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

pub fn append(path: &Path, key: &PublicKey) -> Result<(), String> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| writeln!(f, "{key}"))
        .map_err(|e| format!("{}: cannot remember friend: {e}", path.display()))
}

/// Removes `key` from the file; false if it was not there.
pub fn remove(path: &Path, key: &PublicKey) -> Result<bool, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let is_key = |line: &str| line.parse::<PeerRef>().is_ok_and(|p| p.key() == *key);
    if !text.lines().any(is_key) {
        return Ok(false);
    }
    let kept: String = text
        .lines()
        .filter(|line| !is_key(line))
        .map(|line| format!("{line}\n"))
        .collect();
    crate::private_file::replace(path, &kept)
        .map_err(|e| format!("{}: cannot rewrite: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_friends_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("toxtun.key"));
        assert_eq!(load(&path).unwrap(), vec![]);
        append(&path, &PublicKey([1; 32])).unwrap();
        append(&path, &PublicKey([2; 32])).unwrap();
        assert_eq!(
            load(&path).unwrap(),
            vec![PublicKey([1; 32]), PublicKey([2; 32])]
        );
    }

    #[test]
    fn a_forgotten_friend_is_gone_and_the_rest_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("toxtun.key"));
        assert!(!remove(&path, &PublicKey([1; 32])).unwrap(), "no file yet");
        for byte in 1..=3 {
            append(&path, &PublicKey([byte; 32])).unwrap();
        }
        assert!(remove(&path, &PublicKey([2; 32])).unwrap());
        assert!(!remove(&path, &PublicKey([2; 32])).unwrap());
        assert_eq!(
            load(&path).unwrap(),
            vec![PublicKey([1; 32]), PublicKey([3; 32])]
        );
    }
}

//! When each friend was last heard from, kept beside the key file
//! (`<key_file>.seen`, a 64-hex key and Unix seconds a line) so that
//! `toxtun friends` can say it after a restart, or with no node running.
//! The running node writes it every minute and when it stops; a node
//! killed outright loses at most that minute.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::id::{PeerRef, PublicKey};

pub const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Unix seconds of the last authenticated packet from each friend.
pub type LastSeen = BTreeMap<PublicKey, u64>;

pub fn path_for(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".seen");
    PathBuf::from(name)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

pub fn load(path: &Path) -> Result<LastSeen, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LastSeen::new()),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let bad = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
            let (key, seconds) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected KEY UNIX_SECONDS"))?;
            let key = key.parse::<PeerRef>().map_err(|e| bad(&e.to_string()))?;
            let seconds = seconds
                .trim()
                .parse::<u64>()
                .map_err(|e| bad(&format!("time: {e}")))?;
            Ok((key.key(), seconds))
        })
        .collect()
}

/// The running node's friends, each with the newer of what it saw now and
/// what the file held; friends no longer held (forgotten, or gone from
/// the config) drop out. Written only when something changed.
pub fn update(
    path: &Path,
    friends: impl IntoIterator<Item = (PublicKey, Option<u64>)>,
) -> Result<(), String> {
    let old = load(path).unwrap_or_default();
    let new: LastSeen = friends
        .into_iter()
        .filter_map(|(key, seen)| {
            let newest = seen.max(old.get(&key).copied())?;
            Some((key, newest))
        })
        .collect();
    if new == old {
        return Ok(());
    }
    let text: String = new
        .iter()
        .map(|(key, seconds)| format!("{key} {seconds}\n"))
        .collect();
    crate::private_file::replace(path, &text)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Asks the running node's event loop who it heard from, and when, and
/// updates the file.
pub async fn save_from_node(
    path: &Path,
    commands: &tokio::sync::mpsc::Sender<crate::net::command::Command>,
) -> Result<(), String> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let stopped = || "the node's event loop has stopped".to_string();
    commands
        .send(crate::net::command::Command::Status { reply })
        .await
        .map_err(|_| stopped())?;
    let status = answer.await.map_err(|_| stopped())?;
    let now = unix_now();
    let friends = status.friends.iter().filter_map(|f| {
        let key = f.key.parse::<PeerRef>().ok()?.key();
        Some((key, f.last_seen_s.map(|ago| now.saturating_sub(ago as u64))))
    });
    update(path, friends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_time_is_kept_and_friends_gone_drop_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("toxtun.key"));
        let (a, b, c) = (PublicKey([1; 32]), PublicKey([2; 32]), PublicKey([3; 32]));
        update(&path, [(a, Some(100)), (b, Some(200)), (c, None)]).unwrap();
        assert_eq!(load(&path).unwrap(), LastSeen::from([(a, 100), (b, 200)]));
        // A restarted node has not heard from b yet: its old time stays.
        update(&path, [(a, Some(150)), (b, None)]).unwrap();
        assert_eq!(load(&path).unwrap(), LastSeen::from([(a, 150), (b, 200)]));
        update(&path, [(a, Some(120))]).unwrap();
        assert_eq!(load(&path).unwrap(), LastSeen::from([(a, 150)]));
    }

    #[test]
    fn a_damaged_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.seen");
        fs::write(&path, format!("{} 12\nnonsense\n", PublicKey([1; 32]))).unwrap();
        let error = load(&path).unwrap_err();
        assert!(
            error.ends_with("x.seen:2: expected KEY UNIX_SECONDS"),
            "{error}"
        );
    }
}

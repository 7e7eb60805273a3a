//! `toxtun friends`: every friend this key has, from the config and the
//! remembered friends file, with when each was last heard from (kept in
//! the last-seen file across restarts) and, when a node runs on the key,
//! whether it is online now.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Settings;
use crate::id::{PeerRef, PublicKey};
use crate::status::{ago, table};

#[derive(Debug, Default, Serialize)]
pub struct ListedFriend {
    pub key: String,
    pub name: Option<String>,
    /// Where it comes from: "[friends]", "[server] friends", "[peers]",
    /// "[client]", "remembered", or "running node" (added while running).
    pub from: Vec<&'static str>,
    /// None when no node runs on this key.
    pub online: Option<bool>,
    /// Unix seconds of the last authenticated packet from it.
    pub last_seen_unix: Option<u64>,
}

/// The friends of the node on `settings`; `running` is that node's
/// `status --json`, when one runs.
pub fn collect(
    settings: &Settings,
    running: Option<&serde_json::Value>,
) -> Result<Vec<ListedFriend>, String> {
    let mut friends: BTreeMap<PublicKey, ListedFriend> = BTreeMap::new();
    let names: BTreeMap<PublicKey, &str> = settings
        .friend_names
        .iter()
        .map(|(name, peer)| (peer.key(), name.as_str()))
        .collect();
    for key in names.keys() {
        add(&mut friends, *key, "[friends]");
    }
    for peer in &settings.server.friends {
        if !names.contains_key(&peer.key()) {
            add(&mut friends, peer.key(), "[server] friends");
        }
    }
    for hint in &settings.peers {
        add(&mut friends, hint.peer.key(), "[peers]");
    }
    let servers = settings.client.iter().map(|t| t.server);
    for server in servers.chain(settings.socks.iter().map(|s| s.server)) {
        add(&mut friends, server.key, "[client]");
    }
    let key_file = &settings.node.key_file;
    for key in crate::friends_file::load(&crate::friends_file::path_for(key_file))? {
        add(&mut friends, key, "remembered");
    }
    let seen = crate::seen_file::load(&crate::seen_file::path_for(key_file))?;
    let now = crate::seen_file::unix_now();
    let live = running
        .and_then(|status| status["friends"].as_array())
        .into_iter()
        .flatten();
    let mut online = BTreeMap::new();
    for friend in live {
        let Some(key) = friend["key"]
            .as_str()
            .and_then(|k| k.parse::<PeerRef>().ok())
        else {
            continue;
        };
        // Only what the config and the files do not name came in while
        // the node ran (`connect` adds its server so).
        if !friends.contains_key(&key.key()) {
            add(&mut friends, key.key(), "running node");
        }
        let seen_now = friend["last_seen_s"]
            .as_f64()
            .map(|ago| now.saturating_sub(ago as u64));
        online.insert(key.key(), (friend["online"].as_bool(), seen_now));
    }
    for (key, entry) in friends.iter_mut() {
        entry.name = names.get(key).map(|n| n.to_string());
        let (is_online, seen_now) = online.get(key).copied().unwrap_or((None, None));
        entry.online = running.map(|_| is_online.unwrap_or(false));
        entry.last_seen_unix = seen_now.max(seen.get(key).copied());
    }
    Ok(friends.into_values().collect())
}

/// `key` comes from `from` (besides where else it comes from).
fn add(friends: &mut BTreeMap<PublicKey, ListedFriend>, key: PublicKey, from: &'static str) {
    let entry = friends.entry(key).or_insert_with(|| ListedFriend {
        key: key.to_string(),
        ..ListedFriend::default()
    });
    if !entry.from.contains(&from) {
        entry.from.push(from);
    }
}

pub fn render_text(friends: &[ListedFriend], node_runs: bool) -> String {
    let now = crate::seen_file::unix_now();
    let rows: Vec<Vec<String>> = friends
        .iter()
        .map(|f| {
            vec![
                f.key.clone(),
                f.name.clone().unwrap_or("-".into()),
                f.from.join(", "),
                match f.online {
                    Some(true) => "online".into(),
                    Some(false) => "offline".into(),
                    None => "-".into(),
                },
                ago(f.last_seen_unix.map(|t| now.saturating_sub(t) as f64)),
            ]
        })
        .collect();
    let mut out = String::new();
    table(
        &mut out,
        &["FRIEND", "NAME", "FROM", "STATE", "LAST SEEN"],
        &rows,
    );
    if !node_runs {
        out.push_str("(no node runs on this key: STATE is unknown)\n");
    }
    out
}

//! `toxtun friends`: the configured and remembered friends of a key, with
//! when each was last seen, kept across a restart of the node.

mod common;

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{binary, id_of, write_config, Node, NO_LAN, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn friends(config: &std::path::Path, json: bool) -> Output {
    let mut command = Command::new(binary());
    command.arg("-c").arg(config).arg("friends");
    if json {
        command.arg("--json");
    }
    command.env_remove("RUST_LOG").output().unwrap()
}

/// `toxtun friends` as text, which must succeed.
fn friends_text(config: &std::path::Path) -> String {
    let out = friends(config, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The table row of `key`, cut at the two-space column gaps.
fn row(text: &str, key: &str) -> Vec<String> {
    assert!(text.starts_with("FRIEND  "), "no header:\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no row for {key} in:\n{text}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn friends_lists_names_sources_and_last_seen_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client_config = write_config(dir.path(), "client", FAST);
    let client_key = id_of(&client_config)[..64].to_string();
    let stranger = "AB".repeat(32);
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[friends]\nlaptop = {client_key}\n[peers]\n{stranger} = 127.0.0.1:9\n"),
    );
    let before_start = unix_now();
    let mut server = Node::start("server", &server_config, "server");
    std::fs::write(
        &client_config,
        format!(
            "[node]\nkey_file = client.key\n{NO_LAN}{FAST}[peers]\n{id} = {}\n\
             [client]\nt = 127.0.0.1:0:127.0.0.1:9:{id}\n",
            server.udp_addr(),
            id = server.id
        ),
    )
    .unwrap();
    let _client = Node::start("client", &client_config, "client");
    server.wait_for(&["friend online", "(laptop)"], WAIT);

    let text = friends_text(&server_config);
    let laptop = row(&text, &client_key);
    assert_eq!(laptop[1..4], ["laptop", "[friends]", "online"], "{text}");
    assert!(
        laptop[4] == "now" || laptop[4].ends_with(" s ago"),
        "{text}"
    );
    let never_seen = row(&text, &stranger);
    assert_eq!(
        never_seen[1..5],
        ["-", "[peers]", "offline", "never"],
        "{text}"
    );

    // A clean stop writes the last-seen times; with no node running the
    // list comes from the files alone.
    assert_eq!(server.signal_and_wait(libc::SIGTERM, WAIT), Some(0));
    let text = friends_text(&server_config);
    let laptop = row(&text, &client_key);
    assert_eq!(laptop[1..4], ["laptop", "[friends]", "-"], "{text}");
    assert_ne!(laptop[4], "never", "last seen lost at the stop:\n{text}");
    assert!(text.contains("no node runs on this key"), "{text}");

    let seen = last_seen_unix(&server_config, &client_key);
    assert!(
        (before_start..=unix_now()).contains(&seen),
        "{seen} is not since the start ({before_start})"
    );

    // A restarted node that has not heard from the friend yet keeps the
    // time it had.
    let server = Node::start("server", &server_config, "server");
    assert!(last_seen_unix(&server_config, &client_key) >= seen);
    drop(server);
}

/// `friends --json`'s last-seen time of `key`.
fn last_seen_unix(config: &std::path::Path, key: &str) -> u64 {
    let out = friends(config, true);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let friend = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {listed}"));
    friend["last_seen_unix"]
        .as_u64()
        .unwrap_or_else(|| panic!("{listed}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

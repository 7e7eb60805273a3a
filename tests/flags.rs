//! `toxtun client -L ... ID --peer ID=HOST:PORT` with no config file, on
//! two hosts of one LAN (namespaces): curl fetches a file through the
//! tunnel and it arrives whole. The identity is the default key file.

mod common;

use std::process::Command;

use common::http::{have_curl, http_server};
use common::netns::{can_run, within, LanWorld};
use common::{write_config, Node};
use sha2::{Digest, Sha256};

#[test]
fn curl_through_a_tunnel_from_flags_alone() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    if !have_curl() {
        return;
    }
    let world = LanWorld::new();
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let expected: [u8; 32] = Sha256::digest(&body).into();
    let web = within(&world.host_a, move || http_server("0.0.0.0:0", body));
    let server_config = write_config(dir.path(), "server", "listen = 0.0.0.0:0\n");
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    let port = server.udp_addr().port();

    let home = dir.path().join("home");
    let words: Vec<String> = [
        "client",
        "-L",
        &format!("0:127.0.0.1:{}", web.port()),
        &server.id,
        "--peer",
        &format!("{}=10.9.0.1:{port}", server.id),
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    let home_text = home.display().to_string();
    let client = Node::start_words(
        Some(&world.host_b),
        &[("XDG_CONFIG_HOME", &home_text)],
        "client",
        &words,
    );
    assert!(
        home.join("toxtun").join("toxtun.key").exists(),
        "the identity is not the default key file"
    );
    let local = client.tunnel_addr();
    assert!(
        local.ip().is_loopback(),
        "-L without LHOST listens on {local}"
    );
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &world.host_b,
            "curl",
            "-sS",
            "--max-time",
            "60",
        ])
        .arg(format!("http://{local}/file"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 8 << 20);
    let got: [u8; 32] = Sha256::digest(&out.stdout).into();
    assert_eq!(got, expected, "the file changed on the way");
}

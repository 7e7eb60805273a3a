//! A SOCKS5 listener (`socks5:` client line) whose connections become
//! tunnels to the named friend: curl fetches from two targets through one
//! listener, by host name and by IPv4 address, and a target outside the
//! server's `allow` fails with SOCKS5 reply 0x02.

mod common;

use std::process::{Command, Output};

use common::http::{have_curl, http_server};
use common::{write_config, Node, WAIT};
use sha2::{Digest, Sha256};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn curl(proxy: &str, url: &str) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--socks5-hostname", proxy, url])
        .output()
        .unwrap()
}

#[test]
fn curl_through_one_socks5_listener_to_two_targets_and_one_refused() {
    if !have_curl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let second: Vec<u8> = (0..3u32 << 20).map(|i| (i % 241) as u8).collect();
    let (web1, web2) = (
        http_server("127.0.0.1:0", first.clone()),
        http_server("127.0.0.1:0", second.clone()),
    );
    let outside = http_server("127.0.0.1:0", b"secret".to_vec());
    let server_config = write_config(
        dir.path(),
        "server",
        &format!(
            "{FAST}[server]\nallow = localhost:{}, 127.0.0.1:{}\n",
            web1.port(),
            web2.port()
        ),
    );
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{id} = {addr}\n[client]\nproxy = socks5:127.0.0.1:0:{id}\n",
            id = server.id,
            addr = server.udp_addr()
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let line = client.wait_for(&["SOCKS5 listening"], WAIT);
    let proxy = line[line.find("local=").unwrap() + 6..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    for (url, body) in [
        (format!("http://localhost:{}/a", web1.port()), &first),
        (format!("http://127.0.0.1:{}/b", web2.port()), &second),
    ] {
        let out = curl(&proxy, &url);
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(Sha256::digest(&out.stdout), Sha256::digest(body), "{url}");
    }

    let out = curl(&proxy, &format!("http://127.0.0.1:{}/", outside.port()));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // curl shows the reply code in brackets.
    assert!(
        stderr.contains("SOCKS5") && stderr.contains("(2)"),
        "curl: {stderr}"
    );
    server.wait_for(&["is not in the allow list"], WAIT);
}

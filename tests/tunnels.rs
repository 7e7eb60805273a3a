//! Tunnels end to end: the real binary on loopback, data hashed both ways.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::traffic::{exchange, pattern_hash, Seen, Target};
use common::{write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

struct Pair {
    server: Node,
    client: Node,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// A server allowing loopback and a client with one line per target.
    fn start(targets: &[SocketAddr], server_extra: &str, client_extra: &str) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let server_config = write_config(dir.path(), "server", &format!("{FAST}{server_extra}"));
        let server = Node::start("server", &server_config, "server");
        let client_config = client_config(dir.path(), &server, targets, client_extra);
        let client = Node::start("client", &client_config, "client");
        Pair {
            server,
            client,
            _dir: dir,
        }
    }

    fn tunnel(&self, name: &str) -> SocketAddr {
        tunnel_addr(&self.client, name)
    }
}

fn client_config(
    dir: &Path,
    server: &Node,
    targets: &[SocketAddr],
    extra: &str,
) -> std::path::PathBuf {
    let mut lines = String::new();
    for (i, target) in targets.iter().enumerate() {
        lines.push_str(&format!(
            "t{i} = 127.0.0.1:0:{}:{}:{}\n",
            target.ip(),
            target.port(),
            server.id
        ));
    }
    write_config(
        dir,
        "client",
        &format!(
            "{FAST}{extra}\n[peers]\n{} = {}\n[client]\n{lines}",
            server.id,
            server.udp_addr()
        ),
    )
}

fn tunnel_addr(client: &Node, name: &str) -> SocketAddr {
    let line = client.wait_for(&["tunnel listening", &format!("tunnel={name} ")], WAIT);
    let at = line.find("local=").unwrap() + 6;
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const MIB: usize = 1024 * 1024;

#[test]
fn one_connection_carries_a_mebibyte_each_way() {
    let target = Target::start(2, MIB);
    let pair = Pair::start(&[target.addr], "", "");
    let (received, hash) = exchange(pair.tunnel("t0"), 1, MIB);
    assert_eq!((received, hash), (MIB, pattern_hash(2, MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: MIB,
            hash: pattern_hash(1, MIB)
        }
    );
    pair.client
        .wait_for(&["tunnel closed: both sides finished"], WAIT);
    pair.server
        .wait_for(&["tunnel closed: both sides finished"], WAIT);
}

//! Friends that know only each other's IDs find each other through a
//! bootstrap node, start on its relay and move to a direct path.

mod common;

use common::traffic::{exchange, pattern_hash, Seen, Target};
use common::{status_json, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";
const MIB: usize = 1024 * 1024;

#[test]
fn friends_found_by_id_alone_tunnel_and_go_direct() {
    let target = Target::start(1, MIB);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Node::start(
        "bootstrap",
        &write_config(dir.path(), "bootstrap", FAST),
        "bootstrap",
    );
    let entry = format!("bootstrap = {}:{}\n", bootstrap.udp_addr(), bootstrap.id);
    let server = Node::start(
        "server",
        &write_config(dir.path(), "server", &format!("{FAST}{entry}")),
        "server",
    );
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}{entry}[client]\nt0 = 127.0.0.1:0:{}:{}:{}\n",
            target.addr.ip(),
            target.addr.port(),
            server.id
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let (received, hash) = exchange(tunnel, 2, MIB);
    assert_eq!((received, hash), (MIB, pattern_hash(1, MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: MIB,
            hash: pattern_hash(2, MIB)
        }
    );
    client.wait_for(&["found friend", &server.id[..8]], WAIT);
    client.wait_for(&["friend online", "path=relay"], WAIT);
    client.wait_for(&["direct path to friend confirmed"], WAIT);
    server.wait_for(&["direct path to friend confirmed"], WAIT);

    let status = status_json(None, &client_config);
    assert_eq!(status["id"], client.id.as_str());
    assert_eq!(status["bootstrap"][0]["up"], true);
    assert!(status["bootstrap"][0]["rtt_ms"].as_f64().is_some());
    let friend = &status["friends"][0];
    assert_eq!(friend["key"], &server.id[..64]);
    assert_eq!(friend["online"], true);
    assert_eq!(friend["path"], "direct");
    assert!(friend["bytes_in"].as_u64().unwrap() > MIB as u64);
    let text = std::process::Command::new(common::binary())
        .args(["-config"])
        .arg(&client_config)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("online direct"), "{text}");
}

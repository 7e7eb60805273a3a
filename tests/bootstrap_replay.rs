//! A node's record, as any LOOKUP hands it out, replayed to the bootstrap
//! node from another address (with the same and with an older sequence):
//! the node's entry stays where the node proved it is, and tunnels to it
//! keep working.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::by_id::Bootstrap;
use common::traffic::Target;
use common::WAIT;
use toxtun::id::{PublicKey, ToxId};
use toxtun::proto::record::Record;
use toxtun::proto::rendezvous::{self, Rendezvous};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

/// Asks the bootstrap node where `key` is: (address, record bytes).
fn lookup(socket: &UdpSocket, bootstrap: SocketAddr, key: &PublicKey) -> (SocketAddr, Vec<u8>) {
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for attempt in 0u8..10 {
        socket
            .send_to(&rendezvous::lookup(&[attempt; 8], key), bootstrap)
            .unwrap();
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        if let Some(Rendezvous::LookupReply {
            found: Some((at, record)),
            ..
        }) = rendezvous::parse(&buf[..n])
        {
            return (at, record.to_vec());
        }
    }
    panic!("the bootstrap node never knew the server");
}

fn sequence(record: &[u8]) -> u64 {
    Record::decode(record).unwrap().sequence
}

#[test]
fn a_replayed_record_never_moves_the_entry() {
    let target = Target::start(1, 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Bootstrap::start(dir.path(), FAST);
    let bootstrap_addr = bootstrap.addr;
    let server = bootstrap.server(dir.path(), FAST, &[]);
    let key = server.id.parse::<ToxId>().unwrap().key;
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (home, older) = lookup(&attacker, bootstrap_addr, &key);
    assert_eq!(home, server.udp_addr());
    // The server announces again every keepalive, with a higher sequence.
    let newer = loop {
        let (_, record) = lookup(&attacker, bootstrap_addr, &key);
        if sequence(&record) > sequence(&older) {
            break record;
        }
    };
    for record in [&newer, &older] {
        for nonce in 0u8..20 {
            let announce = rendezvous::announce(&[nonce; 8], record);
            attacker.send_to(&announce, bootstrap_addr).unwrap();
        }
    }
    let (after, _) = lookup(&attacker, bootstrap_addr, &key);
    assert_eq!(after, server.udp_addr(), "the entry moved to the replayer");

    // A friend that knows only the server's ID still finds it and tunnels.
    bootstrap.client_tunnels(dir.path(), FAST, &server, &target);
    bootstrap
        .node
        .wait_for(&["node announced (address proven)", &server.id[..16]], WAIT);
    assert_eq!(
        bootstrap.node.count(&["node moved"]),
        0,
        "{}",
        bootstrap.node.log_text()
    );
}

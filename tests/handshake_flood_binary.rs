//! The real server under 10 s of replayed handshake message 1s at 20,000
//! a second: a friend's transfer arrives intact, its new tunnel opens
//! within 2 s, `status --json` shows no Diffie-Hellman after the cookies
//! kicked in, and the log at the default level grows by fewer than 100
//! lines.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::flood::Flood;
use common::sim::{identity, UNIX_START};
use common::traffic::{exchange, pattern_hash, Target};
use common::{status_json, tunnel_lines, write_config, Node, WAIT};
use toxtun::id::ToxId;
use toxtun::proto::handshake::{self, InitPayload};
use toxtun::proto::record::Record;
use toxtun::proto::wire::{self, Packet};

const MIB: usize = 1024 * 1024;
const RATE: u64 = 20_000;
const FLOOD: Duration = Duration::from_secs(10);

/// A valid message 1 to the server (from a key it does not know), made as
/// any stranger can: the server's Noise key comes from its public record.
fn message_1(server: SocketAddr, id: &ToxId) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
        .send_to(&wire::hello(&[1; 16], &id.key.0), server)
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("no hello reply");
    let Some(Packet::HelloReply { record, .. }) = wire::parse(&buf[..n]) else {
        panic!("not a hello reply");
    };
    let noise = Record::decode(record).unwrap().noise_key;
    let stranger = identity(99);
    let payload = InitPayload {
        identity: stranger.public_key(),
        certificate: stranger.certificate,
        timestamp: handshake::tai64n(UNIX_START),
        nospam: [0; 4],
        instance: 1,
        fresh: true,
    };
    let (_, msg1) = handshake::initiate(&stranger, &noise, &[0; 32], &payload, [5; 32]).unwrap();
    let mut packet = wire::initiation_body(7, &msg1);
    packet.extend_from_slice(&handshake::mac1(&handshake::mac1_key(&noise), &packet));
    packet.extend_from_slice(&[0; wire::MAC_LEN]);
    packet
}

/// Lines the log would have at the default level (info and above).
fn default_level_lines(node: &Node) -> usize {
    node.log_text()
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .count()
}

#[test]
fn a_handshake_flood_costs_no_diffie_hellman_and_stops_nobody() {
    let target = Target::start(1, 8 * MIB);
    let small = Target::start(4, 1024);
    let dir = tempfile::tempdir().unwrap();
    let fast = "listen = 127.0.0.1:0\n";
    let server_config = write_config(dir.path(), "server", fast);
    let server = Node::start("server", &server_config, "server");
    let server_addr = server.udp_addr();
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{fast}[peers]\n{} = {server_addr}\n[client]\n{}",
            server.id,
            tunnel_lines(&[target.addr, small.addr], &server.id)
        ),
    );
    let client = Node::start("client", &client_config, "client");
    client.wait_for(&["friend online"], WAIT);
    let packet = message_1(server_addr, &server.id.parse().unwrap());
    let log_before = default_level_lines(&server);

    let flood = Flood::start(server_addr, RATE, FLOOD, move |_| packet.clone());
    // An existing transfer during the flood.
    let tunnel = client.named_tunnel_addr("t0");
    let transfer = std::thread::spawn(move || exchange(tunnel, 2, 8 * MIB));
    // Once the cookies have kicked in, the Diffie-Hellman count stops.
    let deadline = Instant::now() + WAIT;
    let dh_under_load = loop {
        let counters = &status_json(None, &server_config)["counters"];
        if counters["cookies_sent"].as_u64().unwrap() > 0 {
            break counters["dh"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the server never came under load"
        );
    };
    // A new tunnel during the flood.
    let opened = Instant::now();
    let (received, hash) = exchange(client.named_tunnel_addr("t1"), 3, 1024);
    let took = opened.elapsed();
    assert_eq!((received, hash), (1024, pattern_hash(4, 1024)));
    assert!(took < Duration::from_secs(2), "new tunnel took {took:?}");
    assert!(flood.running(), "the flood ended before the new tunnel");
    let sent = flood.join();
    assert!(sent >= RATE * FLOOD.as_secs() * 9 / 10, "only {sent} sent");
    let (received, hash) = transfer.join().unwrap();
    assert_eq!((received, hash), (8 * MIB, pattern_hash(1, 8 * MIB)));
    let counters = &status_json(None, &server_config)["counters"];
    assert_eq!(
        counters["dh"].as_u64().unwrap(),
        dh_under_load,
        "{counters}"
    );
    let grew = default_level_lines(&server) - log_before;
    assert!(
        grew < 100,
        "the log grew by {grew} lines:\n{}",
        server.log_text()
    );
    println!("flood of {sent}: {counters}, log +{grew} lines, new tunnel in {took:?}");
}

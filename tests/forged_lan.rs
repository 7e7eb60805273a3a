//! On a LAN, while a client's server is down, a forger who sees the
//! client's packets sends it a LAN answer naming the server, a response to
//! its handshake in flight (with the live index) and a connect notice from
//! the bootstrap node's address. When the server comes back the client is
//! online within 5 s, and nothing goes to the forger once the server has
//! answered. Needs root and iproute2; reports and skips otherwise.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::netns::{can_run, within, LanWorld};
use common::{id_of, write_config, Node, WAIT};
use toxtun::id::{PublicKey, ToxId};
use toxtun::proto::record::Record;
use toxtun::proto::wire::{self, Packet};
use toxtun::proto::{handshake, lan, rendezvous};

const SERVER: &str = "10.9.0.1:33445";
const FAKE_BOOTSTRAP: &str = "10.9.0.1:33999";
const FORGER: &str = "10.9.0.1:34000";
/// The keepalive is left at its default (15 s).
const BASE: &str = "lan_discovery = on\n";

fn bind(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// The next datagram of `kind` on `socket`, with its source.
fn next_of(socket: &UdpSocket, kind: u8) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf).expect("nothing arrived");
        if buf[0] == kind {
            return (buf[..n].to_vec(), from);
        }
    }
}

/// What anyone may ask a node for: its record, by HELLO.
fn record_of(node: SocketAddr, key: &PublicKey) -> Vec<u8> {
    let socket = bind("10.9.0.1:0");
    socket
        .send_to(&wire::hello(&[3; 16], &key.0), node)
        .unwrap();
    let (reply, _) = next_of(&socket, wire::HELLO_REPLY);
    let Some(Packet::HelloReply { record, .. }) = wire::parse(&reply) else {
        panic!("not a hello reply");
    };
    record.to_vec()
}

#[test]
fn forged_answers_while_the_server_is_down_do_not_cut_the_client_off() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let world = LanWorld::new();
    let dir = tempfile::tempdir().unwrap();
    let server_config = write_config(dir.path(), "server", &format!("{BASE}listen = {SERVER}\n"));
    let server_id: ToxId = id_of(&server_config).parse().unwrap();
    let bootstrap_id = id_of(&write_config(dir.path(), "fake", BASE));
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{BASE}listen = 0.0.0.0:0\nbootstrap = {FAKE_BOOTSTRAP}:{bootstrap_id}\n[peers]\n{server_id} = {SERVER}\n[client]\nt0 = 127.0.0.1:0:127.0.0.1:9:{server_id}\n"
        ),
    );
    // The server's public record, as anyone could have had it earlier.
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    server.udp_addr();
    let server_record = within(&world.host_a, move || {
        record_of(SERVER.parse().unwrap(), &server_id.key)
    });
    drop(server);

    // The forger listens where the server was, and at two addresses of its
    // own: one it names in its lies, one it answers from as the client's
    // bootstrap node.
    let (trap, fake_bootstrap, forger) = within(&world.host_a, || {
        (bind(SERVER), bind(FAKE_BOOTSTRAP), bind(FORGER))
    });
    let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
    let down_since = Instant::now();
    let client_addr = SocketAddr::new("10.9.0.2".parse().unwrap(), client.udp_addr().port());
    let client_key = client.id.parse::<ToxId>().unwrap().key;
    let forger_addr: SocketAddr = FORGER.parse().unwrap();

    // It answers the client's HELLO with the real (public) record, so the
    // client sends message 1; its index is then on the wire.
    let (hello, _) = next_of(&trap, wire::HELLO);
    let Some(Packet::Hello { nonce, .. }) = wire::parse(&hello) else {
        panic!("not a hello");
    };
    trap.send_to(
        &wire::hello_reply(&nonce, &server_record).unwrap(),
        client_addr,
    )
    .unwrap();
    let (initiation, _) = next_of(&trap, wire::INITIATION);
    let index = u32::from_le_bytes(initiation[4..8].try_into().unwrap());
    drop(trap);
    let client_record = within(&world.host_a, move || record_of(client_addr, &client_key));
    let client_noise = Record::decode(&client_record).unwrap().noise_key;
    let mut response = wire::response_body(9, index, &[0x55; wire::NOISE_MSG2_LEN]);
    let mac = handshake::mac1(&handshake::mac1_key(&client_noise), &response);
    response.extend_from_slice(&mac);
    forger.send_to(&response, client_addr).unwrap();
    forger
        .send_to(&lan::here(&server_id.key), client_addr)
        .unwrap();
    fake_bootstrap
        .send_to(
            &rendezvous::connect_notify(&server_id.key, &forger_addr),
            client_addr,
        )
        .unwrap();

    // Count what reaches the forger from here on, and when.
    let online = Arc::new(AtomicBool::new(false));
    let after_online = Arc::new(AtomicUsize::new(0));
    let before_online = Arc::new(AtomicUsize::new(0));
    let counter = {
        let (online, after, before) = (online.clone(), after_online.clone(), before_online.clone());
        std::thread::spawn(move || {
            forger
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 2048];
            let give_up = Instant::now() + WAIT;
            let mut quiet_until = None;
            // Counts until three seconds after the client was seen online.
            while quiet_until.is_none_or(|until| Instant::now() < until) && Instant::now() < give_up
            {
                let received = forger.recv_from(&mut buf).is_ok();
                let now_online = online.load(Ordering::SeqCst);
                if now_online && quiet_until.is_none() {
                    quiet_until = Some(Instant::now() + Duration::from_secs(3));
                }
                if received {
                    let seen = if now_online { &after } else { &before };
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // The server has been down for 5 s; it comes back.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(down_since.elapsed()));
    let started = Instant::now();
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    client.wait_for(&["friend online", &server_id.to_string()[..64]], WAIT);
    let took = started.elapsed();
    online.store(true, Ordering::SeqCst);
    counter.join().unwrap();
    assert!(
        took < Duration::from_secs(5),
        "online {took:?} after the server came back"
    );
    assert!(
        before_online.load(Ordering::SeqCst) > 0,
        "the forged hints were not even tried: the test proved nothing"
    );
    assert_eq!(
        after_online.load(Ordering::SeqCst),
        0,
        "datagrams to the forger after the server answered"
    );
    server.wait_for(&["friend online"], WAIT);
    println!("online {took:?} after the server came back");
}

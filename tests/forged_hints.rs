//! Unauthenticated word of where a friend is (a LAN answer, a bootstrap
//! node's notice, a response that does not decrypt, an ack from a bootstrap
//! node's address) never replaces an address a handshake or the config
//! proved; it is tried beside it, and forgotten once the friend answers.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::sim::{addr, identity, open_tunnel, Endpoint, Host, Net};
use toxtun::id::PeerRef;
use toxtun::proto::{handshake, lan, rendezvous, wire, FriendNetConfig, Transmit};

const CLIENT: usize = 0;
const SERVER: usize = 1;

fn forger() -> SocketAddr {
    "198.51.100.66:4444".parse().unwrap()
}

/// The defaults a user has: keepalive 15 s, LAN discovery on.
fn defaults(accept_requests: bool) -> FriendNetConfig {
    FriendNetConfig {
        keepalive: Duration::from_secs(15),
        friend_timeout: Duration::from_secs(45),
        psk: [0; 32],
        accept_requests,
        lan_discovery: true,
        max_friends: 1024,
    }
}

#[test]
fn forged_hints_while_the_server_is_down_cut_nobody_off() {
    let now = Instant::now();
    let server_addr = addr(1);
    let bootstrap = addr(9);
    let mut client = Host::with_config(2, now, 2, None, defaults(false));
    let server_id = identity(1).id();
    let server_key = server_id.key;
    let net = client.core.net_mut();
    net.add_bootstrap(now, bootstrap, identity(9).id());
    net.add_friend(now, PeerRef::Id(server_id), Some(server_addr), true);
    let mut net = Net::new(now);
    net.record = true;
    net.add(client);
    // The server has been down for 5 s; the client keeps asking for it.
    net.idle(Duration::from_secs(5));
    let now = net.now;
    let client = net.host_mut(CLIENT);
    // A LAN answer naming the server, from the forger.
    client
        .core
        .handle_lan_datagram(now, forger(), &lan::query(&server_key));
    client
        .core
        .handle_datagram(now, forger(), &lan::here(&server_key));
    // A bootstrap node's connect notice, from the bootstrap node's address.
    let notice = rendezvous::connect_notify(&server_key, &forger());
    client.core.handle_datagram(now, bootstrap, &notice);
    // An announce ack it never asked for, naming the forger.
    let ack = rendezvous::announce_ack(&[7; 8], &forger());
    client.core.handle_datagram(now, bootstrap, &ack);
    let snapshot = client.core.snapshot(now);
    assert_eq!(
        snapshot.bootstrap[0].public_addr, None,
        "a forged ack was taken"
    );
    // The server comes back.
    let started = net.now;
    let server = Host::with_config(1, started, 1, Some(Vec::new()), defaults(true));
    assert_eq!(server.id(), server_id);
    net.add(server);
    let online = net.run_until(Duration::from_secs(5), &mut |_, _| false, &mut |n| {
        n.host(CLIENT).core.net().is_online(&server_key)
    });
    assert!(online, "the client was not back online within 5 s");
    let back = net.now - started;
    // Nothing goes to the forger once the real server has answered.
    let first_answer = net
        .sent
        .iter()
        .position(|(from, _)| *from == SERVER)
        .expect("the server sent nothing");
    net.idle(Duration::from_secs(60));
    let to_forger: Vec<usize> = net.sent[first_answer..]
        .iter()
        .enumerate()
        .filter(|(_, (from, t))| *from == CLIENT && t.unicast_addr() == Some(forger()))
        .map(|(i, _)| i)
        .collect();
    assert!(
        to_forger.is_empty(),
        "{} datagrams to the forger after the server answered",
        to_forger.len()
    );
    // The forger was tried beside the server meanwhile (the hint was not
    // ignored), but never instead of it.
    assert!(
        net.sent[..first_answer]
            .iter()
            .any(|(from, t)| *from == CLIENT && t.unicast_addr() == Some(forger())),
        "the LAN answer was not tried at all"
    );
    println!("back online {back:?} after the server started");
}

/// A host that is down: it takes datagrams and says nothing.
struct Down(SocketAddr);

impl Endpoint for Down {
    fn addr(&self) -> SocketAddr {
        self.0
    }

    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}

    fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _: Instant) {}
}

#[test]
fn a_forged_response_does_not_stop_the_handshake_retrying() {
    // open_tunnel puts the server at 0 and the client at 1.
    let (server, client) = (0, 1);
    let mut net = open_tunnel(Instant::now(), 1, (1, 2));
    let server_addr = net.host(server).addr;
    let server_key = net.host(server).identity.public_key();
    let client_noise = net.host(client).identity.noise_public;
    net.nodes[server] = Box::new(Down(server_addr));
    // The client gives the server up and keeps handshaking.
    let offline = net.run_until(Duration::from_secs(30), &mut |_, _| false, &mut |n| {
        !n.host(client).core.net().is_online(&server_key)
    });
    assert!(offline);
    net.sent.clear();
    let retried = net.run_until(Duration::from_secs(10), &mut |_, _| false, &mut |n| {
        n.sent
            .iter()
            .any(|(from, t)| *from == client && t.payload[0] == wire::INITIATION)
    });
    assert!(retried, "the client stopped handshaking");
    let initiation = net
        .sent
        .iter()
        .rev()
        .find(|(from, t)| *from == client && t.payload[0] == wire::INITIATION)
        .map(|(_, t)| t.payload.clone())
        .expect("the client sent no handshake");
    // A response naming the handshake in flight (its index is on the wire
    // for anyone on the path) that does not decrypt.
    let index = u32::from_le_bytes(initiation[4..8].try_into().unwrap());
    let mut response = wire::response_body(5, index, &[0x55; wire::NOISE_MSG2_LEN]);
    let mac = handshake::mac1(&handshake::mac1_key(&client_noise), &response);
    response.extend_from_slice(&mac);
    let now = net.now;
    net.host_mut(client)
        .core
        .handle_datagram(now, forger(), &response);
    // The server restarts; the client's next retry finds it.
    let restarted = Host::new(1, now, true, 7);
    assert_eq!(restarted.identity.public_key(), server_key);
    net.nodes[server] = Box::new(restarted);
    let online = net.run_until(Duration::from_secs(5), &mut |_, _| false, &mut |n| {
        n.host(client).core.net().is_online(&server_key)
    });
    assert!(online, "no handshake after the forged response");
}

//! Tunnels on a path narrower than the hosts' own links: a router hop whose
//! next link carries 1280-byte packets (IPv6's minimum), with the routers'
//! ICMP "fragmentation needed" passing and with it dropped, and a path of
//! 1420 (a WireGuard tunnel's). The handshake's packets are small; the
//! data's must fit too, found by probing (doc/protocol.md, path MTU).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use common::netns::{can_run, within, NatKind, World, HOST_A_IP};
use common::traffic::{exchange, first_byte_after, pattern_hash, send_pattern, Target};
use common::{
    start_world_bootstrap, start_world_server, status_json, tunnel_line, write_config, Node, WAIT,
};

const MIB: usize = 1024 * 1024;
/// IPv4 and UDP headers.
const HEADERS: usize = 28;

/// A server on host A (public) and a client on host B (behind a NAT)
/// with a tunnel to `target`.
struct Pair {
    _server: Node,
    client: Node,
    client_config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn start(world: &World, target: SocketAddr) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let server_config = write_config(dir.path(), "server", "listen = 0.0.0.0:0\n");
        let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
        let port = server.udp_addr().port();
        let client_config = write_config(
            dir.path(),
            "client",
            &format!(
                "listen = 0.0.0.0:0\n[peers]\n{} = {HOST_A_IP}:{port}\n[client]\n{}",
                server.id,
                tunnel_line("t0", target, &server.id)
            ),
        );
        let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
        Pair {
            _server: server,
            client,
            client_config,
            _dir: dir,
        }
    }
}

/// The link before host A narrowed to `mtu`; 8 MiB each way. Returns the
/// path MTU the client found and how long its first byte took.
fn transfer(mtu: u32, icmp: bool) -> (usize, Duration) {
    let world = World::new(NatKind::None, NatKind::Cone);
    if mtu < 1500 {
        world.narrow_link_a(mtu, icmp);
    }
    let target = within(&world.host_a, || Target::start(11, 8 * MIB));
    let started = Instant::now();
    let pair = Pair::start(&world, target.addr);
    let (client, client_config) = (&pair.client, &pair.client_config);
    let tunnel = client.tunnel_addr();
    let first = within(&world.host_b, move || first_byte_after(tunnel, started));
    let (received, hash) = within(&world.host_b, move || exchange(tunnel, 12, 8 * MIB));
    assert_eq!(received, 8 * MIB, "mtu {mtu}, icmp {icmp}");
    assert_eq!(hash, pattern_hash(11, 8 * MIB), "mtu {mtu}, icmp {icmp}");
    // The first connection (first byte only) ends with nothing sent.
    let mut seen = target.next_seen(WAIT);
    while seen.received == 0 {
        seen = target.next_seen(WAIT);
    }
    assert_eq!(seen.received, 8 * MIB);
    assert_eq!(seen.hash, pattern_hash(12, 8 * MIB));
    // The search runs beside the transfer; give it its 5 s from the start.
    let fits = mtu as usize - HEADERS;
    let deadline = started + SEARCH_WITHIN;
    let mut found = path_mtu(&world.host_b, client_config);
    while fits - found.min(fits) > PRECISION && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        found = path_mtu(&world.host_b, client_config);
    }
    drop(pair);
    (found, first)
}

const SEARCH_WITHIN: Duration = Duration::from_secs(5);
/// How close to the largest size that fits the search must come.
const PRECISION: usize = 40;

fn path_mtu(ns: &str, config: &std::path::Path) -> usize {
    let status = status_json(Some(ns), config);
    status["friends"][0]["path_mtu"].as_u64().unwrap() as usize
}

fn check(mtu: u32, icmp: bool) {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let (found, first) = transfer(mtu, icmp);
    let fits = mtu as usize - HEADERS;
    println!("next-hop MTU {mtu}, ICMP {icmp}: path MTU found {found} (largest that fits {fits}), first byte after {first:?}");
    assert!(
        found <= fits && fits - found <= PRECISION,
        "found {found} where {fits} fits"
    );
    assert!(first < Duration::from_secs(2), "first byte after {first:?}");
}

#[test]
fn a_1280_path_with_icmp() {
    check(1280, true);
}

#[test]
fn a_1280_path_without_icmp() {
    check(1280, false);
}

#[test]
fn a_1420_path() {
    check(1420, false);
}

/// Sends `upload` bytes of pattern 14 while reading the reply; after
/// `narrow_at` bytes have come back it asks for the path to be narrowed
/// and waits until it is, then measures the longest wait for the next
/// bytes. Returns the bytes that came back, their hash and that longest
/// wait.
fn exchange_across_a_change(
    upload: usize,
    tunnel: SocketAddr,
    narrow_at: usize,
    narrow: mpsc::Sender<()>,
    narrowed: mpsc::Receiver<()>,
) -> (usize, [u8; 32], Duration) {
    let mut stream = TcpStream::connect(tunnel).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || send_pattern(&mut writer, 14, upload));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut total, mut longest) = (0, Duration::ZERO);
    let mut last_read: Option<Instant> = None;
    loop {
        let n = stream.read(&mut buf).expect("reading the download");
        if let Some(at) = last_read {
            longest = longest.max(at.elapsed());
        }
        if n == 0 {
            sender.join().unwrap().expect("sending through the tunnel");
            return (total, hasher.finalize().into(), longest);
        }
        hasher.update(&buf[..n]);
        total += n;
        if total >= narrow_at && last_read.is_none() {
            narrow.send(()).unwrap();
            narrowed.recv().unwrap();
            last_read = Some(Instant::now());
        } else if last_read.is_some() {
            last_read = Some(Instant::now());
        }
    }
}

/// The next hop's MTU drops from 1500 to 1280 (ICMP dropped) in the middle
/// of a 64 MiB transfer each way: the sizes found above 1280 stop passing,
/// while each side's small packets (acknowledgements, probes) still do, so
/// only the confirmation probes notice; the transfer goes on at the base
/// size.
#[test]
fn the_path_shrinking_mid_transfer_stalls_it_briefly() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let len = 64 * MIB;
    let world = World::new(NatKind::None, NatKind::Cone);
    let target = within(&world.host_a, move || Target::start(13, len));
    let pair = Pair::start(&world, target.addr);
    let tunnel = pair.client.tunnel_addr();
    let (narrow, narrow_asked) = mpsc::channel();
    let (narrowed, narrow_done) = mpsc::channel();
    let reader = std::thread::spawn({
        let ns = world.host_b.clone();
        move || {
            within(&ns, move || {
                exchange_across_a_change(len, tunnel, 8 * MIB, narrow, narrow_done)
            })
        }
    });
    narrow_asked
        .recv_timeout(WAIT)
        .expect("the download started");
    world.narrow_link_a(1280, false);
    narrowed.send(()).unwrap();
    let (received, hash, longest) = reader.join().unwrap();
    println!("64 MiB each way across a 1500 to 1280 change: longest stall {longest:?}");
    assert_eq!(received, len);
    assert_eq!(hash, pattern_hash(13, len));
    assert!(longest <= Duration::from_secs(5), "stalled {longest:?}");
    let seen = target.next_seen(WAIT);
    assert_eq!(seen.received, len);
    assert_eq!(seen.hash, pattern_hash(14, len));
}

/// A relayed path (port-randomising NAT against a filtering one) through a
/// bootstrap node whose link carries 1280-byte packets, ICMP dropped: the
/// relay's framing is counted and the search runs on the relayed route.
#[test]
fn a_relayed_path_through_a_1280_bootstrap_link() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let world = World::new(NatKind::Random, NatKind::Cone);
    world.narrow_bootstrap_link(1280, false);
    let dir = tempfile::tempdir().unwrap();
    let base = "listen = 0.0.0.0:0\nkeepalive = 1s\n";
    let (bootstrap, entry) = start_world_bootstrap(&world, dir.path());
    let target = within(&world.host_a, || Target::start(21, 8 * MIB));
    let server = start_world_server(&world, dir.path(), &format!("{base}{entry}"));
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{base}{entry}[client]\n{}",
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let started = Instant::now();
    let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let (received, hash) = within(&world.host_b, move || exchange(tunnel, 22, 8 * MIB));
    assert_eq!(received, 8 * MIB);
    assert_eq!(hash, pattern_hash(21, 8 * MIB));
    let seen = target.next_seen(WAIT);
    assert_eq!(seen.received, 8 * MIB);
    assert_eq!(seen.hash, pattern_hash(22, 8 * MIB));
    let status = status_json(Some(&world.host_b), &client_config);
    assert_eq!(status["friends"][0]["path"], "relayed");
    let fits = 1280 - HEADERS;
    let deadline = started + SEARCH_WITHIN;
    let mut found = path_mtu(&world.host_b, &client_config);
    while fits - found.min(fits) > PRECISION && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        found = path_mtu(&world.host_b, &client_config);
    }
    println!("relayed through a 1280 link: path MTU found {found} (largest that fits {fits}), {:?} for 8 MiB each way", started.elapsed());
    assert!(
        found <= fits && fits - found <= PRECISION,
        "found {found} where {fits} fits"
    );
    drop((client, server, bootstrap));
}

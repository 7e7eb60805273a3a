//! The path fails under a live transfer, on namespaces with a router hop
//! and the client behind a NAT, with every timer at its default: 20 s in
//! which the router forwards nothing, and the client's NAT mapping
//! changing (a new public port). The tunnelled TCP connection survives and
//! every byte arrives once and in order.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::netns::{can_run, within, NatKind, World, HOST_A_IP};
use common::traffic::{pattern_hash, Target};
use common::{status_json, tunnel_line, write_config, Node, WAIT};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
const LEN: usize = 64 * MIB;
const FAULT_AT: usize = 8 * MIB;
const BLACKOUT: Duration = Duration::from_secs(20);

struct Setup {
    world: World,
    server: Node,
    server_config: std::path::PathBuf,
    client: Node,
    target: Target,
    _dir: tempfile::TempDir,
}

/// A server with a public address and a client behind a cone NAT, on
/// default timers, with a tunnel to a target that sends `LEN` bytes.
fn setup() -> Setup {
    let world = World::new(NatKind::None, NatKind::Cone);
    let dir = tempfile::tempdir().unwrap();
    let target = within(&world.host_a, || Target::start(5, LEN));
    let server_config = write_config(dir.path(), "server", "listen = 0.0.0.0:0\n");
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    let port = server.udp_addr().port();
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "listen = 0.0.0.0:0\n[peers]\n{} = {HOST_A_IP}:{port}\n[client]\n{}",
            server.id,
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
    Setup {
        world,
        server,
        server_config,
        client,
        target,
        _dir: dir,
    }
}

/// Reads the whole reply through the tunnel, running `fault` once the
/// first `FAULT_AT` bytes are in; returns the count, the hash and how long
/// the read after the fault took.
fn download_through(
    ns: &str,
    tunnel: SocketAddr,
    fault: impl FnOnce() + Send + 'static,
) -> (usize, [u8; 32], Duration) {
    within(ns, move || {
        let mut stream = TcpStream::connect(tunnel).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        let mut fault = Some(fault);
        let mut after = Instant::now();
        loop {
            let n = stream
                .read(&mut buf)
                .expect("the tunnelled connection broke");
            if n == 0 {
                return (total, hasher.finalize().into(), after.elapsed());
            }
            hasher.update(&buf[..n]);
            total += n;
            if total >= FAULT_AT {
                if let Some(fault) = fault.take() {
                    fault();
                    after = Instant::now();
                }
            }
        }
    })
}

#[test]
fn a_20_second_blackout_mid_transfer_loses_nothing() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = setup();
    let tunnel = s.client.tunnel_addr();
    let world = std::sync::Arc::new(s.world);
    let dark = world.clone();
    let (received, hash, after) = download_through(&world.host_b, tunnel, move || {
        dark.blackout(true);
        std::thread::sleep(BLACKOUT);
        dark.blackout(false);
    });
    assert_eq!(received, LEN);
    assert_eq!(hash, pattern_hash(5, LEN));
    assert_eq!(s.target.next_seen(WAIT).received, 0);
    s.client
        .wait_for(&["tunnel closed", "both sides finished"], WAIT);
    println!(
        "20 s blackout at {} MiB of {}: the rest arrived {:.1} s after the path came back",
        FAULT_AT / MIB,
        LEN / MIB,
        after.as_secs_f64()
    );
    drop((s.client, s.server));
}

#[test]
fn a_new_nat_mapping_mid_transfer_loses_nothing() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = setup();
    let tunnel = s.client.tunnel_addr();
    let world = std::sync::Arc::new(s.world);
    let nat = world.clone();
    let (received, hash, after) = download_through(&world.host_b, tunnel, move || nat.rebind_b());
    assert_eq!(received, LEN);
    assert_eq!(hash, pattern_hash(5, LEN));
    s.client
        .wait_for(&["tunnel closed", "both sides finished"], WAIT);
    let status = status_json(Some(&world.host_a), &s.server_config);
    let address = status["friends"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        (20000..=20999).contains(&port),
        "the server still shows the client at {address}"
    );
    println!(
        "NAT rebinding at {} MiB of {}: the rest took {:.1} s; the server now sees the client at {address}",
        FAULT_AT / MIB,
        LEN / MIB,
        after.as_secs_f64()
    );
    drop((s.client, s.server));
}

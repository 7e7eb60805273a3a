//! A server that remembers 100,000 offline friends must tunnel as fast as
//! one that knows only its client: nothing it does per loop turn may walk
//! every friend. Round trips and bulk upload, both ways of populating,
//! through the real binary on loopback. The target: within 20%.
//! Run: cargo bench --bench many_friends

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use toxtun::proto::identity::Identity;

use common::traffic::{drain, echo_server, send_pattern, Target};
use common::{tunnel_lines, write_config, Node};

const MIB: usize = 1024 * 1024;
const REMEMBERED: usize = 100_000;
/// How far the node with many friends may fall behind, either measure.
const TOLERANCE: f64 = 0.20;

struct Measured {
    rtt_p50: Duration,
    upload_mb_s: f64,
}

fn measure(remembered: usize) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(remembered as u64);
    let keys: String = (0..remembered)
        .map(|_| format!("{}\n", Identity::generate_from(&mut rng).id().key))
        .collect();
    std::fs::write(dir.path().join("server.key.friends"), keys).unwrap();
    let server_config = write_config(
        dir.path(),
        "server",
        "listen = 127.0.0.1:0\n[server]\nmax_friends = 200000\n",
    );
    let server = Node::start("server", &server_config, "server");
    let sink = Target::start(2, 0);
    let echo = echo_server();
    let lines = tunnel_lines(&[sink.addr, echo], &server.id);
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "listen = 127.0.0.1:0\n[peers]\n{} = {}\n[client]\n{lines}",
            server.id,
            server.udp_addr()
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let rtt_p50 = round_trip_p50(client.named_tunnel_addr("t1"), 2000);
    let upload_mb_s = upload(client.named_tunnel_addr("t0"), 256 * MIB);
    Measured {
        rtt_p50,
        upload_mb_s,
    }
}

fn upload(tunnel: SocketAddr, len: usize) -> f64 {
    let start = Instant::now();
    let mut stream = TcpStream::connect(tunnel).unwrap();
    send_pattern(&mut stream, 1, len).unwrap();
    let (n, _) = drain(&mut stream).unwrap();
    assert_eq!(n, 0);
    len as f64 / MIB as f64 / start.elapsed().as_secs_f64()
}

fn round_trip_p50(tunnel: SocketAddr, count: usize) -> Duration {
    let mut stream = TcpStream::connect(tunnel).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut samples = Vec::with_capacity(count);
    let mut buf = [0u8; 64];
    for i in 0..count + 10 {
        let start = Instant::now();
        stream.write_all(&[i as u8; 64]).unwrap();
        stream.read_exact(&mut buf).unwrap();
        if i >= 10 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    samples[count / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let one = measure(0);
    let many = measure(REMEMBERED);
    println!("| remembered friends | RTT p50 | upload MB/s |");
    println!("|---|---|---|");
    for (count, m) in [(0, &one), (REMEMBERED, &many)] {
        println!(
            "| {count} | {:.0} us | {:.0} |",
            m.rtt_p50.as_secs_f64() * 1e6,
            m.upload_mb_s
        );
    }
    let rtt_ratio = many.rtt_p50.as_secs_f64() / one.rtt_p50.as_secs_f64();
    let upload_ratio = many.upload_mb_s / one.upload_mb_s;
    println!(
        "round trip x{rtt_ratio:.2}, upload x{upload_ratio:.2} (target: within {:.0}% of one friend)",
        TOLERANCE * 100.0
    );
    assert!(
        rtt_ratio <= 1.0 + TOLERANCE && upload_ratio >= 1.0 - TOLERANCE,
        "100,000 remembered friends cost more than {:.0}%",
        TOLERANCE * 100.0
    );
}

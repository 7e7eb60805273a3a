//! Compares the KCP modes through the real binary on loopback: bulk
//! throughput each way, 64-byte round trips, and bulk under 5% loss.
//! Run: cargo bench --bench kcp_modes

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::lossy_relay::LossyRelay;
use common::traffic::{drain, echo_server, send_pattern, Target};
use common::{tunnel_lines, write_config, Node};

const MIB: usize = 1024 * 1024;

struct Setup {
    _server: Node,
    _client: Node,
    _dir: tempfile::TempDir,
    tunnels: Vec<SocketAddr>,
}

fn setup(mode: &str, targets: &[SocketAddr], loss: Option<u64>) -> (Setup, Option<LossyRelay>) {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("listen = 127.0.0.1:0\n[kcp]\nmode = {mode}\n");
    let server_config = write_config(dir.path(), "server", &base);
    let server = Node::start("server", &server_config, "server");
    let relay = loss.map(|percent| LossyRelay::start(server.udp_addr(), percent, 7));
    let path = relay
        .as_ref()
        .map(|r| r.addr)
        .unwrap_or_else(|| server.udp_addr());
    let lines = tunnel_lines(targets, &server.id);
    let client_config = write_config(
        dir.path(),
        "client",
        &format!("{base}[peers]\n{} = {path}\n[client]\n{lines}", server.id),
    );
    let client = Node::start("client", &client_config, "client");
    let tunnels = (0..targets.len())
        .map(|i| client.named_tunnel_addr(&format!("t{i}")))
        .collect();
    (
        Setup {
            _server: server,
            _client: client,
            _dir: dir,
            tunnels,
        },
        relay,
    )
}

fn upload_mb_s(tunnel: SocketAddr, len: usize) -> f64 {
    let start = Instant::now();
    let mut stream = TcpStream::connect(tunnel).unwrap();
    send_pattern(&mut stream, 1, len).unwrap();
    let (n, _) = drain(&mut stream).unwrap();
    assert_eq!(n, 0);
    len as f64 / MIB as f64 / start.elapsed().as_secs_f64()
}

fn download_mb_s(tunnel: SocketAddr, len: usize) -> f64 {
    let start = Instant::now();
    let mut stream = TcpStream::connect(tunnel).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (n, _) = drain(&mut stream).unwrap();
    assert_eq!(n, len);
    len as f64 / MIB as f64 / start.elapsed().as_secs_f64()
}

fn round_trips(tunnel: SocketAddr, count: usize) -> (Duration, Duration) {
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
    (samples[count / 2], samples[count * 99 / 100])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| mode | upload MB/s | download MB/s | RTT p50 | RTT p99 | 5% loss download MB/s |");
    println!("|---|---|---|---|---|---|");
    for mode in ["normal", "fast", "fast2", "fast3"] {
        let sink = Target::start(2, 0);
        let source = Target::start(3, 64 * MIB);
        let echo = echo_server();
        let (s, _) = setup(mode, &[sink.addr, source.addr, echo], None);
        let up = upload_mb_s(s.tunnels[0], 64 * MIB);
        let down = download_mb_s(s.tunnels[1], 64 * MIB);
        let (p50, p99) = round_trips(s.tunnels[2], 1000);
        drop(s);
        let lossy_source = Target::start(4, 16 * MIB);
        let (l, _relay) = setup(mode, &[lossy_source.addr], Some(5));
        let lossy = download_mb_s(l.tunnels[0], 16 * MIB);
        println!(
            "| {mode} | {up:.1} | {down:.1} | {:.0} us | {:.0} us | {lossy:.1} |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
}

//! UDP tunnels: datagrams travel as datagrams, one flow per local source,
//! each answer back to its own source; those larger than one packet are
//! split and put back together, those larger than a tunnel carries are
//! dropped and counted; the server's allow applies; and a real DNS client
//! (dig) gets its answer from a real DNS server (dnsmasq) through one.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{status_json, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";
const PER_SOURCE: u32 = 10_000;
/// Datagrams a second from each source.
const RATE: u64 = 4000;

/// Answers every datagram to whoever sent it.
fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

/// Datagram `seq` of source `source`: alternately 1400 and 1500 bytes,
/// every byte following from the two, so a cut or mixed one shows.
fn datagram(source: u8, seq: u32) -> Vec<u8> {
    let len = if seq.is_multiple_of(2) { 1400 } else { 1500 };
    let mut bytes = vec![source];
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend((5..len).map(|i| (i as u32 ^ seq ^ u32::from(source)) as u8));
    bytes
}

fn start_pair(dir: &std::path::Path, server_extra: &str, tunnels: &str) -> (Node, Node) {
    let server_config = write_config(dir, "server", &format!("{FAST}{server_extra}"));
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir,
        "client",
        &format!(
            "{FAST}[peers]\n{id} = {addr}\n[client]\n{lines}",
            id = server.id,
            addr = server.udp_addr(),
            lines = tunnels.replace("ID", &server.id),
        ),
    );
    let client = Node::start("client", &client_config, "client");
    (server, client)
}

/// Sends `PER_SOURCE` paced datagrams from a socket of its own and counts
/// those that come back intact and its own.
fn run_source(source: u8, tunnel: SocketAddr) -> u32 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(tunnel).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let receiver = socket.try_clone().unwrap();
    let (done_sending, sent) = mpsc::channel();
    let counter = std::thread::spawn(move || {
        let mut seen = vec![false; PER_SOURCE as usize];
        let mut buf = vec![0u8; 65536];
        let mut quiet_since = None;
        let mut returned = 0;
        loop {
            match receiver.recv(&mut buf) {
                Ok(n) => {
                    let seq = u32::from_le_bytes(buf[1..5].try_into().unwrap());
                    assert_eq!(buf[0], source, "a datagram of another source");
                    assert_eq!(&buf[..n], datagram(source, seq), "datagram {seq} changed");
                    if !std::mem::replace(&mut seen[seq as usize], true) {
                        returned += 1;
                    }
                    if returned == PER_SOURCE {
                        return returned;
                    }
                }
                Err(_) => {
                    // Once everything is sent, a second with nothing
                    // arriving means the rest is lost.
                    if sent.try_recv().is_ok() || quiet_since.is_some() {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(1) {
                            return returned;
                        }
                    }
                }
            }
        }
    });
    let start = Instant::now();
    for seq in 0..PER_SOURCE {
        let due = start + Duration::from_micros(u64::from(seq) * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        socket.send(&datagram(source, seq)).unwrap();
    }
    done_sending.send(()).unwrap();
    counter.join().unwrap()
}

#[test]
fn two_sources_each_get_their_own_datagrams_back() {
    let dir = tempfile::tempdir().unwrap();
    let echo = udp_echo();
    let (_server, client) = start_pair(
        dir.path(),
        "",
        &format!("echo = udp:127.0.0.1:0:{echo}:ID\n"),
    );
    let tunnel = client.named_tunnel_addr("echo");
    // A first datagram opens the tunnel; the pacing starts after it.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(WAIT)).unwrap();
    probe.send_to(b"hello", tunnel).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = probe.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");

    let sources: Vec<_> = (1..=2u8)
        .map(|source| std::thread::spawn(move || run_source(source, tunnel)))
        .collect();
    for (source, handle) in (1..=2).zip(sources) {
        let returned = handle.join().unwrap();
        eprintln!("source {source}: {returned} of {PER_SOURCE} returned");
        assert!(
            returned * 1000 >= PER_SOURCE * 999,
            "source {source}: only {returned} of {PER_SOURCE} returned"
        );
    }
    // One flow per source (the probe's, and the two senders'), each with
    // its own socket on the server.
    assert_eq!(client.count(&["tunnel open", "transport=udp"]), 3);
}

#[test]
fn oversized_datagrams_are_dropped_and_counted_and_allow_applies() {
    let dir = tempfile::tempdir().unwrap();
    let echo = udp_echo();
    let (server, client) = start_pair(
        dir.path(),
        &format!("[server]\nallow = {echo}\n"),
        &format!("echo = udp:127.0.0.1:0:{echo}:ID\nrefused = udp:127.0.0.1:0:127.0.0.1:9:ID\n"),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let tunnel = client.named_tunnel_addr("echo");
    let largest = vec![7u8; 8192];
    socket.send_to(&largest, tunnel).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &largest[..], "the largest datagram carried");
    socket.send_to(&vec![8u8; 8193], tunnel).unwrap();
    socket.send_to(b"after", tunnel).unwrap();
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after", "the oversized one was not dropped");
    client.wait_for(
        &["dropped a datagram larger than a UDP tunnel carries"],
        WAIT,
    );
    let status = status_json(None, &dir.path().join("client.ini"));
    assert_eq!(status["datagrams_dropped"]["too_large"], 1, "{status}");

    socket
        .send_to(b"not allowed", client.named_tunnel_addr("refused"))
        .unwrap();
    server.wait_for(
        &["refused tunnel", "127.0.0.1:9 is not in the allow list"],
        WAIT,
    );
    client.wait_for(&["127.0.0.1:9 is not in the allow list"], WAIT);
}

/// dnsmasq on a free port, answering one name from its own table.
struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(program: &str, version_flag: &str) -> bool {
    if Command::new(program).arg(version_flag).output().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "{program} missing under CI");
    eprintln!("skipped: {program} not installed");
    false
}

fn dig(server: SocketAddr) -> std::process::Output {
    Command::new("dig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            "+short",
            "+time=2",
            "+tries=1",
            "tunnel.test",
        ])
        .output()
        .unwrap()
}

/// A port free for both UDP and TCP (dnsmasq takes both).
fn free_dns_port() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

fn start_dnsmasq() -> (Dnsmasq, SocketAddr) {
    let mut failures = Vec::new();
    // Another test may take the port between our check and dnsmasq's
    // bind: then dnsmasq exits, and a new port is tried.
    for _ in 0..5 {
        let addr = free_dns_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file=",
                &format!("--port={}", addr.port()),
                "--address=/tunnel.test/192.0.2.53",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut dnsmasq = Dnsmasq(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if String::from_utf8_lossy(&dig(addr).stdout).trim() == "192.0.2.53" {
                return (dnsmasq, addr);
            }
            if let Some(status) = dnsmasq.0.try_wait().unwrap() {
                let mut text = String::new();
                let _ =
                    std::io::Read::read_to_string(dnsmasq.0.stderr.as_mut().unwrap(), &mut text);
                failures.push(format!("{addr}: {status}: {text}"));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not answer on {addr}"
            );
        }
    }
    panic!("dnsmasq did not start: {failures:?}");
}

#[test]
fn dig_gets_its_answer_from_dnsmasq_through_a_udp_tunnel() {
    if !have("dig", "-v") || !have("dnsmasq", "--version") {
        return;
    }
    let (_dnsmasq, dns) = start_dnsmasq();
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) =
        start_pair(dir.path(), "", &format!("dns = udp:127.0.0.1:0:{dns}:ID\n"));
    let out = dig(client.named_tunnel_addr("dns"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.0.2.53");
}

#[test]
fn an_idle_flow_closes_on_both_sides_and_its_source_opens_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let echo = udp_echo();
    let idle = "[tunnel]\nudp_idle_timeout = 400ms\n";
    let (server, client) = start_pair(
        dir.path(),
        idle,
        &format!("echo = udp:127.0.0.1:0:{echo}:ID\n{idle}"),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.connect(client.named_tunnel_addr("echo")).unwrap();
    let mut buf = [0u8; 16];
    for round in 1..=2 {
        socket.send(b"ping").unwrap();
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        for node in [&client, &server] {
            node.wait_for_count(&["tunnel closed", "no datagram for 400ms"], round, WAIT);
        }
    }
    assert_eq!(client.count(&["tunnel open", "transport=udp"]), 2);
}

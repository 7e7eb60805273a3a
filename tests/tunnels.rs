//! Tunnels end to end: the real binary on loopback, data hashed both ways.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::traffic::{exchange, pattern_hash, Seen, Target};
use common::{tunnel_line, tunnel_lines, write_config, Node, NO_LAN, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

struct Pair {
    server: Node,
    client: Node,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// A server allowing loopback and a client with one line per target.
    fn start(targets: &[SocketAddr], server_extra: &str, client_extra: &str) -> Pair {
        Self::start_with(targets, FAST, server_extra, client_extra)
    }

    /// Like `start`, with `node` in place of the fast timers in [node].
    fn start_with(
        targets: &[SocketAddr],
        node: &str,
        server_extra: &str,
        client_extra: &str,
    ) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let server_config = write_config(dir.path(), "server", &format!("{node}{server_extra}"));
        let server = Node::start("server", &server_config, "server");
        let client_config = client_config(
            dir.path(),
            &server,
            targets,
            &format!("{node}{client_extra}"),
        );
        let client = Node::start("client", &client_config, "client");
        Pair {
            server,
            client,
            _dir: dir,
        }
    }

    fn tunnel(&self, name: &str) -> SocketAddr {
        self.client.named_tunnel_addr(name)
    }
}

fn client_config(
    dir: &Path,
    server: &Node,
    targets: &[SocketAddr],
    extra: &str,
) -> std::path::PathBuf {
    let lines = tunnel_lines(targets, &server.id);
    write_config(
        dir,
        "client",
        &format!(
            "{extra}\n[peers]\n{} = {}\n[client]\n{lines}",
            server.id,
            server.udp_addr()
        ),
    )
}

const MIB: usize = 1024 * 1024;

#[test]
fn one_connection_carries_a_mebibyte_each_way() {
    let target = Target::start(2, MIB);
    let pair = Pair::start(&[target.addr], "", "");
    let (received, hash) = exchange(pair.tunnel("t0"), 1, MIB);
    assert_eq!((received, hash), (MIB, pattern_hash(2, MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: MIB,
            hash: pattern_hash(1, MIB)
        }
    );
    // One line each side at the end, with what it carried each way.
    let bytes = format!("bytes_in={MIB} bytes_out={MIB}");
    for node in [&pair.client, &pair.server] {
        let line = node.wait_for(&["tunnel closed", "both sides finished"], WAIT);
        assert!(
            line.contains(&bytes) && line.contains(&format!("target={}", target.addr)),
            "{line}"
        );
    }
}

#[test]
fn three_tunnel_lines_carry_traffic_at_once() {
    let targets: Vec<Target> = (0..3).map(|i| Target::start(10 + i, 2 * MIB)).collect();
    let addrs: Vec<SocketAddr> = targets.iter().map(|t| t.addr).collect();
    let pair = Pair::start(&addrs, "", "");
    let tunnels: Vec<SocketAddr> = (0..3).map(|i| pair.tunnel(&format!("t{i}"))).collect();
    let runs: Vec<_> = tunnels
        .into_iter()
        .enumerate()
        .map(|(i, tunnel)| std::thread::spawn(move || exchange(tunnel, 20 + i as u64, 2 * MIB)))
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        assert_eq!(
            run.join().unwrap(),
            (2 * MIB, pattern_hash(10 + i as u64, 2 * MIB)),
            "tunnel t{i}"
        );
        let seen = targets[i].next_seen(WAIT);
        assert_eq!(
            seen,
            Seen {
                received: 2 * MIB,
                hash: pattern_hash(20 + i as u64, 2 * MIB)
            },
            "target {i}"
        );
    }
}

#[test]
fn sixty_four_mebibytes_each_way_through_one_connection() {
    let target = Target::start(3, 64 * MIB);
    let pair = Pair::start(&[target.addr], "", "");
    let (received, hash) = exchange(pair.tunnel("t0"), 4, 64 * MIB);
    assert_eq!(received, 64 * MIB);
    assert_eq!(hash, pattern_hash(3, 64 * MIB));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: 64 * MIB,
            hash: pattern_hash(4, 64 * MIB)
        }
    );
}

#[test]
fn hundred_concurrent_connections_of_a_mebibyte_each_way() {
    let target = Target::start(5, MIB);
    let pair = Pair::start(&[target.addr], "", "");
    let tunnel = pair.tunnel("t0");
    let runs: Vec<_> = (0..100u64)
        .map(|i| std::thread::spawn(move || exchange(tunnel, 100 + i, MIB)))
        .collect();
    for run in runs {
        assert_eq!(run.join().unwrap(), (MIB, pattern_hash(5, MIB)));
    }
    let mut seen: Vec<[u8; 32]> = (0..100)
        .map(|_| target.next_seen(WAIT))
        .map(|s| {
            assert_eq!(s.received, MIB);
            s.hash
        })
        .collect();
    let mut expected: Vec<[u8; 32]> = (0..100u64).map(|i| pattern_hash(100 + i, MIB)).collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn half_close_lets_the_target_answer_after_our_eof() {
    let target = Target::start_with(6, MIB, true);
    let pair = Pair::start(&[target.addr], "", "");
    // The target reads to end of file first, and only then sends 1 MiB.
    let (received, hash) = exchange(pair.tunnel("t0"), 7, 100_000);
    assert_eq!((received, hash), (MIB, pattern_hash(6, MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: 100_000,
            hash: pattern_hash(7, 100_000)
        }
    );
    pair.client
        .wait_for(&["tunnel closed", "both sides finished"], WAIT);
    pair.server
        .wait_for(&["tunnel closed", "both sides finished"], WAIT);
}

/// Connects, and measures how long until the tunnel closes the connection.
fn closed_within(tunnel: SocketAddr) -> Duration {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(tunnel).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a refused tunnel sent data");
    start.elapsed()
}

#[test]
fn target_outside_allow_is_refused_fast_with_reasons() {
    let target = Target::start(1, 1);
    let pair = Pair::start(&[target.addr], "[server]\nallow = 127.0.0.1:1\n", "");
    pair.client.wait_for(&["friend online"], WAIT);
    let took = closed_within(pair.tunnel("t0"));
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    pair.server
        .wait_for(&["refused tunnel", "not in the allow list"], WAIT);
    pair.client.wait_for(
        &[
            "tunnel closed",
            "refused by the server",
            "not in the allow list",
        ],
        WAIT,
    );
}

#[test]
fn target_that_refuses_is_reported_fast_on_both_sides() {
    // A port with nothing listening: bind, read the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pair = Pair::start(&[dead], "", "");
    pair.client.wait_for(&["friend online"], WAIT);
    let took = closed_within(pair.tunnel("t0"));
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    pair.server.wait_for(
        &["refused tunnel", "cannot connect", "target refused"],
        WAIT,
    );
    pair.client.wait_for(
        &["tunnel closed", "refused by the server", "cannot connect"],
        WAIT,
    );
}

#[test]
fn a_stranger_opens_nothing() {
    let target = Target::start(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let friend_config = write_config(dir.path(), "friend", FAST);
    let friend_id = common::id_of(&friend_config);
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[server]\nfriends = {friend_id}\n"),
    );
    let server = Node::start("server", &server_config, "server");
    let stranger_config = client_config(
        dir.path(),
        &server,
        &[target.addr],
        &format!("{FAST}[tunnel]\nopen_timeout = 1s\n"),
    );
    let stranger = Node::start("stranger", &stranger_config, "client");
    let took = closed_within(stranger.named_tunnel_addr("t0"));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    stranger.wait_for(&["tunnel closed", "unreachable"], WAIT);
    server.wait_for(&["refused handshake: not a friend"], WAIT);
    assert!(target.seen.try_recv().is_err(), "the target was reached");
    assert_eq!(server.count(&["tunnel open"]), 0);
}

#[test]
fn server_killed_mid_transfer_then_restarted() {
    let big = Target::start(8, 256 * MIB);
    let small = Target::start(9, MIB);
    let dir = tempfile::tempdir().unwrap();
    let server_config = write_config(dir.path(), "server", FAST);
    let mut server = Node::start("server", &server_config, "server");
    let server_addr = server.udp_addr();
    let client_config = client_config(dir.path(), &server, &[big.addr, small.addr], FAST);
    let client = Node::start("client", &client_config, "client");

    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(client.named_tunnel_addr("t0")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < MIB {
        got += stream.read(&mut buf).unwrap();
    }
    server.kill();
    let killed = std::time::Instant::now();
    // The local connection must end (EOF or reset), not hang.
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "closed {took:?} after the kill (friend_timeout 2s)"
    );
    client.wait_for(&["tunnel closed", "friend went offline"], WAIT);

    // Same key, same port; the client is not touched.
    std::fs::write(
        &server_config,
        format!("[node]\nkey_file = server.key\n{NO_LAN}listen = {server_addr}\nkeepalive = 300ms\nfriend_timeout = 2s\n"),
    )
    .unwrap();
    let restarted = Node::start("server2", &server_config, "server");
    assert_eq!(restarted.id, server.id);
    let (received, hash) = exchange(client.named_tunnel_addr("t1"), 10, MIB);
    assert_eq!((received, hash), (MIB, pattern_hash(9, MIB)));
    assert_eq!(
        small.next_seen(WAIT),
        Seen {
            received: MIB,
            hash: pattern_hash(10, MIB)
        }
    );
}

#[test]
fn sixteen_mebibytes_each_way_through_five_percent_loss() {
    let target = Target::start(11, 16 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let server_config = write_config(dir.path(), "server", FAST);
    let server = Node::start("server", &server_config, "server");
    let relay = common::lossy_relay::LossyRelay::start(server.udp_addr(), 5, 42);
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{} = {}\n[client]\n{}",
            server.id,
            relay.addr,
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let (received, hash) = exchange(client.named_tunnel_addr("t0"), 12, 16 * MIB);
    assert_eq!((received, hash), (16 * MIB, pattern_hash(11, 16 * MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: 16 * MIB,
            hash: pattern_hash(12, 16 * MIB)
        }
    );
    let dropped = relay.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let forwarded = relay.forwarded.load(std::sync::atomic::Ordering::Relaxed);
    let share = dropped as f64 / (dropped + forwarded) as f64;
    eprintln!(
        "lossy relay: dropped {dropped} of {} datagrams ({:.1}%)",
        dropped + forwarded,
        share * 100.0
    );
    assert!(share > 0.03, "the relay did not impair the path");
}

#[test]
fn idle_connections_do_not_wake_the_event_loop() {
    // The target reads until end of file and never sends: the connections
    // stay open and silent.
    let target = Target::start_with(1, 0, true);
    let pair = Pair::start_with(
        &[target.addr],
        "listen = 127.0.0.1:0\nkeepalive = 2s\nfriend_timeout = 10s\n",
        "",
        "",
    );
    let tunnel = pair.tunnel("t0");
    let streams: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(tunnel).unwrap())
        .collect();
    pair.client.wait_for_count(&["tunnel open"], 100, WAIT);
    pair.server.wait_for_count(&["tunnel open"], 100, WAIT);
    // Let the opening traffic settle: wait for the next keepalive exchange.
    let settled = pair.client.count(&["keepalive received"]);
    pair.client
        .wait_for_count(&["keepalive received"], settled + 1, WAIT);
    let pid = pair.client.child.id();
    let before = common::thread_wakeups(pid, "friendnet");
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let wakeups = common::thread_wakeups(pid, "friendnet") - before;
    let per_second = wakeups as f64 / window.as_secs_f64();
    eprintln!("client event loop with 100 idle tunnels: {wakeups} wake-ups in {window:?} ({per_second:.1}/s)");
    assert!(per_second < 20.0, "{per_second:.1} wake-ups a second");
    drop(streams);
}

/// Resident memory of a process now, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
fn an_idle_connection_holds_no_read_buffer() {
    // Each side's reader used to take a 16 KiB buffer at once, so an idle
    // connection cost about 18 KiB a side; without it, 9 to 13.
    const IDLE: usize = 1000;
    const BOUND_PER_CONNECTION: u64 = 15 * 1024;
    let target = Target::start_with(1, 0, true);
    let pair = Pair::start(&[target.addr], "", "");
    let tunnel = pair.tunnel("t0");
    // One connection first: what every connection shares (the runtime's
    // threads, the friend's link) is then in place before the count.
    let mut streams = vec![std::net::TcpStream::connect(tunnel).unwrap()];
    pair.server.wait_for_count(&["tunnel open"], 1, WAIT);
    let pids = [pair.server.child.id(), pair.client.child.id()];
    let before = pids.map(resident);
    streams.extend((1..IDLE).map(|_| std::net::TcpStream::connect(tunnel).unwrap()));
    pair.client.wait_for_count(&["tunnel open"], IDLE, WAIT);
    pair.server.wait_for_count(&["tunnel open"], IDLE, WAIT);
    for ((pid, before), side) in pids.into_iter().zip(before).zip(["server", "client"]) {
        let per_connection = resident(pid).saturating_sub(before) / (IDLE as u64 - 1);
        eprintln!("{side}: {per_connection} bytes resident per idle connection");
        assert!(
            per_connection < BOUND_PER_CONNECTION,
            "{side}: {per_connection} bytes per idle connection"
        );
    }
    drop(streams);
}

#[test]
fn idle_connection_is_reset_after_the_idle_timeout() {
    let target = Target::start_with(1, 0, true);
    let idle = "[tunnel]\nidle_timeout = 400ms\n";
    let pair = Pair::start(&[target.addr], idle, idle);
    let took = closed_within(pair.tunnel("t0"));
    // Checked every quarter of the timeout: closed between 1x and 1.25x,
    // plus the open itself.
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    pair.client.wait_for(&["tunnel closed", "idle for"], WAIT);
    pair.server.wait_for(&["tunnel closed", "idle for"], WAIT);
}

//! A client out of descriptors: its tunnel listener cannot accept, and it
//! must pause rather than spin (a core at 100% and megabytes of warnings
//! a second, before). The limit is lowered on the running process with
//! prlimit; without prlimit the test reports and skips, except under CI.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{id_of, tunnel_line, write_config, Node};

/// User and system time of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_listener_out_of_descriptors_pauses_instead_of_spinning() {
    if !common::has_prlimit() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A server that is never started: every tunnelled connection waits for
    // it, holding its descriptor.
    let server_id = id_of(&write_config(dir.path(), "server", ""));
    let nowhere = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "listen = 127.0.0.1:0\n[peers]\n{server_id} = {}\n[client]\n{}",
            nowhere.local_addr().unwrap(),
            tunnel_line("t0", "127.0.0.1:9".parse().unwrap(), &server_id)
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let pid = client.child.id();
    let limit = open_descriptors(pid) + 8;
    let status = Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(format!("--pid={pid}"))
        .status()
        .unwrap();
    assert!(status.success());
    let held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(tunnel).unwrap())
        .collect();
    client.wait_for(&["accept failed"], common::WAIT);
    let before = cpu_ticks(pid);
    let logged = client.count(&["accept failed"]);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu_ticks(pid) - before;
    let more_lines = client.count(&["accept failed"]) - logged;
    // 100 ticks a second: 2 s of spinning would be about 200.
    assert!(ticks < 40, "{ticks} ticks of CPU in {:?}", start.elapsed());
    assert!(more_lines <= 1, "{more_lines} more log lines in 2 s");
    println!("out of descriptors: {ticks} ticks of CPU and {more_lines} log lines in 2 s");
    drop(held);
}

/// Log lines a node wrote so far at the default level (tests run with -v).
fn log_lines(node: &Node) -> usize {
    node.log_text()
        .lines()
        .filter(|l| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|level| l.contains(level))
        })
        .count()
}

#[test]
fn a_client_at_64_descriptors_refuses_the_excess_quietly_and_serves_again() {
    if !common::has_prlimit() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let echo = common::traffic::echo_server();
    let server_config = write_config(dir.path(), "server", "listen = 127.0.0.1:0\n");
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "listen = 127.0.0.1:0\n[peers]\n{} = {}\n[client]\n{}",
            server.id,
            server.udp_addr(),
            tunnel_line("t0", echo, &server.id)
        ),
    );
    let client = Node::start_limited(64, "client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let pid = client.child.id();
    let echoed = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(common::WAIT))
            .expect("read timeout");
        stream.write_all(b"ping").is_ok() && {
            let mut reply = [0u8; 4];
            stream.read_exact(&mut reply).is_ok() && &reply == b"ping"
        }
    };
    let mut first = TcpStream::connect(tunnel).unwrap();
    assert!(echoed(&mut first), "no echo before the flood");

    let mut held: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(tunnel).unwrap())
        .collect();
    client.wait_for(&["refused tunnel", "limit reached"], common::WAIT);
    // The first connection and 30 of the 80 are tunnels: 31 is what 64
    // descriptors leave room for.
    client.wait_for_count(&["tunnel open"], 31, common::WAIT);
    // Saturated: the 80 held, and more arriving for two seconds.
    let before_ticks = cpu_ticks(pid);
    let before_lines = log_lines(&client);
    let start = Instant::now();
    let mut arrivals = 0;
    while start.elapsed() < Duration::from_secs(2) {
        if let Ok(stream) = TcpStream::connect(tunnel) {
            arrivals += 1;
            drop(stream);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let seconds = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid) - before_ticks;
    let lines = log_lines(&client) - before_lines;
    println!(
        "at 64 descriptors, 80 held and {arrivals} more arriving: {ticks} ticks of CPU and {lines} log lines in {seconds:.1} s"
    );
    // 100 ticks a second: 10% of a core is 10 a second.
    assert!(
        (ticks as f64) < 10.0 * seconds,
        "{ticks} ticks in {seconds:.1} s"
    );
    assert!(
        (lines as f64) < 10.0 * seconds,
        "{lines} log lines in {seconds:.1} s:\n{}",
        client.log_text()
    );
    assert!(
        echoed(&mut first),
        "the tunnel open before the flood stopped working"
    );

    held.clear();
    client.wait_for_count(&["tunnel closed"], 30, common::WAIT);
    let mut again = TcpStream::connect(tunnel).unwrap();
    assert!(echoed(&mut again), "no echo once the connections closed");
}

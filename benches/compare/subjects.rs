//! What is measured: direct TCP, a toxtun pair and a kcptun pair, each
//! forwarding local ports to the same targets, optionally inside a network
//! namespace or through a UDP impairment relay.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};

use crate::common::{tunnel_lines, write_config, Node, WAIT};

pub struct Subject {
    pub name: &'static str,
    /// Where to connect for each target, in the order given.
    pub entries: Vec<SocketAddr>,
    /// The processes doing the work (none for direct TCP).
    pub pids: Vec<u32>,
    /// The toxtun client, for its event-loop wake-ups.
    pub toxtun_client: Option<u32>,
    /// Processes and files that end when the subject is dropped.
    _keep: Box<dyn std::any::Any>,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How the two ends of a tunnel reach each other.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Loopback,
    /// Everything runs inside this network namespace.
    Namespace(&'a str),
    /// The client sends to a relay that forwards to the server's UDP port.
    Relay(&'a dyn Fn(SocketAddr) -> SocketAddr),
    /// The server in one namespace, reached at `server_ip`; the client in
    /// another.
    Split {
        server_ns: &'a str,
        server_ip: &'a str,
        client_ns: &'a str,
    },
}

impl Path<'_> {
    fn server_ns(&self) -> Option<&str> {
        match self {
            Path::Namespace(ns) | Path::Split { server_ns: ns, .. } => Some(ns),
            _ => None,
        }
    }

    fn client_ns(&self) -> Option<&str> {
        match self {
            Path::Namespace(ns) | Path::Split { client_ns: ns, .. } => Some(ns),
            _ => None,
        }
    }

    /// The address the server listens on, given a port.
    fn server_listen(&self, port: u16) -> SocketAddr {
        let ip = match self {
            Path::Split { .. } => [0, 0, 0, 0],
            _ => [127, 0, 0, 1],
        };
        SocketAddr::from((ip, port))
    }

    /// Where the client sends to reach the server's `udp` address.
    fn reach(&self, udp: SocketAddr) -> SocketAddr {
        match self {
            Path::Relay(relay) => relay(udp),
            Path::Split { server_ip, .. } => {
                SocketAddr::new(server_ip.parse().unwrap(), udp.port())
            }
            _ => udp,
        }
    }
}

pub fn direct(targets: &[SocketAddr]) -> Subject {
    Subject {
        name: "direct TCP",
        entries: targets.to_vec(),
        pids: Vec::new(),
        toxtun_client: None,
        _keep: Box::new(()),
    }
}

pub fn toxtun(targets: &[SocketAddr], path: Path) -> Subject {
    toxtun_with(targets, path, "")
}

/// Like `toxtun`, with `sections` (`[kcp]` settings) in both configs.
pub fn toxtun_with(targets: &[SocketAddr], path: Path, sections: &str) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("listen = {}\n{sections}", path.server_listen(0));
    let server_config = write_config(dir.path(), "server", &base);
    let server = Node::start_in(path.server_ns(), "server", &server_config, "server");
    let reach = path.reach(server.udp_addr());
    let lines = tunnel_lines(targets, &server.id);
    let client_config = write_config(
        dir.path(),
        "client",
        &format!("{base}[peers]\n{} = {reach}\n[client]\n{lines}", server.id),
    );
    let client = Node::start_in(path.client_ns(), "client", &client_config, "client");
    let entries = (0..targets.len())
        .map(|i| client.named_tunnel_addr(&format!("t{i}")))
        .collect();
    let pids = vec![server.child.id(), client.child.id()];
    Subject {
        name: "toxtun",
        entries,
        toxtun_client: Some(client.child.id()),
        pids,
        _keep: Box::new((server, client, dir)),
    }
}

/// A port that was free a moment ago: kcptun takes ports, not port 0.
fn free_port(ns: Option<&str>) -> u16 {
    let probe = || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind(listener.local_addr().unwrap()).ok();
        let port = listener.local_addr().unwrap().port();
        drop((listener, udp));
        port
    };
    match ns {
        Some(ns) => crate::common::netns::within(ns, probe),
        None => probe(),
    }
}

fn spawn_in(ns: Option<&str>, program: &str, args: &[String]) -> Child {
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (apt-get install kcptun): {e}"))
}

/// kcptun's fastest settings: fast3, windows 2048, no FEC, no compression,
/// no encryption. One server/client pair per target (kcptun forwards to
/// one target).
pub fn kcptun(targets: &[SocketAddr], path: Path) -> Subject {
    let fast = [
        "--mode",
        "fast3",
        "--sndwnd",
        "2048",
        "--rcvwnd",
        "2048",
        "--datashard",
        "0",
        "--parityshard",
        "0",
        "--nocomp",
        "--crypt",
        "none",
        "--quiet",
    ]
    .map(String::from);
    let mut children = Vec::new();
    let mut entries = Vec::new();
    for target in targets {
        let server_udp = path.server_listen(free_port(path.server_ns()));
        let mut args = vec![
            "-l".into(),
            server_udp.to_string(),
            "-t".into(),
            target.to_string(),
        ];
        args.extend(fast.iter().cloned());
        children.push(KillOnDrop(spawn_in(
            path.server_ns(),
            "kcptun-server",
            &args,
        )));
        let reach = path.reach(SocketAddr::from(([127, 0, 0, 1], server_udp.port())));
        let local = SocketAddr::from(([127, 0, 0, 1], free_port(path.client_ns())));
        let mut args = vec![
            "-l".into(),
            local.to_string(),
            "-r".into(),
            reach.to_string(),
        ];
        args.extend(fast.iter().cloned());
        children.push(KillOnDrop(spawn_in(
            path.client_ns(),
            "kcptun-client",
            &args,
        )));
        entries.push(local);
    }
    for entry in &entries {
        wait_listening(path.client_ns(), *entry);
    }
    Subject {
        name: "kcptun",
        entries,
        pids: children.iter().map(|c| c.0.id()).collect(),
        toxtun_client: None,
        _keep: Box::new(children),
    }
}

/// kcptun prints nothing we can wait on: poll its port until it accepts.
fn wait_listening(ns: Option<&str>, addr: SocketAddr) {
    let check = move || {
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "kcptun never listened on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    match ns {
        Some(ns) => crate::common::netns::within(ns, check),
        None => check(),
    }
}

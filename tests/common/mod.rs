//! Runs the real toxtun binary and watches its log.
#![allow(dead_code)]

pub mod by_id;
pub mod delay_line;
pub mod faulty;
pub mod flood;
pub mod http;
pub mod http_proxy;
pub mod lossy_relay;
pub mod netns;
pub mod scripted;
pub mod shaped;
pub mod sim;
pub mod traffic;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// Whether prlimit is here to limit a node's descriptors; without it a
/// test reports and skips, except under CI, where it must be.
pub fn has_prlimit() -> bool {
    if Command::new("prlimit").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "prlimit missing under CI");
    eprintln!("skipped: prlimit not installed");
    false
}

/// The binary nodes run, when not this tree's own (the compare bench
/// measures other builds).
static OTHER_BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn use_binary(path: PathBuf) {
    *OTHER_BINARY.lock().unwrap() = Some(path);
}

pub fn binary() -> PathBuf {
    OTHER_BINARY
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_toxtun")))
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

pub struct Node {
    pub child: Child,
    pub id: String,
    pub name: String,
    log: Arc<Log>,
}

/// Prints `toxtun id` for a config (creating the key).
pub fn id_of(config: &Path) -> String {
    let out = Command::new(binary())
        .args(["-config"])
        .arg(config)
        .arg("id")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "toxtun id failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// LAN discovery is off unless `body` sets it: loopback tests must not
/// broadcast on the host's real networks. It goes last, in a section of
/// its own, so line numbers in `body` stay as written.
pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.ini"));
    let lan = if body.contains("lan_discovery") {
        String::new()
    } else {
        format!("\n[node]\n{NO_LAN}")
    };
    std::fs::write(&path, format!("[node]\nkey_file = {name}.key\n{body}{lan}")).unwrap();
    path
}

pub const NO_LAN: &str = "lan_discovery = off\n";

/// A blocking loopback UDP socket for an in-process relay, with buffers as
/// large as the nodes' own: the relay impairs the path as told, and does
/// not add drops of its own when a whole KCP window arrives at once.
pub fn relay_socket() -> std::net::UdpSocket {
    let socket = toxtun::net::udp::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    socket.set_nonblocking(false).unwrap();
    socket
}

/// A `[client]` line: tunnel `name` on a free loopback port to `target`
/// through the node whose ID is `server`.
pub fn tunnel_line(name: &str, target: SocketAddr, server: &str) -> String {
    format!("{name} = 127.0.0.1:0:{target}:{server}\n")
}

/// `[client]` lines t0, t1, ... for `targets`, in order.
pub fn tunnel_lines(targets: &[SocketAddr], server: &str) -> String {
    targets
        .iter()
        .enumerate()
        .map(|(i, target)| tunnel_line(&format!("t{i}"), *target, server))
        .collect()
}

impl Node {
    /// Starts `toxtun -v -config CONFIG MODE` and waits for its ID line.
    pub fn start(name: &str, config: &Path, mode: &str) -> Node {
        Self::start_in(None, name, config, mode)
    }

    /// Like `start`, inside network namespace `ns` when given.
    pub fn start_in(ns: Option<&str>, name: &str, config: &Path, mode: &str) -> Node {
        Self::start_with(ns, &[], name, config, mode)
    }

    /// Like `start_in`, with environment variables set for the binary.
    pub fn start_with(
        ns: Option<&str>,
        env: &[(&str, &str)],
        name: &str,
        config: &Path,
        mode: &str,
    ) -> Node {
        let words = ["-config".into(), config.display().to_string(), mode.into()];
        Self::start_words(ns, env, name, &words)
    }

    /// `toxtun -v WORDS...` in namespace `ns` when given, with `env` set:
    /// for a node that runs on flags alone.
    pub fn start_words(
        ns: Option<&str>,
        env: &[(&str, &str)],
        name: &str,
        words: &[String],
    ) -> Node {
        let prefix = match ns {
            Some(ns) => vec!["ip".to_string(), "netns".into(), "exec".into(), ns.into()],
            None => Vec::new(),
        };
        Self::spawn(&prefix, env, name, words)
    }

    /// Like `start`, with at most `descriptors` open files (soft and hard
    /// limit, set before it starts, as a service manager would).
    pub fn start_limited(descriptors: u64, name: &str, config: &Path, mode: &str) -> Node {
        let prefix = [
            "prlimit".to_string(),
            format!("--nofile={descriptors}:{descriptors}"),
            "--".into(),
        ];
        let words = ["-config".into(), config.display().to_string(), mode.into()];
        Self::spawn(&prefix, &[], name, &words)
    }

    /// Runs the binary behind the words of `prefix` (a wrapper command),
    /// with `-v` and then `words`.
    fn spawn(prefix: &[String], env: &[(&str, &str)], name: &str, words: &[String]) -> Node {
        let mut command = match prefix.split_first() {
            Some((wrapper, args)) => {
                let mut c = Command::new(wrapper);
                c.args(args).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        // A proxy of the machine's is no part of any test but the ones
        // that set one.
        for name in ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"] {
            command.env_remove(name);
        }
        let mut child = command
            .envs(env.iter().copied())
            .arg("-v")
            .args(words)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let label = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TOXTUN_TEST_ECHO").is_some() {
                    eprintln!("[{label}] {line}");
                }
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut id = String::new();
        stdout.read_line(&mut id).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Node {
            child,
            id: id.trim().to_string(),
            name: name.to_string(),
            log,
        }
    }

    /// Waits until a log line contains every one of `needles`; returns it.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> String {
        self.wait_for_count(needles, 1, timeout)
    }

    /// Waits for the `n`th log line containing every one of `needles`.
    pub fn wait_for_count(&self, needles: &[&str], n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(line) = lines
                .iter()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .nth(n - 1)
            {
                return line.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "{}: no log line with {needles:?} within {timeout:?}; log:\n{}",
                    self.name,
                    lines.join("\n")
                );
            }
            lines = self.log.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn count(&self, needles: &[&str]) -> usize {
        let lines = self.log.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// The UDP address the node reported listening on.
    pub fn udp_addr(&self) -> SocketAddr {
        self.logged_addr(&["node listening"], "udp=")
    }

    /// The local address of the first tunnel the client reported listening.
    pub fn tunnel_addr(&self) -> SocketAddr {
        self.logged_addr(&["tunnel listening"], "local=")
    }

    /// The local address of the client's tunnel `name`.
    pub fn named_tunnel_addr(&self, name: &str) -> SocketAddr {
        self.logged_addr(&["tunnel listening", &format!("tunnel={name} ")], "local=")
    }

    /// The address in `field` (as `field=ADDR`) of the first log line that
    /// holds all of `needles`.
    fn logged_addr(&self, needles: &[&str], field: &str) -> SocketAddr {
        let line = self.wait_for(needles, WAIT);
        let at = line
            .find(field)
            .unwrap_or_else(|| panic!("no {field} in {line}"))
            + field.len();
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Sends `signal` and waits at most `within` for the process to end:
    /// its exit code, or None if it did not exit (or was killed).
    pub fn signal_and_wait(&mut self, signal: i32, within: Duration) -> Option<i32> {
        let pid = self.child.id() as i32;
        let (ended, status) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: waitpid on our own child, into a local.
            if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
                let _ = ended.send(status);
            }
        });
        // SAFETY: kill only sends a signal to the child we started.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = status.recv_timeout(within).ok()?;
        libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        // A failed test shows what each of its nodes said.
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.name, self.log_text());
        }
    }
}

/// `toxtun status --json` for the node run with `config`, inside network
/// namespace `ns` when given.
pub fn status_json(ns: Option<&str>, config: &Path) -> serde_json::Value {
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(binary());
            c
        }
        None => Command::new(binary()),
    };
    let out = command
        .arg("-config")
        .arg(config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Context switches so far of a process's thread with the given name: each
/// time it slept and woke counts once.
pub fn thread_wakeups(pid: u32, name: &str) -> u64 {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        return status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .sum();
    }
    panic!("no thread named {name} in process {pid}");
}

/// A bootstrap node in `world`'s bootstrap namespace, and the `bootstrap =`
/// line that names it.
pub fn start_world_bootstrap(world: &netns::World, dir: &Path) -> (Node, String) {
    let config = write_config(
        dir,
        "bootstrap",
        &format!("listen = {}:0\nkeepalive = 1s\n", netns::BOOTSTRAP_IP),
    );
    let bootstrap = Node::start_in(Some(&world.bootstrap), "bootstrap", &config, "bootstrap");
    let entry = format!("bootstrap = {}:{}\n", bootstrap.udp_addr(), bootstrap.id);
    (bootstrap, entry)
}

/// A server on host A of `world` with config `body`, once the bootstrap
/// node has seen it.
pub fn start_world_server(world: &netns::World, dir: &Path, body: &str) -> Node {
    let config = write_config(dir, "server", body);
    let server = Node::start_in(Some(&world.host_a), "server", &config, "server");
    server.wait_for(&["bootstrap node sees us at"], WAIT);
    server
}

/// A server on loopback with config `base`, and a client config that
/// knows where it is, with `base` and the `[client]` lines `lines`, in
/// which each `{id}` is the server's ID.
pub fn loopback_pair(dir: &Path, base: &str, lines: &str) -> (Node, PathBuf) {
    let server_config = write_config(dir, "server", base);
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir,
        "client",
        &format!(
            "{base}[peers]\n{} = {}\n[client]\n{}",
            server.id,
            server.udp_addr(),
            lines.replace("{id}", &server.id)
        ),
    );
    (server, client_config)
}

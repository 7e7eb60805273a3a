//! `toxtun connect ID TARGET` joins standard input and output to one
//! tunnel: OpenSSH through it as a ProxyCommand (two sessions at once, and
//! scp of 64 MiB), handed over by the node already running on the key
//! without disturbing it, and on a node of its own when none runs.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::traffic::echo_server;
use common::{write_config, Node, WAIT};
use sha2::{Digest, Sha256};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
const SSHD: &str = "/usr/sbin/sshd";

/// A server node and a client config that knows its address.
struct Pair {
    dir: tempfile::TempDir,
    server: Node,
    client_config: PathBuf,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let server_config = write_config(dir.path(), "server", FAST);
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{} = {}\n[tunnel]\nopen_timeout = {}s\n",
            server.id,
            server.udp_addr(),
            OPEN_TIMEOUT.as_secs()
        ),
    );
    Pair {
        dir,
        server,
        client_config,
    }
}

fn connect(config: &Path, id: &str, target: &str, input: &[u8]) -> Output {
    let mut child = Command::new(common::binary())
        .arg("-c")
        .arg(config)
        .args(["connect", id, target])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn connect_without_a_running_node_carries_bytes_and_says_why_it_failed() {
    let pair = pair();
    let echo = echo_server();
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let out = connect(
        &pair.client_config,
        &pair.server.id,
        &echo.to_string(),
        &input,
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input, "the echoed bytes differ");
    assert!(
        !pair.client_config.with_extension("key.sock").exists(),
        "its own node left the control socket behind"
    );

    // A friend that exists nowhere: no stdout, the reason, a failure code.
    let stranger = common::id_of(&write_config(pair.dir.path(), "stranger", FAST));
    let started = Instant::now();
    let out = connect(&pair.client_config, &stranger, &echo.to_string(), b"");
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no address known for server"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains(&stranger[..8]), "stderr: {stderr}");
    assert!(
        took < OPEN_TIMEOUT + Duration::from_secs(2),
        "took {took:?}"
    );

    let out = connect(&pair.client_config, &pair.server.id, "host:notaport", b"");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not HOST:PORT"));
}

/// sshd, one process per connection in inetd mode (`-i`) behind a port
/// the test picked: no fixed port, and nothing of the host's.
struct Sshd {
    port: u16,
    user: String,
    client_key: PathBuf,
}

fn sshd(dir: &Path) -> Option<Sshd> {
    if !Path::new(SSHD).exists() || Command::new("ssh").arg("-V").output().is_err() {
        assert!(std::env::var("CI").is_err(), "sshd or ssh missing under CI");
        eprintln!("skipped: openssh-server or openssh-client not installed");
        return None;
    }
    // sshd insists on its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    for name in ["host_key", "client_key"] {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(name))
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "HostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPidFile none\nPermitRootLogin yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             Subsystem sftp internal-sftp\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = dir.join("sshd.log");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let input = OwnedFd::from(stream.try_clone().unwrap());
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let _ = Command::new(SSHD)
                .args(["-i", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::from(input))
                .stdout(Stdio::from(OwnedFd::from(stream)))
                .stderr(log)
                .spawn();
        }
    });
    let user = text(&Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_string();
    Some(Sshd {
        port,
        user,
        client_key: dir.join("client_key"),
    })
}

/// ssh (or scp) through `toxtun -c CONFIG connect ID 127.0.0.1:%p`.
fn through_toxtun(program: &str, sshd: &Sshd, config: &Path, id: &str) -> Command {
    let proxy = format!(
        "ProxyCommand={} -c {} connect {id} 127.0.0.1:%p",
        common::binary().display(),
        config.display()
    );
    let port_flag = if program == "scp" { "-P" } else { "-p" };
    let mut command = Command::new(program);
    command
        .args(["-F", "/dev/null", "-i"])
        .arg(&sshd.client_key)
        .args([port_flag, &sshd.port.to_string()])
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .args(["-o", &proxy])
        .stdin(Stdio::null());
    command
}

fn sha256(path: &Path) -> [u8; 32] {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return hasher.finalize().into();
        }
        hasher.update(&buf[..n]);
    }
}

#[test]
fn ssh_and_scp_through_the_node_running_on_the_key() {
    let pair = pair();
    let Some(sshd) = sshd(pair.dir.path()) else {
        return;
    };
    // A server node on the client's key: `connect` must hand its streams
    // to this one, not start a second node on the same identity.
    let running = Node::start("running", &pair.client_config, "server");
    running.wait_for(&["control socket listening"], WAIT);
    let host = format!("{}@toxtun-test", sshd.user);

    let sessions: Vec<_> = (0..2)
        .map(|i| {
            through_toxtun("ssh", &sshd, &pair.client_config, &pair.server.id)
                .args([&host, &format!("echo session-{i}")])
                .output()
                .unwrap()
        })
        .collect();
    // Run the two at once as well: both are open before either ends.
    let together: Vec<_> = (0..2)
        .map(|i| {
            through_toxtun("ssh", &sshd, &pair.client_config, &pair.server.id)
                .args([&host, &format!("read line; echo together-{i}-$line")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    running.wait_for_count(&["tunnel open"], sessions.len() + together.len(), WAIT);
    for (i, out) in sessions.iter().enumerate() {
        assert!(out.status.success(), "ssh {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), format!("session-{i}"));
    }
    for (i, mut child) in together.into_iter().enumerate() {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ssh {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), format!("together-{i}-go"));
    }

    let source = pair.dir.path().join("source.bin");
    let copy = pair.dir.path().join("copy.bin");
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    std::fs::write(&source, &data).unwrap();
    let out = through_toxtun("scp", &sshd, &pair.client_config, &pair.server.id)
        .arg(&source)
        .arg(format!("{host}:{}", copy.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "scp: {}", text(&out.stderr));
    assert_eq!(sha256(&copy), sha256(&source), "the copy differs");

    // The wrong ID: ssh fails within the open timeout, the reason shown.
    let stranger = common::id_of(&write_config(pair.dir.path(), "stranger", FAST));
    let started = Instant::now();
    let out = through_toxtun("ssh", &sshd, &pair.client_config, &stranger)
        .args([&host, "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < OPEN_TIMEOUT + Duration::from_secs(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no address known for server"),
        "ssh stderr: {stderr}"
    );

    // Every stream went through the running node, which still serves.
    assert_eq!(
        running.count(&["tunnel asked for on a stream", "from=Connect"]),
        6
    );
    let status = common::status_json(None, &pair.client_config);
    assert_eq!(status["id"].as_str().unwrap(), running.id);
    let mut running = running;
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the node exited"
    );
}

#[test]
fn client_flags_on_a_running_nodes_key_hand_their_connections_to_it() {
    let pair = pair();
    let echo = common::traffic::echo_server();
    let running = Node::start("running", &pair.client_config, "server");
    running.wait_for(&["control socket listening"], WAIT);
    let config = pair.client_config.display().to_string();
    let words = |flag: &str| -> Vec<String> {
        [
            "-c",
            &config,
            "client",
            flag,
            &format!("0:{echo}"),
            &pair.server.id,
        ]
        .iter()
        .map(|w| w.to_string())
        .collect()
    };
    let attached = Node::start_words(None, &[], "attached", &words("-L"));
    attached.wait_for(&["a node already runs on this key"], WAIT);
    let local = attached.tunnel_addr();
    for round in 0..2u8 {
        let mut stream = std::net::TcpStream::connect(local).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let sent: Vec<u8> = (0..1u32 << 20).map(|i| (i as u8) ^ round).collect();
        let mut writer = stream.try_clone().unwrap();
        let copy = sent.clone();
        let writing = std::thread::spawn(move || writer.write_all(&copy));
        let mut back = vec![0u8; sent.len()];
        std::io::Read::read_exact(&mut stream, &mut back).unwrap();
        writing.join().unwrap().unwrap();
        assert!(back == sent, "round {round}: the echo differs");
    }
    assert_eq!(
        running.count(&["tunnel asked for on a stream", "from=Connect"]),
        2
    );
    assert_eq!(attached.count(&["node listening"]), 0, "a second node ran");
    let status = common::status_json(None, &pair.client_config);
    assert_eq!(status["id"].as_str().unwrap(), running.id);

    // UDP cannot be handed over a stream: said at once, nothing started.
    let out = Command::new(common::binary())
        .args(words("-U"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("a node already runs on this key") && stderr.contains("-U 0:"),
        "{stderr}"
    );
}

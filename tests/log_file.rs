//! `[node] log_file`: the log goes to the file, without terminal colours,
//! and a SIGHUP after the file was renamed (as logrotate does) starts a
//! new file while the renamed one keeps what came before.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{write_config, Node, WAIT};

/// Waits until the file at `path` holds `needle`; its text.
fn wait_for_text(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {} within {WAIT:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_log_goes_to_its_file_and_a_sighup_after_rotation_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "server",
        "listen = 127.0.0.1:0\nlog_file = server.log\n",
    );
    let log = dir.path().join("server.log");
    let server = Node::start("server", &config, "server");
    let first = wait_for_text(&log, "node listening");
    assert!(!first.contains('\x1b'), "colours in the file:\n{first}");
    assert!(
        !server.log_text().contains("node listening"),
        "the log went to standard error too:\n{}",
        server.log_text()
    );

    let rotated = dir.path().join("server.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    // SAFETY: kill only sends a signal to the child we started.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) },
        0
    );
    let second = wait_for_text(&log, "config reloaded");
    assert!(!second.contains("node listening"), "{second}");
    let before = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        before.contains("node listening") && !before.contains("config reloaded"),
        "the renamed file was written after the SIGHUP:\n{before}"
    );
}

/// `log_level` applies when the command line names no level, and a
/// SIGHUP applies a new one.
#[test]
fn the_config_log_level_applies_and_a_sighup_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        |level: &str| format!("listen = 127.0.0.1:0\nlog_file = server.log\nlog_level = {level}\n");
    let config = write_config(dir.path(), "server", &body("warn"));
    let log = dir.path().join("server.log");
    // No -v: the harness's nodes all run with it.
    let server = Running(
        std::process::Command::new(common::binary())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Its control socket is bound after its signal handlers are set.
    let socket = dir.path().join("server.key.sock");
    let deadline = Instant::now() + WAIT;
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no control socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let config_text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        config_text.replace("log_level = warn", "log_level = info"),
    )
    .unwrap();
    // SAFETY: kill only sends a signal to the child we started.
    assert_eq!(unsafe { libc::kill(server.0.id() as i32, libc::SIGHUP) }, 0);
    let text = wait_for_text(&log, "config reloaded");
    assert!(text.contains("log level changed"), "{text}");
    assert!(
        !text.contains("node listening"),
        "info at warn level:\n{text}"
    );
}

/// A node run without the harness, killed when the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

//! Nodes whose wall clocks are a day off the bootstrap node's (no
//! real-time clock, NTP blocked) are still found through it and tunnel.
//! The server's clock is moved with libfaketime; without it the test
//! reports and skips, except under CI, where it fails.

mod common;

use std::path::Path;

use common::by_id::Bootstrap;
use common::traffic::Target;
use common::WAIT;

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

fn libfaketime() -> Option<&'static str> {
    if Path::new(LIBFAKETIME).exists() {
        return Some(LIBFAKETIME);
    }
    assert!(
        std::env::var("CI").is_err(),
        "libfaketime missing under CI: {LIBFAKETIME}"
    );
    eprintln!("skipped: libfaketime not installed ({LIBFAKETIME})");
    None
}

fn found_and_tunnels_with_server_clock(offset: &str) {
    let Some(preload) = libfaketime() else {
        return;
    };
    let target = Target::start(1, 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Bootstrap::start(dir.path(), FAST);
    let env = [
        ("LD_PRELOAD", preload),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let server = bootstrap.server(dir.path(), FAST, &env);
    let client = bootstrap.client_tunnels(dir.path(), FAST, &server, &target);
    client.wait_for(&["found friend", &server.id[..8]], WAIT);
}

#[test]
fn a_server_a_day_behind_is_found() {
    found_and_tunnels_with_server_clock("-1d");
}

#[test]
fn a_server_a_day_ahead_is_found() {
    found_and_tunnels_with_server_clock("+1d");
}

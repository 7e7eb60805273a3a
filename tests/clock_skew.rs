//! Nodes whose wall clocks are a day off the bootstrap node's (no
//! real-time clock, NTP blocked) are still found through it and tunnel.
//! The server's clock is moved with libfaketime; without it the test
//! reports and skips, except under CI, where it fails.

mod common;

use std::path::Path;

use common::traffic::{exchange, pattern_hash, Target};
use common::{tunnel_line, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const KIB: usize = 1024;

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
    let target = Target::start(1, 64 * KIB);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Node::start(
        "bootstrap",
        &write_config(dir.path(), "bootstrap", FAST),
        "bootstrap",
    );
    let entry = format!("bootstrap = {}:{}\n", bootstrap.udp_addr(), bootstrap.id);
    let server = Node::start_with(
        None,
        &[
            ("LD_PRELOAD", preload),
            ("FAKETIME", offset),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
        "server",
        &write_config(dir.path(), "server", &format!("{FAST}{entry}")),
        "server",
    );
    server.wait_for(&["bootstrap node sees us at"], WAIT);
    let client = Node::start(
        "client",
        &write_config(
            dir.path(),
            "client",
            &format!(
                "{FAST}{entry}[client]\n{}",
                tunnel_line("t0", target.addr, &server.id)
            ),
        ),
        "client",
    );
    let (received, hash) = exchange(client.tunnel_addr(), 2, 64 * KIB);
    assert_eq!((received, hash), (64 * KIB, pattern_hash(1, 64 * KIB)));
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

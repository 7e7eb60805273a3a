//! Seeded faults on the simulated network (tests/common/faulty.rs): for
//! each seed, three tunnels move 1 MiB each way through loss up to 30%,
//! duplication, jitter, blackouts up to 20 s, NAT rebinding, or a restart
//! of either side with its clock stepped an hour. Every byte arrives once
//! and in order; every tunnel not cut by a restart completes; a restart's
//! own tunnels, opened after it, complete; and a seed run twice gives the
//! same trace. A seed that fails becomes a regression test below.

mod common;

use std::time::Duration;

use common::faulty::{pattern, run, FaultyRun, Flow};
use toxtun::proto::reason::CloseReason;

const TUNNELS: u64 = 3;
const LEN: usize = 1024 * 1024;
const LIMIT: Duration = Duration::from_secs(600);
/// The sim's cores use the default `[tunnel] open_timeout`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

fn check(seed: u64) -> FaultyRun {
    let result = run(seed, TUNNELS, LEN, LIMIT);
    let context = format!("seed {seed}: {:?}", result.faults);
    for (conn, flow) in &result.flows {
        let to_client = pattern(*conn, false, LEN);
        let to_server = pattern(*conn, true, LEN);
        assert!(
            to_client.starts_with(&flow.client_received),
            "{context}: conn {conn}: the client got bytes out of order or twice"
        );
        assert!(
            to_server.starts_with(&flow.server_received),
            "{context}: conn {conn}: the server got bytes out of order or twice"
        );
        if flow.killed || waited_out_the_blackout(&result, flow) {
            continue;
        }
        assert_eq!(
            (flow.client_received.len(), flow.server_received.len()),
            (LEN, LEN),
            "{context}: conn {conn} incomplete after {:?}: {flow:?}",
            result.virtual_time
        );
        assert_eq!(
            (&flow.client_closed, &flow.server_closed),
            (&Some(CloseReason::Finished), &Some(CloseReason::Finished)),
            "{context}: conn {conn}"
        );
    }
    if result.faults.restart.is_some() {
        let after = result.flows.values().filter(|f| f.after_restart).count();
        assert_eq!(
            after as u64, TUNNELS,
            "{context}: no tunnels after the restart"
        );
    }
    result
}

/// A connection still opening when the path went dark for longer than
/// the open timeout is given up on, as documented: the user's connection
/// fails with the reason, it does not hang.
fn waited_out_the_blackout(result: &FaultyRun, flow: &Flow) -> bool {
    let long_blackout = result
        .faults
        .blackout
        .is_some_and(|(_, length)| length >= OPEN_TIMEOUT);
    let gave_up = matches!(
        flow.client_closed,
        Some(CloseReason::ServerUnreachable { .. } | CloseReason::NoAnswer { .. })
    );
    long_blackout && !flow.opened && gave_up
}

fn seeds(range: std::ops::Range<u64>) {
    for seed in range {
        check(seed);
    }
}

// 200 seeds in four tests, so that two cores share them.
#[test]
fn seeds_0_to_49() {
    seeds(0..50);
}

#[test]
fn seeds_50_to_99() {
    seeds(50..100);
}

#[test]
fn seeds_100_to_149() {
    seeds(100..150);
}

#[test]
fn seeds_150_to_199() {
    seeds(150..200);
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [0, 2, 3, 4, 5] {
        let first = run(seed, TUNNELS, LEN, LIMIT);
        let again = run(seed, TUNNELS, LEN, LIMIT);
        assert_eq!(first.trace, again.trace, "seed {seed}");
        assert_eq!(first.virtual_time, again.virtual_time, "seed {seed}");
    }
}

// Seeds that found a fault, kept by name.

/// A client restarted with its wall clock an hour back: its handshakes
/// were refused as replays until its clock caught up with the old one.
#[test]
fn seed_10_a_client_restarts_with_its_clock_an_hour_back() {
    check(10);
}

/// A 7 s blackout after the transfer: the client forgot the closed channel
/// after 3 s, so the server never heard its last acknowledgement and
/// reset a connection that had finished.
#[test]
fn seed_56_a_blackout_swallows_the_last_acknowledgement() {
    check(56);
}

/// The restarted client's handshake met the dead client's, still awaiting
/// confirmation on the server, and was refused behind it for good.
#[test]
fn seed_106_a_dead_handshake_blocks_the_restarted_client() {
    check(106);
}

/// The server restarted with the client's data all handed over and only
/// retransmissions going out: those were not counted as awaiting an
/// answer, so the client never suspected the restart and the new tunnels'
/// requests went to the dead session until they timed out.
#[test]
fn seed_4_retransmissions_alone_reveal_a_restarted_server() {
    check(4);
}

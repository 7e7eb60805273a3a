//! Two tunnel cores on the simulated network: a lost packet after a quiet
//! spell, or a lost window update, must cost no more than a retransmission
//! timeout of the real round trip.

mod common;

use std::time::{Duration, Instant};

use common::sim::{open_tunnel, CLIENT, SERVER};

const CONN: u64 = 7;
/// DATA header, frame type, a bare KCP header and the tag: anything shorter
/// (a keepalive) carries no KCP.
const SMALLEST_KCP_DATAGRAM: usize = 16 + 1 + 24 + 16;

/// Loses the first datagram one side sends that carries KCP (keepalives
/// are shorter), and only that one.
struct LoseFirst {
    from: usize,
    lost: bool,
}

impl LoseFirst {
    fn new(from: usize) -> Self {
        LoseFirst { from, lost: false }
    }

    fn decide(&mut self, from: usize, bytes: &[u8]) -> bool {
        let hit = from == self.from && !self.lost && bytes.len() >= SMALLEST_KCP_DATAGRAM;
        self.lost |= hit;
        hit
    }
}

#[test]
fn a_loss_after_a_quiet_spell_is_repaired_at_the_real_round_trip() {
    let mut net = open_tunnel(Instant::now(), CONN, (1, 2));
    // Quiet for a minute (keepalives only), then one message that arrives.
    net.idle(Duration::from_secs(60));
    let now = net.now;
    net.host_mut(CLIENT).core.send_data(now, CONN, b"first");
    let got = net.run_until(Duration::from_secs(2), &mut |_, _| false, &mut |n| {
        n.host(SERVER).received(CONN) == b"first"
    });
    assert!(got);
    // The next one is lost once on the way.
    let sent_at = net.now;
    net.host_mut(CLIENT)
        .core
        .send_data(sent_at, CONN, b"second");
    let mut loser = LoseFirst::new(CLIENT);
    let got = net.run_until(
        Duration::from_secs(30),
        &mut |from, bytes| loser.decide(from, bytes),
        &mut |n| n.host(SERVER).received(CONN) == b"firstsecond",
    );
    assert!(loser.lost, "nothing was dropped");
    assert!(got, "the lost message never arrived");
    let took = net.now - sent_at;
    assert!(took < Duration::from_secs(1), "repair took {took:?}");
}

#[test]
fn a_lost_window_update_does_not_stall_the_sender() {
    let mut net = open_tunnel(Instant::now(), CONN, (1, 2));
    // The server's writer is full: KCP's receive window fills and closes.
    net.host_mut(SERVER).core.pause(CONN);
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let now = net.now;
    for chunk in payload.chunks(16 * 1024) {
        net.host_mut(CLIENT).core.send_data(now, CONN, chunk);
    }
    net.idle(Duration::from_secs(2));
    assert!(
        net.host(SERVER).received(CONN).len() < payload.len(),
        "the window never closed"
    );
    // The writer drains; the first KCP the server sends after is lost.
    let resumed_at = net.now;
    net.host_mut(SERVER).core.resume(resumed_at, CONN);
    let mut loser = LoseFirst::new(SERVER);
    let got = net.run_until(
        Duration::from_secs(30),
        &mut |from, bytes| loser.decide(from, bytes),
        &mut |n| n.host(SERVER).received(CONN) == payload,
    );
    assert!(loser.lost, "nothing was dropped");
    let arrived = net.host(SERVER).received(CONN).len();
    assert!(got, "only {arrived} of {} bytes arrived", payload.len());
    let took = net.now - resumed_at;
    assert!(took < Duration::from_secs(2), "the rest took {took:?}");
}

//! How large a datagram the path to a friend carries, found by probing
//! (DPLPMTUD, RFC 8899): every friend starts at a size every path carries
//! (a 1200-byte UDP payload, as QUIC: IPv6's 1280-byte minimum less its
//! headers, with room to spare), then sends padded probes the friend
//! acknowledges, searching up to the largest datagram the node sends. A
//! probe that goes unanswered twice marks its size too big; the search
//! stops once the gap is under `PRECISION`. ICMP is never needed, so a
//! path that drops it works the same. A new route (direct or relayed, or
//! a friend back online) starts again from the base.
//!
//! Once the search is done, a path that carries data above the base is
//! confirmed every `CONFIRM_EVERY` while data flows, with a probe of the
//! size in use: a path that shrank (a VPN coming up, a route change)
//! swallows the probe and the friend's other packets say nothing about
//! it, so only this notices. Unanswered twice, the path goes back to the
//! base and the search starts again.
//!
//! Sizes here are of the sealed payload a DATA packet carries (a frame
//! type and what follows), which is what the tunnel core fills.

use std::time::{Duration, Instant};

use tracing::info;

use super::FriendNet;
use crate::id::PublicKey;
use crate::proto::route::Route;
use crate::proto::tunnel::kcp_settings::MAX_KCP_MTU;
use crate::proto::wire;

/// A UDP payload every path carries.
pub const BASE_UDP_PAYLOAD: usize = 1200;
/// What a relay adds in front of a DATA packet: its kind and the key.
const RELAY_OVERHEAD: usize = 1 + 32;
/// Stop searching once the largest size that passed is this close to the
/// smallest that did not.
const PRECISION: usize = 16;
/// A probe is sent this many times before its size is judged too big.
const TRIES: u32 = 2;
const PROBE_WAIT: Duration = Duration::from_millis(400);
/// How often a size above the base is confirmed while data flows: with
/// `TRIES` and `PROBE_WAIT`, a path that shrank is noticed within 2 s.
const CONFIRM_EVERY: Duration = Duration::from_millis(1200);

/// Frames the friend network handles itself: a padded probe, and its
/// acknowledgement naming the size that arrived (two bytes, big-endian).
pub(super) const FRAME_MTU_PROBE: u8 = 5;
pub(super) const FRAME_MTU_ACK: u8 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    size: usize,
    tries: u32,
    due: Instant,
    /// Whether this probe confirms the size in use rather than searching.
    confirming: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PathMtu {
    /// The route kind the sizes are for: relayed or not; None before the
    /// first search.
    relayed: Option<bool>,
    /// The largest payload known to pass.
    confirmed: usize,
    /// The smallest payload known not to pass (one past the largest the
    /// node sends, at first).
    too_big: usize,
    probe: Option<Probe>,
    /// When data that needs an answer was last sent: a path is confirmed
    /// only while it is in use.
    data_sent: Option<Instant>,
}

fn overhead(relayed: bool) -> usize {
    wire::DATA_MIN_LEN + if relayed { RELAY_OVERHEAD } else { 0 }
}

impl PathMtu {
    /// The payload that fits the path (the base until a probe proves more).
    pub fn payload(&self) -> usize {
        self.confirmed
            .max(BASE_UDP_PAYLOAD - overhead(self.relayed.unwrap_or(true)))
    }

    /// The UDP payload that fits, for `status`.
    pub fn udp_payload(&self) -> Option<usize> {
        self.relayed.map(|r| self.confirmed + overhead(r))
    }

    /// Starts over for a route of this kind.
    fn restart(&mut self, now: Instant, relayed: bool) {
        self.relayed = Some(relayed);
        self.confirmed = BASE_UDP_PAYLOAD - overhead(relayed);
        self.too_big = 1 + MAX_KCP_MTU + 1;
        self.probe = Some(Probe {
            size: 1 + MAX_KCP_MTU,
            tries: 0,
            due: now,
            confirming: false,
        });
    }

    fn above_base(&self) -> bool {
        self.relayed
            .is_some_and(|r| self.confirmed > BASE_UDP_PAYLOAD - overhead(r))
    }

    /// Data that needs an answer went out: the path is in use.
    pub fn note_data_sent(&mut self, now: Instant) {
        self.data_sent = Some(now);
    }

    /// When the next probe is due. A confirmation waits for data: an idle
    /// friend is not probed.
    pub fn next_due(&self) -> Option<Instant> {
        let probe = self.probe.as_ref()?;
        let idle = probe.confirming
            && probe.tries == 0
            && self
                .data_sent
                .is_none_or(|sent| sent + CONFIRM_EVERY < probe.due);
        (!idle).then_some(probe.due)
    }

    /// The next size to try; once the search is done, a confirmation of
    /// the size found (if above the base).
    fn next_probe(&mut self, now: Instant) {
        self.probe = if self.too_big - self.confirmed > PRECISION {
            Some(Probe {
                size: (self.confirmed + self.too_big) / 2,
                tries: 0,
                due: now,
                confirming: false,
            })
        } else {
            self.above_base().then(|| Probe {
                size: self.confirmed,
                tries: 0,
                due: now + CONFIRM_EVERY,
                confirming: true,
            })
        };
    }

    /// The probe timer: the size to send now, if any.
    fn due(&mut self, now: Instant) -> Option<usize> {
        let probe = self.probe.as_mut()?;
        if probe.tries >= TRIES {
            if probe.confirming {
                // The path shrank: back to the base (what is queued larger
                // goes in pieces) and search again.
                let relayed = self.relayed.unwrap_or(true);
                self.restart(now, relayed);
            } else {
                self.too_big = probe.size;
                self.next_probe(now);
            }
            return self.due(now);
        }
        probe.tries += 1;
        probe.due = now + PROBE_WAIT;
        Some(probe.size)
    }

    fn acknowledged(&mut self, now: Instant, size: usize) {
        if size > self.confirmed && size < self.too_big {
            self.confirmed = size;
        }
        if self
            .probe
            .as_ref()
            .is_some_and(|p| p.size <= self.confirmed && size >= p.size)
        {
            self.next_probe(now);
        }
    }
}

impl FriendNet {
    /// The payload `send` may carry to this friend in one datagram. A route
    /// of another kind than the one searched starts the search again.
    pub fn path_payload(&mut self, now: Instant, key: &PublicKey) -> usize {
        let relayed = matches!(self.route_to(now, key), Some(Route::Relay { .. }));
        let Some(friend) = self.friends.get(key) else {
            return BASE_UDP_PAYLOAD - overhead(true);
        };
        let searched = friend.mtu.relayed;
        if searched.is_some_and(|r| r != relayed) {
            if let Some(friend) = self.friends.get_mut(key) {
                friend.mtu.restart(now, relayed);
            }
        }
        self.friends
            .get(key)
            .map_or(BASE_UDP_PAYLOAD - overhead(true), |f| f.mtu.payload())
    }

    /// Sends the next probe of the search, if one is due, on the route in
    /// use (a new kind of route starts the search again).
    pub(super) fn probe_mtu(&mut self, now: Instant, key: PublicKey) {
        let Some(route) = self.route_to(now, &key) else {
            return;
        };
        let relayed = matches!(route, Route::Relay { .. });
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if friend.mtu.relayed != Some(relayed) {
            friend.mtu.restart(now, relayed);
        }
        let before = friend.mtu.udp_payload();
        let size = friend.mtu.due(now);
        if friend.mtu.udp_payload() < before {
            info!(
                friend = %key.short(),
                was = before.unwrap_or_default(),
                "path MTU no longer confirmed: back to the base size, searching again"
            );
        }
        let Some(size) = size else {
            return;
        };
        let mut probe = vec![0u8; size];
        probe[0] = FRAME_MTU_PROBE;
        self.send_on(now, &key, route, &probe, None);
    }

    /// A friend went online, or its route changed: search again.
    pub(super) fn restart_mtu(&mut self, now: Instant, key: &PublicKey) {
        let relayed = matches!(self.route_to(now, key), Some(Route::Relay { .. }));
        if let Some(friend) = self.friends.get_mut(key) {
            friend.mtu.restart(now, relayed);
        }
    }

    /// A probe arrived: say how large it was, on the route it came by.
    pub(super) fn answer_mtu_probe(
        &mut self,
        now: Instant,
        key: PublicKey,
        from: Route,
        size: usize,
    ) {
        let size = u16::try_from(size).unwrap_or(u16::MAX).to_be_bytes();
        self.send_on(now, &key, from, &[FRAME_MTU_ACK, size[0], size[1]], None);
    }

    pub(super) fn on_mtu_ack(&mut self, now: Instant, key: PublicKey, body: &[u8]) {
        let [high, low] = body else {
            return;
        };
        if let Some(friend) = self.friends.get_mut(&key) {
            friend
                .mtu
                .acknowledged(now, u16::from_be_bytes([*high, *low]).into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the probe timer against a path that carries payloads up to
    /// `fits` until nothing is due or `until`.
    fn run(mtu: &mut PathMtu, mut now: Instant, until: Instant, fits: usize) -> Instant {
        while let Some(due) = mtu.next_due().filter(|&due| due <= until) {
            now = now.max(due);
            if let Some(size) = mtu.due(now) {
                if size <= fits {
                    mtu.acknowledged(now, size);
                }
            }
        }
        now
    }

    /// Runs a search against a path that carries payloads up to `fits`,
    /// no data flowing.
    fn search(fits: usize) -> (usize, Duration) {
        let start = Instant::now();
        let mut mtu = PathMtu::default();
        mtu.restart(start, false);
        let end = run(&mut mtu, start, start + Duration::from_secs(60), fits);
        (mtu.payload(), end - start)
    }

    #[test]
    fn a_path_that_shrinks_under_data_goes_back_to_the_base_within_2_s() {
        let start = Instant::now();
        let mut mtu = PathMtu::default();
        mtu.restart(start, false);
        let largest = 1 + MAX_KCP_MTU;
        let found = run(&mut mtu, start, start + Duration::from_secs(60), largest);
        assert_eq!(mtu.payload(), largest);
        assert_eq!(mtu.next_due(), None, "an idle friend is not probed");
        let base = BASE_UDP_PAYLOAD - overhead(false);
        let shrunk = found + Duration::from_secs(10);
        mtu.note_data_sent(shrunk);
        let mut now = shrunk;
        while mtu.payload() > base {
            let due = mtu.next_due().expect("a path carrying data is confirmed");
            assert!(due - shrunk < Duration::from_secs(2), "still not shrunk");
            now = now.max(due);
            mtu.note_data_sent(now);
            if let Some(size) = mtu.due(now) {
                if size <= base {
                    mtu.acknowledged(now, size);
                }
            }
        }
        let end = run(&mut mtu, now, now + Duration::from_secs(60), base);
        assert_eq!(mtu.payload(), base);
        assert!(end - now < Duration::from_secs(5), "searched again");
    }

    #[test]
    fn the_search_ends_near_the_largest_size_that_fits() {
        let largest = 1 + MAX_KCP_MTU;
        assert_eq!(search(largest).0, largest, "a path that carries everything");
        for fits in [1400 - 28 - 32, 1280 - 48 - 32, 1300] {
            let (found, took) = search(fits);
            assert!(
                found <= fits && fits - found <= PRECISION,
                "{fits}: found {found}"
            );
            assert!(took < Duration::from_secs(5), "{fits}: took {took:?}");
        }
        let base = BASE_UDP_PAYLOAD - overhead(false);
        assert_eq!(search(base).0, base, "nothing above the base passes");
    }
}

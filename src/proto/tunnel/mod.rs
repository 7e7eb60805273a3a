//! The whole protocol core: the friend network plus, per online friend, a
//! control channel and one KCP channel per tunnelled connection. Still no
//! sockets and no clock: the driver feeds it and carries out its events.
//!
//! The driver's side, in the order of a turn of its loop: feed input with
//! `handle_datagram`, `handle_lan_datagram`, the `local_*`/`target_*`
//! calls and `handle_timeout`; then drain `poll_event` and `poll_transmit`
//! (which flushes what KCP queued) until both say None; then sleep until
//! `poll_timeout`, or until input arrives.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub mod allow;
mod budgets;
mod channels;
pub mod congestion;
pub mod control;
pub mod datagram;
mod flows;
mod intake;
pub mod kcp_settings;
mod ledger;
pub mod limits;
pub mod link;
mod opening;
pub mod outbox;
mod pipes;
pub mod reload;
mod segments;
pub mod services;

use self::allow::AllowRule;
use self::control::Transport;
use self::flows::DatagramDrops;
use self::kcp_settings::KcpSettings;
use self::limits::{TunnelCount, TunnelLimits};
use self::link::{ConnId, Link};
use self::segments::{carries_data, KCP_HEADER};
use super::log_limit::LogLimit;
use super::reason::CloseReason;
use super::snapshot::Snapshot;
use super::{FriendNet, NetEvent, Transmit};
use crate::id::PublicKey;

/// Largest message handed to KCP at once (it caps a message at 127 segments).
pub const MAX_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub kcp: KcpSettings,
    pub open_timeout: Duration,
    pub idle_timeout: Duration,
    /// A UDP flow with no datagram either way for this long is closed.
    pub udp_idle_timeout: Duration,
    pub limits: TunnelLimits,
    /// None: this node serves no tunnels (client mode).
    pub allow: Option<Vec<AllowRule>>,
    /// Named targets (`[services]`): name to HOST:PORT. Naming one allows it.
    pub services: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    FriendAdded(PublicKey),
    /// The friend went offline; everything held for it is freed.
    FriendOffline(PublicKey),
    /// Server side: connect to `target` for the friend, then call
    /// `target_connected` or `target_failed` with `request`.
    Connect {
        friend: PublicKey,
        request: u32,
        target: String,
        transport: Transport,
    },
    /// Client side: the server accepted; start moving bytes.
    Opened {
        conn: ConnId,
    },
    /// Bytes for the connection's TCP writer, in order.
    Data {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// A whole datagram for a UDP flow's socket.
    Datagram {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// The far side sent its last byte: shut down our TCP write half.
    Eof {
        conn: ConnId,
    },
    /// The reader may read this many more chunks.
    Credit {
        conn: ConnId,
        chunks: u32,
    },
    /// The connection is over; the driver drops it.
    Closed {
        conn: ConnId,
        reason: CloseReason,
    },
    /// Connect to the bootstrap node at `addr` over TCP, then call
    /// `stream_link_up` or `stream_link_down`.
    StreamLinkWanted {
        addr: SocketAddr,
    },
}

enum Conn {
    /// Client side, waiting for the friend to come online and answer OPEN.
    Opening {
        friend: PublicKey,
        target: String,
        transport: Transport,
        deadline: Instant,
        request: Option<u32>,
    },
    Open {
        friend: PublicKey,
        conv: u32,
    },
}

/// Which KCP instance a timer or flush is for: conv 0 is the control channel.
type PipeKey = (PublicKey, u32);

/// Ordered maps and sets throughout: what the core sends must not depend
/// on a hasher's seed, so that a seeded run can be replayed.
pub struct Core {
    net: FriendNet,
    config: TunnelConfig,
    start: Instant,
    links: BTreeMap<PublicKey, Link>,
    conns: BTreeMap<ConnId, Conn>,
    timers: BTreeSet<(Instant, PipeKey)>,
    /// When each friend's pacer releases its next packets.
    pacer_timers: BTreeSet<(Instant, PublicKey)>,
    open_deadlines: BTreeSet<(Instant, ConnId)>,
    next_idle_sweep: Option<Instant>,
    /// KCP instances with output to flush before the next datagram leaves.
    dirty: BTreeSet<PipeKey>,
    /// Friends we gave new data (which they must acknowledge) since the
    /// last flush.
    awaiting: BTreeSet<PublicKey>,
    /// Input arrived since the last flush (KCP may have written without
    /// being marked dirty: its own timers run in `update`).
    unflushed: bool,
    events: VecDeque<Event>,
    /// What each open tunnel carried, for its line in the log.
    ledger: BTreeMap<ConnId, ledger::Entry>,
    /// Server: the target of each OPEN being connected, by friend and
    /// request, until the driver says how it went.
    connecting: BTreeMap<(PublicKey, u32), String>,
    recv_buf: Vec<u8>,
    tunnels: TunnelCount,
    oversized: LogLimit,
    datagram_drops: DatagramDrops,
    buffer_full: LogLimit,
    control_full: LogLimit,
    refusal_logs: BTreeMap<u8, LogLimit>,
}

impl Core {
    pub fn new(net: FriendNet, config: TunnelConfig, now: Instant) -> Self {
        Core {
            net,
            config,
            start: now,
            links: BTreeMap::new(),
            conns: BTreeMap::new(),
            timers: BTreeSet::new(),
            pacer_timers: BTreeSet::new(),
            open_deadlines: BTreeSet::new(),
            next_idle_sweep: None,
            dirty: BTreeSet::new(),
            awaiting: BTreeSet::new(),
            unflushed: false,
            events: VecDeque::new(),
            ledger: BTreeMap::new(),
            connecting: BTreeMap::new(),
            recv_buf: vec![0; MAX_CHUNK + 1],
            tunnels: TunnelCount::default(),
            oversized: LogLimit::default(),
            datagram_drops: DatagramDrops::default(),
            buffer_full: LogLimit::default(),
            control_full: LogLimit::default(),
            refusal_logs: BTreeMap::new(),
        }
    }

    pub fn net(&self) -> &FriendNet {
        &self.net
    }

    pub fn net_mut(&mut self) -> &mut FriendNet {
        &mut self.net
    }

    /// What `toxtun status` shows; call whenever it is asked for.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let mut friends = self.net.friend_snapshots(now);
        for friend in &mut friends {
            let Some(link) = self.links.get(&friend.key) else {
                continue;
            };
            friend.tunnels =
                link.channels.values().filter(|c| c.conn.is_some()).count() + link.flows.len();
            friend.congestion = link.congestion_snapshot();
        }
        Snapshot {
            id: self.net.identity().id(),
            bootstrap: self.net.bootstrap_snapshots(),
            friends,
            counters: self.net.counters(),
            datagrams_dropped: self.datagram_drops.counts(),
            connections: self.connection_snapshots(now),
        }
    }

    fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.start).as_millis() as u32
    }

    /// The next event for the driver. Call after every input, until None.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next datagram to send. Call after every batch of input, until
    /// None: the first call flushes what KCP queued, so acknowledgements
    /// for a whole batch of datagrams go out together, after the batch.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if std::mem::take(&mut self.unflushed) || !self.dirty.is_empty() {
            self.flush(now);
        }
        self.net.poll_transmit()
    }

    /// When `handle_timeout` must next be called; None: only input wakes
    /// it. Call after `poll_transmit` has returned None.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.net.poll_timeout(),
            self.timers.first().map(|(t, _)| *t),
            self.pacer_timers.first().map(|(t, _)| *t),
            self.open_deadlines.first().map(|(t, _)| *t),
            self.next_idle_sweep,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Call for every datagram that arrives on the node's UDP socket or a
    /// stream link.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.unflushed = true;
        self.net.handle_datagram(now, from, bytes);
        self.take_net_events(now);
    }

    /// Call for every datagram that arrives on the LAN discovery port.
    pub fn handle_lan_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.net.handle_lan_datagram(now, from, bytes);
    }

    /// The node is stopping: every online friend is told, so it closes our
    /// tunnels now. Then drain `poll_transmit` before the process ends.
    pub fn say_goodbye(&mut self, now: Instant) {
        self.net.say_goodbye(now);
    }

    /// `toxtun forget`: the friend is removed and its tunnels reset; false
    /// if it was no friend.
    pub fn forget(&mut self, now: Instant, friend: &PublicKey) -> bool {
        let forgotten = self.net.forget(friend);
        self.take_net_events(now);
        forgotten
    }

    /// Call when the time `poll_timeout` named has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.unflushed = true;
        self.net.handle_timeout(now);
        self.take_net_events(now);
        self.fire_pipe_timers(now);
        self.expire_opens(now);
        if self.next_idle_sweep.is_some_and(|t| t <= now) {
            self.sweep_idle(now);
        }
    }

    /// The stream link asked for by `Event::StreamLinkWanted` is connected.
    pub fn stream_link_up(&mut self, now: Instant, addr: SocketAddr) {
        self.unflushed = true;
        self.net.stream_link_up(now, addr);
    }

    /// The stream link to `addr` could not be made, or it closed.
    pub fn stream_link_down(&mut self, now: Instant, addr: SocketAddr) {
        self.net.stream_link_down(now, addr);
    }

    /// Runs KCP for every instance with new input or output and seals what
    /// it wrote into datagrams.
    fn flush(&mut self, now: Instant) {
        let ms = self.ms(now);
        while let Some(key) = self.dirty.pop_first() {
            if let Some(pipe) = self.pipe_mut(key) {
                // KCP stamps new segments with its own clock, which only
                // update() sets: a pipe quiet for a while would send with a
                // stale stamp, measure a round trip of that whole quiet
                // time, and then wait that long to retransmit a loss.
                let _ = pipe.update(ms);
                let _ = pipe.flush();
            }
            self.schedule(now, key);
        }
        while let Some(friend) = self.awaiting.pop_first() {
            self.net.expect_answer(now, &friend);
        }
        let friends: Vec<PublicKey> = self.links.keys().copied().collect();
        for friend in friends {
            let relayed = self.net.is_relayed(now, &friend);
            let mtu = (self.net.path_payload(now, &friend) - 1).min(self.config.kcp.mtu);
            let Some(link) = self.links.get_mut(&friend) else {
                continue;
            };
            link.set_relayed(now, &self.config.kcp, relayed);
            link.set_mtu(mtu);
            let app_limited = link.prepare_send(&self.config.kcp);
            let rate = link.path.as_ref().and_then(|p| p.model().pacing_rate());
            let mut sent_data = false;
            while let Some(mut frame) = link.outbox.pop(now, rate) {
                let early = link.path.as_ref().and_then(|p| {
                    let packet = frame.get(1..)?;
                    p.without_early_resends(now, packet)
                });
                if let Some(kept) = early {
                    if kept.is_empty() {
                        continue;
                    }
                    frame.truncate(1);
                    frame.extend_from_slice(&kept);
                }
                if let Some(packet) = frame.get(1..).filter(|p| p.len() >= KCP_HEADER) {
                    link.update_intake(kcp::get_conv(packet), |i, window| {
                        i.saw_output(packet, window)
                    });
                    if let Some(path) = &mut link.path {
                        path.on_sent(now, packet, app_limited);
                    }
                    sent_data |= carries_data(packet);
                }
                self.net.send(now, &friend, &frame);
            }
            // Retransmissions too wait for an answer: a friend that restarted
            // answers none, and only a handshake finds that out.
            if sent_data {
                self.net.expect_answer(now, &friend);
            }
            let due = link.outbox.next_due(now, rate);
            self.set_pacer_due(friend, due);
        }
    }

    /// Keeps the time the friend's pacer next releases a packet among the
    /// core's timers.
    fn set_pacer_due(&mut self, friend: PublicKey, due: Option<Instant>) {
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        if link.pacer_due == due {
            return;
        }
        if let Some(old) = std::mem::replace(&mut link.pacer_due, due) {
            self.pacer_timers.remove(&(old, friend));
        }
        if let Some(at) = due {
            self.pacer_timers.insert((at, friend));
        }
    }

    fn take_net_events(&mut self, now: Instant) {
        while let Some(event) = self.net.poll_event() {
            match event {
                NetEvent::FriendAdded { friend } => {
                    self.events.push_back(Event::FriendAdded(friend))
                }
                NetEvent::Online { friend, .. } => self.link_up(now, friend),
                NetEvent::Offline { friend, reason } => self.link_down(now, friend, reason),
                NetEvent::Received { friend, payload } => self.on_payload(now, friend, &payload),
                NetEvent::StreamLinkWanted { addr } => {
                    self.events.push_back(Event::StreamLinkWanted { addr })
                }
            }
        }
    }

    fn channel_mut(&mut self, (friend, conv): PipeKey) -> Option<&mut link::Channel> {
        self.links.get_mut(&friend)?.channels.get_mut(&conv)
    }
}

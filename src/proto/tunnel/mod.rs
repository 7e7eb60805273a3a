//! The whole protocol core: the friend network plus, per online friend, a
//! control channel and one KCP channel per tunnelled connection. Still no
//! sockets and no clock: the driver feeds it and carries out its events.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

pub mod allow;
pub mod control;
pub mod kcp_settings;
pub mod link;

use self::allow::AllowRule;
use self::control::{Control, CHANNEL_DATA, CHANNEL_FIN, CHANNEL_WINDOW, PROTOCOL_TCP};
use self::kcp_settings::KcpSettings;
use self::link::{new_pipe, Channel, ConnId, Link, Pipe, FRAME_KCP};
use super::snapshot::Snapshot;
use super::{Event, FriendNet, Transmit};
use crate::id::{PublicKey, ToxId};

/// A closed channel stays this long to acknowledge late retransmissions.
const LINGER: Duration = Duration::from_secs(3);
/// KCP's segment header; shorter input is not KCP.
const KCP_HEADER: usize = 24;
/// Largest message handed to KCP at once (it caps a message at 127 segments).
pub const MAX_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub kcp: KcpSettings,
    pub open_timeout: Duration,
    pub idle_timeout: Duration,
    /// None: this node serves no tunnels (client mode).
    pub allow: Option<Vec<AllowRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    FriendAdded(PublicKey),
    /// Server side: connect to `target` for the friend, then call
    /// `target_connected` or `target_failed` with `request`.
    Connect {
        friend: PublicKey,
        request: u32,
        target: String,
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
        reason: String,
    },
}

enum Conn {
    /// Client side, waiting for the friend to come online and answer OPEN.
    Opening {
        friend: PublicKey,
        target: String,
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

pub struct Node {
    net: FriendNet,
    config: TunnelConfig,
    start: Instant,
    links: HashMap<PublicKey, Link>,
    conns: HashMap<ConnId, Conn>,
    timers: BTreeSet<(Instant, PipeKey)>,
    open_deadlines: BTreeSet<(Instant, ConnId)>,
    next_idle_sweep: Option<Instant>,
    dirty: HashSet<PipeKey>,
    events: VecDeque<NodeEvent>,
    recv_buf: Vec<u8>,
}

impl Node {
    pub fn new(net: FriendNet, config: TunnelConfig, now: Instant) -> Self {
        Node {
            net,
            config,
            start: now,
            links: HashMap::new(),
            conns: HashMap::new(),
            timers: BTreeSet::new(),
            open_deadlines: BTreeSet::new(),
            next_idle_sweep: None,
            dirty: HashSet::new(),
            events: VecDeque::new(),
            recv_buf: vec![0; MAX_CHUNK + 1],
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
            friend.tunnels = self.links.get(&friend.key).map_or(0, |l| {
                l.channels.values().filter(|c| c.conn.is_some()).count()
            });
        }
        Snapshot {
            id: self.net.identity().id(),
            bootstrap: self.net.bootstrap_snapshots(),
            friends,
        }
    }

    fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.start).as_millis() as u32
    }

    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.net.poll_transmit()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.dirty.is_empty() {
            return Some(self.start);
        }
        [
            self.net.poll_timeout(),
            self.timers.first().map(|(t, _)| *t),
            self.open_deadlines.first().map(|(t, _)| *t),
            self.next_idle_sweep,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.net.handle_datagram(now, from, bytes);
        self.take_net_events(now);
    }

    pub fn handle_lan_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.net.handle_lan_datagram(now, from, bytes);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.net.handle_timeout(now);
        self.take_net_events(now);
        self.fire_pipe_timers(now);
        self.expire_opens(now);
        if self.next_idle_sweep.is_some_and(|t| t <= now) {
            self.sweep_idle(now);
        }
        self.flush(now);
    }

    /// Sends what KCP has queued: acknowledgements for a whole batch of
    /// datagrams go out together, after the batch.
    pub fn flush(&mut self, now: Instant) {
        let ms = self.ms(now);
        let dirty: Vec<PipeKey> = self.dirty.drain().collect();
        for key in dirty {
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
        let friends: Vec<PublicKey> = self.links.keys().copied().collect();
        for friend in friends {
            let relayed = self.net.is_relayed(now, &friend);
            if let Some(link) = self.links.get_mut(&friend) {
                link.set_relayed(&self.config.kcp, relayed);
            }
            while let Some(frame) = self.links.get(&friend).and_then(|l| l.outbox.pop()) {
                self.net.send(now, &friend, &frame);
            }
        }
    }

    fn pipe_mut(&mut self, (friend, conv): PipeKey) -> Option<&mut Pipe> {
        let link = self.links.get_mut(&friend)?;
        if conv == 0 {
            Some(&mut link.control)
        } else {
            link.channels.get_mut(&conv).map(|c| &mut c.kcp)
        }
    }

    /// Keeps one timer per KCP instance, and none for an idle one: an idle
    /// node makes no wake-ups.
    fn schedule(&mut self, now: Instant, key: PipeKey) {
        let ms = self.ms(now);
        let Some(link) = self.links.get_mut(&key.0) else {
            return;
        };
        let (pipe, slot, linger) = if key.1 == 0 {
            (&link.control, &mut link.control_scheduled, None)
        } else {
            let Some(channel) = link.channels.get_mut(&key.1) else {
                return;
            };
            (&channel.kcp, &mut channel.scheduled, channel.linger_until)
        };
        let wanted = if pipe.wait_snd() > 0 {
            let delay = pipe.check(ms).max(1);
            Some(now + Duration::from_millis(delay as u64))
        } else {
            linger
        };
        if *slot == wanted {
            return;
        }
        if let Some(old) = slot.take() {
            self.timers.remove(&(old, key));
        }
        if let Some(at) = wanted {
            *slot = Some(at);
            self.timers.insert((at, key));
        }
    }

    fn fire_pipe_timers(&mut self, now: Instant) {
        let ms = self.ms(now);
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, key));
            let Some(link) = self.links.get_mut(&key.0) else {
                continue;
            };
            if key.1 == 0 {
                link.control_scheduled = None;
                let _ = link.control.update(ms);
                let _ = link.control.flush();
            } else if let Some(channel) = link.channels.get_mut(&key.1) {
                channel.scheduled = None;
                if channel.conn.is_none() && channel.linger_until.is_some_and(|t| t <= now) {
                    link.channels.remove(&key.1);
                    continue;
                }
                let _ = channel.kcp.update(ms);
                let _ = channel.kcp.flush();
                if channel.kcp.is_dead_link() {
                    self.reset_channel(key, "friend stopped acknowledging data".into(), true);
                    continue;
                }
            }
            self.schedule(now, key);
        }
    }

    fn take_net_events(&mut self, now: Instant) {
        while let Some(event) = self.net.poll_event() {
            match event {
                Event::FriendAdded { friend } => {
                    self.events.push_back(NodeEvent::FriendAdded(friend))
                }
                Event::Online { friend, .. } => self.link_up(now, friend),
                Event::Offline { friend, reason } => self.link_down(friend, &reason),
                Event::Received { friend, payload } => self.on_payload(now, friend, &payload),
            }
        }
    }

    fn link_up(&mut self, now: Instant, friend: PublicKey) {
        let ms = self.ms(now);
        let relayed = self.net.is_relayed(now, &friend);
        self.links
            .insert(friend, Link::new(&self.config.kcp, ms, relayed));
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c, Conn::Opening { friend: f, request: None, .. } if *f == friend))
            .map(|(id, _)| *id)
            .collect();
        for conn in waiting {
            self.send_open(conn);
        }
    }

    fn link_down(&mut self, friend: PublicKey, reason: &str) {
        let Some(link) = self.links.remove(&friend) else {
            return;
        };
        if let Some(at) = link.control_scheduled {
            self.timers.remove(&(at, (friend, 0)));
        }
        for (conv, channel) in link.channels {
            if let Some(at) = channel.scheduled {
                self.timers.remove(&(at, (friend, conv)));
            }
            if let Some(conn) = channel.conn {
                self.close(conn, format!("friend went offline ({reason})"));
            }
        }
        for conn in link.requests.into_values() {
            self.close(
                conn,
                format!("friend went offline before answering ({reason})"),
            );
        }
        self.dirty.retain(|(f, _)| *f != friend);
    }

    fn on_payload(&mut self, now: Instant, friend: PublicKey, payload: &[u8]) {
        let Some((&FRAME_KCP, segment)) = payload.split_first() else {
            debug!(friend = %friend.short(), "dropped payload of unknown frame type");
            return;
        };
        // kcp's get_conv asserts on short input; check before asking.
        if segment.len() < KCP_HEADER {
            return;
        }
        let conv = kcp::get_conv(segment);
        let ms = self.ms(now);
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        let pipe = if conv == 0 {
            &mut link.control
        } else if let Some(channel) = link.channels.get_mut(&conv) {
            channel.last_activity = now;
            &mut channel.kcp
        } else {
            debug!(friend = %friend.short(), conv, "dropped segment for an unknown channel");
            return;
        };
        let _ = pipe.update(ms);
        if pipe.input(segment).is_err() {
            debug!(friend = %friend.short(), conv, "dropped malformed KCP input");
            return;
        }
        self.dirty.insert((friend, conv));
        if conv == 0 {
            self.read_control(now, friend);
        } else {
            self.read_channel(now, (friend, conv));
        }
    }

    fn read_control(&mut self, now: Instant, friend: PublicKey) {
        loop {
            let Some(link) = self.links.get_mut(&friend) else {
                return;
            };
            let Ok(n) = link.control.recv(&mut self.recv_buf) else {
                return;
            };
            match Control::decode(&self.recv_buf[..n]) {
                Some(message) => self.on_control(now, friend, message),
                None => debug!(friend = %friend.short(), "dropped malformed control message"),
            }
        }
    }

    fn on_control(&mut self, now: Instant, friend: PublicKey, message: Control) {
        match message {
            Control::Open {
                request,
                protocol,
                target,
            } => self.on_open(friend, request, protocol, target),
            Control::Accept { request, conv } => self.on_accept(now, friend, request, conv),
            Control::Refuse { request, reason } => {
                let Some(conn) = self
                    .links
                    .get_mut(&friend)
                    .and_then(|l| l.requests.remove(&request))
                else {
                    return;
                };
                self.close(conn, format!("refused by the server: {reason}"));
            }
            Control::Reset { conv, reason } => {
                if self
                    .links
                    .get(&friend)
                    .is_some_and(|l| l.channels.contains_key(&conv))
                {
                    self.reset_channel(
                        (friend, conv),
                        format!("reset by the friend: {reason}"),
                        false,
                    );
                }
            }
        }
    }

    fn on_open(&mut self, friend: PublicKey, request: u32, protocol: u8, target: String) {
        let refusal = match &self.config.allow {
            None => Some("this node serves no tunnels".to_string()),
            Some(_) if protocol != PROTOCOL_TCP => {
                Some(format!("protocol {protocol} is not supported"))
            }
            Some(rules) => match allow::permitted(rules, &target) {
                Err(e) => Some(format!("bad target: {e}")),
                Ok(true) => None,
                Ok(false) => Some(format!("target {target} is not in the allow list")),
            },
        };
        if let Some(reason) = refusal {
            warn!(friend = %friend, %target, %reason, "refused tunnel");
            self.send_control(friend, &Control::Refuse { request, reason });
            return;
        }
        debug!(friend = %friend.short(), %target, request, "connecting to target");
        self.events.push_back(NodeEvent::Connect {
            friend,
            request,
            target,
        });
    }

    fn on_accept(&mut self, now: Instant, friend: PublicKey, request: u32, conv: u32) {
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        let Some(conn) = link.requests.remove(&request) else {
            // We gave up on this request already: tell the server to let go.
            let reason = "the client gave up waiting".to_string();
            self.send_control(friend, &Control::Reset { conv, reason });
            return;
        };
        if conv == 0 || link.channels.contains_key(&conv) {
            self.close(
                conn,
                format!("server picked a channel number in use ({conv})"),
            );
            return;
        }
        let target = match self.conns.remove(&conn) {
            Some(Conn::Opening {
                target, deadline, ..
            }) => {
                self.open_deadlines.remove(&(deadline, conn));
                target
            }
            _ => return,
        };
        let ms = self.ms(now);
        let link = self.links.get_mut(&friend).expect("checked");
        let kcp = new_pipe(conv, &self.config.kcp, &link.outbox, ms, link.relayed);
        link.channels.insert(conv, Channel::new(kcp, conn, now));
        self.conns.insert(conn, Conn::Open { friend, conv });
        self.ensure_idle_sweep(now);
        info!(conn, friend = %friend.short(), %target, conv, "tunnel open");
        self.events.push_back(NodeEvent::Opened { conn });
    }

    fn read_channel(&mut self, now: Instant, key: PipeKey) {
        let Some(channel) = self
            .links
            .get_mut(&key.0)
            .and_then(|l| l.channels.get_mut(&key.1))
        else {
            return;
        };
        let Some(conn) = channel.conn else { return };
        while !channel.paused {
            let Ok(n) = channel.kcp.recv(&mut self.recv_buf) else {
                break;
            };
            match self.recv_buf[..n].split_first() {
                Some((&CHANNEL_DATA, bytes)) if !bytes.is_empty() => {
                    self.events.push_back(NodeEvent::Data {
                        conn,
                        bytes: bytes.to_vec(),
                    });
                }
                Some((&CHANNEL_FIN, _)) if !channel.fin_received => {
                    channel.fin_received = true;
                    self.events.push_back(NodeEvent::Eof { conn });
                }
                Some((&CHANNEL_WINDOW, _)) => {}
                _ => debug!(conn, "dropped malformed channel message"),
            }
        }
        if channel.held_credits > 0 && channel.has_room() {
            let chunks = std::mem::take(&mut channel.held_credits);
            self.events.push_back(NodeEvent::Credit { conn, chunks });
        }
        if channel.finished() {
            self.finish_channel(now, key);
        }
    }

    /// Both sides sent FIN and everything is acknowledged: a clean close.
    fn finish_channel(&mut self, now: Instant, key: PipeKey) {
        let Some(channel) = self
            .links
            .get_mut(&key.0)
            .and_then(|l| l.channels.get_mut(&key.1))
        else {
            return;
        };
        let Some(conn) = channel.conn.take() else {
            return;
        };
        channel.linger_until = Some(now + LINGER);
        self.conns.remove(&conn);
        info!(conn, friend = %key.0.short(), conv = key.1, "tunnel closed: both sides finished");
        self.events.push_back(NodeEvent::Closed {
            conn,
            reason: "closed".into(),
        });
        self.dirty.insert(key);
    }

    fn reset_channel(&mut self, key: PipeKey, reason: String, tell_friend: bool) {
        let Some(link) = self.links.get_mut(&key.0) else {
            return;
        };
        let Some(channel) = link.channels.remove(&key.1) else {
            return;
        };
        if let Some(at) = channel.scheduled {
            self.timers.remove(&(at, key));
        }
        self.dirty.remove(&key);
        if tell_friend {
            let message = Control::Reset {
                conv: key.1,
                reason: reason.clone(),
            };
            self.send_control(key.0, &message);
        }
        if let Some(conn) = channel.conn {
            self.close(conn, reason);
        }
    }

    fn close(&mut self, conn: ConnId, reason: String) {
        if let Some(Conn::Opening { deadline, .. }) = self.conns.remove(&conn) {
            self.open_deadlines.remove(&(deadline, conn));
        }
        info!(conn, %reason, "tunnel closed");
        self.events.push_back(NodeEvent::Closed { conn, reason });
    }

    fn send_control(&mut self, friend: PublicKey, message: &Control) {
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        let _ = link.control.send(&message.encode());
        self.dirty.insert((friend, 0));
    }

    /// Client: a local connection arrived for a tunnel to `server`.
    pub fn open(&mut self, now: Instant, conn: ConnId, server: ToxId, target: String) {
        let friend = server.key;
        if !self.net.has_address(&friend) {
            self.close(
                conn,
                format!(
                    "no address known for server {}: add it under [peers] or configure a bootstrap node",
                    friend.short()
                ),
            );
            return;
        }
        let deadline = now + self.config.open_timeout;
        self.conns.insert(
            conn,
            Conn::Opening {
                friend,
                target,
                deadline,
                request: None,
            },
        );
        self.open_deadlines.insert((deadline, conn));
        if self.links.contains_key(&friend) {
            self.send_open(conn);
        } else {
            self.net.connect_now(now, &friend);
        }
    }

    fn send_open(&mut self, conn: ConnId) {
        let Some(Conn::Opening {
            friend,
            target,
            request,
            ..
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        let Some(link) = self.links.get_mut(friend) else {
            return;
        };
        let id = link.next_request;
        link.next_request = link.next_request.wrapping_add(1).max(1);
        link.requests.insert(id, conn);
        *request = Some(id);
        let message = Control::Open {
            request: id,
            protocol: PROTOCOL_TCP,
            target: target.clone(),
        };
        let friend = *friend;
        self.send_control(friend, &message);
    }

    fn expire_opens(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.open_deadlines.first() {
            if at > now {
                break;
            }
            self.open_deadlines.remove(&(at, conn));
            let reason = match self.conns.get(&conn) {
                Some(Conn::Opening {
                    friend,
                    request: None,
                    ..
                }) => {
                    format!(
                        "server {} unreachable for {:?}",
                        friend.short(),
                        self.config.open_timeout
                    )
                }
                Some(Conn::Opening {
                    friend,
                    request: Some(id),
                    ..
                }) => {
                    let (friend, id) = (*friend, *id);
                    if let Some(link) = self.links.get_mut(&friend) {
                        link.requests.remove(&id);
                    }
                    format!(
                        "server {} did not answer within {:?}",
                        friend.short(),
                        self.config.open_timeout
                    )
                }
                _ => continue,
            };
            self.close(conn, reason);
        }
    }

    /// Server: the target answered; assign a conv and tell the client.
    pub fn target_connected(
        &mut self,
        now: Instant,
        friend: PublicKey,
        request: u32,
        conn: ConnId,
    ) -> bool {
        let ms = self.ms(now);
        let Some(link) = self.links.get_mut(&friend) else {
            info!(conn, friend = %friend.short(), "tunnel closed: friend went offline while connecting");
            return false;
        };
        let conv = pick_conv(&friend, ms, link);
        let kcp = new_pipe(conv, &self.config.kcp, &link.outbox, ms, link.relayed);
        link.channels.insert(conv, Channel::new(kcp, conn, now));
        self.conns.insert(conn, Conn::Open { friend, conv });
        self.send_control(friend, &Control::Accept { request, conv });
        self.ensure_idle_sweep(now);
        info!(conn, friend = %friend.short(), conv, "tunnel open");
        true
    }

    pub fn target_failed(&mut self, friend: PublicKey, request: u32, reason: String) {
        warn!(friend = %friend, %reason, "refused tunnel: target unreachable");
        self.send_control(friend, &Control::Refuse { request, reason });
    }

    fn open_channel(&mut self, conn: ConnId) -> Option<(PipeKey, &mut Channel)> {
        let Some(Conn::Open { friend, conv }) = self.conns.get(&conn) else {
            return None;
        };
        let key = (*friend, *conv);
        let channel = self.links.get_mut(friend)?.channels.get_mut(conv)?;
        Some((key, channel))
    }

    /// Bytes the connection's reader took from TCP. Each call uses one credit.
    pub fn send_data(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some((key, channel)) = self.open_channel(conn) else {
            return;
        };
        channel.last_activity = now;
        for chunk in bytes.chunks(MAX_CHUNK) {
            let mut message = Vec::with_capacity(chunk.len() + 1);
            message.push(CHANNEL_DATA);
            message.extend_from_slice(chunk);
            let _ = channel.kcp.send(&message);
        }
        channel.held_credits += 1;
        if channel.has_room() {
            let chunks = std::mem::take(&mut channel.held_credits);
            self.events.push_back(NodeEvent::Credit { conn, chunks });
        }
        self.dirty.insert(key);
    }

    /// The reader hit end of file: FIN goes after the last byte.
    pub fn local_eof(&mut self, now: Instant, conn: ConnId) {
        let Some((key, channel)) = self.open_channel(conn) else {
            return;
        };
        if !channel.fin_sent {
            channel.fin_sent = true;
            let _ = channel.kcp.send(&[CHANNEL_FIN]);
        }
        self.dirty.insert(key);
        self.check_finished(now, key);
    }

    /// The local TCP connection failed: abort the channel with a reason.
    pub fn local_reset(&mut self, conn: ConnId, reason: String) {
        match self.conns.get(&conn) {
            Some(Conn::Open { friend, conv }) => {
                let key = (*friend, *conv);
                self.reset_channel(key, reason, true);
            }
            Some(Conn::Opening { .. }) => self.close(conn, reason),
            None => {}
        }
    }

    /// The writer is full: leave data in KCP so its receive window closes.
    pub fn pause(&mut self, conn: ConnId) {
        if let Some((_, channel)) = self.open_channel(conn) {
            channel.paused = true;
        }
    }

    pub fn resume(&mut self, now: Instant, conn: ConnId) {
        let Some((key, channel)) = self.open_channel(conn) else {
            return;
        };
        if std::mem::take(&mut channel.paused) {
            let _ = channel.kcp.send(&[CHANNEL_WINDOW]);
        }
        self.dirty.insert(key);
        self.read_channel(now, key);
    }

    fn check_finished(&mut self, now: Instant, key: PipeKey) {
        let finished = self
            .links
            .get(&key.0)
            .and_then(|l| l.channels.get(&key.1))
            .is_some_and(|c| c.conn.is_some() && c.finished());
        if finished {
            self.finish_channel(now, key);
        }
    }

    fn ensure_idle_sweep(&mut self, now: Instant) {
        if self.next_idle_sweep.is_none() {
            self.next_idle_sweep = Some(now + self.idle_sweep_every());
        }
    }

    fn idle_sweep_every(&self) -> Duration {
        (self.config.idle_timeout / 4).max(Duration::from_millis(100))
    }

    /// Resets connections idle past the timeout; runs every quarter of the
    /// timeout while any channel exists, so idle nodes stay asleep.
    fn sweep_idle(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let stale: Vec<PipeKey> = self
            .links
            .iter()
            .flat_map(|(friend, link)| {
                link.channels
                    .iter()
                    .filter(|(_, c)| c.conn.is_some() && now >= c.last_activity + idle)
                    .map(|(conv, _)| (*friend, *conv))
            })
            .collect();
        for key in stale {
            let reason = format!("idle for {:?}", idle);
            self.reset_channel(key, reason, true);
        }
        let any = self.links.values().any(|l| !l.channels.is_empty());
        self.next_idle_sweep = any.then(|| now + self.idle_sweep_every());
    }
}

/// `conv = crc32(client key || time || counter)`, never 0 nor one in use.
fn pick_conv(friend: &PublicKey, ms: u32, link: &mut Link) -> u32 {
    loop {
        link.conv_counter = link.conv_counter.wrapping_add(1);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&friend.0);
        hasher.update(&ms.to_le_bytes());
        hasher.update(&link.conv_counter.to_le_bytes());
        let conv = hasher.finalize();
        if conv != 0 && !link.channels.contains_key(&conv) {
            return conv;
        }
    }
}

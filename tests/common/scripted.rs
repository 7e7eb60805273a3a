//! A scripted friend: an authenticated peer whose every message is the
//! test's to choose. It holds a real session with its target (its own
//! friend network, so the target sees a genuine friend) and a control
//! channel of its own, and sends any control message, any KCP segment or
//! any raw payload over that session. For abuse tests against the core (on
//! the simulated network) and against the real binary (on a UDP socket).
//!
//! Its control channel is retransmitted only when it hears from the
//! target: tests that lose datagrams must not lose its own.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use toxtun::id::{PeerRef, ToxId};
use toxtun::proto::identity::Identity;
use toxtun::proto::tunnel::control::Control;
use toxtun::proto::tunnel::kcp_settings::KcpSettings;
use toxtun::proto::tunnel::link::{new_pipe, Pipe};
use toxtun::proto::tunnel::outbox::{Outbox, FRAME_KCP};
use toxtun::proto::{FriendNet, NetEvent, Transmit};

use super::sim::{identity, net_config, Endpoint, UNIX_START};

/// KCP's segment header: `get_conv` needs this much.
const KCP_HEADER: usize = 24;

pub struct ScriptedFriend {
    pub addr: SocketAddr,
    pub identity: std::sync::Arc<Identity>,
    pub net: FriendNet,
    /// The friend it scripts against.
    pub target: ToxId,
    outbox: Outbox,
    control: Pipe,
    start: Instant,
    /// Control messages the target sent, decoded, in order.
    pub received: Vec<Control>,
    /// Payloads the target sent that were not control-channel KCP.
    pub other: Vec<Vec<u8>>,
    pub online: bool,
    /// Takes in nothing the target sends inside the session, so
    /// acknowledges none of it (the session itself stays up).
    pub deaf: bool,
}

impl ScriptedFriend {
    /// A friend of `target`, reachable at `target_addr`, that dials it.
    pub fn new(
        addr: SocketAddr,
        now: Instant,
        seed: u64,
        target: ToxId,
        target_addr: SocketAddr,
    ) -> Self {
        let identity = identity(seed);
        let mut net = FriendNet::new(identity.clone(), net_config(false), now, UNIX_START, seed);
        net.add_friend(now, PeerRef::Id(target), Some(target_addr), true);
        let outbox = Outbox::default();
        let control = new_pipe(0, &KcpSettings::default(), &outbox, 0);
        ScriptedFriend {
            addr,
            identity,
            net,
            target,
            outbox,
            control,
            start: now,
            received: Vec::new(),
            other: Vec::new(),
            online: false,
            deaf: false,
        }
    }

    fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.start).as_millis() as u32
    }

    /// Sends `message` on the control channel, reliably.
    pub fn send_control(&mut self, now: Instant, message: &Control) {
        self.send_control_bytes(now, &message.encode());
    }

    /// Sends any bytes as one control-channel message (malformed ones too).
    pub fn send_control_bytes(&mut self, now: Instant, bytes: &[u8]) {
        let _ = self.control.send(bytes);
        self.flush(now);
    }

    /// Sends one KCP segment as it stands, for any conv.
    pub fn send_segment(&mut self, now: Instant, segment: &[u8]) {
        let mut payload = vec![FRAME_KCP];
        payload.extend_from_slice(segment);
        self.send_payload(now, &payload);
    }

    /// Sends any payload inside the session.
    pub fn send_payload(&mut self, now: Instant, payload: &[u8]) {
        self.net.send(now, &self.target.key, payload);
    }

    fn flush(&mut self, now: Instant) {
        let _ = self.control.update(self.ms(now));
        let _ = self.control.flush();
        while let Some(frame) = self.outbox.pop(now, None) {
            self.net.send(now, &self.target.key, &frame);
        }
    }

    fn take_events(&mut self, now: Instant) {
        while let Some(event) = self.net.poll_event() {
            match event {
                NetEvent::Online { .. } => self.online = true,
                NetEvent::Offline { .. } => self.online = false,
                NetEvent::Received { payload, .. } => self.on_payload(now, payload),
                NetEvent::FriendAdded { .. } | NetEvent::StreamLinkWanted { .. } => {}
            }
        }
    }

    fn on_payload(&mut self, now: Instant, payload: Vec<u8>) {
        if self.deaf {
            return;
        }
        let is_control = payload.first() == Some(&FRAME_KCP)
            && payload.len() > KCP_HEADER
            && kcp::get_conv(&payload[1..]) == 0;
        if !is_control {
            self.other.push(payload);
            return;
        }
        let _ = self.control.update(self.ms(now));
        let _ = self.control.input(&payload[1..]);
        let mut buf = vec![0u8; 70_000];
        while let Ok(n) = self.control.recv(&mut buf) {
            if let Some(message) = Control::decode(&buf[..n]) {
                self.received.push(message);
            }
        }
        self.flush(now);
    }

    /// Drives the session over a real socket until `until` holds or
    /// `timeout` passes; true if it held.
    pub fn drive(
        &mut self,
        socket: &UdpSocket,
        target_addr: SocketAddr,
        timeout: Duration,
        until: &mut dyn FnMut(&ScriptedFriend) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            while let Some(t) = Endpoint::poll_transmit(self, now) {
                let dst = t.unicast_addr().unwrap_or(target_addr);
                socket.send_to(&t.payload, dst).unwrap();
            }
            if until(self) {
                return true;
            }
            if now >= end {
                return false;
            }
            let wake = self.net.poll_timeout().unwrap_or(end).min(end);
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            socket.set_read_timeout(Some(wait)).unwrap();
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => self.handle_datagram(Instant::now(), from, &buf[..n]),
                Err(_) => self.handle_timeout(Instant::now()),
            }
        }
    }
}

impl Endpoint for ScriptedFriend {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.net.handle_datagram(now, from, bytes);
        self.take_events(now);
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        self.net.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.net.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.net.handle_timeout(now);
        self.take_events(now);
        self.flush(now);
    }
}

/// A KCP PUSH segment as a misbehaving friend sends it: `len` bytes on
/// channel `conv` with sequence number `sn`.
pub fn push_segment(conv: u32, sn: u32, len: usize) -> Vec<u8> {
    const PUSH: u8 = 81;
    let mut segment = Vec::with_capacity(KCP_HEADER + len);
    segment.extend_from_slice(&conv.to_le_bytes());
    segment.extend_from_slice(&[PUSH, 0]);
    segment.extend_from_slice(&128u16.to_le_bytes());
    segment.extend_from_slice(&0u32.to_le_bytes());
    segment.extend_from_slice(&sn.to_le_bytes());
    segment.extend_from_slice(&0u32.to_le_bytes());
    segment.extend_from_slice(&(len as u32).to_le_bytes());
    segment.resize(KCP_HEADER + len, 0xEE);
    segment
}

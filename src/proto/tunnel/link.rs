//! A link is what we hold with one online friend: its control channel and
//! its tunnel channels, each a KCP instance writing into the link's outbox.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Instant;

use kcp::Kcp;

use super::intake::Intake;
use super::kcp_settings::KcpSettings;

/// Inner frame type of a DATA payload that carries KCP output.
pub const FRAME_KCP: u8 = 1;

pub type ConnId = u64;

/// KCP writes whole packets here; the core seals each into a DATA packet.
#[derive(Clone, Default)]
pub struct Outbox(Rc<RefCell<VecDeque<Vec<u8>>>>);

impl Outbox {
    pub fn pop(&self) -> Option<Vec<u8>> {
        self.0.borrow_mut().pop_front()
    }
}

impl io::Write for Outbox {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut frame = Vec::with_capacity(buf.len() + 1);
        frame.push(FRAME_KCP);
        frame.extend_from_slice(buf);
        self.0.borrow_mut().push_back(frame);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub type Pipe = Kcp<Outbox>;

/// `relayed`: the path goes through a bootstrap node's relay, which drops
/// what exceeds its per-node rate. Without congestion control KCP keeps
/// its whole window in flight into those drops until the link dies
/// (measured: 1 MiB through a 256 KiB/s relay never finished), so on a
/// relayed path congestion control is always on.
pub fn new_pipe(
    conv: u32,
    settings: &KcpSettings,
    outbox: &Outbox,
    now_ms: u32,
    relayed: bool,
) -> Pipe {
    let mut kcp = Kcp::new(conv, outbox.clone());
    set_pacing(&mut kcp, settings, relayed);
    kcp.set_wndsize(settings.send_window, settings.receive_window);
    kcp.set_mtu(settings.mtu)
        .expect("mtu validated with the config");
    // The first update only starts KCP's clock; nothing is queued yet.
    let _ = kcp.update(now_ms);
    kcp
}

pub struct Channel {
    pub kcp: Pipe,
    /// The driver's connection; None once closed and only lingering.
    pub conn: Option<ConnId>,
    pub fin_sent: bool,
    pub fin_received: bool,
    /// The driver's writer is full: stop taking data out of KCP, so its
    /// receive window closes and the far sender slows down.
    pub paused: bool,
    /// Chunks taken from the reader whose credit is not yet returned.
    pub held_credits: u32,
    pub last_activity: Instant,
    pub linger_until: Option<Instant>,
    /// Deadline this channel holds in the core's timer set.
    pub scheduled: Option<Instant>,
    intake: Intake,
}

impl Channel {
    pub fn new(kcp: Pipe, conn: ConnId, now: Instant) -> Self {
        Channel {
            kcp,
            conn: Some(conn),
            fin_sent: false,
            fin_received: false,
            paused: false,
            held_credits: 0,
            last_activity: now,
            linger_until: None,
            scheduled: None,
            intake: Intake::default(),
        }
    }

    /// Both directions finished and everything we sent is acknowledged.
    pub fn finished(&self) -> bool {
        self.fin_sent && self.fin_received && self.kcp.wait_snd() == 0
    }

    /// KCP has room for more of the reader's bytes.
    pub fn has_room(&self) -> bool {
        self.kcp.wait_snd() < self.kcp.snd_wnd() as usize
    }
}

pub struct Link {
    /// Whether the friend's path is the relay (see `new_pipe`).
    pub relayed: bool,
    /// KCP's packet size on this friend's path (doc/protocol.md, path MTU).
    pub mtu: usize,
    pub outbox: Outbox,
    pub control: Pipe,
    pub control_scheduled: Option<Instant>,
    pub channels: BTreeMap<u32, Channel>,
    pub next_request: u32,
    /// Client side: our OPEN requests waiting for ACCEPT or REFUSE.
    pub requests: BTreeMap<u32, ConnId>,
    /// Counter mixed into conv numbers this side assigns.
    pub conv_counter: u32,
    control_intake: Intake,
    /// Segments the friend's KCP instances may hold on their receive
    /// side, kept as their intakes change (see `intake`).
    receive_held: usize,
    /// Channels whose reader waits for credit only because the friend's
    /// send budget is spent.
    pub starved: BTreeSet<u32>,
}

fn set_pacing(kcp: &mut Pipe, settings: &KcpSettings, relayed: bool) {
    kcp.set_nodelay(
        settings.nodelay,
        settings.interval_ms as i32,
        settings.resend as i32,
        settings.no_congestion_control && !relayed,
    );
}

impl Link {
    pub fn new(settings: &KcpSettings, now_ms: u32, relayed: bool) -> Self {
        let outbox = Outbox::default();
        let control = new_pipe(0, settings, &outbox, now_ms, relayed);
        Link {
            relayed,
            mtu: settings.mtu,
            outbox,
            control,
            control_scheduled: None,
            channels: BTreeMap::new(),
            next_request: 1,
            requests: BTreeMap::new(),
            conv_counter: 0,
            control_intake: Intake::default(),
            receive_held: 0,
            starved: BTreeSet::new(),
        }
    }

    /// Runs `change` on the receive intake of instance `conv` (given its
    /// receive window), keeping the link's total.
    pub fn update_intake<R>(
        &mut self,
        conv: u32,
        change: impl FnOnce(&mut Intake, u16) -> R,
    ) -> Option<R> {
        let (intake, window) = if conv == 0 {
            (&mut self.control_intake, self.control.rcv_wnd())
        } else {
            let channel = self.channels.get_mut(&conv)?;
            (&mut channel.intake, channel.kcp.rcv_wnd())
        };
        let before = intake.held(window);
        let result = change(intake, window);
        self.receive_held = self.receive_held + intake.held(window) - before;
        Some(result)
    }

    pub fn remove_channel(&mut self, conv: u32) -> Option<Channel> {
        let channel = self.channels.remove(&conv)?;
        self.receive_held -= channel.intake.held(channel.kcp.rcv_wnd());
        self.starved.remove(&conv);
        Some(channel)
    }

    /// Segments the friend's instances may hold that it sent us.
    pub fn receive_held(&self) -> usize {
        self.receive_held
    }

    /// Segments we sent the friend (or queued for it) not yet acknowledged.
    pub fn send_backlog(&self) -> usize {
        self.control.wait_snd()
            + self
                .channels
                .values()
                .map(|c| c.kcp.wait_snd())
                .sum::<usize>()
    }

    /// The path's MTU changed: new segments take the new size (ones
    /// already queued keep theirs).
    pub fn set_mtu(&mut self, mtu: usize) {
        if self.mtu == mtu {
            return;
        }
        self.mtu = mtu;
        let _ = self.control.set_mtu(mtu);
        for channel in self.channels.values_mut() {
            let _ = channel.kcp.set_mtu(mtu);
        }
    }

    /// A new channel's KCP instance, at the path's MTU.
    pub fn new_channel_pipe(&self, conv: u32, settings: &KcpSettings, now_ms: u32) -> Pipe {
        let mut kcp = new_pipe(conv, settings, &self.outbox, now_ms, self.relayed);
        let _ = kcp.set_mtu(self.mtu);
        kcp
    }

    /// The friend's path moved between direct and relayed.
    pub fn set_relayed(&mut self, settings: &KcpSettings, relayed: bool) {
        if self.relayed == relayed {
            return;
        }
        self.relayed = relayed;
        set_pacing(&mut self.control, settings, relayed);
        for channel in self.channels.values_mut() {
            set_pacing(&mut channel.kcp, settings, relayed);
        }
    }
}

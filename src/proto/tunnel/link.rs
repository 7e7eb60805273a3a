//! A link is what we hold with one online friend: its control channel and
//! its tunnel channels, each a KCP instance writing into the link's outbox.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kcp::Kcp;

use super::congestion::PathControl;
use super::intake::Intake;
use super::kcp_settings::KcpSettings;
use super::outbox::Outbox;
use crate::proto::snapshot::CongestionSnapshot;

pub type ConnId = u64;

pub type Pipe = Kcp<Outbox>;

/// KCP's own congestion window stays off: the path's controller (when
/// on) sets each instance's send window instead.
pub fn new_pipe(conv: u32, settings: &KcpSettings, outbox: &Outbox, now_ms: u32) -> Pipe {
    let mut kcp = Kcp::new(conv, outbox.clone());
    kcp.set_nodelay(
        settings.nodelay,
        settings.interval_ms as i32,
        settings.resend as i32,
        true,
    );
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

    /// KCP holds fewer than `window` segments: room for more of the
    /// reader's bytes.
    pub fn has_room(&self, window: u16) -> bool {
        self.kcp.wait_snd() < window as usize
    }
}

/// A UDP tunnel's flow: no queue and no state of the datagrams, which
/// go as they come (`flows`).
pub struct Flow {
    /// The driver's flow.
    pub conn: ConnId,
    pub last_activity: Instant,
}

impl Flow {
    pub fn new(conn: ConnId, now: Instant) -> Self {
        Flow {
            conn,
            last_activity: now,
        }
    }
}

pub struct Link {
    /// Whether the friend's path is the relay, which drops what exceeds
    /// its per-node rate: congestion control is always on there (without
    /// it, 1 MiB through a 256 KiB/s relay never finished).
    pub relayed: bool,
    /// The path's congestion controller; None when `nc` turned it off.
    pub path: Option<PathControl>,
    /// KCP's packet size on this friend's path (doc/protocol.md, path MTU).
    pub mtu: usize,
    pub outbox: Outbox,
    pub control: Pipe,
    pub control_scheduled: Option<Instant>,
    /// Time this link's pacer holds in the core's timer set.
    pub pacer_due: Option<Instant>,
    pub channels: BTreeMap<u32, Channel>,
    /// UDP tunnels, by conv (channels and flows share the numbers).
    pub flows: BTreeMap<u32, Flow>,
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
    /// The share of the path's window the last `prepare_send` gave each
    /// busy instance, and the demands (segments waiting, ascending) it
    /// found: kept so that the next applies its share in the same pass
    /// that gathers its demands.
    share: u16,
    demands: Vec<u64>,
}

fn controlled(settings: &KcpSettings, relayed: bool) -> bool {
    !settings.no_congestion_control || relayed
}

impl Link {
    pub fn new(settings: &KcpSettings, now: Instant, now_ms: u32, relayed: bool) -> Self {
        let outbox = Outbox::default();
        let control = new_pipe(0, settings, &outbox, now_ms);
        Link {
            relayed,
            path: controlled(settings, relayed).then(|| PathControl::new(now, settings.mtu)),
            mtu: settings.mtu,
            outbox,
            control,
            control_scheduled: None,
            pacer_due: None,
            channels: BTreeMap::new(),
            flows: BTreeMap::new(),
            next_request: 1,
            requests: BTreeMap::new(),
            conv_counter: 0,
            control_intake: Intake::default(),
            receive_held: 0,
            starved: BTreeSet::new(),
            share: 0,
            demands: Vec::new(),
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

    /// Whether a channel or a flow has this conv.
    pub fn conv_in_use(&self, conv: u32) -> bool {
        self.channels.contains_key(&conv) || self.flows.contains_key(&conv)
    }

    pub fn remove_channel(&mut self, conv: u32) -> Option<Channel> {
        let channel = self.channels.remove(&conv)?;
        self.receive_held -= channel.intake.held(channel.kcp.rcv_wnd());
        self.starved.remove(&conv);
        self.outbox.forget(conv);
        if let Some(path) = &mut self.path {
            path.forget(conv);
        }
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
        if let Some(path) = &mut self.path {
            path.set_mtu(mtu);
        }
        let _ = self.control.set_mtu(mtu);
        for channel in self.channels.values_mut() {
            let _ = channel.kcp.set_mtu(mtu);
        }
    }

    /// A new channel's KCP instance, at the path's MTU and the window its
    /// share of the path allows.
    pub fn new_channel_pipe(&self, conv: u32, settings: &KcpSettings, now_ms: u32) -> Pipe {
        let mut kcp = new_pipe(conv, settings, &self.outbox, now_ms);
        let _ = kcp.set_mtu(self.mtu);
        let mut demands = self.demands.clone();
        demands.push(u64::MAX);
        kcp.set_wndsize(
            self.window_share(settings, &demands),
            settings.receive_window,
        );
        kcp
    }

    /// The friend's path moved between direct and relayed.
    pub fn set_relayed(&mut self, now: Instant, settings: &KcpSettings, relayed: bool) {
        if self.relayed == relayed {
            return;
        }
        self.relayed = relayed;
        // A new path: what was learned of the old one does not hold.
        self.path = controlled(settings, relayed).then(|| PathControl::new(now, self.mtu));
        if self.path.is_none() {
            self.prepare_send(settings);
        }
    }

    /// Each busy instance's part of the path's window, in segments, for
    /// these demands (segments waiting, ascending): never more than
    /// configured, never so little that a loss stalls it. The window is
    /// shared max-min fairly: an instance that needs less than an equal
    /// part (an interactive tunnel with a segment or two waiting) has what
    /// it needs, and the others split the rest. Split equally, an echo
    /// beside a download held the download to half the window, and the
    /// model, measuring half the path, shrank to a sixth of it.
    fn window_share(&self, settings: &KcpSettings, demands: &[u64]) -> u16 {
        let Some(path) = &self.path else {
            return settings.send_window;
        };
        let share = water_level(path.model().cwnd() / self.segment_bytes(), demands);
        share.clamp(MIN_WINDOW_SHARE, settings.send_window as u64) as u16
    }

    /// A whole segment, header included, as the path's window counts
    /// what is in flight.
    fn segment_bytes(&self) -> u64 {
        self.mtu.max(1) as u64
    }

    /// Before a send: sets every busy instance's send window to its share
    /// of the path's, plus what the friend acknowledged beyond a segment
    /// it lacks (KCP counts those in its window until the hole is filled,
    /// and without them each loss would stall the channel for a round
    /// trip). Returns whether the channels have less to send than the
    /// path's window allows: the delivery rate then measures them, not the
    /// path. What a channel's friend has no room for counts as nothing to
    /// send: a reader that pauses says nothing about the path either, and
    /// a model taught by its slow acknowledgements would pace every
    /// channel at its pace.
    ///
    /// One pass over the channels while the share holds: this runs before
    /// every send, and up to 256 closed channels linger per friend (three
    /// passes, one of them with a lookup per channel, cost a new
    /// connection a sixth of its time).
    pub fn prepare_send(&mut self, settings: &KcpSettings) -> bool {
        let mut sendable = self.apply_share(settings, self.share);
        let share = self.window_share(settings, &self.demands);
        if share != self.share {
            self.share = share;
            sendable = self.apply_share(settings, share);
        }
        let Some(path) = &self.path else {
            return false;
        };
        sendable * self.segment_bytes() + (self.outbox.queued_bytes() as u64) < path.model().cwnd()
    }

    /// Sets each busy instance's window from `share` and gathers the
    /// demands; returns the segments the instances may send now.
    fn apply_share(&mut self, settings: &KcpSettings, share: u16) -> u64 {
        let receive = settings.receive_window;
        let path = &self.path;
        let window = |conv: u32| {
            let beyond = path
                .as_ref()
                .map_or(0, |p| p.acknowledged_beyond_hole(conv));
            (share as u32 + beyond).min(settings.send_window as u32) as u16
        };
        let sendable = |kcp: &Pipe| {
            let window = kcp.snd_wnd().min(kcp.rmt_wnd()) as usize;
            kcp.wait_snd().min(window) as u64
        };
        self.demands.clear();
        let control = window(0);
        if self.control.snd_wnd() != control {
            self.control.set_wndsize(control, receive);
        }
        let mut segments = sendable(&self.control);
        if self.control.wait_snd() > 0 {
            self.demands.push(self.control.wait_snd() as u64);
        }
        for (&conv, channel) in self.channels.iter_mut() {
            let waiting = channel.kcp.wait_snd();
            if waiting == 0 {
                continue;
            }
            let wanted = window(conv);
            if channel.kcp.snd_wnd() != wanted {
                channel.kcp.set_wndsize(wanted, receive);
            }
            segments += sendable(&channel.kcp);
            self.demands.push(waiting as u64);
        }
        self.demands.sort_unstable();
        segments
    }

    pub fn congestion_snapshot(&self) -> Option<CongestionSnapshot> {
        let path = self.path.as_ref()?;
        let model = path.model();
        Some(CongestionSnapshot {
            phase: model.phase().name(),
            bandwidth: model.bandwidth(),
            min_rtt: model.min_rtt(),
            recent_rtt: model.recent_round_trip(),
            pacing_rate: model.pacing_rate(),
            window: model.cwnd(),
            in_flight: path.in_flight(),
            queued: self.outbox.queued_bytes(),
            resent: path.resent(),
        })
    }
}

/// The part of `total` each of the demands (ascending) may take, so that
/// those below it take what they ask and the rest share what is left
/// equally: the largest level that fits. With room for every demand, the
/// whole of `total`: the window is recomputed before every send.
fn water_level(total: u64, ascending: &[u64]) -> u64 {
    let mut remaining = total;
    for (taken, &demand) in ascending.iter().enumerate() {
        let equal = remaining / (ascending.len() - taken) as u64;
        if demand > equal {
            return equal;
        }
        remaining -= demand;
    }
    total
}

/// Segments a busy instance may always have in flight: enough for fast
/// retransmission (two later segments acknowledged) to work.
const MIN_WINDOW_SHARE: u64 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// A link whose path controller is on, with channels 1 to `count`.
    fn link_with_channels(settings: &KcpSettings, count: u32) -> Link {
        let now = Instant::now();
        let mut link = Link::new(settings, now, 0, false);
        for conv in 1..=count {
            let kcp = link.new_channel_pipe(conv, settings, 0);
            link.channels
                .insert(conv, Channel::new(kcp, conv.into(), now));
        }
        link
    }

    fn queue(link: &mut Link, conv: u32, segments: usize) {
        let kcp = &mut link.channels.get_mut(&conv).unwrap().kcp;
        for _ in 0..segments {
            kcp.send(&[0; 100]).unwrap();
        }
    }

    /// The share a call applies is the one its own demands give, though
    /// it starts from the last call's: an echo that joins a download has
    /// its part at once, and the download gives it up at once.
    #[test]
    fn a_channel_that_becomes_busy_changes_the_shares_in_the_same_call() {
        let settings = KcpSettings::default();
        let mut link = link_with_channels(&settings, 3);
        let path_window = link.path.as_ref().unwrap().model().cwnd() / link.segment_bytes();
        queue(&mut link, 1, 5000);
        assert!(
            !link.prepare_send(&settings),
            "more waits than the path takes"
        );
        let window = |link: &Link, conv: u32| link.channels[&conv].kcp.snd_wnd() as u64;
        assert_eq!(window(&link, 1), path_window);

        queue(&mut link, 2, 1);
        link.prepare_send(&settings);
        assert_eq!(window(&link, 1), path_window - 1);
        assert_eq!(window(&link, 2), path_window - 1);
        // Channel 3 has nothing to send: it keeps the window it opened with.
        assert_eq!(window(&link, 3), path_window);
    }

    #[test]
    fn a_link_with_less_to_send_than_its_window_is_app_limited() {
        let settings = KcpSettings::default();
        let mut link = link_with_channels(&settings, 1);
        queue(&mut link, 1, 2);
        assert!(link.prepare_send(&settings));
    }

    #[test]
    fn an_interactive_channel_takes_what_it_needs_and_a_bulk_one_the_rest() {
        // An echo with one segment waiting beside a download.
        assert_eq!(water_level(100, &[1, 5000]), 99);
        // Two downloads split the window; a third channel's two segments
        // come off it first.
        assert_eq!(water_level(100, &[3000, 5000]), 50);
        assert_eq!(water_level(100, &[2, 3000, 5000]), 49);
        // Room for everyone: each may take the whole window.
        assert_eq!(water_level(100, &[3, 10]), 100);
        assert_eq!(water_level(100, &[]), 100);
    }
}

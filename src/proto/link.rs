//! A link is what we hold with one online friend: its control channel and
//! its tunnel channels, each a KCP instance writing into the link's outbox.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Instant;

use kcp::Kcp;

use crate::kcp_mode::KcpSettings;

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

pub fn new_pipe(conv: u32, settings: &KcpSettings, outbox: &Outbox, now_ms: u32) -> Pipe {
    let mut kcp = Kcp::new(conv, outbox.clone());
    kcp.set_nodelay(
        settings.nodelay,
        settings.interval_ms as i32,
        settings.resend as i32,
        settings.no_congestion_control,
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
    pub outbox: Outbox,
    pub control: Pipe,
    pub control_scheduled: Option<Instant>,
    pub channels: HashMap<u32, Channel>,
    pub next_request: u32,
    /// Client side: our OPEN requests waiting for ACCEPT or REFUSE.
    pub requests: HashMap<u32, ConnId>,
    /// Counter mixed into conv numbers this side assigns.
    pub conv_counter: u32,
}

impl Link {
    pub fn new(settings: &KcpSettings, now_ms: u32) -> Self {
        let outbox = Outbox::default();
        let control = new_pipe(0, settings, &outbox, now_ms);
        Link {
            outbox,
            control,
            control_scheduled: None,
            channels: HashMap::new(),
            next_request: 1,
            requests: HashMap::new(),
            conv_counter: 0,
        }
    }
}

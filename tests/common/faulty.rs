//! A server and a client core on a network that misbehaves, in virtual
//! time and deterministically: every datagram may be lost, duplicated or
//! delayed with jitter (so reordered); the path may go dark for a while;
//! the client's NAT may rebind (the server sees it at a new address and
//! the old one goes dead); either side may restart (a new core with the
//! same key) with its wall clock stepped an hour either way. Beside each
//! core runs what its driver would: the client's local connections send a
//! pattern and the server's targets answer with one, as fast as credits
//! allow. Everything is drawn from one seed, so a run replays exactly and
//! its trace (every datagram delivered, every event) can be compared.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use toxtun::id::PeerRef;
use toxtun::proto::reason::CloseReason;
use toxtun::proto::tunnel::allow::AllowRule;
use toxtun::proto::tunnel::control::Transport;
use toxtun::proto::{Event, FriendNetConfig};

use super::sim::{addr, Host, UNIX_START};
use super::traffic::Pattern;

const SERVER_PORT: u16 = 1;
const CLIENT_PORT: u16 = 2;
/// Where the client's NAT maps it after a rebinding.
const REBOUND_PORT: u16 = 3;
/// What a reader takes per credit, as the driver's.
const CHUNK: usize = 16 * 1024;
const INITIAL_CREDITS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// One run's faults.
#[derive(Debug, Clone)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    /// One-way delay, and up to this much more at random per datagram.
    pub delay: Duration,
    pub jitter: Duration,
    /// From when, for how long, nothing gets through.
    pub blackout: Option<(Duration, Duration)>,
    pub rebind_at: Option<Duration>,
    /// Which side restarts when, and how far its wall clock moved.
    pub restart: Option<(Side, Duration, i64)>,
}

impl Faults {
    /// The fault list, one kind per seed in turn, each drawn from the seed.
    pub fn for_seed(seed: u64) -> Faults {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut faults = Faults {
            loss: rng.gen_range(0.0..0.05),
            duplicate: 0.0,
            delay: Duration::from_millis(rng.gen_range(0..30)),
            jitter: Duration::ZERO,
            blackout: None,
            rebind_at: None,
            restart: None,
        };
        let early = |rng: &mut StdRng| Duration::from_millis(rng.gen_range(200..1500));
        match seed % 6 {
            0 => faults.loss = rng.gen_range(0.0..0.30),
            1 => {
                faults.jitter = Duration::from_millis(rng.gen_range(1..40));
                faults.duplicate = rng.gen_range(0.0..0.2);
            }
            2 => {
                faults.blackout =
                    Some((early(&mut rng), Duration::from_secs(rng.gen_range(2..=20))))
            }
            3 => faults.rebind_at = Some(early(&mut rng)),
            4 => {
                let side = if rng.gen_bool(0.5) {
                    Side::Server
                } else {
                    Side::Client
                };
                let step = if rng.gen_bool(0.5) { 3600 } else { -3600 };
                faults.restart = Some((side, early(&mut rng), step));
            }
            _ => {
                faults.loss = rng.gen_range(0.0..0.15);
                faults.jitter = Duration::from_millis(rng.gen_range(1..20));
                faults.duplicate = rng.gen_range(0.0..0.05);
            }
        }
        faults
    }
}

/// One tunnelled connection as both drivers see it.
#[derive(Debug, Default)]
pub struct Flow {
    /// Bytes the client's local side sent and received, and the same at
    /// the server's target.
    pub client_sent: usize,
    pub client_received: Vec<u8>,
    pub server_sent: usize,
    pub server_received: Vec<u8>,
    pub client_credits: u32,
    pub server_credits: u32,
    pub opened: bool,
    pub client_closed: Option<CloseReason>,
    pub server_closed: Option<CloseReason>,
    /// Opened after the restart, on the new core.
    pub after_restart: bool,
    /// Its local end died with the side that restarted.
    pub killed: bool,
    client_eof: bool,
    server_eof: bool,
}

/// The pattern a side sends on connection `conn`: client or server.
pub fn pattern(conn: u64, from_client: bool, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    Pattern::new(conn * 2 + u64::from(from_client)).fill(&mut bytes);
    bytes
}

struct InFlight {
    deliver_at: Instant,
    sequence: u64,
    to_server: bool,
    from: SocketAddr,
    payload: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at, self.sequence) == (other.deliver_at, other.sequence)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deliver_at, self.sequence).cmp(&(other.deliver_at, other.sequence))
    }
}

pub struct FaultyRun {
    pub faults: Faults,
    pub flows: BTreeMap<u64, Flow>,
    /// SHA-256 over every datagram delivered and every event, in order.
    pub trace: [u8; 32],
    pub virtual_time: Duration,
}

struct World {
    start: Instant,
    now: Instant,
    rng: StdRng,
    faults: Faults,
    server: Host,
    client: Host,
    /// (conn id on the client) -> flow; the server side is found by request.
    flows: BTreeMap<u64, Flow>,
    server_conns: BTreeMap<u64, u64>,
    next_server_conn: u64,
    queue: BinaryHeap<Reverse<InFlight>>,
    sequence: u64,
    rebound: bool,
    restarted: bool,
    trace: Sha256,
    len: usize,
}

fn allow_all() -> Option<Vec<AllowRule>> {
    Some(vec![AllowRule {
        host: None,
        port: None,
    }])
}

/// Default timers, as users run them.
fn config(server: bool) -> FriendNetConfig {
    FriendNetConfig {
        keepalive: Duration::from_secs(15),
        friend_timeout: Duration::from_secs(45),
        psk: [0; 32],
        accept_requests: server,
        lan_discovery: false,
        max_friends: 1024,
    }
}

fn wall_clock(elapsed: Duration, step: i64) -> Duration {
    let seconds = (UNIX_START + elapsed).as_secs() as i64 + step;
    Duration::from_secs(seconds as u64)
}

impl World {
    fn new(seed: u64, len: usize) -> World {
        let start = Instant::now();
        let server = Host::with_clock(
            SERVER_PORT,
            start,
            seed,
            allow_all(),
            config(true),
            UNIX_START,
        );
        let client = new_client(start, seed + 1, &server, UNIX_START);
        World {
            start,
            now: start,
            rng: StdRng::seed_from_u64(seed),
            faults: Faults::for_seed(seed),
            server,
            client,
            flows: BTreeMap::new(),
            server_conns: BTreeMap::new(),
            next_server_conn: 1 << 32,
            queue: BinaryHeap::new(),
            sequence: 0,
            rebound: false,
            restarted: false,
            trace: Sha256::new(),
            len,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn open(&mut self, conn: u64) {
        let server_id = self.server.id();
        // The target names the connection, so the server's side can tell
        // which flow a Connect is for.
        let target = format!("127.0.0.1:{conn}");
        self.client
            .core
            .open(self.now, conn, server_id, target, Transport::Tcp);
        let flow = Flow {
            after_restart: self.restarted,
            ..Flow::default()
        };
        self.flows.insert(conn, flow);
    }

    /// The client's address as the server sees it.
    fn client_public(&self) -> SocketAddr {
        addr(if self.rebound {
            REBOUND_PORT
        } else {
            CLIENT_PORT
        })
    }

    fn dark(&self) -> bool {
        self.faults
            .blackout
            .is_some_and(|(from, length)| self.elapsed() >= from && self.elapsed() < from + length)
    }

    fn send(&mut self, to_server: bool, payload: Vec<u8>, dst: Option<SocketAddr>) {
        let reachable = if to_server {
            dst == Some(self.server.addr)
        } else {
            dst == Some(self.client_public())
        };
        if !reachable || self.dark() || self.rng.gen_bool(self.faults.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        let from = if to_server {
            self.client_public()
        } else {
            self.server.addr
        };
        for _ in 0..copies {
            let jitter = self.faults.jitter.mul_f64(self.rng.gen_range(0.0..1.0));
            self.sequence += 1;
            self.queue.push(Reverse(InFlight {
                deliver_at: self.now + self.faults.delay + jitter,
                sequence: self.sequence,
                to_server,
                from,
                payload: payload.clone(),
            }));
        }
    }

    fn transmit(&mut self) {
        loop {
            let mut moved = false;
            for to_server in [true, false] {
                loop {
                    let host = if to_server {
                        &mut self.client
                    } else {
                        &mut self.server
                    };
                    let Some(t) = host.core.poll_transmit(self.now) else {
                        break;
                    };
                    moved = true;
                    let dst = t.unicast_addr();
                    self.send(to_server, t.payload, dst);
                }
            }
            if !self.drive_apps() && !moved {
                return;
            }
        }
    }

    /// The drivers: hand out events, feed readers while they have credit.
    /// True if anything happened.
    fn drive_apps(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.client.core.poll_event() {
            any = true;
            self.trace.update(format!("c {event:?}").as_bytes());
            self.on_client_event(event);
        }
        while let Some(event) = self.server.core.poll_event() {
            any = true;
            self.trace.update(format!("s {event:?}").as_bytes());
            self.on_server_event(event);
        }
        let now = self.now;
        let len = self.len;
        for (&conn, flow) in self.flows.iter_mut() {
            if !flow.opened || flow.client_closed.is_some() {
                continue;
            }
            while flow.client_credits > 0 && flow.client_sent < len {
                let end = (flow.client_sent + CHUNK).min(len);
                let bytes = pattern(conn, true, len)[flow.client_sent..end].to_vec();
                self.client.core.send_data(now, conn, &bytes);
                flow.client_sent = end;
                flow.client_credits -= 1;
                any = true;
            }
            if flow.client_sent == len && !flow.client_eof {
                flow.client_eof = true;
                self.client.core.local_eof(now, conn);
                any = true;
            }
        }
        for (&server_conn, &conn) in self.server_conns.iter() {
            let Some(flow) = self.flows.get_mut(&conn) else {
                continue;
            };
            if flow.server_closed.is_some() {
                continue;
            }
            while flow.server_credits > 0 && flow.server_sent < len {
                let end = (flow.server_sent + CHUNK).min(len);
                let bytes = pattern(conn, false, len)[flow.server_sent..end].to_vec();
                self.server.core.send_data(now, server_conn, &bytes);
                flow.server_sent = end;
                flow.server_credits -= 1;
                any = true;
            }
            if flow.server_sent == len && !flow.server_eof {
                flow.server_eof = true;
                self.server.core.local_eof(now, server_conn);
                any = true;
            }
        }
        any
    }

    fn on_client_event(&mut self, event: Event) {
        match event {
            Event::Opened { conn } => {
                if let Some(flow) = self.flows.get_mut(&conn) {
                    flow.opened = true;
                    flow.client_credits = INITIAL_CREDITS;
                }
            }
            Event::Data { conn, bytes } => {
                if let Some(flow) = self.flows.get_mut(&conn) {
                    flow.client_received.extend_from_slice(&bytes);
                }
            }
            Event::Credit { conn, chunks } => {
                if let Some(flow) = self.flows.get_mut(&conn) {
                    flow.client_credits += chunks;
                }
            }
            Event::Closed { conn, reason } => {
                if let Some(flow) = self.flows.get_mut(&conn) {
                    flow.client_closed = Some(reason);
                }
            }
            _ => {}
        }
    }

    fn on_server_event(&mut self, event: Event) {
        match event {
            Event::Connect {
                friend,
                request,
                target,
                ..
            } => {
                let conn = self.next_server_conn;
                self.next_server_conn += 1;
                let client_conn: u64 = target.rsplit(':').next().unwrap().parse().unwrap();
                if self.server.core.target_connected(
                    self.now,
                    friend,
                    request,
                    conn,
                    Transport::Tcp,
                ) {
                    self.server_conns.insert(conn, client_conn);
                    if let Some(flow) = self.flows.get_mut(&client_conn) {
                        flow.server_credits = INITIAL_CREDITS;
                    }
                }
            }
            Event::Data { conn, bytes } => {
                if let Some(flow) = self.server_flow(conn) {
                    flow.server_received.extend_from_slice(&bytes);
                }
            }
            Event::Credit { conn, chunks } => {
                if let Some(flow) = self.server_flow(conn) {
                    flow.server_credits += chunks;
                }
            }
            Event::Closed { conn, reason } => {
                if let Some(flow) = self.server_flow(conn) {
                    flow.server_closed = Some(reason);
                }
            }
            _ => {}
        }
    }

    fn server_flow(&mut self, conn: u64) -> Option<&mut Flow> {
        let client_conn = *self.server_conns.get(&conn)?;
        self.flows.get_mut(&client_conn)
    }

    fn restart(&mut self, side: Side, step: i64) {
        let clock = wall_clock(self.elapsed(), step);
        let seed = self.rng.gen();
        match side {
            Side::Server => {
                self.server = Host::with_clock(
                    SERVER_PORT,
                    self.now,
                    seed,
                    allow_all(),
                    config(true),
                    clock,
                );
                self.server_conns.clear();
            }
            Side::Client => self.client = new_client(self.now, seed, &self.server, clock),
        }
        for flow in self.flows.values_mut() {
            flow.killed = true;
        }
        self.restarted = true;
    }
}

fn new_client(now: Instant, seed: u64, server: &Host, clock: Duration) -> Host {
    let mut client = Host::with_clock(CLIENT_PORT, now, seed, None, config(false), clock);
    client
        .core
        .net_mut()
        .add_friend(now, PeerRef::Id(server.id()), Some(server.addr), true);
    client.core.handle_timeout(now);
    client
}

/// Runs `tunnels` connections moving `len` bytes each way under the
/// seed's faults, until all are done or `limit` of virtual time passed;
/// after a restart, as many again are opened on the new core.
pub fn run(seed: u64, tunnels: u64, len: usize, limit: Duration) -> FaultyRun {
    let mut w = World::new(seed, len);
    for conn in 1..=tunnels {
        w.open(conn);
    }
    let end = w.start + limit;
    loop {
        w.transmit();
        let all_done = w.flows.values().all(|f| {
            f.killed || (f.client_closed.is_some() && (f.server_closed.is_some() || !f.opened))
        });
        if all_done && (w.faults.restart.is_none() || w.restarted) {
            break;
        }
        let next_event = [
            w.queue.peek().map(|Reverse(d)| d.deliver_at),
            w.server.core.poll_timeout(),
            w.client.core.poll_timeout(),
            w.faults
                .rebind_at
                .filter(|_| !w.rebound)
                .map(|at| w.start + at),
            w.faults
                .restart
                .filter(|_| !w.restarted)
                .map(|(_, at, _)| w.start + at),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next_event else { break };
        if next > end {
            break;
        }
        w.now = w.now.max(next);
        if let Some(at) = w.faults.rebind_at {
            if !w.rebound && w.now >= w.start + at {
                w.rebound = true;
            }
        }
        if let Some((side, at, step)) = w.faults.restart {
            if !w.restarted && w.now >= w.start + at {
                w.restart(side, step);
                for conn in tunnels + 1..=2 * tunnels {
                    w.open(conn);
                }
            }
        }
        while w
            .queue
            .peek()
            .is_some_and(|Reverse(d)| d.deliver_at <= w.now)
        {
            let Reverse(datagram) = w.queue.pop().unwrap();
            w.trace.update(&datagram.payload);
            let now = w.now;
            let host = if datagram.to_server {
                &mut w.server
            } else {
                &mut w.client
            };
            host.core
                .handle_datagram(now, datagram.from, &datagram.payload);
        }
        let now = w.now;
        for host in [&mut w.server, &mut w.client] {
            if host.core.poll_timeout().is_some_and(|t| t <= now) {
                host.core.handle_timeout(now);
            }
        }
    }
    FaultyRun {
        virtual_time: w.elapsed(),
        faults: w.faults,
        flows: w.flows,
        trace: w.trace.finalize().into(),
    }
}

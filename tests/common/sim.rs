//! Cores on an in-memory network with virtual time. Time jumps straight to
//! the earliest `poll_timeout`, so a minute of protocol runs in
//! milliseconds, and a run with the same seeds is the same run.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use toxtun::id::ToxId;
use toxtun::proto::identity::Identity;
use toxtun::proto::tunnel::allow::AllowRule;
use toxtun::proto::tunnel::control::Transport;
use toxtun::proto::tunnel::kcp_settings::KcpSettings;
use toxtun::proto::tunnel::limits::TunnelLimits;
use toxtun::proto::{Core, Event, FriendNet, FriendNetConfig, Transmit, TunnelConfig};

/// The wall clock every simulated node believes in.
pub const UNIX_START: Duration = Duration::from_secs(1_800_000_000);

/// Anything on the simulated network: a core, or a scripted friend.
pub trait Endpoint: Any {
    fn addr(&self) -> SocketAddr;
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
}

pub fn identity(seed: u64) -> Arc<Identity> {
    Arc::new(Identity::generate_from(
        &mut rand::rngs::StdRng::seed_from_u64(seed),
    ))
}

/// Short timers, so that tests of outages run quickly even in real time.
pub fn net_config(accept_requests: bool) -> FriendNetConfig {
    FriendNetConfig {
        keepalive: Duration::from_secs(2),
        friend_timeout: Duration::from_secs(6),
        psk: [0; 32],
        accept_requests,
        lan_discovery: false,
        max_friends: 1024,
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// A whole node's core at `addr(port)`, its events kept.
pub struct Host {
    pub addr: SocketAddr,
    pub identity: Arc<Identity>,
    pub core: Core,
    pub events: Vec<Event>,
}

impl Host {
    /// A server that accepts anyone who knows its ID and allows every
    /// target, or a client.
    pub fn new(port: u16, now: Instant, server: bool, seed: u64) -> Host {
        let allow_all = AllowRule {
            host: None,
            port: None,
        };
        Self::with_allow(port, now, seed, server.then(|| vec![allow_all]))
    }

    /// A server (allow list given) or a client (None). Its keys come from
    /// its port, everything its core draws from `seed`.
    pub fn with_allow(port: u16, now: Instant, seed: u64, allow: Option<Vec<AllowRule>>) -> Host {
        let config = net_config(allow.is_some());
        Self::with_config(port, now, seed, allow, config)
    }

    pub fn with_config(
        port: u16,
        now: Instant,
        seed: u64,
        allow: Option<Vec<AllowRule>>,
        config: FriendNetConfig,
    ) -> Host {
        Self::with_clock(port, now, seed, allow, config, UNIX_START)
    }

    /// Like `with_config`, believing the wall clock says `unix_now`.
    pub fn with_clock(
        port: u16,
        now: Instant,
        seed: u64,
        allow: Option<Vec<AllowRule>>,
        config: FriendNetConfig,
        unix_now: Duration,
    ) -> Host {
        let identity = identity(port.into());
        let net = FriendNet::new(identity.clone(), config, now, unix_now, seed);
        let tunnels = TunnelConfig {
            kcp: KcpSettings::default(),
            open_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(3600),
            udp_idle_timeout: Duration::from_secs(60),
            limits: TunnelLimits::default(),
            allow,
            services: Default::default(),
        };
        Host {
            addr: addr(port),
            identity,
            core: Core::new(net, tunnels, now),
            events: Vec::new(),
        }
    }

    pub fn id(&self) -> ToxId {
        self.identity.id()
    }

    /// Every byte that arrived for connection `conn`, in order.
    pub fn received(&self, conn: u64) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Data { conn: c, bytes } if *c == conn => Some(bytes.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }
}

impl Endpoint for Host {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.core.handle_datagram(now, from, bytes);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        // Events first: the driver hands them out before it sends.
        while let Some(event) = self.core.poll_event() {
            self.events.push(event);
        }
        self.core.poll_transmit(now)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }
}

/// Says whether to lose a datagram: (index of the sender, its bytes).
pub type Loss<'a> = &'a mut dyn FnMut(usize, &[u8]) -> bool;

/// Handles of one turn at the same instant before the run is declared a
/// timer loop (a deadline that never moves on).
const MAX_TURNS_AT_ONE_INSTANT: usize = 10_000;

pub struct Net {
    pub now: Instant,
    pub nodes: Vec<Box<dyn Endpoint>>,
    /// Every datagram sent, by sender index, in order (kept when `record`).
    pub sent: Vec<(usize, Transmit)>,
    pub record: bool,
}

impl Net {
    pub fn new(now: Instant) -> Self {
        Net {
            now,
            nodes: Vec::new(),
            sent: Vec::new(),
            record: false,
        }
    }

    /// Adds a node; returns its index.
    pub fn add(&mut self, node: impl Endpoint) -> usize {
        self.nodes.push(Box::new(node));
        self.nodes.len() - 1
    }

    /// Node `index` as the type it was added as.
    pub fn get<T: Endpoint>(&self, index: usize) -> &T {
        let node: &dyn Any = self.nodes[index].as_ref();
        node.downcast_ref().expect("node of that type")
    }

    pub fn get_mut<T: Endpoint>(&mut self, index: usize) -> &mut T {
        let node: &mut dyn Any = self.nodes[index].as_mut();
        node.downcast_mut().expect("node of that type")
    }

    pub fn host(&self, index: usize) -> &Host {
        self.get(index)
    }

    pub fn host_mut(&mut self, index: usize) -> &mut Host {
        self.get_mut(index)
    }

    /// Delivers datagrams until the network is quiet.
    pub fn pump(&mut self, lose: Loss) {
        loop {
            let mut moved = false;
            for from in 0..self.nodes.len() {
                let src = self.nodes[from].addr();
                while let Some(t) = self.nodes[from].poll_transmit(self.now) {
                    moved = true;
                    if self.record {
                        self.sent.push((from, t.clone()));
                    }
                    if lose(from, &t.payload) {
                        continue;
                    }
                    let dst = t.unicast_addr();
                    if let Some(to) = self.nodes.iter_mut().find(|n| Some(n.addr()) == dst) {
                        to.handle_datagram(self.now, src, &t.payload);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs until `until` holds (true) or `limit` of virtual time passed
    /// (false), jumping from one deadline to the next.
    pub fn run_until(
        &mut self,
        limit: Duration,
        lose: Loss,
        until: &mut dyn FnMut(&Net) -> bool,
    ) -> bool {
        let end = self.now + limit;
        let mut turns_now = 0;
        loop {
            self.pump(lose);
            if until(self) {
                return true;
            }
            let Some(next) = self.nodes.iter().filter_map(|n| n.poll_timeout()).min() else {
                self.now = end;
                return false;
            };
            if next > end {
                self.now = end;
                return false;
            }
            if next <= self.now {
                turns_now += 1;
                assert!(
                    turns_now < MAX_TURNS_AT_ONE_INSTANT,
                    "a deadline at {next:?} never moves on"
                );
            } else {
                turns_now = 0;
                self.now = next;
            }
            let now = self.now;
            for node in self.nodes.iter_mut() {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
        }
    }

    /// Lets `span` of virtual time pass with nothing lost.
    pub fn idle(&mut self, span: Duration) {
        self.run_until(span, &mut |_, _| false, &mut |_| false);
    }
}

/// Server at index 0, client at index 1.
pub const SERVER: usize = 0;
pub const CLIENT: usize = 1;

/// A server and a client whose cores draw from `seeds`, with connection
/// `conn` tunnelled between them; returns the net (recording every
/// datagram) at the instant the client saw the tunnel open.
pub fn open_tunnel(now: Instant, conn: u64, seeds: (u64, u64)) -> Net {
    let server = Host::new(1, now, true, seeds.0);
    let mut client = Host::new(2, now, false, seeds.1);
    let (server_id, server_addr) = (server.id(), server.addr);
    let net = client.core.net_mut();
    net.add_friend(
        now,
        toxtun::id::PeerRef::Id(server_id),
        Some(server_addr),
        true,
    );
    client.core.handle_timeout(now);
    client.core.open(
        now,
        conn,
        server_id,
        "127.0.0.1:9".to_string(),
        Transport::Tcp,
    );
    let mut net = Net::new(now);
    net.record = true;
    net.add(server);
    net.add(client);
    let asked = net.run_until(Duration::from_secs(2), &mut |_, _| false, &mut |n| {
        connect_request(n.host(SERVER)).is_some()
    });
    assert!(asked, "the server never asked to connect");
    let (friend, request) = connect_request(net.host(SERVER)).unwrap();
    let now = net.now;
    assert!(net
        .host_mut(SERVER)
        .core
        .target_connected(now, friend, request, conn, Transport::Tcp));
    let opened = net.run_until(Duration::from_secs(2), &mut |_, _| false, &mut |n| {
        n.host(CLIENT).events.contains(&Event::Opened { conn })
    });
    assert!(opened, "the client never saw the tunnel open");
    net
}

fn connect_request(host: &Host) -> Option<(toxtun::id::PublicKey, u32)> {
    host.events.iter().find_map(|e| match e {
        Event::Connect {
            friend, request, ..
        } => Some((*friend, *request)),
        _ => None,
    })
}

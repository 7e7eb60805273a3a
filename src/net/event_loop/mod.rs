//! The friend network's one thread: it owns the UDP socket and all protocol
//! state (sessions, every KCP instance, timers), and everything else talks
//! to it through channels. No locks around protocol state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

mod queries;
mod sending;

use super::command::{Command, TargetSocket};
use super::conn::{Conn, Delivered, Drained};
use super::local_stream::LocalStream;
use super::memory;
use super::proxy::ProxyRoute;
use super::stream_link::{Incoming, Links};
use super::target::{connect_target, TargetRequest};
use super::tcp::{ConnTasks, WriterMsg};
use super::udp_batch::{self, RecvBatch};
use super::udp_flows::UdpFlows;
use crate::friends_file;
use crate::id::PeerRef;
use crate::proto::tunnel::control::Transport;
use crate::proto::{ConnId, Core, Event};
use crate::tunnel_spec::TunnelSpec;

const MAX_DATAGRAM: usize = 65536;
/// Commands taken per wake-up before flushing.
const BATCH: usize = 64;
/// recvmmsg calls per wake-up before flushing: KCP then acknowledges a
/// whole batch at once.
const RECV_CALLS: usize = 2;
const COMMAND_QUEUE: usize = 1024;
/// Datagrams gathered before a send: enough for every message of a batch
/// to carry a full run.
pub(super) const SEND_QUEUE: usize = 1024;
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct LoopHandle {
    pub commands: mpsc::Sender<Command>,
    pub local_addr: SocketAddr,
    /// With `once`: fires when the first connection has been served.
    pub served_one: Option<oneshot::Receiver<()>>,
    thread: JoinHandle<()>,
}

impl LoopHandle {
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

pub struct LoopContext {
    /// Where friends accepted by nospam are remembered.
    pub friends_file: PathBuf,
    pub tunnels: Vec<TunnelSpec>,
    pub connect_timeout: Duration,
    /// Runtime for the per-connection TCP tasks.
    pub tcp_runtime: tokio::runtime::Handle,
    /// Listening on the LAN discovery port, when enabled and bound.
    pub lan_socket: Option<std::net::UdpSocket>,
    /// `--once`: say when one connection has been served, and its end.
    pub once: bool,
    /// What the TCP links to bootstrap nodes go through.
    pub proxy: ProxyRoute,
}

/// Starts the loop thread. The core is built on that thread by `make_core`,
/// since it is single-threaded by design and never crosses threads.
pub fn spawn<F>(
    socket: std::net::UdpSocket,
    make_core: F,
    ctx: LoopContext,
) -> std::io::Result<LoopHandle>
where
    F: FnOnce() -> Core + Send + 'static,
{
    socket.set_nonblocking(true)?;
    // LAN discovery queries go to broadcast addresses.
    socket.set_broadcast(true)?;
    udp_batch::enable_receive_offload(socket.as_raw_fd());
    let local_addr = socket.local_addr()?;
    let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
    let own_commands = commands.clone();
    let (served, served_one) = match ctx.once {
        true => {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        }
        false => (None, None),
    };
    let thread = std::thread::Builder::new()
        .name("friendnet".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("event loop runtime");
            runtime.block_on(async move {
                let socket =
                    UdpSocket::from_std(socket).expect("socket registers with the runtime");
                let mut ctx = ctx;
                let lan = ctx.lan_socket.take().map(|lan| {
                    UdpSocket::from_std(lan).expect("socket registers with the runtime")
                });
                EventLoop {
                    lan,
                    socket,
                    core: make_core(),
                    receiver,
                    commands: own_commands,
                    ctx,
                    conns: HashMap::new(),
                    flows: UdpFlows::default(),
                    listening: BTreeMap::new(),
                    removed_tunnels: BTreeSet::new(),
                    next_conn: 1,
                    links: Links::new(None),
                    sender: udp_batch::Sender::default(),
                    served,
                }
                .run()
                .await
            });
        })?;
    Ok(LoopHandle {
        commands,
        local_addr,
        served_one,
        thread,
    })
}

struct EventLoop {
    socket: UdpSocket,
    lan: Option<UdpSocket>,
    core: Core,
    receiver: mpsc::Receiver<Command>,
    commands: mpsc::Sender<Command>,
    ctx: LoopContext,
    conns: HashMap<ConnId, Conn>,
    /// UDP tunnels; their ids come from the same counter as `conns`.
    flows: UdpFlows,
    /// Where each tunnel line listens, once it does.
    listening: BTreeMap<usize, SocketAddr>,
    /// Tunnel lines a reload took out: their numbers stay taken, so that
    /// connections they made keep theirs.
    removed_tunnels: BTreeSet<usize>,
    next_conn: ConnId,
    /// TCP links to bootstrap nodes that do not answer over UDP.
    links: Links,
    sender: udp_batch::Sender,
    /// `--once`: told when a connection came and every one has gone.
    served: Option<oneshot::Sender<()>>,
}

impl EventLoop {
    async fn run(mut self) {
        let mut batch = RecvBatch::default();
        let mut lan_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            self.dispatch_events();
            self.send_transmits().await;
            self.note_served();
            let deadline = self.core.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let lan_received = async {
                match &self.lan {
                    Some(lan) => lan.recv_from(&mut lan_buf).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Ok((n, from)) = lan_received => {
                    self.core.handle_lan_datagram(Instant::now(), from, &lan_buf[..n]);
                }
                Ok(()) = self.socket.readable() => self.receive(&mut batch),
                command = self.receiver.recv() => {
                    let Some(command) = command else { return };
                    if !self.handle_command(command) {
                        return self.stop().await;
                    }
                    for _ in 1..BATCH {
                        match self.receiver.try_recv() {
                            Ok(command) => if !self.handle_command(command) { return self.stop().await },
                            Err(_) => break,
                        }
                    }
                }
                incoming = self.links.incoming.recv() => match incoming {
                    Some(Incoming::Frame(from, frame)) => {
                        self.core.handle_datagram(Instant::now(), from, &frame);
                    }
                    Some(Incoming::Closed(addr, generation, reason)) => {
                        if self.links.closed(addr, generation) {
                            info!(bootstrap = %addr, %reason, "TCP link to bootstrap node closed");
                            self.core.stream_link_down(Instant::now(), addr);
                        }
                    }
                    None => return,
                },
                _ = sleep => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    /// Says goodbye to every online friend and sends what is queued.
    async fn stop(&mut self) {
        self.core.say_goodbye(Instant::now());
        self.send_transmits().await;
    }

    fn receive(&mut self, batch: &mut RecvBatch) {
        let fd = self.socket.as_raw_fd();
        let now = Instant::now();
        for _ in 0..RECV_CALLS {
            let core = &mut self.core;
            let received = self.socket.try_io(Interest::READABLE, || {
                batch.recv(fd, |from, bytes| core.handle_datagram(now, from, bytes))
            });
            match received {
                Ok(n) if n == udp_batch::BATCH => continue,
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here; they say
                // nothing authenticated.
                Err(_) => continue,
            }
        }
    }

    /// `--once`: the first connection (and any that came with it) is over.
    fn note_served(&mut self) {
        if self.next_conn > 1 && self.conns.is_empty() && self.flows.is_empty() {
            if let Some(served) = self.served.take() {
                let _ = served.send(());
            }
        }
    }

    fn new_conn(&mut self, pending: Option<LocalStream>) -> ConnId {
        let conn = self.take_conn_id();
        self.conns.insert(conn, Conn::new(pending));
        conn
    }

    fn take_conn_id(&mut self) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        conn
    }

    fn start_tasks(&mut self, conn: ConnId, stream: LocalStream) {
        let tasks = ConnTasks::spawn(&self.ctx.tcp_runtime, conn, stream, self.commands.clone());
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.start(tasks);
        }
    }

    /// Returns false when the loop should stop.
    fn handle_command(&mut self, command: Command) -> bool {
        let now = Instant::now();
        match command {
            Command::Shutdown => return false,
            Command::LocalConnection { tunnel, stream } => {
                let spec = &self.ctx.tunnels[tunnel];
                let (server, target, name) = (spec.server, spec.target(), spec.name.clone());
                let peer = stream.peer_addr().ok();
                let conn = self.new_conn(Some(LocalStream::tcp(stream)));
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.tunnel = Some(tunnel);
                    entry.source = peer;
                }
                // The core logs the opening, or the refusal at a rate.
                debug!(conn, tunnel = %name, ?peer, %target, "local connection");
                self.core.open(now, conn, server, target, Transport::Tcp);
            }
            Command::Listening { tunnel, local } => {
                self.listening.insert(tunnel, local);
            }
            Command::Reload(update) => self.core.reload(now, *update),
            Command::AddTunnel { spec, reply } => {
                self.ctx.tunnels.push(spec);
                let _ = reply.send(self.ctx.tunnels.len() - 1);
            }
            Command::RemoveTunnel { index } => {
                self.listening.remove(&index);
                self.removed_tunnels.insert(index);
            }
            Command::LocalDatagram(datagram) => {
                let spec = &self.ctx.tunnels[datagram.tunnel];
                let open = (spec.server, spec.target());
                let next_conn = &mut self.next_conn;
                self.flows
                    .local_datagram(&mut self.core, now, datagram, open, next_conn);
            }
            Command::TargetDatagram { conn, bytes } => self.core.send_datagram(now, conn, &bytes),
            Command::OpenOn {
                server,
                target,
                stream,
            } => {
                // Not remembered: the friendship lasts while this node runs.
                self.core
                    .net_mut()
                    .add_friend(now, PeerRef::Id(server), None, true);
                let from = stream.waiting;
                let conn = self.new_conn(Some(stream));
                debug!(conn, %target, ?from, "tunnel asked for on a stream");
                self.core.open(now, conn, server, target, Transport::Tcp);
            }
            Command::TargetConnected {
                friend,
                request,
                result,
            } => match result {
                Ok(TargetSocket::Tcp(stream)) => {
                    let conn = self.new_conn(None);
                    if self
                        .core
                        .target_connected(now, friend, request, conn, Transport::Tcp)
                    {
                        self.start_tasks(conn, LocalStream::tcp(stream));
                    } else {
                        self.conns.remove(&conn);
                    }
                }
                Ok(TargetSocket::Udp(socket)) => {
                    let conn = self.take_conn_id();
                    if self
                        .core
                        .target_connected(now, friend, request, conn, Transport::Udp)
                    {
                        let commands = self.commands.clone();
                        let runtime = &self.ctx.tcp_runtime;
                        self.flows.add_target(runtime, conn, socket, commands);
                    }
                }
                Err(reason) => self.core.target_failed(now, friend, request, reason),
            },
            Command::LocalData { conn, bytes } => self.core.send_data(now, conn, &bytes),
            Command::LocalEof { conn } => self.core.local_eof(now, conn),
            Command::LocalFailed { conn, reason } => self.core.local_reset(now, conn, reason),
            Command::WriterReady { conn } => self.writer_ready(now, conn),
            Command::BootstrapLink { addr, result } => match result {
                Ok(stream) => {
                    match self.ctx.proxy.for_target(addr) {
                        Some(proxy) => {
                            info!(bootstrap = %addr, %proxy, "reaching bootstrap node over TCP through a proxy")
                        }
                        None => info!(bootstrap = %addr, "reaching bootstrap node over TCP"),
                    }
                    self.links.attach(addr, stream);
                    self.core.stream_link_up(now, addr);
                }
                Err(reason) => {
                    info!(bootstrap = %addr, %reason, "bootstrap node unreachable over TCP too");
                    self.core.stream_link_down(now, addr);
                }
            },
            Command::Status { reply } => {
                let udp = self
                    .socket
                    .local_addr()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
                let tunnels = self.tunnel_statuses();
                let snapshot = self.core.snapshot(now);
                let ends = self.local_ends();
                let _ = reply.send(crate::status::Status::new(&snapshot, udp, tunnels, &ends));
            }
            Command::Forget { friend, reply } => {
                let _ = reply.send(self.forget(now, friend));
            }
        }
        true
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::FriendAdded(friend) => {
                    if let Err(e) = friends_file::append(&self.ctx.friends_file, &friend) {
                        warn!("{e}");
                    }
                }
                Event::Connect {
                    friend,
                    request,
                    target,
                    transport,
                } => {
                    let asked = TargetRequest {
                        friend,
                        request,
                        target,
                        transport,
                    };
                    let timeout = self.ctx.connect_timeout;
                    let commands = self.commands.clone();
                    connect_target(&self.ctx.tcp_runtime, asked, timeout, commands)
                }
                Event::Opened { conn } => {
                    if self.flows.opened(&mut self.core, Instant::now(), conn) {
                        continue;
                    }
                    if let Some(stream) = self.conns.get_mut(&conn).and_then(Conn::take_pending) {
                        self.start_tasks(conn, stream);
                    }
                }
                Event::Datagram { conn, bytes } => self.flows.deliver(Instant::now(), conn, &bytes),
                Event::Data { conn, bytes } => self.deliver(conn, WriterMsg::Data(bytes)),
                Event::Eof { conn } => self.deliver(conn, WriterMsg::Eof),
                Event::Credit { conn, chunks } => {
                    if let Some(entry) = self.conns.get(&conn) {
                        entry.add_credits(chunks);
                    }
                }
                Event::Closed { conn, reason } => {
                    if self.flows.closed(conn) {
                        continue;
                    }
                    let unopened = self.conns.get_mut(&conn).and_then(Conn::take_pending);
                    if let Some(stream) = unopened {
                        self.ctx.tcp_runtime.spawn(stream.refuse(reason.clone()));
                    }
                    let done = self
                        .conns
                        .get_mut(&conn)
                        .is_some_and(|entry| entry.close(reason.is_clean()));
                    if done {
                        self.conns.remove(&conn);
                    }
                }
                Event::StreamLinkWanted { addr } => self.connect_stream_link(addr),
                Event::FriendOffline(_) => memory::give_back(),
            }
        }
    }

    /// Hands a message to the writer; a full writer pauses the channel.
    fn deliver(&mut self, conn: ConnId, message: WriterMsg) {
        let held = self
            .conns
            .get_mut(&conn)
            .is_some_and(|entry| entry.deliver(message) == Delivered::Held);
        if held {
            self.core.pause(conn);
        }
    }

    fn writer_ready(&mut self, now: Instant, conn: ConnId) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        match entry.drain() {
            Drained::Waiting => {}
            Drained::Resume => self.core.resume(now, conn),
            Drained::Done => {
                self.conns.remove(&conn);
            }
        }
    }

    /// The core asked for a TCP link to a bootstrap node that does not
    /// answer over UDP; the outcome comes back as a command.
    fn connect_stream_link(&mut self, addr: SocketAddr) {
        let commands = self.commands.clone();
        let proxy = self.ctx.proxy.for_target(addr).cloned();
        tokio::spawn(async move {
            let connect = async {
                match &proxy {
                    Some(proxy) => proxy.connect(addr).await,
                    None => TcpStream::connect(addr).await,
                }
            };
            let result = match tokio::time::timeout(TCP_CONNECT_TIMEOUT, connect).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            };
            let _ = commands.send(Command::BootstrapLink { addr, result }).await;
        });
    }
}

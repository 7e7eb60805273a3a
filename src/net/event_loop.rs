//! The friend network's one thread: it owns the UDP socket and all protocol
//! state (sessions, every KCP instance, timers), and everything else talks
//! to it through channels. No locks around protocol state.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, info, warn};

use super::command::Command;
use super::stream_link::{Incoming, Links};
use super::tcp::{connect_target, ConnTasks, WriterMsg};
use super::udp_batch::{self, RecvBatch};
use crate::friends_file;
use crate::proto::{ConnId, Dest, Node, NodeEvent};
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
const SEND_QUEUE: usize = 1024;
/// A bootstrap node unreachable over UDP is tried over TCP this often.
const TCP_LINK_RETRY: Duration = Duration::from_secs(5);
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct LoopHandle {
    pub commands: mpsc::Sender<Command>,
    pub local_addr: SocketAddr,
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
}

/// Starts the loop thread. The core is built on that thread by `make_node`,
/// since it is single-threaded by design and never crosses threads.
pub fn spawn<F>(
    socket: std::net::UdpSocket,
    make_node: F,
    ctx: LoopContext,
) -> std::io::Result<LoopHandle>
where
    F: FnOnce() -> Node + Send + 'static,
{
    socket.set_nonblocking(true)?;
    // LAN discovery queries go to broadcast addresses.
    socket.set_broadcast(true)?;
    udp_batch::enable_receive_offload(socket.as_raw_fd());
    let local_addr = socket.local_addr()?;
    let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
    let own_commands = commands.clone();
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
                    node: make_node(),
                    receiver,
                    commands: own_commands,
                    ctx,
                    conns: HashMap::new(),
                    next_conn: 1,
                    links: Links::new(None),
                    link_attempts: HashMap::new(),
                    sender: udp_batch::Sender::default(),
                }
                .run()
                .await
            });
        })?;
    Ok(LoopHandle {
        commands,
        local_addr,
        thread,
    })
}

/// A connection as the driver sees it.
struct Conn {
    /// Client side: the accepted socket, until the server accepts.
    pending: Option<TcpStream>,
    tasks: Option<ConnTasks>,
    /// Messages the writer queue had no room for, in order.
    overflow: VecDeque<WriterMsg>,
    /// Closed cleanly: drop it once the writer has everything.
    closing: bool,
}

struct EventLoop {
    socket: UdpSocket,
    lan: Option<UdpSocket>,
    node: Node,
    receiver: mpsc::Receiver<Command>,
    commands: mpsc::Sender<Command>,
    ctx: LoopContext,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    /// TCP links to bootstrap nodes that do not answer over UDP.
    links: Links,
    link_attempts: HashMap<SocketAddr, Instant>,
    sender: udp_batch::Sender,
}

impl EventLoop {
    async fn run(mut self) {
        let mut batch = RecvBatch::default();
        let mut lan_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            self.dispatch_events();
            self.node.flush(Instant::now());
            self.send_transmits().await;
            self.open_tcp_links();
            let deadline = self.node.poll_timeout();
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
                    self.node.handle_lan_datagram(Instant::now(), from, &lan_buf[..n]);
                }
                Ok(()) = self.socket.readable() => self.receive(&mut batch),
                command = self.receiver.recv() => {
                    let Some(command) = command else { return };
                    if !self.handle_command(command) {
                        return;
                    }
                    for _ in 1..BATCH {
                        match self.receiver.try_recv() {
                            Ok(command) => if !self.handle_command(command) { return },
                            Err(_) => break,
                        }
                    }
                }
                incoming = self.links.incoming.recv() => match incoming {
                    Some(Incoming::Frame(from, frame)) => {
                        self.node.handle_datagram(Instant::now(), from, &frame);
                    }
                    Some(Incoming::Closed(addr, generation, reason)) => {
                        if self.links.closed(addr, generation) {
                            info!(bootstrap = %addr, %reason, "TCP link to bootstrap node closed");
                        }
                    }
                    None => return,
                },
                _ = sleep => self.node.handle_timeout(Instant::now()),
            }
        }
    }

    fn receive(&mut self, batch: &mut RecvBatch) {
        let fd = self.socket.as_raw_fd();
        let now = Instant::now();
        for _ in 0..RECV_CALLS {
            let node = &mut self.node;
            let received = self.socket.try_io(Interest::READABLE, || {
                batch.recv(fd, |from, bytes| node.handle_datagram(now, from, bytes))
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

    fn open_tcp_links(&mut self) {
        let now = Instant::now();
        let wanted: Vec<SocketAddr> = self.node.net().bootstraps_wanting_tcp().collect();
        for addr in wanted {
            let tried_lately = self
                .link_attempts
                .get(&addr)
                .is_some_and(|at| now < *at + TCP_LINK_RETRY);
            if self.links.contains(&addr) || tried_lately {
                continue;
            }
            self.link_attempts.insert(addr, now);
            debug!(bootstrap = %addr, "no answer over UDP; trying TCP");
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let result =
                    match tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(addr)).await
                    {
                        Ok(Ok(stream)) => Ok(stream),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("timed out".to_string()),
                    };
                let _ = commands.send(Command::BootstrapLink { addr, result }).await;
            });
        }
    }

    async fn send_transmits(&mut self) {
        let mut plain: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        while let Some(transmit) = self.node.poll_transmit() {
            let dst = match (transmit.dst, transmit.ttl) {
                (Dest::Unicast(dst), None) => {
                    if !self.links.send(&dst, &transmit.payload) {
                        plain.push((dst, transmit.payload));
                        if plain.len() == SEND_QUEUE {
                            self.send_batch(&mut plain).await;
                        }
                    }
                    continue;
                }
                (dst, _) => dst,
            };
            // Keep the order: what was queued before goes first.
            self.send_batch(&mut plain).await;
            match dst {
                Dest::LanBroadcast(port) => {
                    for broadcast in super::lan::broadcast_addrs() {
                        let dst = SocketAddr::from((broadcast, port));
                        if let Err(e) = self.socket.send_to(&transmit.payload, dst).await {
                            debug!(%dst, error = %e, "LAN query not sent");
                        }
                    }
                }
                Dest::Unicast(dst) => {
                    self.send_with_ttl(dst, &transmit.payload, transmit.ttl)
                        .await
                }
            }
        }
        self.send_batch(&mut plain).await;
    }

    /// One datagram with its own IP TTL (hole punching); the socket's
    /// default is put back after.
    async fn send_with_ttl(&mut self, dst: SocketAddr, payload: &[u8], ttl: Option<u32>) {
        let default_ttl = match ttl {
            Some(ttl) => self
                .socket
                .ttl()
                .ok()
                .filter(|_| self.socket.set_ttl(ttl).is_ok()),
            None => None,
        };
        if let Err(e) = self.socket.send_to(payload, dst).await {
            debug!(%dst, error = %e, "send failed");
        }
        if let Some(ttl) = default_ttl {
            let _ = self.socket.set_ttl(ttl);
        }
    }

    /// Sends and empties `queue` with as few system calls as the socket
    /// allows.
    async fn send_batch(&mut self, queue: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let fd = self.socket.as_raw_fd();
        let datagrams: Vec<(SocketAddr, &[u8])> = queue
            .iter()
            .map(|(dst, payload)| (*dst, payload.as_slice()))
            .collect();
        let mut sent = 0;
        while sent < datagrams.len() {
            let rest = &datagrams[sent..];
            let sender = &mut self.sender;
            match self
                .socket
                .async_io(Interest::WRITABLE, || sender.send(fd, rest))
                .await
            {
                Ok(n) => sent += n.max(1),
                Err(e) => {
                    // A datagram the kernel refuses (no route, say) must not
                    // hold back the ones behind it.
                    debug!(dst = %rest[0].0, error = %e, "send failed");
                    sent += 1;
                }
            }
        }
        drop(datagrams);
        queue.clear();
    }

    fn new_conn(&mut self, pending: Option<TcpStream>) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            conn,
            Conn {
                pending,
                tasks: None,
                overflow: VecDeque::new(),
                closing: false,
            },
        );
        conn
    }

    fn start_tasks(&mut self, conn: ConnId, stream: TcpStream) {
        let tasks = ConnTasks::spawn(&self.ctx.tcp_runtime, conn, stream, self.commands.clone());
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.tasks = Some(tasks);
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
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let conn = self.new_conn(Some(stream));
                info!(conn, tunnel = %name, %peer, %target, "local connection; opening tunnel");
                self.node.open(now, conn, server, target);
            }
            Command::TargetConnected {
                friend,
                request,
                result,
            } => match result {
                Ok(stream) => {
                    let conn = self.new_conn(None);
                    if self.node.target_connected(now, friend, request, conn) {
                        self.start_tasks(conn, stream);
                    } else {
                        self.conns.remove(&conn);
                    }
                }
                Err(reason) => self.node.target_failed(friend, request, reason),
            },
            Command::LocalData { conn, bytes } => self.node.send_data(now, conn, &bytes),
            Command::LocalEof { conn } => self.node.local_eof(now, conn),
            Command::LocalFailed { conn, reason } => self.node.local_reset(conn, reason),
            Command::WriterReady { conn } => self.drain_overflow(now, conn),
            Command::BootstrapLink { addr, result } => match result {
                Ok(stream) => {
                    info!(bootstrap = %addr, "reaching bootstrap node over TCP");
                    self.links.attach(addr, stream);
                    self.node.net_mut().bootstrap_link_up(now, addr);
                }
                Err(reason) => {
                    info!(bootstrap = %addr, %reason, "bootstrap node unreachable over TCP too")
                }
            },
            Command::Status { reply } => {
                let udp = self
                    .socket
                    .local_addr()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
                let _ = reply.send(crate::status::Status::new(&self.node.snapshot(now), udp));
            }
        }
        true
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.node.poll_event() {
            match event {
                NodeEvent::FriendAdded(friend) => {
                    if let Err(e) = friends_file::append(&self.ctx.friends_file, &friend) {
                        warn!("{e}");
                    }
                }
                NodeEvent::Connect {
                    friend,
                    request,
                    target,
                } => connect_target(
                    &self.ctx.tcp_runtime,
                    friend,
                    request,
                    target,
                    self.ctx.connect_timeout,
                    self.commands.clone(),
                ),
                NodeEvent::Opened { conn } => {
                    if let Some(stream) = self.conns.get_mut(&conn).and_then(|c| c.pending.take()) {
                        self.start_tasks(conn, stream);
                    }
                }
                NodeEvent::Data { conn, bytes } => self.deliver(conn, WriterMsg::Data(bytes)),
                NodeEvent::Eof { conn } => self.deliver(conn, WriterMsg::Eof),
                NodeEvent::Credit { conn, chunks } => {
                    if let Some(tasks) = self.conns.get(&conn).and_then(|c| c.tasks.as_ref()) {
                        tasks.credits.add_permits(chunks as usize);
                    }
                }
                NodeEvent::Closed { conn, reason } => self.closed(conn, &reason),
            }
        }
    }

    fn closed(&mut self, conn: ConnId, reason: &str) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        if reason == "closed" && !entry.overflow.is_empty() {
            entry.closing = true;
            return;
        }
        let entry = self.conns.remove(&conn).expect("present");
        if let Some(tasks) = entry.tasks {
            if reason == "closed" {
                // Let the writer finish what it has; the reader already ended.
                drop(tasks.writer);
            } else {
                tasks.abort();
            }
        }
    }

    /// Hands a message to the writer, or holds it and pauses the channel.
    fn deliver(&mut self, conn: ConnId, message: WriterMsg) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(tasks) = entry.tasks.as_ref() else {
            return;
        };
        if !entry.overflow.is_empty() {
            entry.overflow.push_back(message);
            return;
        }
        if let Err(TrySendError::Full(message)) = hand_over(tasks, message) {
            entry.overflow.push_back(message);
            self.node.pause(conn);
        }
    }

    fn drain_overflow(&mut self, now: Instant, conn: ConnId) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(tasks) = entry.tasks.as_ref() else {
            return;
        };
        while let Some(message) = entry.overflow.pop_front() {
            match hand_over(tasks, message) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => {
                    entry.overflow.clear();
                    break;
                }
                Err(TrySendError::Full(message)) => {
                    entry.overflow.push_front(message);
                    return;
                }
            }
        }
        if entry.closing {
            self.closed(conn, "closed");
        } else {
            self.node.resume(now, conn);
        }
    }
}

/// Queues `message` for the writer. When the queue is full the writer is
/// asked to report once it has made room, and the queue is tried again: the
/// writer may have emptied it after the first try and before the flag was
/// up, and would then never report. Full on the second try means it still
/// holds messages, and it looks at the flag after each one.
fn hand_over(tasks: &ConnTasks, message: WriterMsg) -> Result<(), TrySendError<WriterMsg>> {
    match tasks.writer.try_send(message) {
        Err(TrySendError::Full(message)) => {
            tasks.want_ready.store(true, Ordering::Release);
            tasks.writer.try_send(message)
        }
        other => other,
    }
}

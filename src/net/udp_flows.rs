//! UDP tunnels on this side. A client's `udp:` listener is one socket; the
//! first datagram from a new source opens a flow for that source, and the
//! friend's answers go back to it from the same socket. A server binds one
//! socket per flow, connected to the target, so the target's answers are
//! told apart by socket. Datagrams are handed on when they come, or are
//! dropped as UDP would drop them: nothing here waits for room.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use super::command::{Command, LocalDatagram};
use crate::id::ToxId;
use crate::proto::log_limit::LogLimit;
use crate::proto::reason::{ReasonCode, Refusal};
use crate::proto::tunnel::control::Transport;
use crate::proto::{ConnId, Core};

/// Bytes of datagrams a client flow holds while its tunnel opens; more
/// are dropped. With the flows a friend may hold (1024 by default) this
/// bounds what waits at 32 MiB.
const MAX_WAITING_BYTES: usize = 32 * 1024;
/// Large enough for any UDP payload, so a datagram is never cut short:
/// one larger than a tunnel carries is seen whole, then dropped and
/// counted.
const RECEIVE_BUFFER: usize = 65536;

struct Flow {
    socket: Arc<UdpSocket>,
    /// Client: the local source the flow answers and its listener's
    /// number; None on a server, whose socket is connected to the target.
    source: Option<(usize, SocketAddr)>,
    /// Client: datagrams that came before the tunnel opened.
    waiting: Option<Vec<Vec<u8>>>,
    /// Server: the task reading the target's answers.
    reader: Option<JoinHandle<()>>,
}

#[derive(Default)]
pub struct UdpFlows {
    flows: HashMap<ConnId, Flow>,
    by_source: HashMap<(usize, SocketAddr), ConnId>,
    unsent: LogLimit,
}

impl UdpFlows {
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Flows open or opening through listener `tunnel`.
    pub fn count_for(&self, tunnel: usize) -> usize {
        self.by_source.keys().filter(|(t, _)| *t == tunnel).count()
    }

    /// Each client flow: its id, its tunnel line and its local source.
    pub fn sources(&self) -> impl Iterator<Item = (ConnId, usize, SocketAddr)> + '_ {
        self.by_source
            .iter()
            .map(|((tunnel, source), conn)| (*conn, *tunnel, *source))
    }

    /// A client listener's datagram: into its source's flow, or the first
    /// of a new flow to `open`'s server and target (numbered from the
    /// driver's connection counter).
    pub fn local_datagram(
        &mut self,
        core: &mut Core,
        now: Instant,
        datagram: LocalDatagram,
        open: (ToxId, String),
        next_conn: &mut ConnId,
    ) {
        if !core.datagram_fits(now, datagram.bytes.len()) {
            return;
        }
        let source = (datagram.tunnel, datagram.from);
        if let Some(&conn) = self.by_source.get(&source) {
            match self.flows.get_mut(&conn).and_then(|f| f.waiting.as_mut()) {
                Some(waiting)
                    if waiting_bytes(waiting) + datagram.bytes.len() <= MAX_WAITING_BYTES =>
                {
                    waiting.push(datagram.bytes)
                }
                Some(_) => debug!(conn, "dropped a datagram: its tunnel is still opening"),
                None => core.send_datagram(now, conn, &datagram.bytes),
            }
            return;
        }
        let conn = *next_conn;
        *next_conn += 1;
        self.by_source.insert(source, conn);
        self.flows.insert(
            conn,
            Flow {
                socket: datagram.socket,
                source: Some(source),
                waiting: Some(vec![datagram.bytes]),
                reader: None,
            },
        );
        debug!(conn, from = %datagram.from, "new UDP flow");
        let (server, target) = open;
        core.open(now, conn, server, target, Transport::Udp);
    }

    /// Server: the socket bound to the flow's target; its answers become
    /// commands.
    pub fn add_target(
        &mut self,
        runtime: &tokio::runtime::Handle,
        conn: ConnId,
        socket: UdpSocket,
        commands: mpsc::Sender<Command>,
    ) {
        let socket = Arc::new(socket);
        let reader = runtime.spawn(read_target(conn, socket.clone(), commands));
        self.flows.insert(
            conn,
            Flow {
                socket,
                source: None,
                waiting: None,
                reader: Some(reader),
            },
        );
    }

    /// The tunnel opened: what waited goes now.
    pub fn opened(&mut self, core: &mut Core, now: Instant, conn: ConnId) -> bool {
        let Some(flow) = self.flows.get_mut(&conn) else {
            return false;
        };
        for bytes in flow.waiting.take().unwrap_or_default() {
            core.send_datagram(now, conn, &bytes);
        }
        true
    }

    /// A datagram from the friend, for the flow's local side.
    pub fn deliver(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(flow) = self.flows.get(&conn) else {
            return;
        };
        let sent = send_now(&flow.socket, bytes, flow.source.map(|(_, source)| source));
        if let Err(error) = sent {
            if let Some(times) = self.unsent.hit(now) {
                debug!(conn, %error, times, "datagram from the friend not handed on");
            }
        }
    }

    /// The flow ended; false when `conn` is no flow.
    pub fn closed(&mut self, conn: ConnId) -> bool {
        let Some(flow) = self.flows.remove(&conn) else {
            return false;
        };
        if let Some(source) = flow.source {
            self.by_source.remove(&source);
        }
        if let Some(reader) = flow.reader {
            reader.abort();
        }
        true
    }
}

fn waiting_bytes(waiting: &[Vec<u8>]) -> usize {
    waiting.iter().map(Vec::len).sum()
}

async fn read_target(conn: ConnId, socket: Arc<UdpSocket>, commands: mpsc::Sender<Command>) {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                let bytes = buf[..n].to_vec();
                if commands
                    .send(Command::TargetDatagram { conn, bytes })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // An ICMP error for an earlier datagram (nobody on the target
            // port, say): UDP's answer is to keep going.
            Err(e) => debug!(conn, error = %e, "UDP target socket"),
        }
    }
}

/// A client's `udp:` listener: every datagram becomes a command.
pub async fn read_listener(tunnel: usize, socket: Arc<UdpSocket>, commands: mpsc::Sender<Command>) {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                debug!(tunnel, error = %e, "UDP listener");
                continue;
            }
        };
        let datagram = LocalDatagram {
            tunnel,
            socket: socket.clone(),
            from,
            bytes: buf[..n].to_vec(),
        };
        if commands
            .send(Command::LocalDatagram(datagram))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Server side: a socket for the friend's flow, connected to `target`.
pub(super) async fn bind_to(target: &str) -> Result<UdpSocket, Refusal> {
    let unreachable = |why: String| {
        Refusal::new(
            ReasonCode::TargetUnreachable,
            format!("cannot reach {target} over UDP: {why}"),
        )
    };
    let addr = tokio::net::lookup_host(target)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address".into()))?;
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(socket)
}

/// Sends with one system call, whatever tokio last saw of the socket's
/// readiness: a target socket made an instant ago has not been seen
/// writable yet, and tokio's own `try_send` would drop the flow's first
/// datagram for that although the kernel has room.
fn send_now(socket: &UdpSocket, bytes: &[u8], to: Option<SocketAddr>) -> std::io::Result<usize> {
    let socket = socket2::SockRef::from(socket);
    match to {
        Some(addr) => socket.send_to(bytes, &addr.into()),
        None => socket.send(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_made_an_instant_ago_sends_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = target.local_addr().unwrap();
            let connected = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            connected.connect(to).await.unwrap();
            assert_eq!(send_now(&connected, b"first", None).unwrap(), 5);
            let unconnected = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            assert_eq!(send_now(&unconnected, b"second", Some(to)).unwrap(), 6);
            let mut buf = [0u8; 16];
            let (n, _) = target.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"first");
            let (n, _) = target.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"second");
        });
    }
}

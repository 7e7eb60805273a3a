//! What other tasks tell the event loop: the only way in, since the loop
//! owns all protocol state and takes no locks.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpStream, UdpSocket};

use super::local_stream::LocalStream;

use crate::id::{PublicKey, ToxId};
use crate::proto::reason::Refusal;
use crate::proto::tunnel::reload::Reloaded;
use crate::proto::ConnId;
use crate::tunnel_spec::TunnelSpec;

pub enum Command {
    Shutdown,
    /// Client: a local connection arrived on tunnel number `tunnel`.
    LocalConnection {
        tunnel: usize,
        stream: TcpStream,
    },
    /// A stream that names its own target (`toxtun connect`, a SOCKS5
    /// client): open a tunnel to `target` at `server` on it.
    OpenOn {
        server: ToxId,
        target: String,
        stream: LocalStream,
    },
    /// The config was read again (SIGHUP).
    Reload(Box<Reloaded>),
    /// A reload added a tunnel line: the reply is its number.
    AddTunnel {
        spec: TunnelSpec,
        reply: tokio::sync::oneshot::Sender<usize>,
    },
    /// A reload removed tunnel line `index` (its listener has stopped).
    RemoveTunnel {
        index: usize,
    },
    /// Client: tunnel number `tunnel` listens on `local`.
    Listening {
        tunnel: usize,
        local: SocketAddr,
    },
    /// Client: a datagram arrived on a `udp:` tunnel's listener.
    LocalDatagram(LocalDatagram),
    /// Server: the outcome of connecting to a friend's target.
    TargetConnected {
        friend: PublicKey,
        request: u32,
        result: Result<TargetSocket, Refusal>,
    },
    /// Server: a UDP flow's target answered.
    TargetDatagram {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    LocalData {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    LocalEof {
        conn: ConnId,
    },
    LocalFailed {
        conn: ConnId,
        reason: String,
    },
    WriterReady {
        conn: ConnId,
    },
    /// The outcome of connecting to a bootstrap node over TCP.
    BootstrapLink {
        addr: SocketAddr,
        result: Result<TcpStream, String>,
    },
    /// From the control socket: a snapshot for `toxtun status`.
    Status {
        reply: tokio::sync::oneshot::Sender<crate::status::Status>,
    },
    /// From the control socket: `toxtun forget`; the reply is for the user.
    Forget {
        friend: PublicKey,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    },
}

/// What a server holds for a target once it answers.
pub enum TargetSocket {
    Tcp(TcpStream),
    /// Bound and connected to the target.
    Udp(UdpSocket),
}

/// A client listener's datagram, as it came.
pub struct LocalDatagram {
    pub tunnel: usize,
    pub socket: Arc<UdpSocket>,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

//! The local end of a tunnel: a connection accepted on a tunnel's port, a
//! stream `toxtun connect` handed over through the control socket, or a
//! SOCKS5 client's connection. The last two wait for the outcome of the
//! opening: `connect` gets `ok` and then the tunnel's bytes, or one
//! `error: ` line with the reason; a SOCKS5 client gets its reply.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{tcp, unix, TcpStream, UnixStream};

use super::socks5;
use crate::proto::reason::CloseReason;

/// The read half, as the socket it is rather than any reader: the reader
/// waits for bytes before it takes a buffer, so an idle connection holds
/// none.
pub enum LocalRead {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
}

impl LocalRead {
    /// Waits until a read may find bytes (or the end, or an error).
    pub async fn readable(&self) -> std::io::Result<()> {
        match self {
            LocalRead::Tcp(half) => half.readable().await,
            LocalRead::Unix(half) => half.readable().await,
        }
    }

    /// Reads what is there into `buf`'s spare room, without waiting.
    pub fn try_read_buf(&self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            LocalRead::Tcp(half) => half.try_read_buf(buf),
            LocalRead::Unix(half) => half.try_read_buf(buf),
        }
    }
}

pub type LocalWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// What the node writes on a handed-over stream once the tunnel is open.
pub const OPENED: &[u8] = b"ok\n";
/// What starts the line that says why the tunnel did not open.
pub const NOT_OPENED: &str = "error: ";

/// Who waits at the local end for the outcome of the opening, and how it
/// is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Nobody: an accepted connection sits unread until the tunnel opens.
    Nobody,
    /// `toxtun connect`: a line.
    Connect,
    /// A SOCKS5 client: its reply.
    Socks,
}

pub struct LocalStream {
    pub read: LocalRead,
    pub write: LocalWrite,
    pub waiting: Waiting,
}

impl LocalStream {
    /// A connection a tunnel's port accepted, or the server's connection to
    /// its target: nobody waits for an answer.
    pub fn tcp(stream: TcpStream) -> Self {
        Self::tcp_waiting(stream, Waiting::Nobody)
    }

    /// A SOCKS5 client whose request was read: it waits for its reply.
    pub fn socks(stream: TcpStream) -> Self {
        Self::tcp_waiting(stream, Waiting::Socks)
    }

    fn tcp_waiting(stream: TcpStream, waiting: Waiting) -> Self {
        // Small writes (a keystroke, a request) go at once.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        LocalStream {
            read: LocalRead::Tcp(read),
            write: Box::new(write),
            waiting,
        }
    }

    pub fn handed_over(stream: UnixStream) -> Self {
        let (read, write) = stream.into_split();
        LocalStream {
            read: LocalRead::Unix(read),
            write: Box::new(write),
            waiting: Waiting::Connect,
        }
    }

    /// What goes first once the tunnel is open.
    pub fn opened_answer(&self) -> &'static [u8] {
        match self.waiting {
            Waiting::Nobody => b"",
            Waiting::Connect => OPENED,
            Waiting::Socks => &socks5::SUCCEEDED,
        }
    }

    /// The tunnel did not open: whoever waits learns why; an accepted
    /// connection is closed (its reason is in the log).
    pub async fn refuse(mut self, reason: CloseReason) {
        let answer = match self.waiting {
            Waiting::Nobody => return,
            Waiting::Connect => format!("{NOT_OPENED}{reason}\n").into_bytes(),
            Waiting::Socks => socks5::failure(&reason).to_vec(),
        };
        let _ = self.write.write_all(&answer).await;
        let _ = self.write.shutdown().await;
    }
}

//! The local end of a tunnel: a connection accepted on a tunnel's port, or
//! a stream `toxtun connect` handed over through the control socket. The
//! latter is told the outcome of the opening first: `ok` and then the
//! tunnel's bytes, or one `error: ` line with the reason.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

pub type LocalRead = Box<dyn AsyncRead + Send + Unpin>;
pub type LocalWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// What the node writes on a handed-over stream once the tunnel is open.
pub const OPENED: &[u8] = b"ok\n";
/// What starts the line that says why the tunnel did not open.
pub const NOT_OPENED: &str = "error: ";

pub struct LocalStream {
    pub read: LocalRead,
    pub write: LocalWrite,
    /// Handed over by `toxtun connect`: it waits for the outcome.
    pub handed_over: bool,
}

impl LocalStream {
    pub fn accepted(stream: TcpStream) -> Self {
        // Small writes (a keystroke, a request) go at once.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        LocalStream {
            read: Box::new(read),
            write: Box::new(write),
            handed_over: false,
        }
    }

    pub fn handed_over(stream: UnixStream) -> Self {
        let (read, write) = stream.into_split();
        LocalStream {
            read: Box::new(read),
            write: Box::new(write),
            handed_over: true,
        }
    }

    /// The tunnel did not open: a handed-over stream learns why; an
    /// accepted one is closed (its reason is in the log).
    pub async fn refuse(mut self, reason: String) {
        if self.handed_over {
            let line = format!("{NOT_OPENED}{reason}\n");
            let _ = self.write.write_all(line.as_bytes()).await;
            let _ = self.write.shutdown().await;
        }
    }
}

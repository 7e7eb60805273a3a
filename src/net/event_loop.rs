//! The friend network's one thread: it owns the UDP socket and all protocol
//! state, and everything else talks to it through channels. No locks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::friends_file;
use crate::proto::{Event, FriendNet};

const MAX_DATAGRAM: usize = 65536;
/// Datagrams taken per wake-up before timers and commands get a turn.
const RECV_BATCH: usize = 64;

pub enum Command {
    Shutdown,
}

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
}

pub fn spawn(
    socket: std::net::UdpSocket,
    core: FriendNet,
    ctx: LoopContext,
) -> std::io::Result<LoopHandle> {
    socket.set_nonblocking(true)?;
    let local_addr = socket.local_addr()?;
    let (commands, receiver) = mpsc::channel(1024);
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
                EventLoop {
                    socket,
                    core,
                    commands: receiver,
                    ctx,
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

struct EventLoop {
    socket: UdpSocket,
    core: FriendNet,
    commands: mpsc::Receiver<Command>,
    ctx: LoopContext,
}

impl EventLoop {
    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            self.flush().await;
            self.dispatch_events();
            let deadline = self.core.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        self.core.handle_datagram(Instant::now(), from, &buf[..n]);
                    }
                    for _ in 1..RECV_BATCH {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.core.handle_datagram(Instant::now(), from, &buf[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            // ICMP errors from earlier sends surface here; they say nothing authenticated.
                            Err(_) => continue,
                        }
                    }
                }
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => return,
                },
                _ = sleep => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            if let Err(e) = self.socket.send_to(&transmit.payload, transmit.dst).await {
                debug!(dst = %transmit.dst, error = %e, "send failed");
            }
        }
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::FriendAdded { friend } => {
                    if let Err(e) = friends_file::append(&self.ctx.friends_file, &friend) {
                        warn!("{e}");
                    }
                }
                Event::Online { .. } | Event::Offline { .. } | Event::Received { .. } => {}
            }
        }
    }
}

//! The `[client]` lines' listeners: each binds its address and hands
//! every accepted connection (or, for `udp:`, every datagram) to the event
//! loop under the line's number. Each runs as a task of its own, so a
//! reload can stop one line's listener and start another's without
//! touching the connections already made.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;

use crate::net::accept::accept_each;
use crate::net::command::Command;
use crate::net::udp_flows::read_listener;
use crate::proto::tunnel::control::Transport;
use crate::tunnel_spec::TunnelSpec;

/// A tunnel line listening, under its number in the event loop.
pub struct Listener {
    pub index: usize,
    pub spec: TunnelSpec,
    task: JoinHandle<()>,
}

impl Listener {
    /// Stops listening; connections it handed over go on.
    pub fn stop(self) {
        self.task.abort();
        info!(tunnel = %self.spec.name, "tunnel no longer listening");
    }
}

/// Binds every line in `specs`, numbered from `first`.
pub async fn listen_all(
    specs: &[TunnelSpec],
    first: usize,
    commands: &mpsc::Sender<Command>,
) -> Result<Vec<Listener>, String> {
    let mut listeners = Vec::with_capacity(specs.len());
    for (offset, spec) in specs.iter().enumerate() {
        listeners.push(listen(first + offset, spec.clone(), commands).await?);
    }
    Ok(listeners)
}

/// Binds one line's listener and tells the event loop where it listens.
pub async fn listen(
    index: usize,
    spec: TunnelSpec,
    commands: &mpsc::Sender<Command>,
) -> Result<Listener, String> {
    let cannot = |e: std::io::Error| {
        format!(
            "tunnel '{}': cannot listen on {} ({}): {e}",
            spec.name,
            spec.listen,
            spec.transport.name()
        )
    };
    let to_loop = commands.clone();
    let (local, task): (SocketAddr, JoinHandle<()>) = match spec.transport {
        Transport::Udp => {
            let socket = UdpSocket::bind(spec.listen).await.map_err(cannot)?;
            let local = socket.local_addr().map_err(|e| e.to_string())?;
            let task = tokio::spawn(read_listener(index, Arc::new(socket), to_loop));
            (local, task)
        }
        Transport::Tcp => {
            let listener = TcpListener::bind(spec.listen).await.map_err(cannot)?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            let accepted = move |stream, _| {
                let to_loop = to_loop.clone();
                async move {
                    let command = Command::LocalConnection {
                        tunnel: index,
                        stream,
                    };
                    to_loop.send(command).await.is_ok()
                }
            };
            let label = format!("tunnel {}", spec.name);
            (local, tokio::spawn(accept_each(listener, label, accepted)))
        }
    };
    info!(tunnel = %spec.name, %local, transport = %spec.transport.name(), target = %spec.target(), server = %spec.server.key.short(), "tunnel listening");
    let _ = commands
        .send(Command::Listening {
            tunnel: index,
            local,
        })
        .await;
    Ok(Listener { index, spec, task })
}

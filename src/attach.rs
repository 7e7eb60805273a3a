//! `toxtun client` on a key whose node already runs: no second node on
//! the identity (the friend's session would flap between the two), and
//! the running one undisturbed. Each TCP tunnel line listens here, and
//! every connection is handed to the running node over its control
//! socket, as `connect` does; the node opens the tunnel and the socket
//! carries it.

use std::path::Path;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tracing::{info, warn};

use crate::config::Settings;
use crate::net::accept::accept_each;
use crate::net::control;
use crate::proto::tunnel::control::Transport;
use crate::signals::Signals;
use crate::tunnel_spec::TunnelSpec;

/// How much longer than its open timeout the node may take to answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// Whether a node answers on `path`.
pub fn node_runs(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

pub fn run(
    settings: Settings,
    path: &Path,
    once: bool,
    runtime: Runtime,
    mut signals: Signals,
) -> Result<(), String> {
    let needs_own_node: Vec<String> = settings
        .client
        .iter()
        .filter(|spec| spec.transport == Transport::Udp)
        .map(|spec| spec.name.clone())
        .chain(settings.socks.iter().map(|s| s.name.clone()))
        .collect();
    if !needs_own_node.is_empty() {
        return Err(format!(
            "a node already runs on this key ({}); only TCP tunnels can be handed to it, \
             not {}: stop that node, or give this client a key_file of its own",
            path.display(),
            needs_own_node.join(", ")
        ));
    }
    runtime.block_on(async {
        let (served, mut served_one) = tokio::sync::mpsc::channel::<()>(1);
        for spec in settings.client {
            let listener = TcpListener::bind(spec.listen).await.map_err(|e| {
                format!(
                    "tunnel '{}': cannot listen on {} (tcp): {e}",
                    spec.name, spec.listen
                )
            })?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            info!(tunnel = %spec.name, %local, transport = %Transport::Tcp.name(), target = %spec.target(), server = %spec.server.key.short(), "tunnel listening");
            let hand_over = HandOver {
                path: path.to_path_buf(),
                spec: spec.clone(),
                wait: settings.tunnel.open_timeout + ANSWER_MARGIN,
            };
            let served = served.clone();
            let accepted = move |stream, _| {
                let hand_over = hand_over.clone();
                let served = served.clone();
                async move {
                    let carried = tokio::spawn(async move {
                        hand_over.carry(stream).await;
                        let _ = served.send(()).await;
                    });
                    // With --once, the first connection is the only one.
                    if once {
                        let _ = carried.await;
                    }
                    !once
                }
            };
            tokio::spawn(accept_each(
                listener,
                format!("tunnel {}", spec.name),
                accepted,
            ));
        }
        info!(path = %path.display(), "a node already runs on this key: handing connections to it");
        crate::sd_notify::ready("handing connections to the node on this key");
        let first_served = async {
            match once {
                true => {
                    let _ = served_one.recv().await;
                    info!("one connection served (--once)");
                }
                false => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signals.stop_asked("a client handing its connections to the node on its key reads its config only at start; restart it") => {}
            _ = first_served => {}
        }
        Ok(())
    })
}

#[derive(Clone)]
struct HandOver {
    path: std::path::PathBuf,
    spec: TunnelSpec,
    wait: Duration,
}

impl HandOver {
    /// Asks the node for a tunnel and joins `stream` to it until both
    /// directions end; a refusal closes `stream` and is logged.
    async fn carry(&self, mut stream: TcpStream) {
        let (server, target) = (&self.spec.server, self.spec.target());
        let asked = control::connect(&self.path, server, &target);
        let tunnel = match tokio::time::timeout(self.wait, asked).await {
            Ok(Ok(Some(tunnel))) => tunnel,
            Ok(Ok(None)) => {
                warn!(tunnel = %self.spec.name, "the node on this key stopped; connection dropped");
                return;
            }
            Ok(Err(why)) => {
                warn!(tunnel = %self.spec.name, %target, reason = %why, "tunnel not opened");
                return;
            }
            Err(_) => {
                warn!(tunnel = %self.spec.name, %target, wait = ?self.wait, "the node on this key did not answer");
                return;
            }
        };
        let mut tunnel = tunnel;
        if let Err(e) = tokio::io::copy_bidirectional(&mut stream, &mut tunnel).await {
            info!(tunnel = %self.spec.name, error = %e, "handed-over connection ended");
        }
    }
}

//! The local SOCKS5 servers of `socks5:` client lines and `-D`: each
//! accepted connection is read up to its CONNECT request, then handed to
//! the event loop with its target, and answered once the tunnel opens or
//! is refused.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::id::ToxId;
use crate::net::accept::accept_each;
use crate::net::command::Command;
use crate::net::local_stream::LocalStream;
use crate::net::socks5;
use crate::tunnel_spec::SocksSpec;

/// A client has this long to send its greeting and request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn listen(specs: &[SocksSpec], commands: mpsc::Sender<Command>) -> Result<(), String> {
    for spec in specs {
        let listener = TcpListener::bind(spec.listen).await.map_err(|e| {
            format!(
                "SOCKS5 '{}': cannot listen on {}: {e}",
                spec.name, spec.listen
            )
        })?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        info!(socks = %spec.name, %local, server = %spec.server.key.short(), "SOCKS5 listening");
        let (name, server, commands) = (spec.name.clone(), spec.server, commands.clone());
        let accepted = move |stream, peer| {
            let (name, commands) = (name.clone(), commands.clone());
            tokio::spawn(async move {
                if let Err(e) = hand_to_loop(stream, server, commands).await {
                    info!(socks = %name, %peer, reason = %e, "SOCKS5 request not served");
                }
            });
            std::future::ready(true)
        };
        tokio::spawn(accept_each(
            listener,
            format!("SOCKS5 {}", spec.name),
            accepted,
        ));
    }
    Ok(())
}

async fn hand_to_loop(
    mut stream: TcpStream,
    server: ToxId,
    commands: mpsc::Sender<Command>,
) -> Result<(), String> {
    let target = tokio::time::timeout(REQUEST_TIMEOUT, socks5::read_request(&mut stream))
        .await
        .map_err(|_| format!("no request within {REQUEST_TIMEOUT:?}"))??;
    let command = Command::OpenOn {
        server,
        target,
        stream: LocalStream::socks(stream),
    };
    if commands.send(command).await.is_err() {
        warn!("SOCKS5 request dropped: the node is stopping");
    }
    Ok(())
}

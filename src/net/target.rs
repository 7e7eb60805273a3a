//! Server side: reaching a friend's target within the connect timeout, a
//! TCP connection for a stream tunnel, a connected UDP socket for a flow.
//! The outcome comes back to the event loop as a command.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::command::{Command, TargetSocket};
use super::udp_flows;
use crate::id::PublicKey;
use crate::proto::reason::{ReasonCode, Refusal};
use crate::proto::tunnel::control::Transport;

pub struct TargetRequest {
    pub friend: PublicKey,
    pub request: u32,
    pub target: String,
    pub transport: Transport,
}

pub fn connect_target(
    runtime: &tokio::runtime::Handle,
    asked: TargetRequest,
    timeout: Duration,
    commands: mpsc::Sender<Command>,
) {
    runtime.spawn(async move {
        let target = asked.target.as_str();
        let reached = async {
            match asked.transport {
                Transport::Tcp => connect_tcp(target).await.map(TargetSocket::Tcp),
                Transport::Udp => udp_flows::bind_to(target).await.map(TargetSocket::Udp),
            }
        };
        let result = match tokio::time::timeout(timeout, reached).await {
            Ok(result) => result,
            Err(_) => Err(Refusal::new(
                ReasonCode::Timeout,
                format!("connecting to {target} timed out after {timeout:?}"),
            )),
        };
        let _ = commands
            .send(Command::TargetConnected {
                friend: asked.friend,
                request: asked.request,
                result,
            })
            .await;
    });
}

async fn connect_tcp(target: &str) -> Result<TcpStream, Refusal> {
    TcpStream::connect(target).await.map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ReasonCode::TargetRefused
        } else {
            ReasonCode::TargetUnreachable
        };
        Refusal::new(code, format!("cannot connect to {target}: {e}"))
    })
}

//! `toxtun connect ID TARGET`: standard input and output joined to one
//! tunnel, for programs that talk through a command (ssh's ProxyCommand).
//! The node already running on this key opens the tunnel and hands the
//! stream over its control socket, as ssh's ControlMaster does; only when
//! none runs does this process run a node of its own, which then serves
//! other `connect`s on the same key until its own stream ends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::config::Settings;
use crate::id::ToxId;
use crate::net::control;
use crate::node::{start_node, Mode};
use crate::proto::tunnel::services::check_service_name;

pub fn run(settings: Settings, id: &str, target: &str) -> Result<(), String> {
    let server = id
        .parse::<ToxId>()
        .map_err(|e| format!("connect: '{id}' is not a server ID: {e}"))?;
    check_target(target)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let path = control::socket_path(&settings.node.key_file);
    let ask = HandOver {
        path: &path,
        server: &server,
        target,
        wait: settings.tunnel.open_timeout + ANSWER_MARGIN,
    };
    let result = runtime.block_on(async {
        if let Some(stream) = ask.stream().await? {
            return join_stdio(stream).await;
        }
        own_node(&settings, &ask).await
    });
    // Standard input is read on a blocking thread that may still wait for
    // a line no one will type; the process ends without it.
    runtime.shutdown_background();
    result
}

/// How much longer than its open timeout the node may take to answer
/// before `connect` gives up on it (a node whose loop is stuck).
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// What `connect` asks the node on this key for.
struct HandOver<'a> {
    path: &'a Path,
    server: &'a ToxId,
    target: &'a str,
    wait: Duration,
}

impl HandOver<'_> {
    /// The stream once the node opened the tunnel; None when no node runs.
    async fn stream(&self) -> Result<Option<UnixStream>, String> {
        let asked = control::connect(self.path, self.server, self.target);
        tokio::time::timeout(self.wait, asked)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the node on {} did not answer within {:?}",
                    self.path.display(),
                    self.wait
                ))
            })
    }
}

/// `HOST:PORT` or a service's name, checked here so a typo is reported
/// before any node starts.
fn check_target(target: &str) -> Result<(), String> {
    let Some((host, port)) = target.rsplit_once(':') else {
        return check_service_name(target)
            .map_err(|e| format!("connect: target {e}, nor HOST:PORT"));
    };
    match port.parse::<u16>() {
        Ok(port) if !host.is_empty() && port != 0 => Ok(()),
        _ => Err(format!(
            "connect: target '{target}' is not HOST:PORT (e.g. 127.0.0.1:22)"
        )),
    }
}

/// No node runs on this key: run one for as long as this stream lasts,
/// reachable through the control socket like any node.
async fn own_node(settings: &Settings, ask: &HandOver<'_>) -> Result<(), String> {
    // Another `connect` may have started its node since this one asked:
    // then the socket is taken, and that node is asked instead.
    let Ok(listener) = control::bind(ask.path).await else {
        return match ask.stream().await? {
            Some(stream) => join_stdio(stream).await,
            None => Err(format!("{}: no node answers", ask.path.display())),
        };
    };
    let (identity, _) =
        crate::key_file::load_or_create(&settings.node.key_file).map_err(|e| e.to_string())?;
    let handle = tokio::runtime::Handle::current();
    let node = start_node(settings, Mode::Client, Arc::new(identity), handle, false)?;
    tokio::spawn(control::serve(listener, node.commands.clone()));
    let result = match ask.stream().await {
        Ok(Some(stream)) => join_stdio(stream).await,
        Ok(None) => Err(format!(
            "{}: the node just started does not answer",
            ask.path.display()
        )),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(ask.path);
    let _ = node
        .commands
        .try_send(crate::net::command::Command::Shutdown);
    tokio::task::spawn_blocking(move || node.join())
        .await
        .map_err(|e| e.to_string())?;
    result
}

/// Copies standard input into the tunnel and the tunnel to standard output
/// until the tunnel's far side has finished. The end of standard input
/// finishes our side only: the answer may still be on its way.
async fn join_stdio(stream: UnixStream) -> Result<(), String> {
    let (mut from_tunnel, mut to_tunnel) = stream.into_split();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        if tokio::io::copy(&mut stdin, &mut to_tunnel).await.is_ok() {
            let _ = to_tunnel.shutdown().await;
        }
    });
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from_tunnel
            .read(&mut buf)
            .await
            .map_err(|e| format!("tunnel: {e}"))?;
        if n == 0 {
            break;
        }
        stdout
            .write_all(&buf[..n])
            .await
            .map_err(|e| format!("standard output: {e}"))?;
        stdout
            .flush()
            .await
            .map_err(|e| format!("standard output: {e}"))?;
    }
    Ok(())
}

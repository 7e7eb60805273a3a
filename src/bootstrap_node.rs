//! `toxtun bootstrap`: a bootstrap node on one UDP and TCP port, with
//! the control socket a node has, for `status`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use tracing::info;

use crate::config::{Settings, DEFAULT_PORT};
use crate::signals::Signals;

pub fn run(settings: Settings) -> Result<(), String> {
    crate::log_sink::log_to(settings.node.log_file.as_deref())?;
    crate::log_sink::apply_level(settings.node.log_level);
    let (identity, _) =
        crate::key_file::load_or_create(&settings.node.key_file).map_err(|e| e.to_string())?;
    println!("{}", identity.id());
    let listen = settings
        .node
        .listen
        .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT));
    let (socket, listener) = bind_udp_and_tcp(listen)?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let port = local.port();
    let entries: Vec<String> = match local.ip() {
        ip if ip.is_unspecified() => {
            let mut addrs = crate::net::lan::local_addrs();
            if addrs.is_empty() {
                addrs.push(Ipv4Addr::LOCALHOST);
            }
            addrs
                .iter()
                .map(|ip| format!("{ip}:{port}:{}", identity.id()))
                .collect()
        }
        _ => vec![format!("{local}:{}", identity.id())],
    };
    info!(udp = %local, tcp = %local, "bootstrap node listening");
    // Bound to every address, the node has no one address of its own to
    // give: each it can be reached at is an entry for `bootstrap =`.
    for entry in &entries {
        info!(%entry, "bootstrap entry (the address friends can reach goes in their config)");
    }
    let config = crate::bootstrap::BootstrapConfig {
        relay_rate: settings.bootstrap.relay_rate,
        relay_burst: settings.bootstrap.relay_burst,
        entry_ttl: settings.node.keepalive * 4,
        max_nodes: settings.bootstrap.max_nodes,
        seed: rand::random(),
    };
    let core = crate::bootstrap::Bootstrap::new(config, Instant::now());
    let idle = settings.node.keepalive * 4;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let control_path = crate::net::control::socket_path(&settings.node.key_file);
    let (stats_requests, stats_asked) = tokio::sync::mpsc::channel(8);
    let id = identity.id().to_string();
    let max_nodes = settings.bootstrap.max_nodes;
    let result = runtime.block_on(async {
        let mut signals = Signals::install()?;
        let control = crate::net::control::bind(&control_path).await?;
        tokio::spawn(crate::net::control::serve_each(control, move |stream| {
            let address = local.to_string();
            crate::bootstrap_status::answer(stream, stats_requests.clone(), id.clone(), address, max_nodes)
        }));
        crate::sd_notify::ready(&format!("bootstrap node on {local}"));
        tokio::select! {
            result = crate::bootstrap::driver::run(socket, listener, core, idle, stats_asked) => result.map_err(|e| e.to_string()),
            _ = signals.stop_asked("a bootstrap node reads its config only at start (its log_file was opened again); restart it") => Ok(()),
        }
    });
    crate::sd_notify::stopping();
    let _ = std::fs::remove_file(&control_path);
    result
}

/// Tries for "any free port" before giving up: the UDP socket picks it,
/// and another program may hold the same TCP port.
const FREE_PORT_TRIES: usize = 16;

/// A bootstrap node's UDP socket and TCP listener on one port. With port 0
/// the port the UDP socket got may be taken for TCP; another is tried.
fn bind_udp_and_tcp(
    listen: SocketAddr,
) -> Result<(std::net::UdpSocket, std::net::TcpListener), String> {
    let tries = if listen.port() == 0 {
        FREE_PORT_TRIES
    } else {
        1
    };
    let mut last = String::new();
    for _ in 0..tries {
        let socket =
            crate::net::udp::bind(listen).map_err(|e| crate::net::udp::bind_error(listen, &e))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        match std::net::TcpListener::bind(local) {
            Ok(listener) => return Ok((socket, listener)),
            Err(e) => last = format!("cannot listen on TCP {local}: {e}"),
        }
    }
    Err(last)
}

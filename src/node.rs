//! A node built from the settings: its identity's friends, bootstrap
//! nodes, limits and tunnels, on the event-loop thread.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::config::{ProxySetting, Settings, DEFAULT_PORT};
use crate::friends_file;
use crate::id::{PeerRef, ToxId};
use crate::net::event_loop::{self, LoopContext, LoopHandle};
use crate::net::proxy::ProxyRoute;
use crate::proto::identity::Identity;
use crate::proto::tunnel::limits::TunnelLimits;
use crate::proto::{Core, FriendNet, FriendNetConfig, TunnelConfig};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Server,
    Client,
}

pub fn start_node(
    settings: &Settings,
    mode: Mode,
    identity: Arc<Identity>,
    tcp_runtime: tokio::runtime::Handle,
    once: bool,
) -> Result<LoopHandle, String> {
    let listen = settings.node.listen.unwrap_or_else(|| {
        let port = if mode == Mode::Server {
            DEFAULT_PORT
        } else {
            0
        };
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    });
    let socket =
        crate::net::udp::bind(listen).map_err(|e| crate::net::udp::bind_error(listen, &e))?;
    let friends_path = friends_file::path_for(&settings.node.key_file);
    let accept_requests = mode == Mode::Server && settings.server.friends.is_empty();
    let remembered = if accept_requests {
        friends_file::load(&friends_path)?
    } else {
        Vec::new()
    };
    // A server's config may have [client] lines too: one node, both roles.
    for (name, server) in used_servers(settings) {
        let known = settings.peers.iter().any(|p| p.peer.key() == server.key);
        if !known && settings.node.bootstrap.is_empty() {
            let only_lan = if settings.node.lan_discovery {
                "; only LAN discovery can find it"
            } else {
                ""
            };
            warn!(tunnel = %name, "no address known for its server: add it under [peers] or configure a bootstrap node{only_lan}");
        }
    }
    let lan_socket = if settings.node.lan_discovery {
        crate::net::lan::bind()
            .map_err(|e| {
                warn!(
                    port = crate::proto::lan::PORT,
                    error = %e,
                    "LAN discovery off: cannot listen on its port"
                )
            })
            .ok()
    } else {
        None
    };
    let proxy = match &settings.node.proxy {
        ProxySetting::FromEnvironment => ProxyRoute::from_env(|name| std::env::var(name).ok())?,
        ProxySetting::None => ProxyRoute::default(),
        ProxySetting::Use(proxy) => ProxyRoute::new(Some(proxy.clone())),
    };
    let ctx = LoopContext {
        friends_file: friends_path,
        proxy,
        tunnels: settings.client.clone(),
        connect_timeout: settings.server.connect_timeout,
        tcp_runtime,
        lan_socket,
        once,
    };
    let settings = settings.clone();
    let udp_addr = socket.local_addr().ok();
    let make_node = move || {
        build_node(
            &settings,
            mode,
            identity,
            accept_requests,
            remembered,
            udp_addr,
        )
    };
    let handle = event_loop::spawn(socket, make_node, ctx)
        .map_err(|e| format!("cannot start event loop: {e}"))?;
    info!(udp = %handle.local_addr, ?mode, "node listening");
    Ok(handle)
}

fn build_node(
    settings: &Settings,
    mode: Mode,
    identity: Arc<Identity>,
    accept_requests: bool,
    remembered: Vec<crate::id::PublicKey>,
    udp_addr: Option<SocketAddr>,
) -> Core {
    let config = FriendNetConfig {
        keepalive: settings.node.keepalive,
        friend_timeout: settings.node.friend_timeout,
        psk: settings.node.psk,
        accept_requests,
        lan_discovery: settings.node.lan_discovery,
        max_friends: settings.server.max_friends,
    };
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut net = FriendNet::new(identity, config, now, unix_now, rand::random());
    if let Some(addr) = udp_addr {
        net.set_udp_addr(addr);
    }
    net.set_names(
        settings
            .friend_names
            .iter()
            .map(|(name, peer)| (peer.key(), name.clone())),
    );
    for (host_port, id) in &settings.node.bootstrap {
        match crate::config::resolve(&host_port.to_string()) {
            Ok(addr) => net.add_bootstrap(now, addr, *id),
            Err(e) => warn!("bootstrap node {host_port}: {e}; skipped"),
        }
    }
    let hint_for = |key| {
        settings
            .peers
            .iter()
            .find(|p| p.peer.key() == key)
            .map(|p| p.addr)
    };
    for peer in &settings.peers {
        net.add_friend(now, peer.peer, Some(peer.addr), true);
    }
    if mode == Mode::Server {
        for friend in &settings.server.friends {
            net.add_friend(now, *friend, hint_for(friend.key()), false);
        }
    }
    for key in remembered {
        net.add_friend(now, PeerRef::Key(key), hint_for(key), false);
    }
    for (_, server) in used_servers(settings) {
        net.add_friend(now, PeerRef::Id(server), hint_for(server.key), true);
    }
    let limits = TunnelLimits {
        per_friend: settings.tunnel.max_tunnels_per_friend,
        node: crate::descriptors::tunnel_budget(settings.client.len() + settings.socks.len()),
        buffer_per_friend: settings.tunnel.buffer_per_friend,
    };
    let tunnels = TunnelConfig {
        kcp: settings.kcp,
        open_timeout: settings.tunnel.open_timeout,
        idle_timeout: settings.tunnel.idle_timeout,
        udp_idle_timeout: settings.tunnel.udp_idle_timeout,
        limits,
        allow: (mode == Mode::Server).then(|| settings.server.allow.clone()),
        services: settings.services.clone(),
    };
    Core::new(net, tunnels, now)
}

/// Each `[client]` line's name and server: tunnels and SOCKS5 listeners.
fn used_servers(settings: &Settings) -> impl Iterator<Item = (&str, ToxId)> {
    let tunnels = settings.client.iter().map(|s| (s.name.as_str(), s.server));
    let socks = settings.socks.iter().map(|s| (s.name.as_str(), s.server));
    tunnels.chain(socks)
}

//! `toxtun check [-c FILE]`: the config is read as a node would read it
//! (any error stops it, with the file and line), and what a node would
//! do with it is printed. Nothing is created, bound or sent.

use std::fmt::Write;

use crate::config::{ProxySetting, Settings, DEFAULT_PORT};
use crate::id::PeerRef;
use crate::tunnel_spec::TunnelSpec;

pub fn render(settings: &Settings) -> String {
    let mut out = String::new();
    let source = settings.source.as_ref().map_or(
        "no config file (built-in defaults and flags)".to_string(),
        |p| p.display().to_string(),
    );
    let _ = writeln!(out, "config     {source}: ok");
    for warning in &settings.warnings {
        let _ = writeln!(out, "warning    {warning}");
    }
    let node = &settings.node;
    let key = node.key_file.display();
    let identity = match crate::key_file::load(&node.key_file) {
        Ok(identity) => format!("{key}, ID {}", identity.id()),
        Err(_) if !node.key_file.exists() => format!("{key} (created on first run)"),
        Err(e) => format!("{key}: {e}"),
    };
    let _ = writeln!(out, "identity   {identity}");
    let listen = match node.listen {
        Some(addr) => format!("UDP {addr}"),
        None => format!("UDP 0.0.0.0:{DEFAULT_PORT} as server, any free port as client"),
    };
    let _ = writeln!(out, "listen     {listen}");
    let lan = if node.lan_discovery {
        "on (UDP 33446)"
    } else {
        "off"
    };
    let _ = writeln!(out, "lan        {lan}");
    for (host, id) in &node.bootstrap {
        let _ = writeln!(out, "bootstrap  {host}:{id}");
    }
    let proxy = match &node.proxy {
        ProxySetting::FromEnvironment => "from ALL_PROXY / HTTPS_PROXY, if set".to_string(),
        ProxySetting::None => "none".to_string(),
        ProxySetting::Use(proxy) => proxy.to_string(),
    };
    let _ = writeln!(out, "proxy      {proxy} (for TCP links to bootstrap nodes)");
    for (name, peer) in &settings.friend_names {
        let _ = writeln!(out, "friend     {name} = {}", peer_text(peer));
    }
    for hint in &settings.peers {
        let _ = writeln!(out, "peer       {} at {}", peer_text(&hint.peer), hint.addr);
    }
    let server = &settings.server;
    let friends = match server.friends.is_empty() {
        true => "anyone who has the full ID (remembered once accepted)".to_string(),
        false => server
            .friends
            .iter()
            .map(peer_text)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let _ = writeln!(out, "server     friends: {friends}");
    let allow: Vec<String> = server.allow.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "server     allow: {}", allow.join(", "));
    for (name, target) in &settings.services {
        let _ = writeln!(out, "service    {name} = {target}");
    }
    for spec in &settings.client {
        let _ = writeln!(out, "tunnel     {}", tunnel_text(spec));
    }
    for socks in &settings.socks {
        let _ = writeln!(
            out,
            "socks5     {}: {} to {}",
            socks.name, socks.listen, socks.server
        );
    }
    if settings.client.is_empty() && settings.socks.is_empty() {
        let _ = writeln!(out, "tunnel     none: `client` would refuse to start");
    }
    out
}

fn peer_text(peer: &PeerRef) -> String {
    match peer {
        PeerRef::Id(id) => id.to_string(),
        PeerRef::Key(key) => key.to_string(),
    }
}

fn tunnel_text(spec: &TunnelSpec) -> String {
    format!(
        "{}: {} {} to {} at {}",
        spec.name,
        spec.transport.name(),
        spec.listen,
        spec.target(),
        spec.server
    )
}

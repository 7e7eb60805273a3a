//! Single values as users write them: durations, flags, addresses, lists.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::id::ToxId;
use crate::proto::address::{parse_host_port, HostPort};
use crate::proto::tunnel::allow::AllowRule;
use crate::proto::tunnel::services::check_service_name;

pub(super) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Resolves HOST:PORT to one socket address; names are looked up once, here.
pub fn resolve(value: &str) -> Result<SocketAddr, String> {
    let hp = parse_host_port(value)?;
    let port = hp
        .port
        .ok_or_else(|| format!("'{value}': a port is required here, not '*'"))?;
    (hp.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("'{value}': cannot resolve '{}': {e}", hp.host))?
        .next()
        .ok_or_else(|| format!("'{value}': '{}' has no address", hp.host))
}

pub(super) fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let hp = parse_host_port(value)?;
    let port = hp
        .port
        .ok_or_else(|| format!("'{value}': a port is required (0 = any free port)"))?;
    let ip = if hp.host == "*" {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        hp.host
            .parse()
            .map_err(|_| format!("'{value}': listen needs an IP address, not '{}'", hp.host))?
    };
    Ok(SocketAddr::new(ip, port))
}

pub fn parse_flag(value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("'{value}' is not on or off")),
    }
}

pub(super) fn parse_bootstrap(item: &str) -> Result<(HostPort, ToxId), String> {
    let (addr, id) = item
        .rsplit_once(':')
        .ok_or_else(|| format!("'{item}': expected HOST:PORT:ID"))?;
    let id: ToxId = id.parse().map_err(|e| format!("'{item}': bad ID: {e}"))?;
    let hp = parse_host_port(addr)?;
    if hp.port.is_none() {
        return Err(format!("'{item}': a bootstrap node needs a port"));
    }
    Ok((hp, id))
}

pub(super) fn parse_allow_rule(item: &str) -> Result<AllowRule, String> {
    let hp = parse_host_port(item)?;
    let host = if hp.host == "*" { None } else { Some(hp.host) };
    Ok(AllowRule {
        host,
        port: hp.port,
    })
}

pub(super) fn parse_positive(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{value}' is not a positive number"))
}

/// `15s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{value}' is not a duration (examples: 15s, 500ms, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("'{other}' is not a time unit (use ms, s, m or h)")),
    };
    let seconds = number * scale;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("'{value}' must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A `[services]` line: a name and the HOST:PORT it stands for, written as
/// OPEN carries a target (an IPv6 host in brackets).
pub(super) fn parse_service(name: &str, value: &str) -> Result<String, String> {
    check_service_name(name)?;
    let hp = parse_host_port(value)?;
    let port = match hp.port {
        Some(port) if port != 0 && hp.host != "*" => port,
        _ => return Err(format!("'{value}': expected HOST:PORT")),
    };
    Ok(if hp.host.contains(':') {
        format!("[{}]:{port}", hp.host)
    } else {
        format!("{}:{port}", hp.host)
    })
}

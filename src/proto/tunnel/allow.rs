//! The server's allow list: which targets a friend's OPEN may reach.

use std::fmt;
use std::net::IpAddr;

use crate::proto::address::parse_host_port;

/// A target friends may reach: a host (IP, name, or `*`) and a port or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl AllowRule {
    pub fn permits(&self, host: &str, port: u16) -> bool {
        let host_ok = match &self.host {
            None => true,
            Some(rule) => same_host(rule, host),
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// Whether any rule lets a friend reach `target` (as OPEN carries it).
pub fn permitted(rules: &[AllowRule], target: &str) -> Result<bool, String> {
    let hp = parse_host_port(target)?;
    Ok(hp
        .port
        .is_some_and(|port| rules.iter().any(|r| r.permits(&hp.host, port))))
}

fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host.as_deref().unwrap_or("*");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => write!(f, "{host}:*"),
        }
    }
}

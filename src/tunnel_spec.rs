//! One `[client]` line: `[tcp:|udp:]LISTEN_HOST:LISTEN_PORT:TARGET_HOST:TARGET_PORT:SERVER_ID`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::id::ToxId;
use crate::proto::address::{check_host, parse_port, split_fields};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: String,
    pub listen: SocketAddr,
    pub target_host: String,
    pub target_port: u16,
    pub server: ToxId,
}

impl TunnelSpec {
    /// The target as the OPEN message carries it.
    pub fn target(&self) -> String {
        if self.target_host.contains(':') {
            format!("[{}]:{}", self.target_host, self.target_port)
        } else {
            format!("{}:{}", self.target_host, self.target_port)
        }
    }
}

pub fn parse_tunnel_line(name: &str, line: &str) -> Result<TunnelSpec, String> {
    let line = line.trim();
    let body = if let Some(rest) = line.strip_prefix("tcp:") {
        rest
    } else if line.starts_with("udp:") {
        return Err("udp tunnels are not supported yet; use tcp".into());
    } else {
        line
    };
    let fields = split_fields(body)?;
    let [listen_host, listen_port, target_host, target_port, server] = fields.as_slice() else {
        return Err(format!(
            "expected LISTEN_HOST:LISTEN_PORT:TARGET_HOST:TARGET_PORT:SERVER_ID, found {} fields",
            fields.len()
        ));
    };
    let listen_ip = match listen_host.as_str() {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        other => other
            .parse()
            .map_err(|_| format!("listen host '{other}' must be an IP address, * or localhost"))?,
    };
    let listen_port = parse_port(listen_port, line)?
        .ok_or_else(|| "the listen port must be a number".to_string())?;
    check_host(target_host, line)?;
    if target_host == "*" {
        return Err("the target host must be named, not '*'".into());
    }
    let target_port = match parse_port(target_port, line)? {
        Some(p) if p != 0 => p,
        _ => return Err(format!("target port '{target_port}' must be 1-65535")),
    };
    let server = server
        .parse::<ToxId>()
        .map_err(|e| format!("bad server ID: {e}"))?;
    Ok(TunnelSpec {
        name: name.to_string(),
        listen: SocketAddr::new(listen_ip, listen_port),
        target_host: target_host.clone(),
        target_port,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";

    #[test]
    fn forms() {
        let spec = parse_tunnel_line("t", &format!("tcp:127.0.0.1:0:[::1]:22:{ID}")).unwrap();
        assert_eq!(spec.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(spec.target(), "[::1]:22");
        let err = parse_tunnel_line("t", &format!("udp:*:53:127.0.0.1:53:{ID}")).unwrap_err();
        assert!(err.contains("udp"), "{err}");
        let err = parse_tunnel_line("t", &format!("*:81:127.0.0.1:{ID}")).unwrap_err();
        assert!(err.contains("4 fields"), "{err}");
    }
}

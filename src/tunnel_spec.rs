//! One `[client]` line: `[tcp:|udp:]LISTEN_HOST:LISTEN_PORT:TARGET_HOST:TARGET_PORT:SERVER_ID`,
//! `LISTEN_HOST:LISTEN_PORT:SERVICE:SERVER_ID` for a service the server
//! names in its `[services]`, or `socks5:LISTEN_HOST:LISTEN_PORT:SERVER_ID`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::id::ToxId;
use crate::proto::address::{check_host, parse_port, split_fields};
use crate::proto::tunnel::control::Transport;
use crate::proto::tunnel::services::check_service_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: String,
    pub listen: SocketAddr,
    pub target: Target,
    pub server: ToxId,
    pub transport: Transport,
}

/// What the server connects the tunnel to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Address {
        host: String,
        port: u16,
    },
    /// A name in the server's `[services]`.
    Service(String),
}

impl TunnelSpec {
    /// The target as the OPEN message carries it.
    pub fn target(&self) -> String {
        match &self.target {
            Target::Address { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Address { host, port } => format!("{host}:{port}"),
            Target::Service(name) => name.clone(),
        }
    }
}

pub fn parse_tunnel_line(name: &str, line: &str) -> Result<TunnelSpec, String> {
    let line = line.trim();
    let (transport, body) = if let Some(rest) = line.strip_prefix("tcp:") {
        (Transport::Tcp, rest)
    } else if let Some(rest) = line.strip_prefix("udp:") {
        (Transport::Udp, rest)
    } else {
        (Transport::Tcp, line)
    };
    let fields = split_fields(body)?;
    let (listen_host, listen_port, target, server) = match fields.as_slice() {
        [listen_host, listen_port, target_host, target_port, server] => (
            listen_host,
            listen_port,
            parse_address(line, target_host, target_port)?,
            server,
        ),
        [listen_host, listen_port, service, server] => {
            check_service_name(service)?;
            (
                listen_host,
                listen_port,
                Target::Service(service.clone()),
                server,
            )
        }
        _ => {
            return Err(format!(
                "expected LISTEN_HOST:LISTEN_PORT:TARGET_HOST:TARGET_PORT:SERVER_ID \
                 or LISTEN_HOST:LISTEN_PORT:SERVICE:SERVER_ID, found {} fields",
                fields.len()
            ))
        }
    };
    Ok(TunnelSpec {
        name: name.to_string(),
        listen: parse_listen(line, listen_host, listen_port)?,
        target,
        server: parse_server(server)?,
        transport,
    })
}

/// A `socks5:LISTEN_HOST:LISTEN_PORT:SERVER_ID` line: a local SOCKS5
/// server whose connections become tunnels to the server, which applies
/// its `allow` to each target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksSpec {
    pub name: String,
    pub listen: SocketAddr,
    pub server: ToxId,
}

/// `line` without its `socks5:`, if it has one.
pub fn socks_body(line: &str) -> Option<&str> {
    line.trim().strip_prefix("socks5:")
}

pub fn parse_socks_line(name: &str, body: &str) -> Result<SocksSpec, String> {
    let fields = split_fields(body.trim())?;
    let [listen_host, listen_port, server] = fields.as_slice() else {
        return Err(format!(
            "expected socks5:LISTEN_HOST:LISTEN_PORT:SERVER_ID, found {} fields",
            fields.len()
        ));
    };
    Ok(SocksSpec {
        name: name.to_string(),
        listen: parse_listen(body, listen_host, listen_port)?,
        server: parse_server(server)?,
    })
}

fn parse_listen(line: &str, host: &str, port: &str) -> Result<SocketAddr, String> {
    let ip = match host {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        other => other
            .parse()
            .map_err(|_| format!("listen host '{other}' must be an IP address, * or localhost"))?,
    };
    let port =
        parse_port(port, line)?.ok_or_else(|| "the listen port must be a number".to_string())?;
    Ok(SocketAddr::new(ip, port))
}

fn parse_server(server: &str) -> Result<ToxId, String> {
    server
        .parse::<ToxId>()
        .map_err(|e| format!("bad server ID: {e}"))
}

fn parse_address(line: &str, host: &str, port: &str) -> Result<Target, String> {
    check_host(host, line)?;
    if host == "*" {
        return Err("the target host must be named, not '*'".into());
    }
    match parse_port(port, line)? {
        Some(port) if port != 0 => Ok(Target::Address {
            host: host.to_string(),
            port,
        }),
        _ => Err(format!("target port '{port}' must be 1-65535")),
    }
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
        assert_eq!(spec.transport, Transport::Tcp);
        let spec = parse_tunnel_line("t", &format!("udp:*:53:127.0.0.1:53:{ID}")).unwrap();
        assert_eq!(spec.transport, Transport::Udp);
        assert_eq!(spec.target(), "127.0.0.1:53");
        let spec = parse_tunnel_line("t", &format!("*:81:web:{ID}")).unwrap();
        assert_eq!(spec.target, Target::Service("web".into()));
        assert_eq!(spec.target(), "web");
        let err = parse_tunnel_line("t", &format!("*:81:127.0.0.1:{ID}")).unwrap_err();
        assert!(err.contains("service name"), "{err}");
        let err = parse_tunnel_line("t", &format!("*:81:{ID}")).unwrap_err();
        assert!(err.contains("3 fields"), "{err}");
        let line = format!("socks5:127.0.0.1:1080:{ID}");
        let spec = parse_socks_line("s", socks_body(&line).unwrap()).unwrap();
        assert_eq!(spec.listen, "127.0.0.1:1080".parse().unwrap());
        let err = parse_socks_line("s", "127.0.0.1:1080").unwrap_err();
        assert!(err.contains("2 fields"), "{err}");
    }
}

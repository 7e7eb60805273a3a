//! toxtun.ini into typed, validated settings. Every error names the file,
//! the line and the key, and says what is wrong.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ini::{Ini, ParseOption};

use crate::address::{parse_host_port, HostPort};
use crate::id::{PeerRef, ToxId};
use crate::kcp_mode::KcpSettings;
use crate::tunnel_spec::{parse_tunnel_line, TunnelSpec};

pub const DEFAULT_PORT: u16 = 33445;
pub const DEFAULT_KEY_FILE: &str = "toxtun.key";

#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file these came from, if any.
    pub source: Option<PathBuf>,
    pub node: NodeSettings,
    pub peers: Vec<PeerHint>,
    pub server: ServerSettings,
    pub client: Vec<TunnelSpec>,
    pub kcp: KcpSettings,
    pub tunnel: TunnelTimeouts,
    pub bootstrap: BootstrapSettings,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    /// Relayed bytes a second each node may send through us.
    pub relay_rate: u64,
    pub relay_burst: u64,
}

#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub key_file: PathBuf,
    /// None when the config leaves it to the mode: the server takes the
    /// well-known port, the client any free one.
    pub listen: Option<SocketAddr>,
    pub bootstrap: Vec<(HostPort, ToxId)>,
    pub keepalive: Duration,
    pub friend_timeout: Duration,
    pub psk: [u8; 32],
    pub lan_discovery: bool,
}

#[derive(Debug, Clone)]
pub struct PeerHint {
    pub peer: PeerRef,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub friends: Vec<PeerRef>,
    pub allow: Vec<AllowRule>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TunnelTimeouts {
    /// How long a new local connection waits for the friend and the far side.
    pub open_timeout: Duration,
    /// A tunnelled connection with no traffic either way for this long is reset.
    pub idle_timeout: Duration,
}

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

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Built-in defaults, used when no config file is given.
    pub fn defaults(key_file: PathBuf) -> Self {
        Settings {
            source: None,
            node: NodeSettings {
                key_file,
                listen: None,
                bootstrap: Vec::new(),
                keepalive: Duration::from_secs(15),
                friend_timeout: Duration::from_secs(45),
                lan_discovery: true,
                psk: [0; 32],
            },
            peers: Vec::new(),
            server: ServerSettings {
                friends: Vec::new(),
                allow: default_allow(),
                connect_timeout: Duration::from_secs(10),
            },
            client: Vec::new(),
            kcp: KcpSettings::default(),
            tunnel: TunnelTimeouts {
                open_timeout: Duration::from_secs(15),
                idle_timeout: Duration::from_secs(3600),
            },
            bootstrap: BootstrapSettings {
                relay_rate: 8 * 1024 * 1024,
                relay_burst: 1024 * 1024,
            },
            warnings: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read config: {e}", path.display())))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let option = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ParseOption::default()
        };
        let ini = Ini::load_from_str_opt(text, option)
            .map_err(|e| ConfigError(format!("{}:{}: {}", path.display(), e.line + 1, e.msg)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut settings = Self::defaults(base.join(DEFAULT_KEY_FILE));
        settings.source = Some(path.to_path_buf());
        let reader = Reader {
            path,
            lines: index_lines(path, text)?,
        };
        for (section, props) in ini.iter() {
            let section_name = section.unwrap_or("");
            for (key, raw) in props.iter() {
                let value = raw.trim();
                let at = reader.at(section_name, key);
                let known = match section_name {
                    "node" => settings.node_key(&reader, base, key, value)?,
                    "peers" => {
                        settings.peers.push(parse_peer(&reader, key, value)?);
                        true
                    }
                    "server" => settings.server_key(&reader, key, value)?,
                    "client" => {
                        let spec = parse_tunnel_line(key, value)
                            .map_err(|e| reader.error(section_name, key, e))?;
                        settings.client.push(spec);
                        true
                    }
                    "kcp" => settings
                        .kcp
                        .set(key, value)
                        .map_err(|e| reader.error(section_name, key, e))?,
                    "tunnel" => settings.tunnel_key(&reader, key, value)?,
                    "bootstrap" => settings.bootstrap_key(&reader, key, value)?,
                    "" => {
                        settings
                            .warnings
                            .push(format!("{at}: key '{key}' outside any section is ignored"));
                        true
                    }
                    _ => {
                        settings
                            .warnings
                            .push(format!("{at}: unknown section [{section_name}] is ignored"));
                        break;
                    }
                };
                if !known {
                    settings.warnings.push(format!(
                        "{at}: unknown key '{key}' in [{section_name}] is ignored"
                    ));
                }
            }
        }
        settings.check_listen_ports(&reader)?;
        if settings.node.friend_timeout <= settings.node.keepalive {
            return Err(reader.error(
                "node",
                "friend_timeout",
                "friend_timeout must be longer than keepalive".into(),
            ));
        }
        settings
            .kcp
            .validate()
            .map_err(|e| ConfigError(format!("{}: [kcp]: {e}", path.display())))?;
        Ok(settings)
    }

    fn node_key(
        &mut self,
        r: &Reader,
        base: &Path,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        let err = |e: String| r.error("node", key, e);
        match key {
            "key_file" => {
                if value.is_empty() {
                    return Err(err("empty path".into()));
                }
                self.node.key_file = base.join(value);
            }
            "listen" => self.node.listen = Some(parse_listen(value).map_err(err)?),
            // Repeated lines add to the list rather than replace it.
            "bootstrap" => {
                for entry in split_list(value) {
                    self.node
                        .bootstrap
                        .push(parse_bootstrap(entry).map_err(err)?);
                }
            }
            "keepalive" => self.node.keepalive = parse_duration(value).map_err(err)?,
            "friend_timeout" => self.node.friend_timeout = parse_duration(value).map_err(err)?,
            "lan_discovery" => self.node.lan_discovery = parse_flag(value).map_err(err)?,
            "psk" if value.is_empty() => self.node.psk = [0; 32],
            "psk" => {
                let bytes = hex::decode(value).map_err(|e| err(format!("not hex: {e}")))?;
                self.node.psk = bytes.try_into().map_err(|b: Vec<u8>| {
                    err(format!("must be 32 bytes (64 hex), found {}", b.len()))
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn server_key(&mut self, r: &Reader, key: &str, value: &str) -> Result<bool, ConfigError> {
        let err = |e: String| r.error("server", key, e);
        match key {
            "friends" => {
                self.server.friends = split_list(value)
                    .map(|item| {
                        item.parse::<PeerRef>()
                            .map_err(|e| format!("'{item}': {e}"))
                    })
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            "allow" => {
                self.server.allow = split_list(value)
                    .map(parse_allow_rule)
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            "connect_timeout" => {
                self.server.connect_timeout = parse_duration(value).map_err(err)?
            }
            // The Go toxtun's example config names its server; accepted as a label.
            "name" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn tunnel_key(&mut self, r: &Reader, key: &str, value: &str) -> Result<bool, ConfigError> {
        let err = |e: String| r.error("tunnel", key, e);
        match key {
            "open_timeout" => self.tunnel.open_timeout = parse_duration(value).map_err(err)?,
            "idle_timeout" => self.tunnel.idle_timeout = parse_duration(value).map_err(err)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn bootstrap_key(&mut self, r: &Reader, key: &str, value: &str) -> Result<bool, ConfigError> {
        let number = || {
            value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                r.error(
                    "bootstrap",
                    key,
                    format!("'{value}' is not a positive number of bytes"),
                )
            })
        };
        match key {
            "relay_rate" => self.bootstrap.relay_rate = number()?,
            "relay_burst" => self.bootstrap.relay_burst = number()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn check_listen_ports(&self, r: &Reader) -> Result<(), ConfigError> {
        let mut seen: HashMap<u16, &str> = HashMap::new();
        for spec in &self.client {
            let port = spec.listen.port();
            if port == 0 {
                continue;
            }
            if let Some(first) = seen.insert(port, &spec.name) {
                return Err(r.error(
                    "client",
                    &spec.name,
                    format!("listen port {port} is already used by tunnel '{first}'"),
                ));
            }
        }
        Ok(())
    }
}

pub fn default_allow() -> Vec<AllowRule> {
    vec![
        AllowRule {
            host: Some("127.0.0.1".into()),
            port: None,
        },
        AllowRule {
            host: Some("::1".into()),
            port: None,
        },
        AllowRule {
            host: Some("localhost".into()),
            port: None,
        },
    ]
}

/// Sections whose keys are checked for repeats; others only warn.
const KNOWN_SECTIONS: [&str; 7] = [
    "node",
    "peers",
    "server",
    "client",
    "kcp",
    "tunnel",
    "bootstrap",
];

/// Finds where each `[section] key` stands, since rust-ini keeps no line
/// numbers. A key given twice is an error (rust-ini would keep both and the
/// last would silently win), except `[node] bootstrap`, whose lines add up.
fn index_lines(path: &Path, text: &str) -> Result<HashMap<(String, String), usize>, ConfigError> {
    let mut out = HashMap::new();
    let mut section = String::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            if let Some(name) = rest.split(']').next() {
                section = name.trim().to_string();
            }
        } else if let Some((key, _)) = line.split_once('=') {
            if line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            let key = key.trim().to_string();
            let repeatable = section == "node" && key == "bootstrap";
            let checked = KNOWN_SECTIONS.contains(&section.as_str());
            if let Some(first) = out.get(&(section.clone(), key.clone())) {
                if checked && !repeatable {
                    return Err(ConfigError(format!(
                        "{}:{}: [{section}] {key}: given again (first on line {first}); give each key once",
                        path.display(),
                        number + 1
                    )));
                }
                continue;
            }
            out.insert((section.clone(), key), number + 1);
        }
    }
    Ok(out)
}

struct Reader<'a> {
    path: &'a Path,
    lines: HashMap<(String, String), usize>,
}

impl Reader<'_> {
    fn at(&self, section: &str, key: &str) -> String {
        match self.lines.get(&(section.to_string(), key.to_string())) {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn error(&self, section: &str, key: &str, reason: String) -> ConfigError {
        ConfigError(format!(
            "{}: [{section}] {key}: {reason}",
            self.at(section, key)
        ))
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_peer(r: &Reader, key: &str, value: &str) -> Result<PeerHint, ConfigError> {
    let peer: PeerRef = key
        .parse()
        .map_err(|e| r.error("peers", key, format!("bad ID or key: {e}")))?;
    let addr = resolve(value).map_err(|e| r.error("peers", key, e))?;
    Ok(PeerHint { peer, addr })
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

fn parse_listen(value: &str) -> Result<SocketAddr, String> {
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

fn parse_bootstrap(item: &str) -> Result<(HostPort, ToxId), String> {
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

fn parse_allow_rule(item: &str) -> Result<AllowRule, String> {
    let hp = parse_host_port(item)?;
    let host = if hp.host == "*" { None } else { Some(hp.host) };
    Ok(AllowRule {
        host,
        port: hp.port,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_ID: &str =
        "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(Path::new("/etc/toxtun.ini"), text)
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("config should be rejected").0
    }

    #[test]
    fn go_toxtun_config_parses() {
        let s = parse(&format!(
            "[server]\nname = whttpd\n\n[client]\ntoxtun1 = *:81:127.0.0.1:8181:{SERVER_ID}\n"
        ))
        .unwrap();
        assert_eq!(s.client.len(), 1);
        assert_eq!(s.client[0].listen.port(), 81);
        assert_eq!(s.client[0].target(), "127.0.0.1:8181");
        assert_eq!(s.client[0].server.to_string(), SERVER_ID);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn inline_comments_and_defaults() {
        let s = parse("[node]\nkey_file = my.key   ; secret\nlisten = 127.0.0.1:0 ; any port\n")
            .unwrap();
        assert_eq!(s.node.key_file, Path::new("/etc/my.key"));
        assert_eq!(s.node.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(s.server.allow, default_allow());
    }

    #[test]
    fn bootstrap_lines_add_up() {
        let s = parse(&format!(
            "[node]\nbootstrap = a.example:1:{SERVER_ID}, b.example:2:{SERVER_ID}\nbootstrap = c.example:3:{SERVER_ID}\n"
        ))
        .unwrap();
        let hosts: Vec<String> = s
            .node
            .bootstrap
            .iter()
            .map(|(h, _)| h.to_string())
            .collect();
        assert_eq!(hosts, ["a.example:1", "b.example:2", "c.example:3"]);
    }

    #[test]
    fn bad_checksum_names_file_line_and_reason() {
        let mut id = SERVER_ID.to_string();
        id.replace_range(0..1, "B");
        let err = error_of(&format!("[client]\n\nt1 = *:81:127.0.0.1:8181:{id}\n"));
        assert!(err.starts_with("/etc/toxtun.ini:3: [client] t1:"), "{err}");
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn bad_length_and_non_hex_ids_are_rejected() {
        let err = error_of(&format!(
            "[client]\nt1 = *:81:127.0.0.1:8181:{}\n",
            &SERVER_ID[..70]
        ));
        assert!(
            err.contains("/etc/toxtun.ini:2") && err.contains("70"),
            "{err}"
        );
        let mut id = SERVER_ID.to_string();
        id.replace_range(5..6, "Z");
        let err = error_of(&format!("[server]\nfriends = {id}\n"));
        assert!(
            err.contains("/etc/toxtun.ini:2") && err.contains("'Z' is not a hex digit"),
            "{err}"
        );
    }

    #[test]
    fn bad_addresses_are_rejected() {
        let err = error_of("[node]\nlisten = 1.2.3:99999\n");
        assert!(
            err.starts_with("/etc/toxtun.ini:2: [node] listen:"),
            "{err}"
        );
        let err = error_of(&format!("[peers]\n{SERVER_ID} = 127.0.0.1\n"));
        assert!(
            err.contains("/etc/toxtun.ini:2") && err.contains("HOST:PORT"),
            "{err}"
        );
        let err = error_of(&format!("[client]\nt = *:81:127.0.0.1:70000:{SERVER_ID}\n"));
        assert!(
            err.contains("/etc/toxtun.ini:2") && err.contains("70000"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_listen_port_is_rejected() {
        let err = error_of(&format!(
            "[client]\na = *:81:127.0.0.1:1:{SERVER_ID}\nb = *:81:127.0.0.1:2:{SERVER_ID}\n"
        ));
        assert!(
            err.contains("/etc/toxtun.ini:3: [client] b") && err.contains("'a'"),
            "{err}"
        );
    }

    #[test]
    fn a_key_given_twice_is_rejected_with_both_lines() {
        let err = error_of("[server]\nallow = *:22\n\n[server]\nallow = *:80\n");
        assert_eq!(
            err,
            "/etc/toxtun.ini:5: [server] allow: given again (first on line 2); give each key once"
        );
        let err = error_of(&format!(
            "[client]\nt = *:81:127.0.0.1:1:{SERVER_ID}\nt = *:82:127.0.0.1:2:{SERVER_ID}\n"
        ));
        assert!(
            err.starts_with("/etc/toxtun.ini:3: [client] t: given again"),
            "{err}"
        );
        let err = error_of(&format!(
            "[peers]\n{SERVER_ID} = 10.0.0.1:1\n{SERVER_ID} = 10.0.0.2:1\n"
        ));
        assert!(
            err.contains(":3: [peers]") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_sections_warn() {
        let s = parse("[node]\ncolour = blue\n[extra]\nx = 1\n").unwrap();
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].contains(":2:") && s.warnings[0].contains("colour"));
        assert!(s.warnings[1].contains("[extra]"));
    }

    #[test]
    fn allow_rules_match_host_and_port() {
        let s = parse("[server]\nallow = 10.0.0.5:22, *:8080, [::1]:*\n").unwrap();
        let allows = |h: &str, p| s.server.allow.iter().any(|r| r.permits(h, p));
        assert!(allows("10.0.0.5", 22));
        assert!(!allows("10.0.0.5", 23));
        assert!(allows("example.org", 8080));
        assert!(allows("0:0:0:0:0:0:0:1", 9));
        assert!(!allows("127.0.0.1", 9));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}

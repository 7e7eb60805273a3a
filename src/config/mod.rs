//! toxtun.ini into typed, validated settings. Every error names the file,
//! the line and the key, and says what is wrong.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ini::{Ini, ParseOption};

mod flags;
mod kcp;
mod sections;
mod values;

use values::parse_service;
pub use values::{parse_duration, parse_flag, resolve};

use crate::id::{PeerRef, ToxId};
use crate::log_sink::LogLevel;
use crate::net::proxy::Proxy;
use crate::proto::address::HostPort;
use crate::proto::tunnel::allow::AllowRule;
use crate::proto::tunnel::control::Transport;
use crate::proto::tunnel::kcp_settings::KcpSettings;
use crate::proto::tunnel::limits::{
    DEFAULT_BUFFER_PER_FRIEND, DEFAULT_TUNNELS_PER_FRIEND, MIN_BUFFER_PER_FRIEND,
};
use crate::proto::tunnel::services::check_service_name;
use crate::tunnel_spec::{parse_socks_line, parse_tunnel_line, socks_body, SocksSpec, TunnelSpec};

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
    /// `socks5:` lines in `[client]`, and `-D`.
    pub socks: Vec<SocksSpec>,
    /// `[friends] NAME = ID`: named friends (also in `server.friends`).
    pub friend_names: Vec<(String, PeerRef)>,
    /// `[services]`: name to HOST:PORT, as OPEN carries a target.
    pub services: BTreeMap<String, String>,
    pub kcp: KcpSettings,
    pub tunnel: TunnelSettings,
    pub bootstrap: BootstrapSettings,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    /// Relayed bytes a second each node may send through us.
    pub relay_rate: u64,
    pub relay_burst: u64,
    /// Nodes registered at once (about 500 bytes each).
    pub max_nodes: usize,
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
    /// How the TCP link to a bootstrap node goes out.
    pub proxy: ProxySetting,
    /// Log lines go here (appended) instead of standard error.
    pub log_file: Option<PathBuf>,
    /// None: info, or what -v, -q or RUST_LOG say.
    pub log_level: Option<LogLevel>,
}

/// `[node] proxy`: a URL, `none`, or left out (the environment's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    #[default]
    FromEnvironment,
    None,
    Use(Proxy),
}

impl ProxySetting {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "none" | "off" | "" => Ok(ProxySetting::None),
            url => Proxy::parse(url).map(ProxySetting::Use),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PeerHint {
    pub peer: PeerRef,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub friends: Vec<PeerRef>,
    /// Friends held at once; requests by nospam beyond this are refused.
    pub max_friends: usize,
    pub allow: Vec<AllowRule>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TunnelSettings {
    /// How long a new local connection waits for the friend and the far side.
    pub open_timeout: Duration,
    /// A tunnelled connection with no traffic either way for this long is reset.
    pub idle_timeout: Duration,
    /// A UDP flow with no datagram either way for this long is closed.
    pub udp_idle_timeout: Duration,
    pub max_tunnels_per_friend: usize,
    /// Bytes buffered for one friend's channels, each direction.
    pub buffer_per_friend: usize,
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
                log_file: None,
                log_level: None,
                psk: [0; 32],
                proxy: ProxySetting::FromEnvironment,
            },
            peers: Vec::new(),
            server: ServerSettings {
                friends: Vec::new(),
                max_friends: 1024,
                allow: default_allow(),
                connect_timeout: Duration::from_secs(10),
            },
            client: Vec::new(),
            socks: Vec::new(),
            friend_names: Vec::new(),
            services: BTreeMap::new(),
            kcp: KcpSettings::default(),
            tunnel: TunnelSettings {
                open_timeout: Duration::from_secs(15),
                idle_timeout: Duration::from_secs(3600),
                udp_idle_timeout: Duration::from_secs(60),
                max_tunnels_per_friend: DEFAULT_TUNNELS_PER_FRIEND,
                buffer_per_friend: DEFAULT_BUFFER_PER_FRIEND,
            },
            bootstrap: BootstrapSettings {
                relay_rate: 8 * 1024 * 1024,
                relay_burst: 1024 * 1024,
                max_nodes: 100_000,
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
        // Editors on some systems start a UTF-8 file with a byte order
        // mark; left in, it would be part of the first section's name.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
                let value = unquote(raw.trim());
                let at = reader.at(section_name, key);
                let known = match section_name {
                    "node" => settings.node_key(&reader, base, key, value)?,
                    "peers" => {
                        settings.peers.push(parse_peer(&reader, key, value)?);
                        true
                    }
                    "server" => settings.server_key(&reader, key, value)?,
                    "client" => {
                        let at = |e| reader.error(section_name, key, e);
                        match socks_body(value) {
                            Some(body) => settings
                                .socks
                                .push(parse_socks_line(key, body).map_err(at)?),
                            None => settings
                                .client
                                .push(parse_tunnel_line(key, value).map_err(at)?),
                        }
                        true
                    }
                    "friends" => {
                        let at = |e| reader.error(section_name, key, e);
                        check_service_name(key).map_err(|_| {
                            at(format!(
                                "'{key}' cannot be a friend's name: a letter, then letters, digits, '-', '_' or '.'"
                            ))
                        })?;
                        let peer: PeerRef =
                            value.parse().map_err(|e| at(format!("'{value}': {e}")))?;
                        settings.server.friends.push(peer);
                        settings.friend_names.push((key.to_string(), peer));
                        true
                    }
                    "services" => {
                        let target = parse_service(key, value)
                            .map_err(|e| reader.error(section_name, key, e))?;
                        settings.services.insert(key.to_string(), target);
                        true
                    }
                    "kcp" => kcp::set(&mut settings.kcp, key, value)
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
                        let hint = KNOWN_SECTIONS
                            .iter()
                            .find(|known| near(known, section_name))
                            .map_or(String::new(), |known| format!(" (did you mean [{known}]?)"));
                        settings.warnings.push(format!(
                            "{at}: unknown section [{section_name}] is ignored{hint}"
                        ));
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

    fn check_listen_ports(&self, r: &Reader) -> Result<(), ConfigError> {
        // A TCP and a UDP listener may share a port number.
        let mut seen: HashMap<(Transport, u16), &str> = HashMap::new();
        for spec in &self.client {
            let port = spec.listen.port();
            if port == 0 {
                continue;
            }
            if let Some(first) = seen.insert((spec.transport, port), &spec.name) {
                let transport = spec.transport.name();
                return Err(r.error(
                    "client",
                    &spec.name,
                    format!("{transport} listen port {port} is already used by tunnel '{first}'"),
                ));
            }
        }
        Ok(())
    }
}

/// The directory `path` would be in, when it does not exist. A config
/// named without a directory has "" as its own, which is the working one.
fn missing_directory(path: &Path) -> Option<&Path> {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
}

/// A value without one pair of quotes around it: `key_file = "q.key"`
/// means q.key, as in most INI dialects.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Whether `found` is `known` mistyped: one letter off, or two swapped.
fn near(known: &str, found: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (known.chars().collect(), found.chars().collect());
    if a == b {
        return false;
    }
    if a.len() == b.len() {
        let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        return match differ.as_slice() {
            [_] => true,
            [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
            _ => false,
        };
    }
    let (short, long) = if a.len() < b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    long.len() == short.len() + 1
        && (0..long.len()).any(|skip| {
            let rest: Vec<char> = long
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, c)| *c)
                .collect();
            &rest == short
        })
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
const KNOWN_SECTIONS: [&str; 9] = [
    "node",
    "peers",
    "friends",
    "server",
    "client",
    "services",
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

fn parse_peer(r: &Reader, key: &str, value: &str) -> Result<PeerHint, ConfigError> {
    let peer: PeerRef = key
        .parse()
        .map_err(|e| r.error("peers", key, format!("bad ID or key: {e}")))?;
    let addr = resolve(value).map_err(|e| r.error("peers", key, e))?;
    Ok(PeerHint { peer, addr })
}

#[cfg(test)]
mod tests;

//! The keys of each section with settings of its own: what each may hold
//! and the error that names it.

use std::path::Path;

use super::values::{parse_allow_rule, parse_bootstrap, parse_listen, parse_positive, split_list};
use super::*;

impl Settings {
    pub(super) fn node_key(
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
                let path = base.join(value);
                if let Some(dir) = missing_directory(&path) {
                    return Err(err(format!(
                        "directory {} does not exist: a key file there would be a new \
                         identity, with a new ID; create the directory or fix the path",
                        dir.display()
                    )));
                }
                self.node.key_file = path;
            }
            "log_level" if value.is_empty() => self.node.log_level = None,
            "log_level" => self.node.log_level = Some(LogLevel::parse(value).map_err(err)?),
            "log_file" if value.is_empty() => self.node.log_file = None,
            "log_file" => {
                let path = base.join(value);
                if let Some(dir) = missing_directory(&path) {
                    return Err(err(format!(
                        "directory {} does not exist; create it or fix the path",
                        dir.display()
                    )));
                }
                self.node.log_file = Some(path);
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
            "proxy" => self.node.proxy = ProxySetting::parse(value).map_err(err)?,
            "psk" if value.is_empty() => self.node.psk = [0; 32],
            "psk" => {
                let wrong = || {
                    err(format!(
                        "must be 64 hex digits (32 bytes), the same on both sides, \
                         e.g. from `openssl rand -hex 32`; found {} characters{}",
                        value.len(),
                        if value.bytes().all(|b| b.is_ascii_hexdigit()) {
                            ""
                        } else {
                            ", not all hex digits"
                        }
                    ))
                };
                let bytes = hex::decode(value).map_err(|_| wrong())?;
                self.node.psk = bytes.try_into().map_err(|_| wrong())?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn server_key(
        &mut self,
        r: &Reader,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        let err = |e: String| r.error("server", key, e);
        match key {
            // Added to what [friends] gave, whichever section came first.
            "friends" => {
                let listed: Vec<PeerRef> = split_list(value)
                    .map(|item| {
                        item.parse::<PeerRef>()
                            .map_err(|e| format!("'{item}': {e}"))
                    })
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                self.server.friends.extend(listed);
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
            "max_friends" => self.server.max_friends = parse_positive(value).map_err(err)?,
            // The Go toxtun's example config names its server; accepted as a label.
            "name" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn tunnel_key(
        &mut self,
        r: &Reader,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        let err = |e: String| r.error("tunnel", key, e);
        match key {
            "open_timeout" => self.tunnel.open_timeout = parse_duration(value).map_err(err)?,
            "idle_timeout" => self.tunnel.idle_timeout = parse_duration(value).map_err(err)?,
            "udp_idle_timeout" => {
                self.tunnel.udp_idle_timeout = parse_duration(value).map_err(err)?
            }
            "max_tunnels_per_friend" => {
                self.tunnel.max_tunnels_per_friend = parse_positive(value).map_err(err)?
            }
            "buffer_per_friend" => {
                let bytes = parse_positive(value).map_err(err)?;
                if bytes < MIN_BUFFER_PER_FRIEND {
                    return Err(err(format!(
                        "{bytes} is below the minimum of {MIN_BUFFER_PER_FRIEND} bytes"
                    )));
                }
                self.tunnel.buffer_per_friend = bytes
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn bootstrap_key(
        &mut self,
        r: &Reader,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
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
            "max_nodes" => self.bootstrap.max_nodes = number()? as usize,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

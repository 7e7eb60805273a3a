//! What the command line adds to the settings, so no config file is needed:
//! `-L` and `-U` tunnels, `-D` SOCKS5 listeners, `--peer` addresses and
//! `--bootstrap` nodes, a `--proxy`. They add to
//! what a config file gives, in the file's own forms.

use super::values::{parse_bootstrap, resolve};
use super::{PeerHint, ProxySetting, Settings};
use crate::id::PeerRef;
use crate::proto::address::split_fields;
use crate::proto::tunnel::control::Transport;
use crate::tunnel_spec::{parse_socks_line, parse_tunnel_line};

/// The listen host of a `-L` that names none: this host only.
const DEFAULT_LISTEN_HOST: &str = "127.0.0.1";

impl Settings {
    /// `--peer ID=HOST:PORT`: where a friend can be reached.
    pub fn add_peer_flag(&mut self, flag: &str) -> Result<(), String> {
        let fail = |why: String| format!("--peer '{flag}': {why}");
        let (id, addr) = flag
            .split_once('=')
            .ok_or_else(|| fail("expected ID=HOST:PORT".into()))?;
        let peer: PeerRef = id
            .trim()
            .parse()
            .map_err(|e| fail(format!("bad ID or key: {e}")))?;
        let addr = resolve(addr.trim()).map_err(fail)?;
        self.peers.push(PeerHint { peer, addr });
        Ok(())
    }

    /// `--proxy URL`, as `proxy` in `[node]` (and in its place).
    pub fn set_proxy_flag(&mut self, flag: &str) -> Result<(), String> {
        self.node.proxy = ProxySetting::parse(flag).map_err(|e| format!("--proxy: {e}"))?;
        Ok(())
    }

    /// `--bootstrap HOST:PORT:ID`, as a `bootstrap` entry in `[node]`.
    pub fn add_bootstrap_flag(&mut self, flag: &str) -> Result<(), String> {
        let entry = parse_bootstrap(flag.trim()).map_err(|e| format!("--bootstrap: {e}"))?;
        self.node.bootstrap.push(entry);
        Ok(())
    }

    /// `-L [LHOST:]LPORT:THOST:TPORT` (or `-U`, for UDP) to `server`, as a
    /// `[client]` line named after the flag.
    pub fn add_forward_flag(
        &mut self,
        flag: &str,
        server: &str,
        transport: Transport,
    ) -> Result<(), String> {
        let letter = match transport {
            Transport::Tcp => 'L',
            Transport::Udp => 'U',
        };
        let fail = |why: String| format!("-{letter} '{flag}': {why}");
        let spec = with_listen_host(flag, 3, "[LHOST:]LPORT:THOST:TPORT").map_err(fail)?;
        let line = format!("{}:{spec}:{server}", transport.name());
        let name = format!("-{letter} {}", flag.trim());
        let tunnel = parse_tunnel_line(&name, &line).map_err(fail)?;
        self.client.push(tunnel);
        Ok(())
    }

    /// `-D [LHOST:]PORT` to `server`, as a `socks5:` line named after the
    /// flag.
    pub fn add_socks_flag(&mut self, flag: &str, server: &str) -> Result<(), String> {
        let fail = |why: String| format!("-D '{flag}': {why}");
        let spec = with_listen_host(flag, 1, "[LHOST:]PORT").map_err(fail)?;
        let body = format!("{spec}:{server}");
        let socks = parse_socks_line(&format!("-D {}", flag.trim()), &body).map_err(fail)?;
        self.socks.push(socks);
        Ok(())
    }
}

/// A flag's spec in `form` (`without_host` fields when it names no listen
/// host), with the listen host put first when it names none.
fn with_listen_host(flag: &str, without_host: usize, form: &str) -> Result<String, String> {
    let fields = split_fields(flag.trim())?;
    match fields.len() {
        n if n == without_host => Ok(format!("{DEFAULT_LISTEN_HOST}:{}", flag.trim())),
        n if n == without_host + 1 => Ok(flag.trim().to_string()),
        n => Err(format!("expected {form}, found {n} fields")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const ID: &str = "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";

    fn settings() -> Settings {
        Settings::defaults(PathBuf::from("k.key"))
    }

    #[test]
    fn forwards_default_to_this_host_and_take_the_servers_id() {
        let mut s = settings();
        s.add_forward_flag("8080:example.org:80", ID, Transport::Tcp)
            .unwrap();
        s.add_forward_flag("[::1]:2222:[fd00::1]:22", ID, Transport::Tcp)
            .unwrap();
        s.add_forward_flag("5353:127.0.0.1:53", ID, Transport::Udp)
            .unwrap();
        assert_eq!(s.client[0].listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.client[0].target(), "example.org:80");
        assert_eq!(s.client[0].server.to_string(), ID);
        assert_eq!(s.client[1].listen, "[::1]:2222".parse().unwrap());
        assert_eq!(s.client[1].target(), "[fd00::1]:22");
        assert_eq!(s.client[2].transport, Transport::Udp);
        assert_eq!(s.client[2].listen, "127.0.0.1:5353".parse().unwrap());
        let err = s
            .add_forward_flag("8080:80", ID, Transport::Tcp)
            .unwrap_err();
        assert!(
            err.contains("-L '8080:80'") && err.contains("2 fields"),
            "{err}"
        );
        let err = s.add_forward_flag("53:80", ID, Transport::Udp).unwrap_err();
        assert!(err.contains("-U '53:80'"), "{err}");
        let err = s
            .add_forward_flag("8080:h:80", "nope", Transport::Tcp)
            .unwrap_err();
        assert!(err.contains("bad server ID"), "{err}");
    }

    #[test]
    fn socks_listeners_default_to_this_host() {
        let mut s = settings();
        s.add_socks_flag("1080", ID).unwrap();
        s.add_socks_flag("[::1]:1081", ID).unwrap();
        assert_eq!(s.socks[0].listen, "127.0.0.1:1080".parse().unwrap());
        assert_eq!(s.socks[1].listen, "[::1]:1081".parse().unwrap());
        let err = s.add_socks_flag("a:1:2", ID).unwrap_err();
        assert!(err.contains("3 fields"), "{err}");
    }

    #[test]
    fn peers_and_bootstrap_nodes() {
        let mut s = settings();
        s.add_peer_flag(&format!("{ID}=192.0.2.1:33445")).unwrap();
        assert_eq!(s.peers[0].addr, "192.0.2.1:33445".parse().unwrap());
        let err = s.add_peer_flag("192.0.2.1:33445").unwrap_err();
        assert!(err.contains("expected ID=HOST:PORT"), "{err}");
        s.add_bootstrap_flag(&format!("192.0.2.2:33445:{ID}"))
            .unwrap();
        assert_eq!(s.node.bootstrap.len(), 1);
        let err = s.add_bootstrap_flag("192.0.2.2:33445").unwrap_err();
        assert!(err.starts_with("--bootstrap: "), "{err}");
        s.set_proxy_flag("socks5://192.0.2.3:1080").unwrap();
        assert!(matches!(s.node.proxy, ProxySetting::Use(_)));
        s.set_proxy_flag("none").unwrap();
        assert_eq!(s.node.proxy, ProxySetting::None);
        let err = s.set_proxy_flag("192.0.2.3:1080").unwrap_err();
        assert!(err.starts_with("--proxy: proxy '192.0.2.3:1080'"), "{err}");
    }
}

//! The TCP link to a bootstrap node through a proxy, for networks where
//! only a proxy reaches out: HTTP CONNECT (RFC 9110, with Basic
//! authentication) or SOCKS5 (RFC 1928, with RFC 1929's user and
//! password). The proxy is `[node] proxy`, or else the environment's, as
//! curl reads it.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::address::parse_host_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Http,
    Socks5,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    /// User and password.
    pub auth: Option<(String, String)>,
}

/// Shown without the password, so it can go into logs.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
        };
        let user = self
            .auth
            .as_ref()
            .map_or(String::new(), |(user, _)| format!("{user}@"));
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Proxy {
    /// `http://[USER:PASS@]HOST:PORT` or `socks5://...` (`socks5h://`
    /// too: the target is always an address, so the two are the same).
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("proxy '{url}': expected http://HOST:PORT or socks5://HOST:PORT")
        })?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            other => {
                return Err(format!(
                    "proxy '{url}': scheme '{other}' is not http or socks5"
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        let (auth, host_port) = match rest.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_string(), pass.to_string())), host_port)
            }
            None => (None, rest),
        };
        let parsed = parse_host_port(host_port).map_err(|e| format!("proxy '{url}': {e}"))?;
        let port = match parsed.port {
            Some(port) if port != 0 && parsed.host != "*" => port,
            _ => return Err(format!("proxy '{url}': name one host and one port")),
        };
        Ok(Proxy {
            kind,
            host: parsed.host,
            port,
            auth,
        })
    }

    /// A stream to `target` through the proxy, ready to carry the link.
    pub async fn connect(&self, target: SocketAddr) -> io::Result<TcpStream> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| fail(format!("cannot reach proxy {self}: {e}")))?;
        match self.kind {
            ProxyKind::Http => self.http_connect(&mut stream, target).await?,
            ProxyKind::Socks5 => self.socks5_connect(&mut stream, target).await?,
        }
        Ok(stream)
    }

    async fn http_connect(&self, stream: &mut TcpStream, target: SocketAddr) -> io::Result<()> {
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, pass)) = &self.auth {
            let token = base64(format!("{user}:{pass}").as_bytes());
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let head = read_head(stream).await?;
        let status = head.lines().next().unwrap_or_default();
        let code = status.split_whitespace().nth(1).unwrap_or_default();
        if !code.starts_with('2') {
            return Err(fail(format!("proxy {self} answered '{status}'")));
        }
        Ok(())
    }

    async fn socks5_connect(&self, stream: &mut TcpStream, target: SocketAddr) -> io::Result<()> {
        let greeting: &[u8] = match self.auth {
            Some(_) => &[5, 2, 0, 2],
            None => &[5, 1, 0],
        };
        stream.write_all(greeting).await?;
        let mut chosen = [0u8; 2];
        stream.read_exact(&mut chosen).await?;
        match chosen {
            [5, 0] => {}
            [5, 2] => self.socks5_login(stream).await?,
            [5, _] => {
                return Err(fail(format!(
                "proxy {self} accepts none of our methods (no authentication, user and password)"
            )))
            }
            _ => return Err(fail(format!("proxy {self} does not speak SOCKS5"))),
        }
        let mut request = vec![5, 1, 0];
        match target.ip() {
            IpAddr::V4(ip) => {
                request.push(1);
                request.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                request.push(4);
                request.extend_from_slice(&ip.octets());
            }
        }
        request.extend_from_slice(&target.port().to_be_bytes());
        stream.write_all(&request).await?;
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await?;
        if reply[1] != 0 {
            let why = socks5_reply_text(reply[1]);
            return Err(fail(format!("proxy {self} refused {target}: {why}")));
        }
        let bound = match reply[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut len = [0u8; 1];
                stream.read_exact(&mut len).await?;
                len[0] as usize + 2
            }
            other => return Err(fail(format!("proxy {self}: address type {other} in reply"))),
        };
        let mut skip = vec![0u8; bound];
        stream.read_exact(&mut skip).await?;
        Ok(())
    }

    async fn socks5_login(&self, stream: &mut TcpStream) -> io::Result<()> {
        let (user, pass) = self.auth.clone().unwrap_or_default();
        if user.len() > 255 || pass.len() > 255 {
            return Err(fail("proxy user and password are 255 bytes at most".into()));
        }
        let mut login = vec![1, user.len() as u8];
        login.extend_from_slice(user.as_bytes());
        login.push(pass.len() as u8);
        login.extend_from_slice(pass.as_bytes());
        stream.write_all(&login).await?;
        let mut answer = [0u8; 2];
        stream.read_exact(&mut answer).await?;
        if answer[1] != 0 {
            return Err(fail(format!("proxy {self} refused the user and password")));
        }
        Ok(())
    }
}

fn fail(text: String) -> io::Error {
    io::Error::other(text)
}

/// Longest answer head read from an HTTP proxy.
const MAX_HEAD: usize = 16 * 1024;

/// The proxy's answer up to its blank line, read a byte at a time so that
/// nothing of the link after it is taken.
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() == MAX_HEAD {
            return Err(fail(format!("proxy answer longer than {MAX_HEAD} bytes")));
        }
        head.push(stream.read_u8().await?);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn socks5_reply_text(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "not allowed by its rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply code",
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Which proxy, if any, the link to each bootstrap node takes: the
/// config's for every one; or else the environment's, except for the
/// addresses `NO_PROXY` names.
#[derive(Debug, Clone, Default)]
pub struct ProxyRoute {
    proxy: Option<Proxy>,
    /// `NO_PROXY` entries: `*`, an IP address, or an address/prefix.
    bypass: Vec<String>,
}

impl ProxyRoute {
    pub fn new(configured: Option<Proxy>) -> Self {
        ProxyRoute {
            proxy: configured,
            bypass: Vec::new(),
        }
    }

    /// From `ALL_PROXY`, else `HTTPS_PROXY` (each lower case first, as curl
    /// reads them), and `NO_PROXY`; `env` looks a name up.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let lookup = |name: &str| {
            [name.to_ascii_lowercase(), name.to_string()]
                .iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
                .map(|v| (name.to_string(), v))
        };
        let Some((name, url)) = lookup("ALL_PROXY").or_else(|| lookup("HTTPS_PROXY")) else {
            return Ok(Self::default());
        };
        let proxy = Proxy::parse(&url).map_err(|e| format!("{name}: {e}"))?;
        let bypass = lookup("NO_PROXY")
            .map(|(_, list)| {
                list.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(ProxyRoute {
            proxy: Some(proxy),
            bypass,
        })
    }

    /// The proxy for the link to `target`; None: straight to it.
    pub fn for_target(&self, target: SocketAddr) -> Option<&Proxy> {
        let bypassed = self.bypass.iter().any(|entry| matches(entry, target.ip()));
        self.proxy.as_ref().filter(|_| !bypassed)
    }
}

fn matches(entry: &str, ip: IpAddr) -> bool {
    if entry == "*" {
        return true;
    }
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, prefix.parse::<u32>().ok()),
        None => (entry, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let bits = prefix.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let bits = prefix.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn urls_parse_and_show_no_password() {
        let proxy = Proxy::parse("http://alice:s3cret@proxy.example:3128/").unwrap();
        assert_eq!(proxy.kind, ProxyKind::Http);
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.example", 3128));
        assert_eq!(proxy.auth, Some(("alice".into(), "s3cret".into())));
        assert_eq!(proxy.to_string(), "http://alice@proxy.example:3128");
        let proxy = Proxy::parse("socks5://[::1]:1080").unwrap();
        assert_eq!(
            (proxy.kind, proxy.host.as_str()),
            (ProxyKind::Socks5, "::1")
        );
        assert_eq!(proxy.to_string(), "socks5://[::1]:1080");
        for (bad, why) in [
            ("proxy.example:3128", "expected http://"),
            ("ftp://h:1", "scheme 'ftp'"),
            ("http://h", "h"),
        ] {
            let err = Proxy::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn base64_pads_as_the_standard_does() {
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_environment_gives_a_proxy_and_no_proxy_skips_it() {
        let route = ProxyRoute::from_env(env(&[
            ("HTTPS_PROXY", "http://10.9.9.9:3128"),
            ("all_proxy", "socks5://10.8.8.8:1080"),
            ("NO_PROXY", "192.0.2.1, 10.0.0.0/8,[2001:db8::]/32"),
        ]))
        .unwrap();
        let via = |addr: &str| {
            route
                .for_target(addr.parse().unwrap())
                .map(|p| p.to_string())
        };
        assert_eq!(
            via("198.51.100.1:33445").as_deref(),
            Some("socks5://10.8.8.8:1080")
        );
        assert_eq!(via("192.0.2.1:33445"), None);
        assert_eq!(via("10.200.0.1:33445"), None);
        assert_eq!(via("[2001:db8::5]:33445"), None);
        assert_eq!(
            via("[2001:db9::5]:33445").as_deref(),
            Some("socks5://10.8.8.8:1080")
        );
        let all =
            ProxyRoute::from_env(env(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")])).unwrap();
        assert_eq!(all.for_target("192.0.2.9:1".parse().unwrap()), None);
        assert!(ProxyRoute::from_env(env(&[])).unwrap().proxy.is_none());
        let err = ProxyRoute::from_env(env(&[("ALL_PROXY", "gopher://x:1")])).unwrap_err();
        assert!(err.starts_with("ALL_PROXY: "), "{err}");
    }

    /// A proxy that, for each step, checks what it is sent and answers,
    /// then echoes: the stream `connect` returns must carry the echo.
    async fn fake_proxy(steps: Vec<(Vec<u8>, Vec<u8>)>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for (expect, reply) in steps {
                let mut got = vec![0u8; expect.len()];
                stream.read_exact(&mut got).await.unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&expect)
                );
                stream.write_all(&reply).await.unwrap();
            }
            let mut buf = [0u8; 5];
            if stream.read_exact(&mut buf).await.is_ok() {
                stream.write_all(&buf).await.unwrap();
            }
        });
        addr
    }

    async fn through(proxy: &str, at: SocketAddr) -> io::Result<Vec<u8>> {
        let url = proxy.replace("ADDR", &at.to_string());
        let mut stream = Proxy::parse(&url)
            .unwrap()
            .connect("192.0.2.7:33445".parse().unwrap())
            .await?;
        stream.write_all(b"hello").await?;
        let mut back = vec![0u8; 5];
        stream.read_exact(&mut back).await?;
        Ok(back)
    }

    #[tokio::test]
    async fn http_connect_with_basic_authentication() {
        let expect = b"CONNECT 192.0.2.7:33445 HTTP/1.1\r\nHost: 192.0.2.7:33445\r\n\
            Proxy-Authorization: Basic dTpw\r\n\r\n"
            .to_vec();
        let ok = b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec();
        let at = fake_proxy(vec![(expect.clone(), ok)]).await;
        assert_eq!(through("http://u:p@ADDR", at).await.unwrap(), b"hello");
        let denied = b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n".to_vec();
        let at = fake_proxy(vec![(expect, denied)]).await;
        let err = through("http://u:p@ADDR", at).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("answered 'HTTP/1.1 407 Proxy Authentication Required'"),
            "{text}"
        );
    }

    fn socks5_steps(reply_code: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (vec![5, 2, 0, 2], vec![5, 2]),
            (vec![1, 1, b'u', 1, b'p'], vec![1, 0]),
            (
                vec![5, 1, 0, 1, 192, 0, 2, 7, 0x82, 0xA5],
                vec![5, reply_code, 0, 1, 0, 0, 0, 0, 0, 0],
            ),
        ]
    }

    #[tokio::test]
    async fn socks5_connect_with_user_and_password() {
        let at = fake_proxy(socks5_steps(0)).await;
        assert_eq!(through("socks5://u:p@ADDR", at).await.unwrap(), b"hello");
        let at = fake_proxy(socks5_steps(2)).await;
        let err = through("socks5://u:p@ADDR", at).await.unwrap_err();
        assert!(
            err.to_string().contains("not allowed by its rules"),
            "{err}"
        );
    }
}

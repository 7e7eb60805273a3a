//! The SOCKS5 server side (RFC 1928) of a `socks5:` client line or `-D`:
//! no authentication, CONNECT only, to an IPv4 or IPv6 address or a host
//! name, which the friend resolves. The reply waits for the tunnel: the
//! friend's refusal becomes the matching reply code.

use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::reason::{CloseReason, ReasonCode};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;
const IPV4: u8 = 1;
const NAME: u8 = 3;
const IPV6: u8 = 4;

const GENERAL_FAILURE: u8 = 1;
const NOT_ALLOWED: u8 = 2;
const NETWORK_UNREACHABLE: u8 = 3;
const HOST_UNREACHABLE: u8 = 4;
const CONNECTION_REFUSED: u8 = 5;
const TTL_EXPIRED: u8 = 6;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;

/// The reply once the tunnel is open. The bound address is the friend's
/// side, which a client has no use for: all zero.
pub const SUCCEEDED: [u8; 10] = reply(0);

const fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, IPV4, 0, 0, 0, 0, 0, 0]
}

/// The reply for a tunnel that did not open.
pub fn failure(reason: &CloseReason) -> [u8; 10] {
    let code = match reason {
        CloseReason::Refused(r) | CloseReason::ResetByFriend(r) | CloseReason::Reset(r) => {
            match r.code {
                ReasonCode::NotAllowed => NOT_ALLOWED,
                ReasonCode::TargetRefused => CONNECTION_REFUSED,
                ReasonCode::TargetUnreachable => HOST_UNREACHABLE,
                ReasonCode::Timeout => TTL_EXPIRED,
                _ => GENERAL_FAILURE,
            }
        }
        // The friend, not the target, could not be reached.
        CloseReason::NoAddress(_)
        | CloseReason::ServerUnreachable { .. }
        | CloseReason::NoAnswer { .. }
        | CloseReason::FriendOffline(_) => NETWORK_UNREACHABLE,
        _ => GENERAL_FAILURE,
    };
    reply(code)
}

/// Reads the greeting and the CONNECT request; the target as OPEN carries
/// it. A request this server cannot serve is answered (and the error says
/// why, for the log).
pub async fn read_request(stream: &mut TcpStream) -> Result<String, String> {
    let io = |e: std::io::Error| format!("SOCKS5 client: {e}");
    let [version, methods] = read_array(stream).await.map_err(io)?;
    if version != VERSION {
        return Err(format!("not a SOCKS5 client (version {version})"));
    }
    let mut offered = vec![0u8; methods as usize];
    stream.read_exact(&mut offered).await.map_err(io)?;
    if !offered.contains(&NO_AUTHENTICATION) {
        let _ = stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
        return Err("the SOCKS5 client offers no method without authentication".into());
    }
    stream
        .write_all(&[VERSION, NO_AUTHENTICATION])
        .await
        .map_err(io)?;
    let [_, command, _, address_type] = read_array(stream).await.map_err(io)?;
    if command != CONNECT {
        let _ = stream.write_all(&reply(COMMAND_NOT_SUPPORTED)).await;
        return Err(format!(
            "SOCKS5 command {command} is not supported (CONNECT only)"
        ));
    }
    let host = match address_type {
        IPV4 => Ipv4Addr::from(read_array::<4>(stream).await.map_err(io)?).to_string(),
        IPV6 => format!(
            "[{}]",
            Ipv6Addr::from(read_array::<16>(stream).await.map_err(io)?)
        ),
        NAME => {
            let [len] = read_array(stream).await.map_err(io)?;
            let mut name = vec![0u8; len as usize];
            stream.read_exact(&mut name).await.map_err(io)?;
            String::from_utf8(name).map_err(|_| "SOCKS5 host name is not UTF-8".to_string())?
        }
        other => {
            let _ = stream.write_all(&reply(ADDRESS_TYPE_NOT_SUPPORTED)).await;
            return Err(format!("SOCKS5 address type {other} is not supported"));
        }
    };
    let port = u16::from_be_bytes(read_array(stream).await.map_err(io)?);
    Ok(format!("{host}:{port}"))
}

async fn read_array<const N: usize>(stream: &mut TcpStream) -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reason::Refusal;

    /// What `read_request` makes of `sent`, and what it wrote back.
    async fn request(sent: Vec<u8>) -> (Result<String, String>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(&sent).await.unwrap();
        let result = read_request(&mut server).await;
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        (result, answer)
    }

    fn connect_to(address: &[u8]) -> Vec<u8> {
        let mut bytes = vec![VERSION, 1, NO_AUTHENTICATION, VERSION, CONNECT, 0];
        bytes.extend_from_slice(address);
        bytes.extend_from_slice(&8080u16.to_be_bytes());
        bytes
    }

    #[tokio::test]
    async fn the_three_address_forms() {
        let (target, answer) = request(connect_to(&[IPV4, 10, 0, 0, 1])).await;
        assert_eq!(target.unwrap(), "10.0.0.1:8080");
        assert_eq!(answer, [VERSION, NO_AUTHENTICATION]);
        let mut v6 = vec![IPV6];
        v6.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(request(connect_to(&v6)).await.0.unwrap(), "[fd00::1]:8080");
        let name = [&[NAME, 11][..], b"example.org"].concat();
        assert_eq!(
            request(connect_to(&name)).await.0.unwrap(),
            "example.org:8080"
        );
    }

    #[tokio::test]
    async fn what_it_cannot_serve_is_answered() {
        let (result, answer) = request(vec![VERSION, 1, 2]).await;
        assert!(result.unwrap_err().contains("without authentication"));
        assert_eq!(answer, [VERSION, NO_ACCEPTABLE_METHOD]);
        let bind = vec![VERSION, 1, NO_AUTHENTICATION, VERSION, 2, 0, IPV4];
        let (result, answer) = request(bind).await;
        assert!(result.unwrap_err().contains("CONNECT only"));
        assert_eq!(answer[2..], reply(COMMAND_NOT_SUPPORTED));
        // Nothing after the type: unread bytes would make the close a reset.
        let unknown_type = vec![VERSION, 1, NO_AUTHENTICATION, VERSION, CONNECT, 0, 9];
        let (result, answer) = request(unknown_type).await;
        assert!(result.unwrap_err().contains("address type 9"));
        assert_eq!(answer[2..], reply(ADDRESS_TYPE_NOT_SUPPORTED));
    }

    #[test]
    fn refusals_map_to_reply_codes() {
        let refused = |code| CloseReason::Refused(Refusal::new(code, "x"));
        assert_eq!(failure(&refused(ReasonCode::NotAllowed))[1], NOT_ALLOWED);
        assert_eq!(
            failure(&refused(ReasonCode::TargetRefused))[1],
            CONNECTION_REFUSED
        );
        assert_eq!(
            failure(&refused(ReasonCode::TargetUnreachable))[1],
            HOST_UNREACHABLE
        );
        assert_eq!(failure(&refused(ReasonCode::Timeout))[1], TTL_EXPIRED);
        let friend = crate::id::PublicKey([7; 32]);
        assert_eq!(
            failure(&CloseReason::NoAddress(friend))[1],
            NETWORK_UNREACHABLE
        );
    }
}

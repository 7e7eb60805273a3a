//! Why things end, as types: a friend going offline, a tunnelled connection
//! closing, and the reason code REFUSE and RESET carry on the wire so the
//! far side can act on why (doc/protocol.md). Text is for people only.

use std::fmt;
use std::time::Duration;

use crate::id::PublicKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// The session reached its hard age limit without a new handshake.
    SessionExpired,
    /// Nothing arrived for this long.
    Silent(Duration),
    /// The friend's instance number changed: it restarted.
    Restarted,
    /// The friend answered our handshake holding no tunnels with us.
    LostTunnels,
    /// The friend started a handshake holding no tunnels with us.
    ReconnectedFresh,
    /// The operator removed it (`toxtun forget`).
    Forgotten,
    /// The friend said goodbye: it is shutting down.
    PeerStopping,
}

impl fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineReason::SessionExpired => f.write_str("session expired without a new handshake"),
            OfflineReason::Silent(d) => write!(f, "no packet for {:.1}s", d.as_secs_f64()),
            OfflineReason::Restarted => f.write_str("friend restarted"),
            OfflineReason::LostTunnels => f.write_str("friend lost its tunnels"),
            OfflineReason::ReconnectedFresh => {
                f.write_str("friend reconnected without its tunnels")
            }
            OfflineReason::Forgotten => f.write_str("friend forgotten"),
            OfflineReason::PeerStopping => f.write_str("peer stopping: it said goodbye"),
        }
    }
}

/// Why a peer refused an OPEN or reset a channel, as one byte on the wire.
/// A code this version does not know reads as `Unspecified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonCode {
    Unspecified = 0,
    /// The target is not in the server's allow list (or it serves none).
    NotAllowed = 1,
    /// The target refused the connection.
    TargetRefused = 2,
    /// The target could not be reached (no route, name not found, ...).
    TargetUnreachable = 3,
    /// Something took too long: connecting, or a connection left idle.
    Timeout = 4,
    /// A limit of the peer's was reached.
    LimitReached = 5,
    /// The peer is shutting down.
    PeerStopping = 6,
    /// The peer received something it could not accept.
    ProtocolError = 7,
    /// The connection at the peer's end failed or was reset.
    ConnectionAborted = 8,
}

impl ReasonCode {
    pub fn from_byte(byte: u8) -> ReasonCode {
        match byte {
            1 => ReasonCode::NotAllowed,
            2 => ReasonCode::TargetRefused,
            3 => ReasonCode::TargetUnreachable,
            4 => ReasonCode::Timeout,
            5 => ReasonCode::LimitReached,
            6 => ReasonCode::PeerStopping,
            7 => ReasonCode::ProtocolError,
            8 => ReasonCode::ConnectionAborted,
            _ => ReasonCode::Unspecified,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReasonCode::Unspecified => "unspecified",
            ReasonCode::NotAllowed => "not allowed",
            ReasonCode::TargetRefused => "target refused",
            ReasonCode::TargetUnreachable => "target unreachable",
            ReasonCode::Timeout => "timeout",
            ReasonCode::LimitReached => "limit reached",
            ReasonCode::PeerStopping => "peer stopping",
            ReasonCode::ProtocolError => "protocol error",
            ReasonCode::ConnectionAborted => "connection aborted",
        })
    }
}

/// A code and the text that explains it to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ReasonCode,
    pub text: String,
}

impl Refusal {
    pub fn new(code: ReasonCode, text: impl Into<String>) -> Self {
        Refusal {
            code,
            text: text.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.code)
    }
}

/// Why a tunnelled connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides sent their last byte and everything was acknowledged.
    Finished,
    /// The server refused the OPEN.
    Refused(Refusal),
    /// The friend reset the channel.
    ResetByFriend(Refusal),
    /// We reset it, and told the friend why.
    Reset(Refusal),
    FriendOffline(OfflineReason),
    NoAddress(PublicKey),
    ServerUnreachable {
        server: PublicKey,
        after: Duration,
    },
    NoAnswer {
        server: PublicKey,
        after: Duration,
    },
    /// The server's ACCEPT named a channel number already in use.
    ConvInUse(u32),
    /// A limit of this node's was reached; the text says which.
    LimitReached(String),
}

impl CloseReason {
    /// A clean end: the writer may finish what it holds.
    pub fn is_clean(&self) -> bool {
        matches!(self, CloseReason::Finished)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Finished => f.write_str("both sides finished"),
            CloseReason::Refused(r) => write!(f, "refused by the server: {r}"),
            CloseReason::ResetByFriend(r) => write!(f, "reset by the friend: {r}"),
            CloseReason::Reset(r) => write!(f, "{r}"),
            CloseReason::FriendOffline(why) => write!(f, "friend went offline ({why})"),
            CloseReason::NoAddress(server) => write!(
                f,
                "no address known for server {server}: add it under [peers] or configure a bootstrap node"
            ),
            CloseReason::ServerUnreachable { server, after } => {
                write!(f, "server {server} unreachable for {after:?}")
            }
            CloseReason::NoAnswer { server, after } => {
                write!(f, "server {server} did not answer within {after:?}")
            }
            CloseReason::ConvInUse(conv) => {
                write!(f, "server picked a channel number in use ({conv})")
            }
            CloseReason::LimitReached(text) => write!(f, "limit reached: {text}"),
        }
    }
}

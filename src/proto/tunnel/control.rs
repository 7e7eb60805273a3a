//! Messages on a friend's control channel (KCP conv 0) and the one-byte
//! header of each message on a tunnel channel.

use crate::proto::reason::{ReasonCode, Refusal};

pub const PROTOCOL_TCP: u8 = 1;
pub const PROTOCOL_UDP: u8 = 2;

/// What a tunnel carries: a byte stream (over KCP, reliable and in order)
/// or datagrams (each as it is, see `datagram`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

impl Transport {
    pub fn protocol(self) -> u8 {
        match self {
            Transport::Tcp => PROTOCOL_TCP,
            Transport::Udp => PROTOCOL_UDP,
        }
    }

    pub fn from_protocol(protocol: u8) -> Option<Self> {
        match protocol {
            PROTOCOL_TCP => Some(Transport::Tcp),
            PROTOCOL_UDP => Some(Transport::Udp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Open {
        request: u32,
        protocol: u8,
        target: String,
    },
    Accept {
        request: u32,
        conv: u32,
    },
    Refuse {
        request: u32,
        refusal: Refusal,
    },
    Reset {
        conv: u32,
        refusal: Refusal,
    },
}

const OPEN: u8 = 1;
const ACCEPT: u8 = 2;
const REFUSE: u8 = 3;
const RESET: u8 = 4;

/// Longest target or reason carried; longer text is cut, never rejected.
const MAX_TEXT: usize = 255;

fn push_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// A reason code byte, then its text.
fn push_refusal(out: &mut Vec<u8>, refusal: &Refusal) {
    out.push(refusal.code as u8);
    push_text(out, &refusal.text);
}

fn read_refusal(bytes: &[u8]) -> Option<Refusal> {
    let (&code, text) = bytes.split_first()?;
    Some(Refusal::new(ReasonCode::from_byte(code), read_text(text)?))
}

fn read_text(bytes: &[u8]) -> Option<String> {
    let (&len, rest) = bytes.split_first()?;
    if rest.len() != len as usize {
        return None;
    }
    String::from_utf8(rest.to_vec()).ok()
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl Control {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match self {
            Control::Open {
                request,
                protocol,
                target,
            } => {
                out.push(OPEN);
                out.extend_from_slice(&request.to_le_bytes());
                out.push(*protocol);
                push_text(&mut out, target);
            }
            Control::Accept { request, conv } => {
                out.push(ACCEPT);
                out.extend_from_slice(&request.to_le_bytes());
                out.extend_from_slice(&conv.to_le_bytes());
            }
            Control::Refuse { request, refusal } => {
                out.push(REFUSE);
                out.extend_from_slice(&request.to_le_bytes());
                push_refusal(&mut out, refusal);
            }
            Control::Reset { conv, refusal } => {
                out.push(RESET);
                out.extend_from_slice(&conv.to_le_bytes());
                push_refusal(&mut out, refusal);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Control> {
        let first = u32_at(bytes, 1)?;
        match bytes[0] {
            OPEN => Some(Control::Open {
                request: first,
                protocol: *bytes.get(5)?,
                target: read_text(bytes.get(6..)?)?,
            }),
            ACCEPT if bytes.len() == 9 => Some(Control::Accept {
                request: first,
                conv: u32_at(bytes, 5)?,
            }),
            REFUSE => Some(Control::Refuse {
                request: first,
                refusal: read_refusal(&bytes[5..])?,
            }),
            RESET => Some(Control::Reset {
                conv: first,
                refusal: read_refusal(&bytes[5..])?,
            }),
            _ => None,
        }
    }
}

/// First byte of every message on a tunnel channel.
pub const CHANNEL_DATA: u8 = 0;
/// The sender has sent its last byte (its TCP read hit end of file).
pub const CHANNEL_FIN: u8 = 1;
/// Carries nothing: sent when a receiver that had stopped reading starts
/// again. KCP says "my window is open again" only once, unreliably; if that
/// is lost the far sender waits seconds before it asks. This message is
/// reliable, and every copy and acknowledgement of it carries the window.
pub const CHANNEL_WINDOW: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for message in [
            Control::Open {
                request: 7,
                protocol: PROTOCOL_TCP,
                target: "[::1]:22".into(),
            },
            Control::Accept {
                request: 7,
                conv: 0xDEAD_BEEF,
            },
            Control::Refuse {
                request: 8,
                refusal: Refusal::new(ReasonCode::NotAllowed, "not allowed"),
            },
            Control::Reset {
                conv: 9,
                refusal: Refusal::new(ReasonCode::Timeout, ""),
            },
        ] {
            assert_eq!(Control::decode(&message.encode()), Some(message));
        }
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let refusal = Refusal::new(ReasonCode::LimitReached, "é".repeat(200));
        let encoded = Control::Refuse {
            request: 1,
            refusal,
        }
        .encode();
        match Control::decode(&encoded) {
            Some(Control::Refuse { refusal, .. }) => {
                assert_eq!(refusal.text, "é".repeat(127));
                assert_eq!(refusal.code, ReasonCode::LimitReached);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reason_codes_are_fixed_bytes_and_unknown_ones_read_as_unspecified() {
        let refusal = Refusal::new(ReasonCode::TargetRefused, "x");
        let encoded = Control::Reset { conv: 1, refusal }.encode();
        assert_eq!(encoded, [4, 1, 0, 0, 0, 2, 1, b'x']);
        let mut future = encoded.clone();
        future[5] = 200;
        match Control::decode(&future) {
            Some(Control::Reset { refusal, .. }) => {
                assert_eq!(refusal.code, ReasonCode::Unspecified)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_messages_are_rejected() {
        let encoded = Control::Open {
            request: 1,
            protocol: 1,
            target: "a:1".into(),
        }
        .encode();
        for len in 0..encoded.len() {
            assert_eq!(Control::decode(&encoded[..len]), None, "length {len}");
        }
    }
}

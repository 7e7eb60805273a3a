//! What `toxtun status` shows: the core's snapshot, rendered as text or
//! as JSON (whose field names scripts rely on).

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::proto::snapshot::{PathKind, Snapshot};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: String,
    pub udp: String,
    pub bootstrap: Vec<BootstrapStatus>,
    pub friends: Vec<FriendStatus>,
    pub counters: CountersStatus,
    pub datagrams_dropped: DatagramsDroppedStatus,
}

/// Datagrams of UDP tunnels dropped since the node started.
#[derive(Debug, Clone, Serialize)]
pub struct DatagramsDroppedStatus {
    /// Larger than a UDP tunnel carries.
    pub too_large: u64,
}

/// Work strangers made the node do, and what it refused.
#[derive(Debug, Clone, Serialize)]
pub struct CountersStatus {
    /// Handshake messages that cost a Diffie-Hellman.
    pub dh: u64,
    pub hellos_answered: u64,
    pub hellos_limited: u64,
    pub initiations_limited: u64,
    pub cookies_sent: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootstrapStatus {
    pub address: String,
    pub id: String,
    pub up: bool,
    pub rtt_ms: Option<f64>,
    pub public_address: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FriendStatus {
    pub key: String,
    pub online: bool,
    /// "direct" or "relayed"; None while offline.
    pub path: Option<String>,
    /// The friend's address on a direct path, the relay's on a relayed one.
    pub address: Option<String>,
    pub rtt_ms: Option<f64>,
    /// The largest UDP payload the path was found to carry.
    pub path_mtu: Option<usize>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tunnels: usize,
    /// The path's congestion controller; None when off or offline.
    pub congestion: Option<CongestionStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CongestionStatus {
    pub phase: String,
    pub bandwidth_mbit: Option<f64>,
    pub min_rtt_ms: Option<f64>,
    pub pacing_mbit: Option<f64>,
    pub window_bytes: u64,
    pub in_flight_bytes: u64,
    pub queued_bytes: usize,
    pub resent_segments: u64,
}

fn mbit(bytes_a_second: Option<f64>) -> Option<f64> {
    bytes_a_second.map(|b| b * 8.0 / 1e6)
}

fn millis(value: Option<Duration>) -> Option<f64> {
    value.map(|d| d.as_secs_f64() * 1000.0)
}

impl Status {
    /// `udp` is the driver's socket address, which the core does not know.
    pub fn new(snapshot: &Snapshot, udp: SocketAddr) -> Status {
        Status {
            id: snapshot.id.to_string(),
            udp: udp.to_string(),
            bootstrap: snapshot
                .bootstrap
                .iter()
                .map(|b| BootstrapStatus {
                    address: b.addr.to_string(),
                    id: b.id.to_string(),
                    up: b.up,
                    rtt_ms: millis(b.rtt),
                    public_address: b.public_addr.map(|a| a.to_string()),
                })
                .collect(),
            friends: snapshot
                .friends
                .iter()
                .map(|f| FriendStatus {
                    key: f.key.to_string(),
                    online: f.online,
                    path: f.path.map(|p| match p {
                        PathKind::Direct(_) => "direct".to_string(),
                        PathKind::Relayed(_) => "relayed".to_string(),
                    }),
                    address: f.path.map(|p| match p {
                        PathKind::Direct(addr) | PathKind::Relayed(addr) => addr.to_string(),
                    }),
                    rtt_ms: millis(f.rtt),
                    path_mtu: f.path_mtu,
                    bytes_in: f.bytes_in,
                    bytes_out: f.bytes_out,
                    tunnels: f.tunnels,
                    congestion: f.congestion.as_ref().map(|c| CongestionStatus {
                        phase: c.phase.to_string(),
                        bandwidth_mbit: mbit(c.bandwidth),
                        min_rtt_ms: millis(c.min_rtt),
                        pacing_mbit: mbit(c.pacing_rate),
                        window_bytes: c.window,
                        in_flight_bytes: c.in_flight,
                        queued_bytes: c.queued,
                        resent_segments: c.resent,
                    }),
                })
                .collect(),
            counters: CountersStatus {
                dh: snapshot.counters.dh,
                hellos_answered: snapshot.counters.hellos_answered,
                hellos_limited: snapshot.counters.hellos_limited,
                initiations_limited: snapshot.counters.initiations_limited,
                cookies_sent: snapshot.counters.cookies_sent,
            },
            datagrams_dropped: DatagramsDroppedStatus {
                too_large: snapshot.datagrams_dropped.too_large,
            },
        }
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1} ms"))
}

impl Status {
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "ID   {}", self.id);
        let _ = writeln!(out, "UDP  {}", self.udp);
        let _ = writeln!(out, "bootstrap nodes: {}", self.bootstrap.len());
        for b in &self.bootstrap {
            let _ = writeln!(
                out,
                "  {} {} rtt {} sees us at {}",
                b.address,
                if b.up { "up" } else { "down" },
                ms(b.rtt_ms),
                b.public_address.as_deref().unwrap_or("-"),
            );
        }
        let c = &self.counters;
        let _ = writeln!(
            out,
            "handshakes (DH) {} hellos answered {} limited: hellos {} handshakes {} cookies sent {}",
            c.dh, c.hellos_answered, c.hellos_limited, c.initiations_limited, c.cookies_sent
        );
        let _ = writeln!(
            out,
            "datagrams dropped as too large: {}",
            self.datagrams_dropped.too_large
        );
        let _ = writeln!(out, "friends: {}", self.friends.len());
        for f in &self.friends {
            let _ = writeln!(
                out,
                "  {} {} {} {} rtt {} mtu {} in {} B out {} B tunnels {}",
                &f.key[..16],
                if f.online { "online" } else { "offline" },
                f.path.as_deref().unwrap_or("-"),
                f.address.as_deref().unwrap_or("-"),
                ms(f.rtt_ms),
                f.path_mtu.map_or("-".to_string(), |m| m.to_string()),
                f.bytes_in,
                f.bytes_out,
                f.tunnels,
            );
            if let Some(c) = &f.congestion {
                let rate = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} Mbit/s"));
                let _ = writeln!(
                    out,
                    "    path {}: bandwidth {} pacing {} min rtt {} window {} B in flight {} B queued {} B resent {}",
                    c.phase,
                    rate(c.bandwidth_mbit),
                    rate(c.pacing_mbit),
                    ms(c.min_rtt_ms),
                    c.window_bytes,
                    c.in_flight_bytes,
                    c.queued_bytes,
                    c.resent_segments,
                );
            }
        }
        out
    }
}

//! What `toxtun status` shows: the core's snapshot, rendered as text or
//! as JSON (whose field names scripts rely on).

use std::collections::BTreeMap;
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
    /// This node's tunnel listeners (`[client]` lines and flags).
    pub tunnels: Vec<TunnelStatus>,
    /// Every tunnelled connection (UDP: flow) open now, oldest first.
    pub connections: Vec<ConnectionStatus>,
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

/// One tunnel line as it listens, and the connections it holds.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelStatus {
    pub name: String,
    /// "tcp" or "udp".
    pub transport: String,
    /// Where it listens (the port it was given, or the one it got).
    pub local: String,
    pub target: String,
    /// The server's 64-hex public key.
    pub server: String,
    /// Connections (UDP: flows) open or opening through it.
    pub open: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStatus {
    pub conn: u64,
    /// The friend's 64-hex public key.
    pub friend: String,
    pub friend_name: Option<String>,
    /// "tcp" or "udp".
    pub transport: String,
    /// The tunnel line it came in on (client side).
    pub tunnel: Option<String>,
    /// The local program's address (client side).
    pub local: Option<String>,
    pub target: String,
    pub age_s: f64,
    /// From the friend, to our local side.
    pub bytes_in: u64,
    /// From our local side, to the friend.
    pub bytes_out: u64,
}

/// The driver's side of a connection the core does not know: which tunnel
/// line accepted it, and from where.
#[derive(Debug, Clone)]
pub struct LocalEnd {
    pub tunnel: String,
    pub source: Option<SocketAddr>,
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
    /// Its name in `[friends]`, if it has one.
    pub name: Option<String>,
    pub online: bool,
    /// "direct" or "relayed"; None while offline.
    pub path: Option<String>,
    /// The friend's address on a direct path, the relay's on a relayed one.
    pub address: Option<String>,
    /// Probed round trip, else the path controller's smallest.
    pub rtt_ms: Option<f64>,
    /// Seconds since its last authenticated packet; None if it never sent one.
    pub last_seen_s: Option<f64>,
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
    pub recent_rtt_ms: Option<f64>,
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
    /// `udp`, `tunnels` and `local_ends` are the driver's, which the core
    /// does not know.
    pub fn new(
        snapshot: &Snapshot,
        udp: SocketAddr,
        tunnels: Vec<TunnelStatus>,
        local_ends: &BTreeMap<u64, LocalEnd>,
    ) -> Status {
        let name_of = |key| {
            snapshot
                .friends
                .iter()
                .find(|f| f.key == key)
                .and_then(|f| f.name.clone())
        };
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
                    name: f.name.clone(),
                    online: f.online,
                    path: f.path.map(|p| match p {
                        PathKind::Direct(_) => "direct".to_string(),
                        PathKind::Relayed(_) => "relayed".to_string(),
                    }),
                    address: f.path.map(|p| match p {
                        PathKind::Direct(addr) | PathKind::Relayed(addr) => addr.to_string(),
                    }),
                    rtt_ms: millis(f.rtt.or(f.congestion.as_ref().and_then(|c| c.min_rtt))),
                    last_seen_s: f.last_seen.map(|d| d.as_secs_f64()),
                    path_mtu: f.path_mtu,
                    bytes_in: f.bytes_in,
                    bytes_out: f.bytes_out,
                    tunnels: f.tunnels,
                    congestion: f.congestion.as_ref().map(|c| CongestionStatus {
                        phase: c.phase.to_string(),
                        bandwidth_mbit: mbit(c.bandwidth),
                        min_rtt_ms: millis(c.min_rtt),
                        recent_rtt_ms: millis(c.recent_rtt),
                        pacing_mbit: mbit(c.pacing_rate),
                        window_bytes: c.window,
                        in_flight_bytes: c.in_flight,
                        queued_bytes: c.queued,
                        resent_segments: c.resent,
                    }),
                })
                .collect(),
            tunnels,
            connections: snapshot
                .connections
                .iter()
                .map(|c| {
                    let end = local_ends.get(&c.conn);
                    ConnectionStatus {
                        conn: c.conn,
                        friend: c.friend.to_string(),
                        friend_name: name_of(c.friend),
                        transport: c.transport.name().to_string(),
                        tunnel: end.map(|e| e.tunnel.clone()),
                        local: end.and_then(|e| e.source).map(|a| a.to_string()),
                        target: c.target.clone(),
                        age_s: c.age.as_secs_f64(),
                        bytes_in: c.bytes_in,
                        bytes_out: c.bytes_out,
                    }
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

/// Bytes in the largest binary unit that keeps a number of at least 1.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{count} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

pub(crate) fn ago(seconds: Option<f64>) -> String {
    match seconds {
        None => "never".into(),
        Some(s) if s < 1.0 => "now".into(),
        Some(s) => format!("{} ago", age(s)),
    }
}

/// How long something has been open: "42 s", "10 min", "3 h".
fn age(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.0} h", s / 3600.0),
        s => format!("{:.0} days", s / 86_400.0),
    }
}

pub(crate) fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

impl Status {
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "ID   {}", self.id);
        let _ = writeln!(out, "UDP  {}", self.udp);
        let _ = writeln!(out);
        let _ = writeln!(out, "Friends: {}", self.friends.len());
        let friends: Vec<Vec<String>> = self
            .friends
            .iter()
            .map(|f| {
                vec![
                    f.key.clone(),
                    f.name.clone().unwrap_or("-".into()),
                    if f.online { "online" } else { "offline" }.into(),
                    f.path.clone().unwrap_or("-".into()),
                    f.address.clone().unwrap_or("-".into()),
                    ms(f.rtt_ms),
                    ago(f.last_seen_s),
                    bytes(f.bytes_in),
                    bytes(f.bytes_out),
                    f.tunnels.to_string(),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "FRIEND",
                "NAME",
                "STATE",
                "PATH",
                "ADDRESS",
                "RTT",
                "LAST SEEN",
                "IN",
                "OUT",
                "TUNNELS",
            ],
            &friends,
        );
        if !self.tunnels.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Tunnels: {}", self.tunnels.len());
            let tunnels: Vec<Vec<String>> = self
                .tunnels
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.transport.clone(),
                        t.local.clone(),
                        t.target.clone(),
                        t.server[..16].to_string(),
                        t.open.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["TUNNEL", "PROTO", "LOCAL", "TARGET", "SERVER", "OPEN"],
                &tunnels,
            );
        }
        if !self.connections.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Connections: {}", self.connections.len());
            let rows: Vec<Vec<String>> = self
                .connections
                .iter()
                .map(|c| {
                    vec![
                        c.conn.to_string(),
                        c.friend_name.clone().unwrap_or(c.friend[..16].to_string()),
                        c.transport.clone(),
                        c.tunnel.clone().unwrap_or("-".into()),
                        c.local.clone().unwrap_or("-".into()),
                        c.target.clone(),
                        bytes(c.bytes_in),
                        bytes(c.bytes_out),
                        age(c.age_s),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "CONN", "FRIEND", "PROTO", "TUNNEL", "LOCAL", "TARGET", "IN", "OUT", "AGE",
                ],
                &rows,
            );
        }
        let congested: Vec<Vec<String>> = self
            .friends
            .iter()
            .filter_map(|f| {
                let c = f.congestion.as_ref()?;
                let rate = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} Mbit/s"));
                Some(vec![
                    f.key[..16].to_string(),
                    c.phase.clone(),
                    rate(c.bandwidth_mbit),
                    rate(c.pacing_mbit),
                    ms(c.min_rtt_ms),
                    bytes(c.window_bytes),
                    bytes(c.in_flight_bytes),
                    bytes(c.queued_bytes as u64),
                    c.resent_segments.to_string(),
                ])
            })
            .collect();
        if !congested.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Paths:");
            table(
                &mut out,
                &[
                    "FRIEND",
                    "PHASE",
                    "BANDWIDTH",
                    "PACING",
                    "MIN RTT",
                    "WINDOW",
                    "IN FLIGHT",
                    "QUEUED",
                    "RESENT",
                ],
                &congested,
            );
        }
        if !self.bootstrap.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Bootstrap nodes: {}", self.bootstrap.len());
            let nodes: Vec<Vec<String>> = self
                .bootstrap
                .iter()
                .map(|b| {
                    vec![
                        b.address.clone(),
                        if b.up { "up" } else { "down" }.into(),
                        ms(b.rtt_ms),
                        b.public_address.clone().unwrap_or("-".into()),
                    ]
                })
                .collect();
            table(&mut out, &["ADDRESS", "STATE", "RTT", "SEES US AT"], &nodes);
        }
        let c = &self.counters;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Handshakes (DH) {}, hellos answered {}; limited: hellos {}, handshakes {}; cookies sent {}",
            c.dh, c.hellos_answered, c.hellos_limited, c.initiations_limited, c.cookies_sent
        );
        let _ = writeln!(
            out,
            "Datagrams dropped as too large: {}",
            self.datagrams_dropped.too_large
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_for_people() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(ago(None), "never");
        assert_eq!(ago(Some(0.2)), "now");
        assert_eq!(ago(Some(42.0)), "42 s ago");
        assert_eq!(ago(Some(600.0)), "10 min ago");
        assert_eq!(ago(Some(3.0 * 86_400.0)), "3 days ago");
    }

    #[test]
    fn columns_line_up_under_their_headers() {
        let mut out = String::new();
        let rows = vec![vec!["a".to_string(), "long cell".to_string()]];
        table(&mut out, &["ONE", "TWO"], &rows);
        assert_eq!(out, "ONE  TWO\na    long cell\n");
    }
}

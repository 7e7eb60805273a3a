//! `toxtun status` on a bootstrap node: what it holds and relays, and the
//! limits it hit, asked of the driver over the same control socket a
//! node has.

use std::fmt::Write;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::bootstrap::driver::StatsRequest;
use crate::bootstrap::BootstrapStats;
use crate::status::bytes;

#[derive(Debug, Clone, Serialize)]
pub struct BootstrapNodeStatus {
    pub id: String,
    pub address: String,
    pub max_nodes: usize,
    pub tcp_links: usize,
    #[serde(flatten)]
    pub stats: BootstrapStats,
}

impl BootstrapNodeStatus {
    pub fn render_text(&self) -> String {
        let s = &self.stats;
        let mut out = String::new();
        let _ = writeln!(out, "Bootstrap node {}", self.id);
        let _ = writeln!(out, "UDP and TCP  {}", self.address);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Nodes announced  {} of at most {} (evicted at the cap: {})",
            s.nodes, self.max_nodes, s.evicted
        );
        let _ = writeln!(out, "TCP links        {}", self.tcp_links);
        let _ = writeln!(
            out,
            "Relayed          {} packets, {}",
            s.relayed_packets,
            bytes(s.relayed_bytes)
        );
        let _ = writeln!(
            out,
            "Limits hit       relay {} packets, announcements {}",
            s.limited_packets, s.announces_limited
        );
        let _ = writeln!(
            out,
            "Checked          {} signatures, {} address challenges",
            s.verifications, s.challenges
        );
        out
    }
}

/// One control-socket request: `json` or anything else (text). The
/// node's other requests have no meaning here and get its status too.
pub async fn answer(
    mut stream: UnixStream,
    requests: mpsc::Sender<StatsRequest>,
    id: String,
    address: String,
    max_nodes: usize,
) -> std::io::Result<()> {
    let request = crate::net::control::read_line(&mut stream).await?;
    let (reply, stats) = oneshot::channel();
    if requests.send(reply).await.is_err() {
        return Ok(());
    }
    let Ok((stats, tcp_links)) = stats.await else {
        return Ok(());
    };
    let status = BootstrapNodeStatus {
        id,
        address,
        max_nodes,
        tcp_links,
        stats,
    };
    let text = match request.trim() {
        "json" => serde_json::to_string_pretty(&status).unwrap_or_default() + "\n",
        _ => status.render_text(),
    };
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

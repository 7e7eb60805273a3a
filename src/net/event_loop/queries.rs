//! What the control socket asks the event loop: the tunnel lines for
//! `status`, and `forget`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::EventLoop;
use crate::friends_file;
use crate::id::PublicKey;
use crate::proto::ConnId;
use crate::status::{LocalEnd, TunnelStatus};

impl EventLoop {
    /// Each tunnel line, where it listens and what it holds now.
    pub(super) fn tunnel_statuses(&self) -> Vec<TunnelStatus> {
        self.ctx
            .tunnels
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.removed_tunnels.contains(index))
            .map(|(index, spec)| {
                let streams = self
                    .conns
                    .values()
                    .filter(|c| c.tunnel == Some(index))
                    .count();
                TunnelStatus {
                    name: spec.name.clone(),
                    transport: spec.transport.name().to_string(),
                    local: self
                        .listening
                        .get(&index)
                        .map_or(spec.listen.to_string(), ToString::to_string),
                    target: spec.target(),
                    server: spec.server.key.to_string(),
                    open: streams + self.flows.count_for(index),
                }
            })
            .collect()
    }

    /// Which tunnel line each local connection and flow came in on, and
    /// from where.
    pub(super) fn local_ends(&self) -> BTreeMap<ConnId, LocalEnd> {
        let name = |index: usize| self.ctx.tunnels.get(index).map(|s| s.name.clone());
        let streams = self.conns.iter().filter_map(|(conn, c)| {
            let tunnel = name(c.tunnel?)?;
            Some((
                *conn,
                LocalEnd {
                    tunnel,
                    source: c.source,
                },
            ))
        });
        let flows = self.flows.sources().filter_map(|(conn, index, source)| {
            let tunnel = name(index)?;
            Some((
                conn,
                LocalEnd {
                    tunnel,
                    source: Some(source),
                },
            ))
        });
        streams.chain(flows).collect()
    }

    /// `toxtun forget`: out of the running node and out of the friends file.
    pub(super) fn forget(&mut self, now: Instant, friend: PublicKey) -> Result<String, String> {
        let in_node = self.core.forget(now, &friend);
        let file = &self.ctx.friends_file;
        let in_file = friends_file::remove(file, &friend)?;
        let file = file.display();
        match (in_node, in_file) {
            (true, true) => Ok(format!(
                "forgot {friend}: removed from the running node and from {file}"
            )),
            (true, false) => Ok(format!(
                "forgot {friend} in the running node (it was not in {file})"
            )),
            (false, true) => Ok(format!(
                "removed {friend} from {file} (the running node did not hold it)"
            )),
            (false, false) => Err(format!(
                "{friend} is not a friend of the running node, nor in {file}"
            )),
        }
    }
}

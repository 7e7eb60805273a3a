//! What each open tunnel carried, for the one line the log gives it when
//! it closes: friend, target, bytes each way, how long, and why. A
//! refusal or a failure to open is a warning (on the server too, where
//! the refusal is logged at a rate); any other end is info.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::control::Transport;
use super::link::ConnId;
use super::Core;
use crate::id::PublicKey;
use crate::proto::reason::CloseReason;
use crate::proto::snapshot::ConnectionSnapshot;

pub struct Entry {
    pub friend: PublicKey,
    pub target: String,
    pub transport: Transport,
    pub since: Instant,
    /// From the friend, to our local side.
    pub bytes_in: u64,
    /// From our local side, to the friend.
    pub bytes_out: u64,
}

impl Core {
    pub(super) fn ledger_open(
        &mut self,
        now: Instant,
        conn: ConnId,
        friend: PublicKey,
        target: String,
        transport: Transport,
    ) {
        let entry = Entry {
            friend,
            target,
            transport,
            since: now,
            bytes_in: 0,
            bytes_out: 0,
        };
        self.ledger.insert(conn, entry);
    }

    pub(super) fn count_in(&mut self, conn: ConnId, bytes: usize) {
        if let Some(entry) = self.ledger.get_mut(&conn) {
            entry.bytes_in += bytes as u64;
        }
    }

    pub(super) fn count_out(&mut self, conn: ConnId, bytes: usize) {
        if let Some(entry) = self.ledger.get_mut(&conn) {
            entry.bytes_out += bytes as u64;
        }
    }

    /// Every tunnel open now, oldest first.
    pub(super) fn connection_snapshots(&self, now: Instant) -> Vec<ConnectionSnapshot> {
        let mut open: Vec<ConnectionSnapshot> = self
            .ledger
            .iter()
            .map(|(conn, e)| ConnectionSnapshot {
                conn: *conn,
                friend: e.friend,
                target: e.target.clone(),
                transport: e.transport,
                age: now.saturating_duration_since(e.since),
                bytes_in: e.bytes_in,
                bytes_out: e.bytes_out,
            })
            .collect();
        open.sort_by_key(|c| std::cmp::Reverse(c.age));
        open
    }

    /// The tunnel's one line at its end; `opening` is the friend and
    /// target of one that never opened.
    pub(super) fn log_closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        opening: Option<(PublicKey, &str)>,
        reason: &CloseReason,
    ) {
        let entry = self.ledger.remove(&conn);
        let (friend, target) = match (&entry, opening) {
            (Some(e), _) => (Some(e.friend), e.target.as_str()),
            (None, Some((friend, target))) => (Some(friend), target),
            (None, None) => (None, "-"),
        };
        let friend = friend.map_or("-".to_string(), |f| self.net.short_label(&f).to_string());
        let (bytes_in, bytes_out, age) = entry.as_ref().map_or((0, 0, Duration::ZERO), |e| {
            (
                e.bytes_in,
                e.bytes_out,
                now.saturating_duration_since(e.since),
            )
        });
        let transport = entry.as_ref().map_or("-", |e| e.transport.name());
        let seconds = format!("{:.1}", age.as_secs_f64());
        if failed_to_open(reason) {
            warn!(conn, %friend, %target, %reason, "tunnel closed");
        } else {
            info!(conn, %friend, %target, %transport, bytes_in, bytes_out, %seconds, %reason, "tunnel closed");
        }
    }
}

/// Ends that mean the tunnel was refused or could not be had.
fn failed_to_open(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Refused(_)
            | CloseReason::NoAddress(_)
            | CloseReason::ServerUnreachable { .. }
            | CloseReason::NoAnswer { .. }
            | CloseReason::ConvInUse(_)
            | CloseReason::LimitReached(_)
    )
}

//! A config read again while the node runs (SIGHUP): who may connect,
//! what they may reach, and friends' names change; every tunnel already
//! open stays as it is, and only what is asked from now on follows the
//! new rules.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::info;

use super::allow::AllowRule;
use super::Core;
use crate::id::{PeerRef, PublicKey};

pub struct Reloaded {
    /// The new `allow`; ignored on a node that serves no tunnels.
    pub allow: Vec<AllowRule>,
    pub services: BTreeMap<String, String>,
    /// Friends the config lists (`[server] friends`, `[friends]`).
    pub friends: Vec<PeerRef>,
    /// Listed before and no longer: they are dropped as `forget` drops
    /// them.
    pub unlisted: Vec<PublicKey>,
    pub names: Vec<(PublicKey, String)>,
    /// Whether anyone who proves the nospam is accepted (no friend
    /// listed).
    pub accept_requests: bool,
}

impl Core {
    pub fn reload(&mut self, now: Instant, update: Reloaded) {
        if self.config.allow.is_some() {
            self.config.allow = Some(update.allow);
            self.config.services = update.services;
        }
        let net = &mut self.net;
        net.set_names(update.names);
        net.set_accept_requests(update.accept_requests);
        for friend in update.friends {
            net.add_friend(now, friend, None, false);
        }
        for key in &update.unlisted {
            if self.forget(now, key) {
                info!(friend = %key, "no longer listed in the config: dropped");
            }
        }
    }
}

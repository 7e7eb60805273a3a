//! SIGHUP: the config is read again, as at start (the same file and
//! flags). A config with an error is refused, with the error, and the
//! node goes on with the one it has. Otherwise friends, names, `allow`,
//! services and tunnel lines take effect without dropping anything that
//! still fits: connections already open stay, new ones follow the new
//! config. What only a restart can change is named in the log.

use std::collections::BTreeSet;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::id::PublicKey;
use crate::listeners::{self, Listener};
use crate::net::command::Command;
use crate::proto::tunnel::reload::Reloaded;

/// What a running node reloads: the settings it runs on and its
/// listeners.
pub struct Running {
    pub settings: Settings,
    pub listeners: Vec<Listener>,
    /// A server: its friends and `allow` apply.
    pub serving: bool,
}

impl Running {
    pub async fn reload(
        &mut self,
        load: &dyn Fn() -> Result<Settings, String>,
        commands: &mpsc::Sender<Command>,
    ) {
        // Before the config: a rotated log is let go even when the new
        // config has an error.
        if let Err(e) = crate::log_sink::reopen() {
            error!("{e}");
        }
        let new = match load() {
            Ok(new) => new,
            Err(e) => {
                error!("config not reloaded; still running on the one read before: {e}");
                return;
            }
        };
        for warning in &new.warnings {
            warn!("{warning}");
        }
        if crate::log_sink::apply_level(new.node.log_level) {
            let level = new.node.log_level.map_or("info", |l| l.name());
            info!(level, "log level changed");
        }
        if new.node.log_file != self.settings.node.log_file {
            if let Err(e) = crate::log_sink::log_to(new.node.log_file.as_deref()) {
                error!("{e}; the log stays where it was");
            }
        }
        self.name_restart_only(&new);
        let (friends, unlisted) = match self.serving {
            true => (new.server.friends.clone(), unlisted(&self.settings, &new)),
            false => (Vec::new(), Vec::new()),
        };
        let update = Reloaded {
            allow: new.server.allow.clone(),
            services: new.services.clone(),
            friends,
            unlisted,
            names: new
                .friend_names
                .iter()
                .map(|(name, peer)| (peer.key(), name.clone()))
                .collect(),
            accept_requests: self.serving && new.server.friends.is_empty(),
        };
        let _ = commands.send(Command::Reload(Box::new(update))).await;
        let (removed, added) = self.swap_tunnels(&new, commands).await;
        info!(
            tunnels_added = added,
            tunnels_removed = removed,
            "config reloaded: friends, names, allow, services and tunnel lines"
        );
        self.settings = new;
    }

    /// Stops the listeners of lines that are gone or changed, and starts
    /// those of lines that are new or changed; lines that stayed as they
    /// were keep listening.
    async fn swap_tunnels(
        &mut self,
        new: &Settings,
        commands: &mpsc::Sender<Command>,
    ) -> (usize, usize) {
        let (kept, gone): (Vec<Listener>, Vec<Listener>) = std::mem::take(&mut self.listeners)
            .into_iter()
            .partition(|l| new.client.contains(&l.spec));
        let removed = gone.len();
        for listener in gone {
            let index = listener.index;
            listener.stop();
            let _ = commands.send(Command::RemoveTunnel { index }).await;
        }
        self.listeners = kept;
        let mut added = 0;
        for spec in &new.client {
            if self.listeners.iter().any(|l| &l.spec == spec) {
                continue;
            }
            let (reply, index) = oneshot::channel();
            let asked = Command::AddTunnel {
                spec: spec.clone(),
                reply,
            };
            if commands.send(asked).await.is_err() {
                return (removed, added);
            }
            let Ok(index) = index.await else {
                return (removed, added);
            };
            match listeners::listen(index, spec.clone(), commands).await {
                Ok(listener) => {
                    self.listeners.push(listener);
                    added += 1;
                }
                Err(e) => {
                    error!("{e}");
                    let _ = commands.send(Command::RemoveTunnel { index }).await;
                }
            }
        }
        (removed, added)
    }

    /// Logs each setting that changed but takes a restart to apply.
    fn name_restart_only(&self, new: &Settings) {
        let (old, new) = (&self.settings, new);
        let changed = [
            ("[node] key_file", old.node.key_file != new.node.key_file),
            ("[node] listen", old.node.listen != new.node.listen),
            ("[node] psk", old.node.psk != new.node.psk),
            (
                "[node] bootstrap",
                format!("{:?}", old.node.bootstrap) != format!("{:?}", new.node.bootstrap),
            ),
            ("[node] proxy", old.node.proxy != new.node.proxy),
            ("[kcp]", old.kcp != new.kcp),
            ("socks5 lines", old.socks != new.socks),
        ];
        for (setting, _) in changed.iter().filter(|(_, changed)| *changed) {
            warn!("{setting} changed: it takes effect only when the node restarts");
        }
    }
}

/// Friends the old config listed and the new one does not.
fn unlisted(old: &Settings, new: &Settings) -> Vec<PublicKey> {
    let still: BTreeSet<PublicKey> = new.server.friends.iter().map(|p| p.key()).collect();
    let before: BTreeSet<PublicKey> = old.server.friends.iter().map(|p| p.key()).collect();
    before.difference(&still).copied().collect()
}

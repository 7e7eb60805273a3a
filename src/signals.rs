//! What a running node is asked by signal: to stop cleanly (SIGINT, as
//! Ctrl-C sends, or SIGTERM, as a service manager or `kill` sends), or to
//! read its config again (SIGHUP). The handlers are installed when this
//! is made, before the node says it is ready: a SIGTERM right after READY
//! must stop it cleanly, and a SIGHUP must never kill it.

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Stop,
    Reload,
}

impl Signals {
    /// Call inside the runtime.
    pub fn install() -> Result<Self, String> {
        let install =
            |kind: SignalKind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// The next signal's request.
    pub async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.interrupt.recv() => Asked::Stop,
            _ = self.terminate.recv() => Asked::Stop,
            _ = self.hangup.recv() => Asked::Reload,
        }
    }

    /// Waits for a stop; a reload asked meanwhile opens the log file
    /// again, and is otherwise answered with `no_reload`, said in the log.
    pub async fn stop_asked(&mut self, no_reload: &str) {
        while self.next().await == Asked::Reload {
            if let Err(e) = crate::log_sink::reopen() {
                tracing::error!("{e}");
            }
            tracing::warn!("SIGHUP: {no_reload}");
        }
    }
}

//! What asks a node to stop cleanly: SIGINT (Ctrl-C) or SIGTERM (a
//! service manager, `kill`). The handlers are installed when this is
//! made, before the node says it is ready: a SIGTERM right after READY
//! must stop it cleanly, not kill it.

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Call inside the runtime.
    pub fn install() -> Result<Self, String> {
        let install =
            |kind: SignalKind| signal(kind).map_err(|e| format!("cannot handle stop signals: {e}"));
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Returns once either signal has come.
    pub async fn stop_asked(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

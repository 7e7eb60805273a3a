//! What asks a node to stop cleanly: SIGINT (Ctrl-C) or SIGTERM (a
//! service manager, `kill`).

use tokio::signal::unix::{signal, SignalKind};

/// Returns once either signal has come.
pub async fn stop_asked() {
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

//! The operator's way to stop a command: SIGTERM (systemd) or SIGINT
//! (Ctrl-C). Commands that run until stopped (`run`, `status --watch`,
//! `roster show`) take the future as their shutdown, so none of them needs
//! to know about signals.

use std::future::Future;

use tracing::info;

/// Resolves when SIGINT or SIGTERM arrives. The handlers are installed at
/// the call, not at the first poll, so a signal during start-up (loading
/// the ledger, say) still ends in a clean shutdown. Call it inside the
/// runtime.
pub fn shutdown() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => info!("init: SIGTERM received"),
                    _ = i.recv() => info!("init: SIGINT received"),
                }
            }
            _ => {
                // Without signal handlers only Ctrl-C through tokio remains.
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

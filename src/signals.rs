//! The operator's way to stop a command: SIGTERM (systemd) or SIGINT
//! (Ctrl-C). Commands that run until stopped (`run`, `status --watch`,
//! `roster show`) take the future as their shutdown, so none of them needs
//! to know about signals. `run` also takes SIGHUP ([`Reloads`]): it reads
//! its configuration again and never stops on it.

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

/// SIGHUP, the request to read the configuration again (`systemctl reload`
/// sends it): a node reloads what it can and carries on. The handler is
/// installed at [`Reloads::install`], and from then on SIGHUP never ends
/// the process.
pub struct Reloads(Option<tokio::signal::unix::Signal>);

impl Reloads {
    /// Installs the handler; call inside the runtime. Without it (the
    /// handler refused), [`Reloads::next`] never resolves and SIGHUP keeps
    /// its default action.
    pub fn install() -> Reloads {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Reloads(Some(s)),
            Err(e) => {
                tracing::warn!("init: no SIGHUP handler ({e}); reload needs a restart");
                Reloads(None)
            }
        }
    }

    /// Nothing to reload (a node without a configuration to read again).
    pub fn none() -> Reloads {
        Reloads(None)
    }

    /// Resolves at the next SIGHUP.
    pub async fn next(&mut self) {
        if let Some(s) = &mut self.0 {
            if s.recv().await.is_some() {
                return;
            }
            self.0 = None;
        }
        std::future::pending().await
    }
}

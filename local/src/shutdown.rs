//! [`Shutdown`]: the one token every long-running part of the runtime
//! watches. Triggering it asks each part to finish what it holds (the
//! gateway its requests, an execution its step, a poller its batch) and
//! return; nothing is cut off mid-write.
//!
//! A thin name over `tokio_util`'s `CancellationToken`, which does the
//! waiting and waking; clones share one token.

use tokio_util::sync::CancellationToken;

/// Asks every part of a running [`crate::runtime::Runtime`] to stop.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything watching this token to stop. Idempotent.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes once [`Shutdown::trigger`] is called (at once if it was).
    pub async fn triggered(&self) {
        self.0.cancelled().await;
    }

    /// A token triggered by SIGINT (Ctrl-C) or SIGTERM. The signal handlers
    /// are installed before this returns, so a signal that arrives right
    /// after — e.g. right after "listening" is printed — is not lost to the
    /// default action.
    pub fn on_signals() -> std::io::Result<Self> {
        let shutdown = Self::new();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("shutting down: finishing in-flight work");
                trigger.trigger();
            });
        }
        #[cfg(not(unix))]
        {
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!("shutting down: finishing in-flight work");
                    trigger.trigger();
                }
            });
        }
        Ok(shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_one_token() {
        let shutdown = Shutdown::new();
        let watcher = shutdown.clone();
        assert!(!watcher.is_triggered());
        let waiting = tokio::spawn(async move { watcher.triggered().await });
        shutdown.trigger();
        waiting.await.unwrap();
        assert!(shutdown.is_triggered());
        shutdown.triggered().await;
    }
}

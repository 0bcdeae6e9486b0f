//! Ctrl-C during the long verbs (`create`, `hibernate`, `wake`): the first one cancels the
//! operation through the provider's [`Cancel`] (its running step stops and what it made is
//! undone); later ones only say that the undo is still running, so it is never cut short.

use tokio::task::JoinHandle;
use vps_docker_provider::Cancel;

use crate::progress::Reporter;

/// Watches for Ctrl-C while it lives; dropping it stops watching.
pub struct CtrlC {
    cancel: Cancel,
    watcher: JoinHandle<()>,
}

impl CtrlC {
    /// Starts watching. On Ctrl-C, `reporter` says so and shows `undoing` (what happens
    /// now, e.g. "rolling back what was made so far") as the activity.
    pub fn watch(reporter: &Reporter, undoing: &'static str) -> Self {
        let (handle, cancel) = Cancel::new();
        let on_signal = reporter.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.line("interrupted (Ctrl-C)");
                on_signal.activity(undoing);
                handle.cancel();
                // Further Ctrl-Cs must not kill the undo.
                while tokio::signal::ctrl_c().await.is_ok() {
                    on_signal.line("still undoing; it finishes by itself");
                }
            }
        });
        Self { cancel, watcher }
    }

    /// What the operation watches.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Stops watching once the operation returned. A Ctrl-C that came after its last step
    /// that can be undone did not stop it: if it `succeeded`, that is said, so the
    /// "undoing" line is not the last word.
    pub fn stop(self, reporter: &Reporter, succeeded: bool) {
        if succeeded && self.cancel.is_cancelled() {
            reporter.line("the Ctrl-C came too late to undo anything: the operation had passed its last step that can be undone, and finished");
        }
    }
}

impl Drop for CtrlC {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

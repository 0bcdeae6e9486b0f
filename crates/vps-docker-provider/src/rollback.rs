//! The undo stack of a create: each step that makes something pushes its undo; on failure
//! the stack unwinds in reverse and every undo's own failure is collected, never dropped.
//!
//! The container, the host volume, the state container and the record live on the VPS and
//! go with it, so the stack holds only what outlives the instance: the instance itself, the
//! uploaded key, and the local keys and pins.

use std::sync::Arc;

use vps_client::VpsClient;
use vps_primitives::{SshKeyId, Tag, VpsInstanceId};

use crate::error::{RollbackFailure, StepError};
use crate::keys::HostKeys;

/// One thing a create made, and how to remove it.
#[derive(Debug)]
pub(crate) enum Undo {
    /// Remove the host's key directory (keys and pins).
    LocalKeys(HostKeys),
    /// Delete the key uploaded to the provider.
    DeleteKey(SshKeyId),
    /// Destroy the instance (and with it everything on the VPS).
    DestroyInstance(VpsInstanceId),
    /// The create request's outcome is unknown: destroy whatever carries the host's tag.
    DestroyTagged(Tag),
}

/// The stack.
#[derive(Debug, Default)]
pub(crate) struct Rollback {
    undos: Vec<Undo>,
}

impl Rollback {
    pub(crate) fn push(&mut self, undo: Undo) {
        self.undos.push(undo);
    }

    /// Undoes everything, last first; returns the undos that failed.
    pub(crate) async fn unwind(self, client: &Arc<dyn VpsClient>) -> Vec<RollbackFailure> {
        let mut failures = Vec::new();
        for undo in self.undos.into_iter().rev() {
            let (what, result) = match &undo {
                Undo::LocalKeys(keys) => (
                    format!("local keys and pins in {}", keys.dir().display()),
                    keys.remove().map_err(StepError::from),
                ),
                Undo::DeleteKey(id) => (
                    format!("uploaded SSH key {id}"),
                    client.delete_ssh_key(id).await.map_err(StepError::from),
                ),
                Undo::DestroyInstance(id) => (
                    format!("VPS instance {id}"),
                    client.destroy_instance(id).await.map_err(StepError::from),
                ),
                Undo::DestroyTagged(tag) => (
                    format!("VPS instances tagged {tag}"),
                    destroy_tagged(client, tag).await,
                ),
            };
            match result {
                Ok(()) => tracing::info!(%what, "rolled back"),
                Err(error) => {
                    tracing::warn!(%what, %error, "rollback step failed");
                    failures.push(RollbackFailure { what, error });
                }
            }
        }
        failures
    }
}

async fn destroy_tagged(client: &Arc<dyn VpsClient>, tag: &Tag) -> Result<(), StepError> {
    for instance in client.list_instances(Some(tag)).await? {
        client.destroy_instance(&instance.id).await?;
    }
    Ok(())
}

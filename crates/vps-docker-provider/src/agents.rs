//! Agent data: the records of a host's agents, kept per host on the VPS's state volume
//! (`host_state/<host id>/<agent id>.json`, written atomically by `host-store`).
//!
//! They live in the state container, not in the host container, so they stay readable
//! and writable while the host's container is stopped; they are deleted with the host.

use std::sync::Arc;

use docker_ssh::{Executor, SshPool};
use host_store::{AgentListing, AgentRecord, HostStore, StoreError};
use vps_primitives::AgentId;

use crate::error::ProviderError;
use crate::provider::VpsDockerProvider;
use crate::step::Step;

impl VpsDockerProvider {
    /// Writes (or replaces) the record of one agent of the host.
    pub async fn persist_agent(
        &self,
        name_or_id: &str,
        agent: &AgentRecord,
    ) -> Result<(), ProviderError> {
        self.with_agent_store(name_or_id, |store, id| {
            let agent = agent.clone();
            async move { store.persist_agent(&id, &agent).await }
        })
        .await
    }

    /// The records of the host's agents (corrupt ones are skipped and reported in
    /// [`AgentListing::skipped`]).
    pub async fn list_agents(&self, name_or_id: &str) -> Result<AgentListing, ProviderError> {
        self.with_agent_store(name_or_id, |store, id| async move {
            store.list_agents(&id).await
        })
        .await
    }

    /// Removes the record of one agent; returns whether it was there.
    pub async fn remove_agent(
        &self,
        name_or_id: &str,
        agent: &AgentId,
    ) -> Result<bool, ProviderError> {
        self.with_agent_store(name_or_id, |store, id| {
            let agent = agent.clone();
            async move { store.remove_agent(&id, &agent).await }
        })
        .await
    }

    /// Runs `op` on the host's store over its VPS connection.
    async fn with_agent_store<T, F, Fut>(&self, name_or_id: &str, op: F) -> Result<T, ProviderError>
    where
        F: FnOnce(HostStore, vps_primitives::HostId) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let found = self.find(name_or_id).await?;
        let host = found.info.display_name();
        let (vps, _record): (SshPool, _) = self.vps_of(&found)?;
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let result = match self.store(exec) {
            Ok(store) => op(store, found.info.id.clone())
                .await
                .map_err(|e| ProviderError::Step {
                    host: host.clone(),
                    step: Step::Lookup,
                    source: e.into(),
                }),
            Err(source) => Err(ProviderError::Step {
                host,
                step: Step::Lookup,
                source,
            }),
        };
        vps.close().await;
        result
    }
}

//! [`HostStore`]: read and write records in the state container, over any executor.

use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{Command, Docker, ExecOptions, Executor, Output, is_no_such_object};
use tracing::Instrument;
use vps_primitives::{AgentId, HostId};

use crate::container::{Ensured, StateContainerSpec, ensure_state_container};
use crate::error::StoreError;
use crate::layout::{HOST_STATE_DIR, StateContainerName, agent_record_path, host_record_path};
use crate::listing::{
    AgentListing, Listing, RawEntry, SkipReason, host_record_from, interpret_agents, interpret_all,
    parse_raw,
};
use crate::record::{AgentRecord, HostRecord};
use crate::script;

/// Default limit for one store command (the whole round trip).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Host and agent records in the state container of one VPS.
///
/// Every operation is **one** small shell script: a write or delete as a `docker exec` in
/// the state container; a read on the VPS itself, from the state volume's mount point
/// (falling back to a `docker exec` where that is not readable), over the executor (an
/// SSH pool to the VPS, or the local shell). Record JSON travels on stdin and, when read,
/// base64-framed on stdout. Writes are atomic (see the crate docs). Every command has a timeout ([`DEFAULT_TIMEOUT`]) and is
/// marked idempotent, so a pooled executor may retry it after a dropped connection.
///
/// The store does not cache: every read goes to the VPS.
#[derive(Clone)]
pub struct HostStore {
    docker: Docker,
    container: StateContainerName,
    timeout: Duration,
}

impl std::fmt::Debug for HostStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStore")
            .field("target", &self.target())
            .field("container", &self.container)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HostStore {
    /// A store in the (existing) state container `container`, reached through `exec`.
    pub fn new(exec: Arc<dyn Executor>, container: StateContainerName) -> Self {
        Self {
            docker: Docker::new(exec),
            container,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Ensures the state container described by `spec` runs (see
    /// [`ensure_state_container`]) and returns a store in it.
    pub async fn ensure(
        exec: Arc<dyn Executor>,
        spec: &StateContainerSpec,
    ) -> Result<(Self, Ensured), StoreError> {
        let ensured = ensure_state_container(exec.clone(), spec).await?;
        Ok((Self::new(exec, spec.name.clone()), ensured))
    }

    /// Sets the limit for each store command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The state container.
    pub fn container(&self) -> &StateContainerName {
        &self.container
    }

    /// Where commands run (e.g. `root@203.0.113.7:22`).
    pub fn target(&self) -> String {
        self.docker.executor().target()
    }

    /// Runs `script` in the state container; errors unless it exits 0.
    async fn run(
        &self,
        action: &str,
        script: String,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, StoreError> {
        let mut opts = ExecOptions::script(self.container.as_str(), script)
            .timeout(self.timeout)
            .idempotent();
        if let Some(bytes) = stdin {
            opts = opts.stdin(bytes);
        }
        let cmd = self.docker.cli().exec(&opts);
        self.run_command(action, &cmd).await
    }

    /// Runs a read-only script on the VPS itself ([`script::read_on_vps`]): the state
    /// volume read at its mount point, without a `docker exec`.
    async fn run_on_vps(&self, action: &str, script: String) -> Result<Output, StoreError> {
        let cmd = Command::script(script).timeout(self.timeout).idempotent();
        self.run_command(action, &cmd).await
    }

    /// Runs `cmd`; errors unless it exits 0, naming what is missing or stopped.
    async fn run_command(&self, action: &str, cmd: &Command) -> Result<Output, StoreError> {
        let out = self
            .docker
            .executor()
            .run(cmd)
            .await
            .map_err(|source| StoreError::Exec {
                target: self.target(),
                container: self.container.to_string(),
                action: action.to_owned(),
                source,
            })?;
        if out.success() {
            return Ok(out);
        }
        let stderr = out.stderr_text();
        let (target, container) = (self.target(), self.container.to_string());
        let lower = stderr.to_ascii_lowercase();
        Err(if is_no_such_object(&stderr) {
            StoreError::NoStateContainer { target, container }
        } else if lower.contains("is not running") || lower.contains("is restarting") {
            StoreError::StateContainerStopped { target, container }
        } else {
            let lines: Vec<&str> = stderr.trim().lines().collect();
            StoreError::ScriptFailed {
                target,
                container,
                action: action.to_owned(),
                status: out.status,
                stderr: lines[lines.len().saturating_sub(10)..].join("\n"),
            }
        })
    }

    /// Reads entries with the listing `listing(dir)` makes for a directory (a shell word),
    /// run on the VPS against the state volume ([`script::read_on_vps`]).
    async fn list_raw(
        &self,
        action: &str,
        listing: impl Fn(&str) -> String,
    ) -> Result<Vec<RawEntry>, StoreError> {
        let script = script::read_on_vps(self.container.as_str(), listing);
        let out = self.run_on_vps(action, script).await?;
        parse_raw(&out.stdout).map_err(|e| StoreError::Protocol {
            target: self.target(),
            container: self.container.to_string(),
            action: action.to_owned(),
            detail: e.0,
        })
    }

    fn span(&self, op: &'static str) -> tracing::Span {
        tracing::info_span!(
            "host_store",
            op,
            target = %self.target(),
            container = %self.container,
            host_id = tracing::field::Empty,
            agent_id = tracing::field::Empty,
        )
    }

    /// Writes `record` as `host_state/<host_id>.json`, atomically: a reader, a crash or
    /// a dropped connection leaves the old record or the new one, never a mix.
    pub async fn write_host_record(&self, record: &HostRecord) -> Result<(), StoreError> {
        let id = record.host_id();
        let span = self.span("write_host_record");
        span.record("host_id", tracing::field::display(id));
        async {
            let json = record.to_json().map_err(|source| StoreError::Serialize {
                id: id.to_string(),
                source,
            })?;
            let script = script::write_host_record(id, json.len());
            self.run(&format!("writing the record of {id}"), script, Some(json))
                .await
                .map(drop)
        }
        .instrument(span)
        .await
    }

    /// Reads the record of `id`; `Ok(None)` if there is none. A record that exists but is
    /// not valid is an error ([`StoreError::CorruptRecord`]).
    pub async fn read_host_record(&self, id: &HostId) -> Result<Option<HostRecord>, StoreError> {
        let span = self.span("read_host_record");
        span.record("host_id", tracing::field::display(id));
        async {
            let entries = self
                .list_raw(&format!("reading the record of {id}"), |dir| {
                    script::read_host_record_at(dir, id)
                })
                .await?;
            let corrupt = |detail: String| StoreError::CorruptRecord {
                target: self.target(),
                container: self.container.to_string(),
                path: host_record_path(id),
                detail,
            };
            let mut found = None;
            for entry in entries {
                match entry {
                    RawEntry::File {
                        path,
                        content: Some(bytes),
                    } => {
                        let record = host_record_from(&path, &bytes)
                            .map_err(|reason| corrupt(reason.to_string()))?;
                        found = Some(record);
                    }
                    RawEntry::File { content: None, .. } => {
                        return Err(corrupt(SkipReason::Unreadable.to_string()));
                    }
                    RawEntry::NotRegular { .. } => {
                        return Err(corrupt(SkipReason::NotARegularFile.to_string()));
                    }
                    other => {
                        return Err(StoreError::Protocol {
                            target: self.target(),
                            container: self.container.to_string(),
                            action: format!("reading the record of {id}"),
                            detail: format!("unexpected entry {other:?}"),
                        });
                    }
                }
            }
            Ok(found)
        }
        .instrument(span)
        .await
    }

    /// Deletes the record of `id` and all its agent records. Returns whether anything
    /// was there. Deleting again is fine.
    pub async fn delete_host_record(&self, id: &HostId) -> Result<bool, StoreError> {
        let span = self.span("delete_host_record");
        span.record("host_id", tracing::field::display(id));
        self.remove(
            &format!("deleting the record of {id}"),
            script::delete_host(id),
        )
        .instrument(span)
        .await
    }

    async fn remove(&self, action: &str, script: String) -> Result<bool, StoreError> {
        let out = self.run(action, script, None).await?;
        match out.stdout_trimmed().lines().last() {
            Some(script::REMOVED) => Ok(true),
            Some(script::ABSENT) => Ok(false),
            _ => Err(StoreError::Protocol {
                target: self.target(),
                container: self.container.to_string(),
                action: action.to_owned(),
                detail: format!(
                    "expected {} or {}, got {:?}",
                    script::REMOVED,
                    script::ABSENT,
                    out.stdout_trimmed()
                ),
            }),
        }
    }

    /// Lists every host record with its agent records in **one** round trip.
    ///
    /// A corrupt file, a file or directory with an unexpected name, or a record whose
    /// name and id disagree does not fail the listing: it is left out and reported in
    /// [`Listing::skipped`] (and logged), and everything else is returned.
    pub async fn list(&self) -> Result<Listing, StoreError> {
        let span = self.span("list");
        async {
            let entries = self.list_raw("listing host records", script::list_all_at).await?;
            let listing = interpret_all(entries);
            for skipped in &listing.skipped {
                tracing::warn!(entry = %skipped, dir = HOST_STATE_DIR, "skipped an entry of the state directory");
            }
            tracing::debug!(hosts = listing.hosts.len(), skipped = listing.skipped.len(), "listed");
            Ok(listing)
        }
        .instrument(span)
        .await
    }

    /// Writes an agent record as `host_state/<host_id>/<agent_id>.json`, atomically.
    pub async fn persist_agent(
        &self,
        host: &HostId,
        agent: &AgentRecord,
    ) -> Result<(), StoreError> {
        let span = self.span("persist_agent");
        span.record("host_id", tracing::field::display(host));
        span.record("agent_id", tracing::field::display(&agent.id));
        async {
            let json = agent.to_json().map_err(|source| StoreError::Serialize {
                id: agent.id.to_string(),
                source,
            })?;
            let script = script::write_agent_record(host, &agent.id, json.len());
            self.run(
                &format!("writing agent {} of {host}", agent.id),
                script,
                Some(json),
            )
            .await
            .map(drop)
        }
        .instrument(span)
        .await
    }

    /// Lists the agent records of `host` (corrupt ones are skipped and reported).
    pub async fn list_agents(&self, host: &HostId) -> Result<AgentListing, StoreError> {
        let span = self.span("list_agents");
        span.record("host_id", tracing::field::display(host));
        async {
            let entries = self
                .list_raw(&format!("listing the agents of {host}"), |dir| {
                    script::list_agents_at(dir, host)
                })
                .await?;
            let listing = interpret_agents(entries);
            for skipped in &listing.skipped {
                tracing::warn!(entry = %skipped, "skipped an agent record");
            }
            Ok(listing)
        }
        .instrument(span)
        .await
    }

    /// Removes one agent record. Returns whether it was there.
    pub async fn remove_agent(&self, host: &HostId, agent: &AgentId) -> Result<bool, StoreError> {
        let span = self.span("remove_agent");
        span.record("host_id", tracing::field::display(host));
        span.record("agent_id", tracing::field::display(agent));
        self.remove(
            &format!("removing {}", agent_record_path(host, agent)),
            script::remove_agent(host, agent),
        )
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests;

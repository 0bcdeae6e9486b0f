//! Hibernation: a host whose VPS is replaced by a provider-level snapshot, so that nothing
//! but the snapshot's storage is billed, and waking it into a new VPS.
//!
//! The snapshot's description ([`HibernationLabel`]) names the provider instance, the
//! host's id and name, and the region, plan and OS of its VPS, so any machine that lists the
//! account's snapshots sees the host (as [`HostStatus::Hibernated`]) and can wake it.
//! A snapshot whose host still has an instance is not a hibernated host: that is a
//! hibernate still under way, or a wake that has not finished; the instance wins.
//!
//! Order of the steps, so that a failure leaves the host running or hibernated:
//! - hibernate: stop the container, take the snapshot, wait until the provider says it is
//!   complete, and only then destroy the instance (a failure before that starts the
//!   container again and deletes the unfinished snapshot);
//! - wake: order a new instance from the snapshot (new user_data, a new first host key,
//!   rotated and pinned as at create), start the container that the snapshot's disk
//!   carries, connect to it with its pinned key, write the record, and only then delete the
//!   snapshot (a failure before that destroys the new instance: still hibernated).
//!
//! The uploaded SSH key stays registered while the host sleeps (it is looked up by name at
//! wake); the host's keys and pins on this machine are needed to wake it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{Command, Docker, Executor, generate_ed25519, public_key_line};
use host_store::{HostStore, Timestamp};
use tokio::time::Instant;
use vps_client::{SnapshotInfo, SnapshotStatus};
use vps_primitives::{
    HostId, HostName, OsId, PlanId, ProviderName, RegionId, Tag, VpsInstanceStatus, VpsSnapshotId,
};

use crate::error::{ProviderError, StepError};
use crate::host::{Host, HostInfo, HostStatus};
use crate::plan;
use crate::provider::{
    Found, InstanceOrder, VpsChoice, VpsDockerProvider, connect_until, record_container,
    wait_cloud_init,
};
use crate::rollback::{Rollback, Undo};
use crate::step::{Cancel, Phases, Progress, Step, run_step};

/// How long a hibernate waits for the provider to finish the snapshot (a cloud copies the
/// whole disk; minutes to an hour).
pub const HIBERNATE_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// First word of a hibernation snapshot's description.
pub const HIBERNATION_PREFIX: &str = "mngr-hibernated";

/// What a hibernation snapshot's description says: one line of `key=value` words after
/// [`HIBERNATION_PREFIX`], every value a validated token without spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HibernationLabel {
    /// The provider instance that hibernated the host.
    pub provider: ProviderName,
    /// The host.
    pub host: HostId,
    /// Its name.
    pub name: HostName,
    /// The VPS's region.
    pub region: RegionId,
    /// The VPS's plan.
    pub plan: PlanId,
    /// The VPS's OS image (not used by a create from a snapshot; kept for the request).
    pub os: OsId,
}

impl HibernationLabel {
    /// The description.
    pub fn render(&self) -> String {
        format!(
            "{HIBERNATION_PREFIX} provider={} host={} name={} region={} plan={} os={}",
            self.provider, self.host, self.name, self.region, self.plan, self.os.0
        )
    }

    /// Reads a description; `None` if it is not one of ours (or is damaged).
    pub fn parse(description: &str) -> Option<Self> {
        let mut words = description.split_whitespace();
        if words.next()? != HIBERNATION_PREFIX {
            return None;
        }
        let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        Some(Self {
            provider: ProviderName::parse(fields.get("provider")?).ok()?,
            host: HostId::parse(fields.get("host")?).ok()?,
            name: HostName::parse(fields.get("name")?).ok()?,
            region: RegionId::parse(fields.get("region")?).ok()?,
            plan: PlanId::parse(fields.get("plan")?).ok()?,
            os: OsId(fields.get("os")?.parse().ok()?),
        })
    }
}

/// A hibernated host: the snapshot to wake it from, and every hibernation snapshot of it
/// (older ones are left by a wake that could not delete them).
pub(crate) struct Hibernated {
    pub(crate) info: HostInfo,
    pub(crate) label: HibernationLabel,
    pub(crate) snapshot: SnapshotInfo,
    pub(crate) all: Vec<VpsSnapshotId>,
}

/// Groups hibernation snapshots by host: the one to wake from (the newest complete one,
/// else the newest), and all of them.
fn by_host(
    snapshots: Vec<(SnapshotInfo, HibernationLabel)>,
) -> BTreeMap<HostId, (SnapshotInfo, HibernationLabel, Vec<VpsSnapshotId>)> {
    let mut out: BTreeMap<HostId, (SnapshotInfo, HibernationLabel, Vec<VpsSnapshotId>)> =
        BTreeMap::new();
    let rank = |s: &SnapshotInfo| {
        (
            s.status == SnapshotStatus::Complete,
            s.created_at.clone().unwrap_or_default(),
        )
    };
    for (snapshot, label) in snapshots {
        match out.get_mut(&label.host) {
            None => {
                let ids = vec![snapshot.id.clone()];
                out.insert(label.host.clone(), (snapshot, label, ids));
            }
            Some(entry) => {
                entry.2.push(snapshot.id.clone());
                if rank(&snapshot) > rank(&entry.0) {
                    entry.0 = snapshot;
                    entry.1 = label;
                }
            }
        }
    }
    out
}

fn hibernated_info(label: &HibernationLabel, snapshot: &SnapshotInfo) -> HostInfo {
    HostInfo::seen(
        label.host.clone(),
        Some(label.name.clone()),
        label.provider.clone(),
        HostStatus::Hibernated {
            snapshot: snapshot.id.clone(),
        },
    )
}

impl VpsDockerProvider {
    /// The account's hibernation snapshots made by this provider instance.
    pub(crate) async fn hibernation_snapshots(
        &self,
    ) -> Result<Vec<(SnapshotInfo, HibernationLabel)>, ProviderError> {
        let all =
            self.inner
                .client
                .list_snapshots()
                .await
                .map_err(|source| ProviderError::Provider {
                    what: "listing the provider's snapshots (for hibernated hosts)",
                    source: Box::new(source),
                })?;
        Ok(all
            .into_iter()
            .filter_map(|s| {
                let label = HibernationLabel::parse(&s.description)?;
                (label.provider == self.inner.name).then_some((s, label))
            })
            .collect())
    }

    /// Adds the hibernated hosts to `hosts` (those listed from instances): hosts whose
    /// hibernation snapshot exists and that have no instance.
    /// `snapshots`: [`hibernation_snapshots`](Self::hibernation_snapshots), which a
    /// listing asks for while it reads the VPSes.
    pub(crate) fn add_hibernated(
        hosts: &mut Vec<HostInfo>,
        snapshots: Vec<(SnapshotInfo, HibernationLabel)>,
    ) {
        let live: BTreeSet<HostId> = hosts.iter().map(|h| h.id.clone()).collect();
        for (id, (snapshot, label, _)) in by_host(snapshots) {
            if !live.contains(&id) {
                hosts.push(hibernated_info(&label, &snapshot));
            }
        }
    }

    /// The hibernated host `name_or_id`, if there is one (a host with an instance is not).
    pub(crate) async fn hibernated(
        &self,
        name_or_id: &str,
    ) -> Result<Option<Hibernated>, ProviderError> {
        let groups = by_host(self.hibernation_snapshots().await?);
        let Some((snapshot, label, all)) = groups
            .into_values()
            .find(|(_, l, _)| l.host.as_str() == name_or_id || l.name.as_str() == name_or_id)
        else {
            return Ok(None);
        };
        let provider = self.provider_tag();
        let instances = self
            .inner
            .client
            .list_instances(Some(&Tag::host_id(&label.host)))
            .await
            .map_err(|source| ProviderError::Provider {
                what: "looking up the host's instance",
                source: Box::new(source),
            })?;
        if instances.iter().any(|i| i.tags.contains(&provider)) {
            return Ok(None);
        }
        Ok(Some(Hibernated {
            info: hibernated_info(&label, &snapshot),
            label,
            snapshot,
            all,
        }))
    }

    /// The error for a host that has no instance: [`ProviderError::Hibernated`] if it
    /// sleeps in a snapshot, else [`ProviderError::HostNotFound`].
    pub(crate) async fn missing(&self, name_or_id: &str) -> ProviderError {
        match self.hibernated(name_or_id).await {
            Ok(Some(h)) => ProviderError::Hibernated {
                host: h.info.display_name(),
                snapshot: h.snapshot.id,
            },
            Ok(None) => ProviderError::HostNotFound(name_or_id.to_owned()),
            Err(e) => e,
        }
    }

    /// Hibernates a host: stops its container, takes a provider snapshot of its VPS, waits
    /// until the provider says it is complete, then destroys the instance. The host then
    /// lists as [`HostStatus::Hibernated`] from any machine. A failure before the instance
    /// is destroyed starts the container again (if it ran) and deletes the snapshot.
    pub async fn hibernate_host(
        &self,
        name_or_id: &str,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<HostInfo, ProviderError> {
        let found = self.find(name_or_id).await.map_err(|e| match e {
            ProviderError::Hibernated { host, .. } => ProviderError::WrongState {
                host,
                state: "hibernated".into(),
                hint: "it is hibernated already; `mngr-vps wake` brings it back",
            },
            other => other,
        })?;
        self.hibernate_found(found, progress, cancel).await
    }

    /// [`Self::hibernate_host`] of a host already looked up (the idle sweep checks what it
    /// found first).
    pub(crate) async fn hibernate_found(
        &self,
        found: Found,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<HostInfo, ProviderError> {
        let host = found.info.display_name();
        let (vps, record) = self.vps_of(&found)?;
        let err = |step, source| ProviderError::Step {
            host: host.clone(),
            step,
            source,
        };
        let Some(config) = record.config.clone() else {
            return Err(err(
                Step::VpsSnapshot,
                StepError::Check("the host record has no VPS config".into()),
            ));
        };
        let label = HibernationLabel {
            provider: self.inner.name.clone(),
            host: record.host_id().clone(),
            name: record.certified_host_data.host_name.clone(),
            region: config.region.clone(),
            plan: config.plan.clone(),
            os: config.os_id,
        };
        let docker = Docker::new(Arc::new(vps.clone()));
        let container = record_container(&record);
        let mut phases = Phases::default();
        let was_running = docker.is_running(&container).await.unwrap_or(false);
        let stopped = run_step(Step::StopContainer, progress, cancel, &mut phases, async {
            docker.stop(&container, Duration::from_secs(60)).await?;
            // What the container wrote is on the disk before the provider copies it.
            vps.run_checked(&Command::argv(["sync"])).await?;
            Ok(())
        })
        .await;
        if let Err(e) = stopped {
            self.restart_after_failure(&docker, &container, was_running)
                .await;
            vps.close().await;
            return Err(err(Step::StopContainer, e));
        }
        let client = &self.inner.client;
        let mut snapshot = None;
        let taken = async {
            let id = run_step(Step::VpsSnapshot, progress, cancel, &mut phases, async {
                Ok(client
                    .create_snapshot(&found.instance, &label.render())
                    .await?)
            })
            .await
            .map_err(|e| (Step::VpsSnapshot, e))?;
            snapshot = Some(id.clone());
            run_step(
                Step::WaitSnapshot,
                progress,
                cancel,
                &mut phases,
                self.wait_snapshot_complete(&id, HIBERNATE_SNAPSHOT_TIMEOUT),
            )
            .await
            .map_err(|e| (Step::WaitSnapshot, e))?;
            Ok::<_, (Step, StepError)>(id)
        }
        .await;
        let snapshot_id = match taken {
            Ok(id) => id,
            Err((step, e)) => {
                if let Some(id) = &snapshot
                    && let Err(cleanup) = client.delete_snapshot(id).await
                {
                    tracing::warn!(%host, snapshot = %id, error = %cleanup, "could not delete the unfinished snapshot");
                }
                self.restart_after_failure(&docker, &container, was_running)
                    .await;
                vps.close().await;
                return Err(err(step, e));
            }
        };
        vps.close().await;
        if let Err(e) = client.destroy_instance(&found.instance).await {
            // The snapshot is complete, but the VPS is still there and still billed.
            let vps_again = self.vps_of(&found).ok();
            if let Some((pool, _)) = &vps_again {
                let docker = Docker::new(Arc::new(pool.clone()));
                self.restart_after_failure(&docker, &container, was_running)
                    .await;
                pool.close().await;
            }
            let _ = client.delete_snapshot(&snapshot_id).await;
            return Err(err(Step::DestroyInstance, e.into()));
        }
        // Older hibernation snapshots of this host (left by a wake) are stale now.
        if let Ok(mine) = self.hibernation_snapshots().await {
            for (s, l) in mine {
                if l.host == label.host
                    && s.id != snapshot_id
                    && let Err(e) = client.delete_snapshot(&s.id).await
                {
                    tracing::warn!(%host, snapshot = %s.id, error = %e, "could not delete a stale hibernation snapshot");
                }
            }
        }
        tracing::info!(%host, snapshot = %snapshot_id, "host hibernated");
        let info = hibernated_info(
            &label,
            &SnapshotInfo {
                id: snapshot_id,
                description: label.render(),
                status: SnapshotStatus::Complete,
                created_at: None,
            },
        );
        Ok(info)
    }

    async fn restart_after_failure(&self, docker: &Docker, container: &str, was_running: bool) {
        if was_running && let Err(e) = docker.start(container).await {
            tracing::warn!(%container, error = %e, "could not start the container again after a failed hibernate");
        }
    }

    /// Polls the provider until snapshot `id` is complete.
    async fn wait_snapshot_complete(
        &self,
        id: &VpsSnapshotId,
        timeout: Duration,
    ) -> Result<(), StepError> {
        let deadline = Instant::now() + timeout;
        let mut delays =
            vps_primitives::Backoff::new(Duration::from_millis(500), Duration::from_secs(5))
                .with_jitter(0.2)
                .delays();
        loop {
            match self.inner.client.list_snapshots().await {
                Ok(listed) => match listed.iter().find(|s| &s.id == id) {
                    Some(s) if s.status == SnapshotStatus::Complete => return Ok(()),
                    Some(_) => {}
                    None => {
                        return Err(StepError::Check(format!(
                            "the provider no longer lists snapshot {id} (it failed or was deleted)"
                        )));
                    }
                },
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "listing snapshots failed; retrying");
                }
                Err(e) => return Err(e.into()),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(delay) = delays.next_within(remaining) else {
                return Err(StepError::Timeout {
                    secs: timeout.as_secs_f64(),
                });
            };
            tokio::time::sleep(delay).await;
        }
    }

    /// Wakes a hibernated host: a new instance from its snapshot, with new user_data and a
    /// new pinned host key; the container its disk carries is started and reached with its
    /// pinned key; the record is updated; then the snapshot is deleted. Waking a host that
    /// is not hibernated is [`ProviderError::WrongState`] (or
    /// [`ProviderError::HostNotFound`]) and creates nothing. On a failure the new instance
    /// is destroyed and the host stays hibernated ([`ProviderError::Wake`]).
    pub async fn wake_host(
        &self,
        name_or_id: &str,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Host, ProviderError> {
        let Some(sleeping) = self.hibernated(name_or_id).await? else {
            let found = self.find(name_or_id).await?;
            return Err(ProviderError::WrongState {
                host: found.info.display_name(),
                state: found.info.status.to_string(),
                hint: "only a hibernated host can be woken",
            });
        };
        let host = sleeping.info.display_name();
        if sleeping.snapshot.status != SnapshotStatus::Complete {
            return Err(ProviderError::WrongState {
                host,
                state: "hibernating".into(),
                hint: "its VPS snapshot is not complete yet; try again later",
            });
        }
        let host_keys = self.inner.keys.host(&sleeping.label.host);
        let keys = host_keys.load().map_err(|e| ProviderError::Step {
            host: host.clone(),
            step: Step::Lookup,
            source: e.into(),
        })?;
        host_keys.container_pin().map_err(|e| ProviderError::Step {
            host: host.clone(),
            step: Step::Lookup,
            source: e.into(),
        })?;
        tracing::info!(%host, snapshot = %sleeping.snapshot.id, "waking host");
        let mut rollback = Rollback::default();
        let mut phases = Phases::default();
        let result = self
            .wake_steps(
                &sleeping,
                &keys,
                &mut rollback,
                &mut phases,
                progress,
                cancel,
            )
            .await;
        match result {
            Ok(mut handle) => {
                handle.phases = phases;
                // Only now, with the host answering, the snapshot goes (and any stale one).
                for id in &sleeping.all {
                    if let Err(e) = self.inner.client.delete_snapshot(id).await {
                        let message = format!(
                            "the host is awake, but its hibernation snapshot {id} could not be deleted (it is still billed; delete it by hand): {e}"
                        );
                        tracing::warn!(%host, "{message}");
                        progress.warning(&message);
                        handle.warnings.push(message);
                    }
                }
                tracing::info!(%host, "host woken");
                Ok(handle)
            }
            Err((step, source)) => {
                tracing::warn!(%host, %step, error = %source, "wake failed; removing the new VPS");
                let rollback_failures = rollback.unwind(&self.inner.client).await;
                Err(ProviderError::Wake {
                    host,
                    step,
                    source,
                    rollback_failures,
                })
            }
        }
    }

    async fn wake_steps(
        &self,
        sleeping: &Hibernated,
        keys: &crate::keys::ClientKeys,
        rollback: &mut Rollback,
        phases: &mut Phases,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Host, (Step, StepError)> {
        let config = &self.inner.config;
        let client = &self.inner.client;
        let label = &sleeping.label;
        let id = &label.host;
        let host_keys = self.inner.keys.host(id);
        let port = config.container_ssh_port;
        macro_rules! step {
            ($step:expr, $body:expr) => {
                run_step($step, progress, cancel, phases, $body)
                    .await
                    .map_err(|e| ($step, e))?
            };
        }

        // The VPS's first host key, for the new user_data only; pinned until rotated.
        let first_host_key = step!(Step::GenerateKeys, async {
            let first = generate_ed25519().map_err(crate::keys::KeyStoreError::from)?;
            host_keys.pin_vps(first.public_key())?;
            Ok(first)
        });

        // The key uploaded at create stays while the host sleeps; upload it again if gone.
        let key_name = plan::ssh_key_name(&self.inner.name, id);
        let vps_public = public_key_line(keys.vps.public_key());
        let key_id = step!(Step::UploadKey, async {
            let existing = client
                .list_ssh_keys()
                .await?
                .into_iter()
                .find(|k| k.name == key_name);
            Ok(match existing {
                Some(k) => (k.id, false),
                None => (client.upload_ssh_key(&key_name, &vps_public).await?, true),
            })
        });
        if key_id.1 {
            rollback.push(Undo::DeleteKey(key_id.0.clone()));
        }
        let key_id = key_id.0;

        let choice = VpsChoice {
            region: label.region.clone(),
            plan: label.plan.clone(),
            os: label.os,
        };
        let instance = self
            .order_instance(
                &InstanceOrder {
                    id,
                    name: &label.name,
                    vps: &choice,
                    snapshot: Some(sleeping.snapshot.id.clone()),
                    first_host_key: &first_host_key,
                    vps_public: &vps_public,
                    key_id: &key_id,
                },
                rollback,
                phases,
                progress,
                cancel,
            )
            .await?;

        let (vps_addr, vps, rotated) = self
            .boot_vps(
                &instance,
                keys,
                &host_keys,
                &first_host_key,
                phases,
                progress,
                cancel,
            )
            .await?;
        step!(
            Step::WaitCloudInit,
            wait_cloud_init(&vps, self.inner.config.docker_install())
        );
        let vps_exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(vps_exec.clone());

        // The snapshot's disk carries the state container, the record, the container and
        // its volume.
        let (store, mut record) = step!(Step::StateContainer, async {
            let (store, _) = HostStore::ensure(vps_exec.clone(), &self.state_spec()?).await?;
            let record = store.read_host_record(id).await?.ok_or_else(|| {
                StepError::Check("the snapshot's disk holds no record of the host".into())
            })?;
            Ok((store, record))
        });
        let container = record_container(&record);
        step!(Step::StartContainer, async {
            if docker.inspect_container(&container).await?.is_none() {
                return Err(StepError::Check(format!(
                    "the snapshot's disk holds no container {container}"
                )));
            }
            docker.start(&container).await?;
            Ok(())
        });

        // Its sshd's host key came back with it: the pin still holds.
        let (container_addr, container_pool) = step!(Step::ConnectContainer, async {
            let addr = client.socket_addr(&instance, port).await?;
            let pool = self.pool(
                addr,
                keys.container.clone(),
                host_keys.container_pin()?,
                config.ssh_connect(),
            );
            connect_until(&pool, Instant::now() + config.ssh_connect()).await?;
            Ok((addr, pool))
        });

        let container_key = host_keys
            .container_pin()
            .map_err(|e| (Step::WriteRecord, e.into()))?;
        record.vps_ip = Some(vps_addr.ip());
        record.set_host_keys(Some(&rotated), Some(&container_key));
        if let Some(c) = record.config.as_mut() {
            c.vps_instance_id = instance.clone();
            c.vps_ssh_key_id = Some(key_id);
        }
        record.certified_host_data.stop_reason = None;
        record.certified_host_data.updated_at = Timestamp::now();
        step!(Step::WriteRecord, async {
            Ok(store.write_host_record(&record).await?)
        });

        let data = &record.certified_host_data;
        let info = HostInfo {
            id: id.clone(),
            name: Some(data.host_name.clone()),
            provider: self.inner.name.clone(),
            status: HostStatus::Running,
            instance_id: Some(instance),
            instance_status: Some(VpsInstanceStatus::Active),
            vps_ssh: Some(vps_addr),
            container_ssh: Some(container_addr),
            image: data.image.clone(),
            tags: data.user_tags.clone(),
            created_at: Some(data.created_at.to_string()),
            idle_mode: Some(data.idle_mode()),
            idle_timeout_seconds: Some(data.idle_timeout_seconds),
            record: Some(record.clone()),
        };
        Ok(self.host_handle(info, &host_keys, container_pool, vps, Vec::new()))
    }

    /// Destroys a hibernated host: its snapshots, its uploaded key, its local keys and pins.
    pub(crate) async fn destroy_hibernated(
        &self,
        name_or_id: &str,
    ) -> Result<HostId, ProviderError> {
        let Some(sleeping) = self.hibernated(name_or_id).await? else {
            return Err(ProviderError::HostNotFound(name_or_id.to_owned()));
        };
        let host = sleeping.info.display_name();
        let id = sleeping.label.host.clone();
        let client = &self.inner.client;
        let mut left = Vec::new();
        for snapshot in &sleeping.all {
            if let Err(e) = client.delete_snapshot(snapshot).await {
                left.push(format!("provider snapshot {snapshot} ({e})"));
            }
        }
        let key_name = plan::ssh_key_name(&self.inner.name, &id);
        match client.list_ssh_keys().await {
            Ok(keys) => {
                for key in keys.into_iter().filter(|k| k.name == key_name) {
                    if let Err(e) = client.delete_ssh_key(&key.id).await {
                        left.push(format!("uploaded SSH key {} ({e})", key.id));
                    }
                }
            }
            Err(e) => left.push(format!(
                "uploaded SSH key {key_name} (could not list keys: {e})"
            )),
        }
        if left.is_empty()
            && let Err(e) = self.inner.keys.host(&id).remove()
        {
            left.push(format!("local keys ({e})"));
        }
        if left.is_empty() {
            tracing::info!(%host, %id, "hibernated host destroyed");
            Ok(id)
        } else {
            Err(ProviderError::DestroyIncomplete { host, left })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> HibernationLabel {
        HibernationLabel {
            provider: ProviderName::parse("local").expect("provider"),
            host: HostId::parse("host-0123456789abcdef0123456789abcdef").expect("id"),
            name: HostName::parse("my-agent").expect("name"),
            region: RegionId::parse("ewr").expect("region"),
            plan: PlanId::parse("vc2-1c-1gb").expect("plan"),
            os: OsId(2136),
        }
    }

    #[test]
    fn the_description_round_trips_and_strangers_are_ignored() {
        let l = label();
        insta::assert_snapshot!("hibernation_label", l.render());
        assert_eq!(HibernationLabel::parse(&l.render()), Some(l.clone()));
        assert_eq!(HibernationLabel::parse("nightly backup"), None);
        assert_eq!(HibernationLabel::parse(""), None);
        let damaged = l.render().replace("host=host-", "host=nope-");
        assert_eq!(HibernationLabel::parse(&damaged), None);
        let no_os = l.render().replace(" os=2136", "");
        assert_eq!(HibernationLabel::parse(&no_os), None);
    }

    #[test]
    fn the_newest_complete_snapshot_is_the_one_to_wake_from() {
        let l = label();
        let snap = |id: &str, status, at: &str| SnapshotInfo {
            id: VpsSnapshotId::parse(id).expect("id"),
            description: l.render(),
            status,
            created_at: Some(at.into()),
        };
        let groups = by_host(vec![
            (
                snap("old", SnapshotStatus::Complete, "2026-01-01T00:00:00Z"),
                l.clone(),
            ),
            (
                snap("new", SnapshotStatus::Complete, "2026-02-01T00:00:00Z"),
                l.clone(),
            ),
            (
                snap("pending", SnapshotStatus::Pending, "2026-03-01T00:00:00Z"),
                l.clone(),
            ),
        ]);
        let (chosen, _, all) = &groups[&l.host];
        assert_eq!(chosen.id.as_str(), "new");
        assert_eq!(all.len(), 3);
    }
}

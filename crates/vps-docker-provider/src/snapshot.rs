//! Container snapshots: what one holds, taking one, listing and deleting them, and
//! starting a host (or creating a new one) from one.
//!
//! A snapshot is **one image** on the host's VPS, `mngr-snapshot-<host hex>:<time>`:
//! - its lower layer is `docker commit` of the host container: the container's whole
//!   filesystem except what is mounted into it;
//! - its top layer holds a copy of the host volume (`/mngr-vol`, which `host_dir` links to)
//!   at [`SNAPSHOT_VOLUME_DIR`], copied with the container paused, so the two agree.
//!
//! It does not hold processes or memory, other volumes or bind mounts given in start args,
//! the host record (the snapshot is listed *in* it) or the host's keys. Restoring replaces
//! the container (a new one from the image, with the host's current start args, labels,
//! keys and sshd files) and the volume (a new volume filled from the copy); the old
//! container and volume are removed only once the new container answers over SSH.
//!
//! Because a snapshot is one image, a new host on another VPS starts from it after one
//! `docker save | docker load` between the two VPSes over the pooled SSH connections.

use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{
    Command, CommitOptions, Docker, Executor, PullPolicy, RunOptions, SshPool, VolumeMount, quote,
};
use host_store::{HostRecord, SnapshotRecord, Timestamp};
use serde::Serialize;
use tokio::time::Instant;
use vps_primitives::{HostId, LABEL_HOST_ID, host_volume_name};

use crate::error::{ProviderError, StepError};
use crate::host::{Host, HostStatus};
use crate::plan::{self, ContainerSpec, MNGR_ETC};
use crate::provider::{
    VpsDockerProvider, connect_until, install_container_files, record_container, setup_container,
};
use crate::step::Step;

/// Where a snapshot image keeps its copy of the host volume.
pub const SNAPSHOT_VOLUME_DIR: &str = "/.mngr-snapshot/volume";

/// The record entry's extra field naming the snapshot's image tag.
const IMAGE_FIELD: &str = "image";

/// Limit of each copy (commit, volume copy) of a snapshot.
const COPY_TIMEOUT: Duration = Duration::from_secs(1800);

/// One container snapshot of a host, as its record lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerSnapshot {
    /// The image id (`sha256:…`).
    pub id: String,
    /// Its name (unique within the host).
    pub name: String,
    /// The image reference on the VPS (the tag; the id for entries written by upstream).
    pub image: String,
    /// When it was taken.
    pub created_at: String,
}

impl ContainerSnapshot {
    fn of(entry: &SnapshotRecord) -> Self {
        Self {
            id: entry.id.clone(),
            name: entry.name.clone(),
            image: entry
                .extra
                .get(IMAGE_FIELD)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| entry.id.clone()),
            created_at: entry.created_at.clone(),
        }
    }

    /// Whether `key` names it: its id (with or without `sha256:`), name or image.
    pub fn matches(&self, key: &str) -> bool {
        self.id == key
            || self.id.strip_prefix("sha256:") == Some(key)
            || self.name == key
            || self.image == key
    }
}

/// A container snapshot of another host, for a new host to start from
/// ([`crate::CreateHostRequest::snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSource {
    /// The host that has the snapshot (name or id).
    pub host: String,
    /// The snapshot (id, name or image).
    pub snapshot: String,
}

/// A resolved [`SnapshotSource`]: where its image is, and the image.
pub(crate) struct SnapshotOrigin {
    pub(crate) pool: SshPool,
    pub(crate) docker: Docker,
    pub(crate) image: String,
}

/// The snapshots a record lists, oldest first.
pub(crate) fn snapshots_of(record: &HostRecord) -> Vec<ContainerSnapshot> {
    record
        .certified_host_data
        .snapshots
        .iter()
        .map(ContainerSnapshot::of)
        .collect()
}

/// The image tag of a snapshot taken at `at`.
pub(crate) fn snapshot_tag(id: &HostId, at: &Timestamp) -> String {
    let t = at.datetime();
    format!(
        "mngr-snapshot-{}:{}-{:06}",
        id.hex(),
        t.unix_timestamp(),
        t.microsecond()
    )
}

/// Upstream's default name: `mngr-snapshot-<host id>-<unix seconds>`.
fn default_name(id: &HostId, at: &Timestamp) -> String {
    format!("mngr-snapshot-{id}-{}", at.datetime().unix_timestamp())
}

/// What is wrong with a snapshot name, if anything.
fn name_problem(name: &str) -> Option<String> {
    (name.is_empty() || name.len() > 128 || name.chars().any(char::is_control)).then(|| {
        format!("snapshot name {name:?} must be 1 to 128 characters without control characters")
    })
}

/// Copies the host volume (mounted read-only at `/from`) into [`SNAPSHOT_VOLUME_DIR`].
pub fn capture_volume_script() -> String {
    let dir = quote(SNAPSHOT_VOLUME_DIR);
    format!(
        "set -e\n\
         rm -rf {parent}\n\
         mkdir -p {dir}\n\
         cp -a /from/. {dir}/\n",
        parent = quote("/.mngr-snapshot"),
    )
}

/// Copies a snapshot's volume copy into the (new, empty) volume mounted at `/to`.
pub fn restore_volume_script() -> String {
    let dir = quote(SNAPSHOT_VOLUME_DIR);
    format!(
        "set -e\n\
         if [ ! -d {dir} ]; then echo 'mngr: this snapshot holds no copy of the host volume (taken by another tool?)' >&2; exit 3; fi\n\
         cp -a {dir}/. /to/\n"
    )
}

/// A one-off container of `image` running `script` as root, without network, with
/// `volume` at `target`.
fn helper_options(
    image: &str,
    name: &str,
    host: &HostId,
    volume: VolumeMount,
    script: String,
) -> RunOptions {
    RunOptions::new(image, name)
        .volume(volume)
        .label(LABEL_HOST_ID, host.as_str())
        .pull(PullPolicy::Never)
        .timeout(COPY_TIMEOUT)
        .extra_args(["--user", "0:0", "--network", "none"])
        .shell_entrypoint(script)
}

/// Fills `volume` from snapshot `image`'s copy of the host volume.
pub(crate) async fn restore_volume(
    docker: &Docker,
    image: &str,
    volume: &str,
    host: &HostId,
) -> Result<(), StepError> {
    let name = format!("mngr-restore-helper-{}", host.hex());
    docker.rm(&name, true).await?;
    let options = helper_options(
        image,
        &name,
        host,
        VolumeMount::new(volume, "/to"),
        restore_volume_script(),
    )
    .auto_remove();
    docker.run_attached(&options).await?;
    Ok(())
}

/// `docker rename`.
async fn rename(docker: &Docker, from: &str, to: &str) -> Result<(), StepError> {
    docker
        .checked(&Command::argv(["docker", "rename", from, to]))
        .await?;
    Ok(())
}

impl VpsDockerProvider {
    /// Takes a container snapshot of a host (running or stopped): see the [module
    /// docs](crate#container-snapshots) for what it holds. The entry is added to the host
    /// record, read again just before it is written so no other change is lost. A running
    /// container is paused while its filesystem and volume are copied.
    pub async fn create_snapshot(
        &self,
        name_or_id: &str,
        name: Option<&str>,
    ) -> Result<ContainerSnapshot, ProviderError> {
        if let Some(problem) = name.and_then(name_problem) {
            return Err(ProviderError::InvalidInput(problem));
        }
        let found = self.find(name_or_id).await?;
        let host = found.info.display_name();
        let (vps, record) = self.vps_of(&found)?;
        let now = Timestamp::now();
        let id = record.host_id().clone();
        let name = name
            .map(str::to_owned)
            .unwrap_or_else(|| default_name(&id, &now));
        if snapshots_of(&record).iter().any(|s| s.name == name) {
            return Err(ProviderError::InvalidInput(format!(
                "host {host} has a snapshot named {name:?} already; pick another name"
            )));
        }
        let tag = snapshot_tag(&id, &now);
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        let taken = async {
            let volume = record
                .config
                .as_ref()
                .map(|c| c.volume_name.clone())
                .ok_or_else(|| StepError::Check("the host record names no volume".into()))?;
            let image_id = capture(&docker, &record_container(&record), &volume, &tag, &id).await?;
            let store = self.store(exec.clone())?;
            let mut fresh = store
                .read_host_record(&id)
                .await?
                .ok_or_else(|| StepError::Check("the host record vanished".into()))?;
            let mut extra = serde_json::Map::new();
            extra.insert(IMAGE_FIELD.into(), tag.clone().into());
            let entry = SnapshotRecord {
                id: image_id,
                name: name.clone(),
                created_at: now.to_string(),
                extra,
            };
            fresh.certified_host_data.snapshots.push(entry.clone());
            fresh.certified_host_data.updated_at = Timestamp::now();
            store.write_host_record(&fresh).await?;
            Ok::<_, StepError>(ContainerSnapshot::of(&entry))
        }
        .await;
        if taken.is_err()
            && let Err(e) = docker.image_rm(&tag, true).await
        {
            tracing::warn!(%host, error = %e, "could not remove the image of a failed snapshot");
        }
        vps.close().await;
        let snapshot = taken.map_err(|source| ProviderError::Step {
            host: host.clone(),
            step: Step::ContainerSnapshot,
            source,
        })?;
        tracing::info!(%host, snapshot = %snapshot.name, image = %snapshot.image, "snapshot taken");
        Ok(snapshot)
    }

    /// The host's container snapshots, oldest first, from its record.
    pub async fn list_snapshots(
        &self,
        name_or_id: &str,
    ) -> Result<Vec<ContainerSnapshot>, ProviderError> {
        let found = self.find(name_or_id).await?;
        let (vps, record) = self.vps_of(&found)?;
        vps.close().await;
        Ok(snapshots_of(&record))
    }

    /// Deletes a container snapshot: its image on the VPS (untagged only, if a container
    /// still runs from it), then its entry in the record. An image already gone is fine.
    pub async fn delete_snapshot(
        &self,
        name_or_id: &str,
        snapshot: &str,
    ) -> Result<ContainerSnapshot, ProviderError> {
        let found = self.find(name_or_id).await?;
        let host = found.info.display_name();
        let (vps, record) = self.vps_of(&found)?;
        let target =
            find_snapshot(&record, snapshot).ok_or_else(|| snapshot_not_found(&host, snapshot))?;
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        let deleted = async {
            // By reference, forced: an image a container still uses (one started from the
            // snapshot) loses the tag; its layers stay for the container.
            docker.image_rm(&target.image, true).await?;
            let store = self.store(exec.clone())?;
            let id = record.host_id();
            let mut fresh = store
                .read_host_record(id)
                .await?
                .ok_or_else(|| StepError::Check("the host record vanished".into()))?;
            fresh
                .certified_host_data
                .snapshots
                .retain(|e| ContainerSnapshot::of(e) != target);
            fresh.certified_host_data.updated_at = Timestamp::now();
            store.write_host_record(&fresh).await?;
            Ok::<_, StepError>(())
        }
        .await;
        vps.close().await;
        deleted.map_err(|source| ProviderError::Step {
            host,
            step: Step::DeleteSnapshot,
            source,
        })?;
        Ok(target)
    }

    /// Replaces the host's container and volume with those of one of its snapshots, and
    /// returns a handle to the running host. The old container is stopped and kept (renamed)
    /// until the new one answers over SSH; on a failure the new container and volume are
    /// removed and the old container is put back as it was.
    pub async fn start_from_snapshot(
        &self,
        name_or_id: &str,
        snapshot: &str,
    ) -> Result<Host, ProviderError> {
        let found = self.find(name_or_id).await?;
        let host = found.info.display_name();
        let (vps, record) = self.vps_of(&found)?;
        let target =
            find_snapshot(&record, snapshot).ok_or_else(|| snapshot_not_found(&host, snapshot))?;
        let err = |step, source| ProviderError::Step {
            host: host.clone(),
            step,
            source,
        };
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        let id = record.host_id().clone();
        let Some(config) = record.config.clone() else {
            return Err(err(
                Step::RestoreSnapshot,
                StepError::Check("the host record has no VPS config".into()),
            ));
        };
        let now = Timestamp::now();
        let t = now.datetime();
        let volume = format!(
            "{}-{}{:06}",
            host_volume_name(&id),
            t.unix_timestamp(),
            t.microsecond()
        );
        // The new volume, filled from the snapshot.
        let filled = async {
            if !docker.image_exists(&target.image).await? {
                return Err(StepError::Check(format!(
                    "the snapshot's image {} is not on the VPS (removed by hand?)",
                    target.image
                )));
            }
            docker
                .volume_create(&volume, &[(LABEL_HOST_ID.to_owned(), id.to_string())])
                .await?;
            restore_volume(&docker, &target.image, &volume, &id).await
        }
        .await;
        if let Err(e) = filled {
            let _ = docker.volume_rm(&volume).await;
            vps.close().await;
            return Err(err(Step::RestoreSnapshot, e));
        }

        // The old container aside, the new one in its place.
        let container = record_container(&record);
        let aside = format!("{container}-replaced-{}", t.unix_timestamp());
        let was_running = docker.is_running(&container).await.unwrap_or(false);
        let host_keys = self.inner.keys.host(&id);
        let port = self.inner.config.container_ssh_port;
        let data = &record.certified_host_data;
        let spec = ContainerSpec {
            id: &id,
            name: &data.host_name,
            provider: &self.inner.name,
            tags: &data.user_tags,
            image: &target.image,
            volume: &volume,
            ssh_port: port,
            start_args: &config.start_args,
        };
        let mut moved_aside = false;
        let replaced = async {
            let keys = host_keys.load()?;
            docker.stop(&container, Duration::from_secs(60)).await?;
            rename(&docker, &container, &aside).await?;
            moved_aside = true;
            let container_id = docker.create(&plan::container_run_options(&spec)).await?;
            // The host's idle settings, as at create.
            let idle_env = plan::idle_env(
                data.idle_timeout_seconds,
                &data.activity_sources,
                data.max_host_age,
                self.inner.config.idle_check_interval,
            );
            install_container_files(
                &docker,
                &container,
                &self.inner.config.host_dir,
                &keys,
                &idle_env,
            )
            .await?;
            docker.start(&container).await?;
            setup_container(&docker, &container, &self.inner.config.container_packages).await?;
            let addr = self.inner.client.socket_addr(&found.instance, port).await?;
            let pool = self.pool(
                addr,
                keys.container.clone(),
                host_keys.container_pin()?,
                self.inner.config.ssh_connect(),
            );
            connect_until(&pool, Instant::now() + self.inner.config.ssh_connect()).await?;
            let store = self.store(exec.clone())?;
            let mut fresh = store
                .read_host_record(&id)
                .await?
                .ok_or_else(|| StepError::Check("the host record vanished".into()))?;
            if let Some(c) = fresh.config.as_mut() {
                c.volume_name = volume.clone();
            }
            fresh.container_id = Some(container_id);
            fresh.certified_host_data.stop_reason = None;
            fresh.certified_host_data.updated_at = Timestamp::now();
            store.write_host_record(&fresh).await?;
            Ok::<_, StepError>((addr, pool, fresh))
        }
        .await;
        let (addr, pool, fresh) = match replaced {
            Ok(v) => v,
            Err(e) => {
                let left = self
                    .put_back(
                        &docker,
                        &container,
                        &aside,
                        moved_aside,
                        was_running,
                        &volume,
                    )
                    .await;
                vps.close().await;
                let mut e = e;
                if !left.is_empty() {
                    e = StepError::Check(format!(
                        "{e}; putting the old container back failed too: {}",
                        left.join("; ")
                    ));
                }
                return Err(err(Step::RestoreSnapshot, e));
            }
        };
        let mut warnings = Vec::new();
        if let Err(e) = docker.rm(&aside, true).await {
            warnings.push(format!(
                "the replaced container {aside} is left on the VPS: {e}"
            ));
        }
        if let Err(e) = docker.volume_rm(&config.volume_name).await {
            warnings.push(format!(
                "the replaced volume {} is left on the VPS: {e}",
                config.volume_name
            ));
        }
        for w in &warnings {
            tracing::warn!(%host, "{w}");
        }
        tracing::info!(%host, snapshot = %target.name, "started from snapshot");
        let mut info = found.info;
        info.status = HostStatus::Running;
        info.container_ssh = Some(addr);
        info.record = Some(fresh);
        Ok(self.host_handle(info, &host_keys, pool, vps, warnings))
    }

    /// Undoes a failed replacement: removes the new container and volume and puts the old
    /// container back as it was. Returns what could not be undone.
    async fn put_back(
        &self,
        docker: &Docker,
        container: &str,
        aside: &str,
        moved_aside: bool,
        was_running: bool,
        volume: &str,
    ) -> Vec<String> {
        let mut left = Vec::new();
        if moved_aside {
            if let Err(e) = docker.rm(container, true).await {
                left.push(format!("removing the new container: {e}"));
            }
            if let Err(e) = rename(docker, aside, container).await {
                left.push(format!("renaming {aside} back to {container}: {e}"));
            }
        }
        if was_running && let Err(e) = docker.start(container).await {
            left.push(format!("starting {container} again: {e}"));
        }
        if let Err(e) = docker.volume_rm(volume).await {
            left.push(format!("removing the new volume {volume}: {e}"));
        }
        left
    }

    /// Resolves a create's snapshot source: the source host's VPS and the snapshot image.
    pub(crate) async fn snapshot_origin(
        &self,
        source: &crate::snapshot::SnapshotSource,
    ) -> Result<SnapshotOrigin, ProviderError> {
        let found = self.find(&source.host).await?;
        let host = found.info.display_name();
        let (pool, record) = self.vps_of(&found)?;
        let Some(target) = find_snapshot(&record, &source.snapshot) else {
            pool.close().await;
            return Err(snapshot_not_found(&host, &source.snapshot));
        };
        Ok(SnapshotOrigin {
            docker: Docker::new(Arc::new(pool.clone())),
            pool,
            image: target.image,
        })
    }
}

/// The snapshot `key` names in the record.
fn find_snapshot(record: &HostRecord, key: &str) -> Option<ContainerSnapshot> {
    snapshots_of(record).into_iter().find(|s| s.matches(key))
}

fn snapshot_not_found(host: &str, key: &str) -> ProviderError {
    ProviderError::SnapshotNotFound {
        host: host.to_owned(),
        snapshot: key.to_owned(),
    }
}

/// Commits the container and its volume as `tag` (see the module docs); returns the
/// image id. The container is paused meanwhile if it runs.
async fn capture(
    docker: &Docker,
    container: &str,
    volume: &str,
    tag: &str,
    host: &HostId,
) -> Result<String, StepError> {
    let paused = docker.is_running(container).await?;
    if paused {
        docker.pause(container).await?;
    }
    let taken = async {
        docker
            .commit_with(
                &CommitOptions::new(container, tag)
                    .no_pause()
                    .timeout(COPY_TIMEOUT),
            )
            .await?;
        let helper = format!("mngr-snapshot-helper-{}", host.hex());
        // A helper left by an interrupted snapshot.
        docker.rm(&helper, true).await?;
        let copied = docker
            .run_attached(&helper_options(
                tag,
                &helper,
                host,
                VolumeMount::new(volume, "/from").read_only(),
                capture_volume_script(),
            ))
            .await;
        // The helper's entrypoint and command are not the host's: put the host's back.
        let committed = match copied {
            Ok(_) => {
                docker
                    .commit_with(
                        &CommitOptions::new(&helper, tag)
                            .timeout(COPY_TIMEOUT)
                            .change(r#"ENTRYPOINT ["/bin/sh"]"#)
                            .change(format!(r#"CMD ["{MNGR_ETC}/entrypoint.sh"]"#)),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        let removed = docker.rm(&helper, true).await;
        let image = committed?;
        removed?;
        Ok::<_, StepError>(image)
    }
    .await;
    if paused {
        let resumed = docker.unpause(container).await;
        match (&taken, resumed) {
            (Ok(_), Err(e)) => return Err(e.into()),
            (Err(_), Err(e)) => {
                tracing::warn!(error = %e, "could not unpause the container after a failed snapshot")
            }
            _ => {}
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use vps_primitives::HostName;

    #[test]
    fn helper_scripts() {
        insta::assert_snapshot!("capture_volume", capture_volume_script());
        insta::assert_snapshot!("restore_volume", restore_volume_script());
    }

    #[test]
    fn entries_are_found_by_id_name_or_image_and_old_entries_use_the_id() {
        let id = HostId::parse("host-0123456789abcdef0123456789abcdef").expect("id");
        let at = Timestamp::from_datetime(
            time::OffsetDateTime::from_unix_timestamp(1_746_964_800).expect("time"),
        );
        let tag = snapshot_tag(&id, &at);
        assert_eq!(
            tag,
            "mngr-snapshot-0123456789abcdef0123456789abcdef:1746964800-000000"
        );
        assert_eq!(
            default_name(&id, &at),
            "mngr-snapshot-host-0123456789abcdef0123456789abcdef-1746964800"
        );
        let mut data =
            host_store::CertifiedHostData::new(id.clone(), HostName::parse("a").expect("name"), at);
        let mut extra = serde_json::Map::new();
        extra.insert(IMAGE_FIELD.into(), tag.clone().into());
        data.snapshots.push(SnapshotRecord {
            id: "sha256:aaaa".into(),
            name: "mine".into(),
            created_at: at.to_string(),
            extra,
        });
        // An entry upstream wrote: no image field, so the id is the reference.
        data.snapshots.push(SnapshotRecord {
            id: "sha256:bbbb".into(),
            name: "old".into(),
            created_at: at.to_string(),
            extra: serde_json::Map::new(),
        });
        let record = HostRecord::new(data);
        let all = snapshots_of(&record);
        assert_eq!(all[0].image, tag);
        assert_eq!(all[1].image, "sha256:bbbb");
        for key in ["sha256:aaaa", "aaaa", "mine", tag.as_str()] {
            assert_eq!(find_snapshot(&record, key).expect(key).name, "mine");
        }
        assert_eq!(find_snapshot(&record, "nope"), None);
    }

    #[test]
    fn snapshot_names_are_checked() {
        assert_eq!(name_problem("before the refactor"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem("a\nb").is_some());
        assert!(name_problem(&"x".repeat(129)).is_some());
    }
}

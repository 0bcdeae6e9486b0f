//! Snapshots: a committed image of the VPS's disk plus a copy of its `/var/lib/docker`
//! volume, whose labels are the snapshot's record.

use std::time::Duration;

use docker_ssh::{CommitOptions, ContainerInfo, PsFilter, RunOptions, VolumeMount};
use local_vps_images::Image;
use vps_client::{SnapshotInfo, SnapshotStatus, VpsClientError};
use vps_primitives::{VpsInstanceId, VpsSnapshotId};

use super::errors::{engine_error, not_found};
use super::{LocalVpsClient, Names, random_hex};
use crate::labels::{
    INSTANCE_LABEL, KIND_LABEL, Kind, SNAPSHOT_DESCRIPTION_LABEL, SNAPSHOT_IMAGE_LABEL,
    SNAPSHOT_LABEL, SNAPSHOT_SOURCE_LABEL, TAG_PREFIX, TAGS_LABEL,
};

/// Repository of the images committed for snapshots: `mngr-local-vps-snapshot:<snapshot id>`.
pub const SNAPSHOT_REPOSITORY: &str = "mngr-local-vps-snapshot";

/// Long enough to copy a VPS's `/var/lib/docker` or to commit a big container.
const COPY_TIMEOUT: Duration = Duration::from_secs(900);

/// Whether `key` can be written unquoted in a Dockerfile `LABEL` (our own keys can).
fn is_plain_label_key(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl LocalVpsClient {
    pub(super) async fn snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        let c = self.require_instance(id).await?;
        let snapshot =
            VpsSnapshotId::parse(&format!("lvps-snap-{}", random_hex())).map_err(|e| {
                VpsClientError::Backend {
                    message: format!("local-vps: generated an invalid snapshot id: {e}"),
                    source: None,
                }
            })?;
        let image_ref = format!("{SNAPSHOT_REPOSITORY}:{snapshot}");
        let mut labels = self.owned(Kind::Snapshot);
        labels.extend([
            (SNAPSHOT_LABEL.to_owned(), snapshot.to_string()),
            (
                SNAPSHOT_DESCRIPTION_LABEL.to_owned(),
                description.to_owned(),
            ),
            (SNAPSHOT_SOURCE_LABEL.to_owned(), id.to_string()),
            (SNAPSHOT_IMAGE_LABEL.to_owned(), image_ref.clone()),
        ]);
        self.docker
            .volume_create(snapshot.as_str(), &labels)
            .await
            .map_err(|e| engine_error("creating the snapshot's volume", e))?;
        if let Err(e) = self.take_snapshot(&c, id, &snapshot, &image_ref).await {
            let _ = self.docker.image_rm(&image_ref, true).await;
            if let Err(cleanup) = self.docker.volume_rm(snapshot.as_str()).await {
                tracing::error!(error = %cleanup, "could not remove a failed snapshot's volume");
            }
            return Err(e);
        }
        Ok(snapshot)
    }

    pub(super) async fn remove_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        // A copy helper left by an interrupted snapshot would keep the volume in use.
        let helpers: Vec<PsFilter> = self
            .owned(Kind::Helper)
            .into_iter()
            .chain([(SNAPSHOT_LABEL.to_owned(), id.to_string())])
            .map(|(k, v)| PsFilter::label(k, v))
            .collect();
        let left = self
            .docker
            .ps(true, &helpers)
            .await
            .map_err(|e| engine_error(format_args!("listing helpers of snapshot {id}"), e))?;
        for c in &left {
            self.docker
                .rm(&c.id, true)
                .await
                .map_err(|e| engine_error(format_args!("removing a helper of snapshot {id}"), e))?;
        }
        let mut filters = self.owned(Kind::Snapshot);
        filters.push((SNAPSHOT_LABEL.to_owned(), id.to_string()));
        for v in self.volumes(&filters).await? {
            if let Some(image) = v.labels.get(SNAPSHOT_IMAGE_LABEL) {
                self.docker.image_rm(image, true).await.map_err(|e| {
                    engine_error(format_args!("removing the image of snapshot {id}"), e)
                })?;
            }
            self.docker.volume_rm(&v.name).await.map_err(|e| {
                engine_error(format_args!("removing the volume of snapshot {id}"), e)
            })?;
        }
        Ok(())
    }

    pub(super) async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        let mut out = Vec::new();
        for v in self.volumes(&self.owned(Kind::Snapshot)).await? {
            let Some(id) = v
                .labels
                .get(SNAPSHOT_LABEL)
                .and_then(|s| VpsSnapshotId::parse(s).ok())
            else {
                continue;
            };
            // Taken once its image exists; before that (or if taking it was interrupted)
            // the record alone says "being taken".
            let complete = match v.labels.get(SNAPSHOT_IMAGE_LABEL) {
                Some(image) => self
                    .docker
                    .image_exists(image)
                    .await
                    .map_err(|e| engine_error("looking up a snapshot image", e))?,
                None => false,
            };
            out.push(SnapshotInfo {
                id,
                description: v
                    .labels
                    .get(SNAPSHOT_DESCRIPTION_LABEL)
                    .cloned()
                    .unwrap_or_default(),
                status: if complete {
                    SnapshotStatus::Complete
                } else {
                    SnapshotStatus::Pending
                },
                created_at: Some(v.created_at.clone()).filter(|s| !s.is_empty()),
            });
        }
        Ok(out)
    }

    /// The image and the `/var/lib/docker` volume of a snapshot that is complete;
    /// [`VpsClientError::NotFound`] if this account has no such snapshot.
    pub(super) async fn complete_snapshot(
        &self,
        snapshot: &VpsSnapshotId,
    ) -> Result<(String, String), VpsClientError> {
        let mut filters = self.owned(Kind::Snapshot);
        filters.push((SNAPSHOT_LABEL.to_owned(), snapshot.to_string()));
        let record = self
            .volumes(&filters)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not_found("snapshot", snapshot))?;
        let image = record
            .labels
            .get(SNAPSHOT_IMAGE_LABEL)
            .cloned()
            .ok_or_else(|| {
                VpsClientError::InvalidResponse(format!(
                    "local-vps: snapshot {snapshot}'s record names no image"
                ))
            })?;
        let complete = self
            .docker
            .image_exists(&image)
            .await
            .map_err(|e| engine_error("looking up the snapshot's image", e))?;
        if !complete {
            return Err(VpsClientError::Api {
                status: 409,
                message: format!(
                    "snapshot {snapshot} is not complete (being taken, or taking it was interrupted)"
                ),
            });
        }
        Ok((image, record.name))
    }

    /// Copies volume `from` into volume `to` (ownership, modes, xattrs such as overlayfs'
    /// `trusted.*` ones) with a throwaway container of `base`, without network.
    pub(super) async fn copy_volume(
        &self,
        base: &str,
        from: &str,
        to: &str,
        purpose: (&str, &str),
        what: &str,
    ) -> Result<(), VpsClientError> {
        let mut copy = RunOptions::new(base, format!("{to}-copy-{}", random_hex()))
            .auto_remove()
            .timeout(COPY_TIMEOUT)
            .volume(VolumeMount::new(from, "/from").read_only())
            .volume(VolumeMount::new(to, "/to"))
            .extra_args(["--network", "none", "--cap-add", "SYS_ADMIN"])
            .entrypoint("cp")
            .args(["-a", "/from/.", "/to/"]);
        for (k, v) in self.owned(Kind::Helper) {
            copy = copy.label(k, v);
        }
        copy = copy.label(purpose.0, purpose.1);
        self.docker
            .run_attached(&copy)
            .await
            .map(drop)
            .map_err(|e| engine_error(what, e))
    }

    async fn take_snapshot(
        &self,
        c: &ContainerInfo,
        id: &VpsInstanceId,
        snapshot: &VpsSnapshotId,
        image_ref: &str,
    ) -> Result<(), VpsClientError> {
        let (base, _) = self.ensure(Image::Base).await?;
        let names = Names::of(id);
        let pause = c.state.running && !c.state.paused;
        if pause {
            self.docker
                .pause(&c.id)
                .await
                .map_err(|e| engine_error("pausing the VPS for a consistent snapshot", e))?;
        }
        let taken = async {
            self.copy_volume(
                &base,
                &names.docker_volume,
                snapshot.as_str(),
                (SNAPSHOT_LABEL, snapshot.as_str()),
                "copying the VPS's /var/lib/docker for the snapshot",
            )
            .await?;
            // The image keeps the container's labels; those that would make a VPS made
            // from it look like the source (its instance id, its tags) are emptied.
            let mut commit = CommitOptions::new(&c.id, image_ref)
                .no_pause()
                .timeout(COPY_TIMEOUT)
                .change(format!(
                    "LABEL {KIND_LABEL}={}",
                    Kind::SnapshotImage.as_str()
                ))
                .change(format!("LABEL {SNAPSHOT_LABEL}={snapshot}"))
                .change(format!("LABEL {INSTANCE_LABEL}=\"\""))
                .change(format!("LABEL {TAGS_LABEL}=\"[]\""));
            for k in c.config.labels.keys() {
                if k.starts_with(TAG_PREFIX) && is_plain_label_key(k) {
                    commit = commit.change(format!("LABEL {k}=\"\""));
                }
            }
            self.docker
                .commit_with(&commit)
                .await
                .map(drop)
                .map_err(|e| engine_error("committing the VPS's disk for the snapshot", e))
        }
        .await;
        if pause {
            let resumed = self
                .docker
                .unpause(&c.id)
                .await
                .map_err(|e| engine_error("resuming the VPS after the snapshot", e));
            if taken.is_ok() {
                resumed?;
            } else if let Err(e) = resumed {
                tracing::warn!(error = %e, "could not resume the VPS after a failed snapshot");
            }
        }
        taken
    }
}

//! User tags (get, set, add, remove) and renaming a host.
//!
//! The host record on the VPS is the source of truth: every change is written there, so a
//! fresh process (another machine, a later run) sees it. Docker cannot change the labels
//! of an existing container, so the container's `com.imbue.mngr.tags` and
//! `com.imbue.mngr.host-name` labels keep the values of its create; nothing reads them
//! back. A rename changes the record and the container's name (`docker rename`, which
//! works on a running container); the instance's label (`mngr-<old name>`) stays, since
//! [`vps_client::VpsClient`] has no call to relabel an instance, and lookup by name falls
//! back to the records.

use std::collections::BTreeMap;
use std::sync::Arc;

use docker_ssh::{Docker, Executor};
use host_store::{HostRecord, Timestamp};
use vps_primitives::HostName;

use crate::error::{ProviderError, StepError};
use crate::host::HostInfo;
use crate::plan;
use crate::provider::{Found, VpsDockerProvider, record_container};
use crate::step::Step;

/// Refuses tag keys that are empty or hold `=` or control characters.
pub(crate) fn check_tag_keys<'a>(
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), ProviderError> {
    for key in keys {
        if key.is_empty() || key.chars().any(|c| c.is_control() || c == '=') {
            return Err(ProviderError::InvalidInput(format!(
                "tag key {key:?} must be non-empty, without `=` or control characters"
            )));
        }
    }
    Ok(())
}

/// A change to a host's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagChange {
    /// Replace all tags.
    Set(BTreeMap<String, String>),
    /// Add or overwrite these.
    Add(BTreeMap<String, String>),
    /// Remove these keys (absent ones are fine).
    Remove(Vec<String>),
}

impl TagChange {
    /// The tags after the change.
    pub fn apply(&self, tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self {
            Self::Set(new) => new.clone(),
            Self::Add(new) => {
                let mut out = tags.clone();
                out.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                out
            }
            Self::Remove(keys) => tags
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn check(&self) -> Result<(), ProviderError> {
        match self {
            Self::Set(t) | Self::Add(t) => check_tag_keys(t.keys()),
            Self::Remove(_) => Ok(()),
        }
    }
}

impl VpsDockerProvider {
    /// The host's user tags, from its record.
    pub async fn get_tags(
        &self,
        name_or_id: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let found = self.find(name_or_id).await?;
        let (vps, record) = self.vps_of(&found)?;
        vps.close().await;
        Ok(record.certified_host_data.user_tags)
    }

    /// Replaces the host's user tags; returns them.
    pub async fn set_tags(
        &self,
        name_or_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        self.change_tags(name_or_id, &TagChange::Set(tags)).await
    }

    /// Adds (or overwrites) user tags; returns all of them.
    pub async fn add_tags(
        &self,
        name_or_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        self.change_tags(name_or_id, &TagChange::Add(tags)).await
    }

    /// Removes user tags by key; returns the rest.
    pub async fn remove_tags(
        &self,
        name_or_id: &str,
        keys: &[String],
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        self.change_tags(name_or_id, &TagChange::Remove(keys.to_vec()))
            .await
    }

    /// Applies `change` to the host's tags and writes the record.
    pub async fn change_tags(
        &self,
        name_or_id: &str,
        change: &TagChange,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        change.check()?;
        let found = self.find(name_or_id).await?;
        let (vps, mut record) = self.vps_of(&found)?;
        let data = &mut record.certified_host_data;
        data.user_tags = change.apply(&data.user_tags);
        let tags = data.user_tags.clone();
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let written = self.write_record(&found, exec, &record).await;
        vps.close().await;
        written?;
        Ok(tags)
    }

    /// Renames a host: its record and its container (`docker rename`). The new name must be
    /// free. Returns what is seen of the host afterwards.
    pub async fn rename_host(
        &self,
        name_or_id: &str,
        new_name: &HostName,
    ) -> Result<HostInfo, ProviderError> {
        let found = self.find(name_or_id).await?;
        if found.info.name.as_ref() == Some(new_name) {
            return Ok(found.info);
        }
        if let Some(other) = self.find_by_name(new_name).await? {
            return Err(ProviderError::NameTaken {
                name: new_name.clone(),
                id: other.info.id,
            });
        }
        let host = found.info.display_name();
        let (vps, mut record) = self.vps_of(&found)?;
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        let old_container = record_container(&record);
        let new_container = plan::container_name(new_name);
        let rename = |from: &str, to: &str| {
            let (docker, from, to) = (docker.clone(), from.to_owned(), to.to_owned());
            async move { docker.rename(&from, &to).await }
        };
        let result = async {
            rename(&old_container, &new_container)
                .await
                .map_err(|e| step_error(&host, Step::Container, e.into()))?;
            record.certified_host_data.host_name = new_name.clone();
            if let Some(config) = record.config.as_mut() {
                config.container_name = new_container.clone();
            }
            if let Err(e) = self.write_record(&found, exec.clone(), &record).await {
                // Put the container's name back, so record and container agree.
                if let Err(back) = rename(&new_container, &old_container).await {
                    tracing::warn!(%host, error = %back, "could not undo the container rename");
                }
                return Err(e);
            }
            Ok(())
        }
        .await;
        vps.close().await;
        result?;
        tracing::info!(%host, new = %new_name, "host renamed");
        let mut info = found.info;
        info.name = Some(new_name.clone());
        info.record = Some(record);
        Ok(info)
    }

    async fn write_record(
        &self,
        found: &Found,
        exec: Arc<dyn Executor>,
        record: &HostRecord,
    ) -> Result<(), ProviderError> {
        let host = found.info.display_name();
        let mut record = record.clone();
        record.certified_host_data.updated_at = Timestamp::now();
        let store = self
            .store(exec)
            .map_err(|e| step_error(&host, Step::WriteRecord, e))?;
        store
            .write_host_record(&record)
            .await
            .map_err(|e| step_error(&host, Step::WriteRecord, e.into()))
    }
}

fn step_error(host: &str, step: Step, source: StepError) -> ProviderError {
    ProviderError::Step {
        host: host.to_owned(),
        step,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tag_changes() {
        let start = tags(&[("a", "1"), ("b", "2")]);
        let cases = [
            (TagChange::Set(tags(&[("c", "3")])), tags(&[("c", "3")])),
            (
                TagChange::Add(tags(&[("b", "x"), ("c", "3")])),
                tags(&[("a", "1"), ("b", "x"), ("c", "3")]),
            ),
            (
                TagChange::Remove(vec!["a".into(), "zz".into()]),
                tags(&[("b", "2")]),
            ),
            (TagChange::Set(BTreeMap::new()), BTreeMap::new()),
        ];
        for (change, want) in cases {
            assert_eq!(change.apply(&start), want, "{change:?}");
        }
    }

    #[test]
    fn bad_tag_keys_are_refused() {
        for bad in ["", "a=b", "a\nb"] {
            let change = TagChange::Add(tags(&[(bad, "v")]));
            assert!(change.check().is_err(), "{bad:?}");
        }
        assert!(
            TagChange::Add(tags(&[("team", "it's ours")]))
                .check()
                .is_ok()
        );
        assert!(TagChange::Remove(vec![String::new()]).check().is_ok());
    }
}

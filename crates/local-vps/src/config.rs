//! How a [`crate::LocalVpsClient`] is set up, and which image an OS id means.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use local_vps_images::Image;
use vps_client::VpsClientError;
use vps_primitives::OsId;

use crate::labels::{ACCOUNT_LABEL, PREFIX};

/// The two instance images, chosen by the request's [`OsId`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LocalOs {
    /// Debian 12 with Docker installed and enabled, like a cloud's "Docker" image: fast,
    /// and the default.
    #[default]
    DockerReady,
    /// A fresh Debian 12 without Docker, like a cloud's plain Debian 12 image: Docker runs
    /// only once the user_data installs and starts it (its packages are cached in the
    /// image, so apt and dpkg really run, without downloading).
    FreshDebian12,
}

impl LocalOs {
    /// OS id of [`LocalOs::DockerReady`] (a local id; no cloud uses it).
    pub const DOCKER_READY_ID: OsId = OsId(1);
    /// OS id of [`LocalOs::FreshDebian12`]: 2136, Vultr's id for Debian 12 x64, which is a
    /// plain Debian 12 there too.
    pub const FRESH_DEBIAN_12_ID: OsId = OsId(2136);

    /// The image an OS id asks for, or `None` for an id this provider does not offer.
    pub fn from_os_id(id: OsId) -> Option<Self> {
        match id {
            Self::DOCKER_READY_ID => Some(LocalOs::DockerReady),
            Self::FRESH_DEBIAN_12_ID => Some(LocalOs::FreshDebian12),
            _ => None,
        }
    }

    /// The OS id that asks for this image.
    pub fn os_id(self) -> OsId {
        match self {
            LocalOs::DockerReady => Self::DOCKER_READY_ID,
            LocalOs::FreshDebian12 => Self::FRESH_DEBIAN_12_ID,
        }
    }

    /// The locally built image behind it.
    pub fn image(self) -> Image {
        match self {
            LocalOs::DockerReady => Image::FakeVps,
            LocalOs::FreshDebian12 => Image::FakeVpsFresh,
        }
    }
}

/// Receives one line of progress (image builds on first use).
pub type ProgressFn = Arc<dyn Fn(&str) + Send + Sync>;

/// How a [`crate::LocalVpsClient`] labels what it creates and reports progress.
///
/// ```
/// use local_vps::LocalVpsConfig;
/// let config = LocalVpsConfig::default()
///     .account("ci-42")
///     .label("com.imbue.mngr.test-run", "42");
/// assert_eq!(config.labels().len(), 2);
/// ```
#[derive(Clone)]
pub struct LocalVpsConfig {
    labels: BTreeMap<String, String>,
    progress: ProgressFn,
    probe_timeout: Duration,
}

impl Default for LocalVpsConfig {
    /// Account `default`, progress lines on stderr, a 2 s SSH banner probe.
    fn default() -> Self {
        Self {
            labels: BTreeMap::from([(ACCOUNT_LABEL.to_owned(), "default".to_owned())]),
            progress: Arc::new(|line| eprintln!("[local-vps] {line}")),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for LocalVpsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalVpsConfig")
            .field("labels", &self.labels)
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

impl LocalVpsConfig {
    /// Sets the account: the value of the ownership label
    /// [`ACCOUNT_LABEL`](crate::ACCOUNT_LABEL). Clients with different accounts on one
    /// engine see different instances, keys and snapshots, as two cloud accounts would.
    pub fn account(self, name: impl Into<String>) -> Self {
        self.label(ACCOUNT_LABEL, name)
    }

    /// Adds an ownership label. Everything the client creates carries all of them, and it
    /// lists only what carries all of them (so a test run can be cleaned up by its label).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Where progress lines go (default: stderr).
    pub fn progress(mut self, progress: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.progress = Arc::new(progress);
        self
    }

    /// How long the SSH banner check behind [`VpsInstanceStatus::Active`](vps_primitives::VpsInstanceStatus::Active)
    /// waits for sshd's greeting (default 2 s).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The ownership labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    pub(crate) fn label_pairs(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn progress_fn(&self) -> ProgressFn {
        Arc::clone(&self.progress)
    }

    pub(crate) fn probe_timeout_value(&self) -> Duration {
        self.probe_timeout
    }

    /// Checks the ownership labels can be used as Docker labels and filters.
    pub(crate) fn validate(&self) -> Result<(), VpsClientError> {
        if self.labels.is_empty() {
            return Err(VpsClientError::Config(
                "local-vps needs at least one ownership label (e.g. LocalVpsConfig::account)"
                    .to_owned(),
            ));
        }
        for (key, value) in &self.labels {
            let bad_key = key.is_empty()
                || key.contains('=')
                || key.chars().any(char::is_whitespace)
                || (key.starts_with(PREFIX) && key != ACCOUNT_LABEL);
            if bad_key {
                return Err(VpsClientError::Config(format!(
                    "ownership label key {key:?} is not usable: it must be non-empty, without `=` \
                     or spaces, and not under {PREFIX} (except {ACCOUNT_LABEL})"
                )));
            }
            if value.contains(['\n', '\r', '\0']) {
                return Err(VpsClientError::Config(format!(
                    "ownership label {key}: its value must be one line"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_ids_map_both_ways_and_unknown_ids_are_refused() {
        for os in [LocalOs::DockerReady, LocalOs::FreshDebian12] {
            assert_eq!(LocalOs::from_os_id(os.os_id()), Some(os));
        }
        assert_eq!(
            LocalOs::from_os_id(OsId(2136)),
            Some(LocalOs::FreshDebian12)
        );
        assert_eq!(LocalOs::from_os_id(OsId(477)), None);
        assert_eq!(LocalOs::default(), LocalOs::DockerReady);
        assert_eq!(LocalOs::DockerReady.image(), Image::FakeVps);
        assert_eq!(LocalOs::FreshDebian12.image(), Image::FakeVpsFresh);
    }

    #[test]
    fn ownership_labels_are_validated() {
        assert!(LocalVpsConfig::default().validate().is_ok());
        let ok = LocalVpsConfig::default().label("com.imbue.mngr.test-run", "run=1,2");
        assert!(ok.validate().is_ok());
        for (k, v) in [
            ("", "x"),
            ("a=b", "x"),
            ("has space", "x"),
            ("com.imbue.mngr.local-vps.instance", "x"),
            ("ok", "two\nlines"),
        ] {
            let config = LocalVpsConfig::default().label(k, v);
            assert!(config.validate().is_err(), "{k:?}={v:?} must be refused");
        }
    }
}

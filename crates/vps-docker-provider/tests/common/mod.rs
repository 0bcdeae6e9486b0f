//! What the lifecycle tests share: a provider on the local engine in an account of its
//! own, everything labelled with the test run, and checks that nothing is left.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use local_vps::{ACCOUNT_LABEL, LocalVpsClient, LocalVpsConfig};
use testbed::Image;
use vps_docker_provider::{VpsDockerProvider, VpsDockerProviderConfig};
use vps_primitives::ProviderName;

/// A provider instance `local` over a local-vps account of its own, with keys in `keys`.
pub struct Bed {
    pub provider: VpsDockerProvider,
    pub client: Arc<LocalVpsClient>,
    pub account: String,
    pub keys: tempfile::TempDir,
}

impl Bed {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    pub fn with_config(adjust: impl FnOnce(&mut VpsDockerProviderConfig)) -> Self {
        let account = format!("test-{:016x}", rand_u64());
        let client = Arc::new(
            LocalVpsClient::new(
                LocalVpsConfig::default()
                    .account(account.clone())
                    .label(testbed::RUN_LABEL, testbed::run_id())
                    .progress(|line| eprintln!("[local-vps] {line}")),
            )
            .expect("local client"),
        );
        let keys = tempfile::tempdir().expect("key dir");
        Self::on(client, account, keys, adjust)
    }

    /// A second provider value on the same account and key directory, as another process
    /// would make.
    pub fn fresh(&self) -> VpsDockerProvider {
        provider_on(
            &self.account,
            self.keys.path(),
            self.provider.config().clone(),
        )
    }

    fn on(
        client: Arc<LocalVpsClient>,
        account: String,
        keys: tempfile::TempDir,
        adjust: impl FnOnce(&mut VpsDockerProviderConfig),
    ) -> Self {
        let mut config = test_config();
        adjust(&mut config);
        let provider = VpsDockerProvider::new(
            ProviderName::parse("local").expect("name"),
            client.clone(),
            config,
            keys.path(),
        )
        .expect("provider");
        Self {
            provider,
            client,
            account,
            keys,
        }
    }

    /// Asserts that nothing of the account is left on the engine, and no host directory
    /// under the key dir.
    pub fn assert_nothing_left(&self) {
        let filter = format!("label={ACCOUNT_LABEL}={}", self.account);
        for what in [
            &["ps", "-aq", "--filter", &filter][..],
            &["volume", "ls", "-q", "--filter", &filter][..],
            &["network", "ls", "-q", "--filter", &filter][..],
        ] {
            let left = testbed::docker(what);
            assert!(
                left.is_empty(),
                "`docker {}` still lists: {left}",
                what.join(" ")
            );
        }
        assert_no_host_dirs(self.keys.path());
    }
}

/// The provider config of the tests: the local host image, generous timeouts.
pub fn test_config() -> VpsDockerProviderConfig {
    let image = testbed::image(Image::Host);
    VpsDockerProviderConfig {
        default_image: image.clone(),
        state_image: image,
        ssh_connect_timeout: 60.0,
        vps_boot_timeout: 240.0,
        docker_install_timeout: 240.0,
        discovery_connect_timeout: 5.0,
        // Debian 12 with Docker installed, as a cloud's Docker image (the fresh image
        // installs docker.io at first boot, which takes longer).
        default_os_id: local_vps::LocalOs::DOCKER_READY_ID.0,
        ..VpsDockerProviderConfig::default()
    }
}

/// A provider value `local` on local-vps account `account` and key directory `keys`, as
/// another process would make (a fresh client, nothing shared in memory).
pub fn provider_on(
    account: &str,
    keys: &Path,
    config: VpsDockerProviderConfig,
) -> VpsDockerProvider {
    let client = Arc::new(
        LocalVpsClient::new(
            LocalVpsConfig::default()
                .account(account.to_owned())
                .label(testbed::RUN_LABEL, testbed::run_id()),
        )
        .expect("local client"),
    );
    VpsDockerProvider::new(
        ProviderName::parse("local").expect("name"),
        client,
        config,
        keys,
    )
    .expect("provider")
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Err(e) = testbed::remove_labelled(ACCOUNT_LABEL, &self.account) {
            eprintln!("could not remove what account {} left: {e}", self.account);
        }
    }
}

pub fn assert_no_host_dirs(keys: &Path) {
    let hosts = keys.join("hosts");
    let left: Vec<String> = std::fs::read_dir(&hosts)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "key directories left in {}: {left:?}",
        hosts.display()
    );
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

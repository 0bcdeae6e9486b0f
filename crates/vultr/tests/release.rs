//! Release tier: the whole lifecycle on the real Vultr API. It orders real (billed)
//! instances for a few minutes, so it runs only when `VULTR_API_KEY` is set, and says it
//! was skipped otherwise. Never run in CI.
//!
//! ```sh
//! VULTR_API_KEY=… cargo nextest run -p vultr --test release --no-capture
//! ```
//!
//! Optional: `VULTR_TEST_REGION` (default `ewr`) and `VULTR_TEST_FIREWALL_GROUP` (default
//! `mngr-release-test`; the group is kept for the next run).

use std::time::Duration;

use vps_client::conformance::{self, ConformanceOptions, SnapshotSupport};
use vps_client::{VpsClient, VpsClientError, WaitOptions};
use vps_primitives::{RegionId, Tag, VpsInstanceId};
use vultr::{API_KEY_ENV, VultrClient, VultrConfig};

/// The key, or `None` (after saying so) when the release tier is not wanted.
fn release_key() -> Option<String> {
    match std::env::var(API_KEY_ENV) {
        Ok(key) if !key.trim().is_empty() => Some(key),
        _ => {
            eprintln!(
                "SKIPPED: {API_KEY_ENV} is not set; the release test against the real Vultr API did not run"
            );
            None
        }
    }
}

fn release_config() -> VultrConfig {
    let mut config = VultrConfig::default();
    if let Ok(region) = std::env::var("VULTR_TEST_REGION") {
        config.default_region = RegionId::parse(&region).expect("VULTR_TEST_REGION is a region id");
    }
    config.firewall_group = Some(
        std::env::var("VULTR_TEST_FIREWALL_GROUP")
            .unwrap_or_else(|_| "mngr-release-test".to_owned()),
    );
    config
}

#[tokio::test]
async fn the_whole_lifecycle_on_real_vultr() {
    if release_key().is_none() {
        return;
    }
    // The key is read from the environment by the client itself.
    let client = VultrClient::new(release_config()).expect("client from VULTR_API_KEY");
    client
        .check_credentials()
        .await
        .expect("the API accepts VULTR_API_KEY");

    // Every trait operation, as every backend is held to it: keys, create, get, list by
    // tag, wait until active, snapshots, destroy, and nothing left behind.
    let mut options = ConformanceOptions {
        wait_active: Some(WaitOptions::with_timeout(Duration::from_secs(600))),
        // A real snapshot takes many minutes; pending is accepted.
        snapshots: SnapshotSupport::Supported {
            complete_within: None,
        },
        consistency_timeout: Duration::from_secs(120),
        ..ConformanceOptions::default()
    };
    options.base_request.region = client.config().default_region.clone();
    options.base_request.plan = client.config().default_plan.clone();
    options.base_request.os = client.config().default_os_id;
    let report = conformance::run_all(&client, &options)
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    eprintln!("conformance on real Vultr: {report}");

    // Vultr's own readiness (all four fields at once) and the firewall group.
    let mut request = options.base_request.clone();
    request.label = format!("mngr-release-{}", options.run_tag.value());
    request.tags = vec![options.run_tag.clone()];
    let id = client
        .create_instance(&request)
        .await
        .expect("create with a firewall group");
    let outcome = readiness_and_addresses(&client, &id, &options.run_tag).await;
    client.destroy_instance(&id).await.expect("destroy");
    outcome.expect("ready, listed and addressed");
}

async fn readiness_and_addresses(
    client: &VultrClient,
    id: &VpsInstanceId,
    tag: &Tag,
) -> Result<(), VpsClientError> {
    let ready = client
        .wait_until_ready(id, Duration::from_secs(600))
        .await?;
    let address = ready.address.ok_or_else(|| VpsClientError::NotReady {
        id: id.clone(),
        message: "ready without an address".to_owned(),
    })?;
    let listed = client.list_instances(Some(tag)).await?;
    assert!(listed.iter().any(|i| i.id == *id), "listed by its tag");
    for port in [22, 2222] {
        let addr = client.socket_addr(id, port).await?;
        assert_eq!(addr.ip(), address);
        assert_eq!(addr.port(), port);
    }
    Ok(())
}

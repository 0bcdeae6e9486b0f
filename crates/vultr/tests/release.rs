//! Release tier: the whole lifecycle on the real Vultr API. It orders real (billed)
//! instances for a few minutes, so it is `#[ignore]`d: a normal test run lists it as
//! skipped, never as passed. Run it on purpose, with a key, never in CI:
//!
//! ```sh
//! VULTR_API_KEY=… cargo nextest run -p vultr --test release --run-ignored ignored-only --no-capture
//! # or: VULTR_API_KEY=… cargo test -p vultr --test release -- --ignored --nocapture
//! ```
//!
//! Run that way without a key, it fails (it was asked to run and cannot).
//! Optional: `VULTR_TEST_REGION` (default `ewr`) and `VULTR_TEST_FIREWALL_GROUP` (default
//! `mngr-release-test`; the group is kept for the next run).

use std::time::Duration;

use vps_client::conformance::{self, ConformanceOptions, SnapshotSupport};
use vps_client::{VpsClient, VpsClientError, WaitOptions, probe_tcp_connect, wait_until_active};
use vps_primitives::{RegionId, Tag, VpsInstanceId};
use vultr::{API_KEY_ENV, VultrClient, VultrConfig};

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
#[ignore = "orders billed instances on the real Vultr API; run with VULTR_API_KEY=… and --run-ignored ignored-only (see the file's docs)"]
async fn the_whole_lifecycle_on_real_vultr() {
    assert!(
        std::env::var(API_KEY_ENV).is_ok_and(|key| !key.trim().is_empty()),
        "{API_KEY_ENV} is not set: the release test against the real Vultr API cannot run"
    );
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

    // Readiness (Vultr's status is ACTIVE only when all four fields agree) and the
    // firewall group.
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
    let options = WaitOptions::with_timeout(Duration::from_secs(600));
    let ssh = wait_until_active(client, id, 22, &options, probe_tcp_connect).await?;
    let ready = client.get_instance(id).await?;
    let address = ready.address.ok_or_else(|| VpsClientError::NotReady {
        id: id.clone(),
        message: "ready without an address".to_owned(),
    })?;
    assert_eq!(ssh.ip(), address);
    let listed = client.list_instances(Some(tag)).await?;
    assert!(listed.iter().any(|i| i.id == *id), "listed by its tag");
    for port in [22, 2222] {
        let addr = client.socket_addr(id, port).await?;
        assert_eq!(addr.ip(), address);
        assert_eq!(addr.port(), port);
    }
    Ok(())
}

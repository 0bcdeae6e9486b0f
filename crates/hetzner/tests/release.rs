//! Release tier: the whole lifecycle on the real Hetzner Cloud API. It orders real
//! (billed) servers for a few minutes, so it is ignored unless asked for, and it needs
//! `HCLOUD_TOKEN`; without the token it fails rather than pass. Never run in CI.
//!
//! ```sh
//! HCLOUD_TOKEN=… cargo nextest run -p hetzner --test release --run-ignored only --no-capture
//! ```
//!
//! Optional: `HCLOUD_TEST_LOCATION` (default `fsn1`), `HCLOUD_TEST_SERVER_TYPE` (default
//! `cx22`), `HCLOUD_TEST_FIREWALL` (default `mngr-release-test`; kept for the next run).

use std::time::Duration;

use hetzner::{API_TOKEN_ENV, HetznerClient, HetznerConfig};
use vps_client::conformance::{self, ConformanceOptions, SnapshotSupport};
use vps_client::{VpsClient, WaitOptions};
use vps_primitives::{PlanId, RegionId};

fn release_config() -> HetznerConfig {
    let mut config = HetznerConfig::default();
    if let Ok(location) = std::env::var("HCLOUD_TEST_LOCATION") {
        config.default_region = RegionId::parse(&location).expect("HCLOUD_TEST_LOCATION");
    }
    if let Ok(server_type) = std::env::var("HCLOUD_TEST_SERVER_TYPE") {
        config.default_plan = PlanId::parse(&server_type).expect("HCLOUD_TEST_SERVER_TYPE");
    }
    config.firewall = Some(
        std::env::var("HCLOUD_TEST_FIREWALL").unwrap_or_else(|_| "mngr-release-test".to_owned()),
    );
    config
}

#[tokio::test]
#[ignore = "needs HCLOUD_TOKEN; run with --run-ignored"]
async fn the_whole_lifecycle_on_real_hetzner() {
    let token = std::env::var(API_TOKEN_ENV).unwrap_or_default();
    assert!(
        !token.trim().is_empty(),
        "{API_TOKEN_ENV} is not set: the release test against the real Hetzner API cannot run"
    );
    let client = HetznerClient::new(release_config()).expect("client from HCLOUD_TOKEN");
    client
        .check_credentials()
        .await
        .expect("the API accepts HCLOUD_TOKEN");

    let unknown = |n: u64| n.to_string();
    let mut options = ConformanceOptions {
        wait_active: Some(WaitOptions::with_timeout(Duration::from_secs(600))),
        // A real snapshot takes minutes; the client waits for its action, so it is
        // usually complete when create_snapshot returns, but pending is accepted.
        snapshots: SnapshotSupport::Supported {
            complete_within: Some(Duration::from_secs(900)),
        },
        consistency_timeout: Duration::from_secs(120),
        unknown_instance_id: std::sync::Arc::new(move || {
            vps_primitives::VpsInstanceId::parse(&unknown(999_999_999_991)).expect("id")
        }),
        unknown_snapshot_id: std::sync::Arc::new(|| {
            vps_primitives::VpsSnapshotId::parse("999999999993").expect("id")
        }),
        unknown_ssh_key_id: std::sync::Arc::new(|| {
            vps_primitives::SshKeyId::parse("999999999997").expect("id")
        }),
        ..ConformanceOptions::default()
    };
    options.base_request.region = client.config().default_region.clone();
    options.base_request.plan = client.config().default_plan.clone();
    options.base_request.os = client.config().default_os_id;
    let report = conformance::run_all(&client, &options)
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    eprintln!("conformance on real Hetzner: {report}");

    // Hetzner's own readiness (status, create actions, IPv4) and the firewall.
    let mut request = options.base_request.clone();
    request.label = format!("mngr-release-{}", options.run_tag.value());
    request.tags = vec![options.run_tag.clone()];
    let id = client
        .create_instance(&request)
        .await
        .expect("create with a firewall");
    let opts = WaitOptions::with_timeout(Duration::from_secs(600));
    let ssh = vps_client::wait_until_active(&client, &id, 22, &opts, |addr| {
        vps_client::probe_tcp_banner(addr, b"SSH-")
    })
    .await;
    let info = client.get_instance(&id).await;
    client.destroy_instance(&id).await.expect("destroy");
    let ssh = ssh.expect("active, and sshd answers through the firewall");
    assert_eq!(Some(ssh.ip()), info.expect("get").address);
}

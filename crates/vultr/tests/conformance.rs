//! The `vps-client` conformance suite, run against `VultrClient` talking to a stateful
//! mock of the Vultr API (wiremock on 127.0.0.1).

mod support;

use std::time::Duration;

use support::MockVultr;
use vps_client::WaitOptions;
use vps_client::conformance::{self, ConformanceOptions, SnapshotSupport};
use vps_primitives::Backoff;

/// Options for the mock: short waits (the mock needs a handful of polls, no real time)
/// and snapshots that complete on their second listing.
fn options() -> ConformanceOptions {
    let fast = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    ConformanceOptions {
        wait_active: Some(WaitOptions {
            timeout: Duration::from_secs(10),
            backoff: fast,
            probe_timeout: Duration::from_secs(1),
        }),
        snapshots: SnapshotSupport::Supported {
            complete_within: Some(Duration::from_secs(5)),
        },
        consistency_timeout: Duration::from_secs(5),
        poll: fast,
        ..ConformanceOptions::default()
    }
}

#[tokio::test]
async fn the_whole_suite_passes_and_nothing_is_skipped() {
    let mock = MockVultr::start().await;
    let client = mock.client();
    let report = conformance::run_all(&client, &options())
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    assert!(report.skipped.is_empty(), "{report}");
    assert_eq!(report.passed, conformance::CHECKS.to_vec(), "{report}");
    assert_eq!(mock.instance_count(), 0, "the suite left instances behind");
}

macro_rules! one_check {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let mock = MockVultr::start().await;
            let client = mock.client();
            conformance::$name(&client, &options())
                .await
                .unwrap_or_else(|failure| panic!("{failure}"));
        }
    };
}

one_check!(check_unknown_ids);
one_check!(check_create_get_destroy);
one_check!(check_list_by_tag);
one_check!(check_wait_active);
one_check!(check_ssh_keys);
one_check!(check_snapshots);

/// The suite also passes when every list is split into pages of one item, so a client
/// that read only the first page would fail its listing checks.
#[tokio::test]
async fn the_suite_passes_with_one_item_per_page() {
    let mock = MockVultr::start().await;
    mock.seed_instances(3, &["other-tool=x"]);
    let client = vultr::VultrClient::new(vultr::VultrConfig {
        page_size: 1,
        ..mock.config()
    })
    .expect("client");
    conformance::run_all(&client, &options())
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
}

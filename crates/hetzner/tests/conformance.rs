//! The `vps-client` conformance suite, run against `HetznerClient` talking to a stateful
//! mock of the Hetzner Cloud API (wiremock on 127.0.0.1) whose actions run for a while,
//! lock their servers, whose lists are paginated and whose rate limit answers 429.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::{DEBIAN_12, MockHetzner, MockOptions};
use vps_client::WaitOptions;
use vps_client::conformance::{self, ConformanceOptions, IdFactory, SnapshotSupport};
use vps_primitives::Backoff;
use vps_primitives::{OsId, PlanId, RegionId, SshKeyId, VpsInstanceId, VpsSnapshotId};

/// Hetzner ids are integers; these name nothing in the mock (its ids start at 101).
fn unknown<T: 'static>(parse: fn(&str) -> Result<T, vps_primitives::InvalidValue>) -> IdFactory<T> {
    static NEXT: AtomicU64 = AtomicU64::new(9_000_000_001);
    Arc::new(move || {
        parse(&NEXT.fetch_add(1, Ordering::Relaxed).to_string()).expect("a number is an id")
    })
}

/// Options for the mock: Hetzner's location, type and image, short waits, snapshots that
/// must complete (the mock's take one action's time), integer unknown ids.
fn options() -> ConformanceOptions {
    let fast = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    let mut options = ConformanceOptions {
        wait_active: Some(WaitOptions {
            timeout: Duration::from_secs(20),
            backoff: fast,
            probe_timeout: Duration::from_secs(1),
        }),
        snapshots: SnapshotSupport::Supported {
            complete_within: Some(Duration::from_secs(10)),
        },
        consistency_timeout: Duration::from_secs(10),
        poll: fast,
        unknown_instance_id: unknown(VpsInstanceId::parse),
        unknown_snapshot_id: unknown(VpsSnapshotId::parse),
        unknown_ssh_key_id: unknown(SshKeyId::parse),
        ..ConformanceOptions::default()
    };
    options.base_request.region = RegionId::parse("fsn1").expect("location");
    options.base_request.plan = PlanId::parse("cx22").expect("server type");
    options.base_request.os = OsId(DEBIAN_12 as u32);
    options
}

#[tokio::test]
async fn the_whole_suite_passes_and_nothing_is_skipped() {
    let mock = MockHetzner::start().await;
    let client = mock.client();
    let report = conformance::run_all(&client, &options())
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    assert!(report.skipped.is_empty(), "{report}");
    assert_eq!(report.passed, conformance::CHECKS.to_vec(), "{report}");
    assert_eq!(mock.server_count(), 0, "the suite left servers behind");
    assert_eq!(mock.image_count(), 0, "the suite left snapshots behind");
}

macro_rules! one_check {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let mock = MockHetzner::start().await;
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

/// The suite also passes with pages of one item (a client that read only the first page
/// would fail its listing checks), a tight rate limit that answers 429 many times, and
/// IPv4 addresses that appear only once a server runs.
#[tokio::test]
async fn the_suite_passes_with_one_item_per_page_a_tight_rate_limit_and_late_addresses() {
    let mock = MockHetzner::start_with(MockOptions {
        rate_limit: Some((5, Duration::from_millis(15))),
        ipv4_at_create: false,
        ..MockOptions::default()
    })
    .await;
    mock.seed_servers(3, &[("other-tool", "x")]);
    let client = hetzner::HetznerClient::new(hetzner::HetznerConfig {
        page_size: 1,
        max_retries: 30,
        ..mock.config()
    })
    .expect("client");
    conformance::run_all(&client, &options())
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    let (rate_limited, _) = mock.refusals();
    assert!(
        rate_limited > 0,
        "the rate limit was never hit, so this tested nothing extra"
    );
}

//! The `vps-client` conformance suite against the real Docker engine: one test per check,
//! each with its own run tag and account, each ending with the suite's leak check.

mod common;

use std::time::Duration;

use vps_client::WaitOptions;
use vps_client::conformance::{self, CheckFailure, ConformanceOptions, SnapshotSupport};

fn options() -> ConformanceOptions {
    let mut options = ConformanceOptions {
        wait_active: Some(WaitOptions::with_timeout(Duration::from_secs(180))),
        snapshots: SnapshotSupport::Supported {
            complete_within: Some(Duration::from_secs(120)),
        },
        consistency_timeout: Duration::from_secs(10),
        ..ConformanceOptions::default()
    };
    // The default OS id (2136) is the fresh Debian 12 image here; the empty cloud-config
    // boots it as is.
    options.base_request.os = local_vps::LocalOs::FreshDebian12.os_id();
    options
}

async fn check<F, Fut>(run: F)
where
    F: FnOnce(local_vps::LocalVpsClient, ConformanceOptions) -> Fut,
    Fut: std::future::Future<
            Output = (
                local_vps::LocalVpsClient,
                ConformanceOptions,
                Result<(), CheckFailure>,
            ),
        >,
{
    let (client, options, result) = run(common::client(), options()).await;
    let left = conformance::check_nothing_left(&client, &options).await;
    result.unwrap_or_else(|f| panic!("{f}"));
    left.unwrap_or_else(|f| panic!("{f}"));
}

macro_rules! conformance_test {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            check(|client, options| async move {
                let result = conformance::$name(&client, &options).await;
                (client, options, result)
            })
            .await;
        }
    };
}

conformance_test!(check_unknown_ids);
conformance_test!(check_create_get_destroy);
conformance_test!(check_list_by_tag);
conformance_test!(check_wait_active);
conformance_test!(check_ssh_keys);
conformance_test!(check_snapshots);

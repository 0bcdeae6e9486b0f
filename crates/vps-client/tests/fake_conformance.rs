//! The in-memory fake passes the conformance suite, also when the provider is flaky in
//! ways the suite must tolerate, and the suite catches a backend that breaks the contract.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use vps_client::conformance::{self, ConformanceOptions, SnapshotSupport};
use vps_client::fake::{FakeOptions, FakeVpsClient};
use vps_client::time::OffsetDateTime;
use vps_client::{
    CreateInstanceRequest, InstanceInfo, SnapshotInfo, SshKeyInfo, VpsClient, VpsClientError,
    WaitOptions,
};
use vps_primitives::{Backoff, SshKeyId, Tag, VpsInstanceId, VpsSnapshotId};

fn fast_options() -> ConformanceOptions {
    let backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    ConformanceOptions {
        consistency_timeout: Duration::from_secs(2),
        wait_active: Some(WaitOptions {
            backoff,
            ..WaitOptions::with_timeout(Duration::from_secs(5))
        }),
        poll: backoff,
        ..ConformanceOptions::default()
    }
}

#[tokio::test]
async fn fake_passes_the_whole_suite() {
    let fake = FakeVpsClient::new();
    let report = conformance::run_all(&fake, &fast_options())
        .await
        .expect("the fake must pass the conformance suite");
    assert_eq!(report.passed, conformance::CHECKS.to_vec(), "{report}");
    assert!(report.skipped.is_empty());
    assert_eq!(fake.instance_count(), 0, "the suite must clean up");
}

#[tokio::test]
async fn fake_passes_with_slow_boot_and_pending_snapshots() {
    let fake = FakeVpsClient::with_options(FakeOptions {
        reads_until_active: 5,
        lists_until_snapshot_complete: u32::MAX,
        ..FakeOptions::default()
    });
    let options = ConformanceOptions {
        snapshots: SnapshotSupport::Supported {
            complete_within: None,
        },
        ..fast_options()
    };
    let report = conformance::run_all(&fake, &options)
        .await
        .expect("pending snapshots are allowed when complete_within is None");
    assert_eq!(report.passed.len(), conformance::CHECKS.len());
}

#[tokio::test]
async fn snapshots_that_never_complete_fail_when_completion_is_required() {
    let fake = FakeVpsClient::with_options(FakeOptions {
        lists_until_snapshot_complete: u32::MAX,
        ..FakeOptions::default()
    });
    let options = ConformanceOptions {
        snapshots: SnapshotSupport::Supported {
            complete_within: Some(Duration::from_millis(300)),
        },
        ..fast_options()
    };
    let err = conformance::check_snapshots(&fake, &options)
        .await
        .expect_err("a snapshot stuck in Pending must fail the check");
    assert!(err.message.contains("is complete"), "{err}");
    assert_eq!(
        fake.instance_count(),
        0,
        "the failed check must still clean up"
    );
}

#[tokio::test]
async fn the_snapshot_check_boots_an_instance_from_a_complete_snapshot_only() {
    use vps_client::fake::Method;
    let fake = FakeVpsClient::new();
    conformance::check_snapshots(&fake, &fast_options())
        .await
        .expect("passes");
    // From an unknown snapshot (refused), the source, the copy from the snapshot.
    assert_eq!(fake.calls(Method::CreateInstance), 3);
    assert_eq!(fake.instance_count(), 0, "the copy was destroyed");

    let pending = FakeVpsClient::with_options(FakeOptions {
        lists_until_snapshot_complete: u32::MAX,
        ..FakeOptions::default()
    });
    let options = ConformanceOptions {
        snapshots: SnapshotSupport::Supported {
            complete_within: None,
        },
        ..fast_options()
    };
    conformance::check_snapshots(&pending, &options)
        .await
        .expect("passes");
    assert_eq!(
        pending.calls(Method::CreateInstance),
        2,
        "no copy of a snapshot that need not complete"
    );
}

#[tokio::test]
async fn suite_catches_a_create_that_ignores_the_snapshot() {
    let client = Broken {
        ignores_snapshot: true,
        ..Broken::new()
    };
    let err = conformance::check_snapshots(&client, &fast_options())
        .await
        .expect_err("must fail");
    assert!(
        err.message
            .contains("create_instance from unknown snapshot"),
        "{err}"
    );
    assert!(err.message.contains("succeeded"), "{err}");
    assert_eq!(client.inner.instance_count(), 0, "cleanup after failure");
}

#[tokio::test]
async fn suite_catches_a_refused_create_from_a_snapshot_that_leaves_an_instance() {
    use vps_client::fake::{Fault, Method};
    let fake = FakeVpsClient::new();
    // The first create is the one from an unknown snapshot: make it order an instance
    // (from the OS image, say) and still report a refusal.
    fake.fail_call(Method::CreateInstance, 1, Fault::api(400).after_acting());
    let client = Broken {
        inner: fake,
        ignores_snapshot: true,
        ..Broken::new()
    };
    let err = conformance::check_snapshots(&client, &fast_options())
        .await
        .expect_err("must fail");
    assert!(err.message.contains("left instance(s) behind"), "{err}");
    assert_eq!(client.inner.instance_count(), 0, "cleanup after failure");
}

#[tokio::test]
async fn suite_wants_a_permanent_refusal_for_an_unknown_snapshot() {
    use vps_client::fake::{Fault, Method};
    let fake = FakeVpsClient::new();
    fake.fail_call(Method::CreateInstance, 1, Fault::transient());
    let err = conformance::check_snapshots(&fake, &fast_options())
        .await
        .expect_err("must fail");
    assert!(
        err.message.contains("expected NotFound or a 4xx API error"),
        "{err}"
    );
}

#[tokio::test]
async fn unsupported_features_are_skipped_and_reported() {
    let fake = FakeVpsClient::new();
    let options = ConformanceOptions {
        snapshots: SnapshotSupport::Unsupported,
        wait_active: None,
        ..fast_options()
    };
    let report = conformance::run_all(&fake, &options).await.expect("passes");
    let skipped: Vec<_> = report.skipped.iter().map(|(c, _)| *c).collect();
    assert_eq!(skipped, ["wait_active", "snapshots"]);
    assert!(report.to_string().contains("skipped snapshots"), "{report}");
}

/// A backend that gets everything right except the listed mistakes.
struct Broken {
    inner: FakeVpsClient,
    destroy_twice_fails: bool,
    list_ignores_tag: bool,
    unknown_get_is_api_error: bool,
    /// Creates from the OS image whatever the request's snapshot.
    ignores_snapshot: bool,
    /// Reads return this creation time instead of the real one.
    created_at: Option<Option<OffsetDateTime>>,
}

impl Broken {
    fn new() -> Self {
        Self {
            inner: FakeVpsClient::new(),
            destroy_twice_fails: false,
            list_ignores_tag: false,
            unknown_get_is_api_error: false,
            ignores_snapshot: false,
            created_at: None,
        }
    }
}

#[async_trait]
impl VpsClient for Broken {
    fn provider_kind(&self) -> &str {
        "broken"
    }
    async fn create_instance(
        &self,
        r: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError> {
        if self.ignores_snapshot {
            let mut r = r.clone();
            r.snapshot = None;
            return self.inner.create_instance(&r).await;
        }
        self.inner.create_instance(r).await
    }
    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        if self.destroy_twice_fails && self.inner.instance_request(id).is_none() {
            return Err(VpsClientError::Api {
                status: 404,
                message: "instance not found".into(),
            });
        }
        self.inner.destroy_instance(id).await
    }
    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
        match self.inner.get_instance(id).await {
            Err(VpsClientError::NotFound { .. }) if self.unknown_get_is_api_error => {
                Err(VpsClientError::Api {
                    status: 404,
                    message: "not found".into(),
                })
            }
            Ok(mut info) => {
                if let Some(at) = self.created_at {
                    info.created_at = at;
                }
                Ok(info)
            }
            other => other,
        }
    }
    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError> {
        self.inner.socket_addr(id, port).await
    }
    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
        let tag = if self.list_ignores_tag { None } else { tag };
        self.inner.list_instances(tag).await
    }
    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        d: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        self.inner.create_snapshot(id, d).await
    }
    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        self.inner.delete_snapshot(id).await
    }
    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        self.inner.list_snapshots().await
    }
    async fn upload_ssh_key(&self, n: &str, k: &str) -> Result<SshKeyId, VpsClientError> {
        self.inner.upload_ssh_key(n, k).await
    }
    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        self.inner.delete_ssh_key(id).await
    }
    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        self.inner.list_ssh_keys().await
    }
}

#[tokio::test]
async fn suite_wants_a_plausible_creation_time() {
    let hour = vps_client::time::Duration::hours(1);
    for (created_at, complaint) in [
        (None, "has no created_at"),
        (
            Some(OffsetDateTime::now_utc() - hour),
            "not between the create",
        ),
        (
            Some(OffsetDateTime::now_utc() + hour),
            "not between the create",
        ),
    ] {
        let client = Broken {
            created_at: Some(created_at),
            ..Broken::new()
        };
        let err = conformance::check_create_get_destroy(&client, &fast_options())
            .await
            .expect_err("must fail");
        assert!(err.message.contains(complaint), "{err}");
        assert_eq!(client.inner.instance_count(), 0, "cleanup after failure");
    }
}

#[tokio::test]
async fn suite_catches_destroy_of_a_gone_instance_failing() {
    let client = Broken {
        destroy_twice_fails: true,
        ..Broken::new()
    };
    let err = conformance::check_create_get_destroy(&client, &fast_options())
        .await
        .expect_err("must fail");
    assert!(err.message.contains("a second time"), "{err}");
    let failures = conformance::run_all(&client, &fast_options())
        .await
        .expect_err("run_all must fail too");
    assert!(
        failures.0.iter().any(|f| f.check == "unknown_ids"),
        "{failures}"
    );
}

#[tokio::test]
async fn suite_catches_a_listing_that_ignores_the_tag() {
    let client = Broken {
        list_ignores_tag: true,
        ..Broken::new()
    };
    let options = ConformanceOptions {
        consistency_timeout: Duration::from_millis(200),
        ..fast_options()
    };
    let err = conformance::check_list_by_tag(&client, &options)
        .await
        .expect_err("must fail");
    assert!(err.message.contains("does not carry that tag"), "{err}");
    assert_eq!(client.inner.instance_count(), 0, "cleanup after failure");
}

#[tokio::test]
async fn suite_wants_not_found_for_unknown_ids() {
    let client = Broken {
        unknown_get_is_api_error: true,
        ..Broken::new()
    };
    let err = conformance::check_unknown_ids(&client, &fast_options())
        .await
        .expect_err("must fail");
    assert!(
        err.message.contains("expected VpsClientError::NotFound"),
        "{err}"
    );
}

#[tokio::test]
async fn cleanup_problems_are_reported() {
    use vps_client::fake::{Fault, Method};
    let fake = FakeVpsClient::new();
    // The check's own delete succeeds (call 1), the second (call 2, "already gone") too;
    // make the cleanup's delete (call 3) fail.
    fake.fail_call(Method::DeleteSshKey, 3, Fault::api(500));
    let err = conformance::check_ssh_keys(&fake, &fast_options())
        .await
        .expect_err("a failed cleanup must fail the check");
    assert!(err.message.contains("cleanup: delete_ssh_key"), "{err}");
}

//! Faults of the provider API at each create step, on the in-memory fake: each leaves no
//! instance, no key and no local key directory, names the step, and a failing undo is
//! reported, never swallowed. No network is touched: every fault ends the create before
//! anything would connect.

mod common;

use std::sync::Arc;

use vps_client::VpsClient;
use vps_client::fake::{FakeOptions, FakeVpsClient, Fault, Method};
use vps_docker_provider::{
    Cancel, CreateHostRequest, NoProgress, ProviderError, Step, VpsDockerProvider,
    VpsDockerProviderConfig,
};
use vps_primitives::{HostName, ProviderName};

fn provider(fake: Arc<FakeVpsClient>, keys: &tempfile::TempDir) -> VpsDockerProvider {
    let config = VpsDockerProviderConfig {
        vps_boot_timeout: 1.0,
        ..VpsDockerProviderConfig::default()
    };
    VpsDockerProvider::new(
        ProviderName::parse("fake").expect("name"),
        fake,
        config,
        keys.path(),
    )
    .expect("provider")
}

async fn create(provider: &VpsDockerProvider) -> ProviderError {
    provider
        .create_host(
            CreateHostRequest::new(HostName::parse("faulty").expect("name")),
            &NoProgress,
            &Cancel::never(),
        )
        .await
        .expect_err("the create must fail")
}

async fn assert_nothing_left(fake: &FakeVpsClient, keys: &tempfile::TempDir) {
    assert!(
        fake.list_instances(None).await.expect("list").is_empty(),
        "instances left"
    );
    assert!(
        fake.list_ssh_keys().await.expect("keys").is_empty(),
        "keys left"
    );
    common::assert_no_host_dirs(keys.path());
}

fn step_of(e: &ProviderError) -> Step {
    match e {
        ProviderError::Create { step, .. } => *step,
        other => panic!("not a create error: {other:?}"),
    }
}

#[tokio::test]
async fn each_provider_fault_rolls_back_and_names_its_step() {
    let cases: Vec<(&str, Method, Fault, Step)> = vec![
        (
            "key upload refused",
            Method::UploadSshKey,
            Fault::api(400),
            Step::UploadKey,
        ),
        (
            "create refused",
            Method::CreateInstance,
            Fault::api(422),
            Step::CreateInstance,
        ),
        (
            "create unreachable",
            Method::CreateInstance,
            Fault::transient(),
            Step::CreateInstance,
        ),
        (
            "create acted, then the answer was lost",
            Method::CreateInstance,
            Fault::outcome_unknown().after_acting(),
            Step::CreateInstance,
        ),
        (
            "instance lookup refused",
            Method::GetInstance,
            Fault::api(500),
            Step::WaitActive,
        ),
    ];
    for (what, method, fault, step) in cases {
        let fake = Arc::new(FakeVpsClient::new());
        let keys = tempfile::tempdir().expect("keys");
        let provider = provider(fake.clone(), &keys);
        fake.fail_next(method, 100, fault);
        let e = create(&provider).await;
        assert_eq!(step_of(&e), step, "{what}: {e}");
        let text = e.to_string();
        assert!(
            text.contains(step.as_str()),
            "{what}: the error names the step: {text}"
        );
        assert!(
            text.contains("everything it had made was removed"),
            "{what}: {text}"
        );
        fake.clear_faults();
        assert_nothing_left(&fake, &keys).await;
    }
}

#[tokio::test]
async fn a_vps_that_never_boots_times_out_and_is_destroyed() {
    let fake = Arc::new(FakeVpsClient::with_options(FakeOptions {
        reads_until_active: u32::MAX,
        ..FakeOptions::default()
    }));
    let keys = tempfile::tempdir().expect("keys");
    let provider = provider(fake.clone(), &keys);
    let e = create(&provider).await;
    assert_eq!(step_of(&e), Step::WaitActive, "{e}");
    assert_eq!(fake.calls(Method::DestroyInstance), 1);
    assert_nothing_left(&fake, &keys).await;
}

#[tokio::test]
async fn a_failing_undo_is_reported_with_the_original_error() {
    let fake = Arc::new(FakeVpsClient::new());
    let keys = tempfile::tempdir().expect("keys");
    let provider = provider(fake.clone(), &keys);
    fake.fail_next(Method::CreateInstance, 1, Fault::api(422));
    fake.fail_next(Method::DeleteSshKey, 100, Fault::api(500));
    let e = create(&provider).await;
    match &e {
        ProviderError::Create {
            step,
            rollback_failures,
            ..
        } => {
            assert_eq!(*step, Step::CreateInstance);
            assert_eq!(rollback_failures.len(), 1, "{rollback_failures:?}");
            assert!(rollback_failures[0].what.contains("uploaded SSH key"));
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("left things behind") && text.contains("uploaded SSH key"),
        "{text}"
    );
    // The key is still registered (the undo failed), and the local keys were removed.
    fake.clear_faults();
    assert_eq!(fake.list_ssh_keys().await.expect("keys").len(), 1);
    common::assert_no_host_dirs(keys.path());
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_created() {
    let fake = Arc::new(FakeVpsClient::new());
    let keys = tempfile::tempdir().expect("keys");
    let provider = provider(fake.clone(), &keys);
    let name = HostName::parse("fine").expect("name");
    let mut bad = Vec::new();
    let mut r = CreateHostRequest::new(name.clone());
    r.build_args = vec!["--vps-zone=x".into()];
    bad.push(r);
    let mut r = CreateHostRequest::new(name.clone());
    r.build_args = vec!["--vps-os=debian".into()];
    bad.push(r);
    let mut r = CreateHostRequest::new(name.clone());
    r.idle_timeout = Some(0);
    bad.push(r);
    let mut r = CreateHostRequest::new(name.clone());
    r.image = Some("-o/etc/passwd".into());
    bad.push(r);
    let mut r = CreateHostRequest::new(name.clone());
    r.tags.insert("a=b".into(), "c".into());
    bad.push(r);
    // A snapshot and a build: the snapshot's image would be lost to the build's.
    let context = tempfile::tempdir().expect("context");
    std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");
    let mut r = CreateHostRequest::new(name.clone());
    r.build_args = vec![context.path().display().to_string()];
    r.snapshot = Some(vps_docker_provider::SnapshotSource {
        host: "other".into(),
        snapshot: "snap".into(),
    });
    bad.push(r);
    for request in bad {
        let e = provider
            .create_host(request.clone(), &NoProgress, &Cancel::never())
            .await
            .expect_err("refused");
        assert!(
            matches!(e, ProviderError::InvalidInput(_) | ProviderError::Config(_)),
            "{request:?}: {e:?}"
        );
    }
    assert_eq!(fake.calls(Method::UploadSshKey), 0);
    assert_eq!(fake.calls(Method::CreateInstance), 0);
    assert_nothing_left(&fake, &keys).await;
}

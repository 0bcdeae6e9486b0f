//! Container snapshots, hibernation and the idle sweep end to end on `local-vps`: real fake
//! VPSes, the real host container, pinned keys throughout.

mod common;

use std::time::{Duration, Instant};

use docker_ssh::Command;
use host_store::IdleMode;
use vps_client::VpsClient;
use vps_docker_provider::{
    Cancel, CreateHostRequest, Host, HostStatus, IdleAction, NoProgress, ProviderError,
    SnapshotSource, StopReason, SweepSkip, VpsDockerProvider, VpsDockerProviderConfig,
};
use vps_primitives::HostName;

use common::Bed;

fn request(name: &str) -> CreateHostRequest {
    CreateHostRequest::new(HostName::parse(name).expect("valid name"))
}

/// Runs `script` in the container; it must succeed. Returns its trimmed stdout.
async fn sh(host: &Host, script: &str) -> String {
    let out = host
        .exec(&Command::script(script))
        .await
        .expect("exec in the container");
    assert!(out.success(), "{script}: {out:?}");
    out.stdout_trimmed()
}

/// Writes `value` to a file of the container's own filesystem and to one on the volume.
async fn write_both(host: &Host, value: &str) {
    sh(
        host,
        &format!("echo {value} > /root/in-container && echo {value} > /mngr/on-volume"),
    )
    .await;
}

async fn read_both(host: &Host) -> String {
    sh(
        host,
        "cat /root/in-container /mngr/on-volume | tr '\\n' ' '",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_restore_create_from_and_delete() {
    let bed = Bed::new();
    let provider = &bed.provider;
    let never = Cancel::never();
    let host = provider
        .create_host(request("snappy"), &NoProgress, &never)
        .await
        .expect("create");
    write_both(&host, "old").await;

    let snapshot = provider
        .create_snapshot("snappy", Some("before"))
        .await
        .expect("snapshot");
    assert_eq!(snapshot.name, "before");
    assert!(snapshot.id.starts_with("sha256:"), "{snapshot:?}");
    // The container answers again after the pause.
    assert_eq!(read_both(&host).await, "old old");
    let listed = bed.fresh().list_snapshots("snappy").await.expect("list");
    assert_eq!(listed, vec![snapshot.clone()]);
    assert!(matches!(
        provider.create_snapshot("snappy", Some("before")).await,
        Err(ProviderError::InvalidInput(_))
    ));

    write_both(&host, "new").await;
    assert_eq!(read_both(&host).await, "new new");
    host.close().await;

    // Start from the snapshot: the container's files and the volume are the old ones.
    let restored = provider
        .start_from_snapshot("snappy", "before")
        .await
        .expect("start from snapshot");
    assert!(restored.warnings().is_empty(), "{:?}", restored.warnings());
    assert_eq!(read_both(&restored).await, "old old");
    assert_eq!(
        provider.get_host("snappy").await.expect("get").status,
        HostStatus::Running
    );
    // The replaced container and volume are gone from the VPS.
    let vps = restored.vps_docker();
    let all = vps.ps(true, &[]).await.expect("ps on the VPS");
    assert!(all.iter().all(|c| !c.names.contains("replaced")), "{all:?}");

    // A waking request for a host that is not hibernated is refused, and makes nothing.
    let before = bed.client.list_instances(None).await.expect("instances");
    match provider.wake_host("snappy", &NoProgress, &never).await {
        Err(ProviderError::WrongState { .. }) => {}
        other => panic!("waking a running host must be refused, got {other:?}"),
    }
    match provider.wake_host("nobody", &NoProgress, &never).await {
        Err(ProviderError::HostNotFound(_)) => {}
        other => panic!("waking an unknown host must be refused, got {other:?}"),
    }
    let after = bed.client.list_instances(None).await.expect("instances");
    assert_eq!(before.len(), after.len(), "{after:?}");
    assert!(
        bed.client
            .list_snapshots()
            .await
            .expect("snapshots")
            .is_empty()
    );

    // A new host (a new VPS) from the snapshot: the image travels between the VPSes.
    let mut from = request("clone");
    from.snapshot = Some(SnapshotSource {
        host: "snappy".into(),
        snapshot: snapshot.id.clone(),
    });
    let clone = provider
        .create_host(from, &NoProgress, &never)
        .await
        .expect("create from snapshot");
    assert_eq!(read_both(&clone).await, "old old");
    assert_ne!(clone.id(), restored.id());
    let mut missing = request("nothing");
    missing.snapshot = Some(SnapshotSource {
        host: "snappy".into(),
        snapshot: "no-such-snapshot".into(),
    });
    assert!(matches!(
        provider.create_host(missing, &NoProgress, &never).await,
        Err(ProviderError::SnapshotNotFound { .. })
    ));

    // Delete: the entry and the image both go.
    let deleted = provider
        .delete_snapshot("snappy", "before")
        .await
        .expect("delete");
    assert_eq!(deleted, snapshot);
    assert!(
        provider
            .list_snapshots("snappy")
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        !vps.image_exists(&snapshot.image).await.expect("inspect"),
        "the image {} is still on the VPS",
        snapshot.image
    );
    assert!(matches!(
        provider.delete_snapshot("snappy", "before").await,
        Err(ProviderError::SnapshotNotFound { .. })
    ));
    // The restored host keeps running from the layers it uses.
    assert_eq!(read_both(&restored).await, "old old");

    restored.close().await;
    clone.close().await;
    provider.destroy_host("snappy").await.expect("destroy");
    provider.destroy_host("clone").await.expect("destroy clone");
    bed.assert_nothing_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hibernate_then_wake_from_another_process() {
    let bed = Bed::new();
    let provider = &bed.provider;
    let never = Cancel::never();
    let host = provider
        .create_host(request("sleeper"), &NoProgress, &never)
        .await
        .expect("create");
    write_both(&host, "kept").await;
    let id = host.id().clone();
    let instance = host.info().instance_id.clone().expect("instance");
    let pinned_before = provider.key_store().host(&id).vps_pin().expect("pin");
    host.close().await;

    let info = provider
        .hibernate_host("sleeper", &NoProgress, &never)
        .await
        .expect("hibernate");
    let HostStatus::Hibernated { snapshot } = &info.status else {
        panic!("expected hibernated, got {:?}", info.status);
    };
    // The fake VPS is gone; only the provider snapshot is left.
    assert!(
        testbed::docker(&["ps", "-aq", "--filter", &format!("name={instance}")]).is_empty(),
        "the VPS container {instance} is still there"
    );
    assert!(
        bed.client
            .list_instances(None)
            .await
            .expect("instances")
            .is_empty()
    );
    let snapshots = bed.client.list_snapshots().await.expect("snapshots");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(&snapshots[0].id, snapshot);

    // Another process sees it as hibernated, by name and by id.
    let fresh = bed.fresh();
    let listed = fresh.list_hosts().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].display_name(), "sleeper");
    assert!(
        matches!(listed[0].status, HostStatus::Hibernated { .. }),
        "{:?}",
        listed[0].status
    );
    assert_eq!(
        fresh.get_host(id.as_str()).await.expect("by id").status,
        listed[0].status
    );
    assert!(matches!(
        fresh.connect("sleeper").await,
        Err(ProviderError::Hibernated { .. })
    ));
    assert!(matches!(
        fresh.hibernate_host("sleeper", &NoProgress, &never).await,
        Err(ProviderError::WrongState { .. })
    ));
    assert!(matches!(
        fresh
            .create_host(request("sleeper"), &NoProgress, &never)
            .await,
        Err(ProviderError::NameTaken { .. })
    ));

    // Wake: a new VPS with a new pinned host key; the container and its volume are back.
    let woken = fresh
        .wake_host("sleeper", &NoProgress, &never)
        .await
        .expect("wake");
    assert!(woken.warnings().is_empty(), "{:?}", woken.warnings());
    assert_eq!(woken.id(), &id);
    assert_ne!(woken.info().instance_id.as_ref(), Some(&instance));
    assert_eq!(read_both(&woken).await, "kept kept");
    let pinned_after = fresh.key_store().host(&id).vps_pin().expect("pin");
    assert_ne!(pinned_before.key_data(), pinned_after.key_data());
    assert!(
        bed.client
            .list_snapshots()
            .await
            .expect("snapshots")
            .is_empty(),
        "the hibernation snapshot is deleted once the host answers"
    );
    let seen = provider.get_host("sleeper").await.expect("get");
    assert_eq!(seen.status, HostStatus::Running);
    // The record follows the new VPS: stop and start work on it.
    woken.close().await;
    provider
        .stop_host("sleeper", vps_docker_provider::StopReason::User)
        .await
        .expect("stop");
    let again = provider.start_host("sleeper").await.expect("start");
    assert_eq!(read_both(&again).await, "kept kept");
    again.close().await;

    // Hibernated hosts can be destroyed too: nothing left, no snapshot, no key.
    provider
        .hibernate_host("sleeper", &NoProgress, &never)
        .await
        .expect("hibernate again");
    provider.destroy_host("sleeper").await.expect("destroy");
    assert!(matches!(
        provider.get_host("sleeper").await,
        Err(ProviderError::HostNotFound(_))
    ));
    assert_nothing_left(&bed).await;
}

/// Nothing of the account is left: no provider snapshot, no uploaded key, nothing on the
/// engine or in the key directory.
async fn assert_nothing_left(bed: &Bed) {
    let snapshots = bed.client.list_snapshots().await.expect("snapshots");
    assert!(snapshots.is_empty(), "{snapshots:?}");
    let keys = bed.client.list_ssh_keys().await.expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
    bed.assert_nothing_left();
}

/// How many instances the account has.
async fn instances(bed: &Bed) -> usize {
    bed.client
        .list_instances(None)
        .await
        .expect("instances")
        .len()
}

/// Runs the idle sweep of `provider`, which must leave its one host alone for `why`.
async fn sweep_leaves_alone(provider: &VpsDockerProvider, why: SweepSkip) {
    let sweep = provider
        .hibernate_idle_hosts(&NoProgress, &Cancel::never())
        .await
        .expect("sweep");
    assert!(
        sweep.hibernated.is_empty() && sweep.failed.is_empty(),
        "{sweep}"
    );
    let skipped: Vec<&SweepSkip> = sweep.skipped.iter().map(|(_, why)| why).collect();
    assert_eq!(skipped, [&why], "{sweep}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_idle_sweep_hibernates_a_host_its_watcher_stopped() {
    let started = Instant::now();
    let bed = Bed::with_config(|c| {
        c.idle_check_interval = 1;
        c.idle_action = IdleAction::Hibernate;
    });
    let provider = &bed.provider;
    let never = Cancel::never();
    let mut req = request("dozer");
    req.idle_timeout = Some(10);
    req.idle_mode = Some(IdleMode::Ssh);
    let host = provider
        .create_host(req, &NoProgress, &never)
        .await
        .expect("create");
    write_both(&host, "kept").await;
    let id = host.id().clone();
    let instance = host.info().instance_id.clone().expect("instance");
    host.close().await;

    // Left alone, it stops by itself.
    let idle = HostStatus::Stopped {
        reason: Some(StopReason::Idle),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = provider.get_host("dozer").await.expect("get").status;
        if status == idle {
            break;
        }
        assert_eq!(
            status,
            HostStatus::Running,
            "only running, then stopped (idle)"
        );
        assert!(Instant::now() < deadline, "the idle host did not stop");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("stopped idle after {:.1}s", started.elapsed().as_secs_f64());

    // With idle_action = "stop" the sweep does nothing, and says so.
    let stop_only = common::provider_on(
        &bed.account,
        bed.keys.path(),
        VpsDockerProviderConfig {
            idle_action: IdleAction::Stop,
            ..provider.config().clone()
        },
    );
    let sweep = stop_only
        .hibernate_idle_hosts(&NoProgress, &never)
        .await
        .expect("sweep");
    assert_eq!(sweep.action, IdleAction::Stop);
    assert!(
        sweep.hibernated.is_empty() && sweep.failed.is_empty() && sweep.skipped.is_empty(),
        "{sweep}"
    );
    assert!(
        sweep.to_string().contains("idle_action is \"stop\""),
        "{sweep}"
    );
    assert_eq!(instances(&bed).await, 1);

    // With "hibernate" it hibernates the host: the fake VPS is gone.
    let sweep = provider
        .hibernate_idle_hosts(&NoProgress, &never)
        .await
        .expect("sweep");
    eprintln!("{sweep}");
    assert!(sweep.is_complete(), "{sweep}");
    assert!(sweep.skipped.is_empty(), "{sweep}");
    let hibernated: Vec<&vps_primitives::HostId> = sweep.hibernated.iter().map(|h| &h.id).collect();
    assert_eq!(hibernated, [&id], "{sweep}");
    assert!(
        matches!(sweep.hibernated[0].status, HostStatus::Hibernated { .. }),
        "{sweep}"
    );
    assert!(
        testbed::docker(&["ps", "-aq", "--filter", &format!("name={instance}")]).is_empty(),
        "the VPS container {instance} is still there"
    );
    assert_eq!(instances(&bed).await, 0);

    // Another process lists it as hibernated; its sweep leaves it alone.
    let fresh = bed.fresh();
    let listed = fresh.list_hosts().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    let HostStatus::Hibernated { snapshot } = &listed[0].status else {
        panic!("expected hibernated, got {:?}", listed[0].status);
    };
    sweep_leaves_alone(
        &fresh,
        SweepSkip::NotIdle(HostStatus::Hibernated {
            snapshot: snapshot.clone(),
        }),
    )
    .await;

    // Wake brings it back with its files, and exec works over the new pins.
    let woken = fresh
        .wake_host("dozer", &NoProgress, &never)
        .await
        .expect("wake");
    assert_eq!(woken.id(), &id);
    assert_eq!(read_both(&woken).await, "kept kept");
    woken.close().await;

    // A host a user stopped is not hibernated by the sweep.
    provider
        .stop_host("dozer", StopReason::User)
        .await
        .expect("stop");
    sweep_leaves_alone(
        provider,
        SweepSkip::NotIdle(HostStatus::Stopped {
            reason: Some(StopReason::User),
        }),
    )
    .await;
    assert_eq!(instances(&bed).await, 1);

    provider.destroy_host("dozer").await.expect("destroy");
    assert_nothing_left(&bed).await;
    eprintln!(
        "idle sweep test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

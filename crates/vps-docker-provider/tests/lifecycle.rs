//! The host lifecycle end to end on `local-vps`: real fake VPSes (systemd, cloud-init,
//! dockerd), the real host container with its own sshd, pinned keys throughout.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_ssh::{Command, SshError, SshPool, SshTarget};
use vps_client::VpsClient;
use vps_docker_provider::{
    Cancel, CreateHostRequest, HostStatus, NoProgress, ProviderError, Step, StepError, StopReason,
};
use vps_primitives::HostName;

use common::Bed;

fn request(name: &str) -> CreateHostRequest {
    CreateHostRequest::new(HostName::parse(name).expect("valid name"))
}

async fn echo(host: &vps_docker_provider::Host, text: &str) -> String {
    let out = host
        .exec(&Command::argv([
            "sh",
            "-c",
            &format!("echo {text}; hostname >/dev/null"),
        ]))
        .await
        .expect("exec in the container");
    assert!(out.success(), "{out:?}");
    out.stdout_trimmed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_stop_start_reboot_destroy_leaves_nothing() {
    let bed = Bed::new();
    let provider = &bed.provider;

    // Two hosts at once; the second must be untouched by everything done to the first.
    let started = Instant::now();
    let never = Cancel::never();
    let (a, b) = tokio::join!(
        provider.create_host(request("alpha"), &NoProgress, &never),
        provider.create_host(request("beta"), &NoProgress, &never),
    );
    let a = a.expect("create alpha");
    let b = b.expect("create beta");
    eprintln!(
        "two hosts created in {:.1}s; alpha's phases: {:?}",
        started.elapsed().as_secs_f64(),
        a.phases()
    );
    assert_eq!(echo(&a, "hello-a").await, "hello-a");
    assert_eq!(echo(&b, "hello-b").await, "hello-b");
    let whoami = a.exec(&Command::argv(["id", "-u"])).await.expect("exec");
    assert_eq!(whoami.stdout_trimmed(), "0");
    // The host volume is at host_dir.
    let out = a
        .exec(&Command::script("echo kept > /mngr/file && readlink /mngr"))
        .await
        .expect("exec");
    assert_eq!(out.stdout_trimmed(), "/mngr-vol", "{out:?}");

    // The VPS's host key is no longer the one in the user_data: connecting with it fails.
    let instance = a.info().instance_id.clone().expect("instance");
    // cloud-init keeps the user_data it ran; read it from outside the VPS.
    let user_data = testbed::docker(&[
        "exec",
        instance.as_str(),
        "cat",
        "/var/lib/cloud/instance/user-data.txt",
    ]);
    let old_public = user_data_public_key(&user_data);
    let pinned = bed
        .provider
        .key_store()
        .host(a.id())
        .vps_pin()
        .expect("pinned");
    assert_ne!(
        old_public.key_data(),
        pinned.key_data(),
        "the host key was rotated"
    );
    let keys = bed.provider.key_store().host(a.id()).load().expect("keys");
    let vps_addr = a.info().vps_ssh.expect("vps address");
    let stale = SshPool::new(
        SshTarget::new(
            vps_addr.ip().to_string(),
            vps_addr.port(),
            "root",
            keys.vps.clone(),
            old_public,
        ),
        docker_ssh::SshConfig::default().attempts(1, 1),
    );
    match stale.connect().await {
        Err(SshError::HostKeyMismatch { .. }) => {}
        other => panic!("the user_data's host key must be refused, got {other:?}"),
    }

    // Stop: the record says why; the host lists as stopped (user).
    let info = provider
        .stop_host("alpha", StopReason::User)
        .await
        .expect("stop");
    assert_eq!(
        info.status,
        HostStatus::Stopped {
            reason: Some(StopReason::User)
        }
    );
    let seen = provider.get_host("alpha").await.expect("get");
    assert_eq!(
        seen.status,
        HostStatus::Stopped {
            reason: Some(StopReason::User)
        }
    );
    assert!(
        a.exec(&Command::argv(["true"])).await.is_err(),
        "a stopped container does not answer"
    );

    // Start: sshd comes back by itself (the entrypoint starts it).
    let a = provider.start_host("alpha").await.expect("start");
    assert_eq!(echo(&a, "again").await, "again");
    assert_eq!(
        provider
            .get_host(a.id().as_str())
            .await
            .expect("by id")
            .status,
        HostStatus::Running
    );

    // Reboot the fake VPS: new ports; the container comes back (restart policy) with its
    // sshd (entrypoint), and the pins follow the host, not the address.
    let before = a.info().container_ssh.expect("address");
    bed.client
        .stop_instance(&instance)
        .await
        .expect("power off");
    bed.client
        .start_instance(&instance)
        .await
        .expect("power on");
    let a = wait_running(provider, "alpha").await;
    eprintln!(
        "container ssh before reboot {before}, after {:?}",
        a.info().container_ssh
    );
    assert_eq!(echo(&a, "after-reboot").await, "after-reboot");
    let kept = a
        .exec(&Command::argv(["cat", "/mngr/file"]))
        .await
        .expect("exec");
    assert_eq!(kept.stdout_trimmed(), "kept", "the host volume survives");

    // A fresh provider value (as another process) finds both, with their states.
    let fresh = bed.fresh();
    let listed = fresh.list_hosts().await.expect("list");
    let names: Vec<String> = listed.iter().map(|h| h.display_name()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(
        listed.iter().all(|h| h.status == HostStatus::Running),
        "{listed:?}"
    );

    // Destroy alpha: nothing of it left; beta untouched.
    let alpha_id = a.id().clone();
    a.close().await;
    provider.destroy_host("alpha").await.expect("destroy");
    assert!(matches!(
        provider.get_host("alpha").await,
        Err(ProviderError::HostNotFound(_))
    ));
    assert!(matches!(
        provider.destroy_host(alpha_id.as_str()).await,
        Err(ProviderError::HostNotFound(_))
    ));
    assert!(
        !bed.keys
            .path()
            .join("hosts")
            .join(alpha_id.as_str())
            .exists()
    );
    assert_eq!(echo(&b, "still-here").await, "still-here");

    b.close().await;
    provider.destroy_host("beta").await.expect("destroy beta");
    bed.assert_nothing_left();
    let keys = bed.client.list_ssh_keys().await.expect("keys");
    assert!(keys.is_empty(), "uploaded keys left: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_vps_lists_as_unreachable_within_the_connect_timeout() {
    let bed = Bed::with_config(|c| c.discovery_connect_timeout = 3.0);
    let host = bed
        .provider
        .create_host(request("sleepy"), &NoProgress, &Cancel::never())
        .await
        .expect("create");
    let instance = host.info().instance_id.clone().expect("instance");
    host.close().await;
    testbed::docker(&["pause", instance.as_str()]);
    let started = Instant::now();
    let listed = bed.fresh().list_hosts().await.expect("list");
    let took = started.elapsed();
    testbed::docker(&["unpause", instance.as_str()]);
    assert_eq!(listed.len(), 1);
    assert!(
        matches!(listed[0].status, HostStatus::Unreachable { .. }),
        "{:?}",
        listed[0].status
    );
    // Connect timeout 3 s, and the read of a connected VPS is bounded by twice that.
    assert!(took < Duration::from_secs(8), "listing took {took:?}");
    bed.provider.destroy_host("sleepy").await.expect("destroy");
    bed.assert_nothing_left();
}

/// Each fault leaves nothing behind and names the step.
async fn create_fails_at(bed: &Bed, request: CreateHostRequest, cancel: &Cancel, step: Step) {
    let result = bed.provider.create_host(request, &NoProgress, cancel).await;
    match result {
        Err(ProviderError::Create {
            step: failed,
            rollback_failures,
            ref source,
            ..
        }) => {
            assert_eq!(failed, step, "{source}");
            assert!(rollback_failures.is_empty(), "{rollback_failures:?}");
        }
        other => panic!("expected a failed create at {step}, got {other:?}"),
    }
    bed.assert_nothing_left();
    assert!(bed.client.list_ssh_keys().await.expect("keys").is_empty());
    assert!(bed.provider.list_hosts().await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_that_cannot_be_had_fails_at_the_image_step() {
    let bed = Bed::new();
    let mut req = request("no-image");
    req.image = Some("mngr-local/does-not-exist:1".into());
    create_fails_at(&bed, req, &Cancel::never(), Step::Image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_start_arg_fails_at_the_container_step() {
    let bed = Bed::new();
    let mut req = request("bad-args");
    req.start_args = vec!["--no-such-docker-flag".into()];
    create_fails_at(&bed, req, &Cancel::never(), Step::Container).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_create_rolls_back() {
    let bed = Bed::new();
    let (handle, cancel) = Cancel::new();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        handle.cancel();
    });
    let result = bed
        .provider
        .create_host(request("cancelled"), &NoProgress, &cancel)
        .await;
    canceller.await.expect("canceller");
    match result {
        Err(ProviderError::Create {
            source: StepError::Cancelled,
            rollback_failures,
            ..
        }) => {
            assert!(rollback_failures.is_empty(), "{rollback_failures:?}");
        }
        other => panic!("expected a cancelled create, got {other:?}"),
    }
    bed.assert_nothing_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_host_stops_itself_records_why_and_starts_again() {
    let bed = Bed::with_config(|c| c.idle_check_interval = 1);
    let mut req = request("idler");
    req.idle_timeout = Some(10);
    req.idle_mode = Some(host_store::IdleMode::Ssh);
    let host = bed
        .provider
        .create_host(req, &NoProgress, &Cancel::never())
        .await
        .expect("create");
    // SSH commands are activity: for 16 s (past the timeout) it keeps running.
    for _ in 0..8 {
        host.exec(&Command::argv(["true"])).await.expect("exec");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        bed.provider.get_host("idler").await.expect("get").status,
        HostStatus::Running
    );
    host.close().await;
    // Left alone, it stops by itself, and a fresh provider sees why.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen = bed.fresh().get_host("idler").await.expect("get");
        if seen.status
            == (HostStatus::Stopped {
                reason: Some(StopReason::Idle),
            })
        {
            let record = seen.record.expect("record");
            assert_eq!(
                record.certified_host_data.stop_reason,
                Some(StopReason::Idle.as_state()),
                "the idle stop is recorded"
            );
            break;
        }
        assert_eq!(
            seen.status,
            HostStatus::Running,
            "only running, then stopped (idle)"
        );
        assert!(Instant::now() < deadline, "the idle host did not stop");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let host = bed.provider.start_host("idler").await.expect("start again");
    assert_eq!(echo(&host, "awake").await, "awake");
    host.close().await;
    bed.provider.destroy_host("idler").await.expect("destroy");
    bed.assert_nothing_left();
}

async fn wait_running(
    provider: &vps_docker_provider::VpsDockerProvider,
    name: &str,
) -> vps_docker_provider::Host {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match provider.connect(name).await {
            Ok(host) => match host.exec(&Command::argv(["true"])).await {
                Ok(out) if out.success() => return host,
                other => eprintln!("not yet: {other:?}"),
            },
            Err(e) => eprintln!("not yet: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not come back after the reboot"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The public host key written in a user_data document (`ed25519_public: ...`).
fn user_data_public_key(user_data: &str) -> docker_ssh::PublicKey {
    let line = user_data
        .lines()
        .find_map(|l| l.trim().strip_prefix("ed25519_public:"))
        .expect("the user_data carries a public host key");
    let line = line.trim().trim_matches('"');
    docker_ssh::parse_public_key(line).expect("a public key")
}

#[allow(dead_code)]
fn _assert_send(p: &vps_docker_provider::VpsDockerProvider) -> Arc<dyn VpsClient> {
    p.client().clone()
}

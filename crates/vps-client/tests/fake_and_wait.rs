//! The fake's fault injection and the polling helper, on tokio's paused clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use vps_client::fake::{FakeOptions, FakeVpsClient, Fault, Method};
use vps_client::{
    CreateInstanceRequest, UserData, VpsClient, VpsClientError, WaitOptions, probe_tcp_banner,
    probe_tcp_connect, wait_until_active,
};
use vps_primitives::{
    Backoff, OsId, PlanId, RegionId, Tag, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId,
};

fn request(label: &str) -> CreateInstanceRequest {
    CreateInstanceRequest {
        label: label.to_owned(),
        region: RegionId::parse("ewr").expect("valid"),
        plan: PlanId::parse("vc2-1c-1gb").expect("valid"),
        os: OsId(2136),
        snapshot: None,
        user_data: UserData::new("#cloud-config\n{}\n"),
        ssh_key_ids: vec![],
        tags: vec!["mngr-provider=test".parse::<Tag>().expect("valid")],
        ports: vec![22],
    }
}

fn always_ok(_: SocketAddr) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Ok(()))
}

#[tokio::test]
async fn nth_call_fails_and_is_counted() {
    let fake = FakeVpsClient::new();
    fake.fail_call(Method::CreateInstance, 2, Fault::api(422));
    assert!(fake.create_instance(&request("a")).await.is_ok());
    let err = fake
        .create_instance(&request("b"))
        .await
        .expect_err("second call fails");
    assert!(
        matches!(err, VpsClientError::Api { status: 422, .. }),
        "{err}"
    );
    assert!(fake.create_instance(&request("c")).await.is_ok());
    assert_eq!(fake.calls(Method::CreateInstance), 3);
    assert_eq!(fake.instance_count(), 2);
}

#[tokio::test]
async fn next_calls_fail_transiently_then_recover() {
    let fake = FakeVpsClient::new();
    fake.fail_next(Method::ListInstances, 2, Fault::transient());
    for _ in 0..2 {
        let err = fake.list_instances(None).await.expect_err("injected");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("list_instances"), "{err}");
    }
    assert!(fake.list_instances(None).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn delays_apply_to_one_method() {
    let fake = FakeVpsClient::new();
    fake.set_delay(Method::ListSshKeys, Duration::from_secs(7));
    let t = tokio::time::Instant::now();
    fake.list_snapshots().await.expect("no delay here");
    assert_eq!(t.elapsed(), Duration::ZERO);
    fake.list_ssh_keys().await.expect("delayed but fine");
    assert_eq!(t.elapsed(), Duration::from_secs(7));
    fake.clear_faults();
    let t = tokio::time::Instant::now();
    fake.list_ssh_keys().await.expect("fine");
    assert_eq!(t.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn create_refuses_unknown_keys_and_keeps_the_user_data() {
    let fake = FakeVpsClient::new();
    let mut req = request("x");
    req.ssh_key_ids
        .push(vps_primitives::SshKeyId::parse("nope").expect("valid"));
    let err = fake.create_instance(&req).await.expect_err("unknown key");
    assert!(err.to_string().contains("nope"), "{err}");
    let id = fake.create_instance(&request("y")).await.expect("ok");
    let user_data = fake.instance_user_data(&id).expect("exists");
    assert_eq!(user_data.expose(), "#cloud-config\n{}\n");
    assert!(!format!("{:?}", fake.instance_request(&id)).contains("cloud-config"));
}

#[tokio::test]
async fn an_outcome_unknown_fault_orders_nothing_unless_it_strikes_after_acting() {
    let fake = FakeVpsClient::new();
    let tag: Tag = "mngr-provider=test".parse().expect("valid");

    fake.fail_next(Method::CreateInstance, 1, Fault::outcome_unknown());
    let err = fake
        .create_instance(&request("lost"))
        .await
        .expect_err("injected");
    assert!(
        matches!(&err, VpsClientError::OutcomeUnknown { message } if message.contains("create_instance")),
        "{err}"
    );
    assert!(!err.is_transient(), "{err}");
    assert_eq!(fake.instance_count(), 0, "the order was lost");

    fake.fail_next(
        Method::CreateInstance,
        1,
        Fault::outcome_unknown().after_acting(),
    );
    let err = fake
        .create_instance(&request("went-through"))
        .await
        .expect_err("injected");
    assert!(
        matches!(err, VpsClientError::OutcomeUnknown { .. }),
        "{err}"
    );
    // What a caller does next: look the instance up by its tags.
    let found = fake.list_instances(Some(&tag)).await.expect("list");
    assert_eq!(found.len(), 1, "the order went through: {found:?}");
    assert_eq!(found[0].label, "went-through");

    // A call that fails by itself reports its own error, not the injected one.
    fake.fail_next(Method::CreateInstance, 1, Fault::api(500).after_acting());
    let err = fake
        .create_instance(&request(" "))
        .await
        .expect_err("empty label");
    assert!(
        matches!(&err, VpsClientError::Api { status: 400, .. }),
        "{err}"
    );
    assert_eq!(fake.calls(Method::CreateInstance), 3);
}

#[tokio::test]
async fn create_from_a_snapshot_needs_a_known_snapshot() {
    let fake = FakeVpsClient::new();
    let source = fake.create_instance(&request("src")).await.expect("ok");
    let snapshot = fake
        .create_snapshot(&source, "golden")
        .await
        .expect("snapshot");

    let mut unknown = request("from-unknown");
    unknown.snapshot = Some(VpsSnapshotId::parse("fake-s-99999999").expect("valid"));
    let err = fake
        .create_instance(&unknown)
        .await
        .expect_err("unknown snapshot");
    assert!(
        matches!(&err, VpsClientError::NotFound { kind: "snapshot", id } if id == "fake-s-99999999"),
        "{err}"
    );
    assert_eq!(fake.instance_count(), 1, "nothing was ordered");

    let mut known = request("from-golden");
    known.snapshot = Some(snapshot.clone());
    let copy = fake.create_instance(&known).await.expect("known snapshot");
    assert_eq!(
        fake.instance_request(&copy).and_then(|r| r.snapshot),
        Some(snapshot)
    );
    assert_eq!(
        fake.instance_user_data(&copy).expect("exists").expose(),
        "#cloud-config\n{}\n",
        "the user_data applies to an instance made from a snapshot"
    );
}

#[tokio::test(start_paused = true)]
async fn wait_returns_the_address_once_active() {
    let fake = FakeVpsClient::with_options(FakeOptions {
        reads_until_active: 3,
        ..FakeOptions::default()
    });
    let id = fake.create_instance(&request("w")).await.expect("ok");
    let addr = wait_until_active(&fake, &id, 22, &WaitOptions::default(), always_ok)
        .await
        .expect("becomes active");
    assert_eq!(addr.port(), 22);
    assert_eq!(fake.calls(Method::InstanceStatus), 4);
}

#[tokio::test(start_paused = true)]
async fn wait_retries_transient_errors_and_failed_probes() {
    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("w")).await.expect("ok");
    fake.set_status(&id, VpsInstanceStatus::Active);
    fake.fail_next(Method::InstanceStatus, 2, Fault::transient());
    let probes = Arc::new(AtomicU32::new(0));
    let p = probes.clone();
    let probe = move |_addr: SocketAddr| {
        let n = p.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err("connection refused")
            } else {
                Ok(())
            }
        }
    };
    wait_until_active(&fake, &id, 22, &WaitOptions::default(), probe)
        .await
        .expect("eventually reachable");
    assert_eq!(probes.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn wait_times_out_saying_what_it_last_saw() {
    let fake = FakeVpsClient::with_options(FakeOptions {
        reads_until_active: u32::MAX,
        ..FakeOptions::default()
    });
    let id = fake.create_instance(&request("w")).await.expect("ok");
    let opts = WaitOptions {
        timeout: Duration::from_secs(30),
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(4)),
        probe_timeout: Duration::from_secs(1),
    };
    let t = tokio::time::Instant::now();
    let err = wait_until_active(&fake, &id, 22, &opts, always_ok)
        .await
        .expect_err("never active");
    assert_eq!(
        t.elapsed(),
        Duration::from_secs(30),
        "stops at the deadline"
    );
    let text = err.to_string();
    assert!(text.contains("last seen status PENDING"), "{text}");
    assert!(text.contains(id.as_str()), "{text}");
    // 1, 2, 4, 4, ... s apart: 0,1,3,7,11,15,19,23,27 and the final poll at 30.
    assert_eq!(fake.calls(Method::InstanceStatus), 10);

    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("w")).await.expect("ok");
    fake.set_status(&id, VpsInstanceStatus::Active);
    let probe = |_addr: SocketAddr| async { Err::<(), _>("kex reset by peer") };
    let err = wait_until_active(&fake, &id, 22, &opts, probe)
        .await
        .expect_err("never reachable");
    let text = err.to_string();
    assert!(text.contains("not reachable: kex reset by peer"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn wait_gives_up_at_once_when_waiting_cannot_help() {
    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("w")).await.expect("ok");
    fake.vanish(&id);
    let err = wait_until_active(&fake, &id, 22, &WaitOptions::default(), always_ok)
        .await
        .expect_err("gone");
    assert!(matches!(err, VpsClientError::NotFound { .. }), "{err}");

    let unknown = VpsInstanceId::parse("does-not-exist").expect("valid");
    let err = wait_until_active(&fake, &unknown, 22, &WaitOptions::default(), always_ok)
        .await
        .expect_err("unknown");
    assert!(matches!(err, VpsClientError::NotFound { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_destroying_instance_ends_the_wait_with_its_own_error_that_is_not_retryable() {
    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("w")).await.expect("ok");
    fake.set_status(&id, VpsInstanceStatus::Destroying);
    let t = tokio::time::Instant::now();
    let err = wait_until_active(&fake, &id, 22, &WaitOptions::default(), always_ok)
        .await
        .expect_err("being destroyed");
    assert_eq!(t.elapsed(), Duration::ZERO, "no poll after the first");
    assert!(
        matches!(&err, VpsClientError::Destroying { id: seen } if seen == &id),
        "{err:?}"
    );
    assert!(!err.is_transient(), "a caller must not retry: {err}");
    assert!(err.to_string().contains("being destroyed"), "{err}");
    assert_eq!(fake.calls(Method::InstanceStatus), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_probe_counts_as_unreachable() {
    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("w")).await.expect("ok");
    fake.set_status(&id, VpsInstanceStatus::Active);
    let opts = WaitOptions {
        timeout: Duration::from_secs(20),
        ..WaitOptions::default()
    };
    let probe = |_addr: SocketAddr| std::future::pending::<Result<(), String>>();
    let err = wait_until_active(&fake, &id, 22, &opts, probe)
        .await
        .expect_err("hangs");
    assert!(
        err.to_string().contains("did not answer within 10.0s"),
        "{err}"
    );
}

#[tokio::test]
async fn tcp_probes_against_a_real_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        // The connect probe, then a connection closed without a greeting (like
        // docker-proxy before sshd listens), an SSH greeting, and something else.
        for greeting in [&b""[..], b"", b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 400"] {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.write_all(greeting).await.expect("write");
        }
    });
    probe_tcp_connect(addr).await.expect("connects");
    let err = probe_tcp_banner(addr, b"SSH-")
        .await
        .expect_err("no greeting");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    probe_tcp_banner(addr, b"SSH-").await.expect("greets");
    let err = probe_tcp_banner(addr, b"SSH-")
        .await
        .expect_err("wrong greeting");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("HTTP"), "{err}");
    server.await.expect("server");
}

#[tokio::test]
async fn wait_with_a_banner_probe_on_a_local_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-test\r\n").await;
        }
    });
    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("w")).await.expect("ok");
    assert!(fake.set_socket_addr(&id, 22, addr));
    let opts = WaitOptions {
        backoff: Backoff {
            initial: Duration::from_millis(1),
            ..WaitOptions::default().backoff
        },
        ..WaitOptions::with_timeout(Duration::from_secs(10))
    };
    let got = wait_until_active(&fake, &id, 22, &opts, |a| probe_tcp_banner(a, b"SSH-"))
        .await
        .expect("reachable");
    assert_eq!(got, addr);
}

#[tokio::test]
async fn statuses_follow_reads_and_manual_changes() {
    let fake = FakeVpsClient::new();
    let id = fake.create_instance(&request("s")).await.expect("ok");
    let pending = VpsInstanceStatus::Pending;
    let active = VpsInstanceStatus::Active;
    let info = fake.get_instance(&id).await.expect("exists");
    assert_eq!((info.status, info.address), (pending, None));
    assert!(matches!(
        fake.socket_addr(&id, 22).await,
        Err(VpsClientError::NotReady { .. })
    ));
    assert_eq!(fake.instance_status(&id).await.expect("exists"), pending);
    let info = fake.get_instance(&id).await.expect("exists");
    assert_eq!(info.status, active, "pending for two reads by default");
    assert!(info.address.is_some());
    assert_eq!(
        fake.socket_addr(&id, 2222).await.expect("ready").port(),
        2222
    );

    assert!(fake.set_status(&id, VpsInstanceStatus::Halted));
    assert_eq!(
        fake.instance_status(&id).await.expect("exists"),
        VpsInstanceStatus::Halted
    );
    assert!(fake.set_status(&id, pending));
    assert_eq!(fake.instance_status(&id).await.expect("exists"), pending);
    assert_eq!(fake.instance_status(&id).await.expect("exists"), pending);
    assert_eq!(fake.instance_status(&id).await.expect("exists"), active);

    let listed = fake.list_instances(None).await.expect("lists");
    assert_eq!(listed.len(), 1);
    assert!(fake.vanish(&id));
    assert!(!fake.set_status(&id, active));
    assert!(fake.list_instances(None).await.expect("lists").is_empty());
}

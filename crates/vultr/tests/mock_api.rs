//! `VultrClient` against a stateful mock of the Vultr API: pagination, retries, errors
//! (creates of unknown outcome among them), readiness, request bodies (creates from a
//! snapshot among them), firewall groups, rate limit and timeouts.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use support::{BootStep, DroppingProxy, MockVultr, client_at, config_for, error, refused_addr};
use vps_client::{
    CreateInstanceRequest, UserData, VpsClient, VpsClientError, WaitOptions, wait_until_active,
};
use vps_primitives::{
    Backoff, OsId, PlanId, RegionId, SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus,
};
use vultr::{VultrClient, VultrConfig};
use wiremock::ResponseTemplate;

fn request(label: &str) -> CreateInstanceRequest {
    CreateInstanceRequest {
        label: label.to_owned(),
        region: RegionId::parse("ewr").expect("region"),
        plan: PlanId::parse("vc2-1c-1gb").expect("plan"),
        os: OsId(2136),
        snapshot: None,
        user_data: UserData::new("#cloud-config\npackages: [docker.io]\n"),
        ssh_key_ids: Vec::new(),
        tags: vec!["mngr-provider=vultr".parse().expect("tag")],
        ports: vec![22, 2222],
    }
}

/// `wait_until_active` on port 22, the one wait for every provider, polling every 10 ms
/// and probing nothing (the mock's addresses are documentation IPs).
async fn wait_ready(
    client: &VultrClient,
    id: &VpsInstanceId,
    timeout: Duration,
) -> Result<std::net::SocketAddr, VpsClientError> {
    let options = WaitOptions {
        timeout,
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(10)),
        probe_timeout: Duration::from_secs(1),
    };
    let probe = |_| async { Ok::<(), std::io::Error>(()) };
    wait_until_active(client, id, 22, &options, probe).await
}

fn id(text: &str) -> VpsInstanceId {
    VpsInstanceId::parse(text).expect("instance id")
}

/// The ports of a firewall group's rules, sorted.
fn rule_ports(rules: &[Value]) -> Vec<&str> {
    let mut ports: Vec<&str> = rules.iter().filter_map(|r| r["port"].as_str()).collect();
    ports.sort();
    ports
}

/// The requests of one method and path the server saw.
async fn count(mock: &MockVultr, verb: &str, api_path: &str) -> usize {
    mock.requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == api_path)
        .count()
}

// ---------------------------------------------------------------------------------------
// Pagination

#[tokio::test]
async fn lists_follow_the_cursor_over_250_instances() {
    let mock = MockVultr::start().await;
    let ours = mock.seed_instances(250, &["mngr-provider=vultr", "mngr-host-id=x"]);
    mock.seed_instances(7, &["team=web"]);
    let client = mock.client(); // 100 per page

    let tag: Tag = "mngr-provider=vultr".parse().expect("tag");
    let listed = client.list_instances(Some(&tag)).await.expect("list");
    assert_eq!(listed.len(), 250);
    let mut listed_ids: Vec<String> = listed.iter().map(|i| i.id.to_string()).collect();
    let mut expected = ours.clone();
    listed_ids.sort();
    expected.sort();
    assert_eq!(listed_ids, expected, "every instance exactly once");
    assert!(listed.iter().all(|i| i.status == VpsInstanceStatus::Active));

    let pages: Vec<_> = mock
        .requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/v2/instances")
        .collect();
    assert_eq!(pages.len(), 3, "250 items at 100 per page");
    for page in &pages {
        let query = page.url.query().unwrap_or_default();
        assert!(query.contains("tag=mngr-provider%3Dvultr"), "{query}");
        assert!(query.contains("per_page=100"), "{query}");
    }
    assert!(!pages[0].url.query().unwrap_or_default().contains("cursor="));
    assert!(pages[1].url.query().unwrap_or_default().contains("cursor="));
    assert!(pages[2].url.query().unwrap_or_default().contains("cursor="));

    let all = client.list_instances(None).await.expect("list all");
    assert_eq!(all.len(), 257);
}

#[tokio::test]
async fn keys_and_snapshots_are_paginated_too() {
    let mock = MockVultr::start().await;
    let client = VultrClient::new(VultrConfig {
        page_size: 2,
        ..mock.config()
    })
    .expect("client");
    for n in 0..5 {
        client
            .upload_ssh_key(&format!("key-{n}"), "ssh-ed25519 AAAAC3Nza me@host")
            .await
            .expect("upload");
    }
    let instance = client
        .create_instance(&request("mngr-snap"))
        .await
        .expect("create");
    for n in 0..3 {
        client
            .create_snapshot(&instance, &format!("snap-{n}"))
            .await
            .expect("snapshot");
    }
    assert_eq!(client.list_ssh_keys().await.expect("keys").len(), 5);
    assert_eq!(client.list_snapshots().await.expect("snapshots").len(), 3);
    assert_eq!(count(&mock, "GET", "/v2/ssh-keys").await, 3);
    assert_eq!(count(&mock, "GET", "/v2/snapshots").await, 2);
}

#[tokio::test]
async fn a_cursor_that_repeats_is_an_invalid_answer_not_an_endless_loop() {
    let mock = MockVultr::start().await;
    let looping = serde_json::json!({
        "ssh_keys": [], "meta": {"total": 1, "links": {"next": "bmV4dF9fMQ==", "prev": ""}}
    });
    mock.fail_next(
        "GET",
        "/v2/ssh-keys",
        100,
        ResponseTemplate::new(200).set_body_json(looping),
    )
    .await;
    let err = mock.client().list_ssh_keys().await.expect_err("loop");
    assert!(
        matches!(&err, VpsClientError::InvalidResponse(m) if m.contains("cursor")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn a_429_with_retry_after_waits_as_told_then_succeeds() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "GET",
        "/v2/instances",
        1,
        error(
            429,
            "Rate limit reached - please try your request again later.",
        )
        .insert_header("Retry-After", "1"),
    )
    .await;
    let start = Instant::now();
    let listed = mock.client().list_instances(None).await.expect("list");
    let elapsed = start.elapsed();
    assert!(listed.is_empty());
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After ignored: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(count(&mock, "GET", "/v2/instances").await, 2);
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_then_succeeds() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "GET",
        "/v2/instances",
        3,
        error(
            429,
            "Rate limit reached - please try your request again later.",
        ),
    )
    .await;
    let start = Instant::now();
    mock.client().list_instances(None).await.expect("list");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(count(&mock, "GET", "/v2/instances").await, 4);
}

#[tokio::test]
async fn a_503_is_retried_even_for_a_create() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "POST",
        "/v2/instances",
        2,
        error(503, "Service temporarily unavailable."),
    )
    .await;
    let created = mock
        .client()
        .create_instance(&request("mngr-503"))
        .await
        .expect("create after 503s");
    assert_eq!(count(&mock, "POST", "/v2/instances").await, 3);
    assert_eq!(mock.instance_count(), 1, "exactly one instance ordered");
    assert!(mock.instance_json(created.as_str()).is_some());
}

#[tokio::test]
async fn other_5xx_are_retried_for_reads_and_deletes() {
    let mock = MockVultr::start().await;
    let ids = mock.seed_instances(1, &[]);
    let instance = id(&ids[0]);
    let instance_path = format!("/v2/instances/{instance}");
    mock.fail_next("GET", &instance_path, 1, error(500, "Internal error."))
        .await;
    mock.fail_next(
        "GET",
        &instance_path,
        1,
        ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"),
    )
    .await;
    mock.fail_next("DELETE", &instance_path, 1, ResponseTemplate::new(504))
        .await;
    let client = mock.client();
    let info = client.get_instance(&instance).await.expect("get after 5xx");
    assert_eq!(info.id, instance);
    client
        .destroy_instance(&instance)
        .await
        .expect("destroy after 504");
    assert_eq!(mock.instance_count(), 0);
    assert_eq!(count(&mock, "GET", &instance_path).await, 3);
    assert_eq!(count(&mock, "DELETE", &instance_path).await, 2);
}

#[tokio::test]
async fn a_500_on_create_is_not_repeated_and_its_outcome_is_unknown() {
    let mock = MockVultr::start().await;
    mock.fail_next("POST", "/v2/instances", 1, error(500, "Internal error."))
        .await;
    let err = mock
        .client()
        .create_instance(&request("mngr-500"))
        .await
        .expect_err("500");
    assert!(
        matches!(&err, VpsClientError::OutcomeUnknown { message }
            if message.contains("POST /instances") && message.contains("HTTP 500") && message.contains("Internal error.")),
        "{err}"
    );
    assert!(!err.is_transient(), "a caller must not simply retry: {err}");
    assert_eq!(count(&mock, "POST", "/v2/instances").await, 1);
}

#[tokio::test]
async fn other_posts_that_may_have_acted_have_an_unknown_outcome_too() {
    let mock = MockVultr::start().await;
    let client = mock.client();
    let instance = client
        .create_instance(&request("mngr-posts"))
        .await
        .expect("create");
    mock.fail_next("POST", "/v2/snapshots", 1, ResponseTemplate::new(502))
        .await;
    mock.fail_next("POST", "/v2/ssh-keys", 1, error(504, "Gateway timeout."))
        .await;
    let err = client
        .create_snapshot(&instance, "snap")
        .await
        .expect_err("502");
    assert!(
        matches!(&err, VpsClientError::OutcomeUnknown { message } if message.contains("HTTP 502")),
        "{err}"
    );
    let err = client
        .upload_ssh_key("k", "ssh-ed25519 AAAAC3Nza me@host")
        .await
        .expect_err("504");
    assert!(
        matches!(&err, VpsClientError::OutcomeUnknown { message } if message.contains("Gateway timeout.")),
        "{err}"
    );
    assert_eq!(count(&mock, "POST", "/v2/snapshots").await, 1);
    assert_eq!(count(&mock, "POST", "/v2/ssh-keys").await, 1);
}

#[tokio::test]
async fn a_503_on_create_that_outlasts_the_retries_is_transient() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "POST",
        "/v2/instances",
        100,
        error(503, "Service temporarily unavailable."),
    )
    .await;
    let err = mock
        .client()
        .create_instance(&request("mngr-503-always"))
        .await
        .expect_err("always 503");
    assert!(
        matches!(&err, VpsClientError::Transient { message }
            if message.contains("HTTP 503") && message.contains("gave up after 5 attempts")),
        "{err}"
    );
    assert!(
        err.is_transient(),
        "a 503 says the order was not taken: {err}"
    );
    assert_eq!(count(&mock, "POST", "/v2/instances").await, 5);
    assert_eq!(mock.instance_count(), 0);
}

#[tokio::test]
async fn a_create_that_never_connects_is_transient_after_the_retries() {
    let client = client_at(refused_addr());
    let err = client
        .create_instance(&request("mngr-refused-always"))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, VpsClientError::Transient { message }
            if message.contains("POST /instances") && message.contains("gave up after 5 attempts")),
        "{err}"
    );
}

#[tokio::test]
async fn retries_run_out_into_a_transient_error_with_the_last_answer() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "GET",
        "/v2/ssh-keys",
        100,
        error(503, "Service temporarily unavailable."),
    )
    .await;
    let err = mock.client().list_ssh_keys().await.expect_err("always 503");
    match &err {
        VpsClientError::Transient { message } => {
            assert!(message.contains("HTTP 503"), "{message}");
            assert!(
                message.contains("Service temporarily unavailable."),
                "{message}"
            );
            assert!(message.contains("gave up after 5 attempts"), "{message}");
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(err.is_transient());
    // max_retries = 4 in the test config: 5 attempts.
    assert_eq!(count(&mock, "GET", "/v2/ssh-keys").await, 5);
}

#[tokio::test]
async fn a_dropped_connection_is_retried_for_a_read() {
    let mock = MockVultr::start().await;
    let ids = mock.seed_instances(1, &[]);
    let proxy = DroppingProxy::start(*mock.server.address(), 1).await;
    let client = client_at(proxy.addr);
    let info = client
        .get_instance(&id(&ids[0]))
        .await
        .expect("get after a drop");
    assert_eq!(info.id.as_str(), ids[0]);
    assert_eq!(proxy.connections(), 2, "one dropped, one relayed");
}

#[tokio::test]
async fn a_create_whose_connection_dropped_after_sending_is_not_repeated() {
    let mock = MockVultr::start().await;
    let proxy = DroppingProxy::start(*mock.server.address(), 1).await;
    let client = client_at(proxy.addr);
    let err = client
        .create_instance(&request("mngr-dropped"))
        .await
        .expect_err("dropped");
    assert!(
        matches!(&err, VpsClientError::OutcomeUnknown { message } if message.contains("POST /instances")),
        "{err}"
    );
    assert!(!err.is_transient(), "{err}");
    assert_eq!(proxy.connections(), 1, "the create was sent once only");
    assert_eq!(mock.instance_count(), 0);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported_as_transient() {
    let client = client_at(refused_addr());
    let err = client.list_instances(None).await.expect_err("refused");
    match &err {
        VpsClientError::Transient { message } => {
            assert!(message.contains("GET /instances"), "{message}");
            assert!(message.contains("gave up after 5 attempts"), "{message}");
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_for_a_create_too_and_then_succeeds() {
    // Connect failures mean the request never left, so even a create is repeated.
    let mock = MockVultr::start().await;
    let addr = refused_addr();
    let upstream = *mock.server.address();
    let client = VultrClient::new(VultrConfig {
        retry_initial_backoff_secs: 0.2,
        retry_max_backoff_secs: 0.4,
        ..config_for(&format!("http://{addr}/v2"))
    })
    .expect("client");
    // Start relaying on that port shortly after the first attempt was refused.
    let relay = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let created = client.create_instance(&request("mngr-refused")).await;
    relay.abort();
    created.expect("create after a refused connection");
    assert_eq!(mock.instance_count(), 1);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_read_is_retried() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "GET",
        "/v2/ssh-keys",
        1,
        error(200, "never read").set_delay(Duration::from_secs(3)),
    )
    .await;
    let client = VultrClient::new(VultrConfig {
        request_timeout_secs: 0.3,
        ..mock.config()
    })
    .expect("client");
    let start = Instant::now();
    let keys = client.list_ssh_keys().await.expect("keys after a timeout");
    assert!(keys.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(count(&mock, "GET", "/v2/ssh-keys").await, 2);
}

// ---------------------------------------------------------------------------------------
// Permanent errors

#[tokio::test]
async fn a_permanent_4xx_is_not_retried_and_carries_the_api_message() {
    let mock = MockVultr::start().await;
    let mut bad = request("mngr-bad-plan");
    bad.plan = PlanId::parse("vc2-99c-1tb").expect("plan");
    let err = mock
        .client()
        .create_instance(&bad)
        .await
        .expect_err("bad plan");
    match &err {
        VpsClientError::Api { status, message } => {
            assert_eq!(*status, 400);
            assert_eq!(message, "Invalid plan chosen.");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(err.to_string().contains("Invalid plan chosen."), "{err}");
    assert_eq!(count(&mock, "POST", "/v2/instances").await, 1);
}

#[tokio::test]
async fn a_wrong_key_is_a_401_api_error_not_retried() {
    let mock = MockVultr::start().await;
    let client = VultrClient::new(VultrConfig {
        api_key: Some(vultr::ApiKey::new("WRONG-KEY")),
        ..mock.config()
    })
    .expect("client");
    let err = client.check_credentials().await.expect_err("401");
    assert!(
        matches!(&err, VpsClientError::Api { status: 401, message } if message == "Invalid API token."),
        "{err}"
    );
    assert_eq!(count(&mock, "GET", "/v2/account").await, 1);
    mock.client().check_credentials().await.expect("right key");
}

#[tokio::test]
async fn not_found_on_read_and_success_on_delete_of_what_is_gone() {
    let mock = MockVultr::start().await;
    let client = mock.client();
    let gone = id("cb676a46-66fd-4dfb-b839-443f2e6c0b60");
    let err = client.get_instance(&gone).await.expect_err("unknown");
    assert!(
        matches!(&err, VpsClientError::NotFound { kind: "instance", id } if id == gone.as_str()),
        "{err}"
    );
    assert!(matches!(
        client.socket_addr(&gone, 22).await,
        Err(VpsClientError::NotFound { .. })
    ));
    client.destroy_instance(&gone).await.expect("404 is done");
    client
        .delete_ssh_key(&SshKeyId::parse("cb676a46-0000-4000-a000-000000000000").expect("id"))
        .await
        .expect("404 is done");
    let dots = id("..");
    assert!(matches!(
        client.get_instance(&dots).await,
        Err(VpsClientError::NotFound { .. })
    ));
    client
        .destroy_instance(&dots)
        .await
        .expect("nothing to destroy");
    assert_eq!(
        mock.requests().await.len(),
        4,
        "dot ids never reach the API"
    );
}

#[tokio::test]
async fn a_non_json_success_answer_is_an_invalid_response() {
    let mock = MockVultr::start().await;
    mock.fail_next(
        "GET",
        "/v2/ssh-keys",
        1,
        ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
    )
    .await;
    let err = mock.client().list_ssh_keys().await.expect_err("html");
    assert!(matches!(err, VpsClientError::InvalidResponse(_)), "{err}");
}

// ---------------------------------------------------------------------------------------
// Readiness

#[tokio::test]
async fn readiness_waits_until_all_four_fields_agree() {
    // Each field reaches its ready value alone before all agree, including a step where
    // the power flips back during installation.
    let boot = vec![
        BootStep::new("pending", "stopped", "none", false),
        BootStep::new("active", "stopped", "locked", false),
        BootStep::new("active", "running", "installingbooting", false),
        BootStep::new("active", "running", "ok", false),
        BootStep::new("active", "stopped", "locked", true),
        BootStep::new("pending", "running", "ok", true),
        BootStep::new("active", "running", "ok", true),
    ];
    let steps = boot.len();
    let mock = MockVultr::start_with(boot, 0).await;
    let client = mock.client();
    let instance = client
        .create_instance(&request("mngr-ready"))
        .await
        .expect("create");
    let path = format!("/v2/instances/{instance}");

    let ready = wait_ready(&client, &instance, Duration::from_secs(10))
        .await
        .expect("ready");
    assert_eq!(
        ready.to_string(),
        "203.0.113.2:22",
        "the address of the ready instance"
    );
    assert_eq!(
        count(&mock, "GET", &path).await,
        steps + 1,
        "returned at the first poll where all four agree (then read its address), not before"
    );
    let addr = client.socket_addr(&instance, 2222).await.expect("addr");
    assert_eq!(addr.to_string(), "203.0.113.2:2222");
}

#[tokio::test]
async fn status_is_active_only_when_ready() {
    let boot = vec![
        BootStep::new("active", "running", "installingbooting", true),
        BootStep::new("active", "running", "ok", false),
        BootStep::new("active", "stopped", "locked", true),
        BootStep::new("active", "running", "ok", true),
        BootStep::new("active", "stopped", "ok", true),
    ];
    let mock = MockVultr::start_with(boot, 0).await;
    let client = mock.client();
    let instance = client
        .create_instance(&request("mngr-status"))
        .await
        .expect("create");
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(client.instance_status(&instance).await.expect("status"));
    }
    use VpsInstanceStatus::*;
    assert_eq!(seen, [Pending, Pending, Pending, Active, Halted]);
}

#[tokio::test]
async fn socket_addr_is_not_ready_while_main_ip_is_the_placeholder() {
    let mock =
        MockVultr::start_with(vec![BootStep::new("active", "running", "ok", false)], 0).await;
    let client = mock.client();
    let instance = client
        .create_instance(&request("mngr-noip"))
        .await
        .expect("create");
    let err = client.socket_addr(&instance, 22).await.expect_err("no ip");
    assert!(
        matches!(&err, VpsClientError::NotReady { message, .. } if message.contains("0.0.0.0")),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn readiness_times_out_naming_the_last_state_seen() {
    let mock = MockVultr::start_with(
        vec![BootStep::new(
            "active",
            "running",
            "installingbooting",
            true,
        )],
        0,
    )
    .await;
    let client = mock.client();
    let instance = client
        .create_instance(&request("mngr-stuck"))
        .await
        .expect("create");
    let start = Instant::now();
    let err = wait_ready(&client, &instance, Duration::from_millis(300))
        .await
        .expect_err("stuck");
    assert!(start.elapsed() < Duration::from_secs(2));
    match &err {
        VpsClientError::Timeout { last_seen, .. } => {
            assert!(last_seen.contains("status PENDING"), "{last_seen}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn readiness_wait_ends_at_once_when_the_instance_vanishes() {
    let mock =
        MockVultr::start_with(vec![BootStep::new("pending", "stopped", "none", false)], 0).await;
    let client = mock.client();
    let instance = client
        .create_instance(&request("mngr-vanish"))
        .await
        .expect("create");
    client.destroy_instance(&instance).await.expect("destroy");
    let err = wait_ready(&client, &instance, Duration::from_secs(30))
        .await
        .expect_err("gone");
    assert!(matches!(err, VpsClientError::NotFound { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// What is sent

#[tokio::test]
async fn the_create_body_has_the_api_shapes() {
    let mock = MockVultr::start().await;
    let client = mock.client();
    let key = client
        .upload_ssh_key("mngr-vultr-host-1", "ssh-ed25519 AAAAC3Nza me@host\n")
        .await
        .expect("key");
    let mut req = request("mngr-my_agent");
    req.ssh_key_ids = vec![key.clone()];
    req.tags
        .push("mngr-host-id=host-00ff".parse().expect("tag"));
    let instance = client.create_instance(&req).await.expect("create");

    let post = mock
        .requests()
        .await
        .into_iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path() == "/v2/instances")
        .expect("create request");
    let body: Value = serde_json::from_slice(&post.body).expect("json body");
    assert_eq!(
        post.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(body["region"], "ewr");
    assert_eq!(body["plan"], "vc2-1c-1gb");
    assert_eq!(body["os_id"], 2136);
    assert_eq!(body["label"], "mngr-my_agent");
    assert_eq!(body["hostname"], "mngr-my-agent");
    assert_eq!(body["backups"], "disabled");
    assert_eq!(body["sshkey_id"], serde_json::json!([key.as_str()]));
    assert_eq!(
        body["tags"],
        serde_json::json!(["mngr-provider=vultr", "mngr-host-id=host-00ff"])
    );
    assert!(body.get("tag").is_none(), "the deprecated singular tag");
    assert!(body.get("firewall_group_id").is_none());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(body["user_data"].as_str().expect("user_data string"))
        .expect("base64");
    assert_eq!(decoded, b"#cloud-config\npackages: [docker.io]\n");
    assert_eq!(
        mock.user_data(instance.as_str()).as_deref(),
        Some("#cloud-config\npackages: [docker.io]\n")
    );
    // The key was sent trimmed, and the stored key is listed back.
    let keys = client.list_ssh_keys().await.expect("keys");
    assert_eq!(keys[0].public_key, "ssh-ed25519 AAAAC3Nza me@host");
}

#[tokio::test]
async fn a_create_from_a_snapshot_sends_its_id_instead_of_the_os() {
    let mock = MockVultr::start().await;
    let client = mock.client();
    let source = client
        .create_instance(&request("mngr-source"))
        .await
        .expect("create");
    let snapshot = client
        .create_snapshot(&source, "golden")
        .await
        .expect("snapshot");
    let mut req = request("mngr-from-golden");
    req.snapshot = Some(snapshot.clone());
    let copy = client
        .create_instance(&req)
        .await
        .expect("create from snapshot");

    let posts: Vec<Value> = mock
        .requests()
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/v2/instances")
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["os_id"], 2136);
    assert!(posts[0].get("snapshot_id").is_none(), "{}", posts[0]);
    let body = &posts[1];
    assert_eq!(body["snapshot_id"], snapshot.as_str());
    assert!(
        body.get("os_id").is_none(),
        "only one source of the disk: {body}"
    );
    assert_eq!(body["label"], "mngr-from-golden");
    assert_eq!(body["region"], "ewr");
    assert_eq!(body["plan"], "vc2-1c-1gb");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(body["user_data"].as_str().expect("user_data string"))
        .expect("base64");
    assert_eq!(decoded, b"#cloud-config\npackages: [docker.io]\n");
    assert_eq!(
        mock.instance_snapshot(copy.as_str()).as_deref(),
        Some(snapshot.as_str())
    );
    assert_eq!(mock.instance_snapshot(source.as_str()), None);
}

#[tokio::test]
async fn a_create_from_an_unknown_snapshot_is_refused_and_orders_nothing() {
    let mock = MockVultr::start().await;
    let mut req = request("mngr-from-nothing");
    req.snapshot = Some(
        vps_primitives::VpsSnapshotId::parse("cb676a46-66fd-4dfb-b839-443f2e6c0b60")
            .expect("snapshot id"),
    );
    let err = mock
        .client()
        .create_instance(&req)
        .await
        .expect_err("unknown snapshot");
    assert!(
        matches!(&err, VpsClientError::Api { status: 400, message } if message == "Invalid snapshot_id."),
        "{err}"
    );
    assert_eq!(
        count(&mock, "POST", "/v2/instances").await,
        1,
        "not retried"
    );
    assert_eq!(mock.instance_count(), 0);
}

#[tokio::test]
async fn every_request_carries_the_bearer_key_and_a_user_agent() {
    let mock = MockVultr::start().await;
    let client = mock.client();
    client.list_instances(None).await.expect("list");
    client.check_credentials().await.expect("account");
    for request in mock.requests().await {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {}", support::API_KEY).as_str())
        );
        assert!(request.headers.get("user-agent").is_some());
    }
}

#[tokio::test]
async fn a_firewall_group_is_found_or_made_and_opened_for_the_ports() {
    let mock = MockVultr::start().await;
    let client = VultrClient::new(VultrConfig {
        firewall_group: Some("mngr-hosts".to_owned()),
        ..mock.config()
    })
    .expect("client");
    let a = client.create_instance(&request("mngr-a")).await.expect("a");
    let mut b_request = request("mngr-b");
    b_request.ports = vec![22, 2222, 8080];
    let b = client.create_instance(&b_request).await.expect("b");

    let firewalls = mock.firewalls();
    assert_eq!(firewalls.len(), 1, "one group for all hosts");
    let (group, rules) = &firewalls[0];
    assert_eq!(group["description"], "mngr-hosts");
    assert_eq!(rule_ports(rules), ["22", "2222", "8080"]);
    for rule in rules {
        assert_eq!(rule["ip_type"], "v4");
        assert_eq!(rule["protocol"], "tcp");
        assert_eq!(rule["subnet"], "0.0.0.0");
        assert_eq!(rule["subnet_size"], 0);
    }
    for instance in [&a, &b] {
        let json = mock.instance_json(instance.as_str()).expect("instance");
        assert_eq!(json["firewall_group_id"], group["id"]);
    }
    assert_eq!(count(&mock, "POST", "/v2/firewalls").await, 1);

    // A second client (a later command) reuses the group and its rules.
    let later = VultrClient::new(VultrConfig {
        firewall_group: Some("mngr-hosts".to_owned()),
        ..mock.config()
    })
    .expect("client");
    later.create_instance(&request("mngr-c")).await.expect("c");
    assert_eq!(count(&mock, "POST", "/v2/firewalls").await, 1);
    assert_eq!(mock.firewalls()[0].1.len(), 3);
}

#[tokio::test]
async fn a_firewall_group_deleted_outside_is_looked_up_again_and_the_create_retried_once() {
    let mock = MockVultr::start().await;
    let client = VultrClient::new(VultrConfig {
        firewall_group: Some("mngr-hosts".to_owned()),
        ..mock.config()
    })
    .expect("client");
    client.create_instance(&request("mngr-a")).await.expect("a");
    let first = mock.firewalls()[0].0["id"].clone();

    mock.delete_firewall_groups_outside();
    let b = client
        .create_instance(&request("mngr-b"))
        .await
        .expect("a create after the group was deleted in the console");

    let firewalls = mock.firewalls();
    assert_eq!(firewalls.len(), 1, "the group was made again");
    let (group, rules) = &firewalls[0];
    assert_ne!(group["id"], first);
    let json = mock.instance_json(b.as_str()).expect("instance");
    assert_eq!(json["firewall_group_id"], group["id"]);
    assert_eq!(
        rule_ports(rules),
        ["22", "2222"],
        "the new group is opened again"
    );
    assert_eq!(count(&mock, "POST", "/v2/firewalls").await, 2);
    // a, the refused order of b, and b.
    assert_eq!(count(&mock, "POST", "/v2/instances").await, 3);

    // Deleted again, and a port not yet opened: now the rules of the remembered group
    // are refused (404) before anything is ordered.
    mock.delete_firewall_groups_outside();
    let mut c_request = request("mngr-c");
    c_request.ports = vec![22, 8080];
    let c = client
        .create_instance(&c_request)
        .await
        .expect("a create with a new port after the group was deleted");
    let (group, rules) = &mock.firewalls()[0];
    let json = mock.instance_json(c.as_str()).expect("instance");
    assert_eq!(json["firewall_group_id"], group["id"]);
    assert_eq!(rule_ports(rules), ["22", "8080"]);
    assert_eq!(count(&mock, "POST", "/v2/instances").await, 4);
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_create_body_goes_nowhere_else() {
    let mock = MockVultr::start().await;
    let elsewhere = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(202).set_body_json(serde_json::json!({"instance": {"id": "x"}})),
        )
        .mount(&elsewhere)
        .await;
    let client = mock.client();
    for status in [307, 308] {
        mock.fail_next(
            "POST",
            "/v2/instances",
            1,
            ResponseTemplate::new(status)
                .insert_header("location", format!("{}/v2/instances", elsewhere.uri())),
        )
        .await;
        let err = client
            .create_instance(&request("mngr-redirected"))
            .await
            .expect_err("a redirect is an error");
        assert!(
            matches!(&err, VpsClientError::Api { status: s, .. } if *s == status),
            "{err:?}"
        );
        mock.fail_next(
            "GET",
            "/v2/ssh-keys",
            1,
            ResponseTemplate::new(status)
                .insert_header("location", format!("{}/v2/ssh-keys", elsewhere.uri())),
        )
        .await;
        client
            .list_ssh_keys()
            .await
            .expect_err("a redirect is an error");
    }
    let followed = elsewhere.received_requests().await.unwrap_or_default();
    assert!(
        followed.is_empty(),
        "the redirect target was hit (user_data and API key sent there): {:?}",
        followed
            .iter()
            .map(|r| r.url.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(mock.instance_count(), 0);
}

#[tokio::test]
async fn the_client_side_rate_limit_spaces_requests() {
    let mock = MockVultr::start().await;
    let client = VultrClient::new(VultrConfig {
        max_requests_per_second: 20.0,
        ..mock.config()
    })
    .expect("client");
    let start = Instant::now();
    let calls: Vec<_> = (0..10).map(|_| client.list_ssh_keys()).collect();
    for result in futures::future::join_all(calls).await {
        result.expect("keys");
    }
    // 10 requests at 20 per second: the last starts 450 ms after the first.
    assert!(
        start.elapsed() >= Duration::from_millis(440),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// The key stays secret

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn the_api_key_never_shows_in_logs_errors_or_debug_output() {
    let logs = SharedBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mock = MockVultr::start().await;
    let client = mock.client();
    let mut seen = Vec::new(); // everything a user could be shown

    // Requests that succeed after retries.
    mock.fail_next("GET", "/v2/instances", 2, error(429, "Rate limit reached."))
        .await;
    client.list_instances(None).await.expect("list");
    let instance = client
        .create_instance(&request("mngr-logged"))
        .await
        .expect("create");
    wait_ready(&client, &instance, Duration::from_secs(5))
        .await
        .expect("ready");
    // Errors of every kind.
    let mut bad = request("mngr-bad");
    bad.plan = PlanId::parse("vc2-bogus").expect("plan");
    seen.push(client.create_instance(&bad).await.expect_err("400"));
    mock.fail_next("GET", "/v2/ssh-keys", 10, error(503, "Unavailable."))
        .await;
    seen.push(client.list_ssh_keys().await.expect_err("503"));
    let wrong = VultrClient::new(VultrConfig {
        api_key: Some(vultr::ApiKey::new(format!("{}-WRONG", support::API_KEY))),
        ..mock.config()
    })
    .expect("client");
    seen.push(wrong.check_credentials().await.expect_err("401"));
    let refused = VultrClient::new(config_for("http://127.0.0.1:9/v2")).expect("client");
    seen.push(refused.list_instances(None).await.expect_err("refused"));

    let logs = logs.text();
    assert!(logs.contains("retrying"), "the capture works: {logs}");
    assert!(logs.contains("Vultr API request"), "{logs}");
    assert!(
        !logs.contains(support::API_KEY),
        "API key in the logs:\n{logs}"
    );
    for error in &seen {
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains(support::API_KEY),
            "API key in an error: {shown}"
        );
    }
    for debug in [format!("{client:?}"), format!("{:?}", mock.config())] {
        assert!(
            !debug.contains(support::API_KEY),
            "API key in Debug: {debug}"
        );
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}

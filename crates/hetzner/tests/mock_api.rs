//! `HetznerClient` against the stateful mock of the Hetzner Cloud API: the failure cases
//! (429 with `RateLimit-Reset`, 503, a dropped create, a create answered 500, an action
//! that fails, a locked server, a redirect), label selector exactness, pagination,
//! request bodies, SSH key reuse, snapshot labels, readiness, and no token in logs.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hetzner::{HetznerClient, HetznerConfig};
use serde_json::{Value, json};
use support::{
    DEBIAN_12, DroppingProxy, MockHetzner, MockOptions, TOKEN, config_for, error, refused_addr,
};
use vps_client::{CreateInstanceRequest, UserData, VpsClient, VpsClientError};
use vps_primitives::{OsId, PlanId, RegionId, Tag, VpsInstanceId, VpsInstanceStatus};
use wiremock::ResponseTemplate;

const SECRET_USER_DATA: &str =
    "#cloud-config\nssh_keys:\n  ed25519_private: PRIVATE-HOST-KEY-5e1f\n";

fn request(label: &str) -> CreateInstanceRequest {
    CreateInstanceRequest {
        label: label.to_owned(),
        region: RegionId::parse("fsn1").expect("location"),
        plan: PlanId::parse("cx22").expect("server type"),
        os: OsId(DEBIAN_12 as u32),
        snapshot: None,
        user_data: UserData::new(SECRET_USER_DATA),
        ssh_key_ids: Vec::new(),
        tags: vec![
            tag("mngr-provider=hetzner"),
            tag("mngr-host-id=host-0123456789abcdef"),
        ],
        ports: vec![22, 2222],
    }
}

/// `vps_client::wait_until_active` (the one wait) with a probe that always succeeds.
async fn ready(
    client: &HetznerClient,
    id: &VpsInstanceId,
) -> Result<vps_client::InstanceInfo, VpsClientError> {
    let opts = vps_client::WaitOptions::with_timeout(Duration::from_secs(10));
    let reachable = |_addr| async { Ok::<(), std::io::Error>(()) };
    vps_client::wait_until_active(client, id, 22, &opts, reachable).await?;
    client.get_instance(id).await
}

fn tag(text: &str) -> Tag {
    text.parse().expect("tag")
}

fn server_id(id: &VpsInstanceId) -> u64 {
    id.as_str().parse().expect("numeric id")
}

async fn count(mock: &MockHetzner, verb: &str, api_path: &str) -> usize {
    mock.requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == api_path)
        .count()
}

fn rate_limited(reset_in_secs: u64) -> ResponseTemplate {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    error(
        429,
        "rate_limit_exceeded",
        "limit of 3600 requests per hour reached",
    )
    .insert_header("RateLimit-Limit", "360000")
    .insert_header("RateLimit-Remaining", "0")
    .insert_header(
        "RateLimit-Reset",
        (now + reset_in_secs).to_string().as_str(),
    )
}

// ---------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn a_429_with_rate_limit_reset_is_waited_out_and_retried() {
    let mock = MockHetzner::start().await;
    mock.seed_servers(2, &[("mngr-provider", "hetzner")]);
    mock.fail_next("GET", "/v1/servers", 2, rate_limited(1))
        .await;
    let listed = mock
        .client()
        .list_instances(Some(&tag("mngr-provider=hetzner")))
        .await
        .expect("list after two 429s");
    assert_eq!(listed.len(), 2);
    assert_eq!(count(&mock, "GET", "/v1/servers").await, 3);
}

#[tokio::test]
async fn a_create_answered_429_was_not_acted_on_and_is_repeated_once_allowed() {
    let mock = MockHetzner::start().await;
    mock.fail_next("POST", "/v1/servers", 1, rate_limited(0))
        .await;
    let id = mock
        .client()
        .create_instance(&request("mngr-rl"))
        .await
        .expect("create");
    assert_eq!(count(&mock, "POST", "/v1/servers").await, 2);
    assert_eq!(mock.server_count(), 1, "exactly one server ordered");
    assert!(mock.server_json(server_id(&id)).is_some());
}

#[tokio::test]
async fn a_503_is_retried_and_when_it_lasts_is_transient() {
    let mock = MockHetzner::start().await;
    mock.fail_next(
        "GET",
        "/v1/ssh_keys",
        2,
        error(503, "unavailable", "service unavailable"),
    )
    .await;
    let client = mock.client();
    assert!(
        client
            .list_ssh_keys()
            .await
            .expect("after two 503s")
            .is_empty()
    );

    mock.fail_next("GET", "/v1/images", 100, ResponseTemplate::new(503))
        .await;
    let err = client.list_snapshots().await.expect_err("503 for good");
    assert!(
        matches!(&err, VpsClientError::Transient { message } if message.contains("503") && message.contains("7 attempts")),
        "{err}"
    );
    assert_eq!(
        count(&mock, "GET", "/v1/images").await,
        7,
        "1 + max_retries attempts"
    );
}

#[tokio::test]
async fn a_create_whose_connection_drops_after_sending_is_outcome_unknown_and_not_repeated() {
    let mock = MockHetzner::start().await;
    let proxy = DroppingProxy::start(*mock.server.address(), 1).await;
    let client =
        HetznerClient::new(config_for(&format!("http://{}/v1", proxy.addr))).expect("client");
    let err = client
        .create_instance(&request("mngr-drop"))
        .await
        .expect_err("dropped");
    assert!(
        matches!(err, VpsClientError::OutcomeUnknown { .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("before trying again"), "{err}");
    assert_eq!(proxy.connections(), 1, "the create was not sent again");
    // Reads through the same proxy are retried and work.
    assert!(client.list_instances(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_create_answered_500_is_outcome_unknown_and_sent_once() {
    let mock = MockHetzner::start().await;
    mock.fail_next(
        "POST",
        "/v1/servers",
        1,
        error(500, "server_error", "internal error"),
    )
    .await;
    let err = mock
        .client()
        .create_instance(&request("mngr-500"))
        .await
        .expect_err("500");
    assert!(
        matches!(&err, VpsClientError::OutcomeUnknown { message } if message.contains("server_error")),
        "{err}"
    );
    assert_eq!(count(&mock, "POST", "/v1/servers").await, 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_transient() {
    let client =
        HetznerClient::new(config_for(&format!("http://{}/v1", refused_addr()))).expect("client");
    let err = client
        .create_instance(&request("mngr-refused"))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, VpsClientError::Transient { message } if message.contains("7 attempts")),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_create_body_goes_nowhere_else() {
    let mock = MockHetzner::start().await;
    let elsewhere = format!("{}/v1/elsewhere", mock.server.uri());
    mock.fail_next(
        "POST",
        "/v1/servers",
        1,
        ResponseTemplate::new(307).insert_header("Location", elsewhere.as_str()),
    )
    .await;
    let err = mock
        .client()
        .create_instance(&request("mngr-redirect"))
        .await
        .expect_err("redirect");
    assert!(
        matches!(&err, VpsClientError::Api { status: 307, message } if message.contains("not followed")),
        "{err}"
    );
    assert_eq!(count(&mock, "POST", "/v1/elsewhere").await, 0);
    assert_eq!(count(&mock, "POST", "/v1/servers").await, 1);
}

// ---------------------------------------------------------------------------------------
// Actions and locks

#[tokio::test]
async fn a_locked_server_is_waited_for_and_the_delete_retried() {
    let mock = MockHetzner::start().await;
    let client = mock.client();
    let id = client
        .create_instance(&request("mngr-locked"))
        .await
        .expect("create");
    // Right after create the create actions lock the server; another client's action
    // keeps it locked a little longer.
    mock.lock_server(server_id(&id), Duration::from_millis(400));
    client
        .destroy_instance(&id)
        .await
        .expect("destroy waits for the lock");
    let (_, locked_refusals) = mock.refusals();
    assert!(locked_refusals > 0, "the delete met the lock at least once");
    assert_eq!(
        mock.server_count(),
        0,
        "the destroy waited for its delete action"
    );
}

#[tokio::test]
async fn a_lock_that_outlasts_the_lock_timeout_is_a_transient_error() {
    let mock = MockHetzner::start().await;
    let ids = mock.seed_servers(1, &[]);
    mock.lock_server(ids[0], Duration::from_secs(30));
    let client = HetznerClient::new(HetznerConfig {
        lock_timeout_secs: 0.3,
        ..mock.config()
    })
    .expect("client");
    let id = VpsInstanceId::parse(&ids[0].to_string()).expect("id");
    let err = client
        .destroy_instance(&id)
        .await
        .expect_err("still locked");
    assert!(
        matches!(&err, VpsClientError::Transient { message } if message.contains("locked")),
        "{err}"
    );
    assert_eq!(mock.server_count(), 1);
}

#[tokio::test]
async fn a_failed_create_action_ends_readiness_with_its_code_and_message() {
    let mock = MockHetzner::start().await;
    mock.fail_next_action(
        "create_server",
        "placement_error",
        "no capacity in fsn1-dc14",
    );
    let client = mock.client();
    let id = client
        .create_instance(&request("mngr-fails"))
        .await
        .expect("ordered");
    let err = ready(&client, &id)
        .await
        .expect_err("the create action failed: the wait ends at once");
    let text = err.to_string();
    assert!(
        text.contains("create_server")
            && text.contains("placement_error: no capacity in fsn1-dc14"),
        "{text}"
    );
    let err = client
        .get_instance(&id)
        .await
        .expect_err("read names the failure");
    assert!(err.to_string().contains("placement_error"), "{err}");
    let listed = client
        .list_instances(Some(&tag("mngr-provider=hetzner")))
        .await
        .expect("list");
    assert_eq!(listed[0].status, VpsInstanceStatus::Unknown);
    client.destroy_instance(&id).await.expect("destroy");
}

#[tokio::test]
async fn a_failed_snapshot_action_is_reported_and_its_image_removed() {
    let mock = MockHetzner::start().await;
    let client = mock.client();
    let id = client
        .create_instance(&request("mngr-snapfail"))
        .await
        .expect("create");
    client.get_instance(&id).await.expect("ready");
    mock.fail_next_action("create_image", "action_failed", "disk snapshot failed");
    let err = client
        .create_snapshot(&id, "will fail")
        .await
        .expect_err("failed");
    assert!(
        err.to_string()
            .contains("action_failed: disk snapshot failed"),
        "{err}"
    );
    assert_eq!(mock.image_count(), 0);
    client.destroy_instance(&id).await.expect("destroy");
}

#[tokio::test]
async fn readiness_waits_for_the_create_actions_and_status_running() {
    let mock = MockHetzner::start_with(MockOptions {
        action_duration: Duration::from_millis(200),
        ..MockOptions::default()
    })
    .await;
    let client = mock.client();
    let id = client
        .create_instance(&request("mngr-ready"))
        .await
        .expect("create");
    let first = client.get_instance(&id).await.expect("get");
    assert_eq!(
        first.status,
        VpsInstanceStatus::Pending,
        "initializing, actions running"
    );
    assert!(
        first.address.is_some(),
        "the mock assigns the IPv4 address at create"
    );
    let ready = ready(&client, &id).await.expect("ready");
    assert_eq!(ready.status, VpsInstanceStatus::Active);
    let json = mock.server_json(server_id(&id)).expect("server");
    assert_eq!(json["status"], "running");
    let ssh = client.socket_addr(&id, 2222).await.expect("address");
    assert_eq!(
        ssh.to_string(),
        format!(
            "{}:2222",
            json["public_net"]["ipv4"]["ip"].as_str().expect("ip")
        )
    );
    client.power_off(&id).await.expect("power off");
    assert_eq!(
        client.instance_status(&id).await.expect("status"),
        VpsInstanceStatus::Halted
    );
    client.power_on(&id).await.expect("power on");
    assert_eq!(
        client.instance_status(&id).await.expect("status"),
        VpsInstanceStatus::Active
    );
    client.destroy_instance(&id).await.expect("destroy");
}

// ---------------------------------------------------------------------------------------
// Labels and pagination

#[tokio::test]
async fn the_label_selector_matches_exactly_and_is_checked_again_by_the_client() {
    let mock = MockHetzner::start().await;
    let ours = mock.seed_servers(2, &[("mngr-provider", "hetzner")]);
    mock.seed_servers(3, &[("mngr-provider", "hetzner-x")]);
    mock.seed_servers(1, &[("mngr-provider", "x-hetzner")]);
    let client = mock.client();
    let provider = tag("mngr-provider=hetzner");
    let listed = client.list_instances(Some(&provider)).await.expect("list");
    let mut ids: Vec<u64> = listed.iter().map(|i| server_id(&i.id)).collect();
    ids.sort();
    assert_eq!(ids, ours);
    let query = mock
        .requests()
        .await
        .last()
        .and_then(|r| r.url.query().map(str::to_owned))
        .unwrap_or_default();
    assert!(
        query.contains("label_selector=mngr-provider%3D%3Dhetzner"),
        "{query}"
    );

    // An API whose selector matched prefixes would not fool the client.
    let sloppy: Vec<Value> = [(1u64, "hetzner"), (2, "hetzner-x")]
        .iter()
        .map(|(id, value)| {
            json!({"id": id, "name": format!("s{id}"), "status": "running",
            "public_net": {"ipv4": {"ip": "198.51.100.9"}}, "labels": {"mngr-provider": value}})
        })
        .collect();
    mock.fail_next(
        "GET",
        "/v1/servers",
        1,
        ResponseTemplate::new(200).set_body_json(json!({"servers": sloppy,
            "meta": {"pagination": {"page": 1, "per_page": 50, "next_page": null, "last_page": 1, "total_entries": 2}}})),
    )
    .await;
    let listed = client.list_instances(Some(&provider)).await.expect("list");
    assert_eq!(
        listed.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(),
        ["1"]
    );

    // A tag that cannot be a label is carried by nothing, and costs no request.
    let before = mock.requests().await.len();
    let listed = client
        .list_instances(Some(&tag("k=a/b")))
        .await
        .expect("list");
    assert!(listed.is_empty());
    assert_eq!(mock.requests().await.len(), before);
}

#[tokio::test]
async fn lists_follow_next_page_to_the_last_page() {
    let mock = MockHetzner::start_with(MockOptions {
        rate_limit: None,
        ..MockOptions::default()
    })
    .await;
    let ours = mock.seed_servers(120, &[("mngr-provider", "hetzner")]);
    mock.seed_servers(7, &[("team", "web")]);
    let client = mock.client(); // 50 per page
    let listed = client
        .list_instances(Some(&tag("mngr-provider=hetzner")))
        .await
        .expect("list");
    assert_eq!(listed.len(), 120);
    let mut ids: Vec<u64> = listed.iter().map(|i| server_id(&i.id)).collect();
    ids.sort();
    assert_eq!(ids, ours, "every server exactly once");
    let pages: Vec<String> = mock
        .requests()
        .await
        .iter()
        .filter(|r| r.url.path() == "/v1/servers")
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    for (n, query) in pages.iter().enumerate() {
        assert!(query.contains(&format!("page={}", n + 1)), "{query}");
        assert!(query.contains("per_page=50"), "{query}");
    }
    assert_eq!(client.list_instances(None).await.expect("all").len(), 127);
}

// ---------------------------------------------------------------------------------------
// Request bodies, firewall, keys, snapshots

#[tokio::test]
async fn the_create_body_carries_plain_user_data_labels_keys_and_the_firewall() {
    let mock = MockHetzner::start().await;
    let client = HetznerClient::new(HetznerConfig {
        firewall: Some("mngr-hosts".to_owned()),
        ..mock.config()
    })
    .expect("client");
    let key = client
        .upload_ssh_key("mngr-k", vps_client::conformance::SAMPLE_SSH_PUBLIC_KEY)
        .await
        .expect("key");
    let mut req = request("mngr-body");
    req.ssh_key_ids = vec![key.clone()];
    let id = client.create_instance(&req).await.expect("create");
    assert_eq!(
        mock.user_data(server_id(&id)).as_deref(),
        Some(SECRET_USER_DATA),
        "plain text, not base64"
    );
    let post = mock
        .requests()
        .await
        .into_iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path() == "/v1/servers")
        .expect("create request");
    let body: Value = serde_json::from_slice(&post.body).expect("json");
    assert_eq!(body["image"], DEBIAN_12.to_string());
    assert_eq!(body["location"], "fsn1");
    assert_eq!(body["server_type"], "cx22");
    assert_eq!(
        body["ssh_keys"],
        json!([key.as_str().parse::<u64>().expect("id")])
    );
    assert_eq!(
        body["labels"],
        json!({"mngr-provider": "hetzner", "mngr-host-id": "host-0123456789abcdef"})
    );
    assert_eq!(body["public_net"]["enable_ipv4"], true);

    let firewalls = mock.firewalls();
    assert_eq!(firewalls.len(), 1);
    assert_eq!(
        mock.server_firewalls(server_id(&id)),
        vec![firewalls[0]["id"].as_u64().expect("id")]
    );
    let ports: Vec<&str> = firewalls[0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["port"].as_str())
        .collect();
    assert_eq!(ports, ["22", "2222"]);

    // A second create with one more port adds a rule to the same firewall.
    let mut more = request("mngr-body-2");
    more.ports = vec![22, 2222, 8080];
    client.create_instance(&more).await.expect("second create");
    let firewalls = mock.firewalls();
    assert_eq!(firewalls.len(), 1);
    assert_eq!(firewalls[0]["rules"].as_array().expect("rules").len(), 3);
}

#[tokio::test]
async fn requests_hetzner_cannot_take_are_refused_before_sending() {
    let mock = MockHetzner::start().await;
    let client = mock.client();
    let mut big = request("mngr-big");
    big.user_data = UserData::new("x".repeat(hetzner::MAX_USER_DATA_BYTES + 1));
    let mut bad_label = request("mngr-bad-label");
    bad_label.tags.push(tag("note=not/a/label"));
    for (req, needle) in [
        (big, "32768"),
        (bad_label, "not/a/label"),
        (request("not_a_hostname"), "hostname"),
    ] {
        let err = client.create_instance(&req).await.expect_err("refused");
        assert!(
            matches!(&err, VpsClientError::Api { status: 422, message } if message.contains(needle)),
            "{err}"
        );
    }
    assert_eq!(count(&mock, "POST", "/v1/servers").await, 0);
}

#[tokio::test]
async fn a_key_registered_under_another_name_is_found_and_reused() {
    let mock = MockHetzner::start().await;
    let client = mock.client();
    let key = vps_client::conformance::SAMPLE_SSH_PUBLIC_KEY;
    let first = client
        .upload_ssh_key("mngr-first", key)
        .await
        .expect("upload");
    let again = client
        .upload_ssh_key("mngr-second", &format!("{key} other-comment"))
        .await
        .expect("the same key under another name");
    assert_eq!(first, again);
    let keys = client.list_ssh_keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name, "mngr-first");
    // A name clash with a different key is the API's error.
    let err = client
        .upload_ssh_key(
            "mngr-first",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyMaterial0000000000000000000000",
        )
        .await
        .expect_err("name taken");
    assert!(
        matches!(&err, VpsClientError::Api { status: 409, message } if message.contains("name is already used")),
        "{err}"
    );
}

#[tokio::test]
async fn snapshots_carry_the_host_id_and_servers_boot_from_them() {
    let mock = MockHetzner::start().await;
    let client = mock.client();
    let id = client
        .create_instance(&request("mngr-snap"))
        .await
        .expect("create");
    // The snapshot waits for the server's lock (its create actions) and for its action.
    let snapshot = client
        .create_snapshot(&id, "mngr snapshot")
        .await
        .expect("snapshot");
    let labels = mock
        .image_labels(snapshot.as_str().parse().expect("id"))
        .expect("image");
    assert_eq!(labels["mngr-host-id"], "host-0123456789abcdef");
    assert_eq!(labels["mngr-provider"], "hetzner");
    let listed = client.list_snapshots().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, vps_client::SnapshotStatus::Complete);
    let mut copy = request("mngr-snap-copy");
    copy.snapshot = Some(snapshot.clone());
    let copy_id = client.create_instance(&copy).await.expect("from snapshot");
    assert_eq!(
        mock.server_image(server_id(&copy_id)),
        snapshot.as_str().parse().ok()
    );
}

// ---------------------------------------------------------------------------------------
// Secrets

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn neither_the_token_nor_the_user_data_reach_logs_or_errors() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mock = MockHetzner::start().await;
    mock.fail_next("POST", "/v1/servers", 1, error(500, "server_error", "boom"))
        .await;
    mock.fail_next("GET", "/v1/servers", 1, rate_limited(0))
        .await;
    let client = mock.client();
    let mut errors = Vec::new();
    errors.push(
        client
            .create_instance(&request("mngr-secret"))
            .await
            .expect_err("500")
            .to_string(),
    );
    let id = client
        .create_instance(&request("mngr-secret"))
        .await
        .expect("create");
    client.list_instances(None).await.expect("list");
    client.destroy_instance(&id).await.expect("destroy");
    let unauthorised = HetznerClient::new(HetznerConfig {
        api_token: Some(hetzner::ApiToken::new("WRONG-TOKEN-SECRET-77")),
        ..mock.config()
    })
    .expect("client");
    errors.push(
        unauthorised
            .list_instances(None)
            .await
            .expect_err("401")
            .to_string(),
    );
    errors.push(format!("{client:?}"));

    let logs =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(logs.contains("Hetzner API request"), "logging was captured");
    for text in errors.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(
            !text.contains("WRONG-TOKEN-SECRET-77"),
            "token leaked: {text}"
        );
        assert!(
            !text.contains("PRIVATE-HOST-KEY"),
            "user_data leaked: {text}"
        );
    }
    assert!(
        errors[1].contains("unauthorized: unable to authenticate"),
        "{}",
        errors[1]
    );
}

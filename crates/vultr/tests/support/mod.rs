//! A stateful mock of the Vultr API v2 on wiremock, bound to 127.0.0.1.
//!
//! It keeps instances, snapshots, SSH keys and firewall groups in memory and answers
//! with the JSON shapes of the API reference (`{"instance": {...}}`, lists with
//! `meta.links.next` cursors, `{"error": "...", "status": N}` on errors, 202 on instance
//! create, 204 on delete). An instance is made from an OS image (`os_id`) or a snapshot
//! (`snapshot_id`, which must exist; both at once are refused, as the API does). New
//! instances walk through a boot script, one step per `GET /instances/{id}`, reporting
//! `status`, `power_status`, `server_status` and `main_ip` out of step as the real API
//! does. Faults are injected by mounting
//! higher-priority wiremock mocks in front of it (see `fail_next`).

#![allow(dead_code)] // Each test binary uses a different part of the mock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use vultr::{ApiKey, VultrClient, VultrConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The key the mock accepts. Distinctive, so a test can search logs and errors for it.
pub const API_KEY: &str = "MOCK-KEY-7f3a9c1e5b2d4a6f8e0c9b1d";

/// One step of an instance's boot: what `GET /instances/{id}` reports.
#[derive(Clone, Copy, Debug)]
pub struct BootStep {
    pub status: &'static str,
    pub power_status: &'static str,
    pub server_status: &'static str,
    /// Whether `main_ip` is assigned (else `0.0.0.0`).
    pub has_ip: bool,
}

impl BootStep {
    pub const fn new(
        status: &'static str,
        power_status: &'static str,
        server_status: &'static str,
        has_ip: bool,
    ) -> Self {
        Self {
            status,
            power_status,
            server_status,
            has_ip,
        }
    }
}

/// What a fresh instance reports, poll after poll, as seen on the real API: `active`
/// long before it runs, an address before it is installed, the last step for good.
pub fn realistic_boot() -> Vec<BootStep> {
    vec![
        BootStep::new("pending", "stopped", "none", false),
        BootStep::new("active", "stopped", "locked", false),
        BootStep::new("active", "running", "installingbooting", true),
        BootStep::new("active", "running", "ok", true),
    ]
}

struct MockInstance {
    json: Value,
    boot: Vec<BootStep>,
    step: usize,
    ip: String,
    /// The user_data as the mock decoded it from base64.
    user_data: String,
    /// The snapshot its disk was made from, if any.
    snapshot_id: Option<String>,
}

impl MockInstance {
    fn apply_step(&mut self) {
        let step = self.boot[self.step.min(self.boot.len() - 1)];
        self.json["status"] = json!(step.status);
        self.json["power_status"] = json!(step.power_status);
        self.json["server_status"] = json!(step.server_status);
        self.json["main_ip"] = json!(if step.has_ip {
            self.ip.as_str()
        } else {
            "0.0.0.0"
        });
    }

    fn advance(&mut self) {
        if self.step + 1 < self.boot.len() {
            self.step += 1;
        }
        self.apply_step();
    }
}

struct MockSnapshot {
    json: Value,
    reads_until_complete: u32,
}

struct FirewallGroup {
    json: Value,
    rules: Vec<Value>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    boot: Vec<BootStep>,
    snapshot_reads_to_complete: u32,
    instances: BTreeMap<String, MockInstance>,
    /// Creation order, for stable listings.
    instance_order: Vec<String>,
    snapshots: Vec<(String, MockSnapshot)>,
    ssh_keys: Vec<Value>,
    firewalls: Vec<FirewallGroup>,
    next_rule_id: u64,
}

fn date() -> &'static str {
    "2026-11-30T05:00:00+00:00"
}

/// Now, as Vultr writes `date_created` (`2026-11-30T05:00:00+00:00`).
fn now() -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 of now");
    format!("{}+00:00", &now[..19])
}

impl State {
    fn uuid(&mut self) -> String {
        self.next_id += 1;
        let n = self.next_id;
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            0xcb67_6a46_u32.wrapping_add(n as u32),
            n & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            0x4432_f2e6_c0b6_u64 + n
        )
    }

    fn handle(&mut self, request: &Request) -> ResponseTemplate {
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {API_KEY}"));
        if !authorised {
            return error(401, "Invalid API token.");
        }
        let Some(api_path) = request.url.path().strip_prefix("/v2/") else {
            return error(404, "Not found");
        };
        let segments: Vec<&str> = api_path.split('/').collect();
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let body = || serde_json::from_slice::<Value>(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["account"]) => ok(json!({"account": {
                "name": "Mock Account", "email": "mock@example.invalid", "acls": [],
                "balance": -5.5, "pending_charges": 0.42,
                "last_payment_date": date(), "last_payment_amount": -10
            }})),
            ("GET", ["instances"]) => {
                let tag = query.get("tag").cloned();
                let items: Vec<Value> = self
                    .instance_order
                    .iter()
                    .filter_map(|id| self.instances.get(id))
                    .filter(|i| match &tag {
                        Some(tag) => i.json["tags"]
                            .as_array()
                            .is_some_and(|tags| tags.iter().any(|t| t == tag)),
                        None => true,
                    })
                    .map(|i| i.json.clone())
                    .collect();
                page("instances", items, &query)
            }
            ("POST", ["instances"]) => self.create_instance(body()),
            ("GET", ["instances", id]) => match self.instances.get_mut(*id) {
                Some(instance) => {
                    let answer = json!({"instance": instance.json.clone()});
                    instance.advance();
                    ok(answer)
                }
                None => error(404, "Invalid instance-id."),
            },
            ("DELETE", ["instances", id]) => match self.instances.remove(*id) {
                Some(_) => {
                    self.instance_order.retain(|i| i != id);
                    ResponseTemplate::new(204)
                }
                None => error(404, "Invalid instance-id."),
            },
            ("GET", ["snapshots"]) => {
                let items = self
                    .snapshots
                    .iter_mut()
                    .map(|(_, s)| {
                        if s.reads_until_complete == 0 {
                            s.json["status"] = json!("complete");
                        } else {
                            s.reads_until_complete -= 1;
                        }
                        s.json.clone()
                    })
                    .collect();
                page("snapshots", items, &query)
            }
            ("POST", ["snapshots"]) => {
                let body = body();
                let Some(instance_id) = body["instance_id"].as_str() else {
                    return error(400, "Missing instance_id.");
                };
                if !self.instances.contains_key(instance_id) {
                    return error(404, "Invalid instance-id.");
                }
                let id = self.uuid();
                let snapshot = json!({
                    "id": id, "date_created": date(),
                    "description": body["description"].as_str().unwrap_or(""),
                    "size": 0, "compressed_size": 0, "status": "pending",
                    "os_id": 2136, "app_id": 0
                });
                self.snapshots.push((
                    id,
                    MockSnapshot {
                        json: snapshot.clone(),
                        reads_until_complete: self.snapshot_reads_to_complete,
                    },
                ));
                created(json!({"snapshot": snapshot}))
            }
            ("DELETE", ["snapshots", id]) => {
                let before = self.snapshots.len();
                self.snapshots.retain(|(sid, _)| sid != id);
                if self.snapshots.len() < before {
                    ResponseTemplate::new(204)
                } else {
                    error(404, "Invalid snapshot-id.")
                }
            }
            ("GET", ["ssh-keys"]) => page("ssh_keys", self.ssh_keys.clone(), &query),
            ("POST", ["ssh-keys"]) => {
                let body = body();
                let (Some(name), Some(key)) = (body["name"].as_str(), body["ssh_key"].as_str())
                else {
                    return error(400, "Missing name or ssh_key.");
                };
                if !key.starts_with("ssh-") || key.contains('\n') {
                    return error(400, "Invalid SSH key.");
                }
                let id = self.uuid();
                let json = json!({"id": id, "date_created": date(), "name": name, "ssh_key": key});
                self.ssh_keys.push(json.clone());
                created(json!({"ssh_key": json}))
            }
            ("DELETE", ["ssh-keys", id]) => {
                let before = self.ssh_keys.len();
                self.ssh_keys.retain(|k| k["id"] != *id);
                if self.ssh_keys.len() < before {
                    ResponseTemplate::new(204)
                } else {
                    error(404, "Invalid ssh-key-id.")
                }
            }
            ("GET", ["firewalls"]) => {
                let items = self.firewalls.iter().map(|f| f.json.clone()).collect();
                page("firewall_groups", items, &query)
            }
            ("POST", ["firewalls"]) => {
                let id = self.uuid();
                let json = json!({
                    "id": id, "description": body()["description"].as_str().unwrap_or(""),
                    "date_created": date(), "date_modified": date(),
                    "instance_count": 0, "rule_count": 0, "max_rule_count": 50
                });
                self.firewalls.push(FirewallGroup {
                    json: json.clone(),
                    rules: Vec::new(),
                });
                created(json!({"firewall_group": json}))
            }
            ("GET", ["firewalls", id, "rules"]) => {
                match self.firewalls.iter().find(|f| f.json["id"] == *id) {
                    Some(group) => page("firewall_rules", group.rules.clone(), &query),
                    None => error(404, "Invalid firewall-group-id."),
                }
            }
            ("POST", ["firewalls", id, "rules"]) => {
                let body = body();
                self.next_rule_id += 1;
                let rule_id = self.next_rule_id;
                let Some(group) = self.firewalls.iter_mut().find(|f| f.json["id"] == *id) else {
                    return error(404, "Invalid firewall-group-id.");
                };
                let rule = json!({
                    "id": rule_id, "type": body["ip_type"], "ip_type": body["ip_type"],
                    "action": "accept", "protocol": body["protocol"], "port": body["port"],
                    "subnet": body["subnet"], "subnet_size": body["subnet_size"],
                    "source": "", "notes": body["notes"]
                });
                group.rules.push(rule.clone());
                group.json["rule_count"] = json!(group.rules.len());
                created(json!({"firewall_rule": rule}))
            }
            _ => error(404, "Not found"),
        }
    }

    fn create_instance(&mut self, body: Value) -> ResponseTemplate {
        let plans = [
            ("vc2-1c-1gb", 1, 1024, 25),
            ("vc2-1c-2gb", 1, 2048, 55),
            ("vc2-2c-4gb", 2, 4096, 80),
        ];
        let os_names = [
            (2136, "Debian 12 x64 (bookworm)"),
            (2284, "Ubuntu 24.04 LTS x64"),
            (2625, "Debian 13 x64 (trixie)"),
        ];
        let regions = ["ewr", "ams", "lax", "fra", "sjc", "nrt"];
        let Some(region) = body["region"].as_str().filter(|r| regions.contains(r)) else {
            return error(400, "Invalid region.");
        };
        let Some(&(plan, vcpus, ram, disk)) = body["plan"]
            .as_str()
            .and_then(|p| plans.iter().find(|(name, ..)| *name == p))
        else {
            return error(400, "Invalid plan chosen.");
        };
        // One source of the disk: an OS image or a snapshot (which carries its OS).
        let (os_id, os_name, snapshot_id) = match (body.get("os_id"), body.get("snapshot_id")) {
            (Some(_), Some(_)) => {
                return error(400, "please provide only one os_id, app_id, or snapshot_id");
            }
            (_, Some(snapshot)) => {
                let Some((id, snapshot)) = snapshot
                    .as_str()
                    .and_then(|wanted| self.snapshots.iter().find(|(id, _)| id == wanted))
                else {
                    return error(400, "Invalid snapshot_id.");
                };
                let os_id = snapshot.json["os_id"].as_u64().unwrap_or(0);
                let os_name = os_names
                    .iter()
                    .find(|(o, _)| *o == os_id)
                    .map_or("Snapshot", |(_, name)| name);
                (os_id, os_name, Some(id.clone()))
            }
            (os, None) => {
                let Some(&(os_id, os_name)) = os
                    .and_then(Value::as_u64)
                    .and_then(|o| os_names.iter().find(|(id, _)| *id == o))
                else {
                    return error(400, "Invalid os_id.");
                };
                (os_id, os_name, None)
            }
        };
        let user_data = match body.get("user_data").and_then(Value::as_str) {
            None => String::new(),
            Some(encoded) => match base64::engine::general_purpose::STANDARD.decode(encoded) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => return error(400, "user_data must be base64 encoded."),
            },
        };
        let key_ids = match body.get("sshkey_id") {
            None => Vec::new(),
            Some(Value::Array(ids)) => ids.clone(),
            Some(_) => return error(400, "sshkey_id must be an array."),
        };
        for key in &key_ids {
            if !self.ssh_keys.iter().any(|k| k["id"] == *key) {
                return error(400, "Invalid SSH key.");
            }
        }
        let tags = match body.get("tags") {
            None => json!([]),
            Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => json!(tags),
            Some(_) => return error(400, "tags must be an array of strings."),
        };
        let firewall_group_id = body["firewall_group_id"].as_str().unwrap_or("").to_owned();
        if !firewall_group_id.is_empty() {
            match self
                .firewalls
                .iter_mut()
                .find(|f| f.json["id"] == firewall_group_id.as_str())
            {
                Some(group) => {
                    let count = group.json["instance_count"].as_u64().unwrap_or(0) + 1;
                    group.json["instance_count"] = json!(count);
                }
                None => return error(400, "Invalid firewall group."),
            }
        }
        let id = self.uuid();
        let label = body["label"].as_str().unwrap_or("").to_owned();
        let ip = format!("203.0.113.{}", (self.next_id % 250) + 1);
        let json = json!({
            "id": id, "os": os_name, "ram": ram, "disk": disk, "main_ip": "0.0.0.0",
            "vcpu_count": vcpus, "region": region, "plan": plan, "date_created": now(),
            "status": "pending", "allowed_bandwidth": 1, "netmask_v4": "",
            "gateway_v4": "0.0.0.0", "power_status": "stopped", "server_status": "none",
            "v6_network": "", "v6_main_ip": "", "v6_network_size": 0, "label": label,
            "internal_ip": "", "kvm": "",
            "hostname": body["hostname"].as_str().unwrap_or(""), "tag": "", "tags": tags,
            "os_id": os_id, "app_id": 0, "image_id": "",
            "firewall_group_id": firewall_group_id, "features": [], "user_scheme": "root"
        });
        let mut instance = MockInstance {
            json,
            boot: self.boot.clone(),
            step: 0,
            ip,
            user_data,
            snapshot_id,
        };
        instance.apply_step();
        let mut answer = instance.json.clone();
        answer["default_password"] = json!("v5#Mock!Password");
        self.instance_order.push(id.clone());
        self.instances.insert(id, instance);
        ResponseTemplate::new(202).set_body_json(json!({"instance": answer}))
    }
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn created(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(body)
}

/// An error answer as the API sends it.
pub fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": message, "status": status}))
}

/// One page of a list: `per_page` (default 100, at most 500) items from the `cursor`.
fn page(field: &str, items: Vec<Value>, query: &BTreeMap<String, String>) -> ResponseTemplate {
    let per_page = match query.get("per_page").map(|p| p.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return error(400, "per_page must be from 1 to 500."),
    };
    let start = match query.get("cursor") {
        None => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(offset) => offset,
            None => return error(400, "Invalid cursor."),
        },
    };
    let total = items.len();
    let end = (start + per_page).min(total);
    let next = if end < total {
        encode_cursor(end)
    } else {
        String::new()
    };
    let prev = if start > 0 {
        encode_cursor(start.saturating_sub(per_page))
    } else {
        String::new()
    };
    let slice: Vec<Value> = items.into_iter().skip(start).take(per_page).collect();
    ok(json!({ field: slice, "meta": {"total": total, "links": {"next": next, "prev": prev}} }))
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("next__{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("next__")?
        .parse()
        .ok()
}

struct Api(Arc<Mutex<State>>);

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        lock(&self.0).handle(request)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The running mock.
pub struct MockVultr {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl MockVultr {
    /// A mock whose instances boot through [`realistic_boot`] and whose snapshots are
    /// complete from their second listing on.
    pub async fn start() -> Self {
        Self::start_with(realistic_boot(), 1).await
    }

    pub async fn start_with(boot: Vec<BootStep>, snapshot_reads_to_complete: u32) -> Self {
        assert!(!boot.is_empty(), "a boot script needs at least one step");
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            boot,
            snapshot_reads_to_complete,
            ..State::default()
        }));
        Mock::given(wiremock::matchers::any())
            .respond_with(Api(state.clone()))
            .with_priority(10)
            .mount(&server)
            .await;
        Self { server, state }
    }

    pub fn base_url(&self) -> String {
        format!("{}/v2", self.server.uri())
    }

    /// A config for this mock: its key and URL, and retries fast enough for tests.
    pub fn config(&self) -> VultrConfig {
        config_for(&self.base_url())
    }

    pub fn client(&self) -> VultrClient {
        VultrClient::new(self.config()).expect("client for the mock")
    }

    /// Answers the next `times` requests of `verb path` (e.g. `GET`, `/v2/instances`)
    /// with `response`, before the model sees them.
    pub async fn fail_next(
        &self,
        verb: &str,
        api_path: &str,
        times: u64,
        response: ResponseTemplate,
    ) {
        Mock::given(method(verb))
            .and(path(api_path))
            .respond_with(response)
            .up_to_n_times(times)
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// Adds `count` running instances carrying `tags`, as if made earlier.
    pub fn seed_instances(&self, count: usize, tags: &[&str]) -> Vec<String> {
        let mut state = lock(&self.state);
        let ready = [BootStep::new("active", "running", "ok", true)];
        (0..count)
            .map(|n| {
                let id = state.uuid();
                let mut instance = MockInstance {
                    json: json!({
                        "id": id, "os": "Debian 12 x64 (bookworm)", "ram": 1024, "disk": 25,
                        "vcpu_count": 1, "region": "ewr", "plan": "vc2-1c-1gb",
                        "date_created": date(), "allowed_bandwidth": 1, "label": format!("seed-{n}"),
                        "hostname": format!("seed-{n}"), "tag": "", "tags": tags, "os_id": 2136,
                        "app_id": 0, "image_id": "", "firewall_group_id": "", "features": [],
                        "user_scheme": "root", "v6_main_ip": "", "internal_ip": "", "kvm": ""
                    }),
                    boot: ready.to_vec(),
                    step: 0,
                    ip: format!("198.51.100.{}", n % 250 + 1),
                    user_data: String::new(),
                    snapshot_id: None,
                };
                instance.apply_step();
                state.instance_order.push(id.clone());
                state.instances.insert(id.clone(), instance);
                id
            })
            .collect()
    }

    pub fn instance_count(&self) -> usize {
        lock(&self.state).instances.len()
    }

    /// The instance's JSON as the API would show it now (without advancing its boot).
    pub fn instance_json(&self, id: &str) -> Option<Value> {
        lock(&self.state).instances.get(id).map(|i| i.json.clone())
    }

    /// The user_data the mock decoded from the create request.
    pub fn user_data(&self, id: &str) -> Option<String> {
        lock(&self.state)
            .instances
            .get(id)
            .map(|i| i.user_data.clone())
    }

    /// The snapshot an instance was made from, if it was.
    pub fn instance_snapshot(&self, id: &str) -> Option<String> {
        lock(&self.state)
            .instances
            .get(id)
            .and_then(|i| i.snapshot_id.clone())
    }

    /// Deletes every firewall group behind the client's back, as someone might in the
    /// Vultr console.
    pub fn delete_firewall_groups_outside(&self) {
        lock(&self.state).firewalls.clear();
    }

    /// The firewall groups, each with its rules.
    pub fn firewalls(&self) -> Vec<(Value, Vec<Value>)> {
        lock(&self.state)
            .firewalls
            .iter()
            .map(|f| (f.json.clone(), f.rules.clone()))
            .collect()
    }

    /// Every request the server received (faults included), in order.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// A client of the API at `http://{addr}/v2` (a proxy, or a port nothing listens on),
/// with [`config_for`]'s settings.
pub fn client_at(addr: std::net::SocketAddr) -> VultrClient {
    VultrClient::new(config_for(&format!("http://{addr}/v2"))).expect("client")
}

/// A port on 127.0.0.1 that was just free, so nothing listens on it.
pub fn refused_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A config that talks to `base_url` with the mock's key, short timeouts and fast
/// retries (a few milliseconds), so retry tests take no noticeable time.
pub fn config_for(base_url: &str) -> VultrConfig {
    VultrConfig {
        api_key: Some(ApiKey::new(API_KEY)),
        api_base_url: base_url.to_owned(),
        request_timeout_secs: 5.0,
        connect_timeout_secs: 2.0,
        max_retries: 4,
        retry_initial_backoff_secs: 0.005,
        retry_max_backoff_secs: 0.02,
        retry_after_max_secs: 5.0,
        max_requests_per_second: 1000.0,
        ..VultrConfig::default()
    }
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that drops the first `drop_first`
/// connections after reading the start of the request (so the client has sent it), and
/// relays the rest. Counts connections.
pub struct DroppingProxy {
    pub addr: std::net::SocketAddr,
    connections: Arc<Mutex<usize>>,
}

impl DroppingProxy {
    pub async fn start(upstream: std::net::SocketAddr, drop_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let connections = Arc::new(Mutex::new(0usize));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let number = {
                    let mut n = counter.lock().unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                    *n
                };
                tokio::spawn(async move {
                    if number <= drop_first {
                        // Read what the client sends, then hang up without answering.
                        let mut buf = [0u8; 1024];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), inbound.read(&mut buf))
                                .await;
                        drop(inbound);
                        return;
                    }
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, connections }
    }

    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

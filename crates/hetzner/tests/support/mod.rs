//! A stateful mock of the Hetzner Cloud API v1 on wiremock, bound to 127.0.0.1.
//!
//! It keeps servers, actions, images (snapshots), SSH keys and firewalls in memory and
//! answers with the API's JSON shapes: `{"server": …}`, lists with `meta.pagination`
//! (`page`, `per_page` default 25, at most 50), `{"error": {"code", "message",
//! "details"}}` on errors, 201 on create. Its behaviour is the API's as far as we checked
//! it (`../shared/notes/hetzner-api.md`), and where a fact is unverified the mock takes
//! the harder reading:
//!
//! - **actions run for a while** (real time, `MockOptions::action_duration` each): a
//!   create starts `create_server`, then `start_server`; the server is `initializing`,
//!   then `starting`, then `running`. While any action runs on a server it is `locked`,
//!   and changes to it (delete, snapshot, power) are refused with 423 `locked`;
//! - **unknown request fields are refused** (422 `invalid_input`), so the client sends
//!   only documented fields;
//! - **rate limiting**: a token bucket (`MockOptions::rate_limit`), `RateLimit-Limit`,
//!   `-Remaining` and `-Reset` on every answer, 429 `rate_limit_exceeded` when empty;
//! - **label selectors** match exactly (`k==v`, `k=v`, `k!=v`, `k`, `!k`, comma = and);
//! - SSH keys are unique by name and by key (409 `uniqueness_error`).
//!
//! Faults are injected by mounting higher-priority wiremock mocks (`fail_next`), by
//! making the next action of a command fail (`fail_next_action`), and by locking a server
//! (`lock_server`).

#![allow(dead_code)] // Each test binary uses a different part of the mock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hetzner::{ApiToken, HetznerClient, HetznerConfig};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The token the mock accepts. Distinctive, so a test can search logs and errors for it.
pub const TOKEN: &str = "MOCK-HCLOUD-TOKEN-4b1d9e7a2c5f8e3a6d0b";
/// Hetzner's `debian-12` image id, the one system image the mock knows.
pub const DEBIAN_12: u64 = 114_690_387;

const SERVER_TYPES: [&str; 4] = ["cx22", "cx32", "cpx11", "cax11"];
const LOCATIONS: [&str; 6] = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];

/// How the mock behaves.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// How long each action runs.
    pub action_duration: Duration,
    /// Token bucket: (burst, time to regain one request); `None` for no limit.
    pub rate_limit: Option<(u32, Duration)>,
    /// Whether a new server has its IPv4 address in the create answer already (the usual
    /// reading) or only once it runs.
    pub ipv4_at_create: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            action_duration: Duration::from_millis(120),
            rate_limit: Some((40, Duration::from_millis(8))),
            ipv4_at_create: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    None,
    ServerStarting(u64),
    ServerRunning(u64),
    ServerGone(u64),
    ServerOff(u64),
    ImageAvailable(u64),
}

struct MockAction {
    id: u64,
    command: String,
    started: String,
    finishes_at: Instant,
    status: &'static str,
    error: Option<(String, String)>,
    resources: Vec<Value>,
    server: Option<u64>,
    effect: Effect,
}

impl MockAction {
    fn json(&self) -> Value {
        let running = self.status == "running";
        json!({
            "id": self.id, "command": self.command, "status": self.status,
            "progress": if running { 50 } else { 100 },
            "started": self.started, "finished": if running { Value::Null } else { json!(date()) },
            "resources": self.resources,
            "error": self.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
        })
    }
}

struct MockServerRecord {
    id: u64,
    name: String,
    status: &'static str,
    server_type: String,
    location: String,
    image: u64,
    ip: String,
    has_ip: bool,
    labels: BTreeMap<String, String>,
    user_data: String,
    ssh_keys: Vec<u64>,
    firewalls: Vec<u64>,
    created: String,
}

struct MockImage {
    id: u64,
    status: &'static str,
    description: String,
    labels: Value,
    created_from: u64,
}

#[derive(Default)]
struct State {
    options: Option<MockOptions>,
    next_id: u64,
    servers: Vec<MockServerRecord>,
    actions: Vec<MockAction>,
    images: Vec<MockImage>,
    ssh_keys: Vec<Value>,
    firewalls: Vec<Value>,
    /// The next action of this command fails with (code, message).
    failing: BTreeMap<String, (String, String)>,
    tokens: f64,
    last_refill: Option<Instant>,
    rate_limited: u32,
    locked_refusals: u32,
}

fn date() -> &'static str {
    "2026-12-02T14:00:00+00:00"
}

/// The time now as the API writes it (RFC 3339).
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| date().to_owned())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An error answer as the API sends it.
pub fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"code": code, "message": message, "details": {}}}))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn created(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(body)
}

fn not_found(what: &str) -> ResponseTemplate {
    error(404, "not_found", &format!("{what} not found"))
}

fn locked() -> ResponseTemplate {
    error(
        423,
        "locked",
        "cannot perform operation because server is locked",
    )
}

/// Refuses fields outside `allowed`, as the API does ("unknown field name").
fn unknown_field(body: &Value, allowed: &[&str]) -> Option<ResponseTemplate> {
    let Some(object) = body.as_object() else {
        return Some(error(
            422,
            "invalid_input",
            "invalid input: root must be an object",
        ));
    };
    object
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            error(
                422,
                "invalid_input",
                &format!("invalid input: unknown field name '{k}'"),
            )
        })
}

/// Whether labels match a selector: terms joined by commas, each `k==v`, `k=v`, `k!=v`,
/// `k` or `!k`. Values match exactly.
fn selector_matches(labels: &BTreeMap<String, String>, selector: &str) -> Option<bool> {
    let mut all = true;
    for term in selector.split(',').map(str::trim) {
        let matched = if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).is_none_or(|have| have != v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.get(k.trim()).is_some_and(|have| have == v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            !labels.contains_key(k.trim())
        } else if !term.is_empty() && !term.contains(' ') {
            labels.contains_key(term)
        } else {
            return None;
        };
        all &= matched;
    }
    Some(all)
}

fn labels_of(value: &Value) -> Option<BTreeMap<String, String>> {
    match value {
        Value::Null => Some(BTreeMap::new()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
        _ => None,
    }
}

impl State {
    fn options(&self) -> MockOptions {
        self.options.clone().unwrap_or_default()
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Finishes actions whose time has come, applying their effects.
    fn tick(&mut self) {
        let now = Instant::now();
        let mut effects = Vec::new();
        for action in &mut self.actions {
            if action.status == "running" && action.finishes_at <= now {
                action.status = if action.error.is_some() {
                    "error"
                } else {
                    "success"
                };
                if action.error.is_none() {
                    effects.push(action.effect);
                }
            }
        }
        for effect in effects {
            match effect {
                Effect::None => {}
                Effect::ServerStarting(id) => self.set_status(id, "starting"),
                Effect::ServerRunning(id) => {
                    self.set_status(id, "running");
                    if let Some(s) = self.servers.iter_mut().find(|s| s.id == id) {
                        s.has_ip = true;
                    }
                }
                Effect::ServerOff(id) => self.set_status(id, "off"),
                Effect::ServerGone(id) => self.servers.retain(|s| s.id != id),
                Effect::ImageAvailable(id) => {
                    if let Some(image) = self.images.iter_mut().find(|i| i.id == id) {
                        image.status = "available";
                    }
                }
            }
        }
    }

    fn set_status(&mut self, id: u64, status: &'static str) {
        if let Some(s) = self.servers.iter_mut().find(|s| s.id == id) {
            s.status = status;
        }
    }

    fn is_locked(&self, server: u64) -> bool {
        self.actions
            .iter()
            .any(|a| a.server == Some(server) && a.status == "running")
    }

    /// Starts an action that finishes `after` from now.
    fn start_action(
        &mut self,
        command: &str,
        server: Option<u64>,
        resources: Vec<Value>,
        after: Duration,
        effect: Effect,
    ) -> Value {
        let id = self.id();
        let error = self.failing.remove(command);
        let action = MockAction {
            id,
            command: command.to_owned(),
            started: date().to_owned(),
            finishes_at: Instant::now() + after,
            status: "running",
            error,
            resources,
            server,
            effect,
        };
        let json = action.json();
        self.actions.push(action);
        json
    }

    fn server_json(&self, s: &MockServerRecord) -> Value {
        json!({
            "id": s.id, "name": s.name, "status": s.status, "created": s.created,
            "public_net": {
                "ipv4": if s.has_ip { json!({"id": s.id + 1000, "ip": s.ip, "blocked": false, "dns_ptr": "static.example"}) } else { Value::Null },
                "ipv6": {"id": s.id + 2000, "ip": "2001:db8::/64", "blocked": false, "dns_ptr": []},
                "floating_ips": [],
                "firewalls": s.firewalls.iter().map(|f| json!({"id": f, "status": "applied"})).collect::<Vec<_>>(),
            },
            "private_net": [],
            "server_type": {"id": 1, "name": s.server_type, "cores": 2, "memory": 4.0, "disk": 40},
            "location": {"id": 1, "name": s.location, "network_zone": "eu-central"},
            "image": {"id": s.image, "type": "system", "name": "debian-12"},
            "iso": null, "rescue_enabled": false,
            "locked": self.is_locked(s.id),
            "backup_window": null, "outgoing_traffic": 0, "ingoing_traffic": 0,
            "included_traffic": 21990232555520u64,
            "protection": {"delete": false, "rebuild": false},
            "labels": s.labels, "volumes": [], "load_balancers": [],
            "primary_disk_size": 40, "placement_group": null
        })
    }

    fn image_json(&self, i: &MockImage) -> Value {
        json!({
            "id": i.id, "type": "snapshot", "status": i.status, "name": null,
            "description": i.description, "image_size": 1.2, "disk_size": 40,
            "created": date(), "created_from": {"id": i.created_from, "name": "x"},
            "bound_to": null, "os_flavor": "debian", "os_version": "12",
            "rapid_deploy": false, "protection": {"delete": false}, "deprecated": null,
            "deleted": null, "labels": i.labels, "architecture": "x86"
        })
    }

    /// Takes one request from the bucket; false when it is empty.
    fn take_token(&mut self) -> bool {
        let Some((burst, regain)) = self.options().rate_limit else {
            return true;
        };
        let now = Instant::now();
        let last = *self.last_refill.get_or_insert(now);
        let gained = now.duration_since(last).as_secs_f64() / regain.as_secs_f64();
        self.tokens = (self.tokens + gained).min(f64::from(burst));
        self.last_refill = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn with_rate_headers(&self, response: ResponseTemplate) -> ResponseTemplate {
        let Some((burst, regain)) = self.options().rate_limit else {
            return response;
        };
        let per_hour = (3600.0 / regain.as_secs_f64()).round() as u64;
        let missing = f64::from(burst) - self.tokens;
        let reset = (unix_now() + missing * regain.as_secs_f64()).ceil() as u64;
        response
            .insert_header("RateLimit-Limit", per_hour.to_string().as_str())
            .insert_header(
                "RateLimit-Remaining",
                (self.tokens.floor() as u64).to_string().as_str(),
            )
            .insert_header("RateLimit-Reset", reset.to_string().as_str())
    }

    fn handle(&mut self, request: &Request) -> ResponseTemplate {
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {TOKEN}"));
        if !authorised {
            return error(401, "unauthorized", "unable to authenticate");
        }
        if !self.take_token() {
            self.rate_limited += 1;
            return self.with_rate_headers(error(
                429,
                "rate_limit_exceeded",
                "limit of 3600 requests per hour reached",
            ));
        }
        self.tick();
        let response = self.route(request);
        self.with_rate_headers(response)
    }

    fn route(&mut self, request: &Request) -> ResponseTemplate {
        let Some(api_path) = request.url.path().strip_prefix("/v1/") else {
            return not_found("path");
        };
        let segments: Vec<&str> = api_path.split('/').collect();
        let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = || serde_json::from_slice::<Value>(&request.body).unwrap_or(Value::Null);
        let id_of = |text: &str| text.parse::<u64>().ok();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["servers"]) => {
                let selector = get("label_selector");
                let name = get("name");
                let mut items = Vec::new();
                for s in &self.servers {
                    if let Some(sel) = &selector {
                        match selector_matches(&s.labels, sel) {
                            Some(true) => {}
                            Some(false) => continue,
                            None => {
                                return error(422, "invalid_input", "invalid label_selector");
                            }
                        }
                    }
                    if name.as_ref().is_some_and(|n| *n != s.name) {
                        continue;
                    }
                    items.push(self.server_json(s));
                }
                page("servers", items, &query)
            }
            ("POST", ["servers"]) => self.create_server(body()),
            ("GET", ["servers", id]) => {
                match id_of(id).and_then(|id| self.servers.iter().find(|s| s.id == id)) {
                    Some(s) => ok(json!({"server": self.server_json(s)})),
                    None => not_found("server"),
                }
            }
            ("DELETE", ["servers", id]) => {
                let Some(id) = id_of(id).filter(|id| self.servers.iter().any(|s| s.id == *id))
                else {
                    return not_found("server");
                };
                if self.is_locked(id) {
                    self.locked_refusals += 1;
                    return locked();
                }
                self.set_status(id, "deleting");
                let after = self.options().action_duration;
                let action = self.start_action(
                    "delete_server",
                    Some(id),
                    vec![json!({"id": id, "type": "server"})],
                    after,
                    Effect::ServerGone(id),
                );
                ok(json!({"action": action}))
            }
            ("POST", ["servers", id, "actions", verb]) => {
                let Some(id) = id_of(id).filter(|id| self.servers.iter().any(|s| s.id == *id))
                else {
                    return not_found("server");
                };
                if self.is_locked(id) {
                    self.locked_refusals += 1;
                    return locked();
                }
                let after = self.options().action_duration;
                let resources = vec![json!({"id": id, "type": "server"})];
                match *verb {
                    "create_image" => {
                        let body = body();
                        if let Some(refusal) =
                            unknown_field(&body, &["type", "description", "labels"])
                        {
                            return refusal;
                        }
                        if body["type"] != "snapshot" && body["type"] != "backup" {
                            return error(422, "invalid_input", "invalid input in field 'type'");
                        }
                        let image_id = self.id();
                        self.images.push(MockImage {
                            id: image_id,
                            status: "creating",
                            description: body["description"].as_str().unwrap_or("").to_owned(),
                            labels: body.get("labels").cloned().unwrap_or(json!({})),
                            created_from: id,
                        });
                        let action = self.start_action(
                            "create_image",
                            Some(id),
                            resources,
                            after,
                            Effect::ImageAvailable(image_id),
                        );
                        let image = self.images.last().map(|i| self.image_json(i));
                        created(json!({"image": image, "action": action}))
                    }
                    "poweroff" | "poweron" => {
                        let (command, effect) = if *verb == "poweroff" {
                            ("stop_server", Effect::ServerOff(id))
                        } else {
                            ("start_server", Effect::ServerRunning(id))
                        };
                        let action = self.start_action(command, Some(id), resources, after, effect);
                        created(json!({"action": action}))
                    }
                    _ => not_found("action"),
                }
            }
            ("GET", ["actions", id]) => {
                match id_of(id).and_then(|id| self.actions.iter().find(|a| a.id == id)) {
                    Some(a) => ok(json!({"action": a.json()})),
                    None => not_found("action"),
                }
            }
            ("GET", ["images"]) => {
                let wanted = get("type");
                let items = self
                    .images
                    .iter()
                    .filter(|_| wanted.as_deref().is_none_or(|t| t == "snapshot"))
                    .map(|i| self.image_json(i))
                    .collect();
                page("images", items, &query)
            }
            ("DELETE", ["images", id]) => {
                let before = self.images.len();
                let id = id_of(id);
                self.images.retain(|i| Some(i.id) != id);
                if self.images.len() < before {
                    ResponseTemplate::new(204)
                } else {
                    not_found("image")
                }
            }
            ("GET", ["ssh_keys"]) => page("ssh_keys", self.ssh_keys.clone(), &query),
            ("POST", ["ssh_keys"]) => self.create_key(body()),
            ("DELETE", ["ssh_keys", id]) => {
                let before = self.ssh_keys.len();
                let id = id_of(id);
                self.ssh_keys.retain(|k| k["id"].as_u64() != id);
                if self.ssh_keys.len() < before {
                    ResponseTemplate::new(204)
                } else {
                    not_found("SSH key")
                }
            }
            ("GET", ["firewalls"]) => {
                let name = get("name");
                let items = self
                    .firewalls
                    .iter()
                    .filter(|f| name.as_deref().is_none_or(|n| f["name"] == n))
                    .cloned()
                    .collect();
                page("firewalls", items, &query)
            }
            ("POST", ["firewalls"]) => {
                let body = body();
                if let Some(refusal) =
                    unknown_field(&body, &["name", "labels", "rules", "apply_to"])
                {
                    return refusal;
                }
                let Some(name) = body["name"].as_str() else {
                    return error(422, "invalid_input", "invalid input in field 'name'");
                };
                if self.firewalls.iter().any(|f| f["name"] == name) {
                    return error(409, "uniqueness_error", "name is already used");
                }
                let id = self.id();
                let firewall = json!({
                    "id": id, "name": name, "labels": body["labels"], "created": date(),
                    "rules": body.get("rules").cloned().unwrap_or(json!([])), "applied_to": []
                });
                self.firewalls.push(firewall.clone());
                created(json!({"firewall": firewall, "actions": []}))
            }
            ("POST", ["firewalls", id, "actions", "set_rules"]) => {
                let rules = body()["rules"].clone();
                let Some(fw_id) = id_of(id) else {
                    return not_found("firewall");
                };
                let Some(firewall) = self.firewalls.iter_mut().find(|f| f["id"] == fw_id) else {
                    return not_found("firewall");
                };
                firewall["rules"] = rules;
                let after = self.options().action_duration;
                let action = self.start_action(
                    "set_firewall_rules",
                    None,
                    vec![json!({"id": fw_id, "type": "firewall"})],
                    after,
                    Effect::None,
                );
                created(json!({"actions": [action]}))
            }
            _ => not_found("path"),
        }
    }

    fn create_server(&mut self, body: Value) -> ResponseTemplate {
        let allowed = [
            "name",
            "server_type",
            "image",
            "location",
            "ssh_keys",
            "user_data",
            "labels",
            "start_after_create",
            "firewalls",
            "public_net",
            "volumes",
            "networks",
            "automount",
            "placement_group",
        ];
        if let Some(refusal) = unknown_field(&body, &allowed) {
            return refusal;
        }
        let Some(name) = body["name"].as_str() else {
            return error(422, "invalid_input", "invalid input in field 'name'");
        };
        let hostname_ok = !name.is_empty()
            && name.split('.').all(|p| {
                !p.is_empty()
                    && p.len() <= 63
                    && !p.starts_with('-')
                    && !p.ends_with('-')
                    && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !hostname_ok {
            return error(422, "invalid_input", "invalid input in field 'name'");
        }
        if self.servers.iter().any(|s| s.name == name) {
            return error(409, "uniqueness_error", "server name is already used");
        }
        let Some(server_type) = body["server_type"]
            .as_str()
            .filter(|t| SERVER_TYPES.contains(t))
        else {
            return error(422, "invalid_input", "invalid input in field 'server_type'");
        };
        let Some(location) = body["location"].as_str().filter(|l| LOCATIONS.contains(l)) else {
            return error(422, "invalid_input", "invalid input in field 'location'");
        };
        let image = match body["image"].as_str().and_then(|i| i.parse::<u64>().ok()) {
            Some(DEBIAN_12) => DEBIAN_12,
            Some(id) => match self.images.iter().find(|i| i.id == id) {
                Some(image) if image.status == "available" => id,
                Some(_) => {
                    return error(422, "invalid_input", "image is still being created");
                }
                None => return error(422, "invalid_input", "invalid input in field 'image'"),
            },
            None => return error(422, "invalid_input", "invalid input in field 'image'"),
        };
        let user_data = match &body["user_data"] {
            Value::Null => String::new(),
            Value::String(text) if text.len() <= 32 * 1024 => text.clone(),
            Value::String(_) => {
                return error(
                    422,
                    "invalid_input",
                    "invalid input in field 'user_data': is too long",
                );
            }
            _ => return error(422, "invalid_input", "invalid input in field 'user_data'"),
        };
        let mut ssh_keys = Vec::new();
        for key in body["ssh_keys"].as_array().cloned().unwrap_or_default() {
            match key
                .as_u64()
                .filter(|k| self.ssh_keys.iter().any(|s| s["id"] == *k))
            {
                Some(k) => ssh_keys.push(k),
                None => return error(422, "invalid_input", "invalid input in field 'ssh_keys'"),
            }
        }
        let mut firewalls = Vec::new();
        for fw in body["firewalls"].as_array().cloned().unwrap_or_default() {
            match fw["firewall"]
                .as_u64()
                .filter(|f| self.firewalls.iter().any(|x| x["id"] == *f))
            {
                Some(f) => firewalls.push(f),
                None => return error(422, "invalid_input", "invalid input in field 'firewalls'"),
            }
        }
        let Some(labels) = labels_of(&body["labels"]) else {
            return error(422, "invalid_input", "invalid input in field 'labels'");
        };
        let id = self.id();
        let options = self.options();
        self.servers.push(MockServerRecord {
            id,
            name: name.to_owned(),
            status: "initializing",
            server_type: server_type.to_owned(),
            location: location.to_owned(),
            image,
            ip: format!("203.0.113.{}", id % 250 + 1),
            has_ip: options.ipv4_at_create,
            labels,
            user_data,
            ssh_keys,
            firewalls,
            created: now_rfc3339(),
        });
        let resources = vec![json!({"id": id, "type": "server"})];
        let d = options.action_duration;
        let action = self.start_action(
            "create_server",
            Some(id),
            resources.clone(),
            d,
            Effect::ServerStarting(id),
        );
        let start = self.start_action(
            "start_server",
            Some(id),
            resources,
            d * 2,
            Effect::ServerRunning(id),
        );
        let server = self
            .servers
            .last()
            .map(|s| self.server_json(s))
            .unwrap_or(Value::Null);
        created(json!({
            "server": server, "action": action, "next_actions": [start],
            "root_password": if body["ssh_keys"].as_array().is_some_and(|k| !k.is_empty()) { Value::Null } else { json!("mock-root-password") }
        }))
    }

    fn create_key(&mut self, body: Value) -> ResponseTemplate {
        if let Some(refusal) = unknown_field(&body, &["name", "public_key", "labels"]) {
            return refusal;
        }
        let (Some(name), Some(key)) = (body["name"].as_str(), body["public_key"].as_str()) else {
            return error(
                422,
                "invalid_input",
                "invalid input in fields 'name', 'public_key'",
            );
        };
        if !key.starts_with("ssh-") || material(key).len() != 2 {
            return error(422, "invalid_input", "invalid input in field 'public_key'");
        }
        if self.ssh_keys.iter().any(|k| k["name"] == name) {
            return error(409, "uniqueness_error", "SSH key name is already used");
        }
        if self
            .ssh_keys
            .iter()
            .any(|k| material(k["public_key"].as_str().unwrap_or("")) == material(key))
        {
            return error(
                409,
                "uniqueness_error",
                "SSH key with the same fingerprint already exists",
            );
        }
        let id = self.id();
        let json = json!({
            "id": id, "name": name, "public_key": key, "labels": {}, "created": date(),
            "fingerprint": format!("b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:{:02x}", id % 256)
        });
        self.ssh_keys.push(json.clone());
        created(json!({"ssh_key": json}))
    }
}

/// The key type and base64 blob of a public key line.
fn material(key: &str) -> Vec<&str> {
    key.split_whitespace().take(2).collect()
}

/// One page of a list (`page` from 1, `per_page` default 25, at most 50), with
/// `meta.pagination`.
fn page(field: &str, items: Vec<Value>, query: &[(String, String)]) -> ResponseTemplate {
    let number = |name: &str, default: usize| -> Option<usize> {
        match query.iter().find(|(k, _)| k == name) {
            None => Some(default),
            Some((_, v)) => v.parse().ok(),
        }
    };
    let Some(per_page) = number("per_page", 25).filter(|n| (1..=50).contains(n)) else {
        return error(422, "invalid_input", "invalid input in field 'per_page'");
    };
    let Some(page) = number("page", 1).filter(|p| *p >= 1) else {
        return error(422, "invalid_input", "invalid input in field 'page'");
    };
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let next = if page < last {
        json!(page + 1)
    } else {
        Value::Null
    };
    let previous = if page > 1 {
        json!(page - 1)
    } else {
        Value::Null
    };
    ok(json!({
        field: slice,
        "meta": {"pagination": {
            "page": page, "per_page": per_page, "previous_page": previous,
            "next_page": next, "last_page": last, "total_entries": total
        }}
    }))
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
pub struct MockHetzner {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl MockHetzner {
    pub async fn start() -> Self {
        Self::start_with(MockOptions::default()).await
    }

    pub async fn start_with(options: MockOptions) -> Self {
        let server = MockServer::start().await;
        let tokens = options
            .rate_limit
            .map_or(0.0, |(burst, _)| f64::from(burst));
        let state = Arc::new(Mutex::new(State {
            options: Some(options),
            next_id: 100,
            tokens,
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
        format!("{}/v1", self.server.uri())
    }

    pub fn config(&self) -> HetznerConfig {
        config_for(&self.base_url())
    }

    pub fn client(&self) -> HetznerClient {
        HetznerClient::new(self.config()).expect("client for the mock")
    }

    /// Answers the next `times` requests of `verb path` (e.g. `GET`, `/v1/servers`) with
    /// `response`, before the model sees them.
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

    /// The next action of `command` (`create_server`, `create_image`, …) ends in error.
    pub fn fail_next_action(&self, command: &str, code: &str, message: &str) {
        lock(&self.state)
            .failing
            .insert(command.to_owned(), (code.to_owned(), message.to_owned()));
    }

    /// Locks a server for `duration` with an action of another client.
    pub fn lock_server(&self, id: u64, duration: Duration) {
        let mut state = lock(&self.state);
        state.start_action(
            "change_protection",
            Some(id),
            vec![json!({"id": id, "type": "server"})],
            duration,
            Effect::None,
        );
    }

    /// Adds `count` running servers carrying `labels`, as if made earlier.
    pub fn seed_servers(&self, count: usize, labels: &[(&str, &str)]) -> Vec<u64> {
        let mut state = lock(&self.state);
        (0..count)
            .map(|n| {
                let id = state.id();
                state.servers.push(MockServerRecord {
                    id,
                    name: format!("seed-{id}-{n}"),
                    status: "running",
                    server_type: "cx22".to_owned(),
                    location: "fsn1".to_owned(),
                    image: DEBIAN_12,
                    ip: format!("198.51.100.{}", n % 250 + 1),
                    has_ip: true,
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    user_data: String::new(),
                    ssh_keys: Vec::new(),
                    firewalls: Vec::new(),
                    created: date().to_owned(),
                });
                id
            })
            .collect()
    }

    pub fn server_count(&self) -> usize {
        lock(&self.state).servers.len()
    }

    /// The server's JSON as the API would show it now.
    pub fn server_json(&self, id: u64) -> Option<Value> {
        let mut state = lock(&self.state);
        state.tick();
        state
            .servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| state.server_json(s))
    }

    pub fn user_data(&self, id: u64) -> Option<String> {
        lock(&self.state)
            .servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.user_data.clone())
    }

    /// The image a server was made from.
    pub fn server_image(&self, id: u64) -> Option<u64> {
        lock(&self.state)
            .servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.image)
    }

    pub fn server_firewalls(&self, id: u64) -> Vec<u64> {
        lock(&self.state)
            .servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.firewalls.clone())
            .unwrap_or_default()
    }

    pub fn firewalls(&self) -> Vec<Value> {
        lock(&self.state).firewalls.clone()
    }

    pub fn image_labels(&self, id: u64) -> Option<Value> {
        lock(&self.state)
            .images
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.labels.clone())
    }

    pub fn image_count(&self) -> usize {
        lock(&self.state).images.len()
    }

    /// How many 429s the rate limit served, and how many changes a lock refused.
    pub fn refusals(&self) -> (u32, u32) {
        let state = lock(&self.state);
        (state.rate_limited, state.locked_refusals)
    }

    /// Every request the server received (faults included), in order.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// A port on 127.0.0.1 that was just free, so nothing listens on it.
pub fn refused_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A config that talks to `base_url` with the mock's token, short timeouts, fast retries
/// and action polls (milliseconds), so tests take no noticeable time.
pub fn config_for(base_url: &str) -> HetznerConfig {
    HetznerConfig {
        api_token: Some(ApiToken::new(TOKEN)),
        api_base_url: base_url.to_owned(),
        request_timeout_secs: 5.0,
        connect_timeout_secs: 2.0,
        max_retries: 6,
        retry_initial_backoff_secs: 0.005,
        retry_max_backoff_secs: 0.05,
        rate_limit_max_wait_secs: 0.2,
        lock_timeout_secs: 5.0,
        action_timeout_secs: 5.0,
        action_poll_interval_secs: 0.02,
        ..HetznerConfig::default()
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

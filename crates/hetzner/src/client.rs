//! `HetznerClient`: the [`VpsClient`] on the Hetzner Cloud API v1.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use vps_client::{
    CreateInstanceRequest, InstanceInfo, SnapshotInfo, SshKeyInfo, VpsClient, VpsClientError,
};
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsSnapshotId};

use crate::actions::{self, ActionWaitError};
use crate::api::{
    Action, CreateProgress, CreateServerBody, Firewall, FirewallRef, FirewallRule, Image,
    PublicNetRequest, Server, SshKey,
};
use crate::config::API_TOKEN_ENV;
use crate::error::HetznerError;
use crate::http::{CallError, Http};
use crate::labels::{has_tag, labels_for, selector_for, server_name_problem};
use crate::{ApiToken, HetznerConfig};

/// The size limit of `user_data` (DOCS create_server: "limited to 32KiB").
pub const MAX_USER_DATA_BYTES: usize = 32 * 1024;

/// A [`VpsClient`] on the Hetzner Cloud API v1.
///
/// Share one client behind an `Arc`: its calls share one connection pool, the create
/// actions it is still tracking (`ACTIVE` waits for them), and the firewall it found.
/// See the crate docs for an example.
pub struct HetznerClient {
    config: HetznerConfig,
    http: Http,
    /// Server id → ids of its create actions (`create_server`, `start_server`) that were
    /// not yet seen to succeed.
    creating: Mutex<HashMap<u64, Vec<u64>>>,
    firewall: tokio::sync::Mutex<FirewallState>,
}

/// The firewall found or created for this client, and the ports known to be open.
#[derive(Default)]
struct FirewallState {
    id: Option<u64>,
    open_ports: BTreeSet<u16>,
}

impl fmt::Debug for HetznerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HetznerClient")
            .field("base_url", &self.http.base_url().as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `POST /servers` answer.
#[derive(Deserialize)]
struct CreateServerAnswer {
    server: Server,
    action: Action,
    #[serde(default)]
    next_actions: Vec<Action>,
}

/// A request refused before it was sent, as the API would refuse it (`invalid_input`).
fn refused(message: String) -> VpsClientError {
    VpsClientError::Api {
        status: 422,
        message: format!("{message} (refused before sending)"),
    }
}

/// A Hetzner id: a positive decimal integer. Anything else names nothing at Hetzner.
fn numeric_id(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|n| *n > 0)
}

fn instance_not_found(id: &VpsInstanceId) -> VpsClientError {
    VpsClientError::NotFound {
        kind: "instance",
        id: id.to_string(),
    }
}

impl HetznerClient {
    /// Builds a client from its config. The token is the config's `api_token`, else the
    /// `HCLOUD_TOKEN` environment variable; with neither (or only empty values) this fails
    /// with [`HetznerError::MissingApiToken`]. Makes no request.
    pub fn new(config: HetznerConfig) -> Result<Self, HetznerError> {
        Self::build(config, std::env::var(API_TOKEN_ENV).ok())
    }

    fn build(config: HetznerConfig, env_token: Option<String>) -> Result<Self, HetznerError> {
        config.validate()?;
        let token = resolve_token(config.api_token.as_ref(), env_token)?;
        let http = Http::new(&config, &token)?;
        Ok(Self {
            config,
            http,
            creating: Mutex::new(HashMap::new()),
            firewall: tokio::sync::Mutex::new(FirewallState::default()),
        })
    }

    /// The config the client was built from.
    pub fn config(&self) -> &HetznerConfig {
        &self.config
    }

    /// Checks that the API answers and accepts the token (`GET /servers?per_page=1`).
    pub async fn check_credentials(&self) -> Result<(), VpsClientError> {
        self.http
            .send(
                Method::GET,
                "/servers",
                &[("per_page", "1".to_owned())],
                None,
            )
            .await
            .map(drop)
            .map_err(VpsClientError::from)
    }

    /// Powers a server off (`poweroff`: a hard stop, unlike the ACPI `shutdown`, whose
    /// action only says the signal was sent) and waits for the action.
    pub async fn power_off(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        self.power_action(id, "poweroff").await
    }

    /// Powers a server on and waits for the action.
    pub async fn power_on(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        self.power_action(id, "poweron").await
    }

    async fn power_action(&self, id: &VpsInstanceId, verb: &str) -> Result<(), VpsClientError> {
        let server = numeric_id(id.as_str()).ok_or_else(|| instance_not_found(id))?;
        let path = format!("/servers/{server}/actions/{verb}");
        let answer = self
            .http
            .send(Method::POST, &path, &[], Some(&json!({})))
            .await
            .map_err(|e| not_found_or(e, || instance_not_found(id)))?;
        let action: Action = answer.field("action", &path)?;
        self.wait_action(id, action).await.map(drop)
    }

    /// Waits for an action, for at most `action_timeout_secs`.
    async fn wait_for_action(&self, action: Action) -> Result<Action, ActionWaitError> {
        actions::wait_for(
            &self.http,
            action,
            self.config.action_timeout(),
            self.config.action_poll_interval(),
        )
        .await
    }

    /// Waits for an action on server `id`; past the deadline, a [`VpsClientError::Timeout`]
    /// of that server.
    async fn wait_action(
        &self,
        id: &VpsInstanceId,
        action: Action,
    ) -> Result<Action, VpsClientError> {
        self.wait_for_action(action).await.map_err(|e| match e {
            ActionWaitError::Failed(error) => error,
            ActionWaitError::TimedOut { waited, last_seen } => VpsClientError::Timeout {
                id: id.clone(),
                wanted: "done with its Hetzner action",
                waited_secs: waited.as_secs_f64(),
                last_seen,
            },
        })
    }

    async fn fetch_server(&self, id: &VpsInstanceId) -> Result<Server, VpsClientError> {
        let server = numeric_id(id.as_str()).ok_or_else(|| instance_not_found(id))?;
        let path = format!("/servers/{server}");
        self.http
            .send(Method::GET, &path, &[], None)
            .await
            .map_err(|e| not_found_or(e, || instance_not_found(id)))?
            .field("server", &path)
    }

    /// How far the create actions of server `id` are. Actions seen to succeed are
    /// forgotten; one that ended in error is an error with its code and message.
    async fn create_progress(&self, id: u64) -> Result<CreateProgress, VpsClientError> {
        let pending = self.tracked(id);
        for action_id in pending {
            let action = actions::fetch(&self.http, action_id).await?;
            if action.is_running() {
                return Ok(CreateProgress::Running);
            }
            if let Some(failure) = action.failure() {
                return Err(failure);
            }
            self.untrack_action(id, action_id);
        }
        Ok(CreateProgress::Done)
    }

    fn tracked(&self, server: u64) -> Vec<u64> {
        self.creating
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&server)
            .cloned()
            .unwrap_or_default()
    }

    fn untrack_action(&self, server: u64, action: u64) {
        let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ids) = creating.get_mut(&server) {
            ids.retain(|a| *a != action);
            if ids.is_empty() {
                creating.remove(&server);
            }
        }
    }

    /// The server as an [`InstanceInfo`], and a line describing its state.
    async fn read_instance(
        &self,
        id: &VpsInstanceId,
    ) -> Result<(InstanceInfo, String), VpsClientError> {
        let server = self.fetch_server(id).await?;
        let progress = self.create_progress(server.id).await?;
        let seen = format!(
            "{}{}",
            server.describe(),
            if progress == CreateProgress::Running {
                " create actions running"
            } else {
                ""
            }
        );
        Ok((server.into_info(progress)?, seen))
    }

    /// Sends a `DELETE`; a 404 (already gone) is a success. Returns the action the API
    /// started, if any.
    async fn delete(&self, path: &str) -> Result<Option<Action>, VpsClientError> {
        match self.http.send(Method::DELETE, path, &[], None).await {
            Ok(answer) => answer.optional_field("action", path),
            Err(e) if e.is_not_found() => {
                tracing::debug!(path, "already gone");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The id of the configured firewall, found by name or created, with an inbound TCP
    /// rule from anywhere for each of `ports`.
    async fn ensure_firewall(&self, name: &str, ports: &[u16]) -> Result<u64, VpsClientError> {
        // Held across the calls, so concurrent creates do not make two firewalls.
        let mut state = self.firewall.lock().await;
        let missing: BTreeSet<u16> = ports
            .iter()
            .copied()
            .filter(|p| !state.open_ports.contains(p))
            .collect();
        if let Some(id) = state.id
            && missing.is_empty()
        {
            return Ok(id);
        }
        let found: Vec<Firewall> = self
            .http
            .list_all("/firewalls", "firewalls", &[("name", name.to_owned())])
            .await?;
        let firewall = match found.into_iter().next() {
            Some(firewall) => firewall,
            None => {
                let rules: Vec<FirewallRule> = ports
                    .iter()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .map(FirewallRule::tcp_in_from_anywhere)
                    .collect();
                let body =
                    json!({ "name": name, "rules": rules, "labels": {"mngr-managed": "true"} });
                let answer = self
                    .http
                    .send(Method::POST, "/firewalls", &[], Some(&body))
                    .await?;
                let firewall: Firewall = answer.field("firewall", "/firewalls")?;
                tracing::info!(firewall = firewall.id, name, "created Hetzner firewall");
                firewall
            }
        };
        let absent: Vec<u16> = ports
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| !firewall.rules.iter().any(|r| r.opens_to_all(*p)))
            .collect();
        if !absent.is_empty() {
            // `set_rules` replaces the whole set: keep every rule that is there.
            let mut rules = firewall.rules.clone();
            rules.extend(
                absent
                    .iter()
                    .copied()
                    .map(FirewallRule::tcp_in_from_anywhere),
            );
            let path = format!("/firewalls/{}/actions/set_rules", firewall.id);
            let answer = self
                .http
                .send(Method::POST, &path, &[], Some(&json!({ "rules": rules })))
                .await?;
            let started: Vec<Action> = answer.optional_field("actions", &path)?.unwrap_or_default();
            for action in started {
                self.wait_for_action(action).await.map_err(|e| match e {
                    ActionWaitError::Failed(error) => error,
                    ActionWaitError::TimedOut { last_seen, .. } => VpsClientError::Transient {
                        message: format!("firewall {name}: {last_seen} at the deadline"),
                    },
                })?;
            }
            tracing::info!(firewall = firewall.id, ports = ?absent, "opened ports in Hetzner firewall");
        }
        state.id = Some(firewall.id);
        state.open_ports.extend(ports.iter().copied());
        Ok(firewall.id)
    }

    /// The key already registered with the same material, if any.
    async fn find_key(&self, public_key: &str) -> Result<Option<SshKey>, VpsClientError> {
        let keys: Vec<SshKey> = self.http.list_all("/ssh_keys", "ssh_keys", &[]).await?;
        Ok(keys.into_iter().find(|k| k.same_key_as(public_key)))
    }
}

#[async_trait]
impl VpsClient for HetznerClient {
    fn provider_kind(&self) -> &str {
        "hetzner"
    }

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError> {
        if let Some(problem) = server_name_problem(&request.label) {
            return Err(refused(problem));
        }
        let labels = labels_for(&request.tags).map_err(refused)?;
        let user_data = request.user_data.expose();
        if user_data.len() > MAX_USER_DATA_BYTES {
            return Err(refused(format!(
                "user_data has {} bytes; Hetzner takes at most {MAX_USER_DATA_BYTES}",
                user_data.len()
            )));
        }
        let ssh_keys = request
            .ssh_key_ids
            .iter()
            .map(|k| {
                numeric_id(k.as_str()).ok_or_else(|| VpsClientError::NotFound {
                    kind: "SSH key",
                    id: k.to_string(),
                })
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let image = match &request.snapshot {
            Some(snapshot) => numeric_id(snapshot.as_str())
                .ok_or_else(|| VpsClientError::NotFound {
                    kind: "snapshot",
                    id: snapshot.to_string(),
                })?
                .to_string(),
            None => request.os.0.to_string(),
        };
        let firewalls = match &self.config.firewall {
            Some(name) => vec![FirewallRef {
                firewall: self.ensure_firewall(name, &request.ports).await?,
            }],
            None => Vec::new(),
        };
        let body = CreateServerBody {
            name: &request.label,
            server_type: request.plan.as_str(),
            image,
            location: request.region.as_str(),
            ssh_keys,
            user_data,
            labels,
            start_after_create: true,
            firewalls,
            public_net: PublicNetRequest {
                enable_ipv4: true,
                enable_ipv6: true,
            },
        };
        let body = serde_json::to_value(&body)
            .map_err(|e| VpsClientError::InvalidResponse(format!("request body: {e}")))?;
        let answer = self
            .http
            .send(Method::POST, "/servers", &[], Some(&body))
            .await?;
        let created: CreateServerAnswer = serde_json::from_slice(&answer.body)
            .map_err(|e| VpsClientError::InvalidResponse(format!("POST /servers: {e}")))?;
        let id = VpsInstanceId::parse(&created.server.id.to_string())
            .map_err(|e| VpsClientError::InvalidResponse(format!("server id: {e}")))?;
        let actions: Vec<u64> = std::iter::once(&created.action)
            .chain(&created.next_actions)
            .filter(|a| a.status != "success")
            .map(|a| a.id)
            .collect();
        if !actions.is_empty() {
            self.creating
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(created.server.id, actions);
        }
        tracing::info!(
            server = %id,
            name = %request.label,
            location = %request.region,
            server_type = %request.plan,
            snapshot = request.snapshot.as_ref().map(VpsSnapshotId::as_str),
            "ordered Hetzner server"
        );
        Ok(id)
    }

    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        let Some(server) = numeric_id(id.as_str()) else {
            // No such id can exist at Hetzner, so there is nothing to delete.
            return Ok(());
        };
        if let Some(action) = self.delete(&format!("/servers/{server}")).await? {
            self.wait_action(id, action).await?;
        }
        self.creating
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&server);
        tracing::info!(server = %id, "destroyed Hetzner server");
        Ok(())
    }

    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
        Ok(self.read_instance(id).await?.0)
    }

    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError> {
        let server = self.fetch_server(id).await?;
        match server.address() {
            Some(ip) => Ok(SocketAddr::new(ip, port)),
            None => Err(VpsClientError::NotReady {
                id: id.clone(),
                message: format!("no public IPv4 address yet ({})", server.describe()),
            }),
        }
    }

    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
        let filter = match tag {
            None => Vec::new(),
            Some(tag) => match selector_for(tag) {
                Some(selector) => vec![("label_selector", selector)],
                // Not a valid label: no server can carry it.
                None => return Ok(Vec::new()),
            },
        };
        let servers: Vec<Server> = self.http.list_all("/servers", "servers", &filter).await?;
        let mut infos = Vec::with_capacity(servers.len());
        // The API filters already; checking again keeps the contract ("exactly the
        // instances carrying that tag") whatever the selector's matching rules are.
        for server in servers
            .into_iter()
            .filter(|s| tag.is_none_or(|t| has_tag(&s.labels, t)))
        {
            let progress = match self.create_progress(server.id).await {
                Ok(progress) => progress,
                Err(e) if e.is_transient() => CreateProgress::Running,
                // A failed create shows as UNKNOWN in a listing; a read names the error.
                Err(_) => CreateProgress::Failed,
            };
            infos.push(server.into_info(progress)?);
        }
        Ok(infos)
    }

    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        let server = self.fetch_server(id).await?;
        // The snapshot carries the server's mngr labels (its host id above all), so it can
        // be found by host after the server is gone.
        let labels: serde_json::Map<String, serde_json::Value> = server
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with(vps_primitives::VPS_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let path = format!("/servers/{}/actions/create_image", server.id);
        let body = json!({ "type": "snapshot", "description": description, "labels": labels });
        let answer = self
            .http
            .send(Method::POST, &path, &[], Some(&body))
            .await
            .map_err(|e| not_found_or(e, || instance_not_found(id)))?;
        let image: Image = answer.field("image", &path)?;
        let action: Action = answer.field("action", &path)?;
        let snapshot = VpsSnapshotId::parse(&image.id.to_string())
            .map_err(|e| VpsClientError::InvalidResponse(format!("image id: {e}")))?;
        match self.wait_action(id, action).await {
            Ok(_) => {}
            Err(VpsClientError::Timeout { last_seen, .. }) => {
                // The snapshot exists and is still being taken; it lists as pending.
                tracing::warn!(server = %id, %snapshot, %last_seen, "Hetzner snapshot still being taken at the action deadline");
            }
            Err(error) => {
                if let Err(cleanup) = self.delete_snapshot(&snapshot).await {
                    tracing::warn!(%snapshot, error = %cleanup, "could not delete the image of a failed snapshot");
                }
                return Err(error);
            }
        }
        tracing::info!(server = %id, %snapshot, "took Hetzner snapshot");
        Ok(snapshot)
    }

    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        let Some(image) = numeric_id(id.as_str()) else {
            return Ok(());
        };
        self.delete(&format!("/images/{image}")).await.map(drop)
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        let images: Vec<Image> = self
            .http
            .list_all("/images", "images", &[("type", "snapshot".to_owned())])
            .await?;
        images.into_iter().map(Image::into_info).collect()
    }

    async fn upload_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError> {
        let public_key = public_key.trim();
        let body = json!({ "name": name, "public_key": public_key });
        let key = match self
            .http
            .send(Method::POST, "/ssh_keys", &[], Some(&body))
            .await
        {
            Ok(answer) => answer.field::<SshKey>("ssh_key", "/ssh_keys")?,
            // The same key may be registered once per Project, under one name. Reuse it.
            Err(e) if e.code() == Some("uniqueness_error") => {
                match self.find_key(public_key).await? {
                    Some(existing) => {
                        tracing::info!(key = existing.id, existing_name = %existing.name, name, "SSH key already registered with Hetzner; reusing it");
                        existing
                    }
                    None => return Err(e.into()),
                }
            }
            // The upload may have been carried out: if the key is there now, it is ours.
            Err(e @ CallError::OutcomeUnknown { .. }) => match self.find_key(public_key).await {
                Ok(Some(existing)) => existing,
                _ => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let info = key.into_info()?;
        tracing::info!(key = %info.id, name = %info.name, "SSH key registered with Hetzner");
        Ok(info.id)
    }

    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        let Some(key) = numeric_id(id.as_str()) else {
            return Ok(());
        };
        self.delete(&format!("/ssh_keys/{key}")).await.map(drop)
    }

    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        let keys: Vec<SshKey> = self.http.list_all("/ssh_keys", "ssh_keys", &[]).await?;
        keys.into_iter().map(SshKey::into_info).collect()
    }
}

/// The token from the config if it is not empty, else from the environment if that is
/// not empty, else an error.
fn resolve_token(
    from_config: Option<&ApiToken>,
    from_env: Option<String>,
) -> Result<ApiToken, HetznerError> {
    if let Some(token) = from_config.filter(|t| !t.is_empty()) {
        return Ok(token.clone());
    }
    from_env
        .map(ApiToken::new)
        .filter(|t| !t.is_empty())
        .ok_or(HetznerError::MissingApiToken)
}

fn not_found_or(error: CallError, not_found: impl FnOnce() -> VpsClientError) -> VpsClientError {
    if error.is_not_found() {
        not_found()
    } else {
        error.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_config_then_env() {
        let from_config = ApiToken::new("from-config");
        let got = |c: Option<&ApiToken>, e: Option<&str>| {
            resolve_token(c, e.map(str::to_owned)).map(|t| t.expose().to_owned())
        };
        assert_eq!(
            got(Some(&from_config), Some("env")).ok().as_deref(),
            Some("from-config")
        );
        assert_eq!(got(None, Some("env\n")).ok().as_deref(), Some("env"));
        assert_eq!(
            got(Some(&ApiToken::new("")), Some("env")).ok().as_deref(),
            Some("env")
        );
        assert!(matches!(
            got(None, None),
            Err(HetznerError::MissingApiToken)
        ));
        assert!(matches!(
            got(None, Some("  ")),
            Err(HetznerError::MissingApiToken)
        ));
    }

    #[test]
    fn a_missing_token_fails_at_construction_and_names_the_variable() {
        let err = HetznerClient::build(HetznerConfig::default(), None).expect_err("no token");
        assert!(matches!(err, HetznerError::MissingApiToken));
        assert!(err.to_string().contains("HCLOUD_TOKEN"));
        assert!(matches!(
            VpsClientError::from(err),
            VpsClientError::Config(_)
        ));
    }

    #[test]
    fn debug_output_and_bad_tokens_do_not_show_the_token() {
        let config = HetznerConfig {
            api_token: Some(ApiToken::new("SUPERSECRETTOKEN")),
            ..HetznerConfig::default()
        };
        let client = HetznerClient::build(config, None).expect("client");
        let debug = format!("{client:?}");
        assert!(!debug.contains("SUPERSECRETTOKEN"), "{debug}");
        assert!(debug.contains("api.hetzner.cloud"), "{debug}");
        let config = HetznerConfig {
            api_token: Some(ApiToken::new("abc\u{7}def")),
            ..HetznerConfig::default()
        };
        let err = HetznerClient::build(config, None).expect_err("bad token");
        assert!(matches!(err, HetznerError::InvalidApiToken));
        assert!(!err.to_string().contains("abc"));
    }

    #[test]
    fn only_positive_integers_are_hetzner_ids() {
        assert_eq!(numeric_id("42"), Some(42));
        for bad in ["0", "-1", "cb676a46-66fd", "1.5", ""] {
            assert_eq!(numeric_id(bad), None, "{bad}");
        }
    }
}

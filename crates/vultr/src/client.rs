//! `VultrClient`: the [`VpsClient`] on the Vultr API v2.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::Method;
use serde_json::json;
use vps_client::{
    CreateInstanceRequest, InstanceInfo, SnapshotInfo, SshKeyInfo, VpsClient, VpsClientError,
};
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsSnapshotId};

use crate::api::{
    CreateFirewallRuleBody, CreateInstanceBody, FirewallGroup, FirewallRule, Instance, Snapshot,
    SshKey, hostname_from_label,
};
use crate::config::API_KEY_ENV;
use crate::error::VultrError;
use crate::http::{CallError, Http};
use crate::{ApiKey, VultrConfig};

/// A [`VpsClient`] on the Vultr API v2.
///
/// Share one client behind an `Arc`: its calls share one connection pool and one retry
/// policy. The rate limit is shared further, by every client of the process that uses
/// the same key and endpoint. See the crate docs for an example.
pub struct VultrClient {
    config: VultrConfig,
    http: Http,
    firewall: tokio::sync::Mutex<FirewallState>,
}

/// The firewall group found or created for this client, and the ports known to be open.
#[derive(Default)]
struct FirewallState {
    group_id: Option<String>,
    open_ports: BTreeSet<u16>,
}

impl fmt::Debug for VultrClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VultrClient")
            .field("base_url", &self.http.base_url().as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl VultrClient {
    /// Builds a client from its config. The API key is the config's `api_key`, else the
    /// `VULTR_API_KEY` environment variable; with neither (or only empty values) this
    /// fails with [`VultrError::MissingApiKey`], so a missing key never looks like an
    /// empty account. Makes no request.
    pub fn new(config: VultrConfig) -> Result<Self, VultrError> {
        Self::build(config, std::env::var(API_KEY_ENV).ok())
    }

    fn build(config: VultrConfig, env_key: Option<String>) -> Result<Self, VultrError> {
        config.validate()?;
        let key = resolve_api_key(config.api_key.as_ref(), env_key)?;
        let http = Http::new(&config, &key)?;
        Ok(Self {
            config,
            http,
            firewall: tokio::sync::Mutex::new(FirewallState::default()),
        })
    }

    /// The config the client was built from.
    pub fn config(&self) -> &VultrConfig {
        &self.config
    }

    /// Checks that the API answers and accepts the key (`GET /account`).
    pub async fn check_credentials(&self) -> Result<(), VpsClientError> {
        self.http
            .send(Method::GET, "/account", &[], None)
            .await
            .map(drop)
            .map_err(VpsClientError::from)
    }

    async fn fetch_instance(&self, id: &VpsInstanceId) -> Result<Instance, VpsClientError> {
        let not_found = || VpsClientError::NotFound {
            kind: "instance",
            id: id.to_string(),
        };
        let segment = path_segment(id.as_str()).ok_or_else(not_found)?;
        let path = format!("/instances/{segment}");
        let answer = self
            .http
            .send(Method::GET, &path, &[], None)
            .await
            .map_err(|e| not_found_or(e, not_found))?;
        let instance: Instance = answer.field("instance", &path)?;
        // The four fields behind the status, for whoever waits on it.
        tracing::debug!(instance = %id, state = %instance.describe(), "Vultr instance");
        Ok(instance)
    }

    /// Sends a `DELETE`; a 404 (already gone) is a success.
    async fn delete(&self, collection: &str, id: &str) -> Result<(), VpsClientError> {
        let Some(segment) = path_segment(id) else {
            // No such id can exist at Vultr, so there is nothing to delete.
            return Ok(());
        };
        let path = format!("/{collection}/{segment}");
        match self.http.send(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                tracing::debug!(path, "already gone");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /instances`, in the firewall group `firewall_group_id` if given.
    async fn order_instance(
        &self,
        request: &CreateInstanceRequest,
        firewall_group_id: Option<String>,
    ) -> Result<VpsInstanceId, VpsClientError> {
        let body = CreateInstanceBody {
            region: request.region.as_str(),
            plan: request.plan.as_str(),
            os_id: request.snapshot.is_none().then_some(request.os.0),
            snapshot_id: request.snapshot.as_ref().map(VpsSnapshotId::as_str),
            label: &request.label,
            hostname: hostname_from_label(&request.label),
            user_data: base64::engine::general_purpose::STANDARD.encode(request.user_data.expose()),
            sshkey_id: request.ssh_key_ids.iter().map(SshKeyId::as_str).collect(),
            tags: request.tags.iter().map(Tag::to_string).collect(),
            backups: "disabled",
            firewall_group_id,
        };
        let body = serde_json::to_value(&body)
            .map_err(|e| VpsClientError::InvalidResponse(format!("request body: {e}")))?;
        let answer = self
            .http
            .send(Method::POST, "/instances", &[], Some(&body))
            .await?;
        let instance: Instance = answer.field("instance", "/instances")?;
        let id = VpsInstanceId::parse(&instance.id)
            .map_err(|e| VpsClientError::InvalidResponse(format!("instance id: {e}")))?;
        tracing::info!(
            instance = %id,
            label = %request.label,
            region = %request.region,
            plan = %request.plan,
            snapshot = request.snapshot.as_ref().map(VpsSnapshotId::as_str),
            "ordered Vultr instance"
        );
        Ok(id)
    }

    /// Forgets the remembered firewall group (and the ports known open in it), so the
    /// next [`Self::ensure_firewall_group`] looks it up again.
    async fn forget_firewall_group(&self) {
        *self.firewall.lock().await = FirewallState::default();
    }

    /// The id of the configured firewall group, found by description or created, with an
    /// IPv4 TCP accept rule for each of `ports`.
    async fn ensure_firewall_group(
        &self,
        description: &str,
        ports: &[u16],
    ) -> Result<String, VpsClientError> {
        // Held across the calls, so concurrent creates do not make two groups.
        let mut state = self.firewall.lock().await;
        let group_id = match &state.group_id {
            Some(id) => id.clone(),
            None => {
                let groups: Vec<FirewallGroup> = self
                    .http
                    .list_all("/firewalls", "firewall_groups", &[])
                    .await?;
                let id = match groups.into_iter().find(|g| g.description == description) {
                    Some(group) => group.id,
                    None => {
                        let body = json!({ "description": description });
                        let answer = self
                            .http
                            .send(Method::POST, "/firewalls", &[], Some(&body))
                            .await?;
                        let group: FirewallGroup = answer.field("firewall_group", "/firewalls")?;
                        tracing::info!(group = %group.id, description, "created Vultr firewall group");
                        group.id
                    }
                };
                if id.is_empty() || !id.bytes().all(is_id_byte) {
                    return Err(VpsClientError::InvalidResponse(format!(
                        "firewall group id {id:?} is not a Vultr id"
                    )));
                }
                state.group_id = Some(id.clone());
                id
            }
        };
        let missing: BTreeSet<u16> = ports
            .iter()
            .copied()
            .filter(|p| !state.open_ports.contains(p))
            .collect();
        if !missing.is_empty() {
            let rules_path = format!("/firewalls/{group_id}/rules");
            let rules: Vec<FirewallRule> = self
                .http
                .list_all(&rules_path, "firewall_rules", &[])
                .await?;
            for port in missing {
                if !rules.iter().any(|r| r.opens_to_all_v4(port)) {
                    let body = serde_json::to_value(CreateFirewallRuleBody {
                        ip_type: "v4",
                        protocol: "tcp",
                        subnet: "0.0.0.0",
                        subnet_size: 0,
                        port: port.to_string(),
                        notes: format!("mngr: TCP {port}"),
                    })
                    .map_err(|e| VpsClientError::InvalidResponse(e.to_string()))?;
                    self.http
                        .send(Method::POST, &rules_path, &[], Some(&body))
                        .await?;
                    tracing::info!(group = %group_id, port, "opened port in Vultr firewall group");
                }
                state.open_ports.insert(port);
            }
        }
        Ok(group_id)
    }
}

#[async_trait]
impl VpsClient for VultrClient {
    fn provider_kind(&self) -> &str {
        "vultr"
    }

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError> {
        let Some(description) = &self.config.firewall_group else {
            return self.order_instance(request, None).await;
        };
        let mut looked_up_again = false;
        loop {
            let ordered = match self
                .ensure_firewall_group(description, &request.ports)
                .await
            {
                Ok(group) => self.order_instance(request, Some(group)).await,
                Err(e) => Err(e),
            };
            match ordered {
                // The group we remembered was deleted outside the toolkit: the API refused
                // its rules or the order (so nothing was ordered). Find or make the group
                // again, once.
                Err(e) if !looked_up_again && names_a_missing_firewall_group(&e) => {
                    tracing::warn!(error = %e, "Vultr refused the remembered firewall group; looking it up again");
                    self.forget_firewall_group().await;
                    looked_up_again = true;
                }
                other => return other,
            }
        }
    }

    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        self.delete("instances", id.as_str()).await?;
        tracing::info!(instance = %id, "destroyed Vultr instance");
        Ok(())
    }

    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
        self.fetch_instance(id).await?.into_info()
    }

    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError> {
        let instance = self.fetch_instance(id).await?;
        match instance.address() {
            Some(ip) => Ok(SocketAddr::new(ip, port)),
            None => Err(VpsClientError::NotReady {
                id: id.clone(),
                message: format!("no IPv4 address assigned yet ({})", instance.describe()),
            }),
        }
    }

    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
        let tag_text = tag.map(Tag::to_string);
        let filter: Vec<(&str, &str)> = tag_text.iter().map(|t| ("tag", t.as_str())).collect();
        let instances: Vec<Instance> = self
            .http
            .list_all("/instances", "instances", &filter)
            .await?;
        instances
            .into_iter()
            // The API filters already; checking again keeps the contract ("exactly the
            // instances carrying that tag") whatever the API's matching rules are.
            .filter(|i| tag.is_none_or(|t| i.has_tag(t)))
            .map(Instance::into_info)
            .collect()
    }

    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        let body = json!({ "instance_id": id.as_str(), "description": description });
        let answer = self
            .http
            .send(Method::POST, "/snapshots", &[], Some(&body))
            .await
            .map_err(|e| {
                not_found_or(e, || VpsClientError::NotFound {
                    kind: "instance",
                    id: id.to_string(),
                })
            })?;
        let snapshot: Snapshot = answer.field("snapshot", "/snapshots")?;
        let info = snapshot.into_info()?;
        tracing::info!(instance = %id, snapshot = %info.id, "requested Vultr snapshot");
        Ok(info.id)
    }

    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        self.delete("snapshots", id.as_str()).await
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        let snapshots: Vec<Snapshot> = self.http.list_all("/snapshots", "snapshots", &[]).await?;
        snapshots.into_iter().map(Snapshot::into_info).collect()
    }

    async fn upload_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError> {
        let body = json!({ "name": name, "ssh_key": public_key.trim() });
        let answer = self
            .http
            .send(Method::POST, "/ssh-keys", &[], Some(&body))
            .await?;
        let key: SshKey = answer.field("ssh_key", "/ssh-keys")?;
        let info = key.into_info()?;
        tracing::info!(key = %info.id, name, "uploaded SSH key to Vultr");
        Ok(info.id)
    }

    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        self.delete("ssh-keys", id.as_str()).await
    }

    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        let keys: Vec<SshKey> = self.http.list_all("/ssh-keys", "ssh_keys", &[]).await?;
        keys.into_iter().map(SshKey::into_info).collect()
    }
}

/// The key from the config if it is not empty, else from the environment if that is not
/// empty, else an error.
fn resolve_api_key(
    from_config: Option<&ApiKey>,
    from_env: Option<String>,
) -> Result<ApiKey, VultrError> {
    if let Some(key) = from_config.filter(|k| !k.is_empty()) {
        return Ok(key.clone());
    }
    from_env
        .map(ApiKey::new)
        .filter(|k| !k.is_empty())
        .ok_or(VultrError::MissingApiKey)
}

/// A provider id as one URL path segment. Ids are validated tokens (no `/`, `?`, `#`,
/// `%`), so only the dot segments, which a URL would resolve away, are refused.
fn path_segment(id: &str) -> Option<&str> {
    (id != "." && id != "..").then_some(id)
}

/// Whether the API refused a request for naming a firewall group that does not exist
/// (any more): a 400 or 404 whose message names the firewall group, as for an order
/// with a deleted `firewall_group_id` or the rules of a deleted group.
fn names_a_missing_firewall_group(error: &VpsClientError) -> bool {
    matches!(error, VpsClientError::Api { status: 400 | 404, message }
        if message.to_ascii_lowercase().contains("firewall"))
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
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
    fn api_key_comes_from_config_then_env() {
        let config_key = ApiKey::new("from-config");
        assert_eq!(
            resolve_api_key(Some(&config_key), Some("from-env".to_owned()))
                .expect("key")
                .expose(),
            "from-config"
        );
        assert_eq!(
            resolve_api_key(None, Some("from-env\n".to_owned()))
                .expect("key")
                .expose(),
            "from-env"
        );
        assert_eq!(
            resolve_api_key(Some(&ApiKey::new("")), Some("from-env".to_owned()))
                .expect("key")
                .expose(),
            "from-env"
        );
        assert!(matches!(
            resolve_api_key(None, None),
            Err(VultrError::MissingApiKey)
        ));
        assert!(matches!(
            resolve_api_key(None, Some("  ".to_owned())),
            Err(VultrError::MissingApiKey)
        ));
    }

    #[test]
    fn a_missing_key_fails_at_construction() {
        let err = VultrClient::build(VultrConfig::default(), None).expect_err("no key");
        assert!(matches!(err, VultrError::MissingApiKey));
        assert!(err.to_string().contains("VULTR_API_KEY"));
        let as_trait_error = VpsClientError::from(err);
        assert!(matches!(as_trait_error, VpsClientError::Config(_)));
    }

    #[test]
    fn a_key_with_control_characters_is_refused_without_echoing_it() {
        let config = VultrConfig {
            api_key: Some(ApiKey::new("abc\u{7}def")),
            ..VultrConfig::default()
        };
        let err = VultrClient::build(config, None).expect_err("bad key");
        assert!(matches!(err, VultrError::InvalidApiKey));
        assert!(!err.to_string().contains("abc"));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = VultrConfig {
            api_key: Some(ApiKey::new("SUPERSECRETKEY")),
            ..VultrConfig::default()
        };
        let client = VultrClient::build(config, None).expect("client");
        let debug = format!("{client:?}");
        assert!(!debug.contains("SUPERSECRETKEY"), "{debug}");
        assert!(debug.contains("api.vultr.com"), "{debug}");
    }

    #[test]
    fn dot_segments_are_not_ids() {
        assert_eq!(path_segment(".."), None);
        assert_eq!(path_segment("."), None);
        assert_eq!(path_segment("a.b"), Some("a.b"));
    }
}

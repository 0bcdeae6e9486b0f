//! The JSON the Hetzner Cloud API v1 speaks, and how it maps to the `vps-client` types.
//!
//! Only the fields this crate uses are declared; serde ignores the rest. Field names
//! follow the API docs and hcloud-go's `schema` package.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vps_client::{InstanceInfo, SnapshotInfo, SnapshotStatus, SshKeyInfo, VpsClientError};
use vps_primitives::{SshKeyId, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId};

use crate::labels::tags_of;

/// The body of every error answer: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ApiError,
}

/// The error object; `details` (which may be `null`) depends on the code.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ApiError {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// `meta` of a list answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) pagination: Option<Pagination>,
}

/// `meta.pagination`: `next_page` is `null` (or 0) on the last page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default)]
    pub(crate) next_page: Option<u64>,
}

/// A server, as in `{"server": {...}}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Server {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
    /// initializing, starting, running, stopping, off, deleting, migrating, rebuilding,
    /// unknown.
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) public_net: PublicNet,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// Whether an action is running on it.
    #[serde(default)]
    pub(crate) locked: bool,
    /// RFC 3339, e.g. `2016-01-30T23:50:00+00:00`.
    #[serde(default)]
    pub(crate) created: String,
}

/// `public_net`; either address may be `null`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct PublicNet {
    #[serde(default)]
    pub(crate) ipv4: Option<Address>,
}

/// `public_net.ipv4`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Address {
    #[serde(default)]
    pub(crate) ip: String,
}

/// How far the actions of a server's create (`create_server`, then `start_server`) are,
/// as far as this client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreateProgress {
    /// Still running.
    Running,
    /// All finished with success, or the server was not created by this client.
    Done,
    /// One ended in error.
    Failed,
}

impl Server {
    /// The public IPv4 address, once assigned.
    pub(crate) fn address(&self) -> Option<IpAddr> {
        self.public_net
            .ipv4
            .as_ref()
            .and_then(|a| a.ip.parse::<IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified())
    }

    /// The five-case status: `Active` only when the server is `running`, its create
    /// actions are done and it has a public IPv4 address. A running action of another
    /// kind (a snapshot, which locks the server) does not make it `Pending`.
    pub(crate) fn status(&self, create: CreateProgress) -> VpsInstanceStatus {
        if create == CreateProgress::Failed {
            return VpsInstanceStatus::Unknown;
        }
        match self.status.as_str() {
            "running" if create == CreateProgress::Done && self.address().is_some() => {
                VpsInstanceStatus::Active
            }
            "running" | "initializing" | "starting" | "migrating" | "rebuilding" => {
                VpsInstanceStatus::Pending
            }
            "off" | "stopping" => VpsInstanceStatus::Halted,
            "deleting" => VpsInstanceStatus::Destroying,
            _ => VpsInstanceStatus::Unknown,
        }
    }

    /// One line for messages: `status=starting locked=true ipv4=-`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "status={} locked={} ipv4={}",
            if self.status.is_empty() {
                "-"
            } else {
                &self.status
            },
            self.locked,
            self.address()
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
        )
    }

    /// The one place an [`InstanceInfo`] is built.
    pub(crate) fn into_info(self, create: CreateProgress) -> Result<InstanceInfo, VpsClientError> {
        let status = self.status(create);
        let address = self.address();
        let id = VpsInstanceId::parse(&self.id.to_string())
            .map_err(|e| VpsClientError::InvalidResponse(format!("server id: {e}")))?;
        // An odd date leaves the time unknown rather than failing a whole listing.
        let created_at = match OffsetDateTime::parse(&self.created, &Rfc3339) {
            Ok(at) => Some(at),
            Err(_) if self.created.is_empty() => None,
            Err(e) => {
                tracing::warn!(server = %id, created = %self.created, error = %e, "Hetzner's `created` is not RFC 3339");
                None
            }
        };
        Ok(InstanceInfo {
            id,
            label: self.name,
            status,
            tags: tags_of(&self.labels),
            address,
            published: None,
            created_at,
        })
    }
}

/// An action: everything asynchronous in Hetzner is one.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Action {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) command: String,
    /// running, success, error.
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) progress: u32,
    #[serde(default)]
    pub(crate) error: Option<ApiError>,
}

impl Action {
    pub(crate) fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// `None` while running or after success; the failure, for the user, after an error.
    pub(crate) fn failure(&self) -> Option<VpsClientError> {
        (self.status == "error" || (!self.is_running() && self.status != "success")).then(|| {
            let (code, message) = self
                .error
                .as_ref()
                .map_or(("unknown", "no error given"), |e| {
                    (e.code.as_str(), e.message.as_str())
                });
            VpsClientError::Backend {
                message: format!(
                    "Hetzner action {} `{}` ended with status {}: {code}: {message}",
                    self.id, self.command, self.status
                ),
                source: None,
            }
        })
    }
}

/// `POST /servers` body. No `Debug`: `user_data` carries the VPS's private host key.
#[derive(Serialize)]
pub(crate) struct CreateServerBody<'a> {
    pub(crate) name: &'a str,
    pub(crate) server_type: &'a str,
    /// An image id (OS image or snapshot) as a string, as hcloud-go sends it.
    pub(crate) image: String,
    pub(crate) location: &'a str,
    pub(crate) ssh_keys: Vec<u64>,
    /// Plain text (not base64), at most 32 KiB.
    pub(crate) user_data: &'a str,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) start_after_create: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) firewalls: Vec<FirewallRef>,
    pub(crate) public_net: PublicNetRequest,
}

/// `{"firewall": id}` in a create body.
#[derive(Serialize)]
pub(crate) struct FirewallRef {
    pub(crate) firewall: u64,
}

/// `public_net` of a create body: we need the IPv4 address.
#[derive(Serialize)]
pub(crate) struct PublicNetRequest {
    pub(crate) enable_ipv4: bool,
    pub(crate) enable_ipv6: bool,
}

/// An image (here always a snapshot), as in `{"image": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Image {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) description: String,
    /// creating, available, unavailable.
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) created: String,
}

impl Image {
    pub(crate) fn into_info(self) -> Result<SnapshotInfo, VpsClientError> {
        let id = VpsSnapshotId::parse(&self.id.to_string())
            .map_err(|e| VpsClientError::InvalidResponse(format!("image id: {e}")))?;
        let status = match self.status.as_str() {
            "creating" => SnapshotStatus::Pending,
            "available" => SnapshotStatus::Complete,
            _ => SnapshotStatus::Unknown,
        };
        Ok(SnapshotInfo {
            id,
            description: self.description,
            status,
            created_at: Some(self.created).filter(|c| !c.is_empty()),
        })
    }
}

/// An SSH key, as in `{"ssh_key": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SshKey {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) public_key: String,
}

impl SshKey {
    /// Whether this is the same key as `public_key` (type and base64 blob; comments and
    /// spacing differ freely).
    pub(crate) fn same_key_as(&self, public_key: &str) -> bool {
        key_material(&self.public_key) == key_material(public_key)
    }

    pub(crate) fn into_info(self) -> Result<SshKeyInfo, VpsClientError> {
        let id = SshKeyId::parse(&self.id.to_string())
            .map_err(|e| VpsClientError::InvalidResponse(format!("SSH key id: {e}")))?;
        Ok(SshKeyInfo {
            id,
            name: self.name,
            public_key: self.public_key,
        })
    }
}

/// The key type and base64 blob of an OpenSSH public key line.
fn key_material(line: &str) -> Vec<&str> {
    line.split_whitespace().take(2).collect()
}

/// A firewall, as in `{"firewall": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Firewall {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) rules: Vec<FirewallRule>,
}

/// One rule of a firewall.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) struct FirewallRule {
    pub(crate) direction: String,
    pub(crate) protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) destination_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
}

/// Sources of an inbound rule open to everyone.
pub(crate) const ANYWHERE: [&str; 2] = ["0.0.0.0/0", "::/0"];

impl FirewallRule {
    /// An inbound TCP rule for `port` from anywhere.
    pub(crate) fn tcp_in_from_anywhere(port: u16) -> Self {
        Self {
            direction: "in".to_owned(),
            protocol: "tcp".to_owned(),
            port: Some(port.to_string()),
            source_ips: ANYWHERE.iter().map(|s| (*s).to_owned()).collect(),
            destination_ips: Vec::new(),
            description: Some(format!("mngr: TCP {port}")),
        }
    }

    /// Whether this rule lets TCP `port` in from anywhere (a single port or a range).
    pub(crate) fn opens_to_all(&self, port: u16) -> bool {
        let covers = match self.port.as_deref().map(|p| p.split_once('-')) {
            Some(Some((low, high))) => low
                .trim()
                .parse::<u16>()
                .ok()
                .zip(high.trim().parse::<u16>().ok())
                .is_some_and(|(l, h)| (l..=h).contains(&port)),
            Some(None) => self.port.as_deref().and_then(|p| p.trim().parse().ok()) == Some(port),
            None => false,
        };
        self.direction == "in"
            && self.protocol == "tcp"
            && covers
            && ANYWHERE
                .iter()
                .all(|a| self.source_ips.iter().any(|s| s == a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(status: &str, ip: Option<&str>) -> Server {
        serde_json::from_value(json!({
            "id": 42, "name": "mngr-a", "status": status, "locked": false,
            "created": "2016-01-30T23:50:00+00:00",
            "public_net": {"ipv4": ip.map(|ip| json!({"ip": ip, "blocked": false})), "ipv6": null},
            "labels": {"mngr-provider": "hetzner"}
        }))
        .expect("server")
    }

    #[test]
    fn status_needs_running_done_and_an_address() {
        use CreateProgress::*;
        use VpsInstanceStatus::*;
        let ip = Some("203.0.113.7");
        let table = [
            ("initializing", ip, Done, Pending),
            ("starting", ip, Done, Pending),
            ("running", ip, Running, Pending),
            ("running", None, Done, Pending),
            ("running", Some("0.0.0.0"), Done, Pending),
            ("running", ip, Done, Active),
            ("off", ip, Done, Halted),
            ("stopping", ip, Done, Halted),
            ("deleting", ip, Done, Destroying),
            ("unknown", ip, Done, Unknown),
            ("running", ip, Failed, Unknown),
            ("", ip, Done, Unknown),
        ];
        for (status, ip, create, want) in table {
            assert_eq!(
                server(status, ip).status(create),
                want,
                "{status} {ip:?} {create:?}"
            );
        }
        let info = server("running", ip).into_info(Done).expect("info");
        assert_eq!(info.id.as_str(), "42");
        assert_eq!(info.label, "mngr-a");
        assert_eq!(info.tags.len(), 1);
        assert_eq!(info.address, Some("203.0.113.7".parse().expect("ip")));
        assert_eq!(
            info.created_at.map(OffsetDateTime::unix_timestamp),
            Some(1_454_197_800)
        );
    }

    #[test]
    fn a_failed_action_names_its_code_and_message() {
        let action: Action = serde_json::from_value(json!({
            "id": 7, "command": "create_image", "status": "error", "progress": 100,
            "error": {"code": "action_failed", "message": "Action failed"}
        }))
        .expect("action");
        let text = action.failure().expect("failed").to_string();
        assert!(text.contains("create_image"), "{text}");
        assert!(text.contains("action_failed: Action failed"), "{text}");
        let ok: Action = serde_json::from_value(
            json!({"id": 8, "command": "x", "status": "success", "error": null}),
        )
        .expect("action");
        assert!(ok.failure().is_none());
        let running: Action =
            serde_json::from_value(json!({"id": 9, "status": "running"})).expect("action");
        assert!(running.is_running() && running.failure().is_none());
    }

    #[test]
    fn firewall_rules_cover_single_ports_and_ranges_from_anywhere() {
        let rule = FirewallRule::tcp_in_from_anywhere(22);
        assert!(rule.opens_to_all(22));
        assert!(!rule.opens_to_all(2222));
        let range = FirewallRule {
            port: Some("2000-3000".to_owned()),
            ..rule.clone()
        };
        assert!(range.opens_to_all(2222));
        let v4_only = FirewallRule {
            source_ips: vec!["0.0.0.0/0".to_owned()],
            ..rule.clone()
        };
        assert!(!v4_only.opens_to_all(22));
        let udp = FirewallRule {
            protocol: "udp".to_owned(),
            ..rule
        };
        assert!(!udp.opens_to_all(22));
    }

    #[test]
    fn keys_compare_by_type_and_blob() {
        let key = SshKey {
            id: 1,
            name: "other-name".to_owned(),
            public_key: "ssh-ed25519 AAAAC3Nza first@host".to_owned(),
        };
        assert!(key.same_key_as("ssh-ed25519  AAAAC3Nza  second@elsewhere\n"));
        assert!(!key.same_key_as("ssh-ed25519 AAAAC3Nzb first@host"));
    }
}

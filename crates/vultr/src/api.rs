//! The JSON the Vultr API v2 speaks, and how it maps to the `vps-client` types.
//!
//! Only the fields this crate uses are declared; the API sends many more, which serde
//! ignores. Field names follow the API reference (and the official Go SDK, govultr).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vps_client::{InstanceInfo, SnapshotInfo, SnapshotStatus, SshKeyInfo, VpsClientError};
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId};

/// The body of every error answer: `{"error": "...", "status": 400}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) error: String,
}

/// `meta` of a list answer: `{"total": 250, "links": {"next": "...", "prev": "..."}}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) links: Links,
}

/// The cursors of the neighbouring pages; an empty `next` ends the list.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(default)]
    pub(crate) next: String,
}

/// One instance, as in `GET /instances/{id}` → `{"instance": {...}}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Instance {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) label: String,
    /// `pending`, `active`, `suspended`, `resizing`.
    #[serde(default)]
    pub(crate) status: String,
    /// `running`, `stopped`.
    #[serde(default)]
    pub(crate) power_status: String,
    /// `none`, `locked`, `installingbooting`, `ok`.
    #[serde(default)]
    pub(crate) server_status: String,
    /// `0.0.0.0` until an address is assigned.
    #[serde(default)]
    pub(crate) main_ip: String,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// RFC 3339, e.g. `2026-11-30T05:00:00+00:00`.
    #[serde(default)]
    pub(crate) date_created: String,
}

impl Instance {
    /// The main IPv4 address, if a real one is assigned (not empty, not `0.0.0.0`).
    pub(crate) fn address(&self) -> Option<IpAddr> {
        self.main_ip
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
    }

    /// Ready for SSH: the four fields the API reports out of step all agree at once.
    pub(crate) fn is_ready(&self) -> bool {
        self.status == "active"
            && self.power_status == "running"
            && self.server_status == "ok"
            && self.address().is_some()
    }

    /// The five-case status. `Active` means ready (see [`Self::is_ready`]): an instance
    /// that is `active` and `running` but still installing, or without an address, is
    /// `Pending`. `active` + `stopped` is `Halted` only once installation finished
    /// (`server_status` `ok`): a new instance passes through `active`/`stopped`/`locked`
    /// while it boots.
    pub(crate) fn status(&self) -> VpsInstanceStatus {
        match (self.status.as_str(), self.power_status.as_str()) {
            ("active", _) if self.is_ready() => VpsInstanceStatus::Active,
            ("active", "stopped") if self.server_status == "ok" => VpsInstanceStatus::Halted,
            ("active", _) | ("pending", _) | ("resizing", _) => VpsInstanceStatus::Pending,
            ("suspended", _) | ("halted", _) => VpsInstanceStatus::Halted,
            _ => VpsInstanceStatus::Unknown,
        }
    }

    /// One line for messages: `status=active power_status=stopped server_status=locked
    /// main_ip=0.0.0.0`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "status={} power_status={} server_status={} main_ip={}",
            or_dash(&self.status),
            or_dash(&self.power_status),
            or_dash(&self.server_status),
            or_dash(&self.main_ip)
        )
    }

    pub(crate) fn has_tag(&self, tag: &Tag) -> bool {
        let wanted = tag.to_string();
        self.tags.contains(&wanted)
    }

    pub(crate) fn into_info(self) -> Result<InstanceInfo, VpsClientError> {
        let status = self.status();
        let address = self.address();
        let id = VpsInstanceId::parse(&self.id)
            .map_err(|e| VpsClientError::InvalidResponse(format!("instance id: {e}")))?;
        // Tags set outside this toolkit may break our tag rules ("web server"); they
        // are not ours to read, so they are left out rather than failing the listing.
        let tags = self
            .tags
            .iter()
            .filter_map(|t| t.parse::<Tag>().ok())
            .collect();
        // An odd date leaves the time unknown rather than failing a whole listing.
        let created_at = match OffsetDateTime::parse(&self.date_created, &Rfc3339) {
            Ok(at) => Some(at),
            Err(_) if self.date_created.is_empty() => None,
            Err(e) => {
                tracing::warn!(instance = %id, date_created = %self.date_created, error = %e, "Vultr's date_created is not RFC 3339");
                None
            }
        };
        Ok(InstanceInfo {
            id,
            label: self.label,
            status,
            tags,
            address,
            published: None,
            created_at,
        })
    }
}

fn or_dash(value: &str) -> &str {
    if value.is_empty() { "-" } else { value }
}

/// `POST /instances` body. Exactly one of `os_id` and `snapshot_id` is sent: the API
/// refuses both at once ("please provide only one os_id, app_id, or snapshot_id").
///
/// No `Debug`: `user_data` carries the VPS's private host key.
#[derive(Serialize)]
pub(crate) struct CreateInstanceBody<'a> {
    pub(crate) region: &'a str,
    pub(crate) plan: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) os_id: Option<u32>,
    /// Boot from this snapshot instead of an OS image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) snapshot_id: Option<&'a str>,
    pub(crate) label: &'a str,
    pub(crate) hostname: String,
    /// Base64 of the plain-text cloud-init document.
    pub(crate) user_data: String,
    /// An array, as the API documents (a single string is not accepted).
    pub(crate) sshkey_id: Vec<&'a str>,
    /// An array; the singular `tag` is deprecated.
    pub(crate) tags: Vec<String>,
    pub(crate) backups: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) firewall_group_id: Option<String>,
}

/// A snapshot, as in `{"snapshot": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) description: String,
    /// `pending` or `complete`.
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) date_created: String,
}

impl Snapshot {
    pub(crate) fn into_info(self) -> Result<SnapshotInfo, VpsClientError> {
        let id = VpsSnapshotId::parse(&self.id)
            .map_err(|e| VpsClientError::InvalidResponse(format!("snapshot id: {e}")))?;
        let status = match self.status.as_str() {
            "pending" => SnapshotStatus::Pending,
            "complete" => SnapshotStatus::Complete,
            _ => SnapshotStatus::Unknown,
        };
        Ok(SnapshotInfo {
            id,
            description: self.description,
            status,
            created_at: Some(self.date_created).filter(|d| !d.is_empty()),
        })
    }
}

/// An SSH key, as in `{"ssh_key": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SshKey {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) ssh_key: String,
}

impl SshKey {
    pub(crate) fn into_info(self) -> Result<SshKeyInfo, VpsClientError> {
        let id = SshKeyId::parse(&self.id)
            .map_err(|e| VpsClientError::InvalidResponse(format!("SSH key id: {e}")))?;
        Ok(SshKeyInfo {
            id,
            name: self.name,
            public_key: self.ssh_key,
        })
    }
}

/// A firewall group, as in `{"firewall_group": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct FirewallGroup {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) description: String,
}

/// A firewall rule, as in `{"firewall_rule": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct FirewallRule {
    #[serde(default)]
    pub(crate) ip_type: String,
    #[serde(default)]
    pub(crate) protocol: String,
    #[serde(default)]
    pub(crate) port: String,
    #[serde(default)]
    pub(crate) subnet: String,
    #[serde(default)]
    pub(crate) subnet_size: u32,
}

impl FirewallRule {
    /// Whether this rule lets TCP `port` in over IPv4 from anywhere.
    pub(crate) fn opens_to_all_v4(&self, port: u16) -> bool {
        self.ip_type == "v4"
            && self.protocol.eq_ignore_ascii_case("tcp")
            && self.subnet == "0.0.0.0"
            && self.subnet_size == 0
            && port_matches(&self.port, port)
    }
}

/// A rule's `port` is one port (`22`) or a range (`8000:8999`).
fn port_matches(rule_port: &str, port: u16) -> bool {
    match rule_port.split_once(':') {
        Some((low, high)) => match (low.trim().parse::<u16>(), high.trim().parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&port),
            _ => false,
        },
        None => rule_port.trim().parse::<u16>() == Ok(port),
    }
}

/// `POST /firewalls/{id}/rules` body.
#[derive(Debug, Serialize)]
pub(crate) struct CreateFirewallRuleBody {
    pub(crate) ip_type: &'static str,
    pub(crate) protocol: &'static str,
    pub(crate) subnet: &'static str,
    pub(crate) subnet_size: u32,
    pub(crate) port: String,
    pub(crate) notes: String,
}

/// The hostname of an instance from its label: a DNS label, so every character other
/// than an ASCII letter, digit or `-` becomes `-` (host names may contain `_`), and at
/// most 63 characters, not ending in `-`.
pub(crate) fn hostname_from_label(label: &str) -> String {
    let mapped: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "mngr".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(status: &str, power: &str, server: &str, ip: &str) -> Instance {
        Instance {
            id: "cb676a46-66fd-4dfb-b839-443f2e6c0b60".to_owned(),
            label: "mngr-a".to_owned(),
            status: status.to_owned(),
            power_status: power.to_owned(),
            server_status: server.to_owned(),
            main_ip: ip.to_owned(),
            tags: vec![],
            date_created: String::new(),
        }
    }

    #[test]
    fn date_created_is_read_as_rfc_3339() {
        let mut i = instance("active", "running", "ok", "192.0.2.7");
        i.date_created = "2026-11-30T05:00:00+00:00".to_owned();
        let at = i.clone().into_info().expect("info").created_at;
        assert_eq!(at.map(OffsetDateTime::unix_timestamp), Some(1_796_014_800));
        i.date_created = "yesterday".to_owned();
        assert_eq!(i.clone().into_info().expect("info").created_at, None);
        i.date_created = String::new();
        assert_eq!(i.into_info().expect("info").created_at, None);
    }

    #[test]
    fn status_mapping_table() {
        use VpsInstanceStatus::*;
        let table = [
            ("pending", "stopped", "none", "0.0.0.0", Pending),
            ("active", "stopped", "locked", "0.0.0.0", Pending),
            (
                "active",
                "stopped",
                "installingbooting",
                "192.0.2.7",
                Pending,
            ),
            (
                "active",
                "running",
                "installingbooting",
                "192.0.2.7",
                Pending,
            ),
            ("active", "running", "ok", "0.0.0.0", Pending),
            ("active", "running", "ok", "", Pending),
            ("active", "running", "ok", "192.0.2.7", Active),
            ("active", "stopped", "ok", "192.0.2.7", Halted),
            ("suspended", "stopped", "ok", "192.0.2.7", Halted),
            ("resizing", "running", "locked", "192.0.2.7", Pending),
            ("", "", "", "", Unknown),
            ("weird", "running", "ok", "192.0.2.7", Unknown),
        ];
        for (status, power, server, ip, want) in table {
            let i = instance(status, power, server, ip);
            assert_eq!(i.status(), want, "{}", i.describe());
            assert_eq!(i.is_ready(), want == Active, "{}", i.describe());
        }
    }

    #[test]
    fn address_ignores_the_placeholder() {
        assert_eq!(
            instance("active", "running", "ok", "0.0.0.0").address(),
            None
        );
        assert_eq!(instance("active", "running", "ok", "").address(), None);
        assert_eq!(
            instance("active", "running", "ok", "192.0.2.7").address(),
            Some("192.0.2.7".parse().expect("ip"))
        );
    }

    #[test]
    fn foreign_tags_are_skipped_not_fatal() {
        let mut i = instance("active", "running", "ok", "192.0.2.7");
        i.tags = vec!["mngr-provider=vultr".to_owned(), "web server".to_owned()];
        let info = i.into_info().expect("info");
        assert_eq!(info.tags.len(), 1);
        assert_eq!(info.tags[0].to_string(), "mngr-provider=vultr");
    }

    #[test]
    fn firewall_rule_matching() {
        let rule = |port: &str, subnet: &str, size: u32| FirewallRule {
            ip_type: "v4".to_owned(),
            protocol: "tcp".to_owned(),
            port: port.to_owned(),
            subnet: subnet.to_owned(),
            subnet_size: size,
        };
        assert!(rule("22", "0.0.0.0", 0).opens_to_all_v4(22));
        assert!(rule("2000:3000", "0.0.0.0", 0).opens_to_all_v4(2222));
        assert!(!rule("22", "0.0.0.0", 0).opens_to_all_v4(2222));
        assert!(!rule("22", "198.51.100.0", 24).opens_to_all_v4(22));
        assert!(!rule("x:y", "0.0.0.0", 0).opens_to_all_v4(22));
    }

    #[test]
    fn hostnames_are_dns_labels() {
        assert_eq!(hostname_from_label("mngr-my-agent"), "mngr-my-agent");
        assert_eq!(hostname_from_label("mngr-my_agent"), "mngr-my-agent");
        assert_eq!(hostname_from_label("__"), "mngr");
        assert_eq!(hostname_from_label(&"a".repeat(80)).len(), 63);
    }
}

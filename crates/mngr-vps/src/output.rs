//! What the commands print: the stable JSON shape of a host (documented in the README)
//! and the human table. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use vps_docker_provider::{HostInfo, HostStatus, Phases};

use crate::settings::Setting;

/// A host as `--json` prints it. Fields are added, never renamed or removed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HostView {
    /// The host id (`host-…`).
    pub id: String,
    /// Its name, when known.
    pub name: Option<String>,
    /// The provider instance.
    pub provider: String,
    /// `running`, `stopped`, `starting`, `unreachable` or `failed`.
    pub status: &'static str,
    /// Why, for `stopped` (`user`, `idle`, `crashed`), `unreachable` and `failed`.
    pub status_detail: Option<String>,
    /// The provider's instance id.
    pub instance_id: Option<String>,
    /// The provider's status of the instance.
    pub instance_status: Option<String>,
    /// `ip:port` of the VPS's sshd.
    pub vps_ssh: Option<String>,
    /// `ip:port` of the container's sshd.
    pub container_ssh: Option<String>,
    /// The container image.
    pub image: Option<String>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// The idle mode.
    pub idle_mode: Option<String>,
    /// The idle timeout in seconds.
    pub idle_timeout_seconds: Option<u64>,
}

impl From<&HostInfo> for HostView {
    fn from(h: &HostInfo) -> Self {
        let status_detail = match &h.status {
            HostStatus::Stopped { reason } => Some(
                match reason {
                    Some(vps_docker_provider::StopReason::User) => "user",
                    Some(vps_docker_provider::StopReason::Idle) => "idle",
                    None => "crashed",
                }
                .to_owned(),
            ),
            HostStatus::Unreachable { reason } | HostStatus::Failed { reason } => {
                Some(reason.clone())
            }
            _ => None,
        };
        Self {
            id: h.id.to_string(),
            name: h.name.as_ref().map(ToString::to_string),
            provider: h.provider.to_string(),
            status: h.status.word(),
            status_detail,
            instance_id: h.instance_id.as_ref().map(ToString::to_string),
            instance_status: h.instance_status.map(|s| s.to_string()),
            vps_ssh: h.vps_ssh.map(|a| a.to_string()),
            container_ssh: h.container_ssh.map(|a| a.to_string()),
            image: h.image.clone(),
            tags: h.tags.clone(),
            created_at: h.created_at.clone(),
            idle_mode: h
                .idle_mode
                .and_then(|m| serde_json::to_value(m).ok())
                .and_then(|v| v.as_str().map(str::to_owned)),
            idle_timeout_seconds: h.idle_timeout_seconds,
        }
    }
}

/// What `create --json` prints.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The new host.
    pub host: HostView,
    /// Seconds per step, in order.
    pub phases: Vec<PhaseView>,
    /// Warnings of the create.
    pub warnings: Vec<String>,
}

/// One step's time.
#[derive(Debug, Serialize)]
pub struct PhaseView {
    /// The step's name (`create-instance`, …).
    pub step: &'static str,
    /// Seconds.
    pub seconds: f64,
}

/// The phases as JSON rows.
pub fn phases(p: &Phases) -> Vec<PhaseView> {
    p.0.iter()
        .map(|(step, took)| PhaseView {
            step: step.as_str(),
            seconds: round_ms(*took),
        })
        .collect()
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Columns padded to their widest cell, two spaces apart, no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let all = std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    for row in all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The `list` table.
pub fn hosts_table(hosts: &[HostView]) -> String {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let status = match &h.status_detail {
                Some(d) => format!("{} ({d})", h.status),
                None => h.status.to_owned(),
            };
            vec![
                h.name.clone().unwrap_or_else(|| "-".into()),
                h.id.clone(),
                status,
                h.image.clone().unwrap_or_else(|| "-".into()),
                h.created_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["NAME", "ID", "STATUS", "IMAGE", "CREATED"], &rows)
}

/// The `show` text: one `key: value` line per field.
pub fn host_details(h: &HostView) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let tags = if h.tags.is_empty() {
        "-".to_owned()
    } else {
        h.tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let status = match &h.status_detail {
        Some(d) => format!("{} ({d})", h.status),
        None => h.status.to_owned(),
    };
    let rows = [
        ("name", opt(&h.name)),
        ("id", h.id.clone()),
        ("provider", h.provider.clone()),
        ("status", status),
        ("image", opt(&h.image)),
        ("created", opt(&h.created_at)),
        ("tags", tags),
        (
            "idle",
            match (&h.idle_mode, h.idle_timeout_seconds) {
                (Some(m), Some(t)) => format!("{m} after {t}s"),
                _ => "-".into(),
            },
        ),
        ("instance", opt(&h.instance_id)),
        ("instance status", opt(&h.instance_status)),
        ("vps ssh", opt(&h.vps_ssh)),
        ("container ssh", opt(&h.container_ssh)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n", width = width + 1, k = format!("{k}:")))
        .collect()
}

/// The `config` table.
pub fn settings_table(settings: &[Setting]) -> String {
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|s| vec![s.key.clone(), s.value.clone(), s.origin.to_string()])
        .collect();
    table(&["KEY", "VALUE", "SOURCE"], &rows)
}

/// The `config --json` object: `{key: {"value": …, "source": …}}`.
pub fn settings_json(settings: &[Setting]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .map(|s| {
            (
                s.key.clone(),
                serde_json::json!({ "value": s.value, "source": s.origin.to_string() }),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostView {
        HostView {
            id: "host-0123456789abcdef0123456789abcdef".into(),
            name: Some("my-agent".into()),
            provider: "local".into(),
            status: "stopped",
            status_detail: Some("user".into()),
            instance_id: Some("lvps-0011".into()),
            instance_status: Some("ACTIVE".into()),
            vps_ssh: Some("127.0.0.1:32768".into()),
            container_ssh: None,
            image: Some("mngr-local/host:0123456789abcdef".into()),
            tags: BTreeMap::from([("team".into(), "infra".into())]),
            created_at: Some("2026-12-02T14:00:00Z".into()),
            idle_mode: Some("IO".into()),
            idle_timeout_seconds: Some(800),
        }
    }

    #[test]
    fn host_json_shape() {
        insta::assert_json_snapshot!(sample());
    }

    #[test]
    fn list_table() {
        let mut other = sample();
        other.name = Some("b".into());
        other.status = "running";
        other.status_detail = None;
        insta::assert_snapshot!(hosts_table(&[sample(), other]));
    }

    #[test]
    fn show_text() {
        insta::assert_snapshot!(host_details(&sample()));
    }

    #[test]
    fn table_pads_to_the_widest_cell_without_trailing_spaces() {
        let t = table(&["A", "B"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     B\nlong  x\n");
    }
}

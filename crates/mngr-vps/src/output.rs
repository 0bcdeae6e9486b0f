//! What the commands print: the stable JSON shape of a host (documented in the README)
//! and the human table. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use vps_docker_provider::{
    CleanupReport, ContainerSnapshot, HostInfo, HostStatus, Leak, LeakKind, Phases,
};

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
    /// `running`, `stopped`, `starting`, `unreachable`, `hibernated` or `failed`.
    pub status: &'static str,
    /// Why, for `stopped` (`user`, `idle`, `crashed`), `unreachable` and `failed`;
    /// `snapshot <id>` (the provider snapshot that holds it) for `hibernated`.
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
            HostStatus::Hibernated { snapshot } => Some(format!("snapshot {snapshot}")),
            HostStatus::Running | HostStatus::Starting => None,
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

/// A container snapshot as `--json` prints it. Fields are added, never renamed or removed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SnapshotView {
    /// The image id (`sha256:…`).
    pub id: String,
    /// Its name (unique within the host).
    pub name: String,
    /// The image reference on the host's VPS.
    pub image: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
}

impl From<&ContainerSnapshot> for SnapshotView {
    fn from(s: &ContainerSnapshot) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            image: s.image.clone(),
            created_at: s.created_at.clone(),
        }
    }
}

/// The `snapshot list` table. The id is shown whole: the verbs take a snapshot's name or
/// its whole id (with or without `sha256:`), not a prefix.
pub fn snapshots_table(snapshots: &[SnapshotView]) -> String {
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| vec![s.name.clone(), s.created_at.clone(), s.id.clone()])
        .collect();
    table(&["NAME", "CREATED", "ID"], &rows)
}

/// A leak as `cleanup --json` prints it. Fields are added, never renamed or removed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LeakView {
    /// `instance`, `vps-snapshot`, `ssh-key` or `local-keys`.
    pub kind: &'static str,
    /// The host it was made for.
    pub host: String,
    /// The provider's id of the thing (for `local-keys`: the directory).
    pub id: String,
    /// Its label, description or name at the provider (`null` for `local-keys`).
    pub label: Option<String>,
    /// Why it counts as leaked.
    pub why: String,
    /// Its age in seconds, when known.
    pub age_seconds: Option<u64>,
}

impl From<&Leak> for LeakView {
    fn from(l: &Leak) -> Self {
        let (kind, id, label) = match &l.kind {
            LeakKind::Instance { id, label } => ("instance", id.to_string(), Some(label.clone())),
            LeakKind::Snapshot { id, description } => {
                ("vps-snapshot", id.to_string(), Some(description.clone()))
            }
            LeakKind::SshKey { id, name } => ("ssh-key", id.to_string(), Some(name.clone())),
            LeakKind::LocalKeys { dir } => ("local-keys", dir.display().to_string(), None),
        };
        Self {
            kind,
            host: l.host.to_string(),
            id,
            label,
            why: l.why.clone(),
            age_seconds: l.age.map(|a| a.as_secs()),
        }
    }
}

/// A deletion that failed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FailedView {
    /// What was not deleted.
    pub leak: LeakView,
    /// Why.
    pub error: String,
}

/// What `cleanup --json` prints: what was found, and with `delete`, what was deleted and
/// what could not be (both empty without it).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CleanupView {
    /// The threshold.
    pub older_than_seconds: u64,
    /// Whether deletion was asked for.
    pub delete: bool,
    /// Everything found, in deletion order.
    pub leaks: Vec<LeakView>,
    /// Deleted (or already gone).
    pub deleted: Vec<LeakView>,
    /// Not deleted, with why.
    pub failed: Vec<FailedView>,
}

impl CleanupView {
    /// The view of `leaks` and, if deletion ran, its `report`.
    pub fn new(older_than: Duration, leaks: &[Leak], report: Option<&CleanupReport>) -> Self {
        Self {
            older_than_seconds: older_than.as_secs(),
            delete: report.is_some(),
            leaks: leaks.iter().map(LeakView::from).collect(),
            deleted: report
                .map(|r| r.deleted.iter().map(LeakView::from).collect())
                .unwrap_or_default(),
            failed: report
                .map(|r| {
                    r.failed
                        .iter()
                        .map(|(leak, error)| FailedView {
                            leak: LeakView::from(leak),
                            error: error.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The `cleanup` table.
pub fn leaks_table(leaks: &[LeakView]) -> String {
    let rows: Vec<Vec<String>> = leaks
        .iter()
        .map(|l| {
            let what = match &l.label {
                Some(label) if !label.is_empty() => format!("{} ({label})", l.id),
                _ => l.id.clone(),
            };
            vec![
                l.kind.to_owned(),
                l.host.clone(),
                what,
                l.age_seconds
                    .map(|s| human_duration(Duration::from_secs(s)))
                    .unwrap_or_else(|| "-".into()),
                l.why.clone(),
            ]
        })
        .collect();
    table(&["KIND", "HOST", "WHAT", "AGE", "WHY"], &rows)
}

/// A duration in its two largest units: `2d3h`, `1h`, `5m30s`, `42s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(n, _)| secs >= *n) else {
        return "0s".into();
    };
    let (n, u) = units[first];
    let mut out = format!("{}{u}", secs / n);
    if let Some((m, v)) = units.get(first + 1) {
        let rest = (secs % n) / m;
        if rest > 0 {
            out.push_str(&format!("{rest}{v}"));
        }
    }
    out
}

/// A duration as `--older-than` takes it, in the largest unit that holds it exactly:
/// `2d`, `1h`, `90m`, `45s`.
pub fn duration_arg(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(n, _)| secs > 0 && secs.is_multiple_of(*n))
        .unwrap_or((1, "s"));
    format!("{}{unit}", secs / n)
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

    fn snapshot() -> SnapshotView {
        SnapshotView {
            id: "sha256:5f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff".into(),
            name: "before-refactor".into(),
            image: "mngr-snapshot-0123456789abcdef0123456789abcdef:1796220000-000042".into(),
            created_at: "2026-12-02T14:00:00Z".into(),
        }
    }

    #[test]
    fn snapshot_json_shape() {
        insta::assert_json_snapshot!(snapshot());
    }

    #[test]
    fn snapshot_table() {
        let mut other = snapshot();
        other.name = "mngr-snapshot-host-0123456789abcdef0123456789abcdef-1796223600".into();
        other.id = "sha256:00aa".into();
        insta::assert_snapshot!(snapshots_table(&[snapshot(), other]));
    }

    fn leaks() -> Vec<Leak> {
        let host =
            vps_primitives::HostId::parse("host-0123456789abcdef0123456789abcdef").expect("id");
        vec![
            Leak {
                host: host.clone(),
                kind: LeakKind::Instance {
                    id: vps_primitives::VpsInstanceId::parse("lvps-0011").expect("id"),
                    label: "mngr-my-agent".into(),
                },
                why: "its VPS has no state container (a failed or interrupted create)".into(),
                age: Some(Duration::from_secs(7260)),
            },
            Leak {
                host: host.clone(),
                kind: LeakKind::SshKey {
                    id: vps_primitives::SshKeyId::parse("key-7").expect("id"),
                    name: "mngr-local-host-0123456789abcdef0123456789abcdef".into(),
                },
                why: "no instance or snapshot of the host exists".into(),
                age: None,
            },
            Leak {
                host,
                kind: LeakKind::LocalKeys {
                    dir: "/home/me/.local/share/mngr-vps/keys/local/hosts/host-0123456789abcdef0123456789abcdef".into(),
                },
                why: "no instance or snapshot of the host exists".into(),
                age: Some(Duration::from_secs(90_000)),
            },
        ]
    }

    #[test]
    fn cleanup_json_shape() {
        let leaks = leaks();
        let report = CleanupReport {
            deleted: leaks[..2].to_vec(),
            failed: vec![(leaks[2].clone(), "permission denied".into())],
        };
        insta::assert_json_snapshot!(CleanupView::new(
            Duration::from_secs(3600),
            &leaks,
            Some(&report)
        ));
        let listed = CleanupView::new(Duration::from_secs(60), &leaks, None);
        assert!(!listed.delete);
        assert!(listed.deleted.is_empty() && listed.failed.is_empty());
        assert_eq!(listed.leaks.len(), 3);
    }

    #[test]
    fn leak_table() {
        let views: Vec<LeakView> = leaks().iter().map(LeakView::from).collect();
        insta::assert_snapshot!(leaks_table(&views));
    }

    #[test]
    fn durations_read_in_two_units() {
        for (secs, text) in [
            (0, "0s"),
            (42, "42s"),
            (330, "5m30s"),
            (3600, "1h"),
            (3660, "1h1m"),
            (3661, "1h1m"),
            (183_600, "2d3h"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), text, "{secs}");
        }
    }

    #[test]
    fn duration_args_read_back_as_they_were() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (5400, "90m"),
            (3600, "1h"),
            (172_800, "2d"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(duration_arg(d), text);
            assert_eq!(crate::cli::parse_duration(text), Ok(d));
        }
    }

    #[test]
    fn a_hibernated_host_names_its_snapshot() {
        let view = HostView::from(&HostInfo::seen(
            vps_primitives::HostId::parse("host-0123456789abcdef0123456789abcdef").expect("id"),
            Some(vps_primitives::HostName::parse("sleeper").expect("name")),
            vps_primitives::ProviderName::parse("local").expect("provider"),
            HostStatus::Hibernated {
                snapshot: vps_primitives::VpsSnapshotId::parse("snap-1").expect("id"),
            },
        ));
        assert_eq!(view.status, "hibernated");
        assert_eq!(view.status_detail.as_deref(), Some("snapshot snap-1"));
    }

    #[test]
    fn table_pads_to_the_widest_cell_without_trailing_spaces() {
        let t = table(&["A", "B"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     B\nlong  x\n");
    }
}

//! Leak cleanup: what this provider instance made and no host accounts for.
//!
//! [`VpsDockerProvider::find_leaks`] only lists; [`VpsDockerProvider::delete_leaks`]
//! deletes what it is given and reports each deletion.
//!
//! The rules are on [`VpsDockerProvider::find_leaks`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{Executor, SshPool, SshTarget};
use host_store::{HostRecord, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vps_client::{InstanceInfo, SnapshotInfo, SshKeyInfo};
use vps_primitives::{
    HOST_ID_TAG_KEY, HostId, PROVIDER_TAG_KEY, ProviderName, SshKeyId, VpsInstanceId,
    VpsInstanceStatus, VpsSnapshotId,
};

use crate::error::ProviderError;
use crate::provider::VpsDockerProvider;

/// What leaked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeakKind {
    /// A VPS instance without a host record.
    Instance {
        /// The instance.
        id: VpsInstanceId,
        /// Its label.
        label: String,
    },
    /// A provider snapshot.
    Snapshot {
        /// The snapshot.
        id: VpsSnapshotId,
        /// Its description.
        description: String,
    },
    /// An SSH key uploaded to the provider.
    SshKey {
        /// The key.
        id: SshKeyId,
        /// Its name.
        name: String,
    },
    /// The host's key directory here (its keys and pins).
    LocalKeys {
        /// The directory.
        dir: PathBuf,
    },
}

impl LeakKind {
    /// Deletion order: instances first (they cost money), local keys last.
    fn rank(&self) -> u8 {
        match self {
            Self::Instance { .. } => 0,
            Self::Snapshot { .. } => 1,
            Self::SshKey { .. } => 2,
            Self::LocalKeys { .. } => 3,
        }
    }
}

/// One thing this provider made that no host accounts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    /// The host it was made for.
    pub host: HostId,
    /// What it is.
    pub kind: LeakKind,
    /// Why it counts as leaked.
    pub why: String,
    /// How old it is, when known.
    pub age: Option<Duration>,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LeakKind::Instance { id, label } => write!(f, "VPS instance {id} ({label})")?,
            LeakKind::Snapshot { id, description } => {
                write!(f, "provider snapshot {id} ({description})")?;
            }
            LeakKind::SshKey { id, name } => write!(f, "uploaded SSH key {id} ({name})")?,
            LeakKind::LocalKeys { dir } => write!(f, "local keys and pins {}", dir.display())?,
        }
        write!(f, " of host {}: {}", self.host, self.why)?;
        if let Some(age) = self.age {
            write!(f, " (age {}s)", age.as_secs())?;
        }
        Ok(())
    }
}

/// What [`VpsDockerProvider::delete_leaks`] did.
#[derive(Debug, Default)]
pub struct CleanupReport {
    /// Deleted (or already gone), in the order of deletion.
    pub deleted: Vec<Leak>,
    /// Not deleted, with why.
    pub failed: Vec<(Leak, String)>,
}

impl CleanupReport {
    /// Whether every deletion succeeded.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The host an uploaded key of `provider` is for: its name is `mngr-<provider>-<host id>`.
pub fn key_host(name: &str, provider: &ProviderName) -> Option<HostId> {
    let rest = name.strip_prefix(&format!("mngr-{provider}-"))?;
    HostId::parse(rest).ok()
}

/// The host a provider snapshot of `provider` is for: its description carries the words
/// `mngr-provider=<provider>` and `mngr-host-id=<host id>` (separated by whitespace,
/// commas or semicolons).
pub fn snapshot_host(description: &str, provider: &ProviderName) -> Option<HostId> {
    let words: Vec<&str> = description
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .collect();
    let ours = words
        .iter()
        .any(|w| *w == format!("{PROVIDER_TAG_KEY}={provider}"));
    if !ours {
        return None;
    }
    words.iter().find_map(|w| {
        w.strip_prefix(HOST_ID_TAG_KEY)
            .and_then(|r| r.strip_prefix('='))
            .and_then(|v| HostId::parse(v).ok())
    })
}

/// The age at `now` of something created at `at` (zero if the clocks disagree and it lies
/// in the future).
fn age_since(at: OffsetDateTime, now: OffsetDateTime) -> Duration {
    (now - at).try_into().unwrap_or_default()
}

/// The age at `now` of a provider timestamp (RFC 3339), if it can be read.
fn age_of(created_at: Option<&str>, now: OffsetDateTime) -> Option<Duration> {
    let at = OffsetDateTime::parse(created_at?, &Rfc3339).ok()?;
    Some(age_since(at, now))
}

/// What a look at an instance showed.
enum Probe {
    /// The host's record.
    Record(Box<HostRecord>),
    /// The VPS answered and has no record of the host.
    NoRecord(String),
    /// Cannot say.
    Unknown(String),
}

/// The pure decision: given what was seen, what leaked.
struct Seen<'a> {
    provider: &'a ProviderName,
    older_than: Duration,
    /// The time ages are measured at.
    now: OffsetDateTime,
    /// Instances with their host and what the probe found. An instance's age is the
    /// provider's creation time ([`InstanceInfo::created_at`]), never this machine's files.
    instances: Vec<(&'a InstanceInfo, HostId, Probe)>,
    snapshots: &'a [SnapshotInfo],
    keys: &'a [SshKeyInfo],
    /// Local key directories, with their age.
    local: Vec<(HostId, PathBuf, Option<Duration>)>,
}

fn decide(seen: Seen<'_>) -> Vec<Leak> {
    let old = |age: Option<Duration>| age.is_some_and(|a| a >= seen.older_than);
    let mut leaks = Vec::new();
    let mut existing = BTreeSet::new();
    let mut records: BTreeMap<HostId, String> = BTreeMap::new();
    for (instance, host, probe) in &seen.instances {
        let age = instance.created_at.map(|at| age_since(at, seen.now));
        match probe {
            Probe::NoRecord(why) if old(age) => leaks.push(Leak {
                host: host.clone(),
                kind: LeakKind::Instance {
                    id: instance.id.clone(),
                    label: instance.label.clone(),
                },
                why: format!("{why} (a failed or interrupted create)"),
                age,
            }),
            Probe::Record(record) => {
                existing.insert(host.clone());
                let json = record
                    .to_json()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                records.insert(host.clone(), json);
            }
            Probe::NoRecord(why) | Probe::Unknown(why) => {
                tracing::info!(%host, instance = %instance.id, %why, ?age, "not judged a leak (too young, no creation time, or it cannot be told)");
                existing.insert(host.clone());
            }
        }
    }
    for snapshot in seen.snapshots {
        let Some(host) = snapshot_host(&snapshot.description, seen.provider) else {
            continue;
        };
        let age = age_of(snapshot.created_at.as_deref(), seen.now);
        if let Some(json) = records.get(&host)
            && !json.contains(snapshot.id.as_str())
            && old(age)
        {
            leaks.push(Leak {
                host: host.clone(),
                kind: LeakKind::Snapshot {
                    id: snapshot.id.clone(),
                    description: snapshot.description.clone(),
                },
                why: "the host runs on an instance and its record does not mention the snapshot"
                    .into(),
                age,
            });
        }
        existing.insert(host);
    }
    let local_age: BTreeMap<&HostId, Option<Duration>> =
        seen.local.iter().map(|(h, _, a)| (h, *a)).collect();
    for key in seen.keys {
        let Some(host) = key_host(&key.name, seen.provider) else {
            continue;
        };
        let age = local_age.get(&host).copied().flatten();
        if existing.contains(&host) || (local_age.contains_key(&host) && !old(age)) {
            continue;
        }
        leaks.push(Leak {
            host,
            kind: LeakKind::SshKey {
                id: key.id.clone(),
                name: key.name.clone(),
            },
            why: "no instance or snapshot of the host exists".into(),
            age,
        });
    }
    for (host, dir, age) in seen.local {
        if existing.contains(&host) || !old(age) {
            continue;
        }
        leaks.push(Leak {
            host,
            kind: LeakKind::LocalKeys { dir },
            why: "no instance or snapshot of the host exists".into(),
            age,
        });
    }
    leaks.sort_by_key(|l| l.kind.rank());
    leaks
}

impl VpsDockerProvider {
    /// Lists what this provider instance made and no host accounts for, only things at
    /// least `older_than` old. Deletes nothing.
    ///
    /// | leak | rule |
    /// |---|---|
    /// | instance | tagged `mngr-provider=<this provider>` and `mngr-host-id=<id>`, **active**, its VPS answered with this machine's pinned keys, and it holds no record of the host (no state container, or no record in it): a create that failed or was killed before `write-record`. Its age is the provider's creation time ([`InstanceInfo::created_at`]), not the host's key files on this machine: those are as old as the host, not as its current instance (a wake orders a new instance with the same keys), and change time when the key directory is copied; it must be at least the threshold |
    /// | uploaded SSH key | named `mngr-<provider>-<host id>`, and the host exists no more (see below); its age is that of the host's local keys if this machine has them, else it counts as old |
    /// | local key directory (keys and pins) | `hosts/<host id>/` in the key directory, the host exists no more, and the keys are older than the threshold |
    /// | provider snapshot | its description carries `mngr-provider=<this provider>` and `mngr-host-id=<id>`, the host runs on an instance whose record does not mention the snapshot (a wake that failed to delete it), and it is older than the threshold |
    ///
    /// A host **exists** if an instance carries its id and is not itself a leak, or a provider
    /// snapshot carries its id (a hibernated host has no instance: its snapshot is the host).
    /// What cannot be judged is never a leak: an instance whose VPS does not answer, one
    /// this machine has no keys for (another machine's host), one that is pending, halted or
    /// being destroyed, one the provider gives no creation time for, a snapshot without a
    /// readable creation time.
    pub async fn find_leaks(&self, older_than: Duration) -> Result<Vec<Leak>, ProviderError> {
        let client = &self.inner.client;
        let api = |what: &'static str| {
            move |source| ProviderError::Provider {
                what,
                source: Box::new(source),
            }
        };
        let tag = self.provider_tag();
        let (instances, snapshots, keys) = tokio::join!(
            client.list_instances(Some(&tag)),
            client.list_snapshots(),
            client.list_ssh_keys(),
        );
        let instances = instances.map_err(api("listing the provider's instances"))?;
        let snapshots = snapshots.map_err(api("listing the provider's snapshots"))?;
        let keys = keys.map_err(api("listing the uploaded SSH keys"))?;
        let local_ids =
            self.inner.keys.hosts().map_err(|e| {
                ProviderError::InvalidInput(format!("reading the key directory: {e}"))
            })?;
        let local = local_ids
            .into_iter()
            .map(|id| {
                let keys = self.inner.keys.host(&id);
                let age = keys.age();
                (id, keys.dir().to_path_buf(), age)
            })
            .collect();
        let ours: Vec<(&InstanceInfo, HostId)> = instances
            .iter()
            .filter_map(|i| {
                let host = i
                    .tags
                    .iter()
                    .find(|t| t.key() == HOST_ID_TAG_KEY)
                    .and_then(|t| HostId::parse(t.value()).ok())?;
                Some((i, host))
            })
            .collect();
        let probes = futures::future::join_all(ours.iter().map(|(i, h)| self.probe(i, h))).await;
        let instances = ours
            .into_iter()
            .zip(probes)
            .map(|((i, h), p)| (i, h, p))
            .collect();
        let leaks = decide(Seen {
            provider: &self.inner.name,
            older_than,
            now: OffsetDateTime::now_utc(),
            instances,
            snapshots: &snapshots,
            keys: &keys,
            local,
        });
        for leak in &leaks {
            tracing::info!(%leak, "found a leak");
        }
        Ok(leaks)
    }

    /// Deletes `leaks` (instances first, local keys last) and reports each deletion;
    /// something already gone counts as deleted.
    pub async fn delete_leaks(&self, leaks: &[Leak]) -> CleanupReport {
        let client = &self.inner.client;
        let mut ordered: Vec<&Leak> = leaks.iter().collect();
        ordered.sort_by_key(|l| l.kind.rank());
        let mut report = CleanupReport::default();
        for leak in ordered {
            let result = match &leak.kind {
                LeakKind::Instance { id, .. } => {
                    client.destroy_instance(id).await.map_err(|e| e.to_string())
                }
                LeakKind::Snapshot { id, .. } => {
                    client.delete_snapshot(id).await.map_err(|e| e.to_string())
                }
                LeakKind::SshKey { id, .. } => {
                    client.delete_ssh_key(id).await.map_err(|e| e.to_string())
                }
                LeakKind::LocalKeys { .. } => self
                    .inner
                    .keys
                    .host(&leak.host)
                    .remove()
                    .map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => {
                    tracing::info!(%leak, "deleted");
                    report.deleted.push(leak.clone());
                }
                Err(e) => {
                    tracing::warn!(%leak, error = %e, "could not delete");
                    report.failed.push((leak.clone(), e));
                }
            }
        }
        report
    }

    /// Whether `instance`'s VPS holds a record of `host`, asked with this machine's keys.
    async fn probe(&self, instance: &InstanceInfo, host: &HostId) -> Probe {
        if instance.status != VpsInstanceStatus::Active {
            return Probe::Unknown(format!("the instance is {:?}", instance.status));
        }
        let host_keys = self.inner.keys.host(host);
        let (keys, pin) = match host_keys.load().and_then(|k| Ok((k, host_keys.vps_pin()?))) {
            Ok(v) => v,
            Err(e) => return Probe::Unknown(format!("no usable keys on this machine: {e}")),
        };
        let addr = match self.listed_addr(instance, 22).await {
            Ok(a) => a,
            Err(e) => return Probe::Unknown(format!("no address: {e}")),
        };
        let timeout = self.inner.config.discovery_connect();
        let target = SshTarget::new(addr.ip().to_string(), addr.port(), "root", keys.vps, pin);
        let pool = SshPool::new(target, self.ssh_config(timeout).attempts(1, 1));
        let exec: Arc<dyn Executor> = Arc::new(pool.clone());
        let read = async {
            let store = self.store(exec).map_err(|e| e.to_string())?;
            pool.connect().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(store.read_host_record(host).await)
        };
        let outcome = tokio::time::timeout(timeout * 2, read).await;
        pool.close().await;
        match outcome {
            Ok(Ok(Ok(Some(record)))) => Probe::Record(Box::new(record)),
            Ok(Ok(Ok(None))) => Probe::NoRecord("its VPS holds no record of the host".into()),
            Ok(Ok(Err(StoreError::NoStateContainer { .. }))) => {
                Probe::NoRecord("its VPS has no state container".into())
            }
            Ok(Ok(Err(e))) => Probe::Unknown(e.to_string()),
            Ok(Err(e)) => Probe::Unknown(e),
            Err(_) => Probe::Unknown("the VPS did not answer in time".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use host_store::{CertifiedHostData, Timestamp};
    use vps_client::SnapshotStatus;
    use vps_primitives::{HostName, Tag};

    use super::*;

    fn provider() -> ProviderName {
        ProviderName::parse("local").expect("name")
    }

    /// The time the decisions are made at.
    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    /// An instance the provider says it created `age` before [`now`] (`None`: it does not
    /// say).
    fn instance(id: &str, host: &HostId, age: Option<Duration>) -> InstanceInfo {
        InstanceInfo {
            id: VpsInstanceId::parse(id).expect("id"),
            label: format!("mngr-{id}"),
            status: VpsInstanceStatus::Active,
            tags: vec![Tag::provider(&provider()), Tag::host_id(host)],
            address: None,
            published: None,
            created_at: age.map(|a| now() - a),
        }
    }

    fn record(host: &HostId) -> Probe {
        let data = CertifiedHostData::new(
            host.clone(),
            HostName::parse("h").expect("name"),
            Timestamp::now(),
        );
        Probe::Record(Box::new(HostRecord::new(data)))
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn names_and_descriptions_say_the_host() {
        let id = HostId::generate();
        let p = provider();
        assert_eq!(key_host(&format!("mngr-local-{id}"), &p), Some(id.clone()));
        assert_eq!(key_host(&format!("mngr-other-{id}"), &p), None);
        assert_eq!(key_host("mngr-local-host-zz", &p), None);
        let d = format!("mngr hibernation; mngr-provider=local mngr-host-id={id}");
        assert_eq!(snapshot_host(&d, &p), Some(id.clone()));
        assert_eq!(snapshot_host(&format!("mngr-host-id={id}"), &p), None);
        assert_eq!(
            snapshot_host(&format!("mngr-provider=localx mngr-host-id={id}"), &p),
            None
        );
    }

    #[test]
    fn decisions() {
        let p = provider();
        let healthy = HostId::generate();
        let killed = HostId::generate();
        let copied = HostId::generate();
        let young = HostId::generate();
        let undated = HostId::generate();
        let unreachable = HostId::generate();
        let gone = HostId::generate();
        let gone_young = HostId::generate();
        let hibernated = HostId::generate();
        let woken = HostId::generate();
        let minute = Duration::from_secs(60);
        // Instance ages (the provider's creation times) and key-file ages disagree on
        // purpose: an instance is judged by the provider's time only.
        let i_healthy = instance("a", &healthy, Some(HOUR * 5));
        let i_killed = instance("b", &killed, Some(HOUR * 2));
        // Old instance, key files made new (the key directory was copied).
        let i_copied = instance("c", &copied, Some(HOUR * 2));
        // New instance (a wake, say), key files as old as the host.
        let i_young = instance("d", &young, Some(minute));
        // The provider gives no creation time: it cannot be judged.
        let i_undated = instance("e", &undated, None);
        let i_unreachable = instance("f", &unreachable, Some(HOUR * 9));
        let i_woken = instance("g", &woken, Some(HOUR * 9));
        let snapshot = |id: &str, host: &HostId, at: Option<&str>| SnapshotInfo {
            id: VpsSnapshotId::parse(id).expect("id"),
            description: format!("mngr-provider=local mngr-host-id={host}"),
            status: SnapshotStatus::Complete,
            created_at: at.map(Into::into),
        };
        let snapshots = [
            snapshot("s-hib", &hibernated, Some("2020-01-01T00:00:00Z")),
            snapshot("s-woken", &woken, Some("2020-01-01T00:00:00Z")),
            snapshot("s-healthy-undated", &healthy, None),
        ];
        let key = |host: &HostId| SshKeyInfo {
            id: SshKeyId::parse(&format!("k-{}", &host.as_str()[5..13])).expect("id"),
            name: format!("mngr-local-{host}"),
            public_key: String::new(),
        };
        let keys = [
            key(&healthy),
            key(&killed),
            key(&copied),
            key(&gone),
            key(&gone_young),
            key(&hibernated),
            key(&young),
            key(&undated),
        ];
        let dir = |h: &HostId| PathBuf::from(format!("/k/hosts/{h}"));
        let no_record = || Probe::NoRecord("no record".into());
        let seen = Seen {
            provider: &p,
            older_than: HOUR,
            now: now(),
            instances: vec![
                (&i_healthy, healthy.clone(), record(&healthy)),
                (
                    &i_killed,
                    killed.clone(),
                    Probe::NoRecord("no state container".into()),
                ),
                (&i_copied, copied.clone(), no_record()),
                (&i_young, young.clone(), no_record()),
                (&i_undated, undated.clone(), no_record()),
                (
                    &i_unreachable,
                    unreachable.clone(),
                    Probe::Unknown("timeout".into()),
                ),
                (&i_woken, woken.clone(), record(&woken)),
            ],
            snapshots: &snapshots,
            keys: &keys,
            local: vec![
                (healthy.clone(), dir(&healthy), Some(HOUR * 5)),
                (killed.clone(), dir(&killed), Some(HOUR * 2)),
                (copied.clone(), dir(&copied), Some(minute)),
                (young.clone(), dir(&young), Some(HOUR * 5)),
                (undated.clone(), dir(&undated), Some(HOUR * 9)),
                (gone.clone(), dir(&gone), Some(HOUR * 3)),
                (gone_young.clone(), dir(&gone_young), Some(minute)),
                (hibernated.clone(), dir(&hibernated), Some(HOUR * 3)),
            ],
        };
        let leaks = decide(seen);
        let got: Vec<(HostId, u8)> = leaks
            .iter()
            .map(|l| (l.host.clone(), l.kind.rank()))
            .collect();
        let want = vec![
            (killed.clone(), 0),
            (copied.clone(), 0),
            (woken.clone(), 1),
            (killed.clone(), 2),
            (gone.clone(), 2),
            (killed.clone(), 3),
            (gone.clone(), 3),
        ];
        assert_eq!(got, want, "{leaks:#?}");
        // An instance's age is the provider's: the copied host's keys are a minute old.
        let age_of_instance = |host: &HostId| {
            leaks
                .iter()
                .find(|l| &l.host == host && matches!(l.kind, LeakKind::Instance { .. }))
                .and_then(|l| l.age)
        };
        assert_eq!(age_of_instance(&killed), Some(HOUR * 2));
        assert_eq!(age_of_instance(&copied), Some(HOUR * 2));
        // Where there is no instance, the key files' age decides: the gone host's key
        // and keys are old, the young gone host's are not.
        let gone_key = leaks
            .iter()
            .find(|l| l.host == gone && matches!(l.kind, LeakKind::SshKey { .. }))
            .expect("the gone host's key");
        assert_eq!(gone_key.age, Some(HOUR * 3));
        // Left alone everywhere: the young instance (old keys), the undated instance, the
        // unreachable host, the hibernated host (its snapshot, key and keys), the healthy
        // host, and the young keys of a host that is gone.
        for host in [
            &healthy,
            &young,
            &undated,
            &unreachable,
            &hibernated,
            &gone_young,
        ] {
            assert!(leaks.iter().all(|l| &l.host != host), "{host}: {leaks:#?}");
        }
        // With a zero threshold the young instance is a leak too; the undated one is
        // still never judged.
        let seen = Seen {
            provider: &p,
            older_than: Duration::ZERO,
            now: now(),
            instances: vec![
                (&i_young, young.clone(), no_record()),
                (&i_undated, undated.clone(), no_record()),
            ],
            snapshots: &[],
            keys: &[],
            local: vec![],
        };
        let leaks = decide(seen);
        let hosts: Vec<&HostId> = leaks.iter().map(|l| &l.host).collect();
        assert_eq!(hosts, [&young], "{leaks:#?}");
        assert_eq!(leaks[0].age, Some(minute));
    }
}

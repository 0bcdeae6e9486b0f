//! The conformance suite: the behaviour every [`VpsClient`] must show.
//!
//! Each backend runs the same checks from its own tests, as `object_store`'s backends do:
//! the in-memory fake here, `vultr` against an HTTP mock, `local-vps` against Docker.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use vps_client::conformance::{ConformanceOptions, run_all};
//! use vps_client::fake::FakeVpsClient;
//!
//! let client = FakeVpsClient::new();
//! let report = run_all(&client, &ConformanceOptions::default()).await?;
//! assert!(report.skipped.is_empty(), "{report}");
//! # Ok(()) }
//! ```
//!
//! A backend's integration test adjusts [`ConformanceOptions`] to what the backend can do
//! and how fast it is (ids that look valid to it, whether snapshots finish, how long a
//! listing may lag), and may call the checks one by one to get one test per check:
//!
//! ```no_run
//! # async fn demo(client: &dyn vps_client::VpsClient) -> Result<(), vps_client::conformance::CheckFailure> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use vps_client::conformance::{self, ConformanceOptions, SnapshotSupport};
//! use vps_primitives::VpsInstanceId;
//!
//! let opts = ConformanceOptions {
//!     snapshots: SnapshotSupport::Supported { complete_within: None }, // may stay pending
//!     consistency_timeout: Duration::from_secs(5),
//!     unknown_instance_id: Arc::new(|| VpsInstanceId::parse("cb676a46-66fd-4dfb-b839-443f2e6c0b60").expect("valid")),
//!     ..ConformanceOptions::default()
//! };
//! conformance::check_unknown_ids(client, &opts).await?;
//! conformance::check_list_by_tag(client, &opts).await?;
//! # Ok(()) }
//! ```
//!
//! Every check tags what it creates with [`ConformanceOptions::run_tag`] and removes it
//! again, also when it fails; [`run_all`] finally checks that nothing with that tag is
//! left.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use vps_primitives::{
    Backoff, HostId, OsId, PlanId, RegionId, SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus,
    VpsSnapshotId,
};

use crate::{
    CreateInstanceRequest, SnapshotStatus, UserData, VpsClient, VpsClientError, WaitOptions,
    wait_until_active,
};

/// Makes an id of the backend's format that names nothing, for the "unknown id" checks.
pub type IdFactory<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// What a backend's snapshots can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotSupport {
    /// The backend has no snapshots; the snapshot check is skipped.
    Unsupported,
    /// Snapshots can be made, listed and deleted.
    Supported {
        /// Wait this long for a new snapshot to be [`SnapshotStatus::Complete`]; `None`
        /// accepts one that stays [`SnapshotStatus::Pending`] (a real cloud takes minutes).
        complete_within: Option<Duration>,
    },
}

/// How the suite talks to a backend.
#[derive(Clone)]
pub struct ConformanceOptions {
    /// The request every created instance starts from: region, plan, OS and user_data
    /// the backend accepts. The suite sets the label, adds its tags and may add an SSH key.
    pub base_request: CreateInstanceRequest,
    /// Tag put on everything the suite creates, unique per run, so parallel runs and
    /// leftovers of earlier runs do not disturb each other. Default:
    /// `mngr-conformance=<random hex>`.
    pub run_tag: Tag,
    /// Whether and how long to wait for instances to become active with an address for
    /// every port of the request. `None` skips that check (for a backend whose instances
    /// never become active, such as a mock that only records calls).
    pub wait_active: Option<WaitOptions>,
    /// What snapshots can do.
    pub snapshots: SnapshotSupport,
    /// How long the backend may take before a change shows in listings and reads (a
    /// destroyed instance still listed, a new key not yet listed).
    pub consistency_timeout: Duration,
    /// Pauses between polls while waiting for consistency or snapshots.
    pub poll: Backoff,
    /// An SSH public key (one OpenSSH line) the backend accepts for upload.
    pub ssh_public_key: String,
    /// An instance id of the backend's format that names no instance.
    pub unknown_instance_id: IdFactory<VpsInstanceId>,
    /// A snapshot id of the backend's format that names no snapshot.
    pub unknown_snapshot_id: IdFactory<VpsSnapshotId>,
    /// An SSH key id of the backend's format that names no key.
    pub unknown_ssh_key_id: IdFactory<SshKeyId>,
}

/// A public key for upload checks. Only its public half exists anywhere.
pub const SAMPLE_SSH_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34";

/// A random id shaped like a UUID (version 4), as many providers use.
pub fn random_uuid() -> String {
    let hex = HostId::generate().hex().to_owned();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn uuid_factory<T: 'static>(
    parse: fn(&str) -> Result<T, vps_primitives::InvalidValue>,
) -> IdFactory<T> {
    Arc::new(move || {
        // Hex digits and inner dashes: always a valid provider token.
        parse(&random_uuid()).expect("a UUID is a valid provider id")
    })
}

impl Default for ConformanceOptions {
    /// Vultr-like values (region `ewr`, plan `vc2-1c-1gb`, OS 2136, ports 22 and 2222, an
    /// empty cloud-config), a fresh run tag, waits of 60 s, snapshots that must complete
    /// within 60 s, UUID-shaped unknown ids.
    fn default() -> Self {
        let run = HostId::generate();
        Self {
            base_request: CreateInstanceRequest {
                label: "mngr-conformance".to_owned(),
                region: RegionId::parse("ewr").expect("valid region literal"),
                plan: PlanId::parse("vc2-1c-1gb").expect("valid plan literal"),
                os: OsId(2136),
                snapshot: None,
                user_data: UserData::new("#cloud-config\n{}\n"),
                ssh_key_ids: Vec::new(),
                tags: Vec::new(),
                ports: vec![22, 2222],
            },
            run_tag: Tag::new("mngr-conformance", &run.hex()[..16]).expect("valid tag literal"),
            wait_active: Some(WaitOptions::with_timeout(Duration::from_secs(60))),
            snapshots: SnapshotSupport::Supported {
                complete_within: Some(Duration::from_secs(60)),
            },
            consistency_timeout: Duration::from_secs(60),
            poll: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            ssh_public_key: SAMPLE_SSH_PUBLIC_KEY.to_owned(),
            unknown_instance_id: uuid_factory(VpsInstanceId::parse),
            unknown_snapshot_id: uuid_factory(VpsSnapshotId::parse),
            unknown_ssh_key_id: uuid_factory(SshKeyId::parse),
        }
    }
}

impl fmt::Debug for ConformanceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConformanceOptions")
            .field("base_request", &self.base_request)
            .field("run_tag", &self.run_tag)
            .field("wait_active", &self.wait_active)
            .field("snapshots", &self.snapshots)
            .field("consistency_timeout", &self.consistency_timeout)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// One check that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {message}")]
pub struct CheckFailure {
    /// The check's name, e.g. `create_get_destroy`.
    pub check: &'static str,
    /// What was expected and what the backend did.
    pub message: String,
}

/// Every check [`run_all`] found failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceFailures(pub Vec<CheckFailure>);

impl fmt::Display for ConformanceFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} conformance check(s) failed:", self.0.len())?;
        for failure in &self.0 {
            write!(f, "\n  - {}: {}", failure.check, failure.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConformanceFailures {}

/// What [`run_all`] did when every check passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// The checks that ran and passed.
    pub passed: Vec<&'static str>,
    /// The checks the options turned off, with the reason.
    pub skipped: Vec<(&'static str, &'static str)>,
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "passed: {}", self.passed.join(", "))?;
        for (check, why) in &self.skipped {
            write!(f, "; skipped {check} ({why})")?;
        }
        Ok(())
    }
}

/// The names of all checks, in the order [`run_all`] runs them.
pub const CHECKS: [&str; 7] = [
    "unknown_ids",
    "create_get_destroy",
    "list_by_tag",
    "wait_active",
    "ssh_keys",
    "snapshots",
    "nothing_left",
];

/// Runs every check, one after the other, and returns all failures together.
pub async fn run_all(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<ConformanceReport, ConformanceFailures> {
    let mut report = ConformanceReport::default();
    let mut failures = Vec::new();
    let mut record = |name: &'static str, result: Result<(), CheckFailure>| match result {
        Ok(()) => report.passed.push(name),
        Err(f) => failures.push(f),
    };
    record("unknown_ids", check_unknown_ids(client, options).await);
    record(
        "create_get_destroy",
        check_create_get_destroy(client, options).await,
    );
    record("list_by_tag", check_list_by_tag(client, options).await);
    let mut skipped = Vec::new();
    if options.wait_active.is_some() {
        record("wait_active", check_wait_active(client, options).await);
    } else {
        skipped.push(("wait_active", "ConformanceOptions::wait_active is None"));
    }
    record("ssh_keys", check_ssh_keys(client, options).await);
    if options.snapshots == SnapshotSupport::Unsupported {
        skipped.push(("snapshots", "the backend has no snapshots"));
    } else {
        record("snapshots", check_snapshots(client, options).await);
    }
    record("nothing_left", check_nothing_left(client, options).await);
    report.skipped = skipped;
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(ConformanceFailures(failures))
    }
}

/// Builds a failure of `check` from a message.
fn fail(check: &'static str, message: impl Into<String>) -> CheckFailure {
    CheckFailure {
        check,
        message: message.into(),
    }
}

/// Adds the context of a provider call to its error.
fn call<T>(
    check: &'static str,
    what: &str,
    result: Result<T, VpsClientError>,
) -> Result<T, CheckFailure> {
    result.map_err(|e| fail(check, format!("{what} failed: {e}")))
}

/// What a check created, removed at its end whatever happened.
#[derive(Default)]
struct Created {
    instances: Vec<VpsInstanceId>,
    snapshots: Vec<VpsSnapshotId>,
    keys: Vec<SshKeyId>,
}

impl Created {
    /// Orders an instance through `client` and records it, so that it is removed at the
    /// end of the check whatever happens; `what` names the call in a failure.
    async fn create_instance(
        &mut self,
        check: &'static str,
        client: &dyn VpsClient,
        what: &str,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, CheckFailure> {
        let id = call(check, what, client.create_instance(request).await)?;
        self.instances.push(id.clone());
        Ok(id)
    }

    /// Removes instances first: a snapshot may be in use by an instance made from it.
    async fn remove_all(&self, client: &dyn VpsClient) -> Vec<String> {
        let mut problems = Vec::new();
        for id in &self.instances {
            if let Err(e) = client.destroy_instance(id).await {
                problems.push(format!("cleanup: destroy_instance({id}) failed: {e}"));
            }
        }
        for id in &self.snapshots {
            if let Err(e) = client.delete_snapshot(id).await {
                problems.push(format!("cleanup: delete_snapshot({id}) failed: {e}"));
            }
        }
        for id in &self.keys {
            if let Err(e) = client.delete_ssh_key(id).await {
                problems.push(format!("cleanup: delete_ssh_key({id}) failed: {e}"));
            }
        }
        problems
    }
}

/// Removes what a check created, and merges the check's outcome with the cleanup's.
async fn finish(
    check: &'static str,
    client: &dyn VpsClient,
    created: Created,
    result: Result<(), CheckFailure>,
) -> Result<(), CheckFailure> {
    let problems = created.remove_all(client).await;
    match result {
        Ok(()) if problems.is_empty() => Ok(()),
        Ok(()) => Err(fail(check, problems.join("; "))),
        Err(mut f) => {
            for p in problems {
                f.message.push_str("; ");
                f.message.push_str(&p);
            }
            Err(f)
        }
    }
}

/// How far a provider's clock may be off ours when it stamps a creation time.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// The creation time of an instance made just now is present and plausible: not before
/// `before_create` and not in the future, give or take [`CLOCK_SKEW`].
fn check_created_at(
    check: &'static str,
    info: &crate::InstanceInfo,
    before_create: OffsetDateTime,
) -> Result<(), CheckFailure> {
    let Some(created_at) = info.created_at else {
        return Err(fail(
            check,
            format!("get_instance({}) has no created_at", info.id),
        ));
    };
    let now = OffsetDateTime::now_utc();
    if created_at < before_create - CLOCK_SKEW || created_at > now + CLOCK_SKEW {
        return Err(fail(
            check,
            format!(
                "created_at of {} is {created_at}, not between the create ({before_create}) and now ({now}), give or take a minute",
                info.id
            ),
        ));
    }
    Ok(())
}

/// Polls `attempt` until it yields a value, for at most
/// [`ConformanceOptions::consistency_timeout`] (at least once). `Ok(Err(seen))` means
/// "not yet, and this is what was seen"; `Err` ends the wait at once.
async fn eventually<T, F, Fut>(
    check: &'static str,
    options: &ConformanceOptions,
    what: &str,
    mut attempt: F,
) -> Result<T, CheckFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, CheckFailure>>,
{
    let deadline = Instant::now() + options.consistency_timeout;
    let mut delays = options.poll.delays();
    loop {
        let seen = match attempt().await? {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        let Some(pause) = delays.next_within(deadline.saturating_duration_since(Instant::now()))
        else {
            return Err(fail(
                check,
                format!(
                    "{what}: still not so after {:.1}s; last seen: {seen}",
                    options.consistency_timeout.as_secs_f64()
                ),
            ));
        };
        tokio::time::sleep(pause).await;
    }
}

impl ConformanceOptions {
    /// A name for something a check creates: `<base label>-<run tag value>-<suffix>`.
    fn name(&self, suffix: &str) -> String {
        format!(
            "{}-{}-{suffix}",
            self.base_request.label,
            self.run_tag.value()
        )
    }

    /// The base request with a label, the run tag and `extra` tags.
    fn request(&self, suffix: &str, extra: &[Tag]) -> CreateInstanceRequest {
        let mut request = self.base_request.clone();
        request.label = self.name(suffix);
        request.tags.push(self.run_tag.clone());
        request.tags.extend(extra.iter().cloned());
        request
    }
}

/// [`wait_until_active`] on the request's first port (22 if it names none), with a probe
/// that always succeeds: the suite tests the provider's API, not what runs on the VPS.
/// `what` names the wait in a failure.
async fn wait_until_up(
    check: &'static str,
    client: &dyn VpsClient,
    id: &VpsInstanceId,
    request: &CreateInstanceRequest,
    wait: &WaitOptions,
    what: &str,
) -> Result<(), CheckFailure> {
    let port = request.ports.first().copied().unwrap_or(22);
    let reachable = |_addr: SocketAddr| async { Ok::<(), std::convert::Infallible>(()) };
    call(
        check,
        what,
        wait_until_active(client, id, port, wait, reachable).await,
    )?;
    Ok(())
}

fn tag(check: &'static str, key: &str, value: &str) -> Result<Tag, CheckFailure> {
    Tag::new(key, value).map_err(|e| fail(check, format!("could not build a tag: {e}")))
}

fn expect_not_found<T: fmt::Debug>(
    check: &'static str,
    what: &str,
    result: Result<T, VpsClientError>,
) -> Result<(), CheckFailure> {
    match result {
        Err(VpsClientError::NotFound { .. }) => Ok(()),
        Err(e) => Err(fail(
            check,
            format!("{what}: expected VpsClientError::NotFound, got the error: {e}"),
        )),
        Ok(v) => Err(fail(
            check,
            format!("{what}: expected VpsClientError::NotFound, got Ok({v:?})"),
        )),
    }
}

/// Unknown ids: reads fail with [`VpsClientError::NotFound`]; deletes succeed; a snapshot
/// of an unknown instance is refused (not as a transient error).
pub async fn check_unknown_ids(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "unknown_ids";
    let instance = (options.unknown_instance_id)();
    expect_not_found(
        CHECK,
        &format!("get_instance({instance})"),
        client.get_instance(&instance).await,
    )?;
    expect_not_found(
        CHECK,
        &format!("instance_status({instance})"),
        client.instance_status(&instance).await,
    )?;
    expect_not_found(
        CHECK,
        &format!("socket_addr({instance}, 22)"),
        client.socket_addr(&instance, 22).await,
    )?;
    call(
        CHECK,
        &format!("destroy_instance({instance}) of an unknown instance (must succeed)"),
        client.destroy_instance(&instance).await,
    )?;
    let key = (options.unknown_ssh_key_id)();
    call(
        CHECK,
        &format!("delete_ssh_key({key}) of an unknown key (must succeed)"),
        client.delete_ssh_key(&key).await,
    )?;
    if options.snapshots != SnapshotSupport::Unsupported {
        let snapshot = (options.unknown_snapshot_id)();
        call(
            CHECK,
            &format!("delete_snapshot({snapshot}) of an unknown snapshot (must succeed)"),
            client.delete_snapshot(&snapshot).await,
        )?;
        match client.create_snapshot(&instance, "mngr-conformance").await {
            Ok(id) => {
                let _ = client.delete_snapshot(&id).await;
                return Err(fail(
                    CHECK,
                    format!("create_snapshot of unknown instance {instance} succeeded ({id})"),
                ));
            }
            Err(e) if e.is_transient() => {
                return Err(fail(
                    CHECK,
                    format!(
                        "create_snapshot of unknown instance {instance}: expected a permanent error, got a transient one: {e}"
                    ),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Create (with an SSH key), get (with a plausible `created_at`), status, listed by tag,
/// destroy, destroy again, then gone from reads and listings.
pub async fn check_create_get_destroy(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "create_get_destroy";
    let mut created = Created::default();
    let result = create_get_destroy(CHECK, client, options, &mut created).await;
    finish(CHECK, client, created, result).await
}

async fn create_get_destroy(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    let key_name = options.name("cgd-key");
    let key = call(
        check,
        "upload_ssh_key",
        client
            .upload_ssh_key(&key_name, &options.ssh_public_key)
            .await,
    )?;
    created.keys.push(key.clone());

    let mut request = options.request("cgd", &[tag(check, "mngr-conformance-check", "cgd")?]);
    request.ssh_key_ids.push(key);
    let before_create = OffsetDateTime::now_utc();
    let id = created
        .create_instance(check, client, "create_instance", &request)
        .await?;

    let info = call(
        check,
        &format!("get_instance({id})"),
        client.get_instance(&id).await,
    )?;
    if info.id != id {
        return Err(fail(
            check,
            format!("get_instance({id}) returned id {}", info.id),
        ));
    }
    if info.label != request.label {
        return Err(fail(
            check,
            format!("label: created {:?}, got {:?}", request.label, info.label),
        ));
    }
    if let Some(missing) = request.tags.iter().find(|t| !info.tags.contains(t)) {
        return Err(fail(
            check,
            format!("tag {missing} given at create is missing: {:?}", info.tags),
        ));
    }
    check_created_at(check, &info, before_create)?;
    let fresh = [VpsInstanceStatus::Pending, VpsInstanceStatus::Active];
    if !fresh.contains(&info.status) {
        return Err(fail(
            check,
            format!(
                "a new instance must be PENDING or ACTIVE, got {}",
                info.status
            ),
        ));
    }
    let status = call(
        check,
        &format!("instance_status({id})"),
        client.instance_status(&id).await,
    )?;
    if !fresh.contains(&status) {
        return Err(fail(
            check,
            format!("instance_status of a new instance must be PENDING or ACTIVE, got {status}"),
        ));
    }
    eventually(
        check,
        options,
        &format!("the new instance {id} is listed under {}", options.run_tag),
        || async {
            let listed = call(
                check,
                "list_instances",
                client.list_instances(Some(&options.run_tag)).await,
            )?;
            Ok(if listed.iter().any(|i| i.id == id) {
                Ok(())
            } else {
                Err(format!("{} other instance(s)", listed.len()))
            })
        },
    )
    .await?;

    call(
        check,
        &format!("destroy_instance({id})"),
        client.destroy_instance(&id).await,
    )?;
    call(
        check,
        &format!("destroy_instance({id}) a second time (already gone must succeed)"),
        client.destroy_instance(&id).await,
    )?;
    gone_after_destroy(check, client, options, &id).await?;
    eventually(
        check,
        options,
        &format!("the destroyed instance {id} is no longer listed"),
        || async {
            let listed = call(
                check,
                "list_instances",
                client.list_instances(Some(&options.run_tag)).await,
            )?;
            Ok(match listed.iter().find(|i| i.id == id) {
                None => Ok(()),
                Some(i) => Err(format!("listed with status {}", i.status)),
            })
        },
    )
    .await
}

/// Waits until `get_instance` of a destroyed instance fails with NotFound (it may read
/// as DESTROYING for a while).
async fn gone_after_destroy(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    id: &VpsInstanceId,
) -> Result<(), CheckFailure> {
    eventually(
        check,
        options,
        &format!("get_instance({id}) after destroy fails with NotFound"),
        || async {
            match client.get_instance(id).await {
                Err(VpsClientError::NotFound { .. }) => Ok(Ok(())),
                Ok(info) if info.status == VpsInstanceStatus::Destroying => {
                    Ok(Err("status DESTROYING".to_owned()))
                }
                Ok(info) => Err(fail(
                    check,
                    format!(
                        "get_instance({id}) after destroy: status {}, expected NotFound (or DESTROYING for a while)",
                        info.status
                    ),
                )),
                Err(e) if e.is_transient() => Ok(Err(format!("error: {e}"))),
                Err(e) => Err(fail(
                    check,
                    format!("get_instance({id}) after destroy: expected NotFound, got: {e}"),
                )),
            }
        },
    )
    .await
}

/// `list_instances(Some(tag))` returns exactly the instances that carry the tag;
/// `list_instances(None)` returns them all; an unused tag lists nothing.
pub async fn check_list_by_tag(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "list_by_tag";
    let mut created = Created::default();
    let result = list_by_tag(CHECK, client, options, &mut created).await;
    finish(CHECK, client, created, result).await
}

async fn list_by_tag(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    let run = options.run_tag.value();
    let group_a = tag(check, "mngr-conformance-group", &format!("{run}-a"))?;
    let group_b = tag(check, "mngr-conformance-group", &format!("{run}-b"))?;
    let unused = tag(check, "mngr-conformance-group", &format!("{run}-unused"))?;
    let a = created
        .create_instance(
            check,
            client,
            "create_instance (a)",
            &options.request("list-a", std::slice::from_ref(&group_a)),
        )
        .await?;
    let b = created
        .create_instance(
            check,
            client,
            "create_instance (b)",
            &options.request("list-b", std::slice::from_ref(&group_b)),
        )
        .await?;

    eventually(
        check,
        options,
        "each group tag lists exactly its instance, and the run tag and no tag list both",
        || async {
            let by_a = call(check, "list_instances(a)", client.list_instances(Some(&group_a)).await)?;
            let by_b = call(check, "list_instances(b)", client.list_instances(Some(&group_b)).await)?;
            let by_run = call(
                check,
                "list_instances(run tag)",
                client.list_instances(Some(&options.run_tag)).await,
            )?;
            let all = call(check, "list_instances(None)", client.list_instances(None).await)?;
            for (tag, listed) in [(&group_a, &by_a), (&group_b, &by_b), (&options.run_tag, &by_run)] {
                if let Some(wrong) = listed.iter().find(|i| !i.tags.contains(tag)) {
                    return Err(fail(
                        check,
                        format!(
                            "list_instances({tag}) returned {} which does not carry that tag (tags: {:?})",
                            wrong.id, wrong.tags
                        ),
                    ));
                }
            }
            let ids = |v: &Vec<crate::InstanceInfo>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
            let (ia, ib, ir, iall) = (ids(&by_a), ids(&by_b), ids(&by_run), ids(&all));
            let ok = ia == [a.clone()]
                && ib == [b.clone()]
                && ir.contains(&a)
                && ir.contains(&b)
                && iall.contains(&a)
                && iall.contains(&b);
            Ok(if ok {
                Ok(())
            } else {
                Err(format!(
                    "by group a: {ia:?}, by group b: {ib:?}, by run tag: {ir:?}, all: {} instance(s)",
                    iall.len()
                ))
            })
        },
    )
    .await?;
    let by_unused = call(
        check,
        "list_instances(unused tag)",
        client.list_instances(Some(&unused)).await,
    )?;
    if !by_unused.is_empty() {
        return Err(fail(
            check,
            format!(
                "list_instances({unused}) of a tag nothing carries returned {} instance(s)",
                by_unused.len()
            ),
        ));
    }
    Ok(())
}

/// A new instance becomes active, and then every port of the request has a socket address.
pub async fn check_wait_active(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "wait_active";
    let Some(wait) = options.wait_active else {
        return Ok(());
    };
    let mut created = Created::default();
    let result = wait_active(CHECK, client, options, &wait, &mut created).await;
    finish(CHECK, client, created, result).await
}

async fn wait_active(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    wait: &WaitOptions,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    let request = options.request("active", &[]);
    let id = created
        .create_instance(check, client, "create_instance", &request)
        .await?;
    wait_until_up(
        check,
        client,
        &id,
        &request,
        wait,
        &format!("wait_until_active({id})"),
    )
    .await?;
    let info = call(
        check,
        &format!("get_instance({id})"),
        client.get_instance(&id).await,
    )?;
    if info.status != VpsInstanceStatus::Active {
        return Err(fail(
            check,
            format!("after wait_until_active, get_instance says {}", info.status),
        ));
    }
    let mut ports = request.ports.clone();
    ports.push(22);
    for port in ports {
        let asked = call(
            check,
            &format!("socket_addr({id}, {port}) of an active instance"),
            client.socket_addr(&id, port).await,
        )?;
        if info.addr(port) != Some(asked) {
            return Err(fail(
                check,
                format!(
                    "get_instance's InstanceInfo::addr({port}) is {:?}, socket_addr says {asked}",
                    info.addr(port)
                ),
            ));
        }
    }
    Ok(())
}

/// Upload, list (name and key as given), delete, delete again, gone from the list.
pub async fn check_ssh_keys(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "ssh_keys";
    let mut created = Created::default();
    let result = ssh_keys(CHECK, client, options, &mut created).await;
    finish(CHECK, client, created, result).await
}

/// The key type and base64 blob of an OpenSSH public key line, without the comment.
fn key_material(line: &str) -> Vec<&str> {
    line.split_whitespace().take(2).collect()
}

async fn ssh_keys(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    let name = options.name("key");
    let id = call(
        check,
        "upload_ssh_key",
        client.upload_ssh_key(&name, &options.ssh_public_key).await,
    )?;
    created.keys.push(id.clone());
    let wanted = key_material(&options.ssh_public_key);
    eventually(check, options, &format!("key {id} is listed"), || async {
        let keys = call(check, "list_ssh_keys", client.list_ssh_keys().await)?;
        match keys.iter().find(|k| k.id == id) {
            None => Ok(Err(format!("{} other key(s)", keys.len()))),
            Some(k) if k.name != name => Err(fail(
                check,
                format!(
                    "key {id} listed with name {:?}, uploaded as {name:?}",
                    k.name
                ),
            )),
            Some(k) if key_material(&k.public_key) != wanted => Err(fail(
                check,
                format!(
                    "key {id} listed with public key {:?}, uploaded {:?}",
                    k.public_key, options.ssh_public_key
                ),
            )),
            Some(_) => Ok(Ok(())),
        }
    })
    .await?;
    call(
        check,
        &format!("delete_ssh_key({id})"),
        client.delete_ssh_key(&id).await,
    )?;
    call(
        check,
        &format!("delete_ssh_key({id}) a second time (already gone must succeed)"),
        client.delete_ssh_key(&id).await,
    )?;
    eventually(
        check,
        options,
        &format!("deleted key {id} is no longer listed"),
        || async {
            let keys = call(check, "list_ssh_keys", client.list_ssh_keys().await)?;
            Ok(if keys.iter().any(|k| k.id == id) {
                Err("still listed".to_owned())
            } else {
                Ok(())
            })
        },
    )
    .await
}

/// Snapshots, and instances made from them: a create from an unknown snapshot id fails
/// (with [`VpsClientError::NotFound`] or a 4xx [`VpsClientError::Api`]) and leaves no
/// instance; snapshot an instance, list it with its description; when
/// [`SnapshotSupport::Supported::complete_within`] is set, wait until it is complete, then
/// create an instance from it (through [`CreateInstanceRequest::snapshot`]), which comes
/// up (when [`ConformanceOptions::wait_active`] is set) and is destroyed again; delete the
/// snapshot twice, gone from the list.
pub async fn check_snapshots(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "snapshots";
    let SnapshotSupport::Supported { complete_within } = options.snapshots else {
        return Ok(());
    };
    let mut created = Created::default();
    let result = snapshots(CHECK, client, options, complete_within, &mut created).await;
    finish(CHECK, client, created, result).await
}

async fn snapshots(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    complete_within: Option<Duration>,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    refuse_unknown_snapshot(check, client, options, created).await?;
    let request = options.request("snap", &[]);
    let instance = created
        .create_instance(check, client, "create_instance", &request)
        .await?;
    if let Some(wait) = &options.wait_active {
        wait_until_up(
            check,
            client,
            &instance,
            &request,
            wait,
            &format!("wait_until_active({instance})"),
        )
        .await?;
    }
    let description = options.name("snapshot");
    let id = call(
        check,
        &format!("create_snapshot({instance})"),
        client.create_snapshot(&instance, &description).await,
    )?;
    created.snapshots.push(id.clone());
    eventually(
        check,
        options,
        &format!("snapshot {id} is listed"),
        || async {
            let listed = call(check, "list_snapshots", client.list_snapshots().await)?;
            match listed.iter().find(|s| s.id == id) {
                None => Ok(Err(format!("{} other snapshot(s)", listed.len()))),
                Some(s) if s.description != description => Err(fail(
                    check,
                    format!(
                        "snapshot {id} listed with description {:?}, created with {description:?}",
                        s.description
                    ),
                )),
                Some(s) if s.status == SnapshotStatus::Unknown => Err(fail(
                    check,
                    format!(
                        "snapshot {id} listed with status Unknown; expected Pending or Complete"
                    ),
                )),
                Some(_) => Ok(Ok(())),
            }
        },
    )
    .await?;
    if let Some(within) = complete_within {
        let completion = ConformanceOptions {
            consistency_timeout: within,
            ..options.clone()
        };
        eventually(
            check,
            &completion,
            &format!("snapshot {id} is complete"),
            || async {
                let listed = call(check, "list_snapshots", client.list_snapshots().await)?;
                Ok(match listed.iter().find(|s| s.id == id) {
                    Some(s) if s.status == SnapshotStatus::Complete => Ok(()),
                    Some(s) => Err(format!("status {:?}", s.status)),
                    None => Err("not listed".to_owned()),
                })
            },
        )
        .await?;
        create_from_snapshot(check, client, options, &id, created).await?;
    }
    call(
        check,
        &format!("delete_snapshot({id})"),
        client.delete_snapshot(&id).await,
    )?;
    call(
        check,
        &format!("delete_snapshot({id}) a second time (already gone must succeed)"),
        client.delete_snapshot(&id).await,
    )?;
    eventually(
        check,
        options,
        &format!("deleted snapshot {id} is no longer listed"),
        || async {
            let listed = call(check, "list_snapshots", client.list_snapshots().await)?;
            Ok(if listed.iter().any(|s| s.id == id) {
                Err("still listed".to_owned())
            } else {
                Ok(())
            })
        },
    )
    .await
}

/// A create from a snapshot id that names nothing is refused, and orders nothing.
async fn refuse_unknown_snapshot(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    let unknown = (options.unknown_snapshot_id)();
    let marker = tag(
        check,
        "mngr-conformance-check",
        &format!("{}-snap-unknown", options.run_tag.value()),
    )?;
    let mut request = options.request("snap-unknown", std::slice::from_ref(&marker));
    request.snapshot = Some(unknown.clone());
    match client.create_instance(&request).await {
        Ok(id) => {
            created.instances.push(id.clone());
            return Err(fail(
                check,
                format!("create_instance from unknown snapshot {unknown} succeeded ({id})"),
            ));
        }
        Err(VpsClientError::NotFound { .. }) => {}
        Err(VpsClientError::Api { status, .. }) if (400..500).contains(&status) => {}
        Err(e) => {
            return Err(fail(
                check,
                format!(
                    "create_instance from unknown snapshot {unknown}: expected NotFound or a 4xx API error, got: {e}"
                ),
            ));
        }
    }
    let left = call(
        check,
        &format!("list_instances({marker})"),
        client.list_instances(Some(&marker)).await,
    )?;
    if !left.is_empty() {
        created.instances.extend(left.iter().map(|i| i.id.clone()));
        return Err(fail(
            check,
            format!(
                "the refused create from unknown snapshot {unknown} left instance(s) behind: {:?}",
                left.iter().map(|i| i.id.to_string()).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(())
}

/// An instance made from complete snapshot `snapshot` comes up with its request's label
/// and tags, and is destroyed again.
async fn create_from_snapshot(
    check: &'static str,
    client: &dyn VpsClient,
    options: &ConformanceOptions,
    snapshot: &VpsSnapshotId,
    created: &mut Created,
) -> Result<(), CheckFailure> {
    let mut request = options.request(
        "snap-copy",
        &[tag(check, "mngr-conformance-check", "snap-copy")?],
    );
    request.snapshot = Some(snapshot.clone());
    let id = created
        .create_instance(
            check,
            client,
            &format!("create_instance from snapshot {snapshot}"),
            &request,
        )
        .await?;
    if let Some(wait) = &options.wait_active {
        wait_until_up(
            check,
            client,
            &id,
            &request,
            wait,
            &format!("wait_until_active({id}), made from snapshot {snapshot}"),
        )
        .await?;
    }
    let info = call(
        check,
        &format!("get_instance({id})"),
        client.get_instance(&id).await,
    )?;
    if info.label != request.label {
        return Err(fail(
            check,
            format!(
                "instance {id} made from snapshot {snapshot}: label {:?}, created as {:?}",
                info.label, request.label
            ),
        ));
    }
    if let Some(missing) = request.tags.iter().find(|t| !info.tags.contains(t)) {
        return Err(fail(
            check,
            format!(
                "instance {id} made from snapshot {snapshot}: tag {missing} given at create is missing: {:?}",
                info.tags
            ),
        ));
    }
    call(
        check,
        &format!("destroy_instance({id}), made from snapshot {snapshot}"),
        client.destroy_instance(&id).await,
    )?;
    gone_after_destroy(check, client, options, &id).await
}

/// Nothing carrying the run tag is left (no instance, no key or snapshot named after the
/// run): the other checks cleaned up after themselves. Run it last.
pub async fn check_nothing_left(
    client: &dyn VpsClient,
    options: &ConformanceOptions,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "nothing_left";
    let prefix = options.name("");
    eventually(
        CHECK,
        options,
        &format!("no instance tagged {} and no key named {prefix}* is left", options.run_tag),
        || async {
            let instances = call(
                CHECK,
                "list_instances(run tag)",
                client.list_instances(Some(&options.run_tag)).await,
            )?;
            let keys = call(CHECK, "list_ssh_keys", client.list_ssh_keys().await)?;
            let snapshots = if options.snapshots == SnapshotSupport::Unsupported {
                Vec::new()
            } else {
                call(CHECK, "list_snapshots", client.list_snapshots().await)?
            };
            let left_snapshots: Vec<String> = snapshots
                .iter()
                .filter(|s| s.description.starts_with(&prefix))
                .map(|s| format!("{} ({})", s.id, s.description))
                .collect();
            let left_instances: Vec<String> = instances
                .iter()
                .filter(|i| i.status != VpsInstanceStatus::Destroying)
                .map(|i| format!("{} ({})", i.id, i.status))
                .collect();
            let left_keys: Vec<String> = keys
                .iter()
                .filter(|k| k.name.starts_with(&prefix))
                .map(|k| format!("{} ({})", k.id, k.name))
                .collect();
            Ok(
                if left_instances.is_empty() && left_keys.is_empty() && left_snapshots.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "instances: {left_instances:?}, keys: {left_keys:?}, snapshots: {left_snapshots:?}"
                    ))
                },
            )
        },
    )
    .await
}

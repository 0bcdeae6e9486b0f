//! [`FakeVpsClient`]: an in-memory provider with fault injection, for tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId};

use crate::{
    CreateInstanceRequest, InstanceInfo, SnapshotInfo, SnapshotStatus, SshKeyInfo, UserData,
    VpsClient, VpsClientError,
};

/// One method of [`VpsClient`], for fault injection and call counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Method {
    /// [`VpsClient::create_instance`]
    CreateInstance,
    /// [`VpsClient::destroy_instance`]
    DestroyInstance,
    /// [`VpsClient::get_instance`]
    GetInstance,
    /// [`VpsClient::instance_status`]
    InstanceStatus,
    /// [`VpsClient::socket_addr`]
    SocketAddr,
    /// [`VpsClient::list_instances`]
    ListInstances,
    /// [`VpsClient::create_snapshot`]
    CreateSnapshot,
    /// [`VpsClient::delete_snapshot`]
    DeleteSnapshot,
    /// [`VpsClient::list_snapshots`]
    ListSnapshots,
    /// [`VpsClient::upload_ssh_key`]
    UploadSshKey,
    /// [`VpsClient::delete_ssh_key`]
    DeleteSshKey,
    /// [`VpsClient::list_ssh_keys`]
    ListSshKeys,
}

impl Method {
    /// The trait method's name, e.g. `create_instance`.
    pub fn name(self) -> &'static str {
        match self {
            Method::CreateInstance => "create_instance",
            Method::DestroyInstance => "destroy_instance",
            Method::GetInstance => "get_instance",
            Method::InstanceStatus => "instance_status",
            Method::SocketAddr => "socket_addr",
            Method::ListInstances => "list_instances",
            Method::CreateSnapshot => "create_snapshot",
            Method::DeleteSnapshot => "delete_snapshot",
            Method::ListSnapshots => "list_snapshots",
            Method::UploadSshKey => "upload_ssh_key",
            Method::DeleteSshKey => "delete_ssh_key",
            Method::ListSshKeys => "list_ssh_keys",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error an injected fault returns, and whether the call acts before it fails.
#[derive(Clone)]
pub struct Fault {
    make: Arc<dyn Fn(Method) -> VpsClientError + Send + Sync>,
    after_acting: bool,
}

impl Fault {
    /// A [`VpsClientError::Transient`] error, as after a provider's 503 or a dropped
    /// connection.
    pub fn transient() -> Self {
        Self::custom(|m| VpsClientError::Transient {
            message: format!("injected transient fault in {m}"),
        })
    }

    /// A [`VpsClientError::OutcomeUnknown`] error, as after a create whose connection
    /// dropped once it was sent. By itself the call does nothing (the order was lost);
    /// add [`Fault::after_acting`] for an order that went through.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let request = vps_client::conformance::ConformanceOptions::default().base_request;
    /// use vps_client::{VpsClient, VpsClientError};
    /// use vps_client::fake::{Fault, FakeVpsClient, Method};
    ///
    /// let fake = FakeVpsClient::new();
    /// fake.fail_next(Method::CreateInstance, 1, Fault::outcome_unknown().after_acting());
    /// let err = fake.create_instance(&request).await.expect_err("injected");
    /// assert!(matches!(err, VpsClientError::OutcomeUnknown { .. }) && !err.is_transient());
    /// assert_eq!(fake.instance_count(), 1, "the instance was ordered all the same");
    /// # }
    /// ```
    pub fn outcome_unknown() -> Self {
        Self::custom(|m| VpsClientError::OutcomeUnknown {
            message: format!("injected fault in {m}: the connection dropped after sending"),
        })
    }

    /// A [`VpsClientError::Api`] error with this status.
    pub fn api(status: u16) -> Self {
        Self::custom(move |m| VpsClientError::Api {
            status,
            message: format!("injected API fault in {m}"),
        })
    }

    /// Any error the closure makes.
    pub fn custom(make: impl Fn(Method) -> VpsClientError + Send + Sync + 'static) -> Self {
        Self {
            make: Arc::new(make),
            after_acting: false,
        }
    }

    /// The same error, returned after the call did its work (created the instance,
    /// deleted the key, …), as when the provider acted and its answer was lost. A call
    /// that fails by itself returns its own error instead.
    pub fn after_acting(self) -> Self {
        Self {
            after_acting: true,
            ..self
        }
    }

    fn error(&self, method: Method) -> VpsClientError {
        (self.make)(method)
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("after_acting", &self.after_acting)
            .finish_non_exhaustive()
    }
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// What [`VpsClient::provider_kind`] returns.
    pub provider_kind: String,
    /// A new instance reads as [`VpsInstanceStatus::Pending`] (without an address) this
    /// many times (through `get_instance`, `instance_status` or `list_instances`), then as
    /// [`VpsInstanceStatus::Active`].
    pub reads_until_active: u32,
    /// A new snapshot is listed as [`SnapshotStatus::Pending`] this many times, then as
    /// [`SnapshotStatus::Complete`].
    pub lists_until_snapshot_complete: u32,
}

impl Default for FakeOptions {
    /// Kind `fake`; an instance is pending for two reads; a snapshot for one listing.
    fn default() -> Self {
        Self {
            provider_kind: "fake".to_owned(),
            reads_until_active: 2,
            lists_until_snapshot_complete: 1,
        }
    }
}

struct FakeInstance {
    request: CreateInstanceRequest,
    created_at: OffsetDateTime,
    status: VpsInstanceStatus,
    address: IpAddr,
    reads: u32,
    port_overrides: HashMap<u16, SocketAddr>,
}

struct FakeSnapshot {
    info: SnapshotInfo,
    lists: u32,
}

#[derive(Default)]
struct State {
    next_id: u64,
    instances: BTreeMap<VpsInstanceId, FakeInstance>,
    snapshots: BTreeMap<VpsSnapshotId, FakeSnapshot>,
    keys: BTreeMap<SshKeyId, SshKeyInfo>,
    calls: HashMap<Method, u32>,
    /// Fail the call with this 1-based number (counted since the client was made).
    fail_at: HashMap<(Method, u32), Fault>,
    /// Fail this many of the next calls.
    fail_next: HashMap<Method, (u32, Fault)>,
    delays: HashMap<Method, Duration>,
}

/// An in-memory [`VpsClient`] with fault injection. Passes the conformance suite.
///
/// Instances are pending for a few reads, then active at an address from
/// 198.51.100.0/24 (a documentation range nothing answers on) with every port mapped to
/// itself; [`FakeVpsClient::set_socket_addr`] points a port somewhere real.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), vps_client::VpsClientError> {
/// use vps_client::VpsClient;
/// use vps_client::fake::{Fault, FakeVpsClient, Method};
///
/// let fake = FakeVpsClient::new();
/// fake.fail_next(Method::ListSshKeys, 1, Fault::transient());
/// assert!(fake.list_ssh_keys().await.is_err_and(|e| e.is_transient()));
/// assert!(fake.list_ssh_keys().await?.is_empty());
/// assert_eq!(fake.calls(Method::ListSshKeys), 2);
/// # Ok(()) }
/// ```
pub struct FakeVpsClient {
    options: FakeOptions,
    state: Mutex<State>,
}

impl Default for FakeVpsClient {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FakeVpsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeVpsClient")
            .field("options", &self.options)
            .field("instances", &state.instances.len())
            .field("snapshots", &state.snapshots.len())
            .field("ssh_keys", &state.keys.len())
            .finish_non_exhaustive()
    }
}

impl FakeVpsClient {
    /// A fake with [`FakeOptions::default`].
    pub fn new() -> Self {
        Self::with_options(FakeOptions::default())
    }

    /// A fake that behaves as `options` say.
    pub fn with_options(options: FakeOptions) -> Self {
        Self {
            options,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (every mutation is a
        // single insert or remove), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes call number `nth` (1-based, counted since the fake was made, see
    /// [`FakeVpsClient::calls`]) of `method` fail with `fault`.
    pub fn fail_call(&self, method: Method, nth: u32, fault: Fault) {
        self.lock().fail_at.insert((method, nth), fault);
    }

    /// Makes the next `count` calls of `method` fail with `fault`.
    pub fn fail_next(&self, method: Method, count: u32, fault: Fault) {
        self.lock().fail_next.insert(method, (count, fault));
    }

    /// Makes every later call of `method` take `delay` longer (before it does anything).
    pub fn set_delay(&self, method: Method, delay: Duration) {
        self.lock().delays.insert(method, delay);
    }

    /// Removes every injected fault and delay.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.fail_at.clear();
        state.fail_next.clear();
        state.delays.clear();
    }

    /// How many times `method` was called, failed calls included.
    pub fn calls(&self, method: Method) -> u32 {
        self.lock().calls.get(&method).copied().unwrap_or(0)
    }

    /// The request an instance was created from, while it exists.
    pub fn instance_request(&self, id: &VpsInstanceId) -> Option<CreateInstanceRequest> {
        self.lock().instances.get(id).map(|i| i.request.clone())
    }

    /// The user_data an instance was created with, while it exists.
    pub fn instance_user_data(&self, id: &VpsInstanceId) -> Option<UserData> {
        self.lock()
            .instances
            .get(id)
            .map(|i| i.request.user_data.clone())
    }

    /// How many instances exist.
    pub fn instance_count(&self) -> usize {
        self.lock().instances.len()
    }

    /// Sets an instance's status, as if it changed at the provider; `false` if it does not
    /// exist. Setting [`VpsInstanceStatus::Active`] ends its pending reads; setting
    /// [`VpsInstanceStatus::Pending`] starts them again (as after a reboot).
    pub fn set_status(&self, id: &VpsInstanceId, status: VpsInstanceStatus) -> bool {
        let reads = self.options.reads_until_active;
        match self.lock().instances.get_mut(id) {
            Some(instance) => {
                instance.status = status;
                match status {
                    VpsInstanceStatus::Active => instance.reads = instance.reads.max(reads),
                    VpsInstanceStatus::Pending => instance.reads = 0,
                    _ => {}
                }
                true
            }
            None => false,
        }
    }

    /// Makes [`VpsClient::socket_addr`] of `port` of instance `id` return `addr` (e.g. a
    /// listener of the test); `false` if the instance does not exist.
    pub fn set_socket_addr(&self, id: &VpsInstanceId, port: u16, addr: SocketAddr) -> bool {
        match self.lock().instances.get_mut(id) {
            Some(instance) => {
                instance.port_overrides.insert(port, addr);
                true
            }
            None => false,
        }
    }

    /// Removes an instance behind the client's back, as if someone deleted it in the
    /// provider's console; `false` if it did not exist.
    pub fn vanish(&self, id: &VpsInstanceId) -> bool {
        self.lock().instances.remove(id).is_some()
    }

    /// Counts the call, applies its delay and takes the fault injected for it, if any.
    async fn enter(&self, method: Method) -> Option<Fault> {
        let (delay, fault) = {
            let mut state = self.lock();
            let n = {
                let calls = state.calls.entry(method).or_insert(0);
                *calls += 1;
                *calls
            };
            let mut fault = state.fail_at.remove(&(method, n));
            if fault.is_none()
                && let Some((left, f)) = state.fail_next.get_mut(&method)
                && *left > 0
            {
                *left -= 1;
                fault = Some(f.clone());
            }
            (state.delays.get(&method).copied(), fault)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        fault
    }

    /// One call of `method`: counted and delayed, then `op` runs unless a fault strikes
    /// first; a fault injected [after acting](Fault::after_acting) replaces its success.
    async fn call<T>(
        &self,
        method: Method,
        op: impl FnOnce() -> Result<T, VpsClientError>,
    ) -> Result<T, VpsClientError> {
        match self.enter(method).await {
            None => op(),
            Some(fault) if fault.after_acting => op().and(Err(fault.error(method))),
            Some(fault) => Err(fault.error(method)),
        }
    }

    fn next_id(state: &mut State, prefix: &str) -> String {
        state.next_id += 1;
        format!("{prefix}{:08}", state.next_id)
    }

    /// Reads an instance, advancing it from pending to active.
    fn read(&self, instance: &mut FakeInstance, id: &VpsInstanceId) -> InstanceInfo {
        if instance.status == VpsInstanceStatus::Pending {
            if instance.reads >= self.options.reads_until_active {
                instance.status = VpsInstanceStatus::Active;
            } else {
                instance.reads += 1;
            }
        }
        let has_address = instance.status != VpsInstanceStatus::Pending;
        InstanceInfo {
            id: id.clone(),
            label: instance.request.label.clone(),
            status: instance.status,
            tags: instance.request.tags.clone(),
            address: has_address.then_some(instance.address),
            // Ports redirected by a test (to a real sshd) are published elsewhere; with
            // any, every port of the request is listed, as a local VPS lists them.
            published: (has_address && !instance.port_overrides.is_empty()).then(|| {
                let mut ports = instance.request.ports.clone();
                ports.push(22);
                ports.sort_unstable();
                ports.dedup();
                ports
                    .into_iter()
                    .map(|p| {
                        let at = instance.port_overrides.get(&p).copied();
                        (p, at.unwrap_or(SocketAddr::new(instance.address, p)))
                    })
                    .collect()
            }),
            created_at: Some(instance.created_at),
        }
    }

    fn not_found(kind: &'static str, id: &impl fmt::Display) -> VpsClientError {
        VpsClientError::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

fn invalid_id(kind: &str, e: vps_primitives::InvalidValue) -> VpsClientError {
    VpsClientError::InvalidResponse(format!("the fake made an invalid {kind} id: {e}"))
}

#[async_trait]
impl VpsClient for FakeVpsClient {
    fn provider_kind(&self) -> &str {
        &self.options.provider_kind
    }

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError> {
        self.call(Method::CreateInstance, || {
            if request.label.trim().is_empty() {
                return Err(VpsClientError::Api {
                    status: 400,
                    message: "label must not be empty".to_owned(),
                });
            }
            let mut state = self.lock();
            if let Some(missing) = request
                .ssh_key_ids
                .iter()
                .find(|k| !state.keys.contains_key(*k))
            {
                return Err(VpsClientError::Api {
                    status: 400,
                    message: format!("unknown SSH key id {missing}"),
                });
            }
            if let Some(snapshot) = &request.snapshot
                && !state.snapshots.contains_key(snapshot)
            {
                return Err(Self::not_found("snapshot", snapshot));
            }
            let raw = Self::next_id(&mut state, "fake-i-");
            let id = VpsInstanceId::parse(&raw).map_err(|e| invalid_id("instance", e))?;
            let last = (state.next_id % 250) as u8 + 1;
            state.instances.insert(
                id.clone(),
                FakeInstance {
                    request: request.clone(),
                    created_at: OffsetDateTime::now_utc(),
                    status: VpsInstanceStatus::Pending,
                    address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)),
                    reads: 0,
                    port_overrides: HashMap::new(),
                },
            );
            Ok(id)
        })
        .await
    }

    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        self.call(Method::DestroyInstance, || {
            self.lock().instances.remove(id);
            Ok(())
        })
        .await
    }

    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
        self.call(Method::GetInstance, || {
            let mut state = self.lock();
            let instance = state
                .instances
                .get_mut(id)
                .ok_or_else(|| Self::not_found("instance", id))?;
            Ok(self.read(instance, id))
        })
        .await
    }

    async fn instance_status(
        &self,
        id: &VpsInstanceId,
    ) -> Result<VpsInstanceStatus, VpsClientError> {
        self.call(Method::InstanceStatus, || {
            let mut state = self.lock();
            let instance = state
                .instances
                .get_mut(id)
                .ok_or_else(|| Self::not_found("instance", id))?;
            Ok(self.read(instance, id).status)
        })
        .await
    }

    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError> {
        self.call(Method::SocketAddr, || {
            let state = self.lock();
            let instance = state
                .instances
                .get(id)
                .ok_or_else(|| Self::not_found("instance", id))?;
            if instance.status == VpsInstanceStatus::Pending {
                return Err(VpsClientError::NotReady {
                    id: id.clone(),
                    message: "no address assigned yet".to_owned(),
                });
            }
            Ok(instance
                .port_overrides
                .get(&port)
                .copied()
                .unwrap_or(SocketAddr::new(instance.address, port)))
        })
        .await
    }

    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
        self.call(Method::ListInstances, || {
            let mut state = self.lock();
            Ok(state
                .instances
                .iter_mut()
                .filter(|(_, i)| tag.is_none_or(|t| i.request.tags.contains(t)))
                .map(|(id, i)| self.read(i, id))
                .collect())
        })
        .await
    }

    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        self.call(Method::CreateSnapshot, || {
            let mut state = self.lock();
            if !state.instances.contains_key(id) {
                return Err(Self::not_found("instance", id));
            }
            let raw = Self::next_id(&mut state, "fake-s-");
            let snapshot_id = VpsSnapshotId::parse(&raw).map_err(|e| invalid_id("snapshot", e))?;
            state.snapshots.insert(
                snapshot_id.clone(),
                FakeSnapshot {
                    info: SnapshotInfo {
                        id: snapshot_id.clone(),
                        description: description.to_owned(),
                        status: SnapshotStatus::Pending,
                        created_at: None,
                    },
                    lists: 0,
                },
            );
            Ok(snapshot_id)
        })
        .await
    }

    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        self.call(Method::DeleteSnapshot, || {
            self.lock().snapshots.remove(id);
            Ok(())
        })
        .await
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        self.call(Method::ListSnapshots, || {
            let until = self.options.lists_until_snapshot_complete;
            let mut state = self.lock();
            Ok(state
                .snapshots
                .values_mut()
                .map(|s| {
                    if s.lists >= until {
                        s.info.status = SnapshotStatus::Complete;
                    }
                    s.lists += 1;
                    s.info.clone()
                })
                .collect())
        })
        .await
    }

    async fn upload_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError> {
        self.call(Method::UploadSshKey, || {
            let key = public_key.trim();
            if key.is_empty() || key.contains('\n') || key.split_whitespace().count() < 2 {
                return Err(VpsClientError::Api {
                    status: 400,
                    message: "ssh_key must be one OpenSSH public key line".to_owned(),
                });
            }
            let mut state = self.lock();
            let raw = Self::next_id(&mut state, "fake-k-");
            let id = SshKeyId::parse(&raw).map_err(|e| invalid_id("SSH key", e))?;
            state.keys.insert(
                id.clone(),
                SshKeyInfo {
                    id: id.clone(),
                    name: name.to_owned(),
                    public_key: key.to_owned(),
                },
            );
            Ok(id)
        })
        .await
    }

    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        self.call(Method::DeleteSshKey, || {
            self.lock().keys.remove(id);
            Ok(())
        })
        .await
    }

    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        self.call(Method::ListSshKeys, || {
            Ok(self.lock().keys.values().cloned().collect())
        })
        .await
    }
}

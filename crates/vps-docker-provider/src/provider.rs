//! [`VpsDockerProvider`]: create (with rollback), stop, start, destroy, get and list.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloud_init::{AuthorizedKey, CloudConfig, CloudInitStatus, HostKey};
use docker_ssh::{
    Command, Docker, ExecOptions, Executor, OutputStream, PrivateKey, PsFilter, PublicKey,
    SshConfig, SshError, SshPool, SshTarget, generate_ed25519, private_key_openssh,
    public_key_line,
};
use host_store::{
    CertifiedHostData, HostRecord, HostStore, IdleMode, StateContainerName, StateContainerSpec,
    Timestamp, VpsHostConfig,
};
use tokio::time::Instant;
use vps_client::{
    CreateInstanceRequest, InstanceInfo, UserData, VpsClient, VpsClientError, WaitOptions,
    probe_tcp_banner, wait_until_active,
};
use vps_primitives::{
    Backoff, HOST_ID_TAG_KEY, HostId, HostName, LABEL_HOST_ID, OsId, PlanId, ProviderName,
    RegionId, SshKeyId, Tag, VPS_LABEL_PREFIX, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId,
    host_volume_name, vps_label,
};

use crate::config::{VpsDockerProviderConfig, check_image_name};
use crate::error::{ProviderError, StepError};
use crate::host::{Host, HostInfo, HostStatus, StopReason};
use crate::keys::{ClientKeys, HostKeys, KeyStore};
use crate::plan::{self, ContainerSpec};
use crate::rollback::{Rollback, Undo};
use crate::snapshot::{SnapshotOrigin, SnapshotSource};
use crate::spool::ImageSpool;
use crate::step::{Cancel, Phases, Progress, Step, run_step};

/// What to create.
#[derive(Clone, Debug)]
pub struct CreateHostRequest {
    /// The host's name (unique within the provider instance).
    pub name: HostName,
    /// The container image; the config's `default_image` when `None`.
    pub image: Option<String>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Build args: `--vps-region=`, `--vps-plan=`, `--vps-os=` choose the VPS; any others
    /// go to `docker build` on the VPS, whose last positional arg is the local build
    /// context (see the crate docs, "Building the image").
    pub build_args: Vec<String>,
    /// `docker run` arguments, after the config's `default_start_args`.
    pub start_args: Vec<String>,
    /// Idle timeout in seconds; the config's default when `None`.
    pub idle_timeout: Option<u64>,
    /// Idle mode; the config's default when `None`.
    pub idle_mode: Option<IdleMode>,
    /// Start from a container snapshot of another host (its image is copied to the new
    /// VPS, its volume copy fills the new host's volume); `image` is not used then, and
    /// `docker build` args are refused.
    pub snapshot: Option<SnapshotSource>,
    /// A hard cap on the host's age since its container last started, seconds: the
    /// watcher stops it then, busy or not.
    pub max_host_age: Option<u64>,
}

impl CreateHostRequest {
    /// A request with every default.
    pub fn new(name: HostName) -> Self {
        Self {
            name,
            image: None,
            tags: BTreeMap::new(),
            build_args: Vec::new(),
            start_args: Vec::new(),
            idle_timeout: None,
            idle_mode: None,
            snapshot: None,
            max_host_age: None,
        }
    }
}

/// The VPS a create orders, from the build args and the config's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpsChoice {
    /// Region.
    pub region: RegionId,
    /// Plan.
    pub plan: PlanId,
    /// OS image.
    pub os: OsId,
}

/// The `--vps-` build args that choose the VPS.
pub const VPS_BUILD_ARGS: [&str; 3] = ["--vps-region=", "--vps-plan=", "--vps-os="];

/// Reads the `--vps-` build args (any other `--vps-` flag is an error naming it and the
/// known ones; `--vps-os` must be a number). Returns the choice and the remaining args.
pub fn parse_build_args(
    args: &[String],
    config: &VpsDockerProviderConfig,
) -> Result<(VpsChoice, Vec<String>), ProviderError> {
    let invalid = |e: vps_primitives::InvalidValue| ProviderError::InvalidInput(e.to_string());
    let mut region = RegionId::parse(&config.default_region).map_err(invalid)?;
    let mut plan = PlanId::parse(&config.default_plan).map_err(invalid)?;
    let mut os = config.os_id();
    let mut rest = Vec::new();
    for arg in args {
        if let Some(v) = arg.strip_prefix("--vps-region=") {
            region = RegionId::parse(v).map_err(invalid)?;
        } else if let Some(v) = arg.strip_prefix("--vps-plan=") {
            plan = PlanId::parse(v).map_err(invalid)?;
        } else if let Some(v) = arg.strip_prefix("--vps-os=") {
            os = OsId(v.parse().map_err(|_| {
                ProviderError::InvalidInput(format!(
                    "build arg --vps-os must be a number (the provider's OS image id), not {v:?}"
                ))
            })?);
        } else if arg.starts_with("--vps-") {
            return Err(ProviderError::InvalidInput(format!(
                "unknown build arg {arg:?}; the --vps- args are {}",
                VPS_BUILD_ARGS.map(|a| format!("{a}VALUE")).join(", ")
            )));
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((VpsChoice { region, plan, os }, rest))
}

/// The host lifecycle of one provider instance over any [`VpsClient`]. Cheap to clone;
/// usable from many tasks at once.
#[derive(Clone)]
pub struct VpsDockerProvider {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) name: ProviderName,
    pub(crate) client: Arc<dyn VpsClient>,
    pub(crate) config: VpsDockerProviderConfig,
    pub(crate) keys: KeyStore,
    pub(crate) wrap_vps: Option<ExecutorWrapper>,
    /// Local images saved ahead for this value's creates ([`crate::spool`]).
    pub(crate) spool: ImageSpool,
}

/// Wraps the executor a create uses on the VPS after its host key is rotated (see
/// [`VpsDockerProvider::with_vps_executor_wrapper`]).
pub type ExecutorWrapper = Arc<dyn Fn(Arc<dyn Executor>) -> Arc<dyn Executor> + Send + Sync>;

impl std::fmt::Debug for VpsDockerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpsDockerProvider")
            .field("name", &self.inner.name)
            .field("client", &self.inner.client.provider_kind())
            .field("keys", &self.inner.keys.root())
            .finish()
    }
}

/// A host found at the provider, with the pieces the operations need.
pub(crate) struct Found {
    pub(crate) info: HostInfo,
    pub(crate) instance: VpsInstanceId,
}

impl VpsDockerProvider {
    /// The provider instance `name` over `client`, keeping keys and pins in `key_dir`
    /// (created 0700). The config is validated.
    pub fn new(
        name: ProviderName,
        client: Arc<dyn VpsClient>,
        config: VpsDockerProviderConfig,
        key_dir: impl Into<PathBuf>,
    ) -> Result<Self, ProviderError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                client,
                config,
                keys: KeyStore::new(key_dir),
                wrap_vps: None,
                spool: ImageSpool::default(),
            }),
        })
    }

    /// Runs every command a create sends to the VPS after the host key rotation (image,
    /// state container, volume, container, setup, record) through `wrap`: for fault
    /// injection in tests, or auditing. Returns a new provider value.
    pub fn with_vps_executor_wrapper(self, wrap: ExecutorWrapper) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: self.inner.name.clone(),
                client: self.inner.client.clone(),
                config: self.inner.config.clone(),
                keys: self.inner.keys.clone(),
                wrap_vps: Some(wrap),
                spool: ImageSpool::default(),
            }),
        }
    }

    /// The provider instance's name.
    pub fn name(&self) -> &ProviderName {
        &self.inner.name
    }

    /// The configuration.
    pub fn config(&self) -> &VpsDockerProviderConfig {
        &self.inner.config
    }

    /// The VPS client.
    pub fn client(&self) -> &Arc<dyn VpsClient> {
        &self.inner.client
    }

    /// The key directory.
    pub fn key_store(&self) -> &KeyStore {
        &self.inner.keys
    }

    pub(crate) fn provider_tag(&self) -> Tag {
        Tag::provider(&self.inner.name)
    }

    pub(crate) fn ssh_config(&self, connect_timeout: Duration) -> SshConfig {
        SshConfig::default()
            .max_channels(32)
            .connect_timeout(connect_timeout)
    }

    pub(crate) fn pool(
        &self,
        addr: SocketAddr,
        key: Arc<PrivateKey>,
        pin: PublicKey,
        connect_timeout: Duration,
    ) -> SshPool {
        let target = SshTarget::new(addr.ip().to_string(), addr.port(), "root", key, pin);
        SshPool::new(target, self.ssh_config(connect_timeout))
    }

    pub(crate) fn state_spec(&self) -> Result<StateContainerSpec, StepError> {
        let name = StateContainerName::new("mngr-", self.inner.name.as_str())
            .map_err(|e| StepError::Check(e.to_string()))?;
        Ok(StateContainerSpec::new(
            name,
            self.inner.config.state_image.clone(),
            self.inner.name.clone(),
        ))
    }

    pub(crate) fn store(&self, exec: Arc<dyn Executor>) -> Result<HostStore, StepError> {
        Ok(HostStore::new(exec, self.state_spec()?.name))
    }

    // ----- create -------------------------------------------------------------------

    /// Creates a host: orders the VPS with our cloud-init document, pins and rotates its
    /// host key, runs the one container with its own pinned sshd, writes the record, and
    /// returns a handle to the running host. Bad input is refused before anything is
    /// made; a failure at any step undoes what was made and names the step; a
    /// cancellation through `cancel` rolls back too.
    pub async fn create_host(
        &self,
        request: CreateHostRequest,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Host, ProviderError> {
        let config = &self.inner.config;
        let mut image = request
            .image
            .clone()
            .unwrap_or_else(|| config.default_image.clone());
        check_image_name("--image", &image)?;
        let (vps, docker_build_args) = parse_build_args(&request.build_args, config)?;
        let build = crate::build::plan_build(&docker_build_args)?;
        if build.is_some() && request.snapshot.is_some() {
            return Err(ProviderError::InvalidInput(
                "a host from a snapshot runs the snapshot's image: give either a snapshot or `docker build` args, not both (`--vps-` args are fine)".into(),
            ));
        }
        if request.max_host_age == Some(0) {
            return Err(ProviderError::InvalidInput(
                "the maximum host age must be at least 1 second".into(),
            ));
        }
        if request.idle_timeout == Some(0) {
            return Err(ProviderError::InvalidInput(
                "the idle timeout must be at least 1 second (use idle mode DISABLED to never idle out)".into(),
            ));
        }
        crate::tags::check_tag_keys(request.tags.keys())?;
        if let Some(existing) = self.find_by_name(&request.name).await? {
            return Err(ProviderError::NameTaken {
                name: request.name.clone(),
                id: existing.info.id,
            });
        }
        if let Some(sleeping) = self.hibernated(request.name.as_str()).await? {
            return Err(ProviderError::NameTaken {
                name: request.name.clone(),
                id: sleeping.label.host,
            });
        }
        let origin = match &request.snapshot {
            Some(source) => Some(self.snapshot_origin(source).await?),
            None => None,
        };
        if let Some(origin) = &origin {
            image = origin.image.clone();
        }

        if build.is_none() && origin.is_none() {
            // Saved while the VPS boots, in case this machine has it (the local provider's
            // way; without a local engine or image, nothing comes of it).
            self.inner.spool.prefetch(&image);
            if self.inner.config.state_image != image {
                self.inner.spool.prefetch(&self.inner.config.state_image);
            }
        }
        let id = HostId::generate();
        // A built image is tagged after the host; `image` (if given) is only made present
        // on the VPS, for the Dockerfile to build FROM.
        let image = match &build {
            Some(_) => crate::build::build_tag(&id),
            None => image,
        };
        tracing::info!(host = %request.name, %id, provider = %self.inner.name, "creating host");
        let mut rollback = Rollback::default();
        let mut phases = Phases::default();
        let plan = CreatePlan {
            id: &id,
            request: &request,
            image: &image,
            vps: &vps,
            origin: origin.as_ref(),
            build: build.as_ref(),
        };
        let result = self
            .create_steps(&plan, &mut rollback, &mut phases, progress, cancel)
            .await;
        if let Some(origin) = &origin {
            origin.pool.close().await;
        }
        match result {
            Ok(mut host) => {
                host.phases = phases;
                tracing::info!(host = %request.name, %id, "host created");
                Ok(host)
            }
            Err((step, source)) => {
                tracing::warn!(host = %request.name, %id, %step, error = %source, "create failed; rolling back");
                let rollback_failures = rollback.unwind(&self.inner.client).await;
                Err(ProviderError::Create {
                    name: request.name.clone(),
                    id,
                    step,
                    source,
                    rollback_failures,
                })
            }
        }
    }

    async fn create_steps(
        &self,
        plan: &CreatePlan<'_>,
        rollback: &mut Rollback,
        phases: &mut Phases,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Host, (Step, StepError)> {
        let config = &self.inner.config;
        let client = &self.inner.client;
        let id = plan.id;
        let name = &plan.request.name;
        let host_keys = self.inner.keys.host(id);
        let port = config.container_ssh_port;
        macro_rules! step {
            ($step:expr, $body:expr) => {
                run_step($step, progress, cancel, phases, $body)
                    .await
                    .map_err(|e| ($step, e))?
            };
        }

        // Keys: ours on this machine, and the VPS's first host key, which only the
        // user_data carries (rotated away below).
        rollback.push(Undo::LocalKeys(host_keys.clone()));
        let (keys, first_host_key) = step!(Step::GenerateKeys, async {
            let keys = host_keys.generate()?;
            let first = generate_ed25519().map_err(crate::keys::KeyStoreError::from)?;
            host_keys.pin_vps(first.public_key())?;
            Ok((keys, first))
        });

        let key_name = plan::ssh_key_name(&self.inner.name, id);
        let vps_public = public_key_line(keys.vps.public_key());
        let key_id = step!(Step::UploadKey, async {
            Ok(client.upload_ssh_key(&key_name, &vps_public).await?)
        });
        rollback.push(Undo::DeleteKey(key_id.clone()));

        let instance = self
            .order_instance(
                &InstanceOrder {
                    id,
                    name,
                    vps: plan.vps,
                    snapshot: None,
                    first_host_key: &first_host_key,
                    vps_public: &vps_public,
                    key_id: &key_id,
                },
                rollback,
                phases,
                progress,
                cancel,
            )
            .await?;

        let (vps_addr, vps, rotated) = self
            .boot_vps(
                &instance,
                &keys,
                &host_keys,
                &first_host_key,
                phases,
                progress,
                cancel,
            )
            .await?;
        let mut vps_exec: Arc<dyn Executor> = Arc::new(vps.clone());
        if let Some(wrap) = &self.inner.wrap_vps {
            vps_exec = wrap(vps_exec);
        }
        let docker = Docker::new(vps_exec.clone());

        // cloud-init goes on while the images are copied: only a container needs it done
        // (its metadata block must be in place before one runs). A build runs containers,
        // so it comes after.
        let transfer = async {
            wait_for_docker(&docker, Instant::now() + config.docker_install()).await?;
            ensure_image(
                &self.inner.spool,
                &docker,
                &config.state_image,
                Step::Image,
                progress,
            )
            .await?;
            match (plan.origin, plan.build) {
                (Some(origin), _) => {
                    if !docker.image_exists(plan.image).await? {
                        progress.output(
                            Step::Image,
                            &format!("copying snapshot {} from its host's VPS", plan.image),
                        );
                        crate::transfer::copy_image(&origin.docker, &docker, plan.image).await?;
                    }
                }
                (None, Some(_)) => {
                    if let Some(base) = &plan.request.image
                        && *base != config.state_image
                    {
                        ensure_image(&self.inner.spool, &docker, base, Step::Image, progress)
                            .await?;
                    }
                }
                (None, None) if config.state_image != plan.image => {
                    ensure_image(
                        &self.inner.spool,
                        &docker,
                        plan.image,
                        Step::Image,
                        progress,
                    )
                    .await?;
                }
                (None, None) => {}
            }
            Ok(())
        };
        let (mut cloud_phases, mut image_phases) = (Phases::default(), Phases::default());
        let settled = tokio::try_join!(
            async {
                let wait = wait_cloud_init(&vps, config.docker_install());
                run_step(
                    Step::WaitCloudInit,
                    progress,
                    cancel,
                    &mut cloud_phases,
                    wait,
                )
                .await
                .map_err(|e| (Step::WaitCloudInit, e))
            },
            async {
                run_step(Step::Image, progress, cancel, &mut image_phases, transfer)
                    .await
                    .map_err(|e| (Step::Image, e))
            },
        );
        phases.0.extend(cloud_phases.0);
        phases.0.extend(image_phases.0);
        settled?;
        if let (None, Some(build)) = (plan.origin, plan.build) {
            step!(Step::Image, async {
                crate::build::build_on_vps(&docker, build, id, plan.image, progress).await
            });
        }

        let store = step!(Step::StateContainer, async {
            let (store, _) = HostStore::ensure(vps_exec.clone(), &self.state_spec()?).await?;
            Ok(store)
        });

        let volume = host_volume_name(id);
        step!(Step::HostVolume, async {
            docker
                .volume_create(&volume, &[(LABEL_HOST_ID.to_owned(), id.to_string())])
                .await?;
            if plan.origin.is_some() {
                crate::snapshot::restore_volume(&docker, plan.image, &volume, id).await?;
            }
            Ok(())
        });

        let mut start_args = config.default_start_args.clone();
        start_args.extend(plan.request.start_args.iter().cloned());
        let container_name = plan::container_name(name);
        let spec = ContainerSpec {
            id,
            name,
            provider: &self.inner.name,
            tags: &plan.request.tags,
            image: plan.image,
            volume: &volume,
            ssh_port: port,
            start_args: &start_args,
        };
        let idle_timeout = plan
            .request
            .idle_timeout
            .unwrap_or(config.default_idle_timeout);
        let mode = plan.request.idle_mode.unwrap_or(config.default_idle_mode);
        let sources = mode
            .sources()
            .unwrap_or_else(|| config.default_activity_sources.clone());
        let idle_env = plan::idle_env(
            idle_timeout,
            &sources,
            plan.request.max_host_age,
            config.idle_check_interval,
        );
        let container_id = step!(Step::Container, async {
            let container_id = docker.create(&plan::container_run_options(&spec)).await?;
            install_container_files(&docker, &container_name, &config.host_dir, &keys, &idle_env)
                .await?;
            docker.start(&container_name).await?;
            Ok(container_id)
        });

        let mut warnings = Vec::new();
        step!(Step::ContainerSetup, async {
            let missing =
                setup_container(&docker, &container_name, &config.container_packages).await?;
            if !missing.is_empty() {
                let message = format!(
                    "the image {} lacks {}; they were installed at container start (use an image that has them for a faster start)",
                    plan.image,
                    missing.join(", ")
                );
                tracing::warn!(host = %name, "{message}");
                progress.warning(&message);
                warnings.push(message);
            }
            Ok(())
        });

        let container_key = keys.container_host.public_key().clone();
        let (container_addr, container) = step!(Step::ConnectContainer, async {
            host_keys.pin_container(&container_key)?;
            let addr = client.socket_addr(&instance, port).await?;
            let pool = self.pool(
                addr,
                keys.container.clone(),
                container_key.clone(),
                config.ssh_connect(),
            );
            connect_until(&pool, Instant::now() + config.ssh_connect()).await?;
            Ok((addr, pool))
        });

        let now = Timestamp::now();
        let mut data = CertifiedHostData::new(id.clone(), name.clone(), now);
        data.idle_timeout_seconds = idle_timeout;
        data.activity_sources = sources;
        data.max_host_age = plan.request.max_host_age;
        data.image = Some(plan.image.to_owned());
        data.user_tags = plan.request.tags.clone();
        let mut record = HostRecord::new(data);
        record.vps_ip = Some(vps_addr.ip());
        record.set_host_keys(Some(&rotated), Some(&container_key));
        record.config = Some(VpsHostConfig {
            vps_instance_id: instance.clone(),
            region: plan.vps.region.clone(),
            plan: plan.vps.plan.clone(),
            os_id: plan.vps.os,
            start_args,
            image: Some(plan.image.to_owned()),
            container_name,
            volume_name: volume,
            vps_ssh_key_id: Some(key_id),
            extra: Default::default(),
        });
        record.container_id = Some(container_id);
        step!(Step::WriteRecord, async {
            Ok(store.write_host_record(&record).await?)
        });

        let info = HostInfo {
            id: id.clone(),
            name: Some(name.clone()),
            provider: self.inner.name.clone(),
            status: HostStatus::Running,
            instance_id: Some(instance),
            instance_status: Some(VpsInstanceStatus::Active),
            vps_ssh: Some(vps_addr),
            container_ssh: Some(container_addr),
            image: Some(plan.image.to_owned()),
            tags: plan.request.tags.clone(),
            created_at: Some(record.certified_host_data.created_at.to_string()),
            idle_mode: Some(record.certified_host_data.idle_mode()),
            idle_timeout_seconds: Some(record.certified_host_data.idle_timeout_seconds),
            record: Some(record),
        };
        Ok(self.host_handle(info, &host_keys, container, vps, warnings))
    }

    /// Orders the host's instance (a create's from the OS image, a wake's from a snapshot)
    /// with new user_data, and pushes the undo: the instance, or, when the order may have
    /// gone through (or was cancelled mid-request), whatever carries the host's tag.
    pub(crate) async fn order_instance(
        &self,
        order: &InstanceOrder<'_>,
        rollback: &mut Rollback,
        phases: &mut Phases,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<VpsInstanceId, (Step, StepError)> {
        let id = order.id;
        let user_data = render_user_data(order.first_host_key, order.vps_public)
            .map_err(|e| (Step::CreateInstance, e))?;
        let request = CreateInstanceRequest {
            label: vps_label(order.name),
            region: order.vps.region.clone(),
            plan: order.vps.plan.clone(),
            os: order.vps.os,
            snapshot: order.snapshot.clone(),
            user_data,
            ssh_key_ids: vec![order.key_id.clone()],
            tags: vec![self.provider_tag(), Tag::host_id(id)],
            ports: vec![22, self.inner.config.container_ssh_port],
        };
        let client = &self.inner.client;
        let created = run_step(Step::CreateInstance, progress, cancel, phases, async {
            Ok(client.create_instance(&request).await?)
        })
        .await;
        match created {
            Ok(instance) => {
                rollback.push(Undo::DestroyInstance(instance.clone()));
                Ok(instance)
            }
            Err(e) => {
                // An order that may have gone through, or a create cancelled mid-request:
                // whatever carries the host's tag is removed.
                let unknown = match &e {
                    StepError::Provider(p) => {
                        matches!(**p, VpsClientError::OutcomeUnknown { .. })
                    }
                    StepError::Cancelled => true,
                    _ => false,
                };
                if unknown {
                    rollback.push(Undo::DestroyTagged(Tag::host_id(id)));
                }
                Err((Step::CreateInstance, e))
            }
        }
    }

    /// Brings up a just-ordered VPS (a create's, or a wake's from a snapshot): waits until
    /// it is active and greets, connects pinned to `first_host_key` (the user_data's),
    /// rotates the host key, pins the new one and reconnects. Returns the VPS's SSH
    /// address, the pinned pool and the rotated key. cloud-init may still be running: the
    /// caller waits for it ([`wait_cloud_init`]) before any container starts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn boot_vps(
        &self,
        instance: &VpsInstanceId,
        keys: &ClientKeys,
        host_keys: &HostKeys,
        first_host_key: &PrivateKey,
        phases: &mut Phases,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<(SocketAddr, SshPool, PublicKey), (Step, StepError)> {
        let config = &self.inner.config;
        let client = &self.inner.client;
        macro_rules! step {
            ($step:expr, $body:expr) => {
                run_step($step, progress, cancel, phases, $body)
                    .await
                    .map_err(|e| ($step, e))?
            };
        }
        let vps_addr = step!(Step::WaitActive, async {
            let options = WaitOptions::with_timeout(config.vps_boot());
            Ok(
                wait_until_active(client.as_ref(), instance, 22, &options, |addr| async move {
                    probe_tcp_banner(addr, b"SSH-").await
                })
                .await?,
            )
        });

        let first_pool = self.pool(
            vps_addr,
            keys.vps.clone(),
            first_host_key.public_key().clone(),
            config.ssh_connect(),
        );
        step!(Step::ConnectVps, async {
            connect_until(&first_pool, Instant::now() + config.ssh_connect()).await
        });

        // At once, before cloud-init is done: that our pinned key answered proves
        // cloud-init's ssh module has installed the host keys, and nothing after it
        // touches them.
        let rotated = step!(Step::RotateHostKey, async {
            let rotated = generate_ed25519().map_err(crate::keys::KeyStoreError::from)?;
            let public = public_key_line(rotated.public_key());
            let private =
                private_key_openssh(&rotated).map_err(crate::keys::KeyStoreError::from)?;
            let command = Command::script(plan::rotate_host_key_script(&public))
                .stdin(private.expose().as_bytes().to_vec())
                .timeout(Duration::from_secs(60));
            first_pool.run_checked(&command).await?;
            host_keys.pin_vps(rotated.public_key())?;
            Ok(rotated.public_key().clone())
        });
        first_pool.close().await;
        let vps = self.pool(
            vps_addr,
            keys.vps.clone(),
            rotated.clone(),
            config.ssh_connect(),
        );
        step!(Step::ConnectVps, async {
            connect_until(&vps, Instant::now() + config.ssh_connect()).await
        });
        Ok((vps_addr, vps, rotated))
    }

    pub(crate) fn host_handle(
        &self,
        info: HostInfo,
        host_keys: &HostKeys,
        container: SshPool,
        vps: SshPool,
        warnings: Vec<String>,
    ) -> Host {
        Host {
            info,
            container,
            vps,
            container_key_path: host_keys.container_client_key_path(),
            known_hosts_path: host_keys.known_hosts_path(),
            container_alias: host_keys.container_alias(),
            phases: Phases::default(),
            warnings,
        }
    }

    // ----- lookup -------------------------------------------------------------------

    /// Every host of this provider instance: its instances are listed by tag, then every
    /// VPS is read in parallel (one round trip each). A host whose VPS does not answer
    /// within `discovery_connect_timeout` is listed as unreachable, with the reason.
    pub async fn list_hosts(&self) -> Result<Vec<HostInfo>, ProviderError> {
        let instances = self
            .inner
            .client
            .list_instances(Some(&self.provider_tag()))
            .await
            .map_err(|source| ProviderError::Provider {
                what: "listing the provider's instances",
                source: Box::new(source),
            })?;
        // The VPSes are read while the provider lists the hibernation snapshots.
        let (found, sleeping) = tokio::join!(
            futures::future::join_all(instances.iter().map(|i| self.inspect_instance(i))),
            self.hibernation_snapshots()
        );
        let mut hosts: Vec<HostInfo> = found.into_iter().flatten().map(|f| f.info).collect();
        Self::add_hibernated(&mut hosts, sleeping?);
        hosts.sort_by_key(|h| h.display_name());
        Ok(hosts)
    }

    /// One host, by name or id.
    pub async fn get_host(&self, name_or_id: &str) -> Result<HostInfo, ProviderError> {
        match self.find(name_or_id).await {
            Err(ProviderError::Hibernated { .. }) => match self.hibernated(name_or_id).await? {
                Some(sleeping) => Ok(sleeping.info),
                None => Err(ProviderError::HostNotFound(name_or_id.to_owned())),
            },
            found => Ok(found?.info),
        }
    }

    /// A handle to a running host, by name or id.
    pub async fn connect(&self, name_or_id: &str) -> Result<Host, ProviderError> {
        let found = self.find(name_or_id).await?;
        self.open(found, Vec::new()).await
    }

    pub(crate) async fn find(&self, name_or_id: &str) -> Result<Found, ProviderError> {
        if let Ok(id) = HostId::parse(name_or_id) {
            let instances = self
                .inner
                .client
                .list_instances(Some(&Tag::host_id(&id)))
                .await
                .map_err(|source| ProviderError::Provider {
                    what: "looking up the host's instance",
                    source: Box::new(source),
                })?;
            let provider = self.provider_tag();
            for instance in instances.iter().filter(|i| i.tags.contains(&provider)) {
                if let Some(found) = self.inspect_instance(instance).await {
                    return Ok(found);
                }
            }
            return Err(self.missing(name_or_id).await);
        }
        let name = HostName::parse(name_or_id)?;
        match self.find_by_name(&name).await? {
            Some(found) => Ok(found),
            None => Err(self.missing(name_or_id).await),
        }
    }

    pub(crate) async fn find_by_name(
        &self,
        name: &HostName,
    ) -> Result<Option<Found>, ProviderError> {
        let instances = self
            .inner
            .client
            .list_instances(Some(&self.provider_tag()))
            .await
            .map_err(|source| ProviderError::Provider {
                what: "listing the provider's instances",
                source: Box::new(source),
            })?;
        let label = vps_label(name);
        // The instance label says the name without a round trip; the record confirms it.
        for instance in instances.iter().filter(|i| i.label == label) {
            if let Some(found) = self.inspect_instance(instance).await
                && found.info.name.as_ref() == Some(name)
            {
                return Ok(Some(found));
            }
        }
        // A renamed host keeps its old instance label (no provider API relabels): the
        // records of the other instances say the current names.
        let others = instances.iter().filter(|i| i.label != label);
        let seen = futures::future::join_all(others.map(|i| self.inspect_instance(i))).await;
        Ok(seen
            .into_iter()
            .flatten()
            .find(|f| f.info.record.is_some() && f.info.name.as_ref() == Some(name)))
    }

    /// What is seen of the host on `instance`; `None` if the instance is not a host of ours.
    pub(crate) async fn inspect_instance(&self, instance: &InstanceInfo) -> Option<Found> {
        let id = instance
            .tags
            .iter()
            .find(|t| t.key() == HOST_ID_TAG_KEY)
            .and_then(|t| HostId::parse(t.value()).ok())?;
        let label_name = instance
            .label
            .strip_prefix(VPS_LABEL_PREFIX)
            .and_then(|n| HostName::parse(n).ok());
        let mut info = HostInfo::seen(
            id.clone(),
            label_name,
            self.inner.name.clone(),
            HostStatus::Starting,
        );
        info.instance_id = Some(instance.id.clone());
        info.instance_status = Some(instance.status);
        info.status = match instance.status {
            VpsInstanceStatus::Active => self.read_vps(&id, instance, &mut info).await,
            // Booting, or not answering: look, rather than guess.
            VpsInstanceStatus::Pending => match self.read_vps(&id, instance, &mut info).await {
                HostStatus::Unreachable { reason } => HostStatus::Unreachable {
                    reason: format!(
                        "the provider reports the VPS as pending (booting?) and it does not answer: {reason}"
                    ),
                },
                seen => seen,
            },
            VpsInstanceStatus::Halted => HostStatus::Unreachable {
                reason: "the VPS is powered off".into(),
            },
            VpsInstanceStatus::Destroying => HostStatus::Failed {
                reason: "the VPS is being destroyed".into(),
            },
            VpsInstanceStatus::Unknown => HostStatus::Unreachable {
                reason: "the provider reports an unknown status".into(),
            },
        };
        Some(Found {
            info,
            instance: instance.id.clone(),
        })
    }

    /// Where `port` of the instance is: as the listing says, else asked of the provider (a
    /// request per instance, which discovery of many hosts avoids).
    pub(crate) async fn listed_addr(
        &self,
        instance: &InstanceInfo,
        port: u16,
    ) -> Result<std::net::SocketAddr, VpsClientError> {
        match instance.addr(port) {
            Some(addr) => Ok(addr),
            None => self.inner.client.socket_addr(&instance.id, port).await,
        }
    }

    /// Reads the record and the container's state from the VPS (two commands on one
    /// connection, in parallel), within the discovery timeout.
    pub(crate) async fn read_vps(
        &self,
        id: &HostId,
        instance: &InstanceInfo,
        info: &mut HostInfo,
    ) -> HostStatus {
        let host_keys = self.inner.keys.host(id);
        let (keys, pin) = match host_keys.load().and_then(|k| Ok((k, host_keys.vps_pin()?))) {
            Ok(v) => v,
            Err(e) => {
                return HostStatus::Unreachable {
                    reason: format!("no usable keys for it on this machine: {e}"),
                };
            }
        };
        let timeout = self.inner.config.discovery_connect();
        let addr = match self.listed_addr(instance, 22).await {
            Ok(a) => a,
            Err(e) => {
                return HostStatus::Unreachable {
                    reason: format!("no address: {e}"),
                };
            }
        };
        info.vps_ssh = Some(addr);
        let target = SshTarget::new(addr.ip().to_string(), addr.port(), "root", keys.vps, pin);
        let pool = SshPool::new(target, self.ssh_config(timeout).attempts(1, 1));
        let exec: Arc<dyn Executor> = Arc::new(pool.clone());
        let docker = Docker::new(exec.clone());
        let store = match self.store(exec) {
            Ok(s) => s,
            Err(e) => {
                return HostStatus::Unreachable {
                    reason: e.to_string(),
                };
            }
        };
        let read = async {
            pool.connect().await.map_err(|e| e.to_string())?;
            let filter = [PsFilter::label(LABEL_HOST_ID, id.as_str())];
            let (record, containers) =
                tokio::join!(store.read_host_record(id), docker.ps(true, &filter));
            let record = match record {
                // The VPS answers but was never given its state container: a create
                // that stopped before that step, which holds no record either.
                Err(host_store::StoreError::NoStateContainer { .. }) => None,
                other => other.map_err(|e| e.to_string())?,
            };
            Ok::<_, String>((record, containers.map_err(|e| e.to_string())?))
        };
        let outcome = tokio::time::timeout(timeout * 2, read).await;
        pool.close().await;
        let (record, containers) = match outcome {
            Ok(Ok(v)) => v,
            Ok(Err(reason)) => return HostStatus::Unreachable { reason },
            Err(_) => {
                return HostStatus::Unreachable {
                    reason: format!(
                        "the VPS did not answer within {:.0}s",
                        (timeout * 2).as_secs_f64()
                    ),
                };
            }
        };
        let Some(record) = record else {
            return HostStatus::Failed {
                reason: "no host record on the VPS, as a failed or interrupted create leaves \
                         it; `destroy` removes what it made"
                    .into(),
            };
        };
        let data = &record.certified_host_data;
        info.name = Some(data.host_name.clone());
        info.image = data.image.clone();
        info.tags = data.user_tags.clone();
        info.created_at = Some(data.created_at.to_string());
        info.idle_mode = Some(data.idle_mode());
        info.idle_timeout_seconds = Some(data.idle_timeout_seconds);
        let container = containers.first();
        let status = derive_status(
            &record,
            container.map(|c| (c.state.as_str(), c.status.as_str())),
        );
        let mut record = record;
        if let HostStatus::Stopped {
            reason: Some(StopReason::Idle),
        } = status
            && record.certified_host_data.stop_reason.is_none()
        {
            // The watcher stopped it: record why, so every reader sees it.
            let mut updated = record.clone();
            updated.certified_host_data.stop_reason = Some(StopReason::Idle.as_state());
            updated.certified_host_data.updated_at = Timestamp::now();
            match store.write_host_record(&updated).await {
                Ok(()) => record = updated,
                Err(e) => tracing::warn!(host = %id, error = %e, "could not record the idle stop"),
            }
        }
        if status == HostStatus::Running
            && let Ok(addr) = self
                .listed_addr(instance, self.inner.config.container_ssh_port)
                .await
        {
            info.container_ssh = Some(addr);
        }
        info.record = Some(record);
        status
    }

    /// Opens a handle to a found host: it must be running.
    pub(crate) async fn open(
        &self,
        found: Found,
        warnings: Vec<String>,
    ) -> Result<Host, ProviderError> {
        let info = found.info;
        if info.status != HostStatus::Running {
            return Err(ProviderError::WrongState {
                host: info.display_name(),
                state: info.status.to_string(),
                hint: "start it first (`mngr-vps start`)",
            });
        }
        let host = info.display_name();
        let err = |step, source: StepError| ProviderError::Step {
            host: host.clone(),
            step,
            source,
        };
        let host_keys = self.inner.keys.host(&info.id);
        let keys = host_keys.load().map_err(|e| err(Step::Lookup, e.into()))?;
        let (Some(vps_addr), Some(container_addr)) = (info.vps_ssh, info.container_ssh) else {
            return Err(err(
                Step::Lookup,
                StepError::Check(
                    "the provider gave no address for the VPS or the container".into(),
                ),
            ));
        };
        let timeout = self.inner.config.ssh_connect();
        let vps = self.pool(
            vps_addr,
            keys.vps.clone(),
            host_keys
                .vps_pin()
                .map_err(|e| err(Step::Lookup, e.into()))?,
            timeout,
        );
        let container = self.pool(
            container_addr,
            keys.container.clone(),
            host_keys
                .container_pin()
                .map_err(|e| err(Step::Lookup, e.into()))?,
            timeout,
        );
        let _ = found.instance;
        Ok(self.host_handle(info, &host_keys, container, vps, warnings))
    }

    // ----- stop / start -------------------------------------------------------------

    /// Stops the host's container (`docker stop`, 60 s grace) and records why. The VPS
    /// keeps running.
    pub async fn stop_host(
        &self,
        name_or_id: &str,
        reason: StopReason,
    ) -> Result<HostInfo, ProviderError> {
        let found = self.find(name_or_id).await?;
        let host = found.info.display_name();
        let (vps, record) = self.vps_of(&found)?;
        let err = |step, source: StepError| ProviderError::Step {
            host: host.clone(),
            step,
            source,
        };
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        let container = record_container(&record);
        docker
            .stop(&container, Duration::from_secs(60))
            .await
            .map_err(|e| err(Step::StopContainer, e.into()))?;
        let mut record = record;
        record.certified_host_data.stop_reason = Some(reason.as_state());
        record.certified_host_data.updated_at = Timestamp::now();
        let store = self.store(exec).map_err(|e| err(Step::WriteRecord, e))?;
        store
            .write_host_record(&record)
            .await
            .map_err(|e| err(Step::WriteRecord, e.into()))?;
        vps.close().await;
        let mut info = found.info;
        info.status = HostStatus::Stopped {
            reason: Some(reason),
        };
        info.container_ssh = None;
        info.record = Some(record);
        Ok(info)
    }

    /// Starts a stopped host's container and waits until its sshd answers (the VPS's
    /// current address and ports are asked for again). Returns a handle.
    pub async fn start_host(&self, name_or_id: &str) -> Result<Host, ProviderError> {
        let found = self.find(name_or_id).await?;
        let host = found.info.display_name();
        let err = |step, source: StepError| ProviderError::Step {
            host: host.clone(),
            step,
            source,
        };
        let mut phases = Phases::default();
        let progress = crate::step::NoProgress;
        let cancel = Cancel::never();
        let (vps, mut record) = self.vps_of(&found)?;
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        let container = record_container(&record);
        run_step(
            Step::StartContainer,
            &progress,
            &cancel,
            &mut phases,
            async {
                docker.start(&container).await?;
                Ok(())
            },
        )
        .await
        .map_err(|e| err(Step::StartContainer, e))?;
        let host_keys = self.inner.keys.host(&found.info.id);
        let config = &self.inner.config;
        let (container_addr, container_pool) = run_step(
            Step::ConnectContainer,
            &progress,
            &cancel,
            &mut phases,
            async {
                let keys = host_keys.load()?;
                let addr = self
                    .inner
                    .client
                    .socket_addr(&found.instance, config.container_ssh_port)
                    .await?;
                let pool = self.pool(
                    addr,
                    keys.container,
                    host_keys.container_pin()?,
                    config.ssh_connect(),
                );
                connect_until(&pool, Instant::now() + config.ssh_connect()).await?;
                Ok((addr, pool))
            },
        )
        .await
        .map_err(|e| err(Step::ConnectContainer, e))?;
        record.certified_host_data.stop_reason = None;
        record.certified_host_data.updated_at = Timestamp::now();
        let store = self.store(exec).map_err(|e| err(Step::WriteRecord, e))?;
        store
            .write_host_record(&record)
            .await
            .map_err(|e| err(Step::WriteRecord, e.into()))?;
        let mut info = found.info;
        info.status = HostStatus::Running;
        info.container_ssh = Some(container_addr);
        info.record = Some(record);
        let mut handle = self.host_handle(info, &host_keys, container_pool, vps, Vec::new());
        handle.phases = phases;
        Ok(handle)
    }

    /// The VPS pool and the record of a found host whose VPS answered.
    pub(crate) fn vps_of(&self, found: &Found) -> Result<(SshPool, HostRecord), ProviderError> {
        let info = &found.info;
        let Some(record) = info.record.clone() else {
            return Err(ProviderError::WrongState {
                host: info.display_name(),
                state: info.status.to_string(),
                hint: "its VPS or record cannot be read; `mngr-vps list` says why",
            });
        };
        let Some(addr) = info.vps_ssh else {
            return Err(ProviderError::WrongState {
                host: info.display_name(),
                state: info.status.to_string(),
                hint: "the provider gives no address for its VPS",
            });
        };
        let host_keys = self.inner.keys.host(&info.id);
        let keys = host_keys.load().map_err(|e| ProviderError::Step {
            host: info.display_name(),
            step: Step::Lookup,
            source: e.into(),
        })?;
        let pin = host_keys.vps_pin().map_err(|e| ProviderError::Step {
            host: info.display_name(),
            step: Step::Lookup,
            source: e.into(),
        })?;
        Ok((
            self.pool(addr, keys.vps, pin, self.inner.config.ssh_connect()),
            record,
        ))
    }

    // ----- destroy ------------------------------------------------------------------

    /// Destroys a host: its container, volume and records on the VPS, the instance, the
    /// uploaded key, and its local keys and pins. An instance or key that fails to delete
    /// is an error ([`ProviderError::DestroyIncomplete`]); running the destroy again
    /// finishes what the first left.
    pub async fn destroy_host(&self, name_or_id: &str) -> Result<HostId, ProviderError> {
        let found = match self.find(name_or_id).await {
            Err(ProviderError::Hibernated { .. }) => {
                return self.destroy_hibernated(name_or_id).await;
            }
            found => found?,
        };
        let host = found.info.display_name();
        let id = found.info.id.clone();
        let client = &self.inner.client;
        let mut left = Vec::new();
        // On the VPS first, while it exists: if it does not answer, its disk goes with it.
        let mut key_id = None;
        if let Ok((vps, record)) = self.vps_of(&found) {
            key_id = record
                .config
                .as_ref()
                .and_then(|c| c.vps_ssh_key_id.clone());
            if let Err(e) = self.remove_from_vps(&vps, &record).await {
                tracing::info!(%host, error = %e, "could not clean the VPS before destroying it; its disk goes with it");
            }
            vps.close().await;
        }
        if let Err(e) = client.destroy_instance(&found.instance).await {
            left.push(format!("VPS instance {} ({e})", found.instance));
        }
        let key_name = plan::ssh_key_name(&self.inner.name, &id);
        let key_ids = match key_id {
            Some(k) => vec![k],
            None => match client.list_ssh_keys().await {
                Ok(keys) => keys
                    .into_iter()
                    .filter(|k| k.name == key_name)
                    .map(|k| k.id)
                    .collect(),
                Err(e) => {
                    left.push(format!(
                        "uploaded SSH key {key_name} (could not list keys: {e})"
                    ));
                    Vec::new()
                }
            },
        };
        for key in key_ids {
            if let Err(e) = client.delete_ssh_key(&key).await {
                left.push(format!("uploaded SSH key {key} ({e})"));
            }
        }
        if left.is_empty() {
            // Keys and pins go last: a second destroy needs them to reach the VPS.
            if let Err(e) = self.inner.keys.host(&id).remove() {
                left.push(format!("local keys ({e})"));
            }
        }
        if left.is_empty() {
            tracing::info!(%host, %id, "host destroyed");
            Ok(id)
        } else {
            Err(ProviderError::DestroyIncomplete { host, left })
        }
    }

    pub(crate) async fn remove_from_vps(
        &self,
        vps: &SshPool,
        record: &HostRecord,
    ) -> Result<(), StepError> {
        let exec: Arc<dyn Executor> = Arc::new(vps.clone());
        let docker = Docker::new(exec.clone());
        if let Some(config) = &record.config {
            docker.rm(&config.container_name, true).await?;
            docker.volume_rm(&config.volume_name).await?;
        }
        self.store(exec)?
            .delete_host_record(record.host_id())
            .await?;
        Ok(())
    }
}

/// What an instance is ordered with ([`VpsDockerProvider::order_instance`]).
pub(crate) struct InstanceOrder<'a> {
    pub(crate) id: &'a HostId,
    pub(crate) name: &'a HostName,
    pub(crate) vps: &'a VpsChoice,
    /// Boot from this snapshot instead of the OS image.
    pub(crate) snapshot: Option<VpsSnapshotId>,
    pub(crate) first_host_key: &'a PrivateKey,
    pub(crate) vps_public: &'a str,
    pub(crate) key_id: &'a SshKeyId,
}

/// The inputs of one create.
struct CreatePlan<'a> {
    id: &'a HostId,
    request: &'a CreateHostRequest,
    image: &'a str,
    vps: &'a VpsChoice,
    origin: Option<&'a SnapshotOrigin>,
    build: Option<&'a crate::build::BuildPlan>,
}

pub(crate) fn record_container(record: &HostRecord) -> String {
    record
        .config
        .as_ref()
        .map(|c| c.container_name.clone())
        .unwrap_or_else(|| plan::container_name(&record.certified_host_data.host_name))
}

/// The state a record and the container's Docker state amount to.
/// `container` is Docker's state word and status text (`exited`, `Exited (0) 3 minutes ago`).
pub(crate) fn derive_status(record: &HostRecord, container: Option<(&str, &str)>) -> HostStatus {
    let data = &record.certified_host_data;
    if let Some(reason) = &data.failure_reason {
        return HostStatus::Failed {
            reason: reason.clone(),
        };
    }
    match container.map(|(state, _)| state) {
        None => HostStatus::Failed {
            reason: "its container is missing on the VPS".into(),
        },
        Some("running") => HostStatus::Running,
        Some("restarting") => HostStatus::Starting,
        Some("paused") => HostStatus::Unreachable {
            reason: "its container is paused".into(),
        },
        Some(_) => HostStatus::Stopped {
            reason: data
                .stop_reason
                .and_then(StopReason::from_state)
                .or_else(|| {
                    // Exit status 0 is the idle watcher's; `docker stop` exits 143.
                    container
                        .and_then(|(_, status)| exit_status(status))
                        .filter(|code| *code == plan::IDLE_EXIT_STATUS)
                        .map(|_| StopReason::Idle)
                }),
        },
    }
}

/// The exit status in Docker's status text, e.g. `Exited (143) 2 minutes ago`.
fn exit_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

pub(crate) fn render_user_data(
    first_host_key: &PrivateKey,
    vps_public: &str,
) -> Result<UserData, StepError> {
    let check = |e: vps_primitives::InvalidValue| StepError::Check(e.to_string());
    let private = private_key_openssh(first_host_key).map_err(crate::keys::KeyStoreError::from)?;
    let public = public_key_line(first_host_key.public_key());
    let mut config = CloudConfig::new(HostKey::ed25519(private.expose(), &public).map_err(check)?);
    config
        .authorized_keys
        .push(AuthorizedKey::parse(vps_public).map_err(check)?);
    Ok(UserData::new(config.render().into_string()))
}

/// Pauses between the lifecycle's own retries (from the toolkit's one [`Backoff`]).
pub(crate) fn retry_pauses() -> vps_primitives::Delays {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(2))
        .with_jitter(0.2)
        .delays()
}

/// Connects `pool`, retrying what may pass (refused connections, a server that rejects
/// our key before cloud-init installed it, a reloading sshd still serving its old key)
/// until `deadline`.
pub(crate) async fn connect_until(pool: &SshPool, deadline: Instant) -> Result<(), StepError> {
    let mut delays = retry_pauses();
    loop {
        match pool.connect().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                // Also a rejected key or another host key: a booting VPS has not installed
                // ours yet (cloud-init's ssh module), for a while.
                let retry = e.is_transient()
                    || matches!(
                        e,
                        SshError::AuthRejected { .. } | SshError::HostKeyMismatch { .. }
                    );
                let remaining = deadline.saturating_duration_since(Instant::now());
                let Some(delay) = delays.next_within(remaining).filter(|_| retry) else {
                    return Err(e.into());
                };
                tracing::debug!(error = %e, ?delay, "connect failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Waits for cloud-init (`cloud-init status --wait`) and checks the readiness marker and
/// Docker. A dropped connection is retried until the deadline.
pub(crate) async fn wait_cloud_init(pool: &SshPool, timeout: Duration) -> Result<(), StepError> {
    let deadline = Instant::now() + timeout;
    let mut delays = retry_pauses();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let command = Command::script(plan::cloud_init_wait_script())
            .timeout(remaining.max(Duration::from_secs(1)))
            .idempotent();
        match pool.run(&command).await {
            Ok(out) => {
                let text = out.stdout_text();
                let (json, verdict) = text
                    .trim_end()
                    .rsplit_once('\n')
                    .unwrap_or(("", text.trim()));
                if verdict.trim() == "MNGR_READY" {
                    return Ok(());
                }
                let summary = CloudInitStatus::parse_json(json)
                    .map(|s| s.summary())
                    .unwrap_or_else(|_| "no status".into());
                return Err(StepError::Check(format!(
                    "cloud-init finished without the readiness marker or a working Docker ({summary}); see /var/log/cloud-init-output.log on the VPS"
                )));
            }
            Err(e) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let Some(delay) = delays.next_within(remaining) else {
                    return Err(e.into());
                };
                tracing::debug!(error = %e, ?delay, "cloud-init wait interrupted; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Waits until the VPS's Docker engine answers (`docker version`), polling with the
/// lifecycle's pauses until `deadline`; the last error if it never does. On an image
/// without Docker, cloud-init installs it meanwhile.
pub(crate) async fn wait_for_docker(docker: &Docker, deadline: Instant) -> Result<(), StepError> {
    let mut delays = retry_pauses();
    loop {
        match docker.server_version().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let Some(delay) = delays.next_within(remaining) else {
                    return Err(e.into());
                };
                tracing::debug!(error = %e, ?delay, "Docker does not answer yet; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Makes `image` present on the VPS: already there, else streamed from this machine's
/// engine (`docker save`, started ahead by [`ImageSpool::prefetch`], into `docker load`
/// over the pooled connection), else pulled there.
pub(crate) async fn ensure_image(
    spool: &ImageSpool,
    vps: &Docker,
    image: &str,
    step: Step,
    progress: &dyn Progress,
) -> Result<(), StepError> {
    if vps.image_exists(image).await? {
        return Ok(());
    }
    if let Some(saved) = spool.get(image).await? {
        progress.output(
            step,
            &format!("copying {image} from this machine to the VPS"),
        );
        saved.load_into(vps).await?;
        return Ok(());
    }
    progress.output(step, &format!("pulling {image} on the VPS"));
    let mut on_line = |_: OutputStream, line: &str| progress.output(step, line);
    vps.pull(image, &mut on_line).await?;
    Ok(())
}

/// Installs the files of the container (sshd config, keys, entrypoint) before its first
/// start, as a tar stream on `docker cp`'s stdin.
pub(crate) async fn install_container_files(
    docker: &Docker,
    container: &str,
    host_dir: &str,
    keys: &ClientKeys,
    idle_env: &str,
) -> Result<(), StepError> {
    let private =
        private_key_openssh(&keys.container_host).map_err(crate::keys::KeyStoreError::from)?;
    let tar = plan::container_files_tar(
        host_dir,
        private.expose(),
        &public_key_line(keys.container_host.public_key()),
        &public_key_line(keys.container.public_key()),
        idle_env,
    )
    .map_err(|e| StepError::Check(format!("could not pack the container's files: {e}")))?;
    let command = docker.cli().cp_tar_into(container, "/").stdin(tar);
    docker.checked(&command).await?;
    Ok(())
}

/// Installs what the image lacks and starts sshd; returns the packages that were missing.
pub(crate) async fn setup_container(
    docker: &Docker,
    container: &str,
    packages: &[String],
) -> Result<Vec<String>, StepError> {
    let options = ExecOptions::script(container, plan::install_packages_script(packages))
        .timeout(Duration::from_secs(600));
    let out = docker.exec(&options).await?;
    let missing = plan::missing_packages(&out.stdout_text());
    if !out.success() {
        return Err(StepError::Check(format!(
            "setting up the container failed (exit {}): {}",
            out.status,
            out.stderr_text().trim()
        )));
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vps_build_args_choose_the_vps_and_the_rest_stays() {
        let config = VpsDockerProviderConfig::default();
        let (choice, rest) = parse_build_args(
            &args(&[
                "--vps-region=fra",
                "--vps-plan=vc2-2c-4gb",
                "--vps-os=1743",
                "-f",
                "Dockerfile",
            ]),
            &config,
        )
        .expect("valid");
        assert_eq!(choice.region.as_str(), "fra");
        assert_eq!(choice.plan.as_str(), "vc2-2c-4gb");
        assert_eq!(choice.os, OsId(1743));
        assert_eq!(rest, ["-f", "Dockerfile"]);
        let (defaults, _) = parse_build_args(&[], &config).expect("valid");
        assert_eq!(defaults.region.as_str(), "ewr");
        assert_eq!(defaults.os, OsId(2136));
    }

    #[test]
    fn bad_vps_build_args_are_refused_with_the_rule() {
        let config = VpsDockerProviderConfig::default();
        let e = parse_build_args(&args(&["--vps-zone=x"]), &config).expect_err("unknown");
        let text = e.to_string();
        assert!(
            text.contains("--vps-zone=x") && text.contains("--vps-region="),
            "{text}"
        );
        let e = parse_build_args(&args(&["--vps-os=debian"]), &config).expect_err("not a number");
        assert!(e.to_string().contains("must be a number"), "{e}");
        assert!(parse_build_args(&args(&["--vps-region=-x"]), &config).is_err());
    }

    #[test]
    fn status_is_derived_from_record_and_container() {
        let data = CertifiedHostData::new(
            HostId::generate(),
            HostName::parse("a").expect("name"),
            Timestamp::now(),
        );
        let mut record = HostRecord::new(data);
        let running = Some(("running", "Up 2 minutes"));
        let killed = Some(("exited", "Exited (137) 1 second ago"));
        let idled = Some(("exited", "Exited (0) 1 second ago"));
        assert_eq!(derive_status(&record, running), HostStatus::Running);
        assert_eq!(
            derive_status(&record, killed),
            HostStatus::Stopped { reason: None }
        );
        assert_eq!(
            derive_status(&record, idled),
            HostStatus::Stopped {
                reason: Some(StopReason::Idle)
            }
        );
        record.certified_host_data.stop_reason = Some(StopReason::User.as_state());
        assert_eq!(
            derive_status(&record, idled),
            HostStatus::Stopped {
                reason: Some(StopReason::User)
            }
        );
        record.certified_host_data.stop_reason = Some(StopReason::Idle.as_state());
        assert_eq!(
            derive_status(&record, killed),
            HostStatus::Stopped {
                reason: Some(StopReason::Idle)
            }
        );
        assert!(matches!(
            derive_status(&record, None),
            HostStatus::Failed { .. }
        ));
        record.certified_host_data.failure_reason = Some("build failed".into());
        assert_eq!(
            derive_status(&record, running),
            HostStatus::Failed {
                reason: "build failed".into()
            }
        );
    }
}

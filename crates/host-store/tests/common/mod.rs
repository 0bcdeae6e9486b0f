//! The test bed of the integration tests: a real Docker engine reached over SSH inside a
//! fake VPS (default), or the local engine (`HOST_STORE_BED=local`, quicker while
//! developing). The state container image is the locally built base image, loaded into
//! the VPS's engine over SSH (`docker save | docker load`); nothing is ever pulled.
//!
//! One fake VPS is shared by the tests of a binary that run at the same time (it is
//! removed when the last of them ends, also on failure); under nextest, which runs each
//! test in its own process, each test boots its own. Tests stay isolated by using their
//! own state container (a unique user id).

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use docker_ssh::{
    Command, Docker, ExecError, ExecIo, Executor, LocalExecutor, Output, SshConfig, SshPool,
    SshSession, SshTarget,
};
use host_store::{HostStore, StateContainerName, StateContainerSpec};
use testbed::{FakeVps, Image, LocalOs, RUN_LABEL};
use tokio::sync::Mutex;
use vps_primitives::ProviderName;

/// A booted fake VPS whose engine has the state image loaded.
pub struct Vps {
    pub vps: FakeVps,
    pub image: String,
}

static SHARED_VPS: LazyLock<Mutex<Weak<Vps>>> = LazyLock::new(|| Mutex::new(Weak::new()));

fn ssh_target(vps: &FakeVps) -> SshTarget {
    let addr = vps.addr(22);
    SshTarget::new(
        addr.ip().to_string(),
        addr.port(),
        "root",
        Arc::new(vps.client_key.private().clone()),
        vps.host_key.public().clone(),
    )
}

async fn boot_vps() -> Vps {
    let started = Instant::now();
    let vps = FakeVps::builder(LocalOs::DockerReady).boot().await;
    let pool = SshPool::new(ssh_target(&vps), SshConfig::default());
    let docker = Docker::new(Arc::new(pool.clone()));
    // sshd answers before dockerd may: wait for the engine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = docker.server_version().await {
        assert!(
            Instant::now() < deadline,
            "dockerd in {} never answered: {e}",
            vps.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The state image: built locally, loaded over SSH, never pulled.
    let image = testbed::image(Image::Base);
    let mut save = tokio::process::Command::new("docker")
        .args(["save", &image])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("docker save starts");
    let mut tar = save.stdout.take().expect("stdout pipe");
    let loaded = docker.load(&mut tar).await.expect("docker load over SSH");
    assert!(save.wait().await.expect("docker save ends").success());
    assert!(
        loaded.iter().any(|r| r == &image),
        "loaded {loaded:?}, wanted {image}"
    );
    pool.close().await;
    eprintln!(
        "[bed] fake VPS {} booted, image {image} loaded in {:.1}s",
        vps.name,
        started.elapsed().as_secs_f64()
    );
    Vps { vps, image }
}

/// The fake VPS shared with the other tests running now, booting one if there is none.
async fn shared_vps() -> Arc<Vps> {
    let mut slot = SHARED_VPS.lock().await;
    if let Some(vps) = slot.upgrade() {
        return vps;
    }
    let vps = Arc::new(boot_vps().await);
    *slot = Arc::downgrade(&vps);
    vps
}

/// Where a test runs its state containers.
pub struct Bed {
    /// Runs commands on the Docker host (the VPS over SSH, or this machine).
    pub exec: Arc<dyn Executor>,
    /// The state container image, present on that engine.
    pub image: String,
    /// The pooled SSH connection to the VPS (`None` on the local bed).
    pub pool: Option<SshPool>,
    vps: Option<Arc<Vps>>,
    containers: std::sync::Mutex<Vec<String>>,
}

impl Bed {
    /// The bed chosen by `HOST_STORE_BED` (`local`, or a fake VPS by default).
    pub async fn new() -> Self {
        if std::env::var("HOST_STORE_BED").as_deref() == Ok("local") {
            return Self {
                exec: Arc::new(LocalExecutor::new()),
                image: testbed::image(Image::Base),
                pool: None,
                vps: None,
                containers: Default::default(),
            };
        }
        let vps = shared_vps().await;
        let pool = SshPool::new(ssh_target(&vps.vps), SshConfig::default());
        Self {
            exec: Arc::new(pool.clone()),
            image: vps.image.clone(),
            pool: Some(pool),
            vps: Some(vps),
            containers: Default::default(),
        }
    }

    /// Whether commands go over SSH to a fake VPS.
    pub fn is_remote(&self) -> bool {
        self.vps.is_some()
    }

    /// A new SSH connection of its own to the VPS (it does not reconnect).
    pub async fn session(&self) -> Option<SshSession> {
        let vps = self.vps.as_ref()?;
        Some(
            SshSession::connect(ssh_target(&vps.vps), &SshConfig::default())
                .await
                .expect("ssh session"),
        )
    }

    /// A state container spec with a fresh name, labelled for this test run; removed
    /// with its volume when the bed is dropped.
    pub fn spec(&self) -> StateContainerSpec {
        let user = format!("test{:016x}", rand::random::<u64>());
        let name = StateContainerName::new("mngr-", &user).expect("valid name");
        self.containers.lock().unwrap().push(name.to_string());
        StateContainerSpec::new(
            name,
            &self.image,
            ProviderName::parse("test").expect("valid"),
        )
        .label(RUN_LABEL, testbed::run_id())
    }

    /// A store in a fresh, running state container.
    pub async fn store(&self) -> HostStore {
        let (store, _) = HostStore::ensure(self.exec.clone(), &self.spec())
            .await
            .expect("state container");
        store
    }

    /// Runs a shell script on the Docker host; panics unless it succeeds.
    pub async fn sh(&self, script: &str) -> String {
        let out = self.try_sh(script).await;
        assert!(out.success(), "`{script}` failed: {out:?}");
        out.stdout_text()
    }

    /// Runs a shell script on the Docker host.
    pub async fn try_sh(&self, script: &str) -> Output {
        self.exec
            .run(&Command::script(script).timeout(Duration::from_secs(60)))
            .await
            .expect("command runs")
    }

    /// Runs a script in the state container of `store`; panics unless it succeeds.
    pub async fn in_state(&self, store: &HostStore, script: &str) -> String {
        let argv = [
            "docker",
            "exec",
            store.container().as_str(),
            "sh",
            "-c",
            script,
        ];
        self.sh(&docker_ssh::quote_argv(argv)).await
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        if self.vps.is_some() {
            // They live inside the fake VPS, which goes away with its last user.
            return;
        }
        for name in names {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", &name])
                .output();
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f", &name])
                .output();
        }
    }
}

/// Counts the commands run through it (to prove "one round trip").
pub struct Counting {
    inner: Arc<dyn Executor>,
    count: std::sync::atomic::AtomicUsize,
}

impl Counting {
    pub fn new(inner: Arc<dyn Executor>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            count: Default::default(),
        })
    }

    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Executor for Counting {
    fn target(&self) -> String {
        self.inner.target()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.execute(command, io).await
    }
}

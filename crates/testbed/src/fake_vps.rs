//! A fake VPS for tests, booted through `local-vps` (the one crate that knows how a local
//! VPS is faked): this is only the test-bed convenience around [`LocalVpsClient`] (fresh
//! keys, default user_data, waiting for a pinned SSH login, cleanup on drop).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use local_vps::{ACCOUNT_LABEL, LocalOs, LocalVpsClient, LocalVpsConfig};
use vps_client::{CreateInstanceRequest, UserData, VpsClient};
use vps_primitives::{PlanId, RegionId, VpsInstanceId};

use crate::{KeyPair, RUN_LABEL, SshClient, remove_labelled, run_id};

/// A cloud-config document that installs `host` as the VPS's only host key and lets root
/// log in with `client`, plus `runcmd` lines.
pub fn default_user_data(host: &KeyPair, client: &KeyPair, runcmd: &[&str]) -> String {
    let mut doc = serde_json::json!({
        "disable_root": false,
        "ssh_pwauth": false,
        "ssh_deletekeys": true,
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": host.private_openssh(),
            "ed25519_public": host.public_openssh(),
        },
        "ssh_authorized_keys": [client.public_openssh()],
    });
    if !runcmd.is_empty() {
        doc["runcmd"] = serde_json::json!(runcmd);
    }
    // JSON is YAML: no YAML library needed, and cloud-init's PyYAML reads it.
    format!("#cloud-config\n{doc:#}\n")
}

/// How to boot a fake VPS.
pub struct FakeVpsBuilder {
    os: LocalOs,
    user_data: Option<String>,
    host_key: KeyPair,
    client_key: KeyPair,
    ports: Vec<u16>,
    boot_timeout: Duration,
}

// By hand: custom user_data carries the VPS's private host key, so it stays out of `Debug`.
impl std::fmt::Debug for FakeVpsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeVpsBuilder")
            .field("os", &self.os)
            .field("user_data", &self.user_data.as_ref().map(|_| "<redacted>"))
            .field("host_key", &self.host_key)
            .field("client_key", &self.client_key)
            .field("ports", &self.ports)
            .field("boot_timeout", &self.boot_timeout)
            .finish()
    }
}

impl FakeVpsBuilder {
    /// The host key the VPS will present (put its private half in custom user_data).
    pub fn host_key(&self) -> &KeyPair {
        &self.host_key
    }

    /// The key root will accept (put its public half in custom user_data).
    pub fn client_key(&self) -> &KeyPair {
        &self.client_key
    }

    /// Boots with this user_data instead of [`default_user_data`]. It must install
    /// [`Self::host_key`] and authorise [`Self::client_key`] for root, or the boot wait
    /// fails.
    pub fn user_data(mut self, doc: impl Into<String>) -> Self {
        self.user_data = Some(doc.into());
        self
    }

    /// Publishes these VPS ports on 127.0.0.1 (default: 22 and 2222; 22 always).
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports = ports.to_vec();
        self
    }

    /// How long to wait for SSH with the pinned key (default 120 s).
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// Creates the VPS with `local-vps` (in an account of its own, labelled with the test
    /// run) and waits until root can log in over SSH with the pinned host key.
    ///
    /// # Panics
    /// When any step fails; what was created is removed.
    pub async fn boot(self) -> FakeVps {
        let account = format!("testbed-{:016x}", rand::random::<u64>());
        let config = LocalVpsConfig::default()
            .account(account.clone())
            .label(RUN_LABEL, run_id())
            .progress(|line| eprintln!("[local-vps] {line}"));
        let client = LocalVpsClient::new(config)
            .unwrap_or_else(|e| panic!("test bed: local-vps refused the config: {e}"));
        let user_data = self
            .user_data
            .unwrap_or_else(|| default_user_data(&self.host_key, &self.client_key, &[]));
        let request = CreateInstanceRequest {
            label: account.clone(),
            region: RegionId::parse("local").expect("a valid region id"),
            plan: PlanId::parse("local").expect("a valid plan id"),
            os: self.os.os_id(),
            snapshot: None,
            user_data: UserData::new(user_data),
            ssh_key_ids: Vec::new(),
            tags: Vec::new(),
            ports: self.ports.clone(),
        };
        // From here on, drop removes whatever the account holds.
        let mut vps = FakeVps {
            client,
            account,
            id: None,
            name: String::new(),
            ports: BTreeMap::new(),
            published: self.ports,
            host_key: self.host_key,
            client_key: self.client_key,
        };
        let id = vps
            .client
            .create_instance(&request)
            .await
            .unwrap_or_else(|e| panic!("test bed: creating a fake VPS: {e}"));
        vps.name = id.to_string();
        vps.id = Some(id);
        vps.login(self.boot_timeout).await;
        vps
    }
}

/// A booted fake VPS (a `local-vps` instance). Dropping it removes everything of it.
pub struct FakeVps {
    client: LocalVpsClient,
    account: String,
    id: Option<VpsInstanceId>,
    /// Its instance id, which is also its container's name.
    pub name: String,
    ports: BTreeMap<u16, SocketAddr>,
    published: Vec<u16>,
    /// The host key the VPS presents.
    pub host_key: KeyPair,
    /// The key root accepts.
    pub client_key: KeyPair,
}

impl std::fmt::Debug for FakeVps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeVps")
            .field("name", &self.name)
            .field("ports", &self.ports)
            .field("host_key", &self.host_key)
            .finish_non_exhaustive()
    }
}

impl FakeVps {
    /// Starts describing a fake VPS of `os` with fresh keys.
    pub fn builder(os: LocalOs) -> FakeVpsBuilder {
        FakeVpsBuilder {
            os,
            user_data: None,
            host_key: KeyPair::generate(),
            client_key: KeyPair::generate(),
            ports: vec![22, 2222],
            boot_timeout: Duration::from_secs(120),
        }
    }

    /// The `local-vps` client that made it (for `preload_image`, snapshots, …).
    pub fn client(&self) -> &LocalVpsClient {
        &self.client
    }

    /// Its instance id.
    pub fn id(&self) -> &VpsInstanceId {
        self.id.as_ref().expect("a booted VPS has an id")
    }

    /// Where VPS port `port` is reached from this machine (127.0.0.1 and a mapped port).
    ///
    /// # Panics
    /// When `port` was not published.
    pub fn addr(&self, port: u16) -> SocketAddr {
        *self
            .ports
            .get(&port)
            .unwrap_or_else(|| panic!("test bed: VPS port {port} is not published"))
    }

    /// A new SSH session as root, pinned to the VPS host key.
    pub async fn ssh(&self) -> SshClient {
        SshClient::connect_retrying(
            self.addr(22),
            self.host_key.public(),
            &self.client_key,
            Duration::from_secs(30),
        )
        .await
    }

    /// Reboots the VPS (systemd shuts down, then boots again) and waits for the pinned
    /// SSH login. Its ports change: [`Self::addr`] gives the new ones.
    pub async fn reboot(&mut self) {
        let id = self.id().clone();
        self.client
            .stop_instance(&id)
            .await
            .unwrap_or_else(|e| panic!("test bed: stopping {id}: {e}"));
        self.client
            .start_instance(&id)
            .await
            .unwrap_or_else(|e| panic!("test bed: starting {id}: {e}"));
        self.login(Duration::from_secs(120)).await;
    }

    /// Copies a local image into the VPS's Docker engine (`local-vps`'s `preload_image`);
    /// returns what `docker load` reports.
    pub async fn preload_image(&self, image: &str) -> Vec<String> {
        self.client
            .preload_image(self.id(), image)
            .await
            .unwrap_or_else(|e| panic!("test bed: loading {image} into {}: {e}", self.name))
    }

    /// Reads the published ports and waits until root logs in with the pinned key.
    async fn login(&mut self, timeout: Duration) {
        let id = self.id().clone();
        self.ports.clear();
        let mut ports = self.published.clone();
        if !ports.contains(&22) {
            ports.insert(0, 22);
        }
        for port in ports {
            let addr = self
                .client
                .socket_addr(&id, port)
                .await
                .unwrap_or_else(|e| panic!("test bed: no address for port {port} of {id}: {e}"));
            assert!(addr.ip().is_loopback(), "port {port} published on {addr}");
            self.ports.insert(port, addr);
        }
        let ssh = SshClient::connect_retrying(
            self.addr(22),
            self.host_key.public(),
            &self.client_key,
            timeout,
        )
        .await;
        ssh.close().await;
    }
}

impl Drop for FakeVps {
    fn drop(&mut self) {
        if let Err(e) = remove_labelled(ACCOUNT_LABEL, &self.account) {
            eprintln!("{e}");
        }
    }
}

//! A fake VPS: a container running systemd, sshd, Docker and the real cloud-init, booted
//! from a NoCloud seed, as `local-vps` does it (this is the bare test-bed version).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Image, KeyPair, SshClient, docker, image, privilege, run_label};

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
    image: Image,
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
            .field("image", &self.image)
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

    /// Publishes these VPS ports on 127.0.0.1 (default: 22 and 2222).
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports = ports.to_vec();
        self
    }

    /// How long to wait for SSH with the pinned key (default 120 s).
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// Creates the container and its `/var/lib/docker` volume, delivers the NoCloud seed,
    /// starts it and waits until root can log in over SSH with the pinned host key.
    ///
    /// # Panics
    /// When any step fails; what was created is removed.
    pub async fn boot(self) -> FakeVps {
        let tag = image(self.image);
        let privilege = privilege();
        let name = format!("mngr-test-vps-{:08x}", rand::random::<u32>());
        let volume = format!("{name}-docker");
        let label = run_label();
        docker(&["volume", "create", "--label", &label, &volume]);
        // From here on, drop removes what exists.
        let mut vps = FakeVps {
            name: name.clone(),
            volume: volume.clone(),
            ports: BTreeMap::new(),
            host_key: self.host_key,
            client_key: self.client_key,
        };
        let mut args: Vec<String> = [
            "create",
            "--name",
            &name,
            "--hostname",
            &name,
            "--label",
            &label,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(local_vps_images::fake_vps_run_args(privilege));
        for port in &self.ports {
            args.push("-p".into());
            args.push(format!("127.0.0.1::{port}"));
        }
        args.extend(["-v".into(), format!("{volume}:/var/lib/docker"), tag]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&argv);

        let seed = std::env::temp_dir().join(format!("{name}-seed"));
        std::fs::create_dir_all(&seed).unwrap_or_else(|e| panic!("test bed: seed dir: {e}"));
        let user_data = self
            .user_data
            .unwrap_or_else(|| default_user_data(&vps.host_key, &vps.client_key, &[]));
        let meta = format!("instance-id: iid-{name}\nlocal-hostname: {name}\n");
        let written = std::fs::write(seed.join("user-data"), user_data)
            .and_then(|()| std::fs::write(seed.join("meta-data"), meta));
        if let Err(e) = written {
            panic!("test bed: writing the seed: {e}");
        }
        let src = format!("{}/.", seed.display());
        let dst = format!("{name}:/var/lib/cloud/seed/nocloud/");
        docker(&["cp", &src, &dst]);
        let _ = std::fs::remove_dir_all(&seed);
        docker(&["start", &name]);

        for port in &self.ports {
            let mapped = docker(&["port", &name, &format!("{port}/tcp")]);
            let addr = mapped
                .lines()
                .find_map(|l| l.parse::<SocketAddr>().ok().filter(SocketAddr::is_ipv4))
                .unwrap_or_else(|| panic!("test bed: no 127.0.0.1 mapping for {port}: {mapped}"));
            assert!(addr.ip().is_loopback(), "port {port} published on {addr}");
            vps.ports.insert(*port, addr);
        }
        let client = SshClient::connect_retrying(
            vps.addr(22),
            vps.host_key.public(),
            &vps.client_key,
            self.boot_timeout,
        )
        .await;
        client.close().await;
        vps
    }
}

/// A booted fake VPS. Dropping it removes the container and its volume.
#[derive(Debug)]
pub struct FakeVps {
    /// Container name (also its hostname).
    pub name: String,
    volume: String,
    ports: BTreeMap<u16, SocketAddr>,
    /// The host key the VPS presents.
    pub host_key: KeyPair,
    /// The key root accepts.
    pub client_key: KeyPair,
}

impl FakeVps {
    /// Starts describing a fake VPS made from `image` with fresh keys.
    pub fn builder(image: Image) -> FakeVpsBuilder {
        FakeVpsBuilder {
            image,
            user_data: None,
            host_key: KeyPair::generate(),
            client_key: KeyPair::generate(),
            ports: vec![22, 2222],
            boot_timeout: Duration::from_secs(120),
        }
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
}

impl Drop for FakeVps {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", "-f", &self.volume])
            .output();
    }
}

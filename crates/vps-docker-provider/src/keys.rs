//! The provider instance's key directory: per host, its client keys, the container's host
//! key and its pins.
//!
//! ```text
//! <key dir>/                         0700
//!   hosts/<host id>/                 0700
//!     vps_client_key{,.pub}          client key for root on the VPS (uploaded to the provider)
//!     container_client_key{,.pub}    client key for root in the container
//!     container_host_key{,.pub}      the container sshd's host key
//!     known_hosts                    the pins: `<host id>.vps` and `<host id>.container`
//! ```
//!
//! Pins are keyed by the host, through an alias, never by an address: a cloud IP is reused
//! by the next customer, and a local VPS's ports change on every start, so `ip:port` would
//! either break or trust the wrong machine. OpenSSH reads the same file with
//! `-o HostKeyAlias=<host id>.container`. The VPS's own host private key is never kept
//! here: the one in the user_data is replaced on the VPS at create, and only its public half
//! is pinned.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use docker_ssh::{
    KeyError, KnownHosts, KnownHostsError, PrivateKey, PublicKey, create_private_dir,
    generate_ed25519, load_private_key, write_keypair,
};
use vps_primitives::HostId;

/// A key or pin file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The pin file.
    #[error(transparent)]
    Pins(#[from] KnownHostsError),
    /// A directory listing or removal.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No pin for the host: it was made elsewhere, or its pins were removed.
    #[error(
        "no pinned {what} host key for {host} in {}; this machine did not create the host (copy its key directory here) or its pins were removed",
        path.display()
    )]
    NotPinned {
        /// `VPS` or `container`.
        what: &'static str,
        /// The host.
        host: HostId,
        /// The pin file.
        path: PathBuf,
    },
}

/// The key directory of one provider instance.
#[derive(Clone, Debug)]
pub struct KeyStore {
    root: PathBuf,
}

impl KeyStore {
    /// Uses `root` (created 0700 on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The keys of one host.
    pub fn host(&self, id: &HostId) -> HostKeys {
        HostKeys {
            id: id.clone(),
            dir: self.root.join("hosts").join(id.as_str()),
        }
    }

    /// The hosts that have a key directory here (for leak cleanup); entries that are not
    /// host ids are ignored.
    pub fn hosts(&self) -> Result<Vec<HostId>, KeyStoreError> {
        let dir = self.root.join("hosts");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyStoreError::Io {
                    action: "list",
                    path: dir,
                    source,
                });
            }
        };
        let mut ids: Vec<HostId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| HostId::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// The key files and pins of one host.
#[derive(Clone, Debug)]
pub struct HostKeys {
    id: HostId,
    dir: PathBuf,
}

/// The private keys a create needs, loaded or generated.
#[derive(Clone)]
pub struct ClientKeys {
    /// Root on the VPS.
    pub vps: Arc<PrivateKey>,
    /// Root in the container.
    pub container: Arc<PrivateKey>,
    /// The container sshd's host key.
    pub container_host: Arc<PrivateKey>,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("vps", &docker_ssh::fingerprint(self.vps.public_key()))
            .field(
                "container",
                &docker_ssh::fingerprint(self.container.public_key()),
            )
            .field(
                "container_host",
                &docker_ssh::fingerprint(self.container_host.public_key()),
            )
            .finish()
    }
}

const VPS_CLIENT: &str = "vps_client_key";
const CONTAINER_CLIENT: &str = "container_client_key";
const CONTAINER_HOST: &str = "container_host_key";

impl HostKeys {
    /// The host's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Generates the three key pairs (private keys 0600 from creation, directories 0700).
    pub fn generate(&self) -> Result<ClientKeys, KeyStoreError> {
        create_private_dir(&self.dir)?;
        let keys = ClientKeys {
            vps: Arc::new(generate_ed25519()?),
            container: Arc::new(generate_ed25519()?),
            container_host: Arc::new(generate_ed25519()?),
        };
        write_keypair(&self.dir.join(VPS_CLIENT), &keys.vps)?;
        write_keypair(&self.dir.join(CONTAINER_CLIENT), &keys.container)?;
        write_keypair(&self.dir.join(CONTAINER_HOST), &keys.container_host)?;
        Ok(keys)
    }

    /// Loads the three key pairs.
    pub fn load(&self) -> Result<ClientKeys, KeyStoreError> {
        Ok(ClientKeys {
            vps: Arc::new(load_private_key(&self.dir.join(VPS_CLIENT))?),
            container: Arc::new(load_private_key(&self.dir.join(CONTAINER_CLIENT))?),
            container_host: Arc::new(load_private_key(&self.dir.join(CONTAINER_HOST))?),
        })
    }

    /// How long ago the keys were generated (the VPS client key's file time): the first
    /// thing a create makes, so a create that made anything started at least this long
    /// ago. `None` if there are no keys.
    pub fn age(&self) -> Option<std::time::Duration> {
        let modified = fs::metadata(self.dir.join(VPS_CLIENT))
            .ok()?
            .modified()
            .ok()?;
        Some(modified.elapsed().unwrap_or_default())
    }

    /// The container client key's file (for OpenSSH's `-i`).
    pub fn container_client_key_path(&self) -> PathBuf {
        self.dir.join(CONTAINER_CLIENT)
    }

    /// The pin file (for OpenSSH's `UserKnownHostsFile`).
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    fn known_hosts(&self) -> KnownHosts {
        KnownHosts::new(self.known_hosts_path())
    }

    /// The alias under which the VPS's key is pinned.
    pub fn vps_alias(&self) -> String {
        format!("{}.vps", self.id)
    }

    /// The alias under which the container's key is pinned (OpenSSH `HostKeyAlias`).
    pub fn container_alias(&self) -> String {
        format!("{}.container", self.id)
    }

    /// Pins `key` as the VPS's host key, replacing an older one.
    pub fn pin_vps(&self, key: &PublicKey) -> Result<(), KeyStoreError> {
        Ok(self.known_hosts().add(&self.vps_alias(), 22, key)?)
    }

    /// Pins `key` as the container's host key, replacing an older one.
    pub fn pin_container(&self, key: &PublicKey) -> Result<(), KeyStoreError> {
        Ok(self.known_hosts().add(&self.container_alias(), 22, key)?)
    }

    /// The VPS's pinned key.
    pub fn vps_pin(&self) -> Result<PublicKey, KeyStoreError> {
        self.pin(&self.vps_alias(), "VPS")
    }

    /// The container's pinned key.
    pub fn container_pin(&self) -> Result<PublicKey, KeyStoreError> {
        self.pin(&self.container_alias(), "container")
    }

    fn pin(&self, alias: &str, what: &'static str) -> Result<PublicKey, KeyStoreError> {
        self.known_hosts()
            .lookup(alias, 22)?
            .into_iter()
            .next()
            .ok_or_else(|| KeyStoreError::NotPinned {
                what,
                host: self.id.clone(),
                path: self.known_hosts_path(),
            })
    }

    /// Removes the host's keys and pins. A directory already gone is a success.
    pub fn remove(&self) -> Result<(), KeyStoreError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeyStoreError::Io {
                action: "remove",
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("exists").permissions().mode() & 0o777
    }

    #[test]
    fn keys_are_private_and_pins_follow_the_host_not_an_address() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::new(tmp.path().join("keys"));
        let id = HostId::generate();
        let host = store.host(&id);
        let keys = host.generate().expect("generate");
        assert_eq!(mode(&store.root().join("hosts")), 0o700);
        assert_eq!(mode(host.dir()), 0o700);
        for name in [VPS_CLIENT, CONTAINER_CLIENT, CONTAINER_HOST] {
            assert_eq!(mode(&host.dir().join(name)), 0o600, "{name}");
        }
        let loaded = host.load().expect("load");
        assert_eq!(loaded.vps.public_key(), keys.vps.public_key());
        assert_eq!(
            loaded.container_host.public_key(),
            keys.container_host.public_key()
        );

        assert!(matches!(
            host.vps_pin(),
            Err(KeyStoreError::NotPinned { .. })
        ));
        let first = generate_ed25519().expect("key");
        let rotated = generate_ed25519().expect("key");
        host.pin_vps(first.public_key()).expect("pin");
        host.pin_vps(rotated.public_key()).expect("re-pin");
        assert_eq!(&host.vps_pin().expect("pinned"), rotated.public_key());
        host.pin_container(keys.container_host.public_key())
            .expect("pin container");
        assert_eq!(
            &host.container_pin().expect("pinned"),
            keys.container_host.public_key()
        );
        let text = fs::read_to_string(host.known_hosts_path()).expect("pins");
        assert!(!text.contains("127.0.0.1"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(&format!("{id}.vps ")), "{text}");
        assert!(text.contains(&format!("{id}.container ")), "{text}");

        assert_eq!(store.hosts().expect("list"), vec![id]);
        host.remove().expect("remove");
        host.remove().expect("second remove is a success");
        assert!(store.hosts().expect("list").is_empty());
    }
}

//! Ed25519 key generation and key files.
//!
//! Private keys are written with mode 0600 *when the file is created* (there is never a
//! moment where the key sits in a file others can read), into directories created 0700,
//! through a temporary file that is renamed into place (a reader never sees half a key).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// A key file could not be created, read or parsed. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `read`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid OpenSSH key.
    #[error("{} is not a valid OpenSSH {kind} key: {detail}", path.display())]
    Parse {
        /// The file (or `<inline>` for text).
        path: PathBuf,
        /// `private` or `public`.
        kind: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The private key file can be read by other users; OpenSSH refuses such keys too.
    #[error(
        "private key {} has mode {mode:04o}, readable by others; it must be 0600 \
         (check who else could have read it, then `chmod 600` it)",
        path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Passphrase-protected keys are not supported.
    #[error("private key {} is passphrase-protected, which is not supported", path.display())]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// Key generation failed.
    #[error("could not generate an Ed25519 key: {0}")]
    Generate(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Generates a new Ed25519 key pair in memory.
pub fn generate_ed25519() -> Result<PrivateKey, KeyError> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| KeyError::Generate(e.to_string()))
}

/// The `SHA256:…` fingerprint of a public key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key as one `authorized_keys` / `.pub` line: `ssh-ed25519 AAAA… [comment]`.
pub fn public_key_line(key: &PublicKey) -> String {
    key.to_openssh()
        .unwrap_or_else(|_| format!("{} <unencodable>", key.algorithm()))
}

/// Parses a public key line (`ssh-ed25519 AAAA… [comment]`): the toolkit's one
/// text-level check ([`vps_primitives::PublicKeyLine`]: one line, a known type, base64),
/// then the key itself decoded with russh.
pub fn parse_public_key(line: &str) -> Result<PublicKey, KeyError> {
    let parse_error = |detail: String| KeyError::Parse {
        path: PathBuf::from("<inline>"),
        kind: "public",
        detail,
    };
    let line =
        vps_primitives::PublicKeyLine::parse(line).map_err(|e| parse_error(e.to_string()))?;
    PublicKey::from_openssh(line.as_str()).map_err(|e| parse_error(e.to_string()))
}

/// The private key in OpenSSH format (`-----BEGIN OPENSSH PRIVATE KEY-----`). The text
/// is zeroized when dropped; handle it as a secret (stdin, never argv or logs).
pub fn private_key_openssh(key: &PrivateKey) -> Result<SecretText, KeyError> {
    key.to_openssh(LineEnding::LF)
        .map(SecretText)
        .map_err(|e| KeyError::Generate(e.to_string()))
}

/// Secret text (a private key in OpenSSH format): zeroized when dropped, and its
/// `Debug` prints `SecretText(<redacted>)`.
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// The text. Do not log it; pass it over stdin, never in a command line.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// Creates `dir` and missing parents with mode 0700 (existing directories are left as
/// they are).
pub fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory", dir))
}

/// The directory holding `path` (`.` for a bare file name) and the file's name.
fn dir_and_name(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// Creates `path`'s directory (0700) if needed, then opens and locks `.<name>.lock` beside
/// `path` (created 0600). The lock is held until the returned file is dropped, and
/// serialises writers across threads and processes.
pub(crate) fn lock_beside(path: &Path) -> Result<fs::File, KeyError> {
    let (dir, name) = dir_and_name(path);
    create_private_dir(dir)?;
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err("open lock file", &lock_path))?;
    lock.lock().map_err(io_err("lock", &lock_path))?;
    Ok(lock)
}

/// Writes `bytes` to `path` atomically: a new temporary file in the same directory,
/// created with `mode`, is filled, synced, and renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let (dir, name) = dir_and_name(path);
    let suffix: u64 = rand::random();
    let tmp = dir.join(format!(".{name}.tmp-{suffix:016x}"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
        if let Ok(d) = File::open(dir) {
            // Make the rename durable; not all file systems support syncing a directory.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a key pair: the private key to `path` (mode 0600 from creation, OpenSSH format)
/// and the public key to `path.pub` (0644). The directory is created 0700 if missing.
/// Existing files are replaced atomically.
pub fn write_keypair(path: &Path, key: &PrivateKey) -> Result<(), KeyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let private = private_key_openssh(key)?;
    write_atomic(path, private.expose().as_bytes(), 0o600)?;
    let public = format!("{}\n", public_key_line(key.public_key()));
    write_atomic(&pub_path(path), public.as_bytes(), 0o644)
}

/// `path` with `.pub` appended.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Loads an unencrypted OpenSSH private key; refuses a file readable by group or others.
pub fn load_private_key(path: &Path) -> Result<PrivateKey, KeyError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mode = file
        .metadata()
        .map_err(io_err("stat", path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(io::read_to_string(file).map_err(io_err("read", path))?);
    let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| KeyError::Parse {
        path: path.to_owned(),
        kind: "private",
        detail: e.to_string(),
    })?;
    if key.is_encrypted() {
        return Err(KeyError::Encrypted {
            path: path.to_owned(),
        });
    }
    Ok(key)
}

/// Loads a public key file (`.pub` or one `authorized_keys` line).
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    PublicKey::from_openssh(text.trim()).map_err(|e| KeyError::Parse {
        path: path.to_owned(),
        kind: "public",
        detail: e.to_string(),
    })
}

/// Loads the key pair at `path`, or generates and writes a new Ed25519 pair if there is
/// no private key yet. Safe when several processes do it at once: they serialise on a lock
/// file (`.<name>.lock` next to the key) and all end up with the same key. A private key
/// whose `.pub` is missing keeps the private key and rewrites the `.pub`; it is never
/// silently replaced.
pub fn load_or_generate_keypair(path: &Path) -> Result<PrivateKey, KeyError> {
    let lock = lock_beside(path)?;
    let result = if path.exists() {
        let key = load_private_key(path)?;
        let pub_file = pub_path(path);
        if !pub_file.exists() {
            let public = format!("{}\n", public_key_line(key.public_key()));
            write_atomic(&pub_file, public.as_bytes(), 0o644)?;
        }
        Ok(key)
    } else {
        let key = generate_ed25519()?;
        write_keypair(path, &key)?;
        Ok(key)
    };
    drop(lock);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn generated_keys_round_trip_through_files_with_strict_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("new/keys/id_ed25519");
        let key = generate_ed25519().expect("generate");
        write_keypair(&path, &key).expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&pub_path(&path)), 0o644);
        assert_eq!(mode(&tmp.path().join("new")), 0o700);
        assert_eq!(mode(&tmp.path().join("new/keys")), 0o700);
        let loaded = load_private_key(&path).expect("load");
        assert_eq!(loaded.public_key().key_data(), key.public_key().key_data());
        let public = load_public_key(&pub_path(&path)).expect("load pub");
        assert_eq!(public.key_data(), key.public_key().key_data());
        assert!(fingerprint(&public).starts_with("SHA256:"));
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn private_key_is_0600_even_with_a_permissive_umask_file_already_there() {
        // Replacing an existing world-readable file still yields 0600: the new file is
        // created with the mode and renamed over the old one.
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_keypair(&path, &generate_ed25519().expect("gen")).expect("write");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn refuses_readable_private_keys_and_garbage() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        write_keypair(&path, &generate_ed25519().expect("gen")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = load_private_key(&path).expect_err("insecure");
        assert!(err.to_string().contains("0640"), "{err}");
        let bad = tmp.path().join("bad");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&bad)
            .and_then(|mut f| f.write_all(b"not a key"))
            .expect("write");
        let err = load_private_key(&bad).expect_err("garbage");
        assert!(matches!(err, KeyError::Parse { .. }), "{err}");
        assert!(parse_public_key("ssh-ed25519 !!!").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let key = generate_ed25519().expect("gen");
        let pem = private_key_openssh(&key).expect("encode");
        assert!(pem.expose().contains("BEGIN OPENSSH PRIVATE KEY"));
        assert_eq!(format!("{pem:?}"), "SecretText(<redacted>)");
    }

    #[test]
    fn load_or_generate_is_stable_and_race_free() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("keys/shared");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || load_or_generate_keypair(&p).expect("key"))
            })
            .collect();
        let keys: Vec<PrivateKey> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        for k in &keys {
            assert_eq!(k.public_key().key_data(), keys[0].public_key().key_data());
        }
        // An orphan private key is kept and its .pub restored.
        fs::remove_file(pub_path(&path)).expect("rm pub");
        let again = load_or_generate_keypair(&path).expect("key");
        assert_eq!(
            again.public_key().key_data(),
            keys[0].public_key().key_data()
        );
        let public = load_public_key(&pub_path(&path)).expect("pub");
        assert_eq!(public.key_data(), keys[0].public_key().key_data());
    }
}

//! Private known_hosts files: add (replacing an older key of the same type), remove,
//! lookup. Writers serialise on a lock file and replace the file atomically, so
//! concurrent writers never lose each other's entries and readers never see half a file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use russh::keys::PublicKey;

use crate::glob::glob_match;
use crate::keys::{KeyError, lock_beside, write_atomic};

/// A known_hosts file could not be read or written, or a host name cannot be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnownHostsError {
    /// Reading, locking or writing failed.
    #[error("could not {action} known_hosts file {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing the file (or creating its directory) failed.
    #[error(transparent)]
    Write(#[from] KeyError),
    /// The host name would corrupt the file or act as a wildcard.
    #[error(
        "host {host:?} cannot be stored in a known_hosts file \
         (it is empty or contains whitespace, `,`, `*`, `?`, `!`, `#`, `|`, `@`, `[` or `]`; \
         give IPv6 addresses without brackets)"
    )]
    InvalidHost {
        /// The rejected host.
        host: String,
    },
    /// The key could not be encoded.
    #[error("could not encode the host key for {host}: {detail}")]
    Encode {
        /// The host.
        host: String,
        /// Why.
        detail: String,
    },
}

/// The known_hosts pattern for a host and port: `host` for port 22, `[host]:port`
/// otherwise (as OpenSSH writes them).
///
/// ```
/// assert_eq!(docker_ssh::host_pattern("203.0.113.7", 22), "203.0.113.7");
/// assert_eq!(docker_ssh::host_pattern("127.0.0.1", 2222), "[127.0.0.1]:2222");
/// ```
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The literal patterns that name `host:port`: [`host_pattern`], and for port 22 also
/// `[host]:22`, which OpenSSH (and [`KnownHosts::lookup`]) treat as the same host.
/// [`KnownHosts::add`] and [`KnownHosts::remove`] edit all of them, so no spelling of a
/// host keeps a key that was rotated out or removed.
fn spellings(host: &str, port: u16) -> Vec<String> {
    let mut names = vec![host_pattern(host, port)];
    if port == 22 {
        names.push(format!("[{host}]:22"));
    }
    names
}

fn validate_host(host: &str) -> Result<(), KnownHostsError> {
    let bad = host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || ",*?!#|@[]".contains(c) || c.is_control());
    if bad {
        return Err(KnownHostsError::InvalidHost {
            host: host.to_owned(),
        });
    }
    Ok(())
}

/// One parsed, non-comment line.
struct Entry<'a> {
    marker: Option<&'a str>,
    patterns: &'a str,
    key_type: &'a str,
    /// Everything after the patterns field (key type, key, comment), verbatim.
    rest: &'a str,
}

fn parse_line(line: &str) -> Option<Entry<'_>> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let (marker, body) = if trimmed.starts_with('@') {
        let (m, b) = trimmed.split_once(char::is_whitespace)?;
        (Some(m), b.trim_start())
    } else {
        (None, trimmed)
    };
    let (patterns, rest) = body.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let key_type = rest.split_whitespace().next()?;
    Some(Entry {
        marker,
        patterns,
        key_type,
        rest,
    })
}

/// Whether a comma-separated pattern list matches `names` (OpenSSH semantics: `*` and `?`
/// wildcards, `!` negation wins, hashed `|1|` patterns are not supported and never match).
fn patterns_match(patterns: &str, names: &[String]) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        let (negated, p) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if p.starts_with('|') {
            continue;
        }
        // Only `*` and `?` are special in host patterns: escape the rest for glob_match.
        let escaped: String = p
            .to_ascii_lowercase()
            .chars()
            .flat_map(|c| match c {
                '[' | ']' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        if names
            .iter()
            .any(|n| glob_match(&escaped, &n.to_ascii_lowercase(), false))
        {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// A private known_hosts file (never the user's `~/.ssh/known_hosts`).
///
/// ```
/// use docker_ssh::{KnownHosts, generate_ed25519};
///
/// let dir = tempfile::tempdir()?;
/// let known_hosts = KnownHosts::new(dir.path().join("vps_known_hosts"));
/// let host_key = generate_ed25519()?.public_key().clone();
/// known_hosts.add("127.0.0.1", 2222, &host_key)?;
/// assert_eq!(known_hosts.lookup("127.0.0.1", 2222)?, vec![host_key]);
/// assert_eq!(known_hosts.remove("127.0.0.1", 2222)?, 1);
/// assert!(known_hosts.lookup("127.0.0.1", 2222)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    /// The known_hosts file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, action: &'static str) -> impl FnOnce(io::Error) -> KnownHostsError + '_ {
        move |source| KnownHostsError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<String, KnownHostsError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(self.io("read")(e)),
        }
    }

    /// The keys pinned for `host:port`, in file order (empty if none or no file).
    /// `@revoked` keys are left out; `@cert-authority` lines and hashed entries are ignored.
    pub fn lookup(&self, host: &str, port: u16) -> Result<Vec<PublicKey>, KnownHostsError> {
        let names = spellings(host, port);
        let text = self.read()?;
        let mut keys = Vec::new();
        let mut revoked = Vec::new();
        for entry in text.lines().filter_map(parse_line) {
            if !patterns_match(entry.patterns, &names) {
                continue;
            }
            let Ok(key) = PublicKey::from_openssh(entry.rest) else {
                continue;
            };
            match entry.marker {
                None => keys.push(key),
                Some("@revoked") => revoked.push(key),
                Some(_) => {}
            }
        }
        keys.retain(|k| !revoked.iter().any(|r| r.key_data() == k.key_data()));
        keys.dedup_by(|a, b| a.key_data() == b.key_data());
        Ok(keys)
    }

    /// Pins `key` for `host:port`: adds a `pattern type base64` line, replacing any older
    /// key of the same type for that host and port (other types stay). For port 22 that
    /// is both `host` and `[host]:22` lines, the two spellings [`lookup`](Self::lookup)
    /// accepts.
    pub fn add(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), KnownHostsError> {
        validate_host(host)?;
        let pattern = host_pattern(host, port);
        let encoded = key.to_openssh().map_err(|e| KnownHostsError::Encode {
            host: pattern.clone(),
            detail: e.to_string(),
        })?;
        let mut words = encoded.split_whitespace();
        let (Some(key_type), Some(data)) = (words.next(), words.next()) else {
            return Err(KnownHostsError::Encode {
                host: pattern,
                detail: "unexpected public key encoding".to_owned(),
            });
        };
        let new_line = format!("{pattern} {key_type} {data}");
        let key_type = key_type.to_owned();
        let names = spellings(host, port);
        self.rewrite(|lines| {
            let mut out = drop_patterns(lines, &names, |t| t == key_type);
            out.push(new_line.clone());
            (out, ())
        })
    }

    /// Removes every key pinned for `host:port` (for port 22: on `host` and `[host]:22`
    /// lines alike); returns how many lines named it.
    pub fn remove(&self, host: &str, port: u16) -> Result<usize, KnownHostsError> {
        validate_host(host)?;
        let names = spellings(host, port);
        self.rewrite(|lines| {
            let before = count_patterns(lines, &names);
            let out = drop_patterns(lines, &names, |_| true);
            (out, before)
        })
    }

    /// Runs `edit` on the current lines under the lock, and writes the result atomically.
    fn rewrite<T>(
        &self,
        edit: impl FnOnce(&[&str]) -> (Vec<String>, T),
    ) -> Result<T, KnownHostsError> {
        let lock = lock_beside(&self.path)?;
        let text = self.read()?;
        let lines: Vec<&str> = text.lines().collect();
        let (out, result) = edit(&lines);
        let mut content = out.join("\n");
        if !content.is_empty() {
            content.push('\n');
        }
        write_atomic(&self.path, content.as_bytes(), 0o600)?;
        drop(lock);
        Ok(result)
    }
}

/// Whether `pattern` is literally one of `names` (known_hosts names are case-insensitive).
fn is_one_of(pattern: &str, names: &[String]) -> bool {
    names.iter().any(|n| pattern.eq_ignore_ascii_case(n))
}

/// The unmarked lines whose pattern list names one of `names` literally.
fn count_patterns(lines: &[&str], names: &[String]) -> usize {
    lines
        .iter()
        .filter_map(|l| parse_line(l))
        .filter(|e| e.marker.is_none())
        .filter(|e| e.patterns.split(',').any(|p| is_one_of(p, names)))
        .count()
}

/// Removes `names` from the pattern lists of unmarked lines whose key type passes
/// `type_filter`; lines left without patterns are dropped; everything else is kept as is.
fn drop_patterns(
    lines: &[&str],
    names: &[String],
    type_filter: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len() + 1);
    for line in lines {
        let Some(entry) = parse_line(line) else {
            out.push((*line).to_owned());
            continue;
        };
        if entry.marker.is_some() || !type_filter(entry.key_type) {
            out.push((*line).to_owned());
            continue;
        }
        let all: Vec<&str> = entry.patterns.split(',').collect();
        let kept: Vec<&str> = all
            .iter()
            .copied()
            .filter(|p| !is_one_of(p, names))
            .collect();
        if kept.len() == all.len() {
            out.push((*line).to_owned());
        } else if !kept.is_empty() {
            out.push(format!("{} {}", kept.join(","), entry.rest));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_ed25519;

    fn key() -> PublicKey {
        generate_ed25519().expect("gen").public_key().clone()
    }

    #[test]
    fn add_replaces_same_type_and_keeps_others() {
        let tmp = tempfile::tempdir().expect("tmp");
        let kh = KnownHosts::new(tmp.path().join("sub/known_hosts"));
        let (a, b, other) = (key(), key(), key());
        kh.add("10.0.0.1", 22, &a).expect("add");
        kh.add("10.0.0.2", 2222, &other).expect("add");
        kh.add("10.0.0.1", 22, &b).expect("replace");
        assert_eq!(kh.lookup("10.0.0.1", 22).expect("lookup"), vec![b.clone()]);
        assert_eq!(kh.lookup("10.0.0.2", 2222).expect("lookup"), vec![other]);
        assert!(kh.lookup("10.0.0.2", 22).expect("lookup").is_empty());
        let text = fs::read_to_string(kh.path()).expect("read");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("[10.0.0.2]:2222 ssh-ed25519 "), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(kh.path()).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn foreign_lines_are_preserved_and_understood() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("known_hosts");
        let (k1, k2, k3) = (key(), key(), key());
        let line = |p: &str, k: &PublicKey| format!("{p} {}", public_key_line_plain(k));
        let content = [
            "# a comment".to_owned(),
            line("alias,10.0.0.1", &k1),
            line("10.0.0.*,!10.0.0.9", &k2),
            format!("@revoked 10.0.0.1 {}", public_key_line_plain(&k3)),
            line("10.0.0.1", &k3),
            "|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAA".to_owned(),
            "garbage".to_owned(),
        ]
        .join("\n");
        fs::write(&path, format!("{content}\n")).expect("write");
        let kh = KnownHosts::new(&path);
        assert_eq!(
            kh.lookup("10.0.0.1", 22).expect("lookup"),
            vec![k1.clone(), k2.clone()]
        );
        assert_eq!(kh.lookup("10.0.0.5", 22).expect("lookup"), vec![k2.clone()]);
        assert!(kh.lookup("10.0.0.9", 22).expect("lookup").is_empty());
        assert_eq!(kh.lookup("ALIAS", 22).expect("lookup"), vec![k1.clone()]);

        // Replacing 10.0.0.1's ed25519 key splits it out of the shared line.
        let new = key();
        kh.add("10.0.0.1", 22, &new).expect("add");
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# a comment\nalias ssh-ed25519 "),
            "{text}"
        );
        assert!(text.contains("@revoked 10.0.0.1 "), "{text}");
        assert!(text.contains("|1|c2FsdA=="), "{text}");
        assert!(text.contains("\ngarbage\n"), "{text}");
        assert_eq!(
            kh.lookup("10.0.0.1", 22).expect("lookup"),
            vec![k2.clone(), new]
        );
        assert_eq!(kh.remove("10.0.0.1", 22).expect("remove"), 1);
        assert_eq!(kh.lookup("alias", 22).expect("lookup"), vec![k1]);
    }

    fn public_key_line_plain(k: &PublicKey) -> String {
        k.to_openssh()
            .expect("encode")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn rejects_hosts_that_would_corrupt_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let kh = KnownHosts::new(tmp.path().join("kh"));
        for host in [
            "", "a b", "a,b", "*", "h?", "!h", "h\nx", "#", "|1|x", "@revoked", "[::1]",
        ] {
            assert!(
                matches!(
                    kh.add(host, 22, &key()),
                    Err(KnownHostsError::InvalidHost { .. })
                ),
                "{host:?}"
            );
        }
        assert!(!kh.path().exists());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("kh");
        let keys: Vec<PublicKey> = (0..16).map(|_| key()).collect();
        let handles: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (p, k) = (path.clone(), k.clone());
                std::thread::spawn(move || {
                    KnownHosts::new(p)
                        .add("127.0.0.1", 30000 + i as u16, &k)
                        .expect("add")
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let kh = KnownHosts::new(&path);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                kh.lookup("127.0.0.1", 30000 + i as u16).expect("lookup"),
                vec![k.clone()]
            );
        }
    }

    #[test]
    fn add_and_remove_edit_both_spellings_of_port_22() {
        // `lookup(host, 22)` trusts `host` and `[host]:22` lines alike, so `add` and
        // `remove` must edit both, or a rotated-out or removed key stays trusted.
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("known_hosts");
        let (old, shared, new) = (key(), key(), key());
        fs::write(
            &path,
            format!(
                "[10.0.0.1]:22 {}\n10.0.0.1,[10.0.0.1]:22 {}\n[10.0.0.1]:2222 {}\n",
                public_key_line_plain(&old),
                public_key_line_plain(&shared),
                public_key_line_plain(&old),
            ),
        )
        .expect("write");
        let kh = KnownHosts::new(&path);
        assert_eq!(
            kh.lookup("10.0.0.1", 22).expect("lookup"),
            vec![old.clone(), shared.clone()]
        );

        // A rotation replaces every ed25519 key of the host, whichever way it is spelled.
        kh.add("10.0.0.1", 22, &new).expect("add");
        assert_eq!(
            kh.lookup("10.0.0.1", 22).expect("lookup"),
            vec![new.clone()]
        );
        // Other ports are other hosts.
        assert_eq!(
            kh.lookup("10.0.0.1", 2222).expect("lookup"),
            vec![old.clone()]
        );

        // Removal forgets both spellings.
        fs::write(
            &path,
            format!(
                "[10.0.0.1]:22 {}\n10.0.0.1 {}\n[10.0.0.1]:2222 {}\n",
                public_key_line_plain(&old),
                public_key_line_plain(&new),
                public_key_line_plain(&old),
            ),
        )
        .expect("write");
        assert_eq!(kh.remove("10.0.0.1", 22).expect("remove"), 2);
        assert!(kh.lookup("10.0.0.1", 22).expect("lookup").is_empty());
        assert_eq!(kh.lookup("10.0.0.1", 2222).expect("lookup"), vec![old]);
    }

    #[test]
    fn missing_file_is_empty() {
        let tmp = tempfile::tempdir().expect("tmp");
        let kh = KnownHosts::new(tmp.path().join("none"));
        assert!(kh.lookup("h", 22).expect("lookup").is_empty());
        assert_eq!(kh.remove("h", 22).expect("remove"), 0);
    }
}

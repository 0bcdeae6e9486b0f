//! The validated pieces of a [`crate::CloudConfig`].

use std::fmt;

use vps_primitives::{InvalidValue, PublicKeyLine};

/// The VPS's SSH host key pair (Ed25519), which the client pins before it first connects.
///
/// `Debug` shows the public key only.
///
/// ```
/// use cloud_init::HostKey;
/// let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
/// let key = HostKey::ed25519(private, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34")?;
/// assert!(!format!("{key:?}").contains("b3BlbnNzaC1rZXktdjEAAAAA"));
/// # Ok::<(), vps_primitives::InvalidValue>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    private_openssh: String,
    public: String,
}

const PRIVATE_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PRIVATE_END: &str = "-----END OPENSSH PRIVATE KEY-----";

impl HostKey {
    /// Checks and wraps an Ed25519 key pair: the private key in OpenSSH's format
    /// (`-----BEGIN OPENSSH PRIVATE KEY-----`, unencrypted), the public key as one
    /// `ssh-ed25519 <base64> [comment]` line (the comment is dropped).
    ///
    /// Errors never quote the private key.
    pub fn ed25519(private_openssh: &str, public: &str) -> Result<Self, InvalidValue> {
        let private = private_openssh.trim();
        let lines: Vec<&str> = private.lines().map(str::trim_end).collect();
        let well_formed = lines.len() >= 3
            && lines.first() == Some(&PRIVATE_BEGIN)
            && lines.last() == Some(&PRIVATE_END)
            && lines[1..lines.len() - 1]
                .iter()
                .all(|l| !l.is_empty() && l.bytes().all(is_base64_byte));
        if !well_formed {
            return Err(InvalidValue {
                kind: "SSH host private key",
                value: "<redacted>".to_owned(),
                rule: format!(
                    "must be an OpenSSH private key: a `{PRIVATE_BEGIN}` line, base64 lines, a `{PRIVATE_END}` line"
                ),
            });
        }
        let public = PublicKeyLine::parse(public).map_err(|e| InvalidValue {
            kind: "SSH host public key",
            ..e
        })?;
        if public.key_type() != "ssh-ed25519" {
            return Err(InvalidValue::new(
                "SSH host public key",
                public.as_str(),
                "must be an `ssh-ed25519 <base64>` line",
            ));
        }
        let mut private_text = lines.join("\n");
        private_text.push('\n');
        Ok(Self {
            private_openssh: private_text,
            public: public.without_comment().to_owned(),
        })
    }

    /// The public key, `ssh-ed25519 <base64>`, as the client pins it.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The private key in OpenSSH format, ending with a newline. Never log it.
    pub fn expose_private(&self) -> &str {
        &self.private_openssh
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// One public key for root's `authorized_keys`: `<type> <base64> [comment]` on one line
/// (checked by [`PublicKeyLine`], the toolkit's one public-key line check).
///
/// ```
/// use cloud_init::AuthorizedKey;
/// assert!(AuthorizedKey::parse("ssh-ed25519 AAAAC3Nza me@laptop").is_ok());
/// assert!(AuthorizedKey::parse("ssh-ed25519 AAAA\nssh-rsa BBBB").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuthorizedKey(PublicKeyLine);

impl AuthorizedKey {
    /// Checks one OpenSSH public key line (surrounding white space is trimmed).
    pub fn parse(line: &str) -> Result<Self, InvalidValue> {
        PublicKeyLine::parse(line).map(Self)
    }

    /// The line.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<PublicKeyLine> for AuthorizedKey {
    fn from(key: PublicKeyLine) -> Self {
        Self(key)
    }
}

/// A Debian package to install, optionally pinned: `jq` or `jq=1.6-2.1`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PackageName(String);

impl PackageName {
    /// Checks a package name (Debian policy: lower-case letters, digits, `+ - .`, at least
    /// two characters, starting with a letter or digit) and an optional `=version`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let (name, version) = match value.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (value, None),
        };
        let name_ok = name.len() >= 2
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
            });
        let version_ok = version.is_none_or(|v| {
            !v.is_empty()
                && v.as_bytes()[0].is_ascii_digit()
                && v.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b':' | b'-')
                })
        });
        if !name_ok || !version_ok {
            return Err(InvalidValue::new(
                "package name",
                value,
                "must be a Debian package name (`a-z 0-9 + - .`), optionally `=<version>`",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute path on the VPS, safe to put in a shell command unquoted or quoted:
/// `/` followed by ASCII letters, digits and `/ . _ - + @ :`, no `..` component, no `//`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RemotePath(String);

impl RemotePath {
    /// Checks a path.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        const KIND: &str = "path on the VPS";
        if !value.starts_with('/') || value.len() < 2 || value.len() > 4096 {
            return Err(InvalidValue::new(
                KIND,
                value,
                "must be an absolute path like `/etc/motd`",
            ));
        }
        let chars_ok = value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+' | b'@' | b':')
        });
        let parts_ok = value[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
        if !chars_ok || !parts_ok {
            return Err(InvalidValue::new(
                KIND,
                value,
                "use ASCII letters, digits and `/ . _ - + @ :` only, with no empty, `.` or `..` component",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's permission bits, e.g. `FileMode(0o644)`. Rendered as a quoted octal string
/// (`'0644'`): cloud-init reads an unquoted `644` as decimal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileMode(u32);

impl FileMode {
    /// `rw-r--r--`
    pub const READABLE: Self = Self(0o644);
    /// `rw-------`
    pub const PRIVATE: Self = Self(0o600);
    /// `rwxr-xr-x`
    pub const EXECUTABLE: Self = Self(0o755);

    /// Checks permission bits (at most `0o7777`).
    pub fn new(bits: u32) -> Result<Self, InvalidValue> {
        if bits > 0o7777 {
            return Err(InvalidValue::new(
                "file mode",
                &format!("{bits:o}"),
                "must be at most 7777 (octal)",
            ));
        }
        Ok(Self(bits))
    }

    /// The bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The four-digit octal form cloud-init wants, e.g. `0644`.
    pub fn octal(self) -> String {
        format!("{:04o}", self.0)
    }
}

/// Owner of a written file: `user:group`, both Linux user names.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FileOwner(String);

impl FileOwner {
    /// `root:root`.
    pub fn root() -> Self {
        Self("root:root".to_owned())
    }

    /// Checks `user:group` (each `[a-z_][a-z0-9_-]*`, at most 32 characters).
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 32
                && (n.as_bytes()[0].is_ascii_lowercase() || n.as_bytes()[0] == b'_')
                && n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
                })
        };
        match value.split_once(':') {
            Some((user, group)) if name_ok(user) && name_ok(group) => Ok(Self(value.to_owned())),
            _ => Err(InvalidValue::new(
                "file owner",
                value,
                "must be `user:group` with Linux user and group names",
            )),
        }
    }

    /// `user:group`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file the document writes (cloud-init `write_files`).
#[derive(Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Where.
    pub path: RemotePath,
    /// The text. May hold secrets: `Debug` shows only its length.
    pub content: String,
    /// Its permissions.
    pub mode: FileMode,
    /// Its owner.
    pub owner: FileOwner,
    /// Write it late (after packages are installed and users exist) instead of early in
    /// boot; needed when the owner comes from a package.
    pub defer: bool,
}

impl FileSpec {
    /// A root-owned file with mode 0644, written early.
    pub fn new(path: RemotePath, content: impl Into<String>) -> Self {
        Self {
            path,
            content: content.into(),
            mode: FileMode::READABLE,
            owner: FileOwner::root(),
            defer: false,
        }
    }
}

impl fmt::Debug for FileSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSpec")
            .field("path", &self.path)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("mode", &self.mode)
            .field("owner", &self.owner)
            .field("defer", &self.defer)
            .finish()
    }
}

/// A command run late in the first boot (cloud-init `runcmd`), after Docker is ready and
/// before the readiness marker. It must succeed: a failure stops the bootstrap, cloud-init
/// reports an error and the marker is not written.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RunCommand {
    /// A script for `sh -e` (run in its own shell, so `exit` or `cd` in it do not reach
    /// the later steps).
    Shell(String),
    /// A program and its arguments, run without a shell.
    Argv(Vec<String>),
}

/// sshd's limits on parallel channels and unauthenticated connections, raised because
/// image builds, setup and parallel commands open many at once (sshd's defaults are
/// `MaxSessions 10`, `MaxStartups 10:30:100`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SshdLimits {
    max_sessions: u32,
    startups: (u32, u32, u32),
}

impl Default for SshdLimits {
    /// Upstream's values: `MaxSessions 100`, `MaxStartups 100:30:200`.
    fn default() -> Self {
        Self {
            max_sessions: 100,
            startups: (100, 30, 200),
        }
    }
}

impl SshdLimits {
    /// `MaxSessions max_sessions` and `MaxStartups start:rate:full`: from `start`
    /// unauthenticated connections on, sshd refuses `rate` percent of new ones, rising to
    /// all at `full`.
    pub fn new(max_sessions: u32, start: u32, rate: u32, full: u32) -> Result<Self, InvalidValue> {
        if max_sessions == 0 || start == 0 || rate > 100 || full < start {
            return Err(InvalidValue::new(
                "sshd limits",
                &format!("MaxSessions {max_sessions}, MaxStartups {start}:{rate}:{full}"),
                "need MaxSessions > 0, start > 0, rate <= 100 and full >= start",
            ));
        }
        Ok(Self {
            max_sessions,
            startups: (start, rate, full),
        })
    }

    /// The drop-in file's directives.
    pub(crate) fn directives(&self) -> String {
        let (start, rate, full) = self.startups;
        format!(
            "MaxSessions {}\nMaxStartups {start}:{rate}:{full}\n",
            self.max_sessions
        )
    }
}

/// What the document does about Docker.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum DockerSetup {
    /// Install the distribution's `docker.io` unless the image has `dockerd` already,
    /// enable and start it, and wait until it answers. Any failure fails cloud-init.
    #[default]
    InstallIfMissing,
    /// Leave Docker alone (the image or a later step takes care of it).
    Unmanaged,
}

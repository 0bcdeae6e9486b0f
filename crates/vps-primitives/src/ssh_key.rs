//! [`PublicKeyLine`]: the one text-level check of an OpenSSH public key line.

use std::fmt;

use crate::InvalidValue;

/// One OpenSSH public key line, `<type> <base64> [comment]`, checked as text: a single line
/// (no CR, LF or NUL), a known key type prefix (`ssh-`, `ecdsa-sha2-`, `sk-`) and a
/// non-empty base64 blob. White space around and between the fields is normalised to
/// single spaces, so the line is safe in an `authorized_keys` file, a YAML document, a
/// Docker label or a shell word (quoted).
///
/// This does not decode the key: `docker-ssh` decodes it (with russh) on top of this
/// check, where a real key object is needed.
///
/// ```
/// use vps_primitives::PublicKeyLine;
/// let key = PublicKeyLine::parse("  ssh-ed25519   AAAAC3Nza   me@laptop ")?;
/// assert_eq!(key.as_str(), "ssh-ed25519 AAAAC3Nza me@laptop");
/// assert_eq!(key.key_type(), "ssh-ed25519");
/// assert_eq!(key.without_comment(), "ssh-ed25519 AAAAC3Nza");
/// assert!(PublicKeyLine::parse("ssh-ed25519 AAAA\nssh-rsa BBBB").is_err());
/// # Ok::<(), vps_primitives::InvalidValue>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKeyLine {
    line: String,
    /// Length of `<type> <base64>`, the line without its comment.
    key_len: usize,
    /// Length of `<type>`.
    type_len: usize,
}

impl PublicKeyLine {
    /// The kind named in errors.
    pub const KIND: &'static str = "SSH public key";

    /// Checks one OpenSSH public key line (surrounding white space is trimmed).
    pub fn parse(line: &str) -> Result<Self, InvalidValue> {
        let line = line.trim();
        if line.contains(['\n', '\r', '\0']) {
            return Err(InvalidValue::new(Self::KIND, line, "must be a single line"));
        }
        let mut fields = line.split_whitespace();
        let key_type = fields.next().unwrap_or("");
        let blob = fields.next().unwrap_or("");
        let type_ok = key_type.starts_with("ssh-")
            || key_type.starts_with("ecdsa-sha2-")
            || key_type.starts_with("sk-");
        if !type_ok || blob.is_empty() || !blob.bytes().all(is_base64_byte) {
            return Err(InvalidValue::new(
                Self::KIND,
                line,
                "must be `<type> <base64> [comment]`, e.g. `ssh-ed25519 AAAA… me@host`",
            ));
        }
        let mut text = format!("{key_type} {blob}");
        let key_len = text.len();
        let comment: Vec<&str> = fields.collect();
        if !comment.is_empty() {
            text.push(' ');
            text.push_str(&comment.join(" "));
        }
        Ok(Self {
            line: text,
            key_len,
            type_len: key_type.len(),
        })
    }

    /// The normalised line, comment included.
    pub fn as_str(&self) -> &str {
        &self.line
    }

    /// The key type, e.g. `ssh-ed25519`.
    pub fn key_type(&self) -> &str {
        &self.line[..self.type_len]
    }

    /// `<type> <base64>`: the line without its comment, as a pin or a host key is written.
    pub fn without_comment(&self) -> &str {
        &self.line[..self.key_len]
    }

    /// The comment, if the line has one.
    pub fn comment(&self) -> Option<&str> {
        self.line.get(self.key_len + 1..)
    }
}

impl fmt::Display for PublicKeyLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl fmt::Debug for PublicKeyLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKeyLine").field(&self.line).finish()
    }
}

impl From<PublicKeyLine> for String {
    fn from(key: PublicKeyLine) -> Self {
        key.line
    }
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines_are_normalised() {
        let key = PublicKeyLine::parse("\t ssh-ed25519   AAAA+/=   me  @host \n").expect("valid");
        assert_eq!(key.as_str(), "ssh-ed25519 AAAA+/= me @host");
        assert_eq!(key.key_type(), "ssh-ed25519");
        assert_eq!(key.without_comment(), "ssh-ed25519 AAAA+/=");
        assert_eq!(key.comment(), Some("me @host"));
        let bare = PublicKeyLine::parse("ecdsa-sha2-nistp256 AAAA").expect("valid");
        assert_eq!(bare.comment(), None);
        assert_eq!(bare.without_comment(), bare.as_str());
        assert!(PublicKeyLine::parse("sk-ssh-ed25519@openssh.com AAAA").is_ok());
        assert!(PublicKeyLine::parse("ssh-rsa AAAAB3NzaC1yc2E user@laptop").is_ok());
    }

    #[test]
    fn hostile_lines_are_refused() {
        for bad in [
            "",
            "   ",
            "ssh-ed25519",
            "AAAA",
            "hello world",
            "ssh-ed25519 AA$A",
            "ssh-rsa AAA$$",
            "ssh-ed25519 AAAA\nssh-rsa BBBB",
            "ssh-ed25519 AAAA\rcommand=\"x\"",
            "ssh-ed25519 AAAA me\0x",
            "ssh-ed25519 $(reboot)",
            "command=\"sh\" ssh-ed25519 AAAA",
            "ssh-ed25519 'AAAA'",
        ] {
            let err = PublicKeyLine::parse(bad).expect_err(bad);
            assert_eq!(err.kind, PublicKeyLine::KIND, "{bad:?}");
        }
    }
}

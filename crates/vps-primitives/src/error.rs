//! The one error type of this crate: a value that breaks a rule.

/// A value was rejected by a constructor.
///
/// The message names the kind of value, the offending value (escaped, so control
/// characters and newlines are visible and cannot forge log lines) and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value}: {rule}")]
pub struct InvalidValue {
    /// What was being built, e.g. `host id`.
    pub kind: &'static str,
    /// The rejected input, escaped with Rust's `{:?}` rules, cut after 80 characters.
    pub value: String,
    /// The rule that was broken, in words a user can act on.
    pub rule: String,
}

impl InvalidValue {
    /// Longest prefix of a rejected value that is echoed back in the message.
    pub const SHOWN_CHARS: usize = 80;

    /// Builds the error for `kind`, quoting at most [`Self::SHOWN_CHARS`] characters of `value`.
    pub fn new(kind: &'static str, value: &str, rule: impl Into<String>) -> Self {
        let shown: String = value.chars().take(Self::SHOWN_CHARS).collect();
        let mut quoted = format!("{shown:?}");
        if value.chars().count() > Self::SHOWN_CHARS {
            quoted.push('…');
        }
        Self {
            kind,
            value: quoted,
            rule: rule.into(),
        }
    }
}

//! The one shell-quoting function of the toolkit (re-exported by `docker-ssh`).
//!
//! Every word that reaches a shell (over SSH, or `sh -c` locally) goes through [`quote`].
//! It follows Python's `shlex.quote`: a word made only of characters that are never special
//! to a POSIX shell is left alone, anything else is wrapped in single quotes, and a single
//! quote inside becomes `'"'"'` (close, a double-quoted quote, reopen).

use std::borrow::Cow;

/// Characters that never need quoting in a POSIX shell word (`shlex.quote`'s set).
fn is_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&byte)
}

/// Quotes one word for a POSIX shell, like Python's `shlex.quote`.
///
/// The result, pasted into a shell command line, is read back by the shell as exactly
/// `word`, whatever bytes it contains (spaces, quotes, `$`, backticks, newlines, unicode).
/// The one thing no shell word can carry is a NUL byte; commands reject those before they
/// are run (`docker_ssh::Command` refuses them).
///
/// ```
/// use vps_primitives::quote;
/// assert_eq!(quote("plain-word_1.0"), "plain-word_1.0");
/// assert_eq!(quote(""), "''");
/// assert_eq!(quote("it's $HOME"), r#"'it'"'"'s $HOME'"#);
/// ```
pub fn quote(word: &str) -> Cow<'_, str> {
    if word.is_empty() {
        return Cow::Borrowed("''");
    }
    if word.bytes().all(is_safe) {
        return Cow::Borrowed(word);
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for ch in word.chars() {
        if ch == '\'' {
            out.push_str(r#"'"'"'"#);
        } else {
            out.push(ch);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// Quotes every word of an argv with [`quote`] and joins them with spaces, giving one
/// command line that a POSIX shell splits back into exactly these words.
///
/// ```
/// use vps_primitives::quote_argv;
/// assert_eq!(quote_argv(["docker", "rm", "-f", "my box"]), "docker rm -f 'my box'");
/// ```
pub fn quote_argv<I, S>(argv: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for (i, word) in argv.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(word.as_ref()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_shlex_quote() {
        // Expected values produced by Python 3's shlex.quote.
        let cases = [
            ("", "''"),
            ("abc", "abc"),
            ("a b", "'a b'"),
            ("'", r#"''"'"''"#),
            ("a'b", r#"'a'"'"'b'"#),
            ("$(reboot)", "'$(reboot)'"),
            ("`id`", "'`id`'"),
            ("--label=k=v", "--label=k=v"),
            ("127.0.0.1:8080:80", "127.0.0.1:8080:80"),
            ("/host/data:/data:rw", "/host/data:/data:rw"),
            ("a\nb", "'a\nb'"),
            ("é", "'é'"),
            ("~root", "'~root'"),
            ("*", "'*'"),
            ("a\\b", "'a\\b'"),
            ("user@host", "user@host"),
            ("100%", "100%"),
        ];
        for (input, expected) in cases {
            assert_eq!(quote(input), expected, "quote({input:?})");
        }
    }

    #[test]
    fn argv_joins_quoted_words() {
        assert_eq!(quote_argv(Vec::<String>::new()), "");
        assert_eq!(
            quote_argv(["sh", "-c", "echo 'hi'; exit 3"]),
            r#"sh -c 'echo '"'"'hi'"'"'; exit 3'"#
        );
    }
}

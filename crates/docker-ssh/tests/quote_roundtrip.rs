//! Property tests: hostile strings, quoted with the crate's one quoting function, pass
//! through a real shell byte for byte.

use std::process::Command;

use docker_ssh::{quote, quote_argv};
use proptest::prelude::*;

/// Characters that are special to some shell, plus control characters and non-ASCII.
const HOSTILE: &[char] = &[
    '\'', '"', '\\', '$', '`', '!', ' ', '\t', '\n', '\r', ';', '&', '|', '<', '>', '(', ')', '{',
    '}', '[', ']', '*', '?', '~', '#', '=', '%', '^', ',', '-', '\u{1}', '\u{7f}', 'é', '☃',
    '\u{202e}', '\u{feff}', '𝄞', 'a', 'Z', '0', '.', '/', '@', ':', '+', '_',
];

fn hostile_string() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::sample::select(HOSTILE),
        1 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
    ];
    proptest::collection::vec(ch, 0..40).prop_map(|v| v.into_iter().collect())
}

/// Runs `script` with `shell -c` and returns stdout.
fn shell_stdout(shell: &str, script: &str) -> Vec<u8> {
    let out = Command::new(shell)
        .arg("-c")
        .arg(script)
        .output()
        .expect("the shell runs");
    assert!(
        out.status.success(),
        "{shell} failed on {script:?}: {out:?}"
    );
    out.stdout
}

fn shells() -> Vec<&'static str> {
    ["sh", "bash", "dash"]
        .into_iter()
        .filter(|s| Command::new(s).arg("-c").arg("true").output().is_ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn one_word_round_trips(word in hostile_string()) {
        for shell in shells() {
            let script = format!("printf %s {}", quote(&word));
            prop_assert_eq!(shell_stdout(shell, &script), word.as_bytes(), "shell {}", shell);
        }
    }

    #[test]
    fn argv_round_trips(words in proptest::collection::vec(hostile_string(), 1..6)) {
        // printf '%s\0' prints each word followed by NUL: split back and compare.
        let script = format!("printf '%s\\0' {}", quote_argv(&words));
        for shell in shells() {
            let out = shell_stdout(shell, &script);
            let mut got: Vec<&[u8]> = out.split(|b| *b == 0).collect();
            prop_assert_eq!(got.pop(), Some(&b""[..]));
            let want: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
            prop_assert_eq!(got, want, "shell {}", shell);
        }
    }
}

#[test]
fn at_least_sh_is_available() {
    assert!(shells().contains(&"sh"));
}

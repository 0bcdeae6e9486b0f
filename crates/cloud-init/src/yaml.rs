//! A small YAML emitter for JSON values: block style, literal blocks for multi-line text,
//! double-quoted (JSON-escaped) scalars wherever a plain scalar could be misread.
//!
//! The output parses (YAML 1.1, PyYAML, which cloud-init uses) to exactly the input value;
//! the integration tests check that against the real parser for every rendered document
//! and for random strings. No YAML library is needed: every scalar that is not obviously
//! safe is written as a JSON string, and JSON strings are YAML double-quoted scalars once
//! the characters YAML treats differently are escaped too.

use serde_json::{Map, Value};

/// Writes `value` (an object) as a YAML block mapping.
pub(crate) fn to_yaml(value: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_map(&mut out, value, 0, false);
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize, first_inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push_str(&scalar_string(key));
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_map(out, m, indent + 2, false);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, indent + 2, false);
            }
            other => {
                out.push(' ');
                write_inline(out, other, indent + 2);
            }
        }
    }
}

fn write_seq(out: &mut String, seq: &[Value], indent: usize, first_inline: bool) {
    for (i, item) in seq.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2, true),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2, true),
            other => write_inline(out, other, indent + 2),
        }
    }
}

/// A scalar or an empty collection after `key: ` or `- `, ending the line. A literal
/// block's lines are indented by `indent`.
fn write_inline(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::String(s) => match literal_header(s) {
            Some(header) => {
                out.push_str(header);
                out.push('\n');
                let body = s.strip_suffix('\n').unwrap_or(s);
                for line in body.split('\n') {
                    if !line.is_empty() {
                        pad(out, indent);
                        out.push_str(line);
                    }
                    out.push('\n');
                }
            }
            None => {
                out.push_str(&scalar_string(s));
                out.push('\n');
            }
        },
        Value::Object(_) => out.push_str("{}\n"),
        Value::Array(_) => out.push_str("[]\n"),
        // null, booleans and numbers are written as JSON writes them, which YAML reads
        // back as the same values.
        other => {
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

/// The literal block header (`|` or `|-`) for `s`, or `None` if `s` is better quoted:
/// single-line text, text whose first line starts with white space (it would need an
/// indentation indicator), text with more than one trailing newline, a carriage return,
/// or any character YAML would not keep as it is.
fn literal_header(s: &str) -> Option<&'static str> {
    if !s.contains('\n') || s.contains('\r') {
        return None;
    }
    if s.starts_with([' ', '\t', '\n']) || s.ends_with("\n\n") {
        return None;
    }
    // A last line of only blanks is where parsers disagree on what is trailing space.
    let body = s.strip_suffix('\n').unwrap_or(s);
    if body
        .rsplit('\n')
        .next()
        .is_some_and(|l| l.trim_matches([' ', '\t']).is_empty())
    {
        return None;
    }
    if !s
        .chars()
        .all(|c| c == '\n' || c == '\t' || is_yaml_printable(c))
    {
        return None;
    }
    Some(if s.ends_with('\n') { "|" } else { "|-" })
}

/// Characters a YAML 1.1 parser keeps as they are inside a scalar: printable, and not a
/// line break (YAML 1.1 also breaks lines at NEL, LS and PS) nor a byte-order mark.
fn is_yaml_printable(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7e}'
        | '\u{a0}'..='\u{2027}'
        | '\u{202a}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fefe}'
        | '\u{ff00}'..='\u{fffd}'
        | '\u{10000}'..='\u{10ffff}')
}

/// Words YAML 1.1 reads as something other than a string when written plain.
const RESERVED_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// `s` as a plain scalar when that is unambiguous (a letter or `/`, then letters, digits
/// and `_ . / -`, not a reserved word), else as a double-quoted scalar.
fn scalar_string(s: &str) -> String {
    let mut chars = s.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !RESERVED_WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

/// A double-quoted scalar: JSON escapes (which YAML shares), plus `\uXXXX` for every
/// character YAML would not keep as it is (DEL, C1 controls, NEL, LS, PS, BOM, U+FFFE/F).
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_yaml_printable(c) => out.push(c),
            // Everything left is in the Basic Multilingual Plane, so one `\u` escape each.
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(v: Value) -> String {
        match v {
            Value::Object(m) => to_yaml(&m),
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn block_style_with_literal_text_and_quoted_scalars() {
        let doc = yaml(json!({
            "plain": "ed25519",
            "reserved": "yes",
            "number_like": "0644",
            "spaced": "ssh-ed25519 AAAA",
            "flag": false,
            "count": 100,
            "script": "set -e\n  indented\n\nafter blank\n",
            "no_newline": "a\nb",
            "empty_list": [],
            "empty_map": {},
            "list": ["a", ["sh", "-c", "x\ny\n"], {"path": "/p", "content": "c\n"}],
            "nested": {"inner": {"k": "v"}},
        }));
        insta::assert_snapshot!(doc, @r#"
        plain: ed25519
        reserved: "yes"
        number_like: "0644"
        spaced: "ssh-ed25519 AAAA"
        flag: false
        count: 100
        script: |
          set -e
            indented

          after blank
        no_newline: |-
          a
          b
        empty_list: []
        empty_map: {}
        list:
          - a
          - - sh
            - "-c"
            - |
              x
              y
          - path: /p
            content: |
              c
        nested:
          inner:
            k: v
        "#);
    }

    #[test]
    fn text_a_literal_block_cannot_hold_is_quoted() {
        for s in [
            " leading space\nx",
            "\nleading newline",
            "two trailing\n\n",
            "crlf\r\nline",
            "nel\u{85}x\ny",
            "single line",
        ] {
            assert_eq!(literal_header(s), None, "{s:?}");
        }
        assert_eq!(
            double_quoted("a\u{7f}\u{85}\u{2028}\u{feff}\u{ffff}\"\\\t"),
            r#""a\u007f\u0085\u2028\ufeff\uffff\"\\\t""#
        );
        assert_eq!(scalar_string("Off"), "\"Off\"");
        assert_eq!(scalar_string("1e3"), "\"1e3\"");
        assert_eq!(scalar_string(""), "\"\"");
        assert_eq!(scalar_string("a: b"), "\"a: b\"");
    }
}

//! A small glob matcher (`*`, `?`, `[...]`, `\` escapes), shared by known_hosts host
//! patterns and upload exclude lists.

/// Whether `text` matches `pattern`. With `slash_is_special`, `*`, `?` and classes never
/// match `/` (path semantics, like Go's `filepath.Match` that Docker uses).
pub(crate) fn glob_match(pattern: &str, text: &str, slash_is_special: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches_from(&p, &t, slash_is_special)
}

fn matches_from(p: &[char], t: &[char], slash: bool) -> bool {
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' if !(slash && t[ti] == '/') => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class_match(&p[pi..], t[ti])
                        && matched
                        && !(slash && t[ti] == '/')
                    {
                        pi += len;
                        ti += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == t[ti] => {
                    pi += 2;
                    ti += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() => {}
                c if c == t[ti] && c != '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` swallow one more character (never a `/` in path mode).
        match star {
            Some((sp, st)) if !(slash && t[st] == '/') => {
                star = Some((sp, st + 1));
                pi = sp + 1;
                ti = st + 1;
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches a `[...]` class at the start of `p` against `c`: `(matched, pattern length)`,
/// or `None` if the class is not closed (then `[` is literal and does not match here).
fn class_match(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = if p[i] == '\\' && i + 1 < p.len() {
            i += 1;
            p[i]
        } else {
            p[i]
        };
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            let hi = p[i + 2];
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn table() {
        let cases = [
            ("*", "anything", false, true),
            ("*.log", "a.log", true, true),
            ("*.log", "dir/a.log", true, false),
            ("*.log", "dir/a.log", false, true),
            ("a?c", "abc", true, true),
            ("a?c", "a/c", true, false),
            ("[abc]x", "bx", true, true),
            ("[!abc]x", "bx", true, false),
            ("[a-c]x", "cx", true, true),
            ("[a-c]x", "dx", true, false),
            ("\\*x", "*x", true, true),
            ("\\*x", "ax", true, false),
            ("10.0.0.*", "10.0.0.7", false, true),
            ("[127.0.0.1]:2222", "[127.0.0.1]:2222", false, false),
            ("exact", "exact", true, true),
            ("exact", "exactly", true, false),
            ("a*b*c", "aXbYc", true, true),
            ("a*b*c", "aXbY", true, false),
            ("", "", true, true),
            ("[", "[", true, false),
        ];
        for (pattern, text, slash, want) in cases {
            assert_eq!(
                glob_match(pattern, text, slash),
                want,
                "{pattern} vs {text}"
            );
        }
    }
}

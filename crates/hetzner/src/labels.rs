//! Our tags as Hetzner labels, and label selectors: pure functions.
//!
//! Hetzner has real key/value labels, so a tag `mngr-provider=hetzner` becomes the label
//! `mngr-provider: hetzner`, and listing by tag is a `label_selector` (`key==value`),
//! which matches values exactly. Label rules (DOCS "Labels"): a name of at most 63
//! characters that begins and ends with a letter or digit, with `-`, `_` and `.` in
//! between; a value of the same form, or empty.

use std::collections::BTreeMap;

use vps_primitives::Tag;

/// The longest label name or value.
const MAX_LABEL_LEN: usize = 63;

/// Whether `text` is a label name (without prefix) or, with `empty_ok`, a label value.
fn is_label_part(text: &str, empty_ok: bool) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return empty_ok;
    }
    bytes.len() <= MAX_LABEL_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why a tag cannot be a Hetzner label, or `None` when it can.
pub(crate) fn label_problem(tag: &Tag) -> Option<String> {
    if !is_label_part(tag.key(), false) {
        return Some(format!(
            "tag {tag}: a Hetzner label name has at most 63 characters and begins and ends with a letter or digit"
        ));
    }
    if !is_label_part(tag.value(), true) {
        return Some(format!(
            "tag {tag}: a Hetzner label value is empty or has at most 63 characters from `A-Z a-z 0-9 - _ .`, beginning and ending with a letter or digit"
        ));
    }
    None
}

/// The labels for a create request's tags; an error names the first tag that cannot be a
/// label (or a key given twice, which a label map cannot hold).
pub(crate) fn labels_for(tags: &[Tag]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for tag in tags {
        if let Some(problem) = label_problem(tag) {
            return Err(problem);
        }
        if let Some(previous) = labels.insert(tag.key().to_owned(), tag.value().to_owned())
            && previous != tag.value()
        {
            return Err(format!(
                "tags {}={previous} and {tag}: a Hetzner resource has one value per label name",
                tag.key()
            ));
        }
    }
    Ok(labels)
}

/// The tags of a resource's labels. Labels set outside this toolkit that are not valid
/// tags (upper-case names, a `prefix/`) are left out rather than failing a listing.
pub(crate) fn tags_of(labels: &BTreeMap<String, String>) -> Vec<Tag> {
    labels
        .iter()
        .filter_map(|(key, value)| Tag::new(key, value).ok())
        .collect()
}

/// Whether the labels carry exactly this tag.
pub(crate) fn has_tag(labels: &BTreeMap<String, String>, tag: &Tag) -> bool {
    labels.get(tag.key()).is_some_and(|v| v == tag.value())
}

/// The `label_selector` that lists resources carrying `tag`, or `None` when no resource
/// can carry it (it is not a valid label).
///
/// `key==value` is an exact match. For an empty value the selector is the bare `key`
/// (present with any value): whether `key==` is accepted is not documented, so the
/// caller filters the answer exactly ([`has_tag`]) in every case.
pub(crate) fn selector_for(tag: &Tag) -> Option<String> {
    if label_problem(tag).is_some() {
        return None;
    }
    Some(if tag.value().is_empty() {
        tag.key().to_owned()
    } else {
        format!("{}=={}", tag.key(), tag.value())
    })
}

/// Why `name` cannot be a Hetzner server name (unique per Project, a valid RFC 1123
/// hostname: letters, digits, dashes, dots between labels of at most 63 characters).
pub(crate) fn server_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        });
    (!ok).then(|| {
        format!(
            "label {name:?} cannot be a Hetzner server name: use a hostname (letters, digits and dashes, at most 63 characters between dots)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(text: &str) -> Tag {
        text.parse().expect("tag")
    }

    #[test]
    fn our_tags_are_labels_and_selectors_match_exactly() {
        let provider = tag("mngr-provider=hetzner");
        assert_eq!(label_problem(&provider), None);
        assert_eq!(
            selector_for(&provider).as_deref(),
            Some("mngr-provider==hetzner")
        );
        let labels =
            labels_for(&[provider.clone(), tag("mngr-host-id=host-0123abcd")]).expect("labels");
        assert_eq!(labels["mngr-provider"], "hetzner");
        assert!(has_tag(&labels, &provider));
        let other: BTreeMap<_, _> = [("mngr-provider".to_owned(), "hetzner-x".to_owned())].into();
        assert!(
            !has_tag(&other, &provider),
            "a prefix of the value is not a match"
        );
        assert_eq!(tags_of(&labels).len(), 2);
    }

    #[test]
    fn tags_that_cannot_be_labels_are_named() {
        for bad in [
            "k=value-ending-in-dash-",
            "k=has=equals",
            "k=slash/inside",
            "key-ending-in-dash-=v",
        ] {
            let t = tag(bad);
            assert!(label_problem(&t).is_some(), "{bad}");
            assert_eq!(selector_for(&t), None, "{bad}");
            assert!(labels_for(&[t]).is_err(), "{bad}");
        }
        let long = tag(&format!("k={}", "a".repeat(64)));
        assert!(label_problem(&long).is_some());
        let err = labels_for(&[tag("k=a"), tag("k=b")]).expect_err("two values");
        assert!(err.contains("one value per label name"), "{err}");
        assert!(labels_for(&[tag("k=a"), tag("k=a")]).is_ok());
    }

    #[test]
    fn empty_values_select_by_presence_and_foreign_labels_are_skipped() {
        assert_eq!(selector_for(&tag("flag=")).as_deref(), Some("flag"));
        let labels: BTreeMap<_, _> = [
            ("Team".to_owned(), "web".to_owned()),
            ("example.com/owner".to_owned(), "x".to_owned()),
            ("mngr-provider".to_owned(), "hetzner".to_owned()),
        ]
        .into();
        assert_eq!(tags_of(&labels), vec![tag("mngr-provider=hetzner")]);
    }

    #[test]
    fn server_names_are_hostnames() {
        assert_eq!(server_name_problem("mngr-my-agent"), None);
        assert_eq!(server_name_problem("a.b-c.d"), None);
        for bad in ["", "-a", "a-", "a_b", "a..b", "with space", &"a".repeat(64)] {
            assert!(server_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}

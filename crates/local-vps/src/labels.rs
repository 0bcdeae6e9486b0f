//! The Docker labels that hold a local VPS's state. Pure: no I/O.
//!
//! Everything `local-vps` creates (containers, volumes, networks, images) carries
//! [`KIND_LABEL`] naming what it is, the client's ownership labels
//! ([`crate::LocalVpsConfig::labels`]), and, when it belongs to an instance,
//! [`INSTANCE_LABEL`]. Listing filters on those, so the state lives in Docker and every
//! process sees the same instances.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use vps_primitives::Tag;

/// Label naming what an object is (value: one of [`Kind`]).
pub const KIND_LABEL: &str = "com.imbue.mngr.local-vps";
/// Label naming the instance an object belongs to (value: the instance id).
pub const INSTANCE_LABEL: &str = "com.imbue.mngr.local-vps.instance";
/// The default ownership label; its value names the "account" (default `default`).
pub const ACCOUNT_LABEL: &str = "com.imbue.mngr.local-vps.account";

/// Prefix of every label this crate reserves for itself.
pub(crate) const PREFIX: &str = "com.imbue.mngr.local-vps";
/// The request's label (the instance's name).
pub(crate) const NAME_LABEL: &str = "com.imbue.mngr.local-vps.label";
/// The request's tags as a JSON array of `key=value` strings.
pub(crate) const TAGS_LABEL: &str = "com.imbue.mngr.local-vps.tags";
/// Prefix of the per-tag labels used to filter by tag (see [`tag_label`]).
pub(crate) const TAG_PREFIX: &str = "com.imbue.mngr.local-vps.tag.";
/// The request's region, plan and OS id, kept for `docker inspect` readers.
pub(crate) const REGION_LABEL: &str = "com.imbue.mngr.local-vps.region";
pub(crate) const PLAN_LABEL: &str = "com.imbue.mngr.local-vps.plan";
pub(crate) const OS_LABEL: &str = "com.imbue.mngr.local-vps.os";
/// SSH key records (a volume each): id, name, public key.
pub(crate) const SSH_KEY_LABEL: &str = "com.imbue.mngr.local-vps.ssh-key";
pub(crate) const KEY_NAME_LABEL: &str = "com.imbue.mngr.local-vps.ssh-key.name";
pub(crate) const KEY_PUBLIC_LABEL: &str = "com.imbue.mngr.local-vps.ssh-key.public";
/// Snapshot records (the snapshot's volume): id, description, source instance, image.
pub(crate) const SNAPSHOT_LABEL: &str = "com.imbue.mngr.local-vps.snapshot";
pub(crate) const SNAPSHOT_DESCRIPTION_LABEL: &str = "com.imbue.mngr.local-vps.snapshot.description";
pub(crate) const SNAPSHOT_SOURCE_LABEL: &str = "com.imbue.mngr.local-vps.snapshot.source";
pub(crate) const SNAPSHOT_IMAGE_LABEL: &str = "com.imbue.mngr.local-vps.snapshot.image";

/// What a labelled object is: the value of [`KIND_LABEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The fake VPS container.
    Instance,
    /// The volume behind an instance's `/var/lib/docker`.
    DockerVolume,
    /// The volume holding an instance's NoCloud seed (its user_data, with the private
    /// host key), kept out of the container's own filesystem so snapshots never carry it.
    SeedVolume,
    /// The network an instance is attached to.
    Network,
    /// An SSH key record (an empty volume whose labels hold the key).
    SshKey,
    /// A snapshot: the volume holding a copy of `/var/lib/docker`, whose labels are the
    /// snapshot's record.
    Snapshot,
    /// The image committed from an instance's container for a snapshot.
    SnapshotImage,
    /// A short-lived helper container (copying a volume for a snapshot).
    Helper,
}

impl Kind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::DockerVolume => "docker-volume",
            Kind::SeedVolume => "seed-volume",
            Kind::Network => "network",
            Kind::SshKey => "ssh-key",
            Kind::Snapshot => "snapshot",
            Kind::SnapshotImage => "snapshot-image",
            Kind::Helper => "helper",
        }
    }
}

/// The label that marks an object as carrying `tag`, for `--filter label=…`.
///
/// Tag values may hold characters that Docker's filter syntax treats specially (`=`, `,`),
/// so the key is a hash of the whole tag and the value is the tag itself; readers still
/// compare the full tags from [`TAGS_LABEL`].
pub(crate) fn tag_label(tag: &Tag) -> (String, String) {
    let digest = Sha256::digest(tag.to_string().as_bytes());
    (
        format!("{TAG_PREFIX}{}", &hex::encode(digest)[..16]),
        tag.to_string(),
    )
}

/// The tags recorded in `labels` (those that do not parse are skipped, with a warning).
pub(crate) fn tags_from(labels: &BTreeMap<String, String>) -> Vec<Tag> {
    let Some(raw) = labels.get(TAGS_LABEL) else {
        return Vec::new();
    };
    let strings: Vec<String> = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable tags label; ignoring it");
            return Vec::new();
        }
    };
    strings
        .iter()
        .filter_map(|s| match s.parse::<Tag>() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(tag = %s, error = %e, "unreadable tag; ignoring it");
                None
            }
        })
        .collect()
}

/// The labels recording `tags`: the JSON list and one filter label per tag.
pub(crate) fn tag_labels(tags: &[Tag]) -> Vec<(String, String)> {
    let strings: Vec<String> = tags.iter().map(Tag::to_string).collect();
    let mut out = vec![(
        TAGS_LABEL.to_owned(),
        serde_json::to_string(&strings).unwrap_or_else(|_| "[]".to_owned()),
    )];
    out.extend(tags.iter().map(tag_label));
    out
}

/// Whether `labels` carry every `(key, value)` of `wanted`.
pub(crate) fn has_all(labels: &BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
    wanted
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_labels_round_trip_and_filter_keys_are_stable() {
        let tags: Vec<Tag> = ["mngr-provider=local", "group=a,b=c", "x=y"]
            .iter()
            .map(|s| s.parse().expect("valid tag"))
            .collect();
        let labels: BTreeMap<String, String> = tag_labels(&tags).into_iter().collect();
        assert_eq!(tags_from(&labels), tags);
        let (key, value) = tag_label(&tags[1]);
        assert!(
            key.starts_with(TAG_PREFIX) && key.len() == TAG_PREFIX.len() + 16,
            "{key}"
        );
        assert!(!key.contains('='));
        assert_eq!(value, "group=a,b=c");
        assert_eq!(tag_label(&tags[1]), (key, value), "deterministic");
        assert_ne!(tag_label(&tags[0]).0, tag_label(&tags[2]).0);
        insta::assert_snapshot!(tag_label(&tags[0]).0, @"com.imbue.mngr.local-vps.tag.d18c0a2db45ddee3");
    }

    #[test]
    fn unreadable_tags_are_skipped_not_fatal() {
        let labels = BTreeMap::from([(TAGS_LABEL.to_owned(), "not json".to_owned())]);
        assert!(tags_from(&labels).is_empty());
        let labels =
            BTreeMap::from([(TAGS_LABEL.to_owned(), r#"["ok=1","BAD KEY=2"]"#.to_owned())]);
        assert_eq!(
            tags_from(&labels),
            vec!["ok=1".parse::<Tag>().expect("valid")]
        );
        assert!(tags_from(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn has_all_needs_every_pair() {
        let labels = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        assert!(has_all(&labels, &[("a".into(), "1".into())]));
        assert!(!has_all(
            &labels,
            &[("a".into(), "1".into()), ("c".into(), "3".into())]
        ));
        assert!(!has_all(&labels, &[("b".into(), "x".into())]));
        assert!(has_all(&labels, &[]));
    }
}

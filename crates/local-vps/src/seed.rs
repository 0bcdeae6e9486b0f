//! The NoCloud seed a fake VPS boots from, as a cloud hands it to cloud-init. Pure.
//!
//! `user-data` is the request's document, byte for byte. `meta-data` carries what a cloud's
//! metadata service would: the instance id, the hostname, and the public keys of the
//! request's SSH key ids under `public-keys`, which cloud-init's `ssh` module installs for
//! the default user and for root, exactly as it does with a cloud's key list.

use vps_primitives::VpsInstanceId;

/// The seed directory inside the fake VPS. The seed is written to a volume mounted
/// here, never to the container's own filesystem, so a snapshot (`docker commit`) does
/// not carry it, as a cloud's snapshot of a disk does not carry the seed it booted from.
pub(crate) const SEED_DIR: &str = "/var/lib/cloud/seed/nocloud";

/// The `meta-data` file: JSON, which is YAML, so cloud-init reads it as is.
pub(crate) fn meta_data(id: &VpsInstanceId, hostname: &str, public_keys: &[String]) -> String {
    let doc = serde_json::json!({
        "instance-id": id.as_str(),
        "local-hostname": hostname,
        "public-keys": public_keys,
    });
    format!("{doc:#}\n")
}

/// A hostname (RFC 1123 label) made from an instance label: lower case, runs of other
/// characters become `-`, at most 63 characters; `vps` if nothing is left.
pub(crate) fn hostname_for(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(63).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "vps".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_lists_the_keys_as_cloud_init_reads_them() {
        let id = VpsInstanceId::parse("lvps-0123456789abcdef").expect("valid id");
        let doc = meta_data(
            &id,
            "mngr-agent",
            &["ssh-ed25519 AAAAC3Nza test".to_owned()],
        );
        insta::assert_snapshot!(doc, @r#"
        {
          "instance-id": "lvps-0123456789abcdef",
          "local-hostname": "mngr-agent",
          "public-keys": [
            "ssh-ed25519 AAAAC3Nza test"
          ]
        }
        "#);
    }

    #[test]
    fn hostnames_are_valid_labels() {
        for (label, host) in [
            ("mngr-my-agent", "mngr-my-agent"),
            ("My Agent_2", "my-agent-2"),
            ("--x--", "x"),
            ("", "vps"),
            ("ümlaut", "mlaut"),
        ] {
            assert_eq!(hostname_for(label), host, "{label:?}");
        }
        let long = hostname_for(&format!("{}-{}", "a".repeat(62), "b".repeat(10)));
        assert_eq!(long, "a".repeat(62), "cut to 63 and no trailing dash");
    }
}

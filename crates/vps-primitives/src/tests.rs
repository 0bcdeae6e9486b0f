#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// Inputs that must never pass any validated name: shell metacharacters, quotes,
/// command substitution, control characters, unicode look-alikes, empty, too long.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "a b",
    "a'b",
    "a\"b",
    "$(reboot)",
    "`id`",
    "a;b",
    "a|b",
    "a&b",
    "a\nb",
    "a\rb",
    "a\0b",
    "a\tb",
    "a/b",
    "../etc",
    "a*",
    "ünïcödé",
    "аpple", // Cyrillic а
    "a\u{200b}b",
    "-rf",
    "a>b",
    "$HOME",
    "a\\b",
];

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let json = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, v, "serde round trip through {json}");
}

#[test]
fn host_id_generates_valid_unique_lowercase_ids() {
    let a = HostId::generate();
    let b = HostId::generate();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 5 + 32);
    assert!(
        a.hex()
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
    assert_eq!(HostId::parse(a.as_str()).unwrap(), a);
    round_trip(&a);
}

#[test]
fn host_id_normalises_upper_case_hex() {
    let id = HostId::parse("host-00112233445566778899AABBCCDDEEFF").unwrap();
    assert_eq!(id.as_str(), "host-00112233445566778899aabbccddeeff");
    assert_eq!(id.hex(), "00112233445566778899aabbccddeeff");
}

#[test]
fn host_id_rejects_bad_input_naming_value_and_rule() {
    for bad in [
        "00112233445566778899aabbccddeeff",
        "agent-00112233445566778899aabbccddeeff",
        "host-",
        "host-0011223344556677889",
        "host-00112233445566778899aabbccddeeff0",
        "host-00112233445566778899aabbccddeefg",
        "host-00112233445566778899aabbccddee'f",
        "host-$(reboot)",
    ] {
        let err = HostId::parse(bad).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid host id "), "{msg}");
        assert!(
            msg.contains(&format!("{bad:?}")),
            "{msg} should quote {bad}"
        );
    }
    assert!(serde_json::from_str::<HostId>("\"host-nope\"").is_err());
    let agent = AgentId::generate();
    assert!(agent.as_str().starts_with("agent-"));
    assert!(HostId::parse(agent.as_str()).is_err());
}

#[test]
fn host_name_accepts_safe_names() {
    for ok in ["a", "my-agent", "Agent_7", "x".repeat(63).as_str(), "0abc9"] {
        let name = HostName::parse(ok).unwrap();
        assert_eq!(name.as_str(), ok);
        round_trip(&name);
    }
}

#[test]
fn host_name_rejects_hostile_input() {
    for bad in HOSTILE
        .iter()
        .copied()
        .chain(["-a", "a-", "_a", "a_", "a.b", &"x".repeat(64)])
    {
        let err = HostName::parse(bad).unwrap_err();
        assert_eq!(err.kind, "host name");
        assert!(!err.rule.is_empty());
        assert!(serde_json::from_str::<HostName>(&serde_json::to_string(bad).unwrap()).is_err());
    }
}

#[test]
fn error_message_escapes_control_characters_and_truncates() {
    let err = HostName::parse("evil\nFAKE LOG LINE").unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains("\\n"), "{msg}");
    let long = "y".repeat(500);
    let msg = HostName::parse(&long).unwrap_err().to_string();
    assert!(msg.len() < 200, "{msg}");
    assert!(msg.contains('…'));
    assert!(msg.contains("longer than 63"));
}

#[test]
fn provider_tokens_accept_real_ids() {
    let vultr = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";
    round_trip(&VpsInstanceId::parse(vultr).unwrap());
    round_trip(&VpsSnapshotId::parse("sha256:0123abcd").unwrap());
    round_trip(&SshKeyId::parse("key_1.a").unwrap());
    round_trip(&RegionId::parse("ewr").unwrap());
    round_trip(&PlanId::parse("vc2-1c-1gb").unwrap());
    round_trip(&OsId(2136));
    assert_eq!(OsId::parse("2136").unwrap(), OsId(2136));
    assert!(
        OsId::parse("debian")
            .unwrap_err()
            .to_string()
            .contains("whole number")
    );
    assert!(OsId::parse("-1").is_err());
}

#[test]
fn provider_tokens_reject_hostile_input() {
    for bad in HOSTILE.iter().copied().chain([&"a".repeat(129) as &str]) {
        let err = VpsInstanceId::parse(bad).unwrap_err();
        assert_eq!(err.kind, "VPS instance id", "{bad:?}");
        assert!(VpsSnapshotId::parse(bad).is_err());
        assert!(SshKeyId::parse(bad).is_err());
        assert!(RegionId::parse(bad).is_err());
        assert!(PlanId::parse(bad).is_err());
    }
    assert!(
        VpsInstanceId::parse("-rm")
            .unwrap_err()
            .rule
            .contains("`-`")
    );
}

#[test]
fn instance_status_round_trips_as_upper_case() {
    for s in VpsInstanceStatus::ALL {
        assert_eq!(s.as_str().parse::<VpsInstanceStatus>().unwrap(), s);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.as_str())
        );
        round_trip(&s);
    }
    assert_eq!(
        "STOPPED".parse::<VpsInstanceStatus>().unwrap(),
        VpsInstanceStatus::Halted
    );
    assert_eq!(
        serde_json::from_str::<VpsInstanceStatus>("\"STOPPED\"").unwrap(),
        VpsInstanceStatus::Halted
    );
    assert!("active".parse::<VpsInstanceStatus>().is_err());
    assert!(VpsInstanceStatus::Active.is_settled());
    assert!(!VpsInstanceStatus::Pending.is_settled());
}

#[test]
fn host_state_round_trips() {
    for s in HostState::ALL {
        assert_eq!(s.as_str().parse::<HostState>().unwrap(), s);
        round_trip(&s);
    }
    assert!("running".parse::<HostState>().is_err());
}

#[test]
fn tags_and_labels_follow_upstream_conventions() {
    let id = HostId::parse("host-00112233445566778899aabbccddeeff").unwrap();
    let provider = ProviderName::parse("vultr").unwrap();
    assert_eq!(
        Tag::host_id(&id).to_string(),
        "mngr-host-id=host-00112233445566778899aabbccddeeff"
    );
    assert_eq!(Tag::provider(&provider).to_string(), "mngr-provider=vultr");
    assert_eq!(
        host_volume_name(&id),
        "mngr-host-vol-00112233445566778899aabbccddeeff"
    );
    assert_eq!(
        vps_label(&HostName::parse("my-agent").unwrap()),
        "mngr-my-agent"
    );
    let t: Tag = "k=v=w".parse().unwrap();
    assert_eq!((t.key(), t.value()), ("k", "v=w"));
    round_trip(&t);
    for bad in ["novalue", "=v", "K=v", "k=a b", "k=$(x)\n", "k=ü"] {
        assert!(bad.parse::<Tag>().is_err(), "{bad:?}");
    }
    assert_eq!(
        ProviderName::parse("a b").unwrap_err().kind,
        "provider name"
    );
}

proptest! {
    #[test]
    fn host_name_parse_never_accepts_unsafe_bytes(s in "\\PC{0,80}") {
        if let Ok(name) = HostName::parse(&s) {
            prop_assert!(name.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert!(!name.as_str().starts_with('-'));
            prop_assert!(name.as_str().len() <= 63);
        }
    }

    #[test]
    fn host_id_parse_accepts_exactly_the_generated_shape(s in "host-[0-9a-fA-F]{30,34}") {
        let hex_len = s.len() - 5;
        prop_assert_eq!(HostId::parse(&s).is_ok(), hex_len == 32);
    }

    #[test]
    fn provider_token_accepts_only_its_charset(s in "[ -~]{0,140}") {
        let ok = VpsInstanceId::parse(&s).is_ok();
        let expected = !s.is_empty() && s.len() <= 128 && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        prop_assert_eq!(ok, expected);
    }
}

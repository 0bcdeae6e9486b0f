//! The listing protocol parser, on hand-made output (no I/O).

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::json;

use super::*;

const HOST: &str = "host-00112233445566778899aabbccddeeff";

fn b64(bytes: &[u8]) -> String {
    // Wrapped at 76 columns, as coreutils and busybox `base64` print it.
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn file(path: &str, content: &[u8]) -> String {
    format!("F {path}\n{}.\n", b64(content))
}

fn output(items: &[String]) -> Vec<u8> {
    format!("{LIST_HEADER}\n{}{LIST_END}\n", items.concat()).into_bytes()
}

fn record_json(id: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "certified_host_data": {"host_id": id, "host_name": "h", "created_at": "2026-05-11T12:00:00Z", "updated_at": "2026-05-11T12:00:00Z"}
    }))
    .unwrap_or_default()
}

fn agent_json(n: u8) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": format!("agent-{n:032x}"), "name": format!("a{n}")}))
        .unwrap_or_default()
}

#[test]
fn empty_state_dir_lists_nothing() {
    let entries = parse_raw(&output(&[])).expect("valid");
    assert!(entries.is_empty());
    assert_eq!(interpret_all(entries), Listing::default());
}

#[test]
fn blank_or_foreign_output_is_a_protocol_error() {
    for bad in [&b""[..], b"\n", b"motd\nMNGR-LIST 1\nMNGR-END\n"] {
        assert!(parse_raw(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn output_cut_short_is_an_error_not_a_shorter_listing() {
    let full = output(&[file(&format!("{HOST}.json"), &record_json(HOST))]);
    for cut in [full.len() - 9, full.len() / 2, LIST_HEADER.len() + 1] {
        let err = parse_raw(&full[..cut]).expect_err("cut output");
        assert!(
            err.0.contains("cut short") || err.0.contains("ends without"),
            "{}",
            err.0
        );
    }
}

#[test]
fn unknown_lines_and_trailing_output_are_errors() {
    assert!(parse_raw(&output(&["Q what\n".into()])).is_err());
    let mut extra = output(&[]);
    extra.extend_from_slice(b"more\n");
    assert!(parse_raw(&extra).is_err());
}

#[test]
fn one_host_record_at_top_level() {
    let out = output(&[file(&format!("{HOST}.json"), &record_json(HOST))]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    assert_eq!(listing.hosts.len(), 1);
    assert_eq!(listing.hosts[0].record.host_id().as_str(), HOST);
    assert!(listing.skipped.is_empty());
}

#[test]
fn files_in_a_host_directory_are_agents_not_hosts() {
    let out = output(&[
        format!("D {HOST}\n"),
        file(&format!("{HOST}/agent-{:032x}.json", 1), &agent_json(1)),
        file(&format!("{HOST}/agent-{:032x}.json", 2), &agent_json(2)),
    ]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    assert!(listing.hosts.is_empty());
    let agents = &listing.orphan_agents[&HostId::parse(HOST).expect("id")];
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a1", "a2"]);
}

#[test]
fn corrupt_agent_is_reported_and_the_others_kept() {
    let out = output(&[
        file(&format!("{HOST}.json"), &record_json(HOST)),
        format!("D {HOST}\n"),
        file(&format!("{HOST}/agent-{:032x}.json", 1), &agent_json(1)),
        file(&format!("{HOST}/agent-{:032x}.json", 2), b"{\"id\": "),
        file(&format!("{HOST}/agent-{:032x}.json", 3), &agent_json(3)),
    ]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    assert_eq!(listing.hosts[0].agents.len(), 2);
    assert_eq!(listing.skipped.len(), 1);
    assert_eq!(
        listing.skipped[0].path,
        format!("{HOST}/agent-{:032x}.json", 2)
    );
    assert!(matches!(
        listing.skipped[0].reason,
        SkipReason::Corrupt { .. }
    ));
}

#[test]
fn stray_directory_is_reported_once_and_does_not_abort() {
    let out = output(&[
        "D junk\n".into(),
        file("junk/x.json", b"{}"),
        file(&format!("{HOST}.json"), &record_json(HOST)),
    ]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    assert_eq!(listing.hosts.len(), 1);
    assert_eq!(
        listing.skipped,
        [Skipped {
            path: "junk".into(),
            reason: SkipReason::UnexpectedName
        }]
    );
}

#[test]
fn unreadable_and_odd_entries_are_reported() {
    let out = output(&[
        format!("F {HOST}.json\nX\n.\n"),
        "O host-x.json\n".into(),
        "N notes.txt\n".into(),
        "U\n".into(),
    ]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    let reasons: Vec<&SkipReason> = listing.skipped.iter().map(|s| &s.reason).collect();
    assert_eq!(
        reasons,
        [
            &SkipReason::Unreadable,
            &SkipReason::NotARegularFile,
            &SkipReason::UnexpectedName,
            &SkipReason::UnsafeName
        ]
    );
}

#[test]
fn a_record_under_another_hosts_name_is_reported() {
    let other = "host-ffffffffffffffffffffffffffffffff";
    let out = output(&[file(&format!("{other}.json"), &record_json(HOST))]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    assert!(listing.hosts.is_empty());
    assert_eq!(
        listing.skipped[0].reason,
        SkipReason::IdMismatch {
            inside: HOST.into()
        }
    );
}

#[test]
fn content_that_looks_like_protocol_lines_is_just_content() {
    // Upstream split on a separator string, which a record could contain.
    let mut json = record_json(HOST);
    let tricky = b"\n.\nMNGR-END\nF x.json\n---MNGR_FILE_SEP---";
    let mut doc: serde_json::Value = serde_json::from_slice(&json).expect("json");
    doc["certified_host_data"]["build_log"] = json!(String::from_utf8_lossy(tricky));
    json = serde_json::to_vec(&doc).expect("json");
    let out = output(&[file(&format!("{HOST}.json"), &json)]);
    let listing = interpret_all(parse_raw(&out).expect("valid"));
    assert_eq!(
        listing.hosts[0]
            .record
            .certified_host_data
            .build_log
            .as_deref(),
        Some(&*String::from_utf8_lossy(tricky))
    );
}

proptest! {
    #[test]
    fn any_file_content_survives_the_framing(
        contents in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..6)
    ) {
        let items: Vec<String> = contents
            .iter()
            .enumerate()
            .map(|(i, c)| file(&format!("f{i}.json"), c))
            .collect();
        let entries = parse_raw(&output(&items)).expect("valid");
        prop_assert_eq!(entries.len(), contents.len());
        for (entry, content) in entries.iter().zip(&contents) {
            match entry {
                RawEntry::File { content: Some(got), .. } => prop_assert_eq!(got, content),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}

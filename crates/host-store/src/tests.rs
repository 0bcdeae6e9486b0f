//! Unit tests: records and their JSON (golden files), timestamps, the generated scripts
//! (snapshots), and the scripts run by the local `sh` on a temp directory.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use vps_primitives::{AgentId, HostId, HostName, HostState, OsId, ProviderName};

use crate::listing::parse_raw;
use crate::*;

/// The §8.4 upstream layout, placeholders filled with realistic values.
const UPSTREAM_RECORD: &str = include_str!("../tests/fixtures/upstream-record.json");

fn host_id() -> HostId {
    HostId::parse("host-00112233445566778899aabbccddeeff").expect("valid id")
}

fn agent_id(n: u8) -> AgentId {
    AgentId::parse(&format!("agent-{n:032x}")).expect("valid id")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

fn certified() -> CertifiedHostData {
    CertifiedHostData::new(
        host_id(),
        HostName::parse("my-agent").expect("valid name"),
        at("2026-05-11T12:00:00.123456Z"),
    )
}

fn config() -> VpsHostConfig {
    serde_json::from_value(json!({
        "vps_instance_id": "cb676a46-66fd-4dfb-b839-443f2e6c0b60",
        "region": "ewr",
        "plan": "vc2-2c-4gb",
        "os_id": 2136,
        "container_name": "mngr-my-agent",
        "volume_name": "mngr-host-vol-00112233445566778899aabbccddeeff",
    }))
    .expect("valid config")
}

fn full_record() -> HostRecord {
    let mut data = certified();
    data.idle_timeout_seconds = 800;
    data.image = Some("debian:bookworm-slim".into());
    data.user_tags.insert("team".into(), "infra".into());
    data.snapshots.push(SnapshotRecord {
        id: format!("sha256:{}", "0f".repeat(32)),
        name: "mngr-snapshot-host-00112233445566778899aabbccddeeff-1746964800".into(),
        created_at: "2026-05-11T12:00:00.123456+00:00".into(),
        extra: Default::default(),
    });
    data.stop_reason = Some(HostState::Stopped);
    data.plugin
        .insert("claude".into(), json!({"version": "1.2"}));
    let mut record = HostRecord::new(data);
    record.vps_ip = Some("203.0.113.7".parse().expect("ip"));
    record.ssh_host_public_key =
        Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLtFGM0ebgT9O7".into());
    record.container_ssh_host_public_key =
        Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDa8bKD3A7ub3GKz".into());
    let mut cfg = config();
    cfg.start_args = vec!["--cpus=2".into()];
    cfg.image = Some("debian:bookworm-slim".into());
    record.config = Some(cfg);
    record.container_id = Some("f00d".repeat(16));
    record
}

fn pretty(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 JSON")
}

// ---- records -------------------------------------------------------------------------

#[test]
fn upstream_layout_parses_with_every_field() {
    let record = HostRecord::from_json(UPSTREAM_RECORD.as_bytes()).expect("upstream record parses");
    let data = &record.certified_host_data;
    assert_eq!(
        record.schema_version, 1,
        "upstream records read as version 1"
    );
    assert_eq!(record.host_id(), &host_id());
    assert_eq!(data.host_name.as_str(), "my-agent");
    assert_eq!(data.idle_timeout_seconds, 800);
    assert_eq!(data.idle_mode(), IdleMode::Io);
    assert_eq!(data.created_at.to_string(), "2026-05-11T12:00:00.123456Z");
    assert_eq!(data.snapshots.len(), 1);
    assert_eq!(
        data.snapshots[0].created_at,
        "2026-05-11T12:00:00.123456+00:00"
    );
    assert!(
        data.extra.is_empty(),
        "idle_mode is derived, not kept: {:?}",
        data.extra
    );
    assert_eq!(record.vps_ip, Some("203.0.113.7".parse().expect("ip")));
    let cfg = record.config.as_ref().expect("config");
    assert_eq!(
        cfg.vps_instance_id.as_str(),
        "cb676a46-66fd-4dfb-b839-443f2e6c0b60"
    );
    assert_eq!(cfg.os_id, OsId(2136));
    assert_eq!(cfg.start_args, ["--cpus=2"]);
    assert!(record.extra.is_empty());
}

#[test]
fn upstream_layout_round_trips_without_losing_fields() {
    let original: Value = serde_json::from_str(UPSTREAM_RECORD).expect("json");
    let record = HostRecord::from_json(UPSTREAM_RECORD.as_bytes()).expect("parses");
    let written: Value =
        serde_json::from_slice(&record.to_json().expect("serialises")).expect("json");
    let mut expected = original.clone();
    expected["schema_version"] = json!(SCHEMA_VERSION);
    assert_eq!(written, expected);
    // Same keys in the same order as upstream, schema_version first.
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    let mut expected_keys = vec!["schema_version".to_owned()];
    expected_keys.extend(keys(&original));
    assert_eq!(keys(&written), expected_keys);
    assert_eq!(
        keys(&written["certified_host_data"]),
        keys(&original["certified_host_data"])
    );
    assert_eq!(keys(&written["config"]), keys(&original["config"]));
}

#[test]
fn golden_upstream_record_as_written_by_us() {
    let record = HostRecord::from_json(UPSTREAM_RECORD.as_bytes()).expect("parses");
    insta::assert_snapshot!(
        "upstream_record_rewritten",
        pretty(&record.to_json().expect("json"))
    );
}

#[test]
fn golden_full_record() {
    insta::assert_snapshot!(
        "full_record",
        pretty(&full_record().to_json().expect("json"))
    );
}

#[test]
fn golden_minimal_record() {
    insta::assert_snapshot!(
        "minimal_record",
        pretty(&HostRecord::new(certified()).to_json().expect("json"))
    );
}

#[test]
fn golden_agent_record() {
    let agent = AgentRecord::from_value(json!({
        "id": agent_id(1).as_str(),
        "name": "fixer",
        "type": "claude",
        "work_dir": "/root/work",
        "create_time": "2026-05-11T12:00:00.123456+00:00",
        "command": "claude",
        "additional_commands": [{"command": "htop", "window_name": "top"}],
        "initial_message": null,
        "resume_message": null,
        "ready_timeout_seconds": 10.0,
        "permissions": [],
        "start_on_boot": false,
        "labels": {},
        "created_branch_name": "mngr/fixer",
    }))
    .expect("valid agent");
    insta::assert_snapshot!("agent_record", pretty(&agent.to_json().expect("json")));
}

#[test]
fn record_from_a_newer_version_keeps_unknown_fields_on_rewrite() {
    let mut doc: Value = serde_json::from_str(UPSTREAM_RECORD).expect("json");
    doc["schema_version"] = json!(7);
    doc["future_top"] = json!({"nested": [1, 2, 3]});
    doc["certified_host_data"]["future_data"] = json!("kept");
    doc["certified_host_data"]["snapshots"][0]["future_snapshot"] = json!(true);
    doc["certified_host_data"]["activity_sources"] = json!(["USER", "TELEPATHY"]);
    doc["config"]["future_config"] = json!(42);
    let mut record: HostRecord = serde_json::from_value(doc.clone()).expect("parses");
    assert_eq!(record.schema_version, 7);
    assert_eq!(record.certified_host_data.idle_mode(), IdleMode::Custom);
    // A rewrite by this version: change a known field, keep everything else.
    record.container_id = Some("beef".into());
    let written: Value = serde_json::from_slice(&record.to_json().expect("json")).expect("json");
    let mut expected = doc;
    expected["container_id"] = json!("beef");
    expected["certified_host_data"]["idle_mode"] = json!("CUSTOM");
    assert_eq!(written, expected);
    insta::assert_snapshot!(
        "newer_version_rewritten",
        serde_json::to_string_pretty(&written).expect("json")
    );
}

#[test]
fn config_defaults_and_record_with_only_certified_data() {
    let cfg = config();
    assert!(cfg.start_args.is_empty());
    assert_eq!(cfg.image, None);
    assert_eq!(cfg.vps_ssh_key_id, None);
    let json = json!({"certified_host_data": serde_json::to_value(certified()).expect("json")});
    let record: HostRecord = serde_json::from_value(json).expect("parses");
    assert_eq!(record.vps_ip, None);
    assert_eq!(record.ssh_host_public_key, None);
    assert_eq!(record.container_ssh_host_public_key, None);
    assert_eq!(record.config, None);
    assert_eq!(record.container_id, None);
}

#[test]
fn json_round_trip_keeps_every_field() {
    let record = full_record();
    let back = HostRecord::from_json(&record.to_json().expect("json")).expect("parses");
    assert_eq!(back, record);
    assert_eq!(
        back.config.as_ref().map(|c| c.vps_instance_id.as_str()),
        Some("cb676a46-66fd-4dfb-b839-443f2e6c0b60")
    );
}

#[test]
fn pinned_host_keys_parse_and_are_recorded_as_openssh_lines() {
    let mut record = HostRecord::new(certified());
    assert!(record.vps_host_key().expect("no key is fine").is_none());
    let vps = docker_ssh::generate_ed25519().expect("key");
    let container = docker_ssh::generate_ed25519().expect("key");
    record.set_host_keys(Some(vps.public_key()), Some(container.public_key()));
    assert!(
        record
            .ssh_host_public_key
            .as_deref()
            .is_some_and(|l| l.starts_with("ssh-ed25519 "))
    );
    assert_eq!(
        record.vps_host_key().expect("parses").as_ref(),
        Some(vps.public_key())
    );
    assert_eq!(
        record.container_host_key().expect("parses").as_ref(),
        Some(container.public_key())
    );
    record.ssh_host_public_key = Some("ssh-ed25519 AAAA…".into());
    assert!(record.vps_host_key().is_err());
}

#[test]
fn updated_copy_leaves_the_original_alone() {
    let original = full_record();
    let mut updated = original.clone();
    updated.certified_host_data.host_name = HostName::parse("renamed").expect("name");
    assert_eq!(updated.vps_ip, original.vps_ip);
    assert_eq!(original.certified_host_data.host_name.as_str(), "my-agent");
}

#[test]
fn missing_timestamps_default_to_the_past_like_upstream() {
    let json = json!({"certified_host_data": {"host_id": host_id().as_str(), "host_name": "old"}});
    let before = Timestamp::now();
    let record: HostRecord = serde_json::from_value(json).expect("parses");
    let data = record.certified_host_data;
    assert!(data.created_at < data.updated_at && data.updated_at < before);
    assert_eq!(data.idle_timeout_seconds, DEFAULT_IDLE_TIMEOUT_SECONDS);
    assert_eq!(data.idle_mode(), IdleMode::Io);
}

#[test]
fn invalid_records_are_rejected_with_the_reason() {
    let cases = [
        (
            json!({"certified_host_data": {"host_id": "host-xyz", "host_name": "a"}}),
            "host id",
        ),
        (
            json!({"certified_host_data": {"host_id": host_id().as_str(), "host_name": "a b"}}),
            "host name",
        ),
        (
            json!({"certified_host_data": {"host_id": host_id().as_str(), "host_name": "a", "created_at": "yesterday"}}),
            "timestamp",
        ),
        (json!({"vps_ip": "1.2.3.4"}), "certified_host_data"),
    ];
    for (doc, needle) in cases {
        let err = serde_json::from_value::<HostRecord>(doc.clone()).expect_err("must fail");
        assert!(err.to_string().contains(needle), "{doc}: {err}");
    }
}

#[test]
fn idle_mode_is_derived_from_the_set_of_sources() {
    use ActivitySource as S;
    for mode in IdleMode::PRESETS {
        let mut sources = mode.sources().expect("preset");
        sources.reverse();
        assert_eq!(IdleMode::from_sources(&sources), mode);
    }
    assert_eq!(IdleMode::from_sources(&[S::Ssh, S::User]), IdleMode::Custom);
    assert_eq!(IdleMode::from_sources(&[S::Boot, S::Boot]), IdleMode::Boot);
    assert_eq!(IdleMode::Custom.sources(), None);
}

#[test]
fn agent_records_check_id_and_name_and_keep_the_rest_in_order() {
    let ok = json!({"id": agent_id(2).as_str(), "name": "n", "z": 1, "a": 2});
    let agent = AgentRecord::from_value(ok).expect("valid");
    assert_eq!(agent.data.keys().collect::<Vec<_>>(), ["z", "a"]);
    assert!(AgentRecord::from_value(json!({"name": "n"})).is_err());
    assert!(AgentRecord::from_value(json!({"id": "agent-1", "name": "n"})).is_err());
    assert!(AgentRecord::from_value(json!({"id": agent_id(2).as_str(), "name": ""})).is_err());
    let mut dup = AgentRecord::new(agent_id(3), "n");
    dup.data.insert("id".into(), json!("other"));
    let err = dup.to_json().expect_err("duplicate id");
    assert!(err.to_string().contains("`id`"), "{err}");
}

#[test]
fn timestamps_are_written_like_pydantic_and_read_leniently() {
    assert_eq!(
        at("2026-05-11T12:00:00Z").to_string(),
        "2026-05-11T12:00:00Z"
    );
    assert_eq!(
        at("2026-05-11T12:00:00.000001Z").to_string(),
        "2026-05-11T12:00:00.000001Z"
    );
    assert_eq!(
        at("2026-05-11T12:00:00.123456789Z").to_string(),
        "2026-05-11T12:00:00.123456Z"
    );
    assert_eq!(
        at("2026-05-11T13:30:00+01:30").to_string(),
        "2026-05-11T12:00:00Z"
    );
    assert_eq!(
        at("2026-05-11T12:00:00.5").to_string(),
        "2026-05-11T12:00:00.500000Z"
    );
    assert!("2026-05-11".parse::<Timestamp>().is_err());
    let now = Timestamp::now();
    assert_eq!(at(&now.to_string()), now, "now survives a write and a read");
}

// ---- names ---------------------------------------------------------------------------

#[test]
fn state_container_names_are_validated() {
    let name =
        StateContainerName::new(DEFAULT_PREFIX, "0123456789abcdef0123456789abcdef").expect("valid");
    assert_eq!(
        name.as_str(),
        "mngr-docker-state-0123456789abcdef0123456789abcdef"
    );
    assert!(StateContainerName::new("", "u").is_ok());
    for bad_user in ["", "a b", "x/y", "$(id)", &"u".repeat(65)] {
        assert!(
            StateContainerName::new("mngr-", bad_user).is_err(),
            "{bad_user:?}"
        );
    }
    for bad_prefix in ["-", "a b", "é"] {
        assert!(
            StateContainerName::new(bad_prefix, "u").is_err(),
            "{bad_prefix:?}"
        );
    }
    assert_eq!(
        host_record_path(&host_id()),
        "/mngr-state/host_state/host-00112233445566778899aabbccddeeff.json"
    );
    assert_eq!(
        agent_record_path(&host_id(), &agent_id(1)),
        "/mngr-state/host_state/host-00112233445566778899aabbccddeeff/agent-00000000000000000000000000000001.json"
    );
}

// ---- generated scripts and argv (snapshots) --------------------------------------------

fn spec() -> StateContainerSpec {
    StateContainerSpec::new(
        StateContainerName::new("mngr-", "0123456789abcdef0123456789abcdef").expect("valid"),
        "mngr-local/debian-base:31b7e65f48053be0",
        ProviderName::parse("vultr").expect("valid"),
    )
    .label("com.imbue.mngr.test-run", "dev")
}

#[test]
fn snapshot_scripts() {
    let h = host_id();
    let a = agent_id(1);
    insta::assert_snapshot!(
        "script_write_host_record",
        script::write_host_record(&h, 1234)
    );
    insta::assert_snapshot!(
        "script_write_agent_record",
        script::write_agent_record(&h, &a, 99)
    );
    insta::assert_snapshot!("script_list_all", script::list_all());
    insta::assert_snapshot!("script_read_host_record", script::read_host_record(&h));
    insta::assert_snapshot!("script_list_agents", script::list_agents(&h));
    insta::assert_snapshot!(
        "script_read_on_vps",
        script::read_on_vps("mngr-docker-state-x", |dir| script::read_host_record_at(
            dir, &h
        ))
    );
    insta::assert_snapshot!("script_delete_host", script::delete_host(&h));
    insta::assert_snapshot!("script_remove_agent", script::remove_agent(&h, &a));
    insta::assert_snapshot!("script_probe_tools", script::probe_tools());
}

#[test]
fn snapshot_state_container_argv() {
    let cli = docker_ssh::DockerCli::new();
    let run = cli.run(&spec().run_options());
    insta::assert_snapshot!("argv_run_state_container", run.command_line());
    let vol = cli.volume_create(spec().name.as_str(), &spec().all_labels());
    insta::assert_snapshot!("argv_volume_create", vol.command_line());
    let write = cli.exec(
        &docker_ssh::ExecOptions::script(
            spec().name.as_str(),
            script::write_host_record(&host_id(), 1234),
        )
        .stdin(b"{}".to_vec()),
    );
    insta::assert_snapshot!("argv_exec_write", write.command_line());
}

#[test]
fn state_container_run_options_have_the_required_parts() {
    let argv = docker_ssh::DockerCli::new()
        .run(&spec().run_options())
        .command_line();
    for part in [
        "--name mngr-docker-state-0123456789abcdef0123456789abcdef",
        "-v mngr-docker-state-0123456789abcdef0123456789abcdef:/mngr-state",
        "--label com.imbue.mngr.provider=vultr",
        "--label com.imbue.mngr.type=state-container",
        "--label com.imbue.mngr.test-run=dev",
        "--restart unless-stopped",
        "--pull never",
    ] {
        assert!(argv.contains(part), "{part} missing in {argv}");
    }
}

// ---- the scripts, run by the local sh ----------------------------------------------------

struct Sh {
    dir: tempfile::TempDir,
}

impl Sh {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn state(&self) -> String {
        format!("{}/host_state", self.dir.path().display())
    }

    fn run(&self, script: &str, stdin: &[u8]) -> std::process::Output {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh runs");
        if let Some(mut pipe) = child.stdin.take() {
            // A script may exit before reading everything: ignore a broken pipe.
            let _ = pipe.write_all(stdin);
        }
        child.wait_with_output().expect("sh finishes")
    }

    fn write(&self, rel_dir: &str, file: &str, content: &[u8]) -> std::process::Output {
        let dir = format!("{}/{rel_dir}", self.state());
        let script = script::write_file(
            dir.trim_end_matches('/'),
            file,
            content.len(),
            Some(&self.state()),
        );
        self.run(&script, content)
    }

    fn list(&self) -> Listing {
        let out = self.run(&script::list_all_in(&self.state()), b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        listing::interpret_all(parse_raw(&out.stdout).expect("protocol"))
    }

    fn entries(&self, rel_dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(format!("{}/{rel_dir}", self.state()))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn sh_write_replaces_the_file_and_leaves_no_temp_file() {
    let sh = Sh::new();
    let name = format!("{}.json", host_id());
    for content in [&b"first"[..], b"second, longer", b""] {
        let out = sh.write("", &name, content);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(format!("{}/{name}", sh.state())).expect("file"),
            content
        );
        assert_eq!(sh.entries(""), std::slice::from_ref(&name));
    }
}

#[test]
fn sh_write_with_short_stdin_keeps_the_old_file() {
    let sh = Sh::new();
    let name = format!("{}.json", host_id());
    assert!(sh.write("", &name, b"old record").status.success());
    let dir = sh.state();
    let script = script::write_file(&dir, &name, 1000, None);
    let out = sh.run(&script, b"only part of the new one");
    assert_eq!(out.status.code(), Some(script::SHORT_WRITE_STATUS as i32));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("received 24 of 1000 bytes"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read(format!("{dir}/{name}")).expect("file"),
        b"old record"
    );
    assert_eq!(sh.entries(""), [name], "the temp file is removed");
}

#[test]
fn sh_write_removes_stale_temp_files_only() {
    let sh = Sh::new();
    let name = format!("{}.json", host_id());
    assert!(sh.write("", &name, b"v1").status.success());
    let state = sh.state();
    let stale = format!("{state}/.{name}.tmp.OLD123");
    let fresh = format!("{state}/.{name}.tmp.NEW456");
    let other = format!("{state}/.other.json.tmp.OLD789");
    for path in [&stale, &fresh, &other] {
        std::fs::write(path, b"half").expect("temp file");
    }
    let touched = Command::new("touch")
        .args(["-d", "20 minutes ago", &stale, &other])
        .status()
        .expect("touch");
    assert!(touched.success());
    assert!(sh.write("", &name, b"v2").status.success());
    let mut expected = vec![
        format!(".{name}.tmp.NEW456"),
        ".other.json.tmp.OLD789".to_owned(),
        name,
    ];
    expected.sort();
    assert_eq!(
        sh.entries(""),
        expected,
        "only this file's stale temp file goes"
    );
}

#[test]
fn sh_write_quotes_hostile_paths() {
    let sh = Sh::new();
    let out = sh.write("it's $(touch pwned) `x`", "a b.json", b"x");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sh.entries("it's $(touch pwned) `x`"), ["a b.json"]);
    assert!(!std::path::Path::new("pwned").exists());
}

#[test]
fn sh_list_reads_records_and_agents_and_reports_the_rest() {
    let sh = Sh::new();
    let good = full_record();
    let id = good.host_id().clone();
    assert!(
        sh.write("", &format!("{id}.json"), &good.to_json().expect("json"))
            .status
            .success()
    );
    let agent = AgentRecord::new(agent_id(1), "fixer");
    assert!(
        sh.write(
            id.as_str(),
            &format!("{}.json", agent.id),
            &agent.to_json().expect("json")
        )
        .status
        .success()
    );
    // Orphan agents: a host directory without a record.
    let orphan_host = HostId::parse(&format!("host-{:032x}", 9)).expect("id");
    let orphan = AgentRecord::new(agent_id(2), "lost");
    assert!(
        sh.write(
            orphan_host.as_str(),
            &format!("{}.json", orphan.id),
            &orphan.to_json().expect("json")
        )
        .status
        .success()
    );
    // Junk of every kind.
    let state = sh.state();
    let other = HostId::parse(&format!("host-{:032x}", 5)).expect("id");
    std::fs::write(
        format!("{state}/{other}.json"),
        b"{\"certified_host_data\": {",
    )
    .expect("write");
    std::fs::write(format!("{state}/notes.txt"), b"hello").expect("write");
    std::fs::write(format!("{state}/bad\nname.json"), b"{}").expect("write");
    std::fs::create_dir_all(format!("{state}/junk")).expect("dir");
    std::fs::write(format!("{state}/junk/x.json"), b"{}").expect("write");
    std::fs::create_dir_all(format!("{state}/host-{:032x}.json", 8)).expect("dir");
    std::os::unix::fs::symlink("/etc/passwd", format!("{state}/host-{:032x}.json", 6))
        .expect("symlink");
    std::fs::write(format!("{state}/{id}/{}.json", agent_id(3)), b"not json").expect("write");
    std::fs::write(format!("{state}/.{id}.json.tmp.abc123"), b"half a wri").expect("write");
    let mut misplaced = full_record();
    misplaced.certified_host_data.host_id = other.clone();
    std::fs::write(
        format!("{state}/host-{:032x}.json", 7),
        misplaced.to_json().expect("json"),
    )
    .expect("write");

    let listing = sh.list();
    assert_eq!(listing.hosts.len(), 1, "{listing:#?}");
    assert_eq!(listing.hosts[0].record, good);
    assert_eq!(listing.hosts[0].agents, [agent]);
    assert_eq!(listing.orphan_agents.get(&orphan_host), Some(&vec![orphan]));
    let mut skipped: Vec<String> = listing
        .skipped
        .iter()
        .map(|s| format!("{}: {:?}", s.path, s.reason))
        .collect();
    skipped.sort();
    insta::assert_snapshot!("sh_list_skipped", skipped.join("\n"));
}

#[test]
fn sh_read_one_and_list_agents() {
    let sh = Sh::new();
    let id = host_id();
    let read = |sh: &Sh| {
        let out = sh.run(&script::read_host_record_in(&sh.state(), &id), b"");
        assert!(out.status.success());
        parse_raw(&out.stdout).expect("protocol")
    };
    assert!(read(&sh).is_empty(), "no state dir yet");
    assert!(sh.write("", &format!("{id}.json"), b"{}").status.success());
    assert_eq!(read(&sh).len(), 1);
    let agents = |sh: &Sh| {
        let out = sh.run(&script::list_agents_in(&sh.state(), &id), b"");
        listing::interpret_agents(parse_raw(&out.stdout).expect("protocol"))
    };
    assert_eq!(agents(&sh), AgentListing::default());
    for n in [3, 1, 2] {
        let a = AgentRecord::new(agent_id(n), format!("a{n}"));
        assert!(
            sh.write(
                id.as_str(),
                &format!("{}.json", a.id),
                &a.to_json().expect("json")
            )
            .status
            .success()
        );
    }
    let names: Vec<String> = agents(&sh).agents.into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["a1", "a2", "a3"]);
}

#[test]
fn sh_delete_and_remove_are_idempotent() {
    let sh = Sh::new();
    let id = host_id();
    let state = sh.state();
    let last_line = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        last_line(sh.run(&script::delete_host_in(&state, &id), b"")),
        "MNGR-ABSENT"
    );
    assert!(sh.write("", &format!("{id}.json"), b"{}").status.success());
    assert!(
        sh.write(id.as_str(), &format!("{}.json", agent_id(1)), b"{}")
            .status
            .success()
    );
    assert!(
        sh.write(id.as_str(), &format!("{}.json", agent_id(2)), b"{}")
            .status
            .success()
    );
    assert_eq!(
        last_line(sh.run(&script::remove_agent_in(&state, &id, &agent_id(1)), b"")),
        "MNGR-REMOVED"
    );
    assert_eq!(
        last_line(sh.run(&script::remove_agent_in(&state, &id, &agent_id(1)), b"")),
        "MNGR-ABSENT"
    );
    assert_eq!(sh.entries(id.as_str()), [format!("{}.json", agent_id(2))]);
    assert_eq!(
        last_line(sh.run(&script::delete_host_in(&state, &id), b"")),
        "MNGR-REMOVED"
    );
    assert!(sh.entries("").is_empty());
    assert_eq!(
        last_line(sh.run(&script::delete_host_in(&state, &id), b"")),
        "MNGR-ABSENT"
    );
}

#[test]
fn sh_probe_reports_missing_tools() {
    let sh = Sh::new();
    let out = sh.run(&script::probe_tools(), b"");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "this machine has every tool"
    );
    let out = sh.run(
        &format!("PATH=/nonexistent\n{}", script::probe_tools()),
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        script::REQUIRED_TOOLS
    );
}

/// `read_on_vps` with a fake `docker` on PATH: it reads the volume's mount point when it
/// can, falls back to `docker exec` in the state container when it cannot, and fails when
/// the volume is missing.
#[test]
fn sh_read_on_vps_reads_the_volume_or_falls_back_to_the_container() {
    use std::os::unix::fs::PermissionsExt;
    let sh = Sh::new();
    let id = host_id();
    assert!(sh.write("", &format!("{id}.json"), b"{}").status.success());
    let bin = tempfile::tempdir().expect("bin dir");
    let fake = |mountpoint: &str| {
        let path = bin.path().join("docker");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\ncase \"$1 $2\" in\n  'volume inspect') [ \"$5\" = mngr-docker-state-x ] || {{ echo 'Error: No such volume' >&2; exit 1; }}; echo {mountpoint} ;;\n  'exec -i') echo \"EXEC $3\" ;;\nesac\n"
            ),
        )
        .expect("fake docker");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    let run = |container: &str| {
        let script = script::read_on_vps(container, |dir| script::read_host_record_at(dir, &id));
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", path)
            .output()
            .expect("sh runs")
    };
    // Readable: the record comes from the mount point, with no docker exec.
    fake(&sh.dir.path().display().to_string());
    let out = run("mngr-docker-state-x");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parse_raw(&out.stdout).expect("protocol").len(), 1);
    // Not readable (not root): the same listing in the state container.
    fake("/nonexistent/mngr-test");
    let out = run("mngr-docker-state-x");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "EXEC mngr-docker-state-x"
    );
    // No such volume: Docker's error, and a failure.
    let out = run("mngr-docker-state-y");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such volume"));
}

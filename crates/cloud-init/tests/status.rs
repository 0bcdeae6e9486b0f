//! `cloud-init status --format json` as cloud-init 22.4.2 (Debian 12) and later print it.

use cloud_init::{CloudInitState, CloudInitStatus, StatusParseError};

/// Printed by bookworm's 22.4.2 on a fake VPS after a clean boot.
const DONE_22_4: &str = r#"{
  "_schema_version": "1",
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]",
  "errors": [],
  "last_update": "Mon, 30 Nov 2026 05:40:12 +0000",
  "schemas": {
    "1": {
      "boot_status_code": "enabled-by-generator",
      "datasource": "nocloud",
      "detail": "DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]",
      "errors": [],
      "last_update": "Mon, 30 Nov 2026 05:40:12 +0000",
      "status": "done"
    }
  },
  "status": "done"
}"#;

/// 22.4.2 after a runcmd step failed.
const ERROR_22_4: &str = r#"{
  "_schema_version": "1",
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))",
  "errors": [
    "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"
  ],
  "last_update": "Mon, 30 Nov 2026 05:41:02 +0000",
  "schemas": {},
  "status": "error"
}"#;

/// 24.x with a recoverable problem.
const DEGRADED_24: &str = r#"{
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "DataSourceNoCloud [seed=/dev/vdb]",
  "errors": [],
  "extended_status": "degraded done",
  "last_update": "Thu, 01 Jan 1970 00:00:29 +0000",
  "recoverable_errors": {"DEPRECATED": ["Key 'x' is deprecated"], "WARNING": ["could not resize"]},
  "status": "done"
}"#;

#[test]
fn done_error_running_and_newer_formats() {
    let done = CloudInitStatus::parse_json(DONE_22_4).expect("parses");
    assert_eq!(done.state, CloudInitState::Done);
    assert!(done.errors.is_empty() && done.is_finished());
    assert_eq!(
        done.boot_status_code.as_deref(),
        Some("enabled-by-generator")
    );
    assert_eq!(done.summary(), "done");

    let error = CloudInitStatus::parse_json(ERROR_22_4).expect("parses");
    assert_eq!(error.state, CloudInitState::Error);
    assert_eq!(error.errors.len(), 1);
    assert!(error.is_finished());
    assert!(
        error.summary().starts_with("error: ('scripts-user'"),
        "{}",
        error.summary()
    );

    let degraded = CloudInitStatus::parse_json(DEGRADED_24).expect("parses");
    assert_eq!(degraded.state, CloudInitState::Done);
    assert_eq!(
        degraded.recoverable_errors,
        [
            "DEPRECATED: Key 'x' is deprecated",
            "WARNING: could not resize"
        ]
    );
    assert_eq!(
        degraded.summary(),
        "degraded done (recoverable: DEPRECATED: Key 'x' is deprecated; WARNING: could not resize)"
    );

    for (status, state, finished) in [
        ("running", CloudInitState::Running, false),
        ("not run", CloudInitState::NotStarted, false),
        ("not started", CloudInitState::NotStarted, false),
        ("disabled", CloudInitState::Disabled, true),
    ] {
        let parsed =
            CloudInitStatus::parse_json(&format!(r#"{{"status": "{status}"}}"#)).expect("parses");
        assert_eq!(parsed.state, state, "{status}");
        assert_eq!(parsed.is_finished(), finished, "{status}");
    }
}

#[test]
fn garbage_is_an_error_that_shows_the_output() {
    let err = CloudInitStatus::parse_json("status: done\n").expect_err("not JSON");
    assert!(matches!(err, StatusParseError::NotJson { .. }));
    assert!(err.to_string().contains("status: done"), "{err}");
    let err = CloudInitStatus::parse_json(r#"{"status": "exploded"}"#).expect_err("unknown");
    assert!(err.to_string().contains("exploded"), "{err}");
    assert!(CloudInitStatus::parse_json(r#"{"errors": []}"#).is_err());
}

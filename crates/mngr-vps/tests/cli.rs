//! The command line without hosts: help, argument errors, exit codes, configuration, JSON
//! shapes, completions and the man page. Only the last tests talk to the Docker engine
//! (an empty `list`, `cleanup` of a key directory left by a host that exists nowhere, a
//! missing host, snapshot input refused before any lookup); none makes a host.

mod common;

use common::Home;

#[test]
fn help_shows_examples_environment_and_exit_codes() {
    let home = Home::new();
    let out = home.run(&["--help"]);
    out.code(0);
    insta::assert_snapshot!("help", out.stdout);
    let out = home.run(&["create", "--help"]);
    out.code(0);
    insta::assert_snapshot!("create_help", out.stdout);
    for (verb, snapshot) in [
        (&["snapshot", "--help"][..], "snapshot_help"),
        (&["cleanup", "--help"], "cleanup_help"),
        (&["start", "--help"], "start_help"),
    ] {
        let out = home.run(verb);
        out.code(0);
        insta::assert_snapshot!(snapshot, out.stdout);
    }
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["exec", "a"],
        &["exec", "a", "uname"],
        &["create"],
        &["create", "a", "--idle-timeout", "0"],
        &["create", "a", "--idle-timeout", "soon"],
        &["create", "a", "--idle-mode", "sometimes"],
        &["create", "a", "--tag", "novalue"],
        &["create", "a", "--tag", "=v"],
        &["completions", "powershell-9"],
        &["snapshot"],
        &["snapshot", "create"],
        &["snapshot", "list"],
        &["snapshot", "delete", "a"],
        &["snapshot", "delete", "a", ""],
        &["snapshot", "rename", "a", "b"],
        &["start", "a", "--snapshot"],
        &["start", "a", "--snapshot", ""],
        &["hibernate"],
        &["wake"],
        &["create", "a", "--from-snapshot", "nocolon"],
        &["create", "a", "--from-snapshot", "b:"],
        &["create", "a", "--from-snapshot", ":s"],
        &["create", "a", "--from-snapshot", "b:s", "--image", "debian"],
        &["cleanup", "extra"],
    ] {
        let out = home.run(args);
        out.code(2);
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn bad_durations_exit_2_with_the_rule() {
    let home = Home::new();
    for bad in [
        "",
        "soon",
        "1.5h",
        "-1h",
        "1w",
        "2 d",
        "90sec",
        "99999999999999999999d",
    ] {
        let arg = format!("--older-than={bad}");
        let out = home.run(&["cleanup", &arg]);
        out.code(2);
        assert!(
            out.stderr.contains("90s, 30m, 1h, 2d"),
            "{bad:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn invalid_host_names_are_refused_with_the_rule_before_anything_is_made() {
    let home = Home::new();
    let long = "a".repeat(64);
    for name in [
        "",
        "my agent",
        "it's",
        "$(touch /tmp/x)",
        "a\nb",
        long.as_str(),
    ] {
        let from = format!("{name}:snap");
        for args in [
            &["create", name][..],
            &["show", name],
            &["stop", name],
            &["start", name],
            &["start", name, "--snapshot", "snap"],
            &["exec", name, "--", "true"],
            &["destroy", name, "--yes"],
            &["snapshot", "create", name],
            &["snapshot", "list", name, "--json"],
            &["snapshot", "delete", name, "snap"],
            &["hibernate", name],
            &["wake", name],
            &["create", "fine", "--from-snapshot", &from],
        ] {
            let out = home.run(args);
            out.code(2);
            assert!(out.stderr.contains("host name"), "{args:?}: {}", out.stderr);
        }
    }
    assert!(!home.path().join("keys").exists(), "nothing may be made");
}

#[test]
fn destroy_without_a_terminal_needs_yes() {
    let home = Home::new();
    let out = home.run(&["destroy", "my-agent"]);
    out.code(2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
}

#[test]
fn config_says_where_each_value_came_from() {
    let home = Home::new();
    home.config(
        "[providers.local]\ndefault_idle_timeout = 60\n\n[providers.cloud]\nbackend = \"vultr\"\napi_key = \"do-not-show\"\n",
    );
    let out = home.run(&["config", "--json"]);
    out.code(0);
    let json = out.json();
    let entry = |key: &str| json[key].clone();
    assert_eq!(entry("provider")["value"], "local");
    assert_eq!(entry("provider")["source"], "default");
    assert_eq!(entry("providers.local.default_idle_timeout")["value"], "60");
    assert_eq!(
        entry("providers.local.default_idle_timeout")["source"],
        "config file"
    );
    assert_eq!(
        entry("providers.local.ssh_connect_timeout")["source"],
        "default"
    );
    assert_eq!(
        entry("providers.local.default_image")["source"],
        "default (local backend)"
    );
    assert_eq!(entry("data_dir")["source"], "env MNGR_VPS_HOME");

    let out = home
        .cmd(&["config"])
        .env("MNGR_VPS_PROVIDER", "cloud")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("env MNGR_VPS_PROVIDER"), "{text}");
    assert!(text.contains("providers.cloud.api_key"), "{text}");
    assert!(!text.contains("do-not-show"), "{text}");
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let home = Home::new();
    home.config("[providers.local]\ncontainer_ssh_port = 22\n");
    let out = home.run(&["list"]);
    out.code(2);
    assert!(out.stderr.contains("container_ssh_port"), "{}", out.stderr);

    home.config("[providers.local]\ndefault_imag = \"x\"\n");
    let out = home.run(&["config"]);
    out.code(2);
    assert!(out.stderr.contains("default_imag"), "{}", out.stderr);

    home.config("");
    let out = home.run(&["--provider", "nowhere", "list"]);
    out.code(2);
    assert!(out.stderr.contains("[providers.nowhere]"), "{}", out.stderr);

    let out = home.run(&["--provider", "vultr", "list"]);
    out.code(2);
    assert!(out.stderr.contains("VULTR_API_KEY"), "{}", out.stderr);
}

#[test]
fn completions_and_man_page_are_generated() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = home.run(&["completions", shell]);
        out.code(0);
        assert!(out.stdout.contains("mngr-vps"), "{shell}");
        assert!(out.stdout.contains("destroy"), "{shell}");
    }
    let out = home.run(&["man"]);
    out.code(0);
    assert!(out.stdout.contains(".TH mngr-vps"), "{}", out.stdout);
    assert!(out.stdout.contains("Exit codes"), "{}", out.stdout);
}

#[test]
fn without_a_docker_engine_the_local_provider_says_what_to_do() {
    let home = Home::new();
    let empty = tempfile::tempdir().expect("dir");
    let out = home
        .cmd(&["list"])
        .env("PATH", empty.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Docker engine"), "{stderr}");
    assert!(stderr.contains("dockerd"), "{stderr}");
    assert!(stderr.contains("docker.io"), "{stderr}");
}

#[test]
fn an_empty_local_provider_lists_an_empty_json_array_and_misses_hosts_with_3() {
    let home = Home::new();
    let out = home.run(&["list", "--json"]);
    out.code(0);
    assert_eq!(out.json(), serde_json::json!([]));
    let out = home.run(&["list"]);
    out.code(0);
    assert!(out.stdout.contains("no hosts"), "{}", out.stdout);
    for args in [
        &["show", "ghost"][..],
        &["show", "ghost", "--json"],
        &["exec", "ghost", "--", "true"],
        &["ssh", "ghost"],
        &["stop", "ghost"],
        &["start", "ghost"],
        &["destroy", "ghost", "--yes"],
        &["snapshot", "create", "ghost"],
        &["snapshot", "list", "ghost"],
        &["snapshot", "delete", "ghost", "snap"],
        &["start", "ghost", "--snapshot", "snap"],
        &["hibernate", "ghost"],
        &["wake", "ghost"],
        &["create", "new", "--from-snapshot", "ghost:snap"],
    ] {
        let out = home.run(args);
        out.code(3);
        assert!(
            out.stderr.contains("mngr-vps list"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn cleanup_lists_old_leaks_and_deletes_only_with_delete() {
    let home = Home::new();
    let out = home.run(&["cleanup", "--json"]);
    out.code(0);
    assert_eq!(
        out.json(),
        serde_json::json!({
            "older_than_seconds": 3600,
            "delete": false,
            "leaks": [],
            "deleted": [],
            "failed": [],
        })
    );
    let out = home.run(&["cleanup", "--older-than", "2d"]);
    out.code(0);
    assert!(
        out.stdout.contains("no leaks older than 2d"),
        "{}",
        out.stdout
    );

    // The keys of a host that exists nowhere, two hours old: a leak (but not at 3h).
    let id = "host-0123456789abcdef0123456789abcdef";
    let dir = home.host_dirs().join(id);
    std::fs::create_dir_all(&dir).expect("key dir");
    let key = std::fs::File::create(dir.join("vps_client_key")).expect("key file");
    key.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .expect("mtime");
    drop(key);
    let out = home.run(&["cleanup", "--older-than", "3h", "--json"]);
    out.code(0);
    assert_eq!(out.json()["leaks"], serde_json::json!([]));
    let out = home.run(&["cleanup", "--json"]);
    out.code(0);
    let leaks = out.json()["leaks"].clone();
    assert_eq!(leaks.as_array().map(Vec::len), Some(1), "{leaks}");
    assert_eq!(leaks[0]["kind"], "local-keys");
    assert_eq!(leaks[0]["host"], id);
    assert!(
        leaks[0]["age_seconds"].as_u64().is_some_and(|a| a >= 7200),
        "{leaks}"
    );
    let out = home.run(&["cleanup", "--older-than", "90m"]);
    out.code(0);
    assert!(out.stdout.contains("local-keys"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "1 leak older than 90m; delete it with `mngr-vps cleanup --older-than 90m --delete`"
        ),
        "{}",
        out.stdout
    );
    assert!(dir.exists(), "listing deletes nothing");

    let out = home.run(&["cleanup", "--delete"]);
    out.code(0);
    assert!(
        out.stdout.contains("deleted local keys and pins"),
        "{}",
        out.stdout
    );
    assert!(!dir.exists(), "deleted");
    let out = home.run(&["cleanup", "--delete", "--json"]);
    out.code(0);
    assert_eq!(out.json()["delete"], true);
    assert_eq!(out.json()["leaks"], serde_json::json!([]));
}

#[test]
fn bad_snapshot_input_is_refused_before_anything_is_made() {
    let home = Home::new();
    // The snapshot name's rule is checked before the host is looked up.
    for bad in ["", "a\nb"] {
        let out = home.run(&["snapshot", "create", "ghost", "--name", bad]);
        out.code(2);
        assert!(
            out.stderr.contains("snapshot name"),
            "{bad:?}: {}",
            out.stderr
        );
    }
    // A host from a snapshot runs the snapshot's image: no `docker build` as well.
    let context = tempfile::tempdir().expect("context");
    std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");
    let dir = context.path().display().to_string();
    let out = home.run(&["create", "new", "--from-snapshot", "ghost:snap", "-b", &dir]);
    out.code(2);
    assert!(out.stderr.contains("not both"), "{}", out.stderr);
    assert_eq!(
        home.run(&["list", "--json"]).code(0).json(),
        serde_json::json!([])
    );
}

#[test]
fn sweep_follows_idle_action_and_refuses_a_bad_one() {
    let home = Home::new();
    let out = home.run(&["sweep"]);
    out.code(0);
    assert!(
        out.stdout.contains("idle_action is \"stop\""),
        "{}",
        out.stdout
    );
    home.config("[providers.local]\nidle_action = \"hibernate\"\n");
    let out = home.run(&["sweep"]);
    out.code(0);
    assert!(
        out.stdout
            .contains("idle sweep: 0 hibernated, 0 failed, 0 left alone"),
        "{}",
        out.stdout
    );
    home.config("[providers.local]\nidle_action = \"sleep\"\n");
    let out = home.run(&["sweep"]);
    out.code(2);
    assert!(out.stderr.contains("idle_action"), "{}", out.stderr);
}

//! The command line without hosts: help, argument errors, exit codes, configuration, JSON
//! shapes, completions and the man page. Only the last tests talk to the Docker engine
//! (an empty `list` and a missing host).

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
    ] {
        let out = home.run(args);
        out.code(2);
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
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
        for verb in ["create", "show", "stop", "start", "exec", "destroy"] {
            let mut args = vec![verb, name];
            if verb == "exec" {
                args.extend(["--", "true"]);
            }
            if verb == "destroy" {
                args.push("--yes");
            }
            let out = home.run(&args);
            out.code(2);
            assert!(
                out.stderr.contains("host name"),
                "{verb} {name:?}: {}",
                out.stderr
            );
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

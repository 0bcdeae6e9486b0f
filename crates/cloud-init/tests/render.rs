//! The rendered documents as text (insta file snapshots) and the rules around them.

mod common;

use cloud_init::{
    AuthorizedKey, CloudConfig, DockerSetup, FileMode, FileOwner, FileSpec, HostKey, PackageName,
    RemotePath, RunCommand, SshdLimits,
};
use serde_json::Value;

#[test]
fn rendered_documents() {
    for (name, config) in common::variants() {
        insta::assert_snapshot!(name, config.render().expose());
    }
}

#[test]
fn the_document_is_cloud_config_with_only_our_host_key() {
    for (name, config) in common::variants() {
        let text = config.render().into_string();
        assert!(text.starts_with("#cloud-config\n"), "{name}");
        let v = config.to_value();
        assert_eq!(v["ssh_deletekeys"], true, "{name}");
        assert_eq!(
            v["ssh_genkeytypes"],
            serde_json::json!(["ed25519"]),
            "{name}"
        );
        assert_eq!(v["ssh_pwauth"], false, "{name}");
        assert_eq!(v["disable_root"], false, "{name}");
        let keys = v["ssh_keys"].as_object().expect("ssh_keys");
        let mut names: Vec<&str> = keys.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["ed25519_private", "ed25519_public"], "{name}");
        assert_eq!(keys["ed25519_private"], common::TEST_HOST_PRIVATE_KEY);
        assert_eq!(keys["ed25519_public"], common::TEST_HOST_PUBLIC_KEY);
        assert!(!text.contains("curl"), "{name}: no curl | sh");
    }
}

fn runcmd(config: &CloudConfig) -> Vec<Value> {
    config.to_value()["runcmd"]
        .as_array()
        .expect("runcmd is a list")
        .clone()
}

#[test]
fn every_step_must_succeed_and_the_marker_comes_last() {
    for (name, config) in common::variants() {
        let run = runcmd(&config);
        assert_eq!(
            run[0], "set -e",
            "{name}: cloud-init joins runcmd into one sh script"
        );
        let last = run.last().expect("a step");
        assert_eq!(last[3], "mngr-ready", "{name}");
        let script = last[2].as_str().expect("script");
        assert!(
            script.contains(&format!(
                "> {}",
                vps_primitives::quote(&config.ready_marker.to_string())
            )),
            "{name}: {script}"
        );
        // Every step runs in `sh -e`.
        for step in &run[1..] {
            if step[0] == "sh" {
                assert_eq!(step[1], "-ec", "{name}: {step}");
            }
        }
    }
}

#[test]
fn docker_comes_from_the_distribution_and_is_skipped_when_present() {
    let config = CloudConfig::new(common::host_key());
    let run = runcmd(&config);
    let docker = run
        .iter()
        .find(|s| s[3] == "mngr-install-docker")
        .expect("a docker step");
    let script = docker[2].as_str().expect("script");
    assert!(script.contains("if ! command -v dockerd"), "{script}");
    assert!(script.contains("apt-get install -y --no-install-recommends docker.io"));
    assert!(script.contains("systemctl enable --now docker.service"));
    assert!(script.contains("until docker info"));

    let mut unmanaged = config.clone();
    unmanaged.docker = DockerSetup::Unmanaged;
    assert!(!unmanaged.render().expose().contains("docker.io"));
}

#[test]
fn metadata_block_runs_every_boot_and_before_docker() {
    let config = CloudConfig::new(common::host_key());
    let v = config.to_value();
    let bootcmd = v["bootcmd"].as_array().expect("bootcmd");
    assert_eq!(bootcmd.len(), 1);
    let script = bootcmd[0][2].as_str().expect("script");
    // At boot a missing iptables means no Docker yet; the unit insists on it.
    assert_eq!(bootcmd[0][4], "--if-installed");
    assert!(script.contains("iptables -w -I DOCKER-USER 1 -d \"$addr\" -j REJECT"));
    assert!(script.contains("addr=169.254.169.254/32"));
    let files = v["write_files"].as_array().expect("files");
    let unit = files
        .iter()
        .find(|f| f["path"] == "/etc/systemd/system/mngr-block-metadata.service")
        .expect("unit");
    let unit = unit["content"].as_str().expect("text");
    assert!(
        unit.contains("Before=network-pre.target docker.service"),
        "{unit}"
    );
    assert!(unit.contains("RequiredBy=docker.service"), "{unit}");
    let installed = files
        .iter()
        .find(|f| f["path"] == cloud_init::METADATA_BLOCK_SCRIPT_PATH)
        .expect("script file");
    assert_eq!(
        installed["content"], script,
        "bootcmd and the unit run the same script"
    );
    assert_eq!(installed["permissions"], "0755");
    // The unit is enabled and run (iptables installed first if need be) before Docker is
    // installed; `start`, not `restart`, which would restart a running Docker with it.
    let run = runcmd(&config);
    let pos = |name: &str| run.iter().position(|s| s[3] == name).expect(name);
    assert!(pos("mngr-enable-metadata-block") < pos("mngr-install-docker"));
    let enable = run[pos("mngr-enable-metadata-block")][2]
        .as_str()
        .expect("script");
    assert!(enable.contains("apt-get install -y --no-install-recommends iptables"));
    assert!(enable.contains("systemctl start mngr-block-metadata.service"));
    assert!(!enable.contains("restart"));

    let mut off = config.clone();
    off.block_metadata = false;
    let text = off.render().into_string();
    assert!(
        !text.contains("169.254.169.254") && !text.contains("bootcmd"),
        "{text}"
    );
}

#[test]
fn sshd_limits_go_to_a_drop_in_and_sshd_is_reloaded_not_restarted() {
    let config = CloudConfig::new(common::host_key());
    let v = config.to_value();
    let drop_in = v["write_files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == cloud_init::SSHD_DROP_IN)
        .expect("drop-in");
    let text = drop_in["content"].as_str().expect("text");
    assert!(
        text.contains("\nMaxSessions 100\nMaxStartups 100:30:200\n"),
        "{text}"
    );
    let rendered = config.render().into_string();
    assert!(rendered.contains("systemctl reload"));
    assert!(!rendered.contains("restart ssh") && !rendered.contains("restart sshd"));
    assert!(SshdLimits::new(10, 20, 30, 10).is_err(), "full below start");
    assert!(SshdLimits::new(10, 20, 130, 40).is_err(), "rate over 100");
}

#[test]
fn every_variant_hardens_sshd_first_and_reloads_it() {
    for (name, config) in common::variants() {
        let v = config.to_value();
        let files = v["write_files"].as_array().expect("files");
        assert_eq!(
            files[0]["path"],
            cloud_init::SSHD_HARDENING_DROP_IN,
            "{name}: the hardening is the first file written"
        );
        let text = files[0]["content"].as_str().expect("text");
        for line in [
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
        ] {
            assert!(text.lines().any(|l| l == line), "{name}: {line}: {text}");
        }
        // It sorts before every other drop-in we or cloud-init write.
        let hardening = cloud_init::SSHD_HARDENING_DROP_IN;
        assert!(hardening < cloud_init::SSHD_DROP_IN, "{name}");
        assert!(hardening < "/etc/ssh/sshd_config.d/50-cloud-init.conf");
        assert!(hardening < "/etc/ssh/sshd_config.d/01-anything.conf");
        let reload = runcmd(&config)
            .into_iter()
            .find(|step| step[3] == "mngr-reload-sshd");
        assert!(reload.is_some(), "{name}: sshd is reloaded");
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let secret_line = "QyNTUxOQAAACBaZB6mSNLsdF74zCX3OeGSh+aFqOoBzjeIFYRvV0j9+AAAAIgcdLxQHHS8";
    for (name, config) in common::variants() {
        let rendered = config.render();
        assert!(rendered.expose().contains(secret_line), "{name}");
        let debug = format!("{config:?} {config:#?} {rendered:?} {:?}", config.host_key);
        assert!(!debug.contains(secret_line), "{name}: {debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{name}");
    }
    let file = FileSpec::new(
        RemotePath::parse("/etc/token").expect("valid"),
        "s3cr3t-token",
    );
    assert!(!format!("{file:?}").contains("s3cr3t"));
}

#[test]
fn host_key_checks_never_echo_the_private_key() {
    let bad = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64!\n-----END OPENSSH PRIVATE KEY-----";
    let err = HostKey::ed25519(bad, common::TEST_HOST_PUBLIC_KEY).expect_err("bad private");
    assert!(!err.to_string().contains("not base64"), "{err}");
    assert!(HostKey::ed25519("", common::TEST_HOST_PUBLIC_KEY).is_err());
    let rsa_public = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";
    let err = HostKey::ed25519(common::TEST_HOST_PRIVATE_KEY, rsa_public).expect_err("not ed25519");
    assert!(err.to_string().contains("ssh-ed25519"), "{err}");
    // A comment on the public key is dropped; CRLF line ends are normalised.
    let crlf = common::TEST_HOST_PRIVATE_KEY.replace('\n', "\r\n");
    let key = HostKey::ed25519(&crlf, &format!("{} host@x", common::TEST_HOST_PUBLIC_KEY))
        .expect("valid");
    assert_eq!(key.public(), common::TEST_HOST_PUBLIC_KEY);
    assert_eq!(key.expose_private(), common::TEST_HOST_PRIVATE_KEY);
}

#[test]
fn values_that_would_break_the_document_or_a_shell_are_refused() {
    for bad in ["", "a", "Jq", "-jq", "jq;rm", "jq=", "jq=abc", "jq jq"] {
        assert!(PackageName::parse(bad).is_err(), "package {bad:?}");
    }
    for good in [
        "jq",
        "g++",
        "libc6-dev",
        "docker.io",
        "rsync=3.2.7-1",
        "x11=1:2.0~rc1",
    ] {
        assert!(PackageName::parse(good).is_ok(), "package {good:?}");
    }
    for bad in [
        "", "/", "etc/x", "/a/../b", "/a//b", "/a/./b", "/a b", "/a;b", "/a$b", "/a\nb",
    ] {
        assert!(RemotePath::parse(bad).is_err(), "path {bad:?}");
    }
    assert!(RemotePath::parse("/etc/ssh/sshd_config.d/20-x.conf").is_ok());
    for bad in ["root", ":root", "Root:root", "root:ro ot", "1root:root"] {
        assert!(FileOwner::parse(bad).is_err(), "owner {bad:?}");
    }
    assert!(FileOwner::parse("_apt:nogroup").is_ok());
    assert!(FileMode::new(0o10000).is_err());
    assert_eq!(FileMode::new(0o4755).expect("valid").octal(), "4755");
    assert_eq!(FileMode::PRIVATE.octal(), "0600");
    for bad in [
        "",
        "ssh-ed25519",
        "AAAA",
        "ssh-ed25519 AAAA\nssh-rsa B",
        "ssh-ed25519 AA$A",
    ] {
        assert!(AuthorizedKey::parse(bad).is_err(), "key {bad:?}");
    }
    let key = AuthorizedKey::parse("  ssh-ed25519   AAAA   me@host  ").expect("valid");
    assert_eq!(key.as_str(), "ssh-ed25519 AAAA me@host");
}

#[test]
fn user_commands_run_in_their_own_shell_in_order() {
    let mut config = CloudConfig::new(common::host_key());
    config.docker = DockerSetup::Unmanaged;
    config.commands = vec![
        RunCommand::Shell("exit 0".into()),
        RunCommand::Argv(vec!["true".into()]),
    ];
    let run = runcmd(&config);
    let n = run.len();
    assert_eq!(run[n - 3], serde_json::json!(["sh", "-ec", "exit 0"]));
    assert_eq!(run[n - 2], serde_json::json!(["true"]));
    assert_eq!(run[n - 1][3], "mngr-ready");
}

#[test]
fn file_entries_carry_quoted_octal_modes() {
    let (_, full) = common::variants()
        .into_iter()
        .find(|(n, _)| *n == "full")
        .expect("full");
    let text = full.render().into_string();
    assert!(text.contains("permissions: \"0600\""), "{text}");
    assert!(text.contains("defer: true"));
    let v = full.to_value();
    let files = v["write_files"].as_array().expect("files");
    assert!(files.iter().all(|f| f["permissions"].is_string()));
}

//! The rendered documents against the real cloud-init (Debian 12's 22.4.2, in the fake-VPS
//! images of `local-vps-images`): schema validation of every variant, PyYAML reading back
//! exactly what was meant, and fake VPSes booted with the documents.
//!
//! Needs a Docker engine; the images are built on first use (a few minutes).

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use cloud_init::{
    AuthorizedKey, CloudConfig, CloudInitState, CloudInitStatus, FileSpec, HostKey, RemotePath,
    RunCommand,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use testbed::{FakeVps, Image, LocalOs, SshClient};

/// `docker run --rm -i --network none` of the fresh fake-VPS image with `entrypoint`,
/// `stdin` piped in; the container carries the test-run label.
fn run_in_image(entrypoint: &str, args: &[&str], stdin: &str) -> Output {
    let image = testbed::image(Image::FakeVpsFresh);
    let label = testbed::run_label();
    let mut child = Command::new("docker")
        .args(["run", "--rm", "-i", "--network", "none", "--label", &label])
        .args(["--entrypoint", entrypoint, &image])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("docker finishes")
}

fn schema_check(document: &str) -> Output {
    run_in_image(
        "cloud-init",
        &["schema", "--config-file", "/dev/stdin"],
        document,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_variant_passes_cloud_init_schema() {
    for (name, config) in common::variants() {
        let out = schema_check(config.render().expose());
        assert!(
            out.status.success() && text(&out.stdout).contains("Valid cloud-config"),
            "{name}: cloud-init schema refused the document:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // The validator does refuse what is wrong (so the check above can fail).
    let out =
        schema_check("#cloud-config\npackages: jq\nwrite_files: [{path: /x, permissions: 644}]\n");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("is not of type"),
        "{}",
        text(&out.stderr)
    );
}

/// What PyYAML (cloud-init's parser) reads from `document`, as JSON.
fn pyyaml(document: &str) -> Value {
    let out = run_in_image(
        "python3",
        &[
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin.buffer.read().decode('utf-8')), sys.stdout)",
        ],
        document,
    );
    assert!(out.status.success(), "PyYAML failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("PyYAML printed JSON")
}

#[test]
fn pyyaml_reads_back_exactly_the_intended_values() {
    for (name, config) in common::variants() {
        assert_eq!(
            pyyaml(config.render().expose()),
            config.to_value(),
            "{name}: the YAML does not say what to_value says"
        );
    }
}

/// Strings heavy in what YAML treats specially.
fn tricky_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\n',
        '\n',
        '\n',
        ' ',
        ' ',
        '\t',
        '\r',
        '#',
        ':',
        '-',
        '?',
        '"',
        '\'',
        '\\',
        '|',
        '>',
        '{',
        '}',
        '[',
        ']',
        '&',
        '*',
        '!',
        '%',
        '@',
        '`',
        ',',
        '=',
        '~',
        '0',
        '1',
        '.',
        'y',
        'n',
        'a',
        '\0',
        '\u{7f}',
        '\u{85}',
        '\u{a0}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{1f600}',
        'é',
    ]);
    let ch = prop_oneof![4 => special, 1 => any::<char>()];
    prop::collection::vec(ch, 0..24).prop_map(|v| v.into_iter().collect())
}

#[test]
fn pyyaml_reads_back_random_tricky_text() {
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(tricky_string(), 300);
    let strings = strategy.new_tree(&mut runner).expect("generates").current();
    let mut config = CloudConfig::new(common::host_key());
    for (i, s) in strings.iter().enumerate() {
        let path = RemotePath::parse(&format!("/tmp/f{i}")).expect("valid");
        config.files.push(FileSpec::new(path, s.clone()));
        config.commands.push(RunCommand::Shell(s.clone()));
        config.commands.push(RunCommand::Argv(vec![s.clone()]));
    }
    let parsed = pyyaml(config.render().expose());
    let expected = config.to_value();
    if parsed != expected {
        let files = |v: &Value| v["write_files"].as_array().cloned().unwrap_or_default();
        let runs = |v: &Value| v["runcmd"].as_array().cloned().unwrap_or_default();
        for (got, want) in files(&parsed).iter().zip(files(&expected).iter()) {
            assert_eq!(got, want, "a file's content changed through YAML");
        }
        for (got, want) in runs(&parsed).iter().zip(runs(&expected).iter()) {
            assert_eq!(got, want, "a command changed through YAML");
        }
        panic!("the documents differ outside files and commands");
    }
}

/// A config whose host key and root key are the test bed's keys for this VPS.
fn config_for(host: &testbed::KeyPair, client: &testbed::KeyPair) -> CloudConfig {
    let key = HostKey::ed25519(&host.private_openssh(), &host.public_openssh())
        .expect("the test bed makes Ed25519 keys");
    let mut config = CloudConfig::new(key);
    config.authorized_keys = vec![AuthorizedKey::parse(&client.public_openssh()).expect("valid")];
    config
}

/// Boots a VPS of `os` with the test bed's keys, the default document and one more file.
async fn boot_with_file(os: LocalOs, path: &str, content: &str) -> (FakeVps, CloudConfig) {
    let builder = FakeVps::builder(os);
    let mut config = config_for(builder.host_key(), builder.client_key());
    config.files.push(FileSpec::new(
        RemotePath::parse(path).expect("valid"),
        content,
    ));
    let vps = builder
        .user_data(config.render().into_string())
        .boot()
        .await;
    (vps, config)
}

async fn sh(ssh: &SshClient, command: &str) -> String {
    let out = ssh.exec(command).await;
    assert_eq!(
        out.code, 0,
        "`{command}` failed ({}):\n{}{}",
        out.code, out.stdout, out.stderr
    );
    out.stdout
}

/// `cloud-init status --wait --format json`, parsed.
async fn cloud_init_status(ssh: &SshClient) -> CloudInitStatus {
    let out = ssh.exec("cloud-init status --wait --format json").await;
    CloudInitStatus::parse_json(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}\nstdout: {}\nstderr: {}", out.stdout, out.stderr))
}

/// `systemctl show -p <property> --value <unit>` as a number.
async fn unit_time(ssh: &SshClient, unit: &str, property: &str) -> u64 {
    let value = sh(ssh, &format!("systemctl show -p {property} --value {unit}")).await;
    value
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{unit} {property}={value:?}: {e}"))
}

/// Everything the document promises, checked on a booted VPS.
async fn check_bootstrapped(
    ssh: &SshClient,
    host: &testbed::KeyPair,
    config: &CloudConfig,
    boot: Boot,
) {
    let status = cloud_init_status(ssh).await;
    assert_eq!(status.state, CloudInitState::Done, "{}", status.summary());
    // Schema problems do not fail a boot: ask for them.
    let schema = ssh.exec("cloud-init schema --system").await;
    assert_eq!(schema.code, 0, "{}{}", schema.stdout, schema.stderr);

    // Exactly the pinned host key: one key file pair, one key offered.
    let files = sh(ssh, "ls /etc/ssh/ | grep '^ssh_host_' | sort").await;
    assert_eq!(files, "ssh_host_ed25519_key\nssh_host_ed25519_key.pub\n");
    let scanned = sh(
        ssh,
        "ssh-keyscan -T 5 -t rsa,ecdsa,ed25519 127.0.0.1 2>/dev/null",
    )
    .await;
    let offered: Vec<String> = scanned
        .lines()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let pinned: String = host
        .public_openssh()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(offered, [pinned], "the VPS must offer only the pinned key");
    // No password logins; the raised limits are in effect.
    let effective = sh(
        ssh,
        "sshd -T | grep -E '^(passwordauthentication|maxsessions|maxstartups) '",
    )
    .await;
    assert!(
        effective.contains("passwordauthentication no"),
        "{effective}"
    );
    assert!(effective.contains("maxsessions 100"), "{effective}");
    assert!(effective.contains("maxstartups 100:30:200"), "{effective}");

    // Docker answers, and its containers cannot reach the metadata service: our REJECT
    // comes first in DOCKER-USER, and the unit that puts it there runs before Docker.
    sh(ssh, "docker info --format '{{.ServerVersion}}'").await;
    let chain = sh(ssh, "iptables -S DOCKER-USER").await;
    let first_rule = chain.lines().find(|l| l.starts_with("-A ")).unwrap_or("");
    assert!(
        first_rule.starts_with("-A DOCKER-USER -d 169.254.169.254/32 -j REJECT"),
        "{chain}"
    );
    assert_eq!(
        chain.matches("169.254.169.254").count(),
        1,
        "idempotent: {chain}"
    );
    assert_eq!(
        sh(ssh, "systemctl is-enabled mngr-block-metadata.service")
            .await
            .trim(),
        "enabled"
    );
    assert_eq!(
        sh(ssh, "systemctl is-active mngr-block-metadata.service")
            .await
            .trim(),
        "active"
    );
    let docker_started = unit_time(ssh, "docker.service", "InactiveExitTimestampMonotonic").await;
    let block_done = unit_time(ssh, "cloud-init.service", "ActiveEnterTimestampMonotonic").await;
    assert!(
        block_done <= docker_started,
        "cloud-init's bootcmd (the block) must finish before docker.service starts: {block_done} > {docker_started}"
    );

    // The marker, written last; in /var/run, a tmpfs, it is gone after a reboot.
    let marker = ssh.exec(&format!("test -f {}", config.ready_marker)).await;
    match boot {
        Boot::First => assert_eq!(marker.code, 0, "no marker after the first boot"),
        Boot::Later => assert_ne!(marker.code, 0, "{} survived a reboot", config.ready_marker),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Boot {
    First,
    Later,
}

#[tokio::test]
async fn boots_a_vps_with_docker_preinstalled_and_keeps_the_block_across_a_reboot() {
    let started = Instant::now();
    let builder = FakeVps::builder(LocalOs::DockerReady);
    let mut config = config_for(builder.host_key(), builder.client_key());
    config.commands.push(RunCommand::Shell(
        "echo \"ran as $(id -un)\" > /var/tmp/mngr-command".into(),
    ));
    let mut vps = builder
        .user_data(config.render().into_string())
        .boot()
        .await;
    let ssh = vps.ssh().await;
    check_bootstrapped(&ssh, &vps.host_key, &config, Boot::First).await;
    assert_eq!(sh(&ssh, "cat /var/tmp/mngr-command").await, "ran as root\n");
    ssh.close().await;
    eprintln!(
        "booted and checked in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Reboot: the block is back before Docker, this time from the systemd unit too.
    vps.reboot().await;
    let ssh = vps.ssh().await;
    check_bootstrapped(&ssh, &vps.host_key, &config, Boot::Later).await;
    let docker_started = unit_time(&ssh, "docker.service", "InactiveExitTimestampMonotonic").await;
    let unit_done = unit_time(
        &ssh,
        "mngr-block-metadata.service",
        "ActiveEnterTimestampMonotonic",
    )
    .await;
    assert!(
        unit_done > 0 && unit_done <= docker_started,
        "{unit_done} vs {docker_started}"
    );
    ssh.close().await;
    eprintln!(
        "rebooted and checked in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn installs_docker_on_a_fresh_vps() {
    let builder = FakeVps::builder(LocalOs::FreshDebian12);
    let config = config_for(builder.host_key(), builder.client_key());
    let vps = builder
        .user_data(config.render().into_string())
        .boot()
        .await;
    let ssh = vps.ssh().await;
    check_bootstrapped(&ssh, &vps.host_key, &config, Boot::First).await;
    let installed = sh(&ssh, "dpkg-query -W -f '${Status}' docker.io").await;
    assert_eq!(installed, "install ok installed");
    ssh.close().await;
}

#[tokio::test]
async fn a_failed_docker_install_fails_cloud_init_and_no_marker_is_written() {
    // Break dpkg, and point apt at a closed local port so the retry's `apt-get update`
    // fails at once without leaving the machine.
    let (vps, config) = boot_with_file(
        LocalOs::FreshDebian12,
        "/etc/apt/apt.conf.d/99-mngr-test-break",
        "DPkg::Pre-Invoke { \"/bin/false\"; };\n\
         Acquire::http::Proxy \"http://127.0.0.1:9/\";\n\
         Acquire::https::Proxy \"http://127.0.0.1:9/\";\n",
    )
    .await;
    let ssh = vps.ssh().await;
    let status = cloud_init_status(&ssh).await;
    assert_eq!(status.state, CloudInitState::Error, "{}", status.summary());
    assert!(
        status.summary().contains("scripts-user"),
        "{}",
        status.summary()
    );
    let marker = ssh.exec(&format!("test -e {}", config.ready_marker)).await;
    assert_ne!(
        marker.code, 0,
        "the marker must not be written after a failed step"
    );
    let docker = ssh.exec("command -v dockerd").await;
    assert_ne!(
        docker.code, 0,
        "docker.io must not be installed: {}",
        docker.stdout
    );
    ssh.close().await;
}

/// Fetches the user_data from the metadata service inside a container on the VPS.
const FETCH_FROM_CONTAINER: &str = "docker run --rm --pull never mngr-test-base bash -c \
    'exec 3<>/dev/tcp/169.254.169.254/80 && printf \"GET /latest/user-data HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3'";

#[tokio::test]
async fn containers_cannot_read_the_user_data_from_the_metadata_service() {
    let builder = FakeVps::builder(LocalOs::DockerReady);
    let config = config_for(builder.host_key(), builder.client_key());
    let vps = builder
        .user_data(config.render().into_string())
        .boot()
        .await;

    // An image for containers on the VPS (no registry): the base image, loaded in.
    let ssh = vps.ssh().await;
    let status = cloud_init_status(&ssh).await;
    assert_eq!(status.state, CloudInitState::Done, "{}", status.summary());
    let base = testbed::image(Image::Base);
    let loaded = vps.preload_image(&base).await;
    assert!(loaded.contains(&base), "docker load said {loaded:?}");
    sh(&ssh, &format!("docker tag {base} mngr-test-base")).await;

    // The VPS itself reads it (this is what is at stake) ...
    let from_host = sh(&ssh, "curl -sf http://169.254.169.254/latest/user-data").await;
    assert!(
        from_host.contains("OPENSSH PRIVATE KEY"),
        "the metadata service serves the key"
    );
    // ... a container is refused ...
    let from_container = ssh.exec(FETCH_FROM_CONTAINER).await;
    assert_ne!(from_container.code, 0, "{}", from_container.stdout);
    assert!(!from_container.stdout.contains("PRIVATE KEY"));
    assert!(
        from_container.stderr.contains("Connection refused"),
        "REJECT, not a timeout: {}",
        from_container.stderr
    );
    // ... because of the rule: without it the container gets the key.
    sh(
        &ssh,
        "iptables -D DOCKER-USER -d 169.254.169.254/32 -j REJECT",
    )
    .await;
    let unguarded = ssh.exec(FETCH_FROM_CONTAINER).await;
    assert!(
        unguarded.stdout.contains("OPENSSH PRIVATE KEY"),
        "without the rule a container reads the key: {} {}",
        unguarded.stdout,
        unguarded.stderr
    );
    ssh.close().await;
}

/// A drop-in as an image or a cloud's vendor data may carry one (clouds give new
/// instances a root password). sshd keeps the first value it reads, so whatever sorts
/// first in `sshd_config.d` wins.
const HOSTILE_DROP_IN: &str = "/etc/ssh/sshd_config.d/01-hostile.conf";

#[tokio::test]
async fn a_hostile_sshd_drop_in_cannot_turn_password_login_back_on() {
    let (vps, _) = boot_with_file(
        LocalOs::DockerReady,
        HOSTILE_DROP_IN,
        "PasswordAuthentication yes\n\
         KbdInteractiveAuthentication yes\n\
         PermitRootLogin yes\n",
    )
    .await;
    let ssh = vps.ssh().await;
    let status = cloud_init_status(&ssh).await;
    assert_eq!(status.state, CloudInitState::Done, "{}", status.summary());
    // The hostile file is there, and Debian's sshd_config includes the drop-ins first.
    sh(
        &ssh,
        &format!("grep -q 'PasswordAuthentication yes' {HOSTILE_DROP_IN}"),
    )
    .await;
    let include = sh(&ssh, "grep -m1 -v '^\\s*\\(#\\|$\\)' /etc/ssh/sshd_config").await;
    assert_eq!(include.trim(), "Include /etc/ssh/sshd_config.d/*.conf");
    // What the running sshd would do: ours.
    let effective = sh(
        &ssh,
        "sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin) ' | sort",
    )
    .await;
    assert_eq!(
        effective,
        "kbdinteractiveauthentication no\npasswordauthentication no\npermitrootlogin without-password\n",
        "the hostile drop-in won"
    );
    // And the running sshd offers keys only (it answers a `none` login with its methods).
    let offered = ssh
        .exec(
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o PreferredAuthentications=none root@127.0.0.1 true",
        )
        .await;
    assert!(
        offered.stderr.contains("Permission denied (publickey)."),
        "{}",
        offered.stderr
    );
    ssh.close().await;
}

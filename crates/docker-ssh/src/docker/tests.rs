use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::command::CommandBody;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// argv one word per line (Debug-escaped), the timeout, and the shell command line.
fn render(cmd: &Command) -> String {
    let CommandBody::Argv(argv) = cmd.body() else {
        panic!("docker commands are argv commands");
    };
    let mut s = String::from("argv:\n");
    for w in argv {
        s.push_str(&format!("  {w:?}\n"));
    }
    s.push_str(&format!("timeout: {:?}\n", cmd.timeout_value()));
    if let Some(stdin) = cmd.stdin_bytes() {
        s.push_str(&format!("stdin: {} bytes\n", stdin.len()));
    }
    s.push_str(&format!("line: {}\n", cmd.command_line()));
    s
}

fn cli() -> DockerCli {
    DockerCli::new()
}

#[test]
fn run_matches_upstream_order() {
    // The upstream test's example, byte for byte.
    let o = RunOptions::new("my-image:tag", "my-container")
        .port(PortMapping::new(80).host_ip(LOCALHOST).host_port(8080))
        .volume(VolumeMount::new("/host/data", "/data:rw"))
        .label("com.imbue.mngr.host-id", "host-abc")
        .extra_args(["--restart", "always"])
        .shell_entrypoint("echo hi");
    assert_eq!(
        cli().run(&o).command_line(),
        "docker run -d --name my-container -p 127.0.0.1:8080:80 -v /host/data:/data:rw \
         --label com.imbue.mngr.host-id=host-abc --restart always --entrypoint sh my-image:tag \
         -c 'echo hi'"
    );
}

#[test]
fn run_full() {
    let o = RunOptions::new("mngr-local/sshd:abc", "mngr-host-1")
        .port(PortMapping::new(22).host_ip(LOCALHOST))
        .port(PortMapping::new(2222).host_port(2222))
        .port(
            PortMapping::new(53)
                .host_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
                .host_port(5353)
                .udp(),
        )
        .volume(VolumeMount::new("mngr-state", "/state"))
        .volume(VolumeMount::new("/srv/with space", "/srv").read_only())
        .label("com.imbue.mngr.host-id", "host-0123")
        .label("com.imbue.mngr.tags", "{\"a\": \"it's\"}")
        .env("LANG", "C.UTF-8")
        .restart(RestartPolicy::UnlessStopped)
        .extra_args(["--cap-add", "ALL", "--security-opt=seccomp=unconfined"])
        .entrypoint("/usr/local/sbin/sshd-entrypoint")
        .args(["-x", "$(not expanded)"]);
    insta::assert_snapshot!("run_full", render(&cli().run(&o)));
}

#[test]
fn create_and_attached_run_share_run_options() {
    let o = RunOptions::new("img:1", "lvps-1")
        .port(PortMapping::new(22).host_ip(LOCALHOST))
        .volume(VolumeMount::new("lvps-1-docker", "/var/lib/docker"))
        .label("k", "v w")
        .restart(RestartPolicy::UnlessStopped)
        .pull(PullPolicy::Never)
        .extra_args(["--hostname", "h"])
        .shell_entrypoint("exec sleep infinity");
    let once = RunOptions::new("base", "h1")
        .auto_remove()
        .timeout(Duration::from_secs(900))
        .volume(VolumeMount::new("from", "/from").read_only())
        .entrypoint("cp")
        .args(["-a", "/from/.", "/to/"]);
    let c = cli();
    let s = format!(
        "== run-pull-never\n{}\n== create\n{}\n== run-attached-rm\n{}\n== run-detached-rm\n{}",
        render(&c.run(&o)),
        render(&c.create(&o)),
        render(&c.run_attached(&once)),
        render(&c.run(&once)),
    );
    insta::assert_snapshot!("create_and_attached", s);
}

#[test]
fn pull_policies() {
    let shown: Vec<String> = [PullPolicy::Always, PullPolicy::Missing, PullPolicy::Never]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["always", "missing", "never"]);
}

#[test]
fn container_commands() {
    let c = cli();
    let commit = CommitOptions::new("box", "mngr-snap:s1")
        .no_pause()
        .change("LABEL a=b")
        .change("LABEL c=\"\"")
        .timeout(Duration::from_secs(900));
    let mut s = String::new();
    for (name, cmd) in [
        (
            "cp-into",
            c.cp_into("/tmp/seed dir/.", "box", "/var/lib/cloud/seed/"),
        ),
        ("cp-tar-into", c.cp_tar_into("box", "/")),
        ("pause", c.pause("box")),
        ("unpause", c.unpause("box")),
        ("commit-with", c.commit_with(&commit)),
        (
            "commit-defaults",
            c.commit_with(&CommitOptions::new("box", "r:t")),
        ),
        ("save", c.save("mngr-local/sshd:abc")),
    ] {
        s.push_str(&format!("== {name}\n{}\n", render(&cmd)));
    }
    insta::assert_snapshot!("container", s);
    assert_eq!(
        c.commit("box", "r:t").command_line(),
        c.commit_with(&CommitOptions::new("box", "r:t"))
            .command_line()
    );
}

#[test]
fn network_and_volume_listing_commands() {
    let c = cli();
    let labels = vec![
        ("com.imbue.mngr.kind".to_owned(), "network".to_owned()),
        ("com.x".to_owned(), "a=b c".to_owned()),
    ];
    let mut s = String::new();
    for (name, cmd) in [
        ("network-create", c.network_create("lvps-1-net", &labels)),
        ("network-ls", c.network_ls(&labels)),
        ("network-ls-all", c.network_ls(&[])),
        ("network-rm", c.network_rm(&["n1", "n2"])),
        ("volume-ls", c.volume_ls(&labels)),
        (
            "inspect-volumes",
            c.inspect(ObjectKind::Volume, &["v1", "v2"]),
        ),
    ] {
        s.push_str(&format!("== {name}\n{}\n", render(&cmd)));
    }
    insta::assert_snapshot!("network_volume", s);
}

#[test]
fn exec_idempotent() {
    let plain = ExecOptions::argv("box", ["true"]);
    assert!(!cli().exec(&plain).is_idempotent());
    let again = plain.clone().idempotent();
    assert!(cli().exec(&again).is_idempotent());
    assert_eq!(
        cli().exec(&again).command_line(),
        cli().exec(&plain).command_line()
    );
}

#[test]
fn restart_policies() {
    let all = [
        RestartPolicy::No,
        RestartPolicy::Always,
        RestartPolicy::UnlessStopped,
        RestartPolicy::OnFailure(None),
        RestartPolicy::OnFailure(Some(3)),
    ];
    let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3"
        ]
    );
}

#[test]
fn lifecycle_commands() {
    let c = cli();
    let mut s = String::new();
    for (name, cmd) in [
        ("start", c.start("box")),
        ("stop", c.stop("box", Duration::from_secs(10))),
        ("stop-zero", c.stop("box", Duration::ZERO)),
        ("rm", c.rm("box", false)),
        ("rm-force", c.rm("box", true)),
        ("commit", c.commit("box", "mngr-snap/box:2026-11-30")),
        ("pull", c.pull("debian:bookworm-slim")),
        ("load", c.load()),
        ("image-rm", c.image_rm("img:tag", false)),
        ("image-rm-force", c.image_rm("img:tag", true)),
        ("server-version", c.server_version()),
    ] {
        s.push_str(&format!("== {name}\n{}\n", render(&cmd)));
    }
    insta::assert_snapshot!("lifecycle", s);
}

#[test]
fn rename_takes_the_old_and_the_new_name() {
    let cmd = cli().rename("mngr-old", "mngr-new name");
    assert_eq!(cmd.command_line(), "docker rename mngr-old 'mngr-new name'");
}

#[test]
fn volume_commands() {
    let c = cli();
    let labels = vec![("com.imbue.mngr.host-id".to_owned(), "host-1".to_owned())];
    let s = format!(
        "== create\n{}\n== create-no-labels\n{}\n== rm\n{}\n== inspect\n{}",
        render(&c.volume_create("mngr-host-1-state", &labels)),
        render(&c.volume_create("v", &[])),
        render(&c.volume_rm("mngr-host-1-state")),
        render(&c.volume_inspect("mngr-host-1-state")),
    );
    insta::assert_snapshot!("volume", s);
}

#[test]
fn exec_commands() {
    let c = cli();
    let plain = ExecOptions::argv("box", ["cat", "/etc/hostname"]);
    let script = ExecOptions::script("box", "printf '%s' \"$1\" > /root/.ssh/authorized_keys")
        .user("root")
        .workdir("/root")
        .env("A", "b c")
        .stdin(b"ssh-ed25519 AAAA".to_vec())
        .timeout(Duration::from_secs(5));
    let s = format!(
        "== plain\n{}\n== script-with-stdin\n{}",
        render(&c.exec(&plain)),
        render(&c.exec(&script))
    );
    insta::assert_snapshot!("exec", s);
}

#[test]
fn exec_secrets_are_redacted() {
    let o = ExecOptions::script("box", "echo tok-123 | login").secret("tok-123");
    let cmd = cli().exec(&o);
    assert!(cmd.command_line().contains("tok-123"));
    assert!(!cmd.to_string().contains("tok-123"));
}

#[test]
fn inspect_commands() {
    let c = cli();
    let s = format!(
        "== container\n{}\n== format\n{}\n== image\n{}",
        render(&c.inspect(ObjectKind::Container, &["a", "b"])),
        render(&c.inspect_format(ObjectKind::Container, "box", "{{.State.Running}}")),
        render(&c.inspect_format(ObjectKind::Image, "img:tag", "{{.Id}}")),
    );
    insta::assert_snapshot!("inspect", s);
}

#[test]
fn build_commands() {
    let c = cli();
    let dir = BuildOptions::new(
        "mngr-host-1:latest",
        BuildContext::Dir("/tmp/ctx dir".into()),
    )
    .dockerfile("docker/Dockerfile")
    .build_arg("VERSION", "1.2")
    .build_arg("QUOTE", "it's")
    .label("com.imbue.mngr.host-id", "host-1")
    .no_cache()
    .extra_args(["--network=host"]);
    let stdin = BuildOptions::new("img:1", BuildContext::Stdin);
    let s = format!(
        "== dir\n{}\n== stdin\n{}",
        render(&c.build(&dir)),
        render(&c.build(&stdin))
    );
    insta::assert_snapshot!("build", s);
}

#[test]
fn ps_commands() {
    let c = cli();
    let s = format!(
        "== running\n{}\n== all-filtered\n{}",
        render(&c.ps(false, &[])),
        render(&c.ps(
            true,
            &[
                PsFilter::label("com.imbue.mngr.provider", "local"),
                PsFilter::has_label("com.imbue.mngr.host-id"),
                PsFilter::Name("mngr-".into()),
                PsFilter::Id("abc".into()),
                PsFilter::Status("exited".into()),
            ]
        ))
    );
    insta::assert_snapshot!("ps", s);
}

#[test]
fn custom_program() {
    let cmd = DockerCli::with_program("/usr/bin/docker").start("x");
    assert_eq!(cmd.command_line(), "/usr/bin/docker start x");
}

#[test]
fn port_mapping_display() {
    assert_eq!(PortMapping::new(80).to_string(), "80");
    assert_eq!(PortMapping::new(80).host_port(8080).to_string(), "8080:80");
    assert_eq!(
        PortMapping::new(80).host_ip(LOCALHOST).to_string(),
        "127.0.0.1::80"
    );
    assert_eq!(
        PortMapping::new(80)
            .host_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
            .host_port(1)
            .to_string(),
        "[::1]:1:80"
    );
    assert_eq!(PortMapping::new(53).udp().to_string(), "53/udp");
}

// ---- parsers, on output recorded from Docker 20.10 ----

const ID: &str = "7d1e4c2a9b7f55c0d8e1f3a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1";

#[test]
fn container_id() {
    assert_eq!(parse_container_id(&format!("{ID}\n")).as_deref(), Ok(ID));
    let with_pull = format!("Unable to find image 'x' locally\nlatest: Pulling\n{ID}\n\n");
    assert_eq!(parse_container_id(&with_pull).as_deref(), Ok(ID));
    assert!(parse_container_id("").is_err());
    let err = parse_container_id("Error: boom\n").expect_err("not an id");
    assert!(err.to_string().contains("Error: boom"), "{err}");
    assert!(parse_container_id("ABCDEF0123456789").is_err());
}

#[test]
fn image_id() {
    let id = format!("sha256:{ID}");
    assert_eq!(parse_image_id(&format!("{id}\n")), Ok(id));
    assert!(parse_image_id("sha256:abc").is_err());
    assert!(parse_image_id(ID).is_err());
}

#[test]
fn booleans() {
    assert_eq!(parse_bool("true\n"), Ok(true));
    assert_eq!(parse_bool("False"), Ok(false));
    assert!(parse_bool("<no value>").is_err());
}

#[test]
fn missing_objects() {
    assert!(is_no_such_object("Error: No such object: box\n"));
    assert!(is_no_such_object(
        "Error response from daemon: No such container: box\n"
    ));
    assert!(is_no_such_object("Error: No such image: img:tag"));
    assert!(is_no_such_object(
        "Error response from daemon: get nope: no such volume"
    ));
    assert!(!is_no_such_object(
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    ));
}

const PS_OUTPUT: &str = r#"{"Command":"\"/usr/local/sbin/sshd-entrypoint\"","CreatedAt":"2026-11-30 05:01:02 +0000 UTC","ID":"7d1e4c2a9b7f55c0d8e1f3a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1","Image":"mngr-local/sshd:abc","Labels":"com.imbue.mngr.host-id=host-1,com.imbue.mngr.tags=a=1,b,com.imbue.mngr.test-run=dev","LocalVolumes":"0","Mounts":"","Names":"mngr-host-1","Networks":"bridge","Ports":"127.0.0.1:49153-\u003e22/tcp","RunningFor":"3 seconds ago","Size":"0B","State":"running","Status":"Up 2 seconds"}
{"Command":"\"sleep 60\"","CreatedAt":"2026-11-30 05:00:00 +0000 UTC","ID":"0000000000000000000000000000000000000000000000000000000000000001","Image":"x","Labels":"","LocalVolumes":"0","Mounts":"","Names":"other,alias","Networks":"bridge","Ports":"","RunningFor":"1 minute ago","Size":"0B","State":"exited","Status":"Exited (0) 5 seconds ago"}
"#;

#[test]
fn ps_output() {
    let entries = parse_ps(PS_OUTPUT).expect("parses");
    assert_eq!(entries.len(), 2);
    let e = &entries[0];
    assert_eq!(e.id, ID);
    assert!(e.is_running() && e.has_name("mngr-host-1") && !e.has_name("mngr-host"));
    assert_eq!(e.ports, "127.0.0.1:49153->22/tcp");
    let labels = e.labels();
    assert_eq!(labels["com.imbue.mngr.host-id"], "host-1");
    assert_eq!(labels["com.imbue.mngr.tags"], "a=1,b");
    assert_eq!(labels["com.imbue.mngr.test-run"], "dev");
    assert!(!entries[1].is_running());
    assert!(entries[1].has_name("alias"));
    assert!(entries[1].labels().is_empty());
    assert_eq!(parse_ps("\n").expect("empty"), vec![]);
    assert!(parse_ps("not json\n").is_err());
}

const INSPECT_OUTPUT: &str = r#"[
    {
        "Id": "7d1e4c2a9b7f55c0d8e1f3a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1",
        "Created": "2026-11-30T05:01:02.123456789Z",
        "Path": "/usr/local/sbin/sshd-entrypoint",
        "Args": [],
        "State": {
            "Status": "exited",
            "Running": false,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": 0,
            "ExitCode": 137,
            "Error": "",
            "StartedAt": "2026-11-30T05:01:02.5Z",
            "FinishedAt": "2026-11-30T05:02:00.1Z"
        },
        "Image": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "Name": "/mngr-host-1",
        "RestartCount": 0,
        "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}},
        "Config": {
            "Hostname": "7d1e4c2a9b7f",
            "Env": ["PATH=/usr/bin"],
            "Image": "mngr-local/sshd:abc",
            "Labels": {"com.imbue.mngr.host-id": "host-1", "com.imbue.mngr.tags": "a=1,b"}
        },
        "NetworkSettings": {
            "Ports": {
                "22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}],
                "80/tcp": null
            }
        }
    }
]
"#;

#[test]
fn inspect_output() {
    let all = parse_container_inspect(INSPECT_OUTPUT).expect("parses");
    let c = &all[0];
    assert_eq!(c.id, ID);
    assert_eq!(c.short_name(), "mngr-host-1");
    assert_eq!(c.state.status, "exited");
    assert!(!c.state.running);
    assert_eq!(c.state.exit_code, 137);
    assert_eq!(c.config.labels["com.imbue.mngr.tags"], "a=1,b");
    assert_eq!(c.host_port(22), Some(49153));
    assert_eq!(c.host_port(80), None);
    assert_eq!(c.host_port(443), None);
    // null labels and ports (a container created without them)
    let bare = r#"[{"Id":"x","Name":"/y","State":{"Running":true},"Config":{"Labels":null},"NetworkSettings":{"Ports":null}}]"#;
    let c = &parse_container_inspect(bare).expect("parses")[0];
    assert!(c.state.running && c.config.labels.is_empty());
    assert!(parse_container_inspect("[]\n").expect("empty").is_empty());
    assert!(parse_container_inspect("Error: nope").is_err());
}

#[test]
fn load_output() {
    let out = "Loaded image: mngr-local/sshd:abc\nLoaded image ID: sha256:1234\nnoise\n";
    assert_eq!(parse_load(out), ["mngr-local/sshd:abc", "sha256:1234"]);
    assert!(parse_load("").is_empty());
}

#[test]
fn build_output() {
    let classic = "Step 1/2 : FROM x\n ---> 1234\nSuccessfully built 5f6e7d8c9b0a\nSuccessfully tagged img:1\n";
    assert_eq!(
        parse_build_image_id(classic).as_deref(),
        Some("5f6e7d8c9b0a")
    );
    let buildkit = "#5 exporting layers 0.1s done\n#5 writing image sha256:abcdef0123 done\n#5 naming to docker.io/library/img:1 done\n";
    assert_eq!(
        parse_build_image_id(buildkit).as_deref(),
        Some("sha256:abcdef0123")
    );
    assert_eq!(parse_build_image_id("nothing"), None);
}

#[test]
fn name_conflicts() {
    let docker_20 = "docker: Error response from daemon: Conflict. The container name \"/mngr-docker-state-x\" is already in use by container \"4f1c\". You have to remove (or rename) that container to be able to reuse that name.";
    assert!(is_name_conflict(docker_20));
    assert!(!is_name_conflict("Unable to find image 'x:latest' locally"));
    assert!(!is_name_conflict("Error: No such container: box"));
}

#[test]
fn lines_output() {
    assert_eq!(parse_lines("a\n\n b \n"), ["a", "b"]);
    assert!(parse_lines("\n  \n").is_empty());
}

#[test]
fn volume_inspect_output() {
    let out = r#"[
    {
        "CreatedAt": "2026-11-30T05:00:00Z",
        "Driver": "local",
        "Labels": {"a": "1", "com.x": "a=b, c"},
        "Mountpoint": "/var/lib/docker/volumes/v1/_data",
        "Name": "v1",
        "Options": null,
        "Scope": "local"
    },
    {"CreatedAt": "2026-11-30T05:00:01Z", "Labels": null, "Name": "v2"}
]
"#;
    let v = parse_volume_inspect(out).expect("parses");
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].name, "v1");
    assert_eq!(v[0].driver, "local");
    assert_eq!(v[0].mountpoint, "/var/lib/docker/volumes/v1/_data");
    assert_eq!(v[0].labels["com.x"], "a=b, c");
    assert_eq!(v[0].created_at, "2026-11-30T05:00:00Z");
    assert!(v[1].labels.is_empty());
    assert_eq!(v[1].created_at, "2026-11-30T05:00:01Z");
    assert!(parse_volume_inspect("  \n").expect("empty").is_empty());
    assert!(parse_volume_inspect("[]").expect("empty").is_empty());
    let err = parse_volume_inspect("{").expect_err("not json");
    assert_eq!(err.what, "docker volume inspect output");
}

#[test]
fn exec_options_debug_hides_stdin_and_secrets() {
    let opts = ExecOptions::argv("box", ["login", "--token", "s3cret"])
        .env("TOKEN", "s3cret")
        .stdin("-----BEGIN OPENSSH PRIVATE KEY-----")
        .secret("s3cret");
    let debug = format!("{opts:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

/// The error an executor returns for `cmd` before running anything, if it is refused.
fn refusal(cmd: &Command) -> Option<crate::ExecError> {
    crate::executor::precheck(cmd, &None).err()
}

#[test]
fn hostile_values_are_refused_by_every_command_that_takes_them() {
    let c = cli();
    // `docker save -o/tmp/pwned` would write the image to a file of the attacker's choice.
    let bad = "-o/tmp/pwned";
    let ok_run = |image: &str, name: &str| RunOptions::new(image, name);
    let cases: Vec<(&str, Command)> = vec![
        ("run image", c.run(&ok_run(bad, "box"))),
        ("run name", c.run(&ok_run("img:1", bad))),
        ("create image", c.create(&ok_run(bad, "box"))),
        ("create name", c.create(&ok_run("img:1", bad))),
        ("attached run image", c.run_attached(&ok_run(bad, "box"))),
        ("cp source", c.cp_into(bad, "box", "/dest")),
        ("cp container", c.cp_into("/src", bad, "/dest")),
        ("cp tar container", c.cp_tar_into(bad, "/")),
        ("pause", c.pause(bad)),
        ("unpause", c.unpause(bad)),
        ("start", c.start(bad)),
        ("stop", c.stop(bad, Duration::from_secs(1))),
        ("rm", c.rm(bad, true)),
        ("volume create", c.volume_create(bad, &[])),
        ("volume rm", c.volume_rm(bad)),
        ("volume inspect", c.volume_inspect(bad)),
        ("network create", c.network_create(bad, &[])),
        ("network rm", c.network_rm(&["fine", bad])),
        ("save", c.save(bad)),
        ("exec", c.exec(&ExecOptions::argv(bad, ["true"]))),
        ("commit container", c.commit(bad, "img:1")),
        ("commit tag", c.commit("box", bad)),
        (
            "commit with options",
            c.commit_with(&CommitOptions::new("box", bad).no_pause()),
        ),
        (
            "inspect containers",
            c.inspect(ObjectKind::Container, &["fine", bad]),
        ),
        ("inspect image", c.inspect(ObjectKind::Image, &[bad])),
        ("inspect volume", c.inspect(ObjectKind::Volume, &[bad])),
        (
            "inspect format",
            c.inspect_format(ObjectKind::Container, bad, "{{.Id}}"),
        ),
        ("pull", c.pull(bad)),
        (
            "build tag",
            c.build(&BuildOptions::new(bad, BuildContext::Stdin)),
        ),
        (
            "build context",
            c.build(&BuildOptions::new("img:1", BuildContext::Dir(bad.into()))),
        ),
        ("image rm", c.image_rm(bad, true)),
    ];
    for (what, cmd) in cases {
        let err = refusal(&cmd).unwrap_or_else(|| panic!("{what}: `{cmd}` would run"));
        assert!(
            matches!(&err, crate::ExecError::InvalidArgument { value, .. } if value == bad),
            "{what}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("\"-o/tmp/pwned\""), "{what}: {msg}");
    }
}

#[test]
fn impossible_names_are_refused_and_real_ones_pass() {
    let c = cli();
    for bad in ["", "-", "--rm", "a b", "a\nb", "/name", "x;rm -rf /", "ü"] {
        assert!(refusal(&c.start(bad)).is_some(), "container {bad:?}");
        assert!(refusal(&c.volume_rm(bad)).is_some(), "volume {bad:?}");
        assert!(refusal(&c.pull(bad)).is_some(), "image {bad:?}");
    }
    for bad in ["", "-", "--help"] {
        assert!(
            refusal(&c.cp_into(bad, "box", "/d")).is_some(),
            "path {bad:?}"
        );
    }
    let id = "4f1c".repeat(16);
    for good in ["box", "mngr-host_1.b", id.as_str()] {
        assert!(refusal(&c.start(good)).is_none(), "container {good:?}");
        assert!(refusal(&c.volume_rm(good)).is_none(), "volume {good:?}");
    }
    for good in [
        "debian:bookworm-slim",
        "mngr-local/sshd:abc",
        "localhost:5000/a/b:v1.2",
        "img@sha256:0123abcd",
        "sha256:0123abcd",
    ] {
        assert!(refusal(&c.pull(good)).is_none(), "image {good:?}");
    }
    for good in ["/srv/with space/ctx", "relative/dir", "./-x"] {
        assert!(
            refusal(&c.cp_into(good, "box", "/d")).is_none(),
            "path {good:?}"
        );
    }
    // Option values and the words after the image or container are not names.
    let run = RunOptions::new("img:1", "box")
        .entrypoint("--weird")
        .args(["-o", "--rm"]);
    assert!(refusal(&c.run(&run)).is_none());
    assert!(refusal(&c.exec(&ExecOptions::argv("box", ["-x", "--y"]).user("-u"))).is_none());
}

#[tokio::test]
async fn a_refused_command_never_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let target = dir.path().join("pwned.tar");
    let image = format!("-o{}", target.display());
    let docker = Docker::new(std::sync::Arc::new(crate::LocalExecutor::new()));
    let mut sink = Vec::new();
    let err = docker
        .save(&image, &mut sink)
        .await
        .expect_err("refused before it runs");
    assert!(
        matches!(
            err,
            DockerError::Exec(crate::ExecError::InvalidArgument { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&image), "{err}");
    assert!(!target.exists());
    assert!(sink.is_empty());
}

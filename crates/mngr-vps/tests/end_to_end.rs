//! The built binary on the local provider (a real fake VPS on this machine's Docker
//! engine): create, list, exec (status passed through), ssh with a command, stop, start,
//! snapshot create, list, restore and delete, a tampered pin that makes `exec` and `ssh`
//! refuse, destroy, and nothing left; and a second host hibernated and woken.
//!
//! Everything the binary makes carries `com.imbue.mngr.test-run=$MNGR_TEST_RUN_ID` (the
//! CLI adds it) and the local account of the test's `MNGR_VPS_HOME`, which [`Bed`] removes
//! if the test fails half-way.

mod common;

use std::process::Command;

use common::Home;

/// The binary in a throwaway home, on that home's own local account; removes everything
/// of the account on drop (a test that fails half-way leaves nothing either).
struct Bed {
    home: Home,
    account: String,
}

impl Bed {
    fn new() -> Self {
        testbed::image(testbed::Image::Host);
        testbed::image(testbed::Image::FakeVps);
        let home = Home::new();
        let account =
            home.run(&["config", "--json"]).code(0).json()["providers.local.account"]["value"]
                .as_str()
                .expect("account")
                .to_owned();
        assert!(account.starts_with("home-"), "{account}");
        Self { home, account }
    }

    /// `mngr-vps ARGS` with the test-run label: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = self.home.cmd(args);
        cmd.env("MNGR_TEST_RUN_ID", testbed::run_id());
        let out = cmd.output().expect("run mngr-vps");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `mngr-vps ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(
            code, 0,
            "mngr-vps {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    /// The account's filter for `docker … --filter`.
    fn filter(&self) -> String {
        format!("label={}={}", local_vps::ACCOUNT_LABEL, self.account)
    }

    /// Nothing of the account on the engine (containers, volumes, networks, images: the
    /// image of a VPS snapshot that a woken VPS ran from goes with that VPS), no host's
    /// keys in the home, and an empty `list`.
    fn assert_nothing_left(&self) {
        assert_eq!(self.ok(&["list", "--json"]).trim(), "[]");
        let filter = self.filter();
        for what in [
            &["ps", "-aq", "--filter", &filter][..],
            &["volume", "ls", "-q", "--filter", &filter][..],
            &["network", "ls", "-q", "--filter", &filter][..],
            &["image", "ls", "-q", "--filter", &filter][..],
        ] {
            let left = testbed::docker(what);
            assert!(
                left.is_empty(),
                "`docker {}` still lists: {left}",
                what.join(" ")
            );
        }
        let left: Vec<_> = std::fs::read_dir(self.home.host_dirs())
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "host key dirs left: {left:?}");
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Err(e) = testbed::remove_labelled(local_vps::ACCOUNT_LABEL, &self.account) {
            eprintln!("cleanup of account {}: {e}", self.account);
        }
    }
}

/// `(fingerprint, alias)` of every line of a known_hosts file, by `ssh-keygen -l`.
fn fingerprints(path: &std::path::Path) -> Vec<(String, String)> {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (parts[1].to_owned(), parts[2].to_owned())
        })
        .collect()
}

#[test]
fn a_host_through_its_whole_life_on_the_local_provider() {
    let bed = Bed::new();
    let home = &bed.home;
    let run = |args: &[&str]| bed.run(args);
    let ok = |args: &[&str]| bed.ok(args);

    // create: plain progress lines on stderr (not a terminal), the summary on stdout
    let (code, stdout, stderr) = run(&["create", "e2e-host", "--tag", "team=infra"]);
    assert_eq!(code, 0, "create\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("created host e2e-host"), "{stdout}");
    assert!(stderr.contains("✓ ordering the VPS"), "{stderr}");
    let run_label = format!("com.imbue.mngr.test-run={}", testbed::run_id());
    let labelled = testbed::docker(&[
        "ps",
        "-q",
        "--filter",
        &bed.filter(),
        "--filter",
        &format!("label={run_label}"),
    ]);
    assert!(!labelled.is_empty(), "the VPS carries the run label");

    // a second host of that name is bad input
    let (code, _, stderr) = run(&["create", "e2e-host"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("exists already"), "{stderr}");

    let list: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--json"])).expect("list JSON");
    let hosts = list.as_array().expect("array");
    assert_eq!(hosts.len(), 1, "{list}");
    assert_eq!(hosts[0]["name"], "e2e-host");
    assert_eq!(hosts[0]["status"], "running");
    assert_eq!(hosts[0]["tags"]["team"], "infra");
    let id = hosts[0]["id"].as_str().expect("id").to_owned();
    assert!(ok(&["list"]).contains("e2e-host"));

    // exec: output streamed, the remote status is the CLI's
    let (code, stdout, stderr) = run(&[
        "exec",
        "e2e-host",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(code, 7, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout, "out\n");
    assert!(stderr.contains("err"), "{stderr}");
    assert_eq!(
        ok(&["exec", &id, "--", "echo", "it's $HOME"]),
        "it's $HOME\n"
    );

    // ssh with a command: OpenSSH, pinned through HostKeyAlias
    let out = ok(&[
        "ssh",
        "e2e-host",
        "--",
        "sh",
        "-c",
        "echo via-ssh; hostname",
    ]);
    assert!(out.starts_with("via-ssh"), "{out}");

    // stop and start
    ok(&["stop", "e2e-host"]);
    let show: serde_json::Value =
        serde_json::from_str(&ok(&["show", "e2e-host", "--json"])).expect("show JSON");
    assert_eq!(show["status"], "stopped");
    assert_eq!(show["status_detail"], "user");
    let (code, _, stderr) = run(&["exec", "e2e-host", "--", "true"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("start it first"), "{stderr}");
    ok(&["start", "e2e-host"]);
    ok(&["exec", "e2e-host", "--", "true"]);

    // snapshot: take one, change the container's files and its volume, start from it:
    // the old content is back; then delete it
    let write = |value: &str| {
        ok(&[
            "exec",
            "e2e-host",
            "--",
            "sh",
            "-c",
            &format!("echo {value} > /root/in-container && echo {value} > /mngr/on-volume"),
        ]);
    };
    let read = || {
        ok(&[
            "exec",
            "e2e-host",
            "--",
            "cat",
            "/root/in-container",
            "/mngr/on-volume",
        ])
    };
    write("old");
    let taken: serde_json::Value = serde_json::from_str(&ok(&[
        "snapshot",
        "create",
        "e2e-host",
        "--name",
        "before change",
        "--json",
    ]))
    .expect("snapshot JSON");
    assert_eq!(taken["name"], "before change");
    let snapshot_id = taken["id"].as_str().expect("id").to_owned();
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["snapshot", "list", "e2e-host", "--json"])).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0], taken);
    assert!(ok(&["snapshot", "list", "e2e-host"]).contains("before change"));
    let (code, _, stderr) = run(&["snapshot", "create", "e2e-host", "--name", "before change"]);
    assert_eq!(code, 2, "a second snapshot of that name: {stderr}");
    write("new");
    assert_eq!(read(), "new\nnew\n");
    let (code, _, stderr) = run(&["start", "e2e-host", "--snapshot", "nope"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("snapshot list e2e-host"), "{stderr}");
    let out = ok(&["start", "e2e-host", "--snapshot", "before change"]);
    assert!(out.contains("from its snapshot before change"), "{out}");
    assert_eq!(read(), "old\nold\n");
    ok(&["snapshot", "delete", "e2e-host", &snapshot_id]);
    assert_eq!(ok(&["snapshot", "list", "e2e-host", "--json"]).trim(), "[]");
    let (code, _, stderr) = run(&["snapshot", "delete", "e2e-host", &snapshot_id]);
    assert_eq!(code, 3, "already gone: {stderr}");

    // a tampered pin: the container's line now holds another key (the VPS's)
    let known_hosts = home.host_dirs().join(&id).join("known_hosts");
    let pins = fingerprints(&known_hosts);
    let fp = |suffix: &str| {
        pins.iter()
            .find(|(_, alias)| alias.ends_with(suffix))
            .map(|(fp, _)| fp.clone())
            .expect("pinned")
    };
    let (vps_fp, container_fp) = (fp(".vps"), fp(".container"));
    let text = std::fs::read_to_string(&known_hosts).expect("pins");
    let vps_key = text
        .lines()
        .find(|l| l.starts_with(&format!("{id}.vps ")))
        .and_then(|l| l.split_once(' '))
        .map(|(_, key)| key.to_owned())
        .expect("vps pin");
    let tampered: String = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{id}.container ")) {
                format!("{id}.container {vps_key}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&known_hosts, tampered).expect("tamper");
    let (code, stdout, stderr) = run(&["exec", "e2e-host", "--", "echo", "ran"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stdout.contains("ran"), "{stdout}");
    assert!(stderr.contains("host key mismatch"), "{stderr}");
    assert!(stderr.contains(&vps_fp), "names the pinned key: {stderr}");
    assert!(
        stderr.contains(&container_fp),
        "names the offered key: {stderr}"
    );
    let (code, stdout, _) = run(&["ssh", "e2e-host", "--", "echo", "ran"]);
    assert_eq!(code, 255, "OpenSSH refuses too");
    assert!(!stdout.contains("ran"), "{stdout}");

    // destroy (the VPS pin still holds), then it is gone: 3
    ok(&["destroy", "e2e-host", "--yes"]);
    let (code, _, stderr) = run(&["destroy", "e2e-host", "--yes"]);
    assert_eq!(code, 3, "{stderr}");
    bed.assert_nothing_left();
}

#[test]
fn a_host_hibernated_and_woken_by_the_built_binary() {
    let bed = Bed::new();
    let run = |args: &[&str]| bed.run(args);
    let ok = |args: &[&str]| bed.ok(args);
    ok(&["create", "e2e-sleeper"]);
    ok(&[
        "exec",
        "e2e-sleeper",
        "--",
        "sh",
        "-c",
        "echo kept > /root/in-container && echo kept > /mngr/on-volume",
    ]);

    // hibernate: progress per step on stderr, the VPS gone, the host listed as hibernated
    let (code, stdout, stderr) = run(&["hibernate", "e2e-sleeper"]);
    assert_eq!(code, 0, "hibernate\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("hibernated host e2e-sleeper"), "{stdout}");
    assert!(stdout.contains("wake e2e-sleeper"), "{stdout}");
    assert!(
        stderr.contains("✓ taking a snapshot of the VPS"),
        "{stderr}"
    );
    let instances = testbed::docker(&[
        "ps",
        "-aq",
        "--filter",
        &bed.filter(),
        "--filter",
        "label=com.imbue.mngr.local-vps=instance",
    ]);
    assert!(instances.is_empty(), "the VPS is still there: {instances}");
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--json"])).expect("list JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], "e2e-sleeper");
    assert_eq!(list[0]["status"], "hibernated");
    assert!(
        list[0]["status_detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("snapshot ")),
        "{list}"
    );

    // what needs a VPS says to wake it first (1); a second hibernate is refused (1)
    let (code, _, stderr) = run(&["exec", "e2e-sleeper", "--", "true"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("mngr-vps wake e2e-sleeper"), "{stderr}");
    let (code, _, stderr) = run(&["hibernate", "e2e-sleeper"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("hibernated already"), "{stderr}");

    // wake: a new VPS, the container and its volume as they were
    let (code, stdout, stderr) = run(&["wake", "e2e-sleeper"]);
    assert_eq!(code, 0, "wake\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("woke host e2e-sleeper"), "{stdout}");
    assert_eq!(
        ok(&[
            "exec",
            "e2e-sleeper",
            "--",
            "cat",
            "/root/in-container",
            "/mngr/on-volume"
        ]),
        "kept\nkept\n"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ok(&["show", "e2e-sleeper", "--json"]))
            .expect("show JSON")["status"],
        "running"
    );
    // waking a host that is not hibernated is refused and makes nothing (1)
    let (code, _, stderr) = run(&["wake", "e2e-sleeper"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("only a hibernated host"), "{stderr}");

    ok(&["destroy", "e2e-sleeper", "--yes"]);
    bed.assert_nothing_left();
}

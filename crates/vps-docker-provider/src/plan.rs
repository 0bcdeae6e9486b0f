//! Pure pieces of the lifecycle: names, the host container's `docker create` options, the
//! files installed in it, and the scripts run on the VPS. No I/O: everything here is text,
//! tested as text.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use docker_ssh::{PortMapping, PullPolicy, RestartPolicy, RunOptions, VolumeMount, quote};
use vps_primitives::{
    HostId, HostName, LABEL_HOST_ID, LABEL_HOST_NAME, LABEL_PROVIDER, LABEL_TAGS, ProviderName,
};

/// Where the host volume is mounted in the container; `host_dir` links to it.
pub const HOST_VOLUME_MOUNT: &str = "/mngr-vol";

/// Directory in the container holding the files the lifecycle installs.
pub const MNGR_ETC: &str = "/etc/mngr";

/// Prefix of host container names on a VPS.
pub const CONTAINER_PREFIX: &str = "mngr-";

/// The readiness marker the cloud-init document writes last.
pub use cloud_init::READY_MARKER;

/// The host container's name: `mngr-<host name>`.
pub fn container_name(name: &HostName) -> String {
    format!("{CONTAINER_PREFIX}{name}")
}

/// The name of the SSH key uploaded to the provider for a host.
pub fn ssh_key_name(provider: &ProviderName, id: &HostId) -> String {
    format!("mngr-{provider}-{id}")
}

/// What the host container is made of.
#[derive(Clone, Debug)]
pub struct ContainerSpec<'a> {
    /// The host.
    pub id: &'a HostId,
    /// Its name.
    pub name: &'a HostName,
    /// The provider instance.
    pub provider: &'a ProviderName,
    /// User tags (written to a label as JSON).
    pub tags: &'a BTreeMap<String, String>,
    /// The image.
    pub image: &'a str,
    /// The host volume.
    pub volume: &'a str,
    /// The VPS port published to the container's sshd.
    pub ssh_port: u16,
    /// `docker run` arguments after the defaults (config's, then the host's).
    pub start_args: &'a [String],
}

/// `docker create` options of the host container: its sshd published on the VPS's
/// `ssh_port`, the host volume, upstream's four labels, restart policy `unless-stopped`
/// (so a VPS reboot brings it back), the start args, and the entrypoint that starts sshd
/// at every start.
pub fn container_run_options(spec: &ContainerSpec<'_>) -> RunOptions {
    let tags = serde_json::to_string(spec.tags).unwrap_or_else(|_| "{}".to_owned());
    RunOptions::new(spec.image, container_name(spec.name))
        .port(
            PortMapping::new(22)
                .host_ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                .host_port(spec.ssh_port),
        )
        .volume(VolumeMount::new(spec.volume, HOST_VOLUME_MOUNT))
        .label(LABEL_HOST_ID, spec.id.as_str())
        .label(LABEL_HOST_NAME, spec.name.as_str())
        .label(LABEL_PROVIDER, spec.provider.as_str())
        .label(LABEL_TAGS, tags)
        // `on-failure`, not `unless-stopped`: the idle watcher stops the container from
        // inside with exit status 0, which `unless-stopped` would undo at once. The
        // entrypoint exits non-zero on SIGTERM, so a VPS reboot (dockerd stops it) brings it
        // back, while `docker stop` (a manual stop) does not.
        .restart(RestartPolicy::OnFailure(None))
        .pull(PullPolicy::Never)
        .extra_args(spec.start_args.iter().cloned())
        .entrypoint("/bin/sh")
        .args([format!("{MNGR_ETC}/entrypoint.sh")])
}

/// The container's sshd configuration: only our host key, keys only, root by key.
pub fn sshd_config() -> String {
    format!(
        "# Written by mngr-vps: the container's sshd takes pinned keys only.\n\
         Port 22\n\
         HostKey {MNGR_ETC}/ssh_host_ed25519_key\n\
         AuthorizedKeysFile {MNGR_ETC}/authorized_keys .ssh/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         MaxSessions 100\n\
         MaxStartups 100:30:200\n\
         PidFile /run/mngr-sshd.pid\n\
         PrintMotd no\n\
         LogLevel VERBOSE\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp internal-sftp\n"
    )
}

/// The container sshd's log. At `LogLevel VERBOSE` sshd writes a `Starting session:` line
/// for every session (a login, each command over a pooled connection), and only after the
/// client authenticated: the activity watcher counts these lines as SSH activity, so no
/// program runs per session (an `sshrc` would cost a shell and two more processes on every
/// command) and a port scanner's attempts count for nothing.
pub const SSHD_LOG: &str = "/var/log/mngr-sshd.log";

/// Starts the container's sshd unless it runs; idempotent, with its output redirected so a
/// `docker exec` that runs it returns at once. A new sshd starts a new [`SSHD_LOG`].
pub fn start_sshd_script() -> String {
    format!(
        "#!/bin/sh\n\
         # Starts the container's sshd unless it already runs (mngr-vps).\n\
         pid=$(cat /run/mngr-sshd.pid 2>/dev/null || true)\n\
         if [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null; then exit 0; fi\n\
         if [ ! -x /usr/sbin/sshd ]; then echo 'mngr: /usr/sbin/sshd is not installed' >&2; exit 3; fi\n\
         mkdir -p /run/sshd\n\
         : > {SSHD_LOG}\n\
         exec /usr/sbin/sshd -f {MNGR_ETC}/sshd_config -E {SSHD_LOG} </dev/null >/dev/null 2>&1\n"
    )
}

/// Exit status of the container when the idle watcher stopped it.
pub const IDLE_EXIT_STATUS: i64 = 0;

/// The container's entrypoint (PID 1): links `host_dir` to the host volume, records the
/// boot as activity, starts sshd and the activity watcher, and waits. It runs at every
/// start, so sshd and the watcher come back after `docker restart`, a stop and start, and
/// a VPS reboot, with nothing run from outside. SIGTERM (`docker stop`, dockerd shutting
/// down) exits 143, so the `on-failure` restart policy brings the container back after a
/// reboot; the watcher's SIGUSR1 exits [`IDLE_EXIT_STATUS`], which is not restarted.
pub fn entrypoint_script(host_dir: &str) -> String {
    let dir = quote(host_dir);
    format!(
        "#!/bin/sh\n\
         # Host container entrypoint (mngr-vps): runs at every container start.\n\
         if [ ! -L {dir} ]; then rm -rf {dir}; mkdir -p \"$(dirname {dir})\"; ln -sfn {HOST_VOLUME_MOUNT} {dir}; fi\n\
         mkdir -p {HOST_VOLUME_MOUNT}/activity && touch {HOST_VOLUME_MOUNT}/activity/boot\n\
         sh {MNGR_ETC}/start-sshd.sh || echo 'mngr: sshd not started yet' >&2\n\
         nohup sh {MNGR_ETC}/activity-watcher.sh </dev/null >/var/log/mngr-activity-watcher.log 2>&1 &\n\
         trap 'exit 143' TERM INT\n\
         trap 'exit {IDLE_EXIT_STATUS}' USR1\n\
         while :; do sleep 3600 & wait $!; done\n"
    )
}

/// The idle settings the watcher reads (`/etc/mngr/idle.env`, sourced by `sh`): the
/// timeout, the activity sources (lower case; empty: never idle), an optional hard cap on
/// the host's age since its last boot, and the check interval, all in seconds.
pub fn idle_env(
    timeout: u64,
    sources: &[host_store::ActivitySource],
    max_age: Option<u64>,
    check_interval: u64,
) -> String {
    let sources: Vec<String> = sources
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    format!(
        "IDLE_TIMEOUT={timeout}\nSOURCES={}\nMAX_AGE={}\nCHECK_INTERVAL={check_interval}\n",
        quote(&sources.join(" ")),
        max_age.map(|a| a.to_string()).unwrap_or_default(),
    )
}

/// The activity watcher (POSIX sh, started by the entrypoint): every `CHECK_INTERVAL`
/// seconds it first touches `activity/ssh` if sshd started sessions since the last check
/// (the `Starting session:` lines of [`SSHD_LOG`], which it empties past 1 MiB), then takes
/// the newest modification time of the activity files of the configured sources
/// (`activity/{boot,user,ssh}` of the host, `agents/*/activity/{create,start,agent,process}`
/// of its agents, on the host volume), and when that is `IDLE_TIMEOUT` seconds old, or the
/// host is older than `MAX_AGE` since boot, it stops the container (SIGUSR1 to PID 1).
/// A `host_lock` file pauses it.
pub fn activity_watcher_script() -> String {
    format!(
        r#"#!/bin/sh
# mngr-vps activity watcher: stops the container when it is idle.
hd={HOST_VOLUME_MOUNT}
log={SSHD_LOG}
sessions=0
while :; do
  CHECK_INTERVAL=15
  [ -f {MNGR_ETC}/idle.env ] && . {MNGR_ETC}/idle.env
  sleep "$CHECK_INTERVAL"
  n=$(grep -c 'Starting session:' "$log" 2>/dev/null || true)
  n=${{n:-0}}
  if [ "$n" -ne "$sessions" ]; then
    mkdir -p "$hd/activity" && touch "$hd/activity/ssh"
  fi
  sessions=$n
  if [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -gt 1048576 ]; then
    : > "$log"; sessions=0
  fi
  [ -e "$hd/host_lock" ] && continue
  now=$(date +%s)
  boot=$(stat -c %Y "$hd/activity/boot" 2>/dev/null || echo "$now")
  if [ -n "$MAX_AGE" ] && [ $((now - boot)) -ge "$MAX_AGE" ]; then
    echo "$(date -u +%FT%TZ) host older than $MAX_AGE s: stopping"; kill -USR1 1; exit 0
  fi
  [ -n "$SOURCES" ] && [ -n "$IDLE_TIMEOUT" ] || continue
  latest=0
  for s in $SOURCES; do
    case "$s" in
      boot|user|ssh) files="$hd/activity/$s" ;;
      create|start|agent|process) files="$hd/agents/*/activity/$s" ;;
      *) continue ;;
    esac
    for f in $files; do
      [ -e "$f" ] || continue
      m=$(stat -c %Y "$f" 2>/dev/null || echo 0)
      [ "$m" -gt "$latest" ] && latest=$m
    done
  done
  [ "$latest" -gt 0 ] || continue
  if [ $((now - latest)) -ge "$IDLE_TIMEOUT" ]; then
    echo "$(date -u +%FT%TZ) idle for $((now - latest)) s (timeout $IDLE_TIMEOUT s): stopping"; kill -USR1 1; exit 0
  fi
done
"#
    )
}

/// The check for one known package (see [`crate::DEFAULT_CONTAINER_PACKAGES`]).
fn package_check(package: &str) -> String {
    match package {
        "ca-certificates" => "test -f /etc/ssl/certs/ca-certificates.crt".to_owned(),
        "openssh-server" => "test -x /usr/sbin/sshd".to_owned(),
        other => format!("command -v {} >/dev/null 2>&1", quote(other)),
    }
}

/// Marker before each missing package's name in [`install_packages_script`]'s output.
pub const MISSING_MARKER: &str = "MNGR_MISSING:";

/// Installs the packages the image lacks (apt), printing `MNGR_MISSING:<pkg>` for each, then
/// starts sshd. Images without apt fail with a message naming what is missing.
pub fn install_packages_script(packages: &[String]) -> String {
    let mut s = String::from("set -e\nmissing=''\n");
    for p in packages {
        s.push_str(&format!(
            "if ! {}; then echo {}; missing=\"$missing {}\"; fi\n",
            package_check(p),
            quote(&format!("{MISSING_MARKER}{p}")),
            quote(p),
        ));
    }
    s.push_str(
        "if [ -n \"$missing\" ]; then\n\
         \x20 if ! command -v apt-get >/dev/null 2>&1; then echo \"mngr: the image lacks$missing and has no apt-get to install them\" >&2; exit 4; fi\n\
         \x20 export DEBIAN_FRONTEND=noninteractive\n\
         \x20 apt-get update -qq >/dev/null\n\
         \x20 apt-get install -y -qq --no-install-recommends $missing >/dev/null\n\
         \x20 rm -f /etc/ssh/ssh_host_*key*\n\
         fi\n",
    );
    s.push_str(&format!("sh {MNGR_ETC}/start-sshd.sh\n"));
    s
}

/// The packages named in [`install_packages_script`]'s output.
pub fn missing_packages(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix(MISSING_MARKER))
        .map(str::to_owned)
        .collect()
}

/// Replaces the VPS's SSH host key with the one on stdin (OpenSSH private key), writing
/// it 0600 through a temp file in the same directory, then makes sshd reload (running
/// sessions stay up). `public` is the new key's public line.
pub fn rotate_host_key_script(public: &str) -> String {
    format!(
        "set -e\n\
         umask 077\n\
         tmp=$(mktemp /etc/ssh/.mngr-host-key.XXXXXX)\n\
         trap 'rm -f \"$tmp\" \"$tmp.pub\"' EXIT\n\
         cat > \"$tmp\"\n\
         printf '%s\\n' {pub_line} > \"$tmp.pub\"\n\
         chmod 644 \"$tmp.pub\"\n\
         mv -f \"$tmp.pub\" /etc/ssh/ssh_host_ed25519_key.pub\n\
         mv -f \"$tmp\" /etc/ssh/ssh_host_ed25519_key\n\
         if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then\n\
         \x20 systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service\n\
         else\n\
         \x20 kill -HUP \"$(cat /run/sshd.pid)\"\n\
         fi\n",
        pub_line = quote(public),
    )
}

/// Waits for cloud-init on the VPS, prints its JSON status, then whether the readiness
/// marker exists (`MNGR_READY` or `MNGR_NOT_READY`) and whether Docker answers.
pub fn cloud_init_wait_script() -> String {
    format!(
        "cloud-init status --wait --format json 2>/dev/null || true\n\
         if [ -f {marker} ] && docker info >/dev/null 2>&1; then echo MNGR_READY; else echo MNGR_NOT_READY; fi\n",
        marker = quote(READY_MARKER),
    )
}

/// A tar archive (in memory) of the files installed in the container before its first
/// start, extracted at `/` by `docker cp - <container>:/`. Modes are set in the archive;
/// the private host key is 0600.
pub fn container_files_tar(
    host_dir: &str,
    host_key_private: &str,
    host_key_public: &str,
    authorized_key: &str,
    idle_env: &str,
) -> std::io::Result<Vec<u8>> {
    let files: [(&str, String, u32); 8] = [
        ("sshd_config", sshd_config(), 0o644),
        ("ssh_host_ed25519_key", host_key_private.to_owned(), 0o600),
        (
            "ssh_host_ed25519_key.pub",
            format!("{host_key_public}\n"),
            0o644,
        ),
        ("authorized_keys", format!("{authorized_key}\n"), 0o600),
        ("start-sshd.sh", start_sshd_script(), 0o755),
        ("entrypoint.sh", entrypoint_script(host_dir), 0o755),
        ("activity-watcher.sh", activity_watcher_script(), 0o755),
        ("idle.env", idle_env.to_owned(), 0o644),
    ];
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o700);
    dir.set_uid(0);
    dir.set_gid(0);
    dir.set_size(0);
    builder.append_data(&mut dir, MNGR_ETC.trim_start_matches('/'), std::io::empty())?;
    for (name, content, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(content.len() as u64);
        let path = format!("{}/{name}", MNGR_ETC.trim_start_matches('/'));
        builder.append_data(&mut h, path, content.as_bytes())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_create_options() {
        let id = HostId::parse("host-0123456789abcdef0123456789abcdef").expect("id");
        let name = HostName::parse("my-agent").expect("name");
        let provider = ProviderName::parse("local").expect("provider");
        let tags = BTreeMap::from([("team".to_owned(), "it's ours".to_owned())]);
        let start_args = vec!["-e".to_owned(), "A=b c".to_owned()];
        let spec = ContainerSpec {
            id: &id,
            name: &name,
            provider: &provider,
            tags: &tags,
            image: "mngr-local/host:abc",
            volume: "mngr-host-vol-0123",
            ssh_port: 2222,
            start_args: &start_args,
        };
        let cmd = docker_ssh::DockerCli::new().create(&container_run_options(&spec));
        insta::assert_snapshot!(cmd.command_line());
    }

    #[test]
    fn scripts() {
        insta::assert_snapshot!("entrypoint", entrypoint_script("/mngr"));
        insta::assert_snapshot!("start_sshd", start_sshd_script());
        insta::assert_snapshot!("sshd_config", sshd_config());
        insta::assert_snapshot!(
            "install_packages",
            install_packages_script(&["openssh-server".into(), "jq".into()])
        );
        insta::assert_snapshot!(
            "rotate_host_key",
            rotate_host_key_script("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIexample")
        );
        insta::assert_snapshot!("cloud_init_wait", cloud_init_wait_script());
        insta::assert_snapshot!("activity_watcher", activity_watcher_script());
        insta::assert_snapshot!(
            "idle_env",
            idle_env(
                800,
                &host_store::IdleMode::Ssh.sources().unwrap_or_default(),
                Some(86400),
                15
            )
        );
    }

    #[test]
    fn missing_packages_are_read_from_the_output() {
        let out = "MNGR_MISSING:tmux\nnoise\nMNGR_MISSING:jq\n";
        assert_eq!(missing_packages(out), ["tmux", "jq"]);
        assert!(missing_packages("").is_empty());
    }

    #[test]
    fn the_files_tar_has_private_modes_for_secrets() {
        let bytes = container_files_tar(
            "/mngr",
            "PRIVATE",
            "ssh-ed25519 AAAA",
            "ssh-ed25519 BBBB",
            "IDLE_TIMEOUT=1\n",
        )
        .expect("tar");
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut modes = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            modes.insert(path, entry.header().mode().expect("mode"));
        }
        assert_eq!(modes["etc/mngr"], 0o700);
        assert_eq!(modes["etc/mngr/ssh_host_ed25519_key"], 0o600);
        assert_eq!(modes["etc/mngr/authorized_keys"], 0o600);
        assert_eq!(modes["etc/mngr/entrypoint.sh"], 0o755);
        // The directory and its eight files; nothing outside /etc/mngr (no sshrc: the
        // user's image keeps its own).
        assert_eq!(modes.len(), 9, "{modes:?}");
        assert!(modes.keys().all(|p| p.starts_with("etc/mngr")), "{modes:?}");
    }

    #[test]
    fn hostile_host_dirs_are_quoted_in_the_entrypoint() {
        // The config refuses such a value; the script quotes it anyway.
        let s = entrypoint_script("/a'b");
        assert!(s.contains(r#"'/a'"'"'b'"#), "{s}");
    }
}

//! From a [`CloudConfig`] to the `#cloud-config` document.

use std::fmt;

use serde_json::{Map, Value, json};
use vps_primitives::quote;

use crate::{CloudConfig, DockerSetup, FileSpec, RunCommand};

/// The readiness marker upstream checks for (`test -f /var/run/mngr-ready`). `/var/run`
/// is a tmpfs: the marker says "this boot's bootstrap finished", and is gone after a
/// reboot, when nothing waits for it.
pub const READY_MARKER: &str = "/var/run/mngr-ready";

/// The sshd drop-in that allows key logins only, always written. Debian 12's
/// `sshd_config` includes `sshd_config.d/*.conf` at its top and sshd keeps the first value
/// it reads: `00-` sorts before any drop-in an image or a cloud's vendor data brings (such
/// as `50-cloud-init.conf`, or one that turns on the root password a cloud gives new
/// instances), so these values win.
pub const SSHD_HARDENING_DROP_IN: &str = "/etc/ssh/sshd_config.d/00-mngr-hardening.conf";

/// What [`SSHD_HARDENING_DROP_IN`] says.
const SSHD_HARDENING: &str = "\
# Written by mngr: keys only. This file sorts first in sshd_config.d and sshd keeps the
# first value it reads, so no later drop-in or the main file can turn passwords back on.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
";

/// The sshd drop-in with [`crate::SshdLimits`]. Debian 12's `sshd_config` includes
/// `sshd_config.d/*.conf` at its top and sshd keeps the first value it reads, so a low
/// number wins over later drop-ins and the main file.
pub const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/10-mngr-limits.conf";

/// The script that installs the metadata block (idempotent).
pub const METADATA_BLOCK_SCRIPT_PATH: &str = "/usr/local/sbin/mngr-block-metadata";

/// The systemd unit that runs the script on every boot, before `docker.service`.
pub const METADATA_BLOCK_UNIT: &str = "mngr-block-metadata.service";

/// The cloud metadata address blocked from containers.
pub const METADATA_ADDRESS: &str = "169.254.169.254";

/// The metadata block. REJECT in `DOCKER-USER` (which Docker's FORWARD chain jumps to
/// before its own rules and which dockerd creates only if missing, keeping our rule)
/// stops containers on Docker networks, whose traffic to the metadata host one hop away is
/// forwarded; the INPUT rule covers a VPS that has the address itself (loopback, i.e. the
/// VPS's own processes such as cloud-init, stays allowed).
const METADATA_BLOCK_SCRIPT: &str = r#"#!/bin/sh
# Written by mngr. Containers must not read the cloud metadata service: it serves this
# VPS's user_data, which holds the VPS's private SSH host key. Run on every boot before
# docker.service (mngr-block-metadata.service, and cloud-init's bootcmd). Idempotent.
set -e
if ! command -v iptables >/dev/null 2>&1; then
  # Docker's packages depend on iptables: without it there is no Docker to guard yet,
  # and the bootstrap installs iptables and runs this again before it installs Docker.
  if [ "${1:-}" = --if-installed ]; then
    echo "mngr-block-metadata: iptables is not installed yet; nothing to guard" >&2
    exit 0
  fi
  echo "mngr-block-metadata: iptables is not installed" >&2
  exit 1
fi
addr=169.254.169.254/32
iptables -w -N DOCKER-USER 2>/dev/null || true
iptables -w -C DOCKER-USER -d "$addr" -j REJECT 2>/dev/null ||
  iptables -w -I DOCKER-USER 1 -d "$addr" -j REJECT
iptables -w -C INPUT -d "$addr" ! -i lo -j REJECT 2>/dev/null ||
  iptables -w -I INPUT 1 -d "$addr" ! -i lo -j REJECT
"#;

/// Orders the block before Docker on every boot, after anything that loads a whole
/// firewall (and would flush ours). `RequiredBy=docker.service`: if the block cannot be
/// installed, Docker does not start, so no container ever runs without it.
const METADATA_BLOCK_UNIT_TEXT: &str = "\
# Written by mngr: keep containers away from the cloud metadata service (it serves this
# VPS's private SSH host key). Docker requires this unit, so it never starts without it.
[Unit]
Description=Block the cloud metadata service (169.254.169.254) from Docker containers
DefaultDependencies=no
After=local-fs.target nftables.service netfilter-persistent.service firewalld.service ufw.service
Before=network-pre.target docker.service containerd.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/mngr-block-metadata

[Install]
WantedBy=multi-user.target
RequiredBy=docker.service
";

const ENABLE_METADATA_BLOCK: &str = "\
# Install the metadata block now, before Docker is installed, and on every later boot
# before docker.service. (Without systemd, cloud-init's bootcmd runs it on every boot.)
if ! command -v iptables >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends iptables; then
    apt-get update
    apt-get install -y --no-install-recommends iptables
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable mngr-block-metadata.service
  systemctl start mngr-block-metadata.service
else
  /usr/local/sbin/mngr-block-metadata
fi
";

const RELOAD_SSHD: &str = "\
# Apply the sshd drop-ins with a reload: live SSH sessions survive it (a restart drops them).
/usr/sbin/sshd -t
for unit in ssh.service sshd.service; do
  if systemctl is-active --quiet \"$unit\"; then
    systemctl reload \"$unit\"
    break
  fi
done
";

const INSTALL_DOCKER: &str = "\
# Docker from the distribution's packages, unless the image has it already.
if ! command -v dockerd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends docker.io; then
    apt-get update
    apt-get install -y --no-install-recommends docker.io
  fi
fi
systemctl enable --now docker.service
tries=0
until docker info >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ \"$tries\" -ge 120 ]; then
    echo \"mngr: Docker did not answer within 120 s:\" >&2
    docker info >&2 || true
    exit 1
  fi
  sleep 1
done
";

/// A rendered `#cloud-config` document. It holds the VPS's private host key, so `Debug`
/// shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedUserData(String);

impl RenderedUserData {
    /// The document. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The document, for a provider API (which encodes it as it needs).
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for RenderedUserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RenderedUserData(<{} bytes, redacted>)", self.0.len())
    }
}

/// `sh -ec <script> <name>`: one step in its own shell; `$0` names it in error messages.
fn step(name: &str, script: &str) -> Value {
    json!(["sh", "-ec", script, name])
}

fn file(spec: &FileSpec) -> Value {
    let mut entry = Map::new();
    entry.insert("path".into(), spec.path.as_str().into());
    entry.insert("content".into(), spec.content.as_str().into());
    entry.insert("owner".into(), spec.owner.as_str().into());
    entry.insert("permissions".into(), spec.mode.octal().into());
    if spec.defer {
        entry.insert("defer".into(), true.into());
    }
    Value::Object(entry)
}

impl CloudConfig {
    /// The document as a JSON value: what cloud-init will see after parsing the YAML.
    pub fn to_value(&self) -> Value {
        Value::Object(self.document())
    }

    fn document(&self) -> Map<String, Value> {
        let mut doc = Map::new();
        // Root logs in with a key (as upstream does); no passwords anywhere.
        doc.insert("disable_root".into(), false.into());
        doc.insert("ssh_pwauth".into(), false.into());
        if !self.configure_locale {
            // cloud-init's `locale` module skips itself when the value reads as false;
            // the schema of 22.x takes only a string here.
            doc.insert("locale".into(), "false".into());
        }
        // Only our pinned key: the image's keys are deleted, and nothing else is
        // generated (cloud-init generates none when `ssh_keys` is given; the list is the
        // smallest valid one in case it ever did).
        doc.insert("ssh_deletekeys".into(), true.into());
        doc.insert("ssh_genkeytypes".into(), json!(["ed25519"]));
        doc.insert(
            "ssh_keys".into(),
            json!({
                "ed25519_private": self.host_key.expose_private(),
                "ed25519_public": self.host_key.public(),
            }),
        );
        if !self.authorized_keys.is_empty() {
            let keys: Vec<&str> = self.authorized_keys.iter().map(|k| k.as_str()).collect();
            doc.insert("ssh_authorized_keys".into(), json!(keys));
        }
        if self.block_metadata {
            // bootcmd runs early on every boot, inside cloud-init.service, which systemd
            // orders before sysinit.target and so before docker.service: the block is in
            // place on the first boot before any container can start, even on an image
            // whose Docker starts at boot.
            doc.insert(
                "bootcmd".into(),
                json!([[
                    "sh",
                    "-ec",
                    METADATA_BLOCK_SCRIPT,
                    "mngr-block-metadata",
                    "--if-installed"
                ]]),
            );
        }

        // The hardening first: sshd keeps the first value it reads.
        let mut files = vec![json!({
            "path": SSHD_HARDENING_DROP_IN,
            "content": SSHD_HARDENING,
            "owner": "root:root",
            "permissions": "0644",
        })];
        if let Some(limits) = &self.sshd_limits {
            files.push(json!({
                "path": SSHD_DROP_IN,
                "content": format!(
                    "# Written by mngr: many parallel SSH channels and connection starts\n\
                     # (image builds, setup, parallel commands) exceed sshd's defaults.\n{}",
                    limits.directives()
                ),
                "owner": "root:root",
                "permissions": "0644",
            }));
        }
        if self.block_metadata {
            files.push(json!({
                "path": METADATA_BLOCK_SCRIPT_PATH,
                "content": METADATA_BLOCK_SCRIPT,
                "owner": "root:root",
                "permissions": "0755",
            }));
            files.push(json!({
                "path": format!("/etc/systemd/system/{METADATA_BLOCK_UNIT}"),
                "content": METADATA_BLOCK_UNIT_TEXT,
                "owner": "root:root",
                "permissions": "0644",
            }));
        }
        files.extend(self.files.iter().map(file));
        doc.insert("write_files".into(), files.into());

        if self.package_update {
            doc.insert("package_update".into(), true.into());
        }
        if !self.packages.is_empty() {
            let names: Vec<&str> = self.packages.iter().map(|p| p.as_str()).collect();
            doc.insert("packages".into(), json!(names));
        }

        // cloud-init joins runcmd into one `sh` script in which only the last command's
        // status counts; `set -e` makes every step count, so a failed step fails
        // cloud-init and the marker is never written.
        let mut run = vec![Value::from("set -e")];
        if self.block_metadata {
            run.push(step("mngr-enable-metadata-block", ENABLE_METADATA_BLOCK));
        }
        // sshd starts after cloud-init has written the drop-ins; the reload makes sure
        // they apply even where it started earlier.
        run.push(step("mngr-reload-sshd", RELOAD_SSHD));
        if self.docker == DockerSetup::InstallIfMissing {
            run.push(step("mngr-install-docker", INSTALL_DOCKER));
        }
        for command in &self.commands {
            run.push(match command {
                RunCommand::Shell(script) => json!(["sh", "-ec", script]),
                RunCommand::Argv(argv) => json!(argv),
            });
        }
        let marker = self.ready_marker.as_str();
        let marker_dir = marker.rsplit_once('/').map_or("/", |(d, _)| d);
        run.push(step(
            "mngr-ready",
            &format!(
                "# Last: every step above succeeded.\nmkdir -p {}\ndate -u +%Y-%m-%dT%H:%M:%SZ > {}\n",
                quote(if marker_dir.is_empty() { "/" } else { marker_dir }),
                quote(marker)
            ),
        ));
        doc.insert("runcmd".into(), run.into());
        doc
    }

    /// Renders the `#cloud-config` document, in readable YAML block style.
    pub fn render(&self) -> RenderedUserData {
        let doc = self.document();
        let mut text = String::from(
            "#cloud-config\n\
             # Rendered by mngr-vps. Holds this VPS's private SSH host key: keep it private.\n",
        );
        text.push_str(&crate::yaml::to_yaml(&doc));
        RenderedUserData(text)
    }
}

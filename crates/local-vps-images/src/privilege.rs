//! How a fake VPS gets the privileges it needs (systemd, a nested dockerd, iptables).

use std::process::Command;
use std::sync::OnceLock;

use crate::ImageError;

/// How to grant a fake VPS full privileges on this engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// `--privileged` works.
    Privileged,
    /// `--privileged` fails (the engine's capability bounding set lacks `CAP_SYS_RESOURCE`,
    /// as on some sandboxes): all capabilities but that one, no seccomp or AppArmor
    /// profile, writable system paths, access to all devices. The fake VPS's init remounts
    /// `/sys` and the cgroup hierarchies read-write itself.
    ExplicitCapabilities,
}

/// Environment variable that skips detection: `privileged` or `capabilities`.
pub const PRIVILEGE_ENV: &str = "MNGR_LOCAL_PRIVILEGE";

impl Privilege {
    /// Finds out which works on this engine, once per process: the value of
    /// [`PRIVILEGE_ENV`] if set, else a throwaway `docker run --privileged` of `probe_image`.
    pub fn detect(probe_image: &str) -> Result<Self, ImageError> {
        static DETECTED: OnceLock<Privilege> = OnceLock::new();
        if let Some(p) = DETECTED.get() {
            return Ok(*p);
        }
        let p = match std::env::var(PRIVILEGE_ENV).as_deref() {
            Ok("privileged") => Privilege::Privileged,
            Ok("capabilities") => Privilege::ExplicitCapabilities,
            _ => probe(probe_image)?,
        };
        Ok(*DETECTED.get_or_init(|| p))
    }

    /// The `docker run` options that grant the privileges.
    pub fn run_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Privilege::Privileged => &["--privileged"],
            Privilege::ExplicitCapabilities => &[
                "--cap-add=ALL",
                "--cap-drop=SYS_RESOURCE",
                "--security-opt=seccomp=unconfined",
                "--security-opt=apparmor=unconfined",
                "--security-opt=systempaths=unconfined",
                "--device-cgroup-rule=a *:* rwm",
            ],
        };
        args.iter().map(|s| s.to_string()).collect()
    }

    /// The name used in [`PRIVILEGE_ENV`].
    pub fn as_env_value(self) -> &'static str {
        match self {
            Privilege::Privileged => "privileged",
            Privilege::ExplicitCapabilities => "capabilities",
        }
    }
}

fn probe(image: &str) -> Result<Privilege, ImageError> {
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--privileged",
            "--network=none",
            "--label=com.imbue.mngr.type=privilege-probe",
            "--entrypoint=true",
            image,
        ])
        .output()
        .map_err(|e| ImageError::EngineUnreachable {
            what: "run --privileged",
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(Privilege::Privileged);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("apply caps") || stderr.contains("operation not permitted") {
        tracing::info!("--privileged fails on this engine; using the explicit capability set");
        Ok(Privilege::ExplicitCapabilities)
    } else {
        Err(ImageError::EngineUnreachable {
            what: "run --privileged",
            detail: stderr.trim().to_owned(),
        })
    }
}

/// `docker run` options for a fake VPS (systemd as PID 1) besides its ports and volumes.
pub fn fake_vps_run_args(privilege: Privilege) -> Vec<String> {
    let mut args = privilege.run_args();
    for tmpfs in [
        "--tmpfs=/run:rw,exec,mode=755",
        "--tmpfs=/run/lock",
        "--tmpfs=/tmp:rw,exec,mode=1777",
    ] {
        args.push(tmpfs.to_owned());
    }
    args
}

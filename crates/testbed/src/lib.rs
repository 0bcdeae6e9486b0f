//! The test bed: what integration tests stand on.
//!
//! - [`image`] makes sure a locally built image exists (no registry is ever used).
//! - [`start_sshd`] runs OpenSSH's sshd in a container (testcontainers) with a pinned
//!   host key, its port published on 127.0.0.1 only.
//! - [`FakeVpsBuilder::boot`] boots a fake VPS (systemd, sshd, the real cloud-init reading a
//!   NoCloud seed, Docker inside) and waits until its SSH server, with the pinned key,
//!   answers.
//! - [`SshClient`] is a minimal pinned-key SSH client for checking what happened; the
//!   product's client lives in `docker-ssh`.
//!
//! Everything a test creates carries the label [`RUN_LABEL`]` = `[`run_id`], so
//! `cargo xtask test` and `.ci/run` remove it all, even after a crash; values also clean
//! up after themselves on drop.
//!
//! ```no_run
//! # async fn demo() {
//! use testbed::{FakeVps, Image, KeyPair};
//! let vps = FakeVps::builder(Image::FakeVps).boot().await;
//! let out = vps.ssh().await.exec("cloud-init status --wait").await;
//! assert_eq!(out.code, 0, "{}", out.stderr);
//! # }
//! ```

mod fake_vps;
mod keys;
mod ssh;
mod sshd;

use std::process::Command;

pub use fake_vps::{FakeVps, FakeVpsBuilder, default_user_data};
pub use keys::KeyPair;
pub use local_vps_images::{Image, Privilege};
pub use ssh::{CmdOutput, SshClient};
pub use sshd::{Sshd, start_sshd};

/// Label key on every container, volume and network a test creates.
pub const RUN_LABEL: &str = "com.imbue.mngr.test-run";

/// The id of this test run: `$MNGR_TEST_RUN_ID`, or `dev` when tests run outside xtask.
pub fn run_id() -> String {
    std::env::var("MNGR_TEST_RUN_ID").unwrap_or_else(|_| "dev".into())
}

/// `--label` value marking an object as created by this test run.
pub fn run_label() -> String {
    format!("{RUN_LABEL}={}", run_id())
}

/// Makes sure `image` exists locally, building it if needed, and returns its tag.
///
/// # Panics
/// With the builder's error (no engine, no debootstrap, a failed step) so the test fails
/// saying why.
pub fn image(image: Image) -> String {
    local_vps_images::ensure_image(image, &mut |line| {
        eprintln!("[image {}] {line}", image.name())
    })
    .unwrap_or_else(|e| panic!("test bed: cannot provide image {}: {e}", image.name()))
}

/// How fake VPSes get their privileges on this engine.
///
/// # Panics
/// When the engine cannot be probed.
pub fn privilege() -> Privilege {
    let base = image(Image::Base);
    Privilege::detect(&base).unwrap_or_else(|e| panic!("test bed: {e}"))
}

/// Runs `docker ARGS` and returns its trimmed stdout.
///
/// # Panics
/// When the command fails, with its stderr.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("test bed: cannot run docker: {e}"));
    assert!(
        out.status.success(),
        "test bed: `docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes every container, volume, network and image carrying `label` (`key=value`),
/// ignoring failures: for cleanup after a test, also from `Drop`.
pub fn remove_labelled(label: &str) {
    let filter = format!("label={label}");
    let ids = |args: &[&str]| -> Vec<String> {
        Command::new("docker")
            .args(args)
            .args(["--filter", &filter])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let remove = |args: &[&str], ids: Vec<String>| {
        if !ids.is_empty() {
            let _ = Command::new("docker").args(args).args(&ids).output();
        }
    };
    remove(&["rm", "-f", "-v"], ids(&["ps", "-aq"]));
    remove(&["volume", "rm", "-f"], ids(&["volume", "ls", "-q"]));
    remove(&["network", "rm"], ids(&["network", "ls", "-q"]));
    remove(&["rmi", "-f"], ids(&["images", "-q"]));
}

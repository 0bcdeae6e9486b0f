//! The test bed: what integration tests stand on.
//!
//! - [`image`] makes sure a locally built image exists (no registry is ever used).
//! - [`start_sshd`] runs OpenSSH's sshd in a container (testcontainers) with a pinned
//!   host key, its port published on 127.0.0.1 only.
//! - [`FakeVpsBuilder::boot`] boots a fake VPS through `local-vps` (the one way to boot
//!   one: systemd, sshd, the real cloud-init reading a NoCloud seed, Docker inside) and
//!   waits until its SSH server, with the pinned key, answers.
//! - [`SshClient`] is a minimal pinned-key SSH client for checking what happened; the
//!   product's client lives in `docker-ssh`.
//! - [`remove_labelled`] removes what carries a label (docker-ssh's one cleanup by label).
//!
//! Everything a test creates carries the label [`RUN_LABEL`]` = `[`run_id`], so
//! `cargo xtask test` and `.ci/run` remove it all, even after a crash; values also clean
//! up after themselves on drop.
//!
//! ```no_run
//! # async fn demo() {
//! use testbed::{FakeVps, LocalOs};
//! let vps = FakeVps::builder(LocalOs::DockerReady).boot().await;
//! let out = vps.ssh().await.exec("cloud-init status --wait").await;
//! assert_eq!(out.code, 0, "{}", out.stderr);
//! # }
//! ```

mod fake_vps;
mod keys;
mod ssh;
mod sshd;

use std::process::Command;
use std::sync::Arc;

pub use docker_ssh::Removed;
use docker_ssh::{Docker, LocalExecutor};

pub use fake_vps::{FakeVps, FakeVpsBuilder, default_user_data};
pub use keys::KeyPair;
pub use local_vps::LocalOs;
pub use local_vps_images::Image;
pub use ssh::{CmdOutput, SshClient};
pub use sshd::{Sshd, start_sshd};

/// Label key on every container, volume and network a test creates (the one definition
/// is `vps_primitives::LABEL_TEST_RUN`).
pub const RUN_LABEL: &str = vps_primitives::LABEL_TEST_RUN;

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

/// Removes every container, volume, network and image carrying label `key=value`, with
/// docker-ssh's one cleanup by label ([`docker_ssh::Docker::remove_labelled`]), and says
/// how many of each. For cleanup after a test, also from `Drop` (it runs on a thread of
/// its own, so it may be called inside an async test).
///
/// # Errors
/// What Docker refused, as text (callers in `Drop` print it and go on).
pub fn remove_labelled(key: &str, value: &str) -> Result<Removed, String> {
    let (key, value) = (key.to_owned(), value.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("test bed: cannot start a runtime: {e}"))?;
        let docker = Docker::new(Arc::new(LocalExecutor::new()));
        runtime
            .block_on(docker.remove_labelled(&key, Some(&value)))
            .map_err(|e| format!("test bed: removing what carries {key}={value}: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("test bed: the cleanup thread panicked".to_owned()))
}

//! What the CLI tests share: the built binary, run in a throwaway `MNGR_VPS_HOME`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A throwaway home for the binary (config, keys).
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp home"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `config.toml`.
    pub fn config(&self, text: &str) {
        std::fs::write(self.path().join("config.toml"), text).expect("write config");
    }

    /// `mngr-vps ARGS` in this home, stdin closed, no provider chosen by the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mngr-vps"));
        cmd.args(args)
            .env("MNGR_VPS_HOME", self.path())
            .env_remove("MNGR_VPS_PROVIDER")
            .env_remove("VULTR_API_KEY")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `mngr-vps ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd(args).output().expect("run mngr-vps"), args)
    }

    /// The directory of the host key dirs of provider `local`.
    pub fn host_dirs(&self) -> PathBuf {
        self.path().join("keys/local/hosts")
    }
}

/// One finished run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: String,
}

impl Run {
    fn of(out: Output, args: &[&str]) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.join(" "),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "`mngr-vps {}` exited {} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("`mngr-vps {}`: not JSON ({e}):\n{}", self.args, self.stdout)
        })
    }
}

//! What the integration tests share: a client whose every object carries this test run's
//! label and a per-test account, and a check that nothing of an instance is left.

#![allow(dead_code)]

use local_vps::{INSTANCE_LABEL, LocalVpsClient, LocalVpsConfig};
use vps_primitives::VpsInstanceId;

/// A client on the local engine, in an account of its own (so parallel tests do not see
/// each other's instances), everything labelled with the test run.
pub fn client() -> LocalVpsClient {
    let account = format!("test-{:016x}", rand::random::<u64>());
    let config = LocalVpsConfig::default()
        .account(account)
        .label(testbed::RUN_LABEL, testbed::run_id())
        .progress(|line| eprintln!("[local-vps image] {line}"));
    LocalVpsClient::new(config).expect("valid config")
}

/// Asserts that no container, volume or network labelled with instance `id` exists.
pub fn assert_nothing_left(id: &VpsInstanceId) {
    let filter = format!("label={INSTANCE_LABEL}={id}");
    for what in [
        &["ps", "-aq", "--filter", &filter][..],
        &["volume", "ls", "-q", "--filter", &filter][..],
        &["network", "ls", "-q", "--filter", &filter][..],
    ] {
        let left = testbed::docker(what);
        assert!(
            left.is_empty(),
            "`docker {}` still lists: {left}",
            what.join(" ")
        );
    }
}

/// Removes instance `id`'s containers, volumes and networks by label when dropped, so a
/// failing test leaves nothing behind (the test's own destroy is what is checked).
pub struct Guard(pub Vec<VpsInstanceId>);

impl Drop for Guard {
    fn drop(&mut self) {
        for id in &self.0 {
            let filter = format!("label={INSTANCE_LABEL}={id}");
            let run = |args: &[&str]| {
                std::process::Command::new("docker")
                    .args(args)
                    .output()
                    .ok()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
            };
            for c in run(&["ps", "-aq", "--filter", &filter]).unwrap_or_default() {
                let _ = run(&["rm", "-f", &c]);
            }
            for v in run(&["volume", "ls", "-q", "--filter", &filter]).unwrap_or_default() {
                let _ = run(&["volume", "rm", "-f", &v]);
            }
            for n in run(&["network", "ls", "-q", "--filter", &filter]).unwrap_or_default() {
                let _ = run(&["network", "rm", &n]);
            }
        }
    }
}

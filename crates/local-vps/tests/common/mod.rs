//! What the integration tests share: a client whose every object carries this test run's
//! label and a per-test account, and a check that nothing of an instance is left.

#![allow(dead_code)]

use local_vps::{ACCOUNT_LABEL, INSTANCE_LABEL, LocalVpsClient, LocalVpsConfig};
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

/// Removes everything of `client`'s account (containers, volumes, networks, images) when
/// dropped, so a failing test leaves nothing behind; the tests' own destroy and delete
/// calls are what is checked.
pub struct Guard {
    account: String,
}

impl Guard {
    /// Guards the account of `client`.
    pub fn new(client: &LocalVpsClient) -> Self {
        let account = client
            .config()
            .labels()
            .get(ACCOUNT_LABEL)
            .cloned()
            .expect("test clients have an account");
        Self { account }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = testbed::remove_labelled(ACCOUNT_LABEL, &self.account) {
            eprintln!("{e}");
        }
    }
}

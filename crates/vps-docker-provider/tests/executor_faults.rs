//! Faults of the VPS itself at each create step after the host key rotation, on the real
//! `local-vps`: an executor wrapper makes one kind of command fail on the real VPS. Each
//! create fails at the step that ran it, names it, and leaves nothing behind.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use docker_ssh::{Command, ExecError, ExecIo, Executor, Output};
use vps_docker_provider::{Cancel, CreateHostRequest, NoProgress, ProviderError, Step};
use vps_primitives::HostName;

use common::Bed;

/// Runs every command on the VPS, except those whose command line contains every word of
/// `needle`: those run `exit 97` there instead (a real failing command over the real
/// connection).
struct FailOn {
    inner: Arc<dyn Executor>,
    needle: &'static str,
}

impl FailOn {
    fn hits(&self, command: &Command) -> bool {
        let line = command.command_line();
        self.needle.split(" & ").all(|word| line.contains(word))
    }
}

#[async_trait]
impl Executor for FailOn {
    fn target(&self) -> String {
        self.inner.target()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        if self.hits(command) {
            let fail = Command::script(format!(
                "echo 'injected fault at {}' >&2; exit 97",
                self.needle
            ));
            return self.inner.run(&fail).await;
        }
        self.inner.execute(command, io).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_vps_command_at_each_step_rolls_back() {
    let cases: [(&str, Step); 5] = [
        ("docker load", Step::Image),
        ("volume create & mngr-host-vol-", Step::HostVolume),
        ("docker cp", Step::Container),
        ("MNGR_MISSING", Step::ContainerSetup),
        ("host-store: received", Step::WriteRecord),
    ];
    let runs = cases.iter().map(|(needle, step)| async move {
        let bed = Bed::new();
        let needle: &'static str = needle;
        let provider = bed
            .provider
            .clone()
            .with_vps_executor_wrapper(Arc::new(move |inner| {
                Arc::new(FailOn { inner, needle }) as Arc<dyn Executor>
            }));
        let name = HostName::parse(&format!("fault-{}", step.as_str())).expect("name");
        let result = provider
            .create_host(CreateHostRequest::new(name), &NoProgress, &Cancel::never())
            .await;
        let text = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        match result {
            Err(ProviderError::Create {
                step: failed,
                rollback_failures,
                ref source,
                ..
            }) => {
                assert_eq!(failed, *step, "{needle}: {source}");
                assert!(
                    rollback_failures.is_empty(),
                    "{needle}: {rollback_failures:?}"
                );
                assert!(
                    text.contains(step.as_str()) && text.contains("exit"),
                    "{text}"
                );
            }
            other => panic!("{needle}: expected a failed create at {step}, got {other:?}"),
        }
        bed.assert_nothing_left();
    });
    // Two at a time: each boots a fake VPS.
    let runs: Vec<_> = runs.collect();
    let mut runs = runs.into_iter();
    while let Some(first) = runs.next() {
        match runs.next() {
            Some(second) => {
                tokio::join!(first, second);
            }
            None => first.await,
        }
    }
}

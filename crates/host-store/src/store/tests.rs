//! `HostStore` over a scripted executor: the commands it sends and how it reads what
//! comes back, without Docker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use docker_ssh::{Command, CommandBody, ExecError, ExecIo, Executor, ExitStatus, Output};
use vps_primitives::{HostId, HostName};

use super::*;
use crate::{CertifiedHostData, Timestamp};

/// Answers each command with the next canned result and records what it was asked.
struct Scripted {
    answers: Mutex<Vec<Result<Output, ExecError>>>,
    seen: Mutex<Vec<Command>>,
}

impl Scripted {
    fn new(answers: Vec<Result<Output, ExecError>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into_iter().rev().collect()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn seen(&self) -> Vec<Command> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Executor for Scripted {
    fn target(&self) -> String {
        "root@203.0.113.7:22".into()
    }

    async fn execute(&self, command: &Command, _io: ExecIo<'_>) -> Result<Output, ExecError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(command.clone());
        }
        self.answers
            .lock()
            .ok()
            .and_then(|mut a| a.pop())
            .unwrap_or_else(|| {
                Err(ExecError::InvalidCommand {
                    command: command.to_string(),
                    reason: "no answer left",
                })
            })
    }
}

fn out(code: u32, stdout: &str, stderr: &str) -> Result<Output, ExecError> {
    Ok(Output {
        status: ExitStatus::Code(code),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    })
}

fn store(exec: Arc<Scripted>) -> HostStore {
    let name = StateContainerName::new("mngr-", "u1").unwrap_or_else(|e| panic!("{e}"));
    HostStore::new(exec, name).with_timeout(Duration::from_secs(7))
}

fn id() -> HostId {
    HostId::parse("host-00112233445566778899aabbccddeeff").unwrap_or_else(|e| panic!("{e}"))
}

fn record() -> HostRecord {
    let name = HostName::parse("h").unwrap_or_else(|e| panic!("{e}"));
    HostRecord::new(CertifiedHostData::new(id(), name, Timestamp::now()))
}

#[tokio::test]
async fn a_write_is_one_idempotent_docker_exec_with_the_json_on_stdin() {
    let exec = Scripted::new(vec![out(0, "", "")]);
    let record = record();
    store(exec.clone())
        .write_host_record(&record)
        .await
        .expect("write");
    let seen = exec.seen();
    assert_eq!(seen.len(), 1);
    let cmd = &seen[0];
    let json = record.to_json().expect("json");
    assert_eq!(cmd.stdin_bytes(), Some(&json[..]));
    assert!(cmd.is_idempotent());
    assert_eq!(cmd.timeout_value(), Some(Duration::from_secs(7)));
    let CommandBody::Argv(argv) = cmd.body() else {
        panic!("expected an argv, got {cmd:?}")
    };
    assert_eq!(
        argv[..5],
        ["docker", "exec", "-i", "mngr-docker-state-u1", "sh"]
    );
    assert_eq!(argv[5], "-c");
    assert_eq!(argv[6], script::write_host_record(&id(), json.len()));
    assert!(
        !cmd.to_string().contains("certified_host_data"),
        "the record is never on the command line"
    );
}

#[tokio::test]
async fn docker_and_script_failures_become_errors_that_say_where_and_what() {
    let exec = Scripted::new(vec![
        out(1, "", "Error: No such container: mngr-docker-state-u1\n"),
        out(
            1,
            "",
            "Error response from daemon: Container 4f1c is not running\n",
        ),
        out(
            75,
            "",
            "host-store: received 3 of 9 bytes for /mngr-state/host_state/x.json; the stored file is unchanged\n",
        ),
        Err(ExecError::Timeout {
            target: "root@203.0.113.7:22".into(),
            command: "docker exec".into(),
            after: Duration::from_secs(7),
        }),
    ]);
    let store = store(exec);
    let err = store.list().await.expect_err("no container");
    assert!(matches!(err, StoreError::NoStateContainer { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("mngr-docker-state-u1 does not exist on root@203.0.113.7:22"),
        "{err}"
    );
    let err = store.read_host_record(&id()).await.expect_err("stopped");
    assert!(
        matches!(err, StoreError::StateContainerStopped { .. }),
        "{err}"
    );
    let err = store.write_host_record(&record()).await.expect_err("short");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::ScriptFailed {
                status: ExitStatus::Code(75),
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(id().as_str()) && text.contains("the stored file is unchanged"),
        "{text}"
    );
    let err = store.delete_host_record(&id()).await.expect_err("timeout");
    assert!(
        matches!(&err, StoreError::Exec { source, .. } if source.is_timeout()),
        "{err}"
    );
    assert!(err.to_string().contains(id().as_str()), "{err}");
}

#[tokio::test]
async fn unexpected_output_is_a_protocol_error_not_an_empty_listing() {
    let exec = Scripted::new(vec![
        out(0, "", ""),
        out(
            0,
            "MNGR-LIST 1\nF host-00112233445566778899aabbccddeeff.json\naGVs",
            "",
        ),
        out(0, "deleted\n", ""),
    ]);
    let store = store(exec);
    for err in [
        store.list().await.expect_err("empty"),
        store.read_host_record(&id()).await.expect_err("cut"),
    ] {
        assert!(matches!(err, StoreError::Protocol { .. }), "{err}");
    }
    let err = store
        .delete_host_record(&id())
        .await
        .expect_err("odd answer");
    assert!(matches!(err, StoreError::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn a_corrupt_record_read_by_id_is_an_error_naming_its_path() {
    let exec = Scripted::new(vec![out(
        0,
        "MNGR-LIST 1\nF host-00112233445566778899aabbccddeeff.json\ne30K\n.\nMNGR-END\n",
        "",
    )]);
    let err = store(exec)
        .read_host_record(&id())
        .await
        .expect_err("corrupt");
    let text = err.to_string();
    assert!(matches!(err, StoreError::CorruptRecord { .. }), "{text}");
    assert!(
        text.contains("/mngr-state/host_state/host-00112233445566778899aabbccddeeff.json"),
        "{text}"
    );
}

fn state_spec() -> StateContainerSpec {
    let name = StateContainerName::new("mngr-", "u1").unwrap_or_else(|e| panic!("{e}"));
    let provider = vps_primitives::ProviderName::parse("vultr").unwrap_or_else(|e| panic!("{e}"));
    StateContainerSpec::new(name, "alpine:3.20", provider)
}

const NAME_TAKEN: &str = "docker: Error response from daemon: Conflict. The container name \"/mngr-docker-state-u1\" is already in use by container \"4f1c\". You have to remove (or rename) that container to be able to reuse that name.\n";

#[tokio::test]
async fn a_docker_run_that_loses_the_name_race_finds_the_other_callers_container() {
    let running = format!(
        r#"[{{"Id":"4f1c","Name":"/mngr-docker-state-u1","State":{{"Status":"running","Running":true}},"Config":{{"Labels":{{"{}":"{}"}}}}}}]"#,
        vps_primitives::LABEL_TYPE,
        vps_primitives::LABEL_TYPE_STATE_CONTAINER
    );
    let exec = Scripted::new(vec![
        out(1, "", "Error: No such object: mngr-docker-state-u1\n"),
        out(0, "sha256:1111\n", ""),
        out(0, "mngr-docker-state-u1\n", ""),
        out(125, "", NAME_TAKEN),
        out(0, &running, ""),
    ]);
    let ensured = ensure_state_container(exec.clone(), &state_spec())
        .await
        .expect("ensure");
    assert_eq!(ensured, Ensured::CreatedByAnother);
    let seen = exec.seen();
    assert_eq!(seen.len(), 5);
    let run = seen[3].command_line();
    assert!(
        run.starts_with("docker run -d --name mngr-docker-state-u1 ")
            && run.contains("--restart unless-stopped --pull never"),
        "{run}"
    );
}

#[tokio::test]
async fn a_docker_run_that_fails_otherwise_is_an_error_with_dockers_message() {
    let exec = Scripted::new(vec![
        out(1, "", "Error: No such object: mngr-docker-state-u1\n"),
        out(0, "sha256:1111\n", ""),
        out(0, "mngr-docker-state-u1\n", ""),
        out(
            125,
            "",
            "docker: Error response from daemon: no space left on device.\n",
        ),
    ]);
    let err = ensure_state_container(exec.clone(), &state_spec())
        .await
        .expect_err("run fails");
    assert!(
        matches!(&err, StoreError::Docker { action, .. } if action.starts_with("docker run")),
        "{err:?}"
    );
    assert!(err.to_string().contains("no space left on device"), "{err}");
    assert_eq!(exec.seen().len(), 4, "no retry after a real failure");
}

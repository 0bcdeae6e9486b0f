//! Every command gets a tracing span with target, redacted command, duration and status.

use std::io::Write;
use std::sync::{Arc, Mutex};

use docker_ssh::{Command, Executor, LocalExecutor};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn exec_span_has_redacted_command_duration_and_status() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let out = LocalExecutor::new()
        .run(
            &Command::script("echo \"token=hunter2-secret\" >/dev/null; exit 4")
                .secret("hunter2-secret"),
        )
        .await
        .expect("runs");
    assert_eq!(out.status.code(), Some(4));

    let logged = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logged.contains("exec"), "{logged}");
    assert!(
        logged.contains("target=\"local\"") || logged.contains("target=local"),
        "{logged}"
    );
    assert!(logged.contains("token=<redacted>"), "{logged}");
    assert!(!logged.contains("hunter2-secret"), "{logged}");
    assert!(logged.contains("duration_ms="), "{logged}");
    assert!(logged.contains("status=exit code 4"), "{logged}");
}

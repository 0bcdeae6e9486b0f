//! Integration tests against OpenSSH's sshd in a container (the test bed's sshd image,
//! port published on 127.0.0.1 only, removed when the test ends).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_ssh::{
    Command, ExcludeList, ExecError, Executor, ExitStatus, KnownHosts, OutputStream, SshConfig,
    SshError, SshPool, SshSession, SshTarget, fingerprint, generate_ed25519, quote, upload_dir,
    upload_stream, wait_for_sshd,
};
use sha2::{Digest, Sha256};
use testbed::{Sshd, start_sshd};

fn target(sshd: &Sshd) -> SshTarget {
    SshTarget::new(
        "127.0.0.1",
        sshd.addr.port(),
        "root",
        Arc::new(sshd.client_key.private().clone()),
        sshd.host_key.public().clone(),
    )
}

fn pool(sshd: &Sshd) -> SshPool {
    SshPool::new(target(sshd), SshConfig::default())
}

/// Runs `docker exec <container> ARGS` (outside SSH).
fn docker_exec(sshd: &Sshd, args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .arg("exec")
        .arg(sshd.container.id())
        .args(args)
        .output()
        .expect("docker exec runs")
}

#[tokio::test]
async fn right_key_connects_and_wait_for_sshd_reports_the_served_key() {
    let sshd = start_sshd().await;
    let offered = wait_for_sshd("127.0.0.1", sshd.addr.port(), Duration::from_secs(20))
        .await
        .expect("sshd answers");
    assert_eq!(offered.key_data(), sshd.host_key.public().key_data());

    let pool = pool(&sshd);
    pool.connect().await.expect("pinned key accepted");
    let out = pool
        .run_checked(&Command::argv(["id", "-u"]))
        .await
        .expect("runs");
    assert_eq!(out.stdout_trimmed(), "0");

    // The same through a private known_hosts file and a single session.
    let dir = tempfile::tempdir().expect("tmp");
    let known_hosts = KnownHosts::new(dir.path().join("known_hosts"));
    known_hosts
        .add("127.0.0.1", sshd.addr.port(), sshd.host_key.public())
        .expect("pin");
    let t = SshTarget::from_known_hosts(
        "127.0.0.1",
        sshd.addr.port(),
        "root",
        Arc::new(sshd.client_key.private().clone()),
        &known_hosts,
    )
    .expect("lookup");
    let session = SshSession::connect(t, &SshConfig::default())
        .await
        .expect("connects");
    let out = session
        .run(&Command::script("echo $((6 * 7))"))
        .await
        .expect("runs");
    assert_eq!(out.stdout, b"42\n");
    session.close().await;
}

#[tokio::test]
async fn wrong_or_missing_pin_is_refused_with_fingerprints() {
    let sshd = start_sshd().await;
    wait_for_sshd("127.0.0.1", sshd.addr.port(), Duration::from_secs(20))
        .await
        .expect("sshd answers");
    let impostor = generate_ed25519().expect("gen").public_key().clone();
    let wrong = SshTarget::new(
        "127.0.0.1",
        sshd.addr.port(),
        "root",
        Arc::new(sshd.client_key.private().clone()),
        impostor.clone(),
    );
    let started = Instant::now();
    let err = SshPool::new(wrong, SshConfig::default())
        .connect()
        .await
        .expect_err("mismatch refused");
    // Permanent errors are not retried.
    assert!(started.elapsed() < Duration::from_secs(5));
    let msg = err.to_string();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{}", sshd.addr.port())),
        "{msg}"
    );
    assert!(msg.contains(&fingerprint(&impostor)), "{msg}");
    assert!(msg.contains(&sshd.host_key.fingerprint()), "{msg}");

    // No pin at all: refused too, naming the known_hosts file and the offered key.
    let dir = tempfile::tempdir().expect("tmp");
    let empty = KnownHosts::new(dir.path().join("known_hosts"));
    let unpinned = SshTarget::from_known_hosts(
        "127.0.0.1",
        sshd.addr.port(),
        "root",
        Arc::new(sshd.client_key.private().clone()),
        &empty,
    )
    .expect("lookup");
    let pool = SshPool::new(unpinned, SshConfig::default());
    let err = pool
        .run(&Command::argv(["true"]))
        .await
        .expect_err("unpinned refused");
    let msg = err.to_string();
    assert!(msg.contains("no host key is pinned"), "{msg}");
    assert!(msg.contains(&sshd.host_key.fingerprint()), "{msg}");
    assert!(msg.contains("known_hosts"), "{msg}");

    // A client key the server does not know.
    let stranger = SshTarget::new(
        "127.0.0.1",
        sshd.addr.port(),
        "root",
        Arc::new(generate_ed25519().expect("gen")),
        sshd.host_key.public().clone(),
    );
    let err = SshSession::connect(stranger, &SshConfig::default())
        .await
        .expect_err("auth refused");
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err}");
}

#[tokio::test]
async fn exit_codes_stderr_signals_stdin_and_quoting() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    let out = pool
        .run(&Command::script("echo out; echo err >&2; exit 42"))
        .await
        .expect("runs");
    assert_eq!(out.status, ExitStatus::Code(42));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    // Stdout streamed to a writer instead of collected.
    let mut sink = Vec::new();
    let out = pool
        .run_with_stdout(
            &Command::script("head -c 300000 /dev/zero; echo err >&2"),
            &mut sink,
        )
        .await
        .expect("runs");
    assert!(out.success() && out.stdout.is_empty());
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(sink, vec![0u8; 300_000]);

    let out = pool
        .run(&Command::script("kill -TERM $$"))
        .await
        .expect("runs");
    assert_eq!(out.status, ExitStatus::Signal("TERM".into()));

    let err = pool
        .run_checked(&Command::script("echo 'no such thing' >&2; exit 3"))
        .await
        .expect_err("fails");
    let msg = err.to_string();
    assert!(
        msg.contains("exit code 3") && msg.contains("no such thing"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("root@127.0.0.1:{}", sshd.addr.port())),
        "{msg}"
    );

    // Hostile argv words survive the remote shell.
    let words = [
        "it's",
        "$(touch /tmp/pwned)",
        "`id`",
        "a\nb",
        "ü☃",
        "",
        "-rf *",
    ];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(words);
    let out = pool.run(&Command::argv(argv)).await.expect("runs");
    let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
    let want: Vec<&[u8]> = words
        .iter()
        .map(|w| w.as_bytes())
        .chain([&b""[..]])
        .collect();
    assert_eq!(got, want);
    let out = pool
        .run(&Command::argv(["test", "-e", "/tmp/pwned"]))
        .await
        .expect("runs");
    assert_eq!(out.status, ExitStatus::Code(1));

    // Binary stdin, bigger than the channel window.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let out = pool
        .run(&Command::argv(["sha256sum"]).stdin(data.clone()))
        .await
        .expect("runs");
    let want = hex::encode(Sha256::digest(&data));
    assert!(out.stdout_text().starts_with(&want), "{out:?}");

    // Large stdin echoed back while it is still being sent: no deadlock on the windows.
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let out = pool
        .run(
            &Command::argv(["cat"])
                .stdin(big.clone())
                .timeout(Duration::from_secs(60)),
        )
        .await
        .expect("runs");
    assert!(
        out.stdout == big,
        "stdout differs ({} bytes)",
        out.stdout.len()
    );

    // Streaming: lines arrive as they are printed, not at the end.
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut on_line = |s: OutputStream, l: &str| seen.push((s, l.to_owned(), started.elapsed()));
    let out = pool
        .run_streaming(
            &Command::script("for i in 1 2 3; do echo line$i; echo warn$i >&2; sleep 0.4; done"),
            &mut on_line,
        )
        .await
        .expect("runs");
    assert!(out.success());
    let total = started.elapsed();
    let stdout_lines: Vec<&str> = seen
        .iter()
        .filter(|(s, ..)| *s == OutputStream::Stdout)
        .map(|(_, l, _)| l.as_str())
        .collect();
    assert_eq!(stdout_lines, ["line1", "line2", "line3"]);
    assert_eq!(seen.len(), 6);
    assert!(
        seen[0].2 + Duration::from_millis(700) < total,
        "{seen:?} {total:?}"
    );
}

#[tokio::test]
async fn timeout_kills_the_command_and_reports_it() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    let script =
        "echo $$ > /tmp/leader; (sleep 60; touch /tmp/survived) & echo $! > /tmp/child; wait";
    let started = Instant::now();
    let err = pool
        .run(&Command::script(script).timeout(Duration::from_secs(1)))
        .await
        .expect_err("times out");
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("timed out after 1s") && msg.contains("killed"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("root@127.0.0.1:{}", sshd.addr.port())),
        "{msg}"
    );

    // The command and its child are gone (sshd signals the session's process group).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for pidfile in ["/tmp/leader", "/tmp/child"] {
        let out = docker_exec(&sshd, &["sh", "-c", &format!("kill -0 $(cat {pidfile})")]);
        let logs = std::process::Command::new("docker")
            .args(["logs", sshd.container.id()])
            .output()
            .expect("logs");
        let ps = docker_exec(&sshd, &["ps", "-eo", "pid,pgid,sid,args"]);
        assert!(
            !out.status.success(),
            "{pidfile} still alive {} {}",
            String::from_utf8_lossy(&logs.stderr),
            String::from_utf8_lossy(&ps.stdout)
        );
    }
    // The pool is still usable.
    let out = pool
        .run(&Command::argv(["echo", "still here"]).timeout(Duration::from_secs(5)))
        .await
        .expect("runs");
    assert_eq!(out.stdout, b"still here\n");
}

#[tokio::test]
async fn fifty_concurrent_commands_on_one_pool() {
    let sshd = start_sshd().await;
    // One attempt per command and per connect: no retry on a new connection may hide
    // a channel that sshd refused (MaxSessions) or a dropped connection.
    let pool = SshPool::new(target(&sshd), SshConfig::default().attempts(1, 1));
    pool.connect().await.expect("connects");
    docker_exec(&sshd, &["mkdir", "-p", "/tmp/running"]);
    let tasks = (0..50).map(|i| {
        let pool = pool.clone();
        tokio::spawn(async move {
            // Each command registers itself, counts who runs alongside, and leaves.
            let script = format!(
                "touch /tmp/running/{i}; n=$(ls /tmp/running | wc -l); sleep 0.2; \
                 rm /tmp/running/{i}; echo \"{i} $n\"; echo e{i} >&2"
            );
            pool.run_checked(&Command::script(script)).await
        })
    });
    let results = futures::future::join_all(tasks).await;
    let mut max_parallel = 0;
    for (i, r) in results.into_iter().enumerate() {
        let out = r.expect("task").expect("command");
        let text = out.stdout_text();
        let mut parts = text.split_whitespace();
        assert_eq!(parts.next(), Some(i.to_string().as_str()), "{text}");
        let n: usize = parts.next().and_then(|n| n.parse().ok()).expect("a count");
        max_parallel = max_parallel.max(n);
        assert_eq!(out.stderr_text(), format!("e{i}\n"));
    }
    assert!(max_parallel >= 2, "commands never overlapped");
    assert!(
        max_parallel <= 8,
        "{max_parallel} channels at once (MaxSessions is 10)"
    );
    // One TCP connection carried them all (port 22 = 0016, state 01 = established).
    let out = docker_exec(
        &sshd,
        &[
            "sh",
            "-c",
            "awk '$2 ~ /:0016$/ && $4 == \"01\"' /proc/net/tcp /proc/net/tcp6 | wc -l",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[tokio::test]
async fn pool_recovers_when_sshd_restarts_mid_run() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    pool.run_checked(&Command::argv(["true"]))
        .await
        .expect("first command");

    // A command that is running when sshd goes away, and is not idempotent: it must
    // report the lost connection, not pretend.
    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.run(&Command::argv(["sleep", "5"])).await })
    };
    // Idempotent commands keep flowing during the restart.
    let flow = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut done = 0;
            for i in 0..40 {
                let out = pool
                    .run_checked(&Command::argv(["echo", &i.to_string()]).idempotent())
                    .await?;
                assert_eq!(out.stdout_trimmed(), i.to_string());
                done += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, ExecError>(done)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = docker_exec(&sshd, &["pkill", "-x", "sshd"]);
    assert!(killed.status.success(), "{killed:?}");

    let lost = slow
        .await
        .expect("task")
        .expect_err("the connection dropped under it");
    assert!(matches!(lost, ExecError::ConnectionLost { .. }), "{lost}");
    assert_eq!(
        flow.await
            .expect("task")
            .expect("idempotent commands recovered"),
        40
    );
    let out = pool
        .run_checked(&Command::script("echo after restart"))
        .await
        .expect("reconnected");
    assert_eq!(out.stdout, b"after restart\n");
}

/// sha256 of every regular file under `root`, by relative path.
fn local_hashes(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(root.join(rel)).expect("ls") {
        let entry = entry.expect("entry");
        let rel_path = rel.join(entry.file_name());
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            local_hashes(root, &rel_path, out);
        } else if kind.is_file() {
            let bytes = fs::read(root.join(&rel_path)).expect("read");
            out.insert(
                rel_path.to_string_lossy().into_owned(),
                hex::encode(Sha256::digest(bytes)),
            );
        }
    }
}

#[tokio::test]
async fn upload_of_odd_names_arrives_byte_identical() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    let src = tempfile::tempdir().expect("tmp");
    let root = src.path();
    let dirs = [
        "dir with space",
        "dir with space/sub'dir",
        "ünïcödé 日本",
        "-rf",
    ];
    for d in dirs {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let mut random = vec![0u8; 3 << 20];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("plain.txt", b"plain\n".to_vec()),
        ("with space.txt", b"space".to_vec()),
        ("quote's \"double\".bin", vec![0, 1, 2, 255]),
        ("$(touch pwned) `id`.sh", b"#!/bin/sh\n".to_vec()),
        ("dir with space/sub'dir/empty", Vec::new()),
        ("ünïcödé 日本/☃.bin", random.clone()),
        ("-rf/--help", b"dash".to_vec()),
        ("tab\there", b"tab".to_vec()),
        ("skip.log", b"excluded".to_vec()),
        ("dir with space/also.log", b"excluded too".to_vec()),
    ];
    for (name, bytes) in &files {
        fs::write(root.join(name), bytes).expect("write");
    }
    let excludes = ExcludeList::new(["*.log", "**/*.log"]);
    let stats = upload_dir(&pool, root, "/tmp/ctx dir/it's", &excludes)
        .await
        .expect("upload");
    assert_eq!(stats.files, 8);

    let mut want = BTreeMap::new();
    local_hashes(root, Path::new(""), &mut want);
    want.retain(|k, _| !k.ends_with(".log"));
    let out = pool
        .run_checked(&Command::script(format!(
            "cd {} && find . -type f -print0 | xargs -0 sha256sum",
            quote("/tmp/ctx dir/it's")
        )))
        .await
        .expect("hash remotely");
    let mut got = BTreeMap::new();
    for line in out.stdout_text().lines() {
        let (hash, path) = line.split_once("  ").expect("sha256sum line");
        got.insert(path.trim_start_matches("./").to_owned(), hash.to_owned());
    }
    assert_eq!(got, want);
    assert!(!got.contains_key("skip.log"));

    // A byte stream to a file.
    let mut reader = &random[..];
    let stats = upload_stream(&pool, &mut reader, "/tmp/stream dir/blob.bin")
        .await
        .expect("upload");
    assert_eq!(stats.bytes, random.len() as u64);
    let out = pool
        .run_checked(&Command::argv(["sha256sum", "/tmp/stream dir/blob.bin"]))
        .await
        .expect("hash");
    assert!(
        out.stdout_text()
            .starts_with(&hex::encode(Sha256::digest(&random))),
        "{out:?}"
    );
}

/// Lists a remote directory (`ls -A`, one name a line).
async fn remote_ls(pool: &SshPool, dir: &str) -> Vec<String> {
    let out = pool
        .run_checked(&Command::script(format!("ls -A -- {}", quote(dir))))
        .await
        .expect("ls");
    out.stdout_text().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn concurrent_uploads_to_one_path_leave_exactly_one_whole_file() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    let a: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 241) as u8 ^ 0x5a).collect();
    let (hash_a, hash_b) = (
        hex::encode(Sha256::digest(&a)),
        hex::encode(Sha256::digest(&b)),
    );
    for round in 0..3 {
        let (mut ra, mut rb) = (&a[..], &b[..]);
        let (first, second) = tokio::join!(
            upload_stream(&pool, &mut ra, "/tmp/race/file.bin"),
            upload_stream(&pool, &mut rb, "/tmp/race/file.bin"),
        );
        first.expect("first upload");
        second.expect("second upload");
        let out = pool
            .run_checked(&Command::argv(["sha256sum", "/tmp/race/file.bin"]))
            .await
            .expect("hash");
        let got = out.stdout_text();
        assert!(
            got.starts_with(&hash_a) || got.starts_with(&hash_b),
            "round {round}: the file is neither upload: {got}"
        );
        assert_eq!(
            remote_ls(&pool, "/tmp/race").await,
            ["file.bin"],
            "round {round}"
        );
    }
}

#[tokio::test]
async fn upload_is_private_and_does_not_follow_a_planted_symlink() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    // A symlink where the old fixed temporary name was, pointing at a file to protect.
    pool.run_checked(&Command::script(
        "mkdir -p /tmp/planted && printf keep > /tmp/victim \
         && ln -s /tmp/victim /tmp/planted/secret.key.upload-tmp",
    ))
    .await
    .expect("plant");
    let mut data: &[u8] = b"private key bytes";
    upload_stream(&pool, &mut data, "/tmp/planted/secret.key")
        .await
        .expect("upload");
    let out = pool
        .run_checked(&Command::script(
            "cat /tmp/victim; echo; stat -c '%F %a' /tmp/planted/secret.key; \
             cat /tmp/planted/secret.key",
        ))
        .await
        .expect("inspect");
    assert_eq!(
        out.stdout_text(),
        "keep\nregular file 600\nprivate key bytes",
        "the symlink was followed, or the file is not 0600"
    );
}

/// Yields `good` bytes, then fails, like a local file that cannot be read to the end.
struct FailingReader {
    good: Vec<u8>,
    sent: bool,
}

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.sent {
            return std::task::Poll::Ready(Err(std::io::Error::other("the disk went away")));
        }
        let n = buf.remaining().min(self.good.len());
        let chunk: Vec<u8> = self.good.drain(..n).collect();
        buf.put_slice(&chunk);
        if self.good.is_empty() {
            self.sent = true;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn failed_upload_leaves_neither_a_file_nor_a_temp_file() {
    let sshd = start_sshd().await;
    let pool = pool(&sshd);
    let mut reader = FailingReader {
        good: vec![b'x'; 300_000],
        sent: false,
    };
    let err = upload_stream(&pool, &mut reader, "/tmp/failed/file.bin")
        .await
        .expect_err("a stream that fails midway is not a successful upload");
    assert!(err.to_string().contains("the disk went away"), "{err}");
    assert!(
        remote_ls(&pool, "/tmp/failed").await.is_empty(),
        "a partial file or a temporary file was left behind"
    );
}

/// The container a pool's command ran in, and the connection it came over
/// (`SSH_CONNECTION`: its client port differs for each new connection).
async fn where_it_runs(pool: &SshPool) -> (String, String) {
    let out = pool
        .run_checked(&Command::script(
            "cat /etc/hostname; echo \"$SSH_CONNECTION\"",
        ))
        .await
        .expect("runs");
    let text = out.stdout_text();
    let mut lines = text.lines().map(str::to_owned);
    let host = lines.next().unwrap_or_default();
    (host, lines.next().unwrap_or_default())
}

#[tokio::test]
async fn set_target_repins_and_readdresses_a_running_pool() {
    let (first, second) = tokio::join!(start_sshd(), start_sshd());
    let pool = pool(&first);
    let (on_first, connection) = where_it_runs(&pool).await;
    assert!(first.container.id().starts_with(&on_first), "{on_first}");

    // Re-pinned to a key the server does not have: the next command is refused.
    let impostor = generate_ed25519().expect("gen").public_key().clone();
    pool.set_target(SshTarget::new(
        "127.0.0.1",
        first.addr.port(),
        "root",
        Arc::new(first.client_key.private().clone()),
        impostor.clone(),
    ))
    .await;
    assert_eq!(pool.target().pinned_host_keys(), [impostor]);
    let err = pool
        .run(&Command::argv(["true"]))
        .await
        .expect_err("wrong pin refused");
    let ExecError::Connection { source, .. } = &err else {
        panic!("unexpected error {err}");
    };
    assert!(
        matches!(**source, SshError::HostKeyMismatch { .. }),
        "{source}"
    );

    // Re-pinned to the right key: works again, on a new connection.
    pool.set_target(target(&first)).await;
    let (host, reconnected) = where_it_runs(&pool).await;
    assert_eq!(host, on_first);
    assert_ne!(reconnected, connection, "the connection was not remade");

    // Setting the same target again keeps the connection.
    pool.set_target(target(&first)).await;
    assert_eq!(where_it_runs(&pool).await, (host, reconnected));

    // A new address (and its pin): the pool reconnects there.
    pool.set_target(target(&second)).await;
    let (on_second, _) = where_it_runs(&pool).await;
    assert!(second.container.id().starts_with(&on_second), "{on_second}");
    assert_ne!(on_first, on_second);
}

//! The `Docker` builder's commands against the real local engine, through
//! `LocalExecutor`. Only locally built images are used (never a pull); everything created
//! is labelled with the test run and removed at the end, also when the test fails.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{
    BuildContext, BuildOptions, Docker, ExcludeList, ExecOptions, ExitStatus, LocalExecutor,
    ObjectKind, PortMapping, PsFilter, RestartPolicy, RunOptions, VolumeMount, tar_dir,
};
use testbed::{Image, RUN_LABEL, run_id};

/// Removes what the test created, by name, whatever happens.
struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = std::process::Command::new("docker")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        for c in &self.containers {
            docker(&["rm", "-f", c]);
        }
        for v in &self.volumes {
            docker(&["volume", "rm", "-f", v]);
        }
        for i in &self.images {
            docker(&["image", "rm", "-f", i]);
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[tokio::test]
async fn docker_builder_drives_the_local_engine() {
    let sshd_image = testbed::image(Image::Sshd);
    let docker = Docker::new(Arc::new(LocalExecutor::new()));
    let run = run_id();
    let name = unique("docker-ssh-test");
    let volume = unique("docker-ssh-test-vol");
    let committed = format!("docker-ssh-test/commit:{:016x}", rand_u64());
    let built = format!("docker-ssh-test/build:{:016x}", rand_u64());
    let _cleanup = Cleanup {
        containers: vec![name.clone()],
        volumes: vec![volume.clone()],
        images: vec![committed.clone(), built.clone()],
    };

    assert!(
        !docker
            .server_version()
            .await
            .expect("engine answers")
            .is_empty()
    );
    assert!(
        docker
            .image_exists(&sshd_image)
            .await
            .expect("inspect image")
    );

    // volume create / exists
    docker
        .volume_create(&volume, &[(RUN_LABEL.to_owned(), run.clone())])
        .await
        .expect("volume create");
    assert!(docker.volume_exists(&volume).await.expect("volume inspect"));

    // run with ports, volumes, labels, restart policy, entrypoint
    let opts = RunOptions::new(&sshd_image, &name)
        .port(PortMapping::new(22).host_ip([127, 0, 0, 1].into()))
        .volume(VolumeMount::new(&volume, "/data"))
        .label(RUN_LABEL, &run)
        .label("com.imbue.mngr.test.note", "it's, a=label")
        .restart(RestartPolicy::No)
        .extra_args(["--stop-signal", "SIGKILL"])
        .shell_entrypoint("echo ready > /data/marker; exec sleep 300");
    let id = docker.run(&opts).await.expect("docker run");
    assert_eq!(id.len(), 64);

    let info = docker
        .inspect_container(&name)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(info.id, id);
    assert_eq!(info.short_name(), name);
    assert!(info.state.running);
    assert_eq!(info.config.labels[RUN_LABEL], run);
    assert_eq!(
        info.config.labels["com.imbue.mngr.test.note"],
        "it's, a=label"
    );
    let port = info.host_port(22).expect("22 published");
    assert!(port > 0);
    let binding = &info.network_settings.ports["22/tcp"]
        .as_ref()
        .expect("bindings")[0];
    assert_eq!(binding.host_ip, "127.0.0.1");
    assert!(docker.is_running(&name).await.expect("is_running"));
    assert_eq!(
        docker
            .inspect_format(
                ObjectKind::Container,
                &name,
                "{{.HostConfig.RestartPolicy.Name}}"
            )
            .await
            .expect("format")
            .as_deref(),
        Some("no")
    );

    // ps with label filters
    let mine = docker
        .ps(
            false,
            &[
                PsFilter::label(RUN_LABEL, &run),
                PsFilter::Name(name.clone()),
            ],
        )
        .await
        .expect("ps");
    let entry = mine.iter().find(|e| e.id == id).expect("listed");
    assert!(entry.is_running() && entry.has_name(&name));
    assert_eq!(entry.labels()[RUN_LABEL], run);
    let none = docker
        .ps(true, &[PsFilter::label(RUN_LABEL, "no-such-run-id")])
        .await
        .expect("ps");
    assert!(none.iter().all(|e| e.id != id));

    // exec: exit codes, stderr, stdin (a secret goes over stdin, never argv)
    let out = docker
        .exec(&ExecOptions::script(
            &name,
            "cat /data/marker; echo oops >&2; exit 5",
        ))
        .await
        .expect("exec");
    assert_eq!(out.status, ExitStatus::Code(5));
    assert_eq!(out.stdout, b"ready\n");
    assert_eq!(out.stderr, b"oops\n");
    let secret = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n";
    let out = docker
        .exec(
            &ExecOptions::script(&name, "umask 077; cat > /data/key; wc -c < /data/key")
                .stdin(secret.to_vec())
                .user("root")
                .workdir("/data")
                .env("X", "y z"),
        )
        .await
        .expect("exec with stdin");
    assert_eq!(out.stdout_trimmed(), secret.len().to_string());

    // stop / start
    docker
        .stop(&name, Duration::from_secs(1))
        .await
        .expect("stop");
    assert!(!docker.is_running(&name).await.expect("is_running"));
    let stopped = docker
        .ps(
            true,
            &[
                PsFilter::label(RUN_LABEL, &run),
                PsFilter::Status("exited".into()),
            ],
        )
        .await
        .expect("ps");
    assert!(stopped.iter().any(|e| e.id == id));
    docker.start(&name).await.expect("start");
    assert!(docker.is_running(&name).await.expect("is_running"));

    // commit
    let image_id = docker.commit(&name, &committed).await.expect("commit");
    assert!(image_id.starts_with("sha256:"));
    assert!(docker.image_exists(&committed).await.expect("inspect"));

    // build from a context streamed on stdin (FROM a local image: no pull)
    let ctx = tempfile::tempdir().expect("tmp");
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {committed}\nARG GREETING\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" >> /hello.txt\n"),
    )
    .expect("write");
    fs::write(ctx.path().join("hello.txt"), "hello\n").expect("write");
    fs::write(ctx.path().join("ignored.log"), "no").expect("write");
    let mut lines = Vec::new();
    let mut on_line = |_: docker_ssh::OutputStream, l: &str| lines.push(l.to_owned());
    let mut tar = tar_dir(ctx.path(), &ExcludeList::new(["*.log"]));
    let build = BuildOptions::new(&built, BuildContext::Stdin)
        .build_arg("GREETING", "it's built")
        .label(RUN_LABEL, &run);
    let built_id = docker
        .build(&build, Some(&mut tar), &mut on_line)
        .await
        .expect("build");
    assert!(built_id.is_some(), "no image id in {lines:?}");
    assert!(lines.iter().any(|l| l.contains("Step")), "{lines:?}");
    assert_eq!(
        docker
            .inspect_format(
                ObjectKind::Image,
                &built,
                "{{index .Config.Labels \"com.imbue.mngr.test-run\"}}"
            )
            .await
            .expect("inspect")
            .as_deref(),
        Some(run.as_str())
    );

    // load: save the built image, remove it, load it back
    let saved = ctx.path().join("image.tar");
    let status = std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(&saved)
        .arg(&built)
        .status()
        .expect("docker save");
    assert!(status.success());
    assert!(docker.image_rm(&built, true).await.expect("image rm"));
    assert!(!docker.image_exists(&built).await.expect("inspect"));
    let mut file = tokio::fs::File::open(&saved).await.expect("open");
    let loaded = docker.load(&mut file).await.expect("load");
    assert_eq!(loaded, vec![built.clone()]);
    let out = docker
        .exec(&ExecOptions::argv(&name, ["true"]))
        .await
        .expect("exec");
    assert!(out.success());

    // rm / volume rm / image rm, and the "missing" answers
    assert!(docker.rm(&name, true).await.expect("rm"));
    docker
        .rm(&name, true)
        .await
        .expect("rm -f of a missing container is fine");
    assert!(!docker.rm(&name, false).await.expect("rm again"));
    assert!(
        docker
            .inspect_container(&name)
            .await
            .expect("inspect")
            .is_none()
    );
    assert!(!docker.is_running(&name).await.expect("is_running"));
    docker.volume_rm(&volume).await.expect("volume rm");
    docker
        .volume_rm(&volume)
        .await
        .expect("volume rm is idempotent");
    assert!(!docker.volume_exists(&volume).await.expect("volume inspect"));
    assert!(docker.image_rm(&built, false).await.expect("image rm"));
    assert!(docker.image_rm(&committed, false).await.expect("image rm"));
    assert!(
        !docker
            .image_rm(&committed, false)
            .await
            .expect("image rm again")
    );

    // a failing command names the engine's message
    let err = docker.start(&name).await.expect_err("no such container");
    assert!(err.to_string().contains(&name), "{err}");
}

//! The `Docker` builder's commands against the real local engine, through
//! `LocalExecutor`. Only locally built images are used (never a pull); everything created
//! is labelled with the test run and removed at the end, also when the test fails.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{
    BuildContext, BuildOptions, CommitOptions, Docker, DockerError, ExcludeList, ExecOptions,
    ExitStatus, LocalExecutor, ObjectKind, PortMapping, PsFilter, PullPolicy, RestartPolicy,
    RunOptions, VolumeMount, tar_dir,
};
use testbed::{Image, RUN_LABEL, run_id};

/// Removes what the test created, by name, whatever happens.
struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
    networks: Vec<String>,
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
        for n in &self.networks {
            docker(&["network", "rm", n]);
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
        networks: Vec::new(),
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

#[tokio::test]
async fn create_copy_pause_commit_save_networks_and_volume_listings() {
    let sshd_image = testbed::image(Image::Sshd);
    let docker = Docker::new(Arc::new(LocalExecutor::new()));
    let run = run_id();
    let name = unique("docker-ssh-extra");
    let once = unique("docker-ssh-once");
    let network = unique("docker-ssh-net");
    let volumes = [unique("docker-ssh-vol-a"), unique("docker-ssh-vol-b")];
    let committed = format!("docker-ssh-test/extra:{:016x}", rand_u64());
    let _cleanup = Cleanup {
        containers: vec![name.clone(), once.clone()],
        volumes: volumes.to_vec(),
        images: vec![committed.clone()],
        networks: vec![network.clone()],
    };
    // A label only this test carries, so listings see nothing else.
    let mine = vec![
        (RUN_LABEL.to_owned(), run.clone()),
        ("com.imbue.mngr.test.case".to_owned(), name.clone()),
    ];

    // networks: create, list by labels, remove
    docker
        .network_create(&network, &mine)
        .await
        .expect("network create");
    let ids = docker.network_ls(&mine).await.expect("network ls");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0].len() == 64, "--no-trunc id: {ids:?}");
    assert!(
        docker
            .network_ls(&[(RUN_LABEL.to_owned(), "no-such-run-id".to_owned())])
            .await
            .expect("network ls")
            .is_empty()
    );

    // volumes: list by labels, inspect several (a missing one is left out)
    for (i, v) in volumes.iter().enumerate() {
        let mut labels = mine.clone();
        labels.push(("com.imbue.mngr.test.index".to_owned(), i.to_string()));
        docker
            .volume_create(v, &labels)
            .await
            .expect("volume create");
    }
    let mut listed = docker.volume_ls(&mine).await.expect("volume ls");
    listed.sort();
    let mut want = volumes.to_vec();
    want.sort();
    assert_eq!(listed, want);
    let missing = unique("docker-ssh-no-such-vol");
    let infos = docker
        .inspect_volumes(&[&volumes[0], &missing, &volumes[1]])
        .await
        .expect("inspect volumes");
    assert_eq!(infos.len(), 2, "{infos:?}");
    for info in &infos {
        let i = volumes
            .iter()
            .position(|v| *v == info.name)
            .expect("one of ours");
        assert_eq!(info.labels["com.imbue.mngr.test.index"], i.to_string());
        assert_eq!(info.labels[RUN_LABEL], run);
        assert!(!info.created_at.is_empty() && info.driver == "local");
    }
    assert!(
        docker
            .inspect_volumes(&[&missing])
            .await
            .expect("inspect")
            .is_empty()
    );

    // create (never pulls), copy a file in before the first start, start on the network
    let opts = RunOptions::new(&sshd_image, &name)
        .volume(VolumeMount::new(&volumes[0], "/data"))
        .label(RUN_LABEL, &run)
        .pull(PullPolicy::Never)
        .extra_args(["--network", &network, "--stop-signal", "SIGKILL"])
        .shell_entrypoint("exec sleep 300");
    let id = docker.create(&opts).await.expect("docker create");
    assert!(!docker.is_running(&name).await.expect("is_running"));
    let seed = tempfile::tempdir().expect("tmp");
    fs::write(seed.path().join("it's here.txt"), "seeded\n").expect("write");
    docker
        .cp_into(&format!("{}/.", seed.path().display()), &name, "/seed/")
        .await
        .expect("docker cp");
    docker.start(&name).await.expect("start");
    let out = docker
        .exec(&ExecOptions::argv(&name, ["cat", "/seed/it's here.txt"]).idempotent())
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"seeded\n");

    // the name is taken now: a typed error for run and create
    for err in [
        docker.run(&opts).await.expect_err("name taken"),
        docker.create(&opts).await.expect_err("name taken"),
    ] {
        assert!(
            matches!(&err, DockerError::NameConflict { name: n, .. } if *n == name),
            "{err:?}"
        );
    }
    // --pull never: an absent image is an error, not a pull
    let absent = RunOptions::new("docker-ssh-test/absent:never", &once).pull(PullPolicy::Never);
    let err = docker.create(&absent).await.expect_err("no such image");
    assert!(matches!(err, DockerError::Exec(_)), "{err:?}");

    // inspect several containers at once (a missing one is left out)
    let all = docker
        .inspect_containers(&[&name, &once])
        .await
        .expect("inspect containers");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, id);
    assert!(all[0].state.running);
    assert!(
        docker
            .inspect_containers(&[&once])
            .await
            .expect("inspect")
            .is_empty()
    );

    // pause, commit without pausing again (with changes), unpause
    docker.pause(&name).await.expect("pause");
    let paused = docker.inspect_container(&name).await.expect("inspect");
    assert!(paused.expect("exists").state.paused);
    let image_id = docker
        .commit_with(
            &CommitOptions::new(&name, &committed)
                .no_pause()
                .change(format!("LABEL {RUN_LABEL}={run}"))
                .change("LABEL com.imbue.mngr.test.committed=yes"),
        )
        .await
        .expect("commit");
    assert!(image_id.starts_with("sha256:"));
    docker.unpause(&name).await.expect("unpause");
    let info = docker.inspect_container(&name).await.expect("inspect");
    let state = info.expect("exists").state;
    assert!(state.running && !state.paused);
    assert_eq!(
        docker
            .inspect_format(
                ObjectKind::Image,
                &committed,
                "{{index .Config.Labels \"com.imbue.mngr.test.committed\"}}"
            )
            .await
            .expect("inspect")
            .as_deref(),
        Some("yes")
    );

    // an attached, self-removing run of the committed image: its output, then it is gone
    let out = docker
        .run_attached(
            &RunOptions::new(&committed, &once)
                .auto_remove()
                .label(RUN_LABEL, &run)
                .pull(PullPolicy::Never)
                .extra_args(["--network", "none"])
                .entrypoint("cat")
                .args(["/seed/it's here.txt"]),
        )
        .await
        .expect("run attached");
    assert_eq!(out.stdout, b"seeded\n");
    assert!(
        docker
            .inspect_container(&once)
            .await
            .expect("inspect")
            .is_none()
    );
    let err = docker
        .run_attached(
            &RunOptions::new(&committed, &once)
                .auto_remove()
                .label(RUN_LABEL, &run)
                .extra_args(["--network", "none"])
                .shell_entrypoint("echo failing >&2; exit 3"),
        )
        .await
        .expect_err("exit 3");
    assert!(err.to_string().contains("failing"), "{err}");

    // save streams a tar to the writer: it loads back as the same image
    let tar_path = seed.path().join("image.tar");
    let mut file = tokio::fs::File::create(&tar_path).await.expect("create");
    docker.save(&committed, &mut file).await.expect("save");
    drop(file);
    let size = fs::metadata(&tar_path).expect("tar written").len();
    assert!(size > 1024, "{size} bytes");
    let mut file = tokio::fs::File::open(&tar_path).await.expect("open");
    assert_eq!(
        docker.load(&mut file).await.expect("load"),
        vec![committed.clone()]
    );
    let mut sink = Vec::new();
    let err = docker
        .save("docker-ssh-test/absent:never", &mut sink)
        .await
        .expect_err("no such image");
    assert!(err.to_string().contains("absent"), "{err}");

    // clean up through the builder
    assert!(docker.rm(&name, true).await.expect("rm"));
    docker
        .network_rm(&ids.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .expect("network rm");
    assert!(
        docker
            .network_ls(&mine)
            .await
            .expect("network ls")
            .is_empty()
    );
    docker.network_rm(&[]).await.expect("nothing to remove");
    for v in &volumes {
        docker.volume_rm(v).await.expect("volume rm");
    }
    assert!(docker.volume_ls(&mine).await.expect("volume ls").is_empty());
    assert!(docker.image_rm(&committed, true).await.expect("image rm"));
}

//! The `Docker` builder over SSH, as the provider uses it: a pooled connection to a fake
//! VPS (systemd, sshd, dockerd; from the test bed, removed when the test ends) drives the
//! Docker engine inside it. No registry: the image is streamed in with `docker load`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_ssh::{
    BuildContext, BuildOptions, Docker, ExcludeList, ExecOptions, ExitStatus, ObjectKind, PsFilter,
    RunOptions, SshConfig, SshPool, SshTarget, upload_dir,
};
use testbed::{FakeVps, Image, LocalOs};

#[tokio::test]
async fn docker_builder_over_ssh_on_a_fake_vps() {
    let base = testbed::image(Image::Base);
    let vps = FakeVps::builder(LocalOs::DockerReady).boot().await;
    let target = SshTarget::new(
        "127.0.0.1",
        vps.addr(22).port(),
        "root",
        Arc::new(vps.client_key.private().clone()),
        vps.host_key.public().clone(),
    );
    let pool = SshPool::new(target, SshConfig::default());
    let docker = Docker::new(Arc::new(pool.clone()));

    // dockerd may come up a moment after sshd.
    let started = Instant::now();
    loop {
        match docker.server_version().await {
            Ok(v) if !v.is_empty() => break,
            result => {
                assert!(
                    started.elapsed() < Duration::from_secs(90),
                    "dockerd in the fake VPS never answered: {result:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    // docker save (here) | docker load (there), streamed over one channel.
    let mut save = tokio::process::Command::new("docker")
        .args(["save", &base])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("docker save starts");
    let mut image_tar = save.stdout.take().expect("stdout");
    let loaded = docker
        .load(&mut image_tar)
        .await
        .expect("docker load over ssh");
    assert!(save.wait().await.expect("docker save").success());
    assert_eq!(loaded, vec![base.clone()]);

    // run, inspect, ps, exec with stdin, stop/start, commit, rm
    let opts = RunOptions::new(&base, "box")
        .label("com.imbue.mngr.host-id", "host-1")
        .shell_entrypoint("exec sleep 300");
    let id = docker.run(&opts).await.expect("docker run");
    assert!(docker.is_running("box").await.expect("inspect"));
    let listed = docker
        .ps(
            false,
            &[PsFilter::label("com.imbue.mngr.host-id", "host-1")],
        )
        .await
        .expect("ps");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    let out = docker
        .exec(
            &ExecOptions::script("box", "cat > /k; wc -c < /k; exit 3").stdin(b"secret\n".to_vec()),
        )
        .await
        .expect("exec");
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout_trimmed(), "7");
    docker
        .stop("box", Duration::from_secs(1))
        .await
        .expect("stop");
    assert!(!docker.is_running("box").await.expect("inspect"));
    docker.start("box").await.expect("start");
    let snapshot = docker.commit("box", "snap/box:1").await.expect("commit");
    assert!(snapshot.starts_with("sha256:"));

    // upload a build context, build from the remote directory
    let ctx = tempfile::tempdir().expect("tmp");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM snap/box:1\nCOPY greeting /greeting\n",
    )
    .expect("write");
    std::fs::write(ctx.path().join("greeting"), "hello from the build\n").expect("write");
    std::fs::write(ctx.path().join("junk.tmp"), "x").expect("write");
    upload_dir(&pool, ctx.path(), "/tmp/ctx", &ExcludeList::new(["*.tmp"]))
        .await
        .expect("upload");
    let mut lines = Vec::new();
    let mut on_line = |_: docker_ssh::OutputStream, l: &str| lines.push(l.to_owned());
    docker
        .build(
            &BuildOptions::new("built:1", BuildContext::Dir("/tmp/ctx".into())),
            None,
            &mut on_line,
        )
        .await
        .expect("docker build over ssh");
    assert!(!lines.is_empty());
    assert!(docker.image_exists("built:1").await.expect("inspect"));
    assert_eq!(
        docker
            .inspect_format(ObjectKind::Image, "built:1", "{{.Config.Entrypoint}}")
            .await
            .expect("inspect")
            .as_deref(),
        Some("[sh]")
    );

    assert!(docker.rm("box", true).await.expect("rm"));
    assert!(
        docker
            .inspect_container("box")
            .await
            .expect("inspect")
            .is_none()
    );
    assert!(docker.image_rm("built:1", false).await.expect("image rm"));
    assert!(
        docker
            .image_rm("snap/box:1", false)
            .await
            .expect("image rm")
    );
    pool.close().await;
}

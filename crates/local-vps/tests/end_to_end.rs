//! End to end on the real engine: fake VPSes booted by the real cloud-init from our own
//! documents, reached over SSH with pinned keys on the ports the client reports.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloud_init::{CloudConfig, HostKey};
use docker_ssh::{
    Command, Docker, Executor, ImageTransfer, LocalExecutor, ObjectKind, SshConfig, SshPool,
    SshTarget, wait_for_sshd,
};
use local_vps::{LocalOs, LocalVpsClient};
use testbed::{CmdOutput, Image, KeyPair};
use vps_client::{
    CreateInstanceRequest, SnapshotStatus, UserData, VpsClient, VpsClientError, WaitOptions,
    probe_tcp_banner, wait_until_active,
};
use vps_primitives::{PlanId, RegionId, SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus};

use common::{Guard, assert_nothing_left, client};

/// A booted VPS: its id, its keys, its user_data and a root session pinned to its key.
struct Booted {
    id: VpsInstanceId,
    key: SshKeyId,
    user_data: String,
    host: KeyPair,
    user: KeyPair,
    ssh: Session,
    ssh_addr: SocketAddr,
}

fn request(
    label: &str,
    os: LocalOs,
    user_data: &str,
    key: vps_primitives::SshKeyId,
) -> CreateInstanceRequest {
    CreateInstanceRequest {
        label: label.to_owned(),
        region: RegionId::parse("local").expect("valid region"),
        plan: PlanId::parse("local").expect("valid plan"),
        os: os.os_id(),
        snapshot: None,
        user_data: UserData::new(user_data),
        ssh_key_ids: vec![key],
        tags: vec![Tag::new("mngr-test", label).expect("valid tag")],
        ports: vec![22, 2222],
    }
}

/// Our real user_data: the cloud-init crate's document around a fresh host key. Root's
/// login key is not in it: it comes from the uploaded key id, as on a cloud.
fn our_document(host: &KeyPair) -> String {
    let key = HostKey::ed25519(&host.private_openssh(), &host.public_openssh()).expect("host key");
    CloudConfig::new(key).render().into_string()
}

/// Uploads a login key, creates the VPS, waits until active and opens a pinned session.
async fn boot(
    client: &LocalVpsClient,
    label: &str,
    os: LocalOs,
    user_data: impl FnOnce(&KeyPair) -> String,
) -> Booted {
    let host = KeyPair::generate();
    let user = KeyPair::generate();
    let key = client
        .upload_ssh_key(label, &user.public_openssh())
        .await
        .expect("upload_ssh_key");
    let user_data = user_data(&host);
    let asked = Instant::now();
    let id = client
        .create_instance(&request(label, os, &user_data, key.clone()))
        .await
        .expect("create_instance");
    let created = asked.elapsed();
    let wait = WaitOptions::with_timeout(Duration::from_secs(240));
    let ssh_addr = wait_until_active(client, &id, 22, &wait, |addr| {
        probe_tcp_banner(addr, b"SSH-")
    })
    .await
    .expect("wait_until_active");
    eprintln!(
        "{label}: create_instance returned in {:.2}s, active after {:.2}s",
        created.as_secs_f64(),
        asked.elapsed().as_secs_f64()
    );
    assert!(ssh_addr.ip().is_loopback(), "published on {ssh_addr}");
    // Every published port is bound to 127.0.0.1 only.
    let bindings = testbed::docker(&["port", id.as_str()]);
    assert_eq!(bindings.lines().count(), 2, "22 and 2222: {bindings}");
    for line in bindings.lines() {
        assert!(line.contains(" -> 127.0.0.1:"), "not loopback only: {line}");
    }
    let ssh = Session::connect(ssh_addr, &host, &user).await;
    Booted {
        id,
        key,
        user_data,
        host,
        user,
        ssh,
        ssh_addr,
    }
}

/// A root session on a VPS over `docker-ssh` (the product's SSH): a pool pinned to the
/// VPS's host key, which must also be the key sshd offers before any login.
struct Session {
    pool: Arc<SshPool>,
}

impl Session {
    async fn connect(addr: SocketAddr, host: &KeyPair, user: &KeyPair) -> Self {
        let offered = wait_for_sshd(&addr.ip().to_string(), addr.port(), Duration::from_secs(60))
            .await
            .expect("sshd answers");
        assert_eq!(
            offered.key_data(),
            host.public().key_data(),
            "the VPS must offer the host key from its user_data"
        );
        let target = SshTarget::new(
            addr.ip().to_string(),
            addr.port(),
            "root",
            Arc::new(user.private().clone()),
            host.public().clone(),
        );
        let pool = Arc::new(SshPool::new(target, SshConfig::default()));
        pool.connect()
            .await
            .expect("root login with the uploaded key");
        Self { pool }
    }

    /// Runs a shell command; its exit code is part of the answer, not an error.
    async fn exec(&self, script: &str) -> CmdOutput {
        let cmd = Command::script(script).timeout(Duration::from_secs(300));
        let out = self
            .pool
            .run(&cmd)
            .await
            .unwrap_or_else(|e| panic!("ssh `{script}`: {e}"));
        CmdOutput {
            code: out
                .status
                .code()
                .map_or(-1, |c| i32::try_from(c).unwrap_or(i32::MAX)),
            stdout: out.stdout_text(),
            stderr: out.stderr_text(),
        }
    }

    /// `docker-ssh`'s Docker builder over this session.
    fn docker(&self) -> Docker {
        Docker::new(self.pool.clone())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

fn ok(out: &CmdOutput, what: &str) {
    assert_eq!(
        out.code, 0,
        "{what}: exit {}\nstdout: {}\nstderr: {}",
        out.code, out.stdout, out.stderr
    );
}

/// Waits for cloud-init and asserts it finished without errors.
async fn cloud_init_done(ssh: &Session) {
    let status = ssh.exec("cloud-init status --wait --long").await;
    ok(&status, "cloud-init status");
    assert!(status.stdout.contains("status: done"), "{}", status.stdout);
}

/// The command that reads the user_data from the metadata service with bash alone (the
/// base image has no curl), failing within 5 s.
const GET_USER_DATA: &str = r#"timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.169.254/80 && printf "GET /latest/user-data HTTP/1.0\r\n\r\n" >&3 && cat <&3'"#;

async fn metadata_from_vps(vps: &Booted) -> CmdOutput {
    vps.ssh
        .exec("curl -sf -m 5 http://169.254.169.254/latest/user-data")
        .await
}

/// Runs [`GET_USER_DATA`] in a container on the VPS (from the base image, loaded, never
/// pulled).
async fn metadata_from_container(vps: &Booted, base: &str) -> CmdOutput {
    let cmd = format!("docker run --rm --pull never {base} {GET_USER_DATA}");
    vps.ssh.exec(&cmd).await
}

async fn load_base(client: &LocalVpsClient, id: &VpsInstanceId) -> String {
    let base = testbed::image(Image::Base);
    let done = client
        .preload_image(id, &base)
        .await
        .expect("preload_image");
    let ImageTransfer::Copied { loaded, .. } = &done else {
        panic!("a new VPS has no {base}, so it is copied: {done:?}");
    };
    assert!(loaded.contains(&base), "docker load said {loaded:?}");
    let again = client
        .preload_image(id, &base)
        .await
        .expect("preload_image again");
    assert_eq!(
        again,
        ImageTransfer::AlreadyPresent {
            id: done.id().to_owned()
        },
        "the VPS has the image with the same id: nothing is sent"
    );
    base
}

/// Loads the base image the way a real VPS gets one: `docker save` here streamed into
/// `docker load` over SSH, with `docker-ssh`'s `Docker::copy_image_to`.
async fn load_base_over_ssh(vps: &Booted) -> String {
    let base = testbed::image(Image::Base);
    let here = Docker::new(Arc::new(LocalExecutor::new()));
    let there = vps.ssh.docker();
    let done = here
        .copy_image_to(&base, &there)
        .await
        .expect("docker save | docker load over SSH");
    let ImageTransfer::Copied { id, loaded } = &done else {
        panic!("a new VPS has no {base}, so it is copied: {done:?}");
    };
    assert!(loaded.contains(&base), "docker load said {loaded:?}");
    let there_id = there
        .inspect_format(ObjectKind::Image, &base, "{{.Id}}")
        .await
        .expect("docker image inspect over SSH");
    assert_eq!(
        there_id.as_deref(),
        Some(id.as_str()),
        "the same image arrived"
    );
    let again = here.copy_image_to(&base, &there).await.expect("again");
    assert!(!again.copied(), "skipped when present: {again:?}");
    base
}

/// Destroys the VPS and deletes its key, then checks both are gone.
async fn destroy_and_check(client: &LocalVpsClient, id: &VpsInstanceId, key: &SshKeyId) {
    client.destroy_instance(id).await.expect("destroy_instance");
    assert!(matches!(
        client.get_instance(id).await,
        Err(VpsClientError::NotFound { .. })
    ));
    assert_nothing_left(id);
    client.delete_ssh_key(key).await.expect("delete_ssh_key");
    let keys = client.list_ssh_keys().await.expect("list_ssh_keys");
    assert!(keys.iter().all(|k| &k.id != key), "{keys:?}");
}

#[tokio::test]
async fn docker_ready_vps_with_our_cloud_init_document() {
    let client = client();
    let _guard = Guard::new(&client);
    let started = Instant::now();
    let vps = boot(&client, "e2e-ready", LocalOs::DockerReady, our_document).await;
    eprintln!(
        "active and logged in after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    cloud_init_done(&vps.ssh).await;
    eprintln!(
        "cloud-init done after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The real cloud-init accepted our document without schema complaints.
    ok(
        &vps.ssh.exec("cloud-init schema --system").await,
        "cloud-init schema --system",
    );
    // The VPS presents only the host key from the user_data (the session is pinned to it).
    let keys = vps
        .ssh
        .exec("ls /etc/ssh/ | grep '^ssh_host_.*_key$'")
        .await;
    assert_eq!(keys.stdout, "ssh_host_ed25519_key\n");
    // Root's key came from the key id (meta-data), not from the user_data.
    assert!(!vps.user_data.contains(&vps.user.public_openssh()));
    let auth = vps.ssh.exec("cat /root/.ssh/authorized_keys").await;
    assert!(
        auth.stdout.contains(&vps.user.public_openssh()),
        "{}",
        auth.stdout
    );

    let docker = vps
        .ssh
        .exec("docker info --format '{{.ServerVersion}} {{.Driver}}'")
        .await;
    ok(&docker, "docker info");
    assert!(docker.stdout.contains("overlay2"), "{}", docker.stdout);
    let version = vps
        .ssh
        .docker()
        .server_version()
        .await
        .expect("Docker answers over SSH");
    assert!(!version.is_empty());

    // Metadata: the VPS reads its user_data, a container on it cannot.
    let from_vps = metadata_from_vps(&vps).await;
    ok(&from_vps, "metadata from the VPS");
    assert_eq!(from_vps.stdout, vps.user_data);
    let base = load_base_over_ssh(&vps).await;
    let from_container = metadata_from_container(&vps, &base).await;
    assert_ne!(
        from_container.code, 0,
        "a container read the metadata: {}",
        from_container.stdout
    );
    assert!(!from_container.stdout.contains("#cloud-config"));
    // ... while the container itself runs fine (the failure is the block, not Docker).
    ok(
        &vps.ssh
            .exec(&format!("docker run --rm --pull never {base} true"))
            .await,
        "inner container",
    );

    let listed = client
        .list_instances(Some(&Tag::new("mngr-test", "e2e-ready").expect("tag")))
        .await
        .expect("list");
    assert_eq!(listed.iter().map(|i| &i.id).collect::<Vec<_>>(), [&vps.id]);
    assert_eq!(listed[0].status, VpsInstanceStatus::Active);

    vps.ssh.close().await;
    destroy_and_check(&client, &vps.id, &vps.key).await;
    eprintln!("whole test {:.1}s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn metadata_is_routed_off_the_vps_so_docker_user_rules_apply() {
    let client = client();
    let _guard = Guard::new(&client);
    // A document without any metadata block.
    let vps = boot(&client, "e2e-metadata", LocalOs::DockerReady, |host| {
        testbed::default_user_data(host, &KeyPair::generate(), &[])
    })
    .await;
    cloud_init_done(&vps.ssh).await;
    let base = load_base(&client, &vps.id).await;

    // Not an address of the VPS: a route to a host behind a veth pair.
    let local = vps
        .ssh
        .exec("ip -o addr show | grep -c '169.254.169.254' || true")
        .await;
    assert_eq!(
        local.stdout.trim(),
        "0",
        "169.254.169.254 must not be local to the VPS"
    );
    let route = vps.ssh.exec("ip route get 169.254.169.254").await;
    ok(&route, "ip route get");
    assert!(route.stdout.contains("dev md-vps"), "{}", route.stdout);

    let open = metadata_from_container(&vps, &base).await;
    ok(&open, "metadata from a container without a rule");
    assert!(open.stdout.ends_with(&vps.user_data), "{}", open.stdout);

    ok(
        &vps.ssh
            .exec("iptables -I DOCKER-USER -d 169.254.169.254 -j REJECT")
            .await,
        "adding the DOCKER-USER rule",
    );
    let blocked = metadata_from_container(&vps, &base).await;
    assert_ne!(blocked.code, 0, "read despite the rule: {}", blocked.stdout);
    let from_vps = metadata_from_vps(&vps).await;
    ok(&from_vps, "metadata from the VPS with the rule");
    assert_eq!(from_vps.stdout, vps.user_data);

    // The meta-data carries the registered key, as a cloud's does.
    let keys = vps
        .ssh
        .exec("curl -sf -m 5 http://169.254.169.254/latest/meta-data/public-keys")
        .await;
    ok(&keys, "meta-data public-keys");
    assert_eq!(keys.stdout.trim(), vps.user.public_openssh());

    vps.ssh.close().await;
    destroy_and_check(&client, &vps.id, &vps.key).await;
}

#[tokio::test]
async fn fresh_debian_gets_docker_from_our_cloud_init_document() {
    let client = client();
    let _guard = Guard::new(&client);
    let started = Instant::now();
    let vps = boot(&client, "e2e-fresh", LocalOs::FreshDebian12, our_document).await;
    cloud_init_done(&vps.ssh).await;
    eprintln!(
        "fresh Debian: cloud-init done after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // The install really ran on this VPS: apt's history has it, and Docker answers.
    let history = vps
        .ssh
        .exec("grep -c 'install.*docker.io' /var/log/apt/history.log")
        .await;
    ok(&history, "docker.io in apt's history");
    ok(
        &vps.ssh.exec("systemctl is-enabled docker.service").await,
        "docker enabled",
    );
    ok(
        &vps.ssh
            .exec("docker info --format '{{.ServerVersion}}'")
            .await,
        "docker info",
    );

    let from_vps = metadata_from_vps(&vps).await;
    ok(&from_vps, "metadata from the VPS");
    assert_eq!(from_vps.stdout, vps.user_data);
    let base = load_base(&client, &vps.id).await;
    let from_container = metadata_from_container(&vps, &base).await;
    assert_ne!(
        from_container.code, 0,
        "a container read the metadata: {}",
        from_container.stdout
    );

    vps.ssh.close().await;
    destroy_and_check(&client, &vps.id, &vps.key).await;
}

#[tokio::test]
async fn stop_and_start_change_status_and_ports() {
    let client = client();
    let _guard = Guard::new(&client);
    let vps = boot(&client, "e2e-restart", LocalOs::DockerReady, our_document).await;
    cloud_init_done(&vps.ssh).await;
    vps.ssh.close().await;

    client.stop_instance(&vps.id).await.expect("stop");
    assert_eq!(
        client.instance_status(&vps.id).await.expect("status"),
        VpsInstanceStatus::Halted
    );
    assert!(matches!(
        client.socket_addr(&vps.id, 22).await,
        Err(VpsClientError::NotReady { .. })
    ));
    client.start_instance(&vps.id).await.expect("start");
    let wait = WaitOptions::with_timeout(Duration::from_secs(120));
    let addr = wait_until_active(&client, &vps.id, 22, &wait, |a| {
        probe_tcp_banner(a, b"SSH-")
    })
    .await
    .expect("active again");
    // The client reports the current mapping, whatever Docker chose this time.
    let mapped = testbed::docker(&["port", vps.id.as_str(), "22/tcp"]);
    assert!(
        mapped.lines().any(|l| l == addr.to_string()),
        "{addr} vs {mapped}"
    );
    let port_2222 = client
        .socket_addr(&vps.id, 2222)
        .await
        .expect("2222 published");
    assert!(port_2222.ip().is_loopback());
    eprintln!("ssh before {} after {addr}", vps.ssh_addr);
    // Same host key after the reboot, per-instance cloud-init not rerun.
    let ssh = Session::connect(addr, &vps.host, &vps.user).await;
    ok(
        &ssh.exec("cloud-init status --wait").await,
        "cloud-init after reboot",
    );
    // The metadata service came back with the VPS.
    let metadata = ssh
        .exec("curl -sf -m 5 http://169.254.169.254/latest/meta-data/instance-id")
        .await;
    ok(&metadata, "metadata after reboot");
    assert_eq!(metadata.stdout, vps.id.as_str());
    assert!(matches!(
        client.socket_addr(&vps.id, 8080).await,
        Err(VpsClientError::Api { status: 400, .. })
    ));
    ssh.close().await;
    destroy_and_check(&client, &vps.id, &vps.key).await;
}

#[tokio::test]
async fn four_instances_at_once() {
    let client = client();
    let _guard = Guard::new(&client);
    let started = Instant::now();
    let labels = ["e2e-four-a", "e2e-four-b", "e2e-four-c", "e2e-four-d"];
    let boots = labels.iter().map(|label| {
        let client = &client;
        async move {
            let vps = boot(client, label, LocalOs::DockerReady, our_document).await;
            cloud_init_done(&vps.ssh).await;
            ok(
                &vps.ssh
                    .exec("docker info --format '{{.ServerVersion}}'")
                    .await,
                "docker info",
            );
            let host = vps.ssh.exec("hostname").await;
            assert_eq!(host.stdout.trim(), *label);
            vps
        }
    });
    let booted = futures::future::join_all(boots).await;
    eprintln!(
        "four VPSes ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut ports: Vec<u16> = booted.iter().map(|b| b.ssh_addr.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "each VPS has its own port: {ports:?}");
    for vps in booted {
        vps.ssh.close().await;
        destroy_and_check(&client, &vps.id, &vps.key).await;
    }
}

#[tokio::test]
async fn snapshot_restores_disk_and_inner_images() {
    let client = client();
    let _guard = Guard::new(&client);
    let vps = boot(&client, "e2e-snap-src", LocalOs::DockerReady, our_document).await;
    cloud_init_done(&vps.ssh).await;
    let base = load_base(&client, &vps.id).await;
    ok(
        &vps.ssh.exec("echo kept > /root/snapshot-marker").await,
        "writing the marker",
    );

    let snapshot = client
        .create_snapshot(&vps.id, "e2e: marker and base image")
        .await
        .expect("create_snapshot");
    let listed = client.list_snapshots().await.expect("list_snapshots");
    let info = listed
        .iter()
        .find(|s| s.id == snapshot)
        .expect("the snapshot is listed");
    assert_eq!(info.status, SnapshotStatus::Complete);
    assert_eq!(info.description, "e2e: marker and base image");
    assert!(info.created_at.is_some());
    // The source was only paused: it answers again.
    ok(&vps.ssh.exec("true").await, "the source after the snapshot");
    assert_eq!(
        client.instance_status(&vps.id).await.expect("status"),
        VpsInstanceStatus::Active
    );

    // A new instance from it, with its own keys and user_data.
    let host = KeyPair::generate();
    let user = KeyPair::generate();
    let key = client
        .upload_ssh_key("e2e-snap-copy", &user.public_openssh())
        .await
        .expect("upload_ssh_key");
    let user_data = our_document(&host);
    let mut from_snapshot = request(
        "e2e-snap-copy",
        LocalOs::DockerReady,
        &user_data,
        key.clone(),
    );
    from_snapshot.snapshot = Some(snapshot.clone());
    let copy = client
        .create_instance(&from_snapshot)
        .await
        .expect("create_instance from the snapshot");
    let wait = WaitOptions::with_timeout(Duration::from_secs(240));
    let addr = wait_until_active(&client, &copy, 22, &wait, |a| probe_tcp_banner(a, b"SSH-"))
        .await
        .expect("the copy becomes active");
    // Pinned to the new host key: cloud-init saw a new instance and installed it.
    let ssh = Session::connect(addr, &host, &user).await;
    cloud_init_done(&ssh).await;
    assert_eq!(ssh.exec("cat /root/snapshot-marker").await.stdout, "kept\n");
    assert_eq!(ssh.exec("hostname").await.stdout.trim(), "e2e-snap-copy");
    ok(
        &ssh.exec(&format!("docker run --rm --pull never {base} true"))
            .await,
        "the inner image came along",
    );
    // The copy carries its own tags, not the source's.
    let by_source_tag = client
        .list_instances(Some(&Tag::new("mngr-test", "e2e-snap-src").expect("tag")))
        .await
        .expect("list");
    assert_eq!(
        by_source_tag.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&vps.id]
    );
    ssh.close().await;
    vps.ssh.close().await;

    destroy_and_check(&client, &copy, &key).await;
    destroy_and_check(&client, &vps.id, &vps.key).await;
    client
        .delete_snapshot(&snapshot)
        .await
        .expect("delete_snapshot");
    client
        .delete_snapshot(&snapshot)
        .await
        .expect("deleting it again succeeds");
    let listed = client.list_snapshots().await.expect("list_snapshots");
    assert!(listed.iter().all(|s| s.id != snapshot), "{listed:?}");
    let image = format!("{}:{snapshot}", local_vps::SNAPSHOT_REPOSITORY);
    let gone = std::process::Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .expect("docker runs");
    assert!(!gone.status.success(), "{image} is still there");
    assert!(
        testbed::docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={snapshot}")
        ])
        .is_empty()
    );
}

/// The files, in any layer of `image`, whose content holds `needle`: `docker save`, then
/// every layer unpacked and searched with `grep -rlF` (a file deleted by an upper layer
/// is still found in the layer that holds it).
fn layer_files_containing(image: &str, needle: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"set -eu
cd "$1"
mkdir saved layer
docker save "$2" | tar -x -C saved
find saved -type f | while read -r blob; do
    # Layers are tars; the image's JSON files are not, and unpack to nothing.
    tar -x -f "$blob" -C layer --no-same-owner --exclude='dev/*' 2>/dev/null || true
    grep -rlF -- "$3" layer | sed "s|^layer/||" || true
    rm -rf layer && mkdir layer
done
"#;
    let out = std::process::Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(dir.path())
        .args([image, needle])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "scanning {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn snapshot_images_do_not_carry_the_seed_or_its_private_host_key() {
    let client = client();
    let _guard = Guard::new(&client);
    let vps = boot(&client, "e2e-snap-seed", LocalOs::DockerReady, our_document).await;
    cloud_init_done(&vps.ssh).await;
    // The user_data's private host key, as the seed holds it: its longest base64 line.
    let private = vps.host.private_openssh();
    let needle = private
        .lines()
        .max_by_key(|l| l.len())
        .expect("a PEM has lines")
        .to_owned();
    assert!(vps.user_data.contains(&needle), "the seed holds the key");
    let snapshot = client
        .create_snapshot(&vps.id, "e2e: no seed")
        .await
        .expect("create_snapshot");
    let image = format!("{}:{snapshot}", local_vps::SNAPSHOT_REPOSITORY);

    let found = layer_files_containing(&image, &needle);
    eprintln!("files holding the old private host key in {image}: {found:?}");
    let seed: Vec<&String> = found
        .iter()
        .filter(|p| p.starts_with("var/lib/cloud/seed/"))
        .collect();
    assert!(
        seed.is_empty(),
        "the snapshot image carries the NoCloud seed with the private host key: {seed:?}"
    );
    // What is left is the VPS's own disk, as in any cloud's disk snapshot: the installed
    // host key and cloud-init's record of the instance's user_data (a VPS made from the
    // snapshot gets a new instance id, so cloud-init replaces the host key).
    for path in &found {
        assert!(
            path == "etc/ssh/ssh_host_ed25519_key" || path.starts_with("var/lib/cloud/instances/"),
            "{path} holds the old private host key"
        );
    }

    vps.ssh.close().await;
    destroy_and_check(&client, &vps.id, &vps.key).await;
    client
        .delete_snapshot(&snapshot)
        .await
        .expect("delete_snapshot");
}

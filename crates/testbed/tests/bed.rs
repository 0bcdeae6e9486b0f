//! Proves the test bed: a real SSH handshake against a pinned host key, and a fake VPS
//! booted by the real cloud-init.

use std::time::Duration;

use testbed::{FakeVps, KeyPair, LocalOs, SshClient, start_sshd};

#[tokio::test]
async fn sshd_container_handshakes_only_with_the_pinned_key() {
    let sshd = start_sshd().await;
    assert!(sshd.addr.ip().is_loopback(), "published on {}", sshd.addr);

    let client = SshClient::connect(sshd.addr, sshd.host_key.public(), &sshd.client_key)
        .await
        .expect("handshake with the pinned key");
    let out = client.exec("echo hello; echo oops >&2; exit 3").await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "hello\n", "oops\n")
    );
    client.close().await;

    let impostor = KeyPair::generate();
    let refused = SshClient::connect(sshd.addr, impostor.public(), &sshd.client_key).await;
    assert!(refused.is_err(), "a wrong pinned host key must be refused");

    // Only 127.0.0.1 bindings exist for the container.
    let id = sshd.container.id().to_owned();
    let ports = testbed::docker(&["port", &id]);
    assert!(!ports.is_empty());
    for line in ports.lines() {
        assert!(line.contains("127.0.0.1:"), "unexpected binding: {line}");
    }
}

#[tokio::test]
async fn fake_vps_boots_with_real_cloud_init_from_a_nocloud_seed() {
    let builder = FakeVps::builder(LocalOs::DockerReady);
    let user_data = testbed::default_user_data(
        builder.host_key(),
        builder.client_key(),
        &["echo ran > /var/lib/bed-runcmd-marker"],
    );
    let vps = builder
        .user_data(user_data)
        .boot_timeout(Duration::from_secs(120))
        .boot()
        .await;
    let ssh = vps.ssh().await;

    let status = ssh.exec("cloud-init status --wait --long").await;
    assert_eq!(
        status.code, 0,
        "cloud-init status: {}{}",
        status.stdout, status.stderr
    );
    assert!(status.stdout.contains("status: done"), "{}", status.stdout);
    assert!(
        status.stdout.contains("NoCloud"),
        "datasource: {}",
        status.stdout
    );

    let schema = ssh.exec("cloud-init schema --system").await;
    assert_eq!(schema.code, 0, "schema: {}{}", schema.stdout, schema.stderr);

    let marker = ssh.exec("cat /var/lib/bed-runcmd-marker").await;
    assert_eq!(marker.stdout, "ran\n");

    // The VPS presents only the key we injected.
    let keys = ssh.exec("ls /etc/ssh/ | grep '^ssh_host_.*_key$'").await;
    assert_eq!(keys.stdout, "ssh_host_ed25519_key\n");
    let docker = ssh.exec("docker info --format '{{.Driver}}'").await;
    assert_eq!(docker.code, 0, "{}", docker.stderr);
    assert_eq!(docker.stdout.trim(), "overlay2");
    ssh.close().await;
}

#[test]
fn remove_labelled_removes_containers_volumes_networks_and_images_and_counts_them() {
    let base = testbed::image(testbed::Image::Base);
    let key = "com.imbue.mngr.testbed-cleanup";
    let value = format!("{:016x}", rand_value());
    let label = format!("{key}={value}");
    let run = testbed::run_label();
    let name = format!("mngr-test-cleanup-{value}");
    testbed::docker(&[
        "volume", "create", "--label", &label, "--label", &run, &name,
    ]);
    testbed::docker(&[
        "network", "create", "--label", &label, "--label", &run, &name,
    ]);
    let image = format!("mngr-test-cleanup:{value}");
    let container = testbed::docker(&[
        "create",
        "--label",
        &label,
        "--label",
        &run,
        "--network",
        &name,
        "-v",
        &format!("{name}:/data"),
        "-v",
        "/anonymous",
        "--name",
        &name,
        &base,
        "true",
    ]);
    testbed::docker(&[
        "commit",
        "--change",
        &format!("LABEL {label}"),
        &container,
        &image,
    ]);
    // A second tag of the same image counts once.
    testbed::docker(&["tag", &image, &format!("{image}-again")]);
    let anonymous = testbed::docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{if eq .Destination \"/anonymous\"}}{{.Name}}{{end}}{{end}}",
        &container,
    ]);
    assert!(!anonymous.is_empty());

    let removed = testbed::remove_labelled(key, &value).expect("cleanup");
    assert_eq!(
        (
            removed.containers,
            removed.volumes,
            removed.networks,
            removed.images
        ),
        (1, 1, 1, 1),
        "{removed}"
    );
    let filter = format!("label={label}");
    for what in [
        &["ps", "-aq", "--filter", &filter][..],
        &["volume", "ls", "-q", "--filter", &filter][..],
        &["network", "ls", "-q", "--filter", &filter][..],
        &["image", "ls", "-q", "--filter", &filter][..],
    ] {
        assert_eq!(
            testbed::docker(what),
            "",
            "docker {} still lists",
            what.join(" ")
        );
    }
    // The container's anonymous volume went with it (`rm -v`).
    let left = testbed::docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={anonymous}"),
    ]);
    assert_eq!(left, "", "anonymous volume left");
    // Nothing left is nothing removed.
    assert!(
        testbed::remove_labelled(key, &value)
            .expect("cleanup")
            .is_empty()
    );
}

fn rand_value() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

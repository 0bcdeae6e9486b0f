//! Requests the client refuses before creating anything, and state that lives in Docker:
//! a second client (as another process would be) sees what the first created; another
//! account sees none of it.

mod common;

use local_vps::{LocalOs, LocalVpsClient, LocalVpsConfig};
use vps_client::{CreateInstanceRequest, UserData, VpsClient, VpsClientError};
use vps_primitives::{OsId, PlanId, RegionId, SshKeyId, Tag, VpsSnapshotId};

use common::{Guard, assert_nothing_left, client};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34 t@x";

fn request(tag: &Tag) -> CreateInstanceRequest {
    CreateInstanceRequest {
        label: "requests".to_owned(),
        region: RegionId::parse("local").expect("valid"),
        plan: PlanId::parse("local").expect("valid"),
        os: LocalOs::FreshDebian12.os_id(),
        snapshot: None,
        user_data: UserData::new("#cloud-config\n{}\n"),
        ssh_key_ids: Vec::new(),
        tags: vec![tag.clone()],
        ports: vec![22, 2222],
    }
}

fn run_tag() -> Tag {
    Tag::new(
        "mngr-test-requests",
        &format!("{:016x}", rand::random::<u64>()),
    )
    .expect("valid tag")
}

/// The same account, as a second process would configure it.
fn twin(client: &LocalVpsClient) -> LocalVpsClient {
    let mut config = LocalVpsConfig::default();
    for (k, v) in client.config().labels() {
        config = config.label(k.clone(), v.clone());
    }
    LocalVpsClient::new(config).expect("valid config")
}

#[tokio::test]
async fn bad_requests_are_refused_and_create_nothing() {
    let client = client();
    let _guard = Guard::new(&client);
    let tag = run_tag();

    let mut bad_os = request(&tag);
    bad_os.os = OsId(477);
    let err = client
        .create_instance(&bad_os)
        .await
        .expect_err("unknown OS id");
    assert!(
        matches!(err, VpsClientError::Api { status: 400, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("2136"),
        "the error names the valid ids: {err}"
    );

    let mut bad_port = request(&tag);
    bad_port.ports.push(0);
    let err = client.create_instance(&bad_port).await.expect_err("port 0");
    assert!(
        matches!(err, VpsClientError::Api { status: 400, .. }),
        "{err}"
    );

    let mut bad_key = request(&tag);
    bad_key
        .ssh_key_ids
        .push(SshKeyId::parse("lvps-key-0000000000000000").expect("valid id"));
    let err = client
        .create_instance(&bad_key)
        .await
        .expect_err("unknown key");
    assert!(
        matches!(
            err,
            VpsClientError::NotFound {
                kind: "SSH key",
                ..
            }
        ),
        "{err}"
    );

    let mut bad_snapshot = request(&tag);
    bad_snapshot.snapshot =
        Some(VpsSnapshotId::parse("lvps-snap-0000000000000000").expect("valid id"));
    let err = client
        .create_instance(&bad_snapshot)
        .await
        .expect_err("unknown snapshot");
    assert!(
        matches!(
            &err,
            VpsClientError::NotFound { kind: "snapshot", id } if id == "lvps-snap-0000000000000000"
        ),
        "{err}"
    );

    assert!(
        client
            .list_instances(Some(&tag))
            .await
            .expect("list")
            .is_empty()
    );

    for key in [
        "",
        "ssh-ed25519",
        "not a key at all",
        "ssh-ed25519 AAAA\nssh-rsa BBBB",
    ] {
        let err = client.upload_ssh_key("k", key).await.expect_err(key);
        assert!(
            matches!(err, VpsClientError::Api { status: 400, .. }),
            "{key:?}: {err}"
        );
    }
    assert!(
        client.upload_ssh_key(" ", KEY).await.is_err(),
        "an empty name is refused"
    );
    assert!(client.list_ssh_keys().await.expect("list").is_empty());
}

#[tokio::test]
async fn state_is_shared_through_docker_and_separated_by_account() {
    let client = client();
    let _guard = Guard::new(&client);
    let other = common::client();
    let _other_guard = Guard::new(&other);
    let tag = run_tag();

    let key = client.upload_ssh_key("shared", KEY).await.expect("upload");
    let mut req = request(&tag);
    req.ssh_key_ids.push(key.clone());
    let id = client.create_instance(&req).await.expect("create");

    // A fresh client object with the same labels sees both.
    let twin = twin(&client);
    let listed = twin.list_instances(Some(&tag)).await.expect("list");
    assert_eq!(listed.iter().map(|i| &i.id).collect::<Vec<_>>(), [&id]);
    assert_eq!(listed[0].label, "requests");
    assert_eq!(listed[0].tags, std::slice::from_ref(&tag));
    let keys = twin.list_ssh_keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (
            keys[0].id.clone(),
            keys[0].name.as_str(),
            keys[0].public_key.as_str()
        ),
        (key.clone(), "shared", KEY)
    );

    // Another account sees nothing of it, and cannot touch it.
    assert!(
        other
            .list_instances(Some(&tag))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(other.list_ssh_keys().await.expect("keys").is_empty());
    assert!(matches!(
        other.get_instance(&id).await,
        Err(VpsClientError::NotFound { .. })
    ));
    other
        .destroy_instance(&id)
        .await
        .expect("a foreign id is already gone for it");
    twin.get_instance(&id)
        .await
        .expect("still there for its own account");

    // The twin destroys what the first client made.
    twin.destroy_instance(&id).await.expect("destroy");
    twin.delete_ssh_key(&key).await.expect("delete key");
    assert_nothing_left(&id);
    assert!(client.list_ssh_keys().await.expect("keys").is_empty());
}

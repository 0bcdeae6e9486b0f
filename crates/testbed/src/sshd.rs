//! OpenSSH's sshd in a container, started by testcontainers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use testcontainers::bollard::models::PortBinding;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::{Image, KeyPair, RUN_LABEL, image, run_id};

/// A running sshd container. Removed when dropped.
pub struct Sshd {
    /// The container (testcontainers removes it on drop).
    pub container: ContainerAsync<GenericImage>,
    /// Where sshd listens: 127.0.0.1 and a port Docker chose.
    pub addr: SocketAddr,
    /// The host key sshd presents (pin its public half).
    pub host_key: KeyPair,
    /// The key root accepts.
    pub client_key: KeyPair,
}

/// Starts sshd with fresh host and client keys, port 22 published on 127.0.0.1 only.
///
/// # Panics
/// When the image cannot be built or the container does not start.
pub async fn start_sshd() -> Sshd {
    let tag = image(Image::Sshd);
    let (name, version) = tag
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("test bed: image tag {tag} has no version"));
    let host_key = KeyPair::generate();
    let client_key = KeyPair::generate();
    let container = GenericImage::new(name, version)
        .with_exposed_port(22.tcp())
        .with_wait_for(WaitFor::message_on_stderr("Server listening on"))
        .with_label(RUN_LABEL, run_id())
        .with_env_var("SSH_AUTHORIZED_KEYS", client_key.public_openssh())
        .with_env_var("SSH_HOST_ED25519_KEY", host_key.private_openssh_base64())
        .with_host_config_modifier(|hc| {
            // testcontainers publishes on 0.0.0.0 by default: bind 127.0.0.1 only.
            hc.publish_all_ports = Some(false);
            hc.port_bindings = Some(HashMap::from([(
                "22/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        })
        .start()
        .await
        .unwrap_or_else(|e| panic!("test bed: starting sshd container: {e}"));
    let port = container
        .get_host_port_ipv4(22.tcp())
        .await
        .unwrap_or_else(|e| panic!("test bed: sshd port: {e}"));
    Sshd {
        container,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        host_key,
        client_key,
    }
}

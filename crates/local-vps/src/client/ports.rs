//! Which ports a fake VPS publishes, and where Docker put them. Pure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use docker_ssh::ContainerInfo;
use vps_client::{CreateInstanceRequest, VpsClientError};

use super::errors::invalid;

/// The VPS port every instance publishes, requested or not (as every cloud VPS has it).
pub(super) const SSH_PORT: u16 = 22;

/// The ports to publish for `request`: 22 first, then the requested ones without
/// repeats; port 0 is refused.
pub(super) fn ports_to_publish(
    request: &CreateInstanceRequest,
) -> Result<Vec<u16>, VpsClientError> {
    let mut ports = vec![SSH_PORT];
    for port in &request.ports {
        if *port == 0 {
            return Err(invalid("port 0 cannot be published"));
        }
        if !ports.contains(port) {
            ports.push(*port);
        }
    }
    Ok(ports)
}

/// Where `port` of the container is published on this machine, if it is.
pub(super) fn published(c: &ContainerInfo, port: u16) -> Option<SocketAddr> {
    let bindings = c
        .network_settings
        .ports
        .get(&format!("{port}/tcp"))?
        .as_ref()?;
    bindings.iter().find_map(|b| {
        let ip: IpAddr = match b.host_ip.as_str() {
            "" | "0.0.0.0" => Ipv4Addr::LOCALHOST.into(),
            other => other.parse().ok()?,
        };
        let host_port: u16 = b.host_port.parse().ok()?;
        ip.is_ipv4().then_some(SocketAddr::new(ip, host_port))
    })
}

/// Every published port of `c`, with where it is published.
pub(super) fn published_all(c: &ContainerInfo) -> Vec<(u16, SocketAddr)> {
    let mut all: Vec<(u16, SocketAddr)> = c
        .network_settings
        .ports
        .keys()
        .filter_map(|k| k.strip_suffix("/tcp")?.parse::<u16>().ok())
        .filter_map(|port| Some((port, published(c, port)?)))
        .collect();
    all.sort_unstable();
    all
}

/// The ports of `c` that are published, for messages.
pub(super) fn published_ports(c: &ContainerInfo) -> Vec<String> {
    c.network_settings
        .ports
        .iter()
        .filter(|(_, b)| b.as_ref().is_some_and(|b| !b.is_empty()))
        .map(|(k, _)| k.trim_end_matches("/tcp").to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_are_read_from_inspect() {
        let c: ContainerInfo = serde_json::from_str(
            r#"{"Id":"x","Name":"/lvps-1","NetworkSettings":{"Ports":{
                "22/tcp":[{"HostIp":"127.0.0.1","HostPort":"49153"}],
                "2222/tcp":[{"HostIp":"::1","HostPort":"49154"},{"HostIp":"127.0.0.1","HostPort":"49155"}],
                "80/tcp":null}}}"#,
        )
        .expect("parses");
        assert_eq!(
            published(&c, 22),
            Some("127.0.0.1:49153".parse().expect("addr"))
        );
        assert_eq!(
            published(&c, 2222),
            Some("127.0.0.1:49155".parse().expect("addr"))
        );
        assert_eq!(published(&c, 80), None);
        assert_eq!(published(&c, 81), None);
        assert_eq!(published_ports(&c), ["22", "2222"]);
        assert_eq!(
            published_all(&c),
            [
                (22, "127.0.0.1:49153".parse().expect("addr")),
                (2222, "127.0.0.1:49155".parse().expect("addr"))
            ]
        );
    }
}

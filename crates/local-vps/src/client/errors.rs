//! How failures become [`VpsClientError`]s: what was being done and, when the engine
//! itself is the problem, what to do about it.

use docker_ssh::{DockerError, ExecError, ImageTransferError};
use local_vps_images::{Image, ImageError};
use vps_client::VpsClientError;
use vps_primitives::VpsInstanceId;

pub(super) fn not_found(kind: &'static str, id: impl ToString) -> VpsClientError {
    VpsClientError::NotFound {
        kind,
        id: id.to_string(),
    }
}

pub(super) fn invalid(message: impl Into<String>) -> VpsClientError {
    VpsClientError::Api {
        status: 400,
        message: message.into(),
    }
}

/// A failed Docker command, with what was being done and, when the engine itself is the
/// problem, what to do about it.
pub(super) fn engine_error(
    what: impl std::fmt::Display,
    e: impl Into<DockerError>,
) -> VpsClientError {
    let e = e.into();
    let text = e.to_string();
    let hint = match &e {
        DockerError::Exec(ExecError::Io { .. }) => " (is the `docker` CLI installed and on PATH?)",
        _ if text.contains("Cannot connect to the Docker daemon") => {
            " (is the Docker engine running? check `docker info`)"
        }
        _ if text.contains("non-overlapping IPv4 address pool") => {
            " (each local VPS has a network of its own and the engine's address pools are \
             used up: destroy unused VPSes, or widen `default-address-pools` in daemon.json)"
        }
        _ => "",
    };
    VpsClientError::Backend {
        message: format!("local-vps: {what} failed: {text}{hint}"),
        source: Some(Box::new(e)),
    }
}

/// A failed listing or inspect: output Docker printed that cannot be read is an invalid
/// response, anything else an engine error.
pub(super) fn read_error(what: &str, e: DockerError) -> VpsClientError {
    match e {
        DockerError::Parse { source, .. } => VpsClientError::InvalidResponse(format!(
            "local-vps: {what} printed something unexpected: {source}"
        )),
        e => engine_error(what, e),
    }
}

pub(super) fn image_error(image: Image, e: ImageError) -> VpsClientError {
    VpsClientError::Backend {
        message: format!(
            "local-vps: the image {} is missing and could not be built: {e}",
            image.name()
        ),
        source: Some(Box::new(e)),
    }
}

/// A failed [`preload_image`](super::LocalVpsClient::preload_image): the transfer error
/// names the image and both engines; a failed load most often means the VPS's engine is
/// not up yet.
pub(super) fn transfer_error(id: &VpsInstanceId, e: ImageTransferError) -> VpsClientError {
    let hint = match &e {
        ImageTransferError::Load { .. } => " (is Docker running in the VPS yet?)",
        _ => "",
    };
    VpsClientError::Backend {
        message: format!("local-vps: loading an image into {id} failed: {e}{hint}"),
        source: Some(Box::new(e)),
    }
}

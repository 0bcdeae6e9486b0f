//! `Docker::copy_image_to` against the real local engine, with two executors: what is
//! decided before any byte is sent (the image is missing here; the destination has it
//! with the same id). The streaming copy itself is tested onto fake VPSes, whose engines
//! are separate (`local-vps`'s end-to-end tests: over SSH, and through `docker exec`).

use std::sync::Arc;

use docker_ssh::{Docker, DockerCli, ImageTransfer, ImageTransferError, LocalExecutor};
use testbed::Image;

fn local() -> Docker {
    Docker::new(Arc::new(LocalExecutor::new()))
}

#[tokio::test]
async fn an_image_the_destination_has_with_the_same_id_is_not_sent() {
    let base = testbed::image(Image::Base);
    let id = testbed::docker(&["image", "inspect", "--format", "{{.Id}}", &base]);
    // A second executor and CLI value on the same engine: it has the image already.
    let dest = Docker::with_cli(Arc::new(LocalExecutor::new()), DockerCli::new());
    let done = local()
        .copy_image_to(&base, &dest)
        .await
        .expect("copy_image_to");
    assert_eq!(
        done,
        ImageTransfer::AlreadyPresent {
            id: id.trim().to_owned()
        }
    );
    assert!(!done.copied());
}

#[tokio::test]
async fn a_missing_image_is_reported_before_anything_runs_on_the_destination() {
    let missing = format!("mngr-no-such-image:{:016x}", rand::random::<u64>());
    // The destination's `docker` does not exist: it must not even be asked.
    let dest = Docker::with_cli(
        Arc::new(LocalExecutor::new()),
        DockerCli::with_program("/nonexistent/docker"),
    );
    let err = local()
        .copy_image_to(&missing, &dest)
        .await
        .expect_err("nothing to copy");
    assert!(
        matches!(&err, ImageTransferError::NotFound { image, .. } if *image == missing),
        "{err}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
}

#[tokio::test]
async fn a_destination_that_cannot_be_asked_fails_before_the_save() {
    let base = testbed::image(Image::Base);
    let dest = Docker::with_cli(
        Arc::new(LocalExecutor::new()),
        DockerCli::with_program("/nonexistent/docker"),
    );
    let err = local()
        .copy_image_to(&base, &dest)
        .await
        .expect_err("the destination is unusable");
    assert!(
        matches!(&err, ImageTransferError::Inspect { on, .. } if on == "local"),
        "{err}"
    );
}

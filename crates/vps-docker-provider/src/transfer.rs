//! Streams an image from one engine to another (`docker save | docker load`), without
//! holding it in memory.

use docker_ssh::{Docker, DockerError};
use tokio::io::AsyncWriteExt;

/// Copies `image` from `from` (this machine's engine) to `to` (a VPS's).
pub(crate) async fn copy_image(from: &Docker, to: &Docker, image: &str) -> Result<(), DockerError> {
    let (mut writer, mut reader) = tokio::io::duplex(1 << 20);
    let save = async {
        let result = from.save(image, &mut writer).await;
        // End the stream either way, so the load sees EOF.
        let _ = writer.shutdown().await;
        drop(writer);
        result
    };
    let load = async move {
        let result = to.load(&mut reader).await;
        // A load that ends early (a failure) drops its end, so the save fails instead of
        // blocking on a full pipe.
        drop(reader);
        result
    };
    let (saved, loaded) = tokio::join!(save, load);
    // The load's error says more than the save's broken pipe.
    loaded?;
    saved?;
    Ok(())
}

//! Copying an image from one Docker engine to another: `docker save` on the source,
//! streamed into `docker load` on the destination, skipped when the destination already
//! has the image with the same id.

use super::{Docker, DockerError, ObjectKind};
use crate::command::ExitStatus;
use crate::error::ExecError;

/// How much of the image stream is in flight between `docker save` and `docker load`:
/// the copy holds at most this much of the image in memory, whatever its size.
const PIPE_BUFFER: usize = 256 * 1024;

/// What [`Docker::copy_image_to`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageTransfer {
    /// The destination already had the image with the same id: nothing was sent.
    AlreadyPresent {
        /// The image id (`sha256:…`).
        id: String,
    },
    /// The image was streamed into the destination.
    Copied {
        /// The id of the source's image (`sha256:…`).
        id: String,
        /// What `docker load` reported (`repo:tag` references, or image ids).
        loaded: Vec<String>,
    },
}

impl ImageTransfer {
    /// The image id (`sha256:…`).
    pub fn id(&self) -> &str {
        match self {
            Self::AlreadyPresent { id } | Self::Copied { id, .. } => id,
        }
    }

    /// Whether the image was sent (false: the destination had it already).
    pub fn copied(&self) -> bool {
        matches!(self, Self::Copied { .. })
    }
}

/// [`Docker::copy_image_to`] failed. Each variant names the image and both engines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageTransferError {
    /// The source has no such image, so there is nothing to copy.
    #[error("cannot copy image {image} from {from} to {to}: {from} has no such image")]
    NotFound {
        /// The image reference.
        image: String,
        /// The source engine's executor.
        from: String,
        /// The destination engine's executor.
        to: String,
    },
    /// Looking the image up (`docker image inspect`) failed on one side.
    #[error(
        "cannot copy image {image} from {from} to {to}: looking it up on {on} failed: {source}"
    )]
    Inspect {
        /// The image reference.
        image: String,
        /// The source engine's executor.
        from: String,
        /// The destination engine's executor.
        to: String,
        /// The side whose lookup failed.
        on: String,
        /// The failed command.
        #[source]
        source: DockerError,
    },
    /// `docker save` on the source failed (and the destination loaded nothing usable).
    #[error("copying image {image} from {from} to {to}: `docker save` failed: {source}")]
    Save {
        /// The image reference.
        image: String,
        /// The source engine's executor.
        from: String,
        /// The destination engine's executor.
        to: String,
        /// The failed command.
        #[source]
        source: DockerError,
    },
    /// `docker load` on the destination failed (is its engine running? enough disk?).
    #[error("copying image {image} from {from} to {to}: `docker load` failed: {source}")]
    Load {
        /// The image reference.
        image: String,
        /// The source engine's executor.
        from: String,
        /// The destination engine's executor.
        to: String,
        /// The failed command.
        #[source]
        source: DockerError,
    },
}

impl Docker {
    /// Copies `image` from this Docker engine to `dest`'s: `docker save IMAGE` here,
    /// streamed as it is produced into `docker load` there (at most a few hundred KiB of
    /// the image is held in memory, whatever its size), e.g. from a
    /// [`LocalExecutor`](crate::LocalExecutor) to an [`SshPool`](crate::SshPool) of a VPS,
    /// where nothing can be pulled.
    ///
    /// Nothing is sent when `dest` already has `image` with the same id (`docker image
    /// inspect`'s `.Id` on both sides): the result is then
    /// [`ImageTransfer::AlreadyPresent`]. Both commands keep their default timeouts
    /// (`docker save` and `docker load`: [`PULL_TIMEOUT`](crate::PULL_TIMEOUT)).
    ///
    /// ```no_run
    /// # async fn demo(pool: docker_ssh::SshPool) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use docker_ssh::{Docker, LocalExecutor};
    /// let here = Docker::new(Arc::new(LocalExecutor::new()));
    /// let vps = Docker::new(Arc::new(pool));
    /// let done = here.copy_image_to("my-agent:latest", &vps).await?;
    /// println!("{} on the VPS (sent: {})", done.id(), done.copied());
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        skip(self, dest),
        fields(from = %self.executor().target(), to = %dest.executor().target())
    )]
    pub async fn copy_image_to(
        &self,
        image: &str,
        dest: &Docker,
    ) -> Result<ImageTransfer, ImageTransferError> {
        let from = self.executor().target();
        let to = dest.executor().target();
        let inspect_error = |on: &str, source| ImageTransferError::Inspect {
            image: image.to_owned(),
            from: from.clone(),
            to: to.clone(),
            on: on.to_owned(),
            source,
        };
        let Some(id) = self
            .image_id(image)
            .await
            .map_err(|e| inspect_error(&from, e))?
        else {
            return Err(ImageTransferError::NotFound {
                image: image.to_owned(),
                from: from.clone(),
                to: to.clone(),
            });
        };
        let there = dest
            .image_id(image)
            .await
            .map_err(|e| inspect_error(&to, e))?;
        if there.as_deref() == Some(id.as_str()) {
            tracing::debug!(%id, "the destination has the image already");
            return Ok(ImageTransfer::AlreadyPresent { id });
        }

        // Each side drops its end of the pipe when done, so the other sees EOF (or a
        // broken pipe) and stops too.
        let (mut tar_in, mut tar_out) = tokio::io::duplex(PIPE_BUFFER);
        let save = async move {
            let saved = self.save(image, &mut tar_in).await;
            drop(tar_in);
            saved
        };
        let load = async move {
            let loaded = dest.load(&mut tar_out).await;
            drop(tar_out);
            loaded
        };
        let (saved, loaded) = tokio::join!(save, load);
        let (image, from, to) = (image.to_owned(), from, to);
        match blame(saved, loaded) {
            Ok(loaded) => {
                tracing::info!(%id, ?loaded, "image copied");
                Ok(ImageTransfer::Copied { id, loaded })
            }
            Err(Failed::Save(source)) => Err(ImageTransferError::Save {
                image,
                from,
                to,
                source,
            }),
            Err(Failed::Load(source)) => Err(ImageTransferError::Load {
                image,
                from,
                to,
                source,
            }),
        }
    }

    /// The id of `image` (`docker inspect --type image --format {{.Id}}`), or `None`.
    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        let id = self
            .inspect_format(ObjectKind::Image, image, "{{.Id}}")
            .await?;
        Ok(id.filter(|id| !id.is_empty()))
    }
}

/// The side of a failed copy that caused it.
#[derive(Debug)]
enum Failed {
    Save(DockerError),
    Load(DockerError),
}

/// What `docker load` reported, or which side's failure to report. When both failed, the
/// save is the cause if it exited with an error code of its own (a missing image, a full
/// disk: the load then only saw its stream end early); otherwise the load is (a save that
/// could not write its stream, or was killed by `SIGPIPE`, only saw its reader go away).
fn blame(
    saved: Result<(), DockerError>,
    loaded: Result<Vec<String>, DockerError>,
) -> Result<Vec<String>, Failed> {
    match (saved, loaded) {
        (Ok(()), Ok(loaded)) => Ok(loaded),
        (Err(save), Err(_)) if exited_with_code(&save) => Err(Failed::Save(save)),
        (_, Err(load)) => Err(Failed::Load(load)),
        (Err(save), Ok(_)) => Err(Failed::Save(save)),
    }
}

fn exited_with_code(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::Exec(ExecError::Failed {
            status: ExitStatus::Code(_),
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: ExitStatus) -> DockerError {
        DockerError::Exec(ExecError::Failed {
            target: "local".into(),
            command: "docker save x".into(),
            status,
            excerpt: "boom".into(),
        })
    }

    fn broken_pipe() -> DockerError {
        DockerError::Exec(ExecError::Io {
            target: "local".into(),
            command: "docker save x".into(),
            source: std::io::ErrorKind::BrokenPipe.into(),
        })
    }

    #[test]
    fn the_side_that_failed_first_is_blamed() {
        let loaded = || Ok(vec!["x:1".to_owned()]);
        assert_eq!(blame(Ok(()), loaded()).expect("copied"), ["x:1"]);
        // The save exited with an error: the load's early end is a consequence.
        let err = blame(Err(failed(ExitStatus::Code(1))), Err(broken_pipe()));
        assert!(matches!(err, Err(Failed::Save(_))), "{err:?}");
        // The save only lost its reader (an I/O error, or SIGPIPE): the load is the cause.
        let err = blame(Err(broken_pipe()), Err(failed(ExitStatus::Code(1))));
        assert!(matches!(err, Err(Failed::Load(_))), "{err:?}");
        let err = blame(
            Err(failed(ExitStatus::Signal("PIPE".into()))),
            Err(failed(ExitStatus::Code(1))),
        );
        assert!(matches!(err, Err(Failed::Load(_))), "{err:?}");
        // One side alone.
        let err = blame(Ok(()), Err(failed(ExitStatus::Code(1))));
        assert!(matches!(err, Err(Failed::Load(_))), "{err:?}");
        let err = blame(Err(failed(ExitStatus::Code(1))), loaded());
        assert!(matches!(err, Err(Failed::Save(_))), "{err:?}");
    }
}

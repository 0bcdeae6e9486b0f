//! Images saved ahead: `docker save` of a local image started when a create begins, into
//! an anonymous temporary file, so that the copy to the VPS (`docker load` over the pooled
//! connection) does not wait for the save once the VPS answers.
//!
//! On Docker 20.10 and later `docker save` writes nothing until it has exported the whole
//! image (2.2 s for the 191 MB host image on the 2-core test VM), and `docker load` reads
//! its whole input before it loads anything, so a plain `docker save | docker load` costs
//! the two one after the other. Saving while the VPS boots takes the save off the create's
//! path; the load then streams the file.
//!
//! The file is unlinked from its creation (`tempfile::tempfile`): nothing is left on disk
//! if the process dies. One saved image per reference is kept for the life of the provider
//! value and shared by its concurrent creates; a saved image whose id no longer matches the
//! local image (rebuilt since) is saved again.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex};

use docker_ssh::{Docker, DockerError, LocalExecutor, ObjectKind};
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::io::AsyncWriteExt as _;

use crate::error::StepError;

/// How much of the file one read takes (and the pipe into `docker load` holds).
const CHUNK: usize = 1 << 20;

/// One local image, saved into an anonymous file.
#[derive(Debug)]
pub(crate) struct SavedImage {
    /// The image id at the time of the save (`sha256:…`).
    id: String,
    file: Arc<File>,
    len: u64,
}

type Saving = Shared<BoxFuture<'static, Result<Arc<SavedImage>, Arc<String>>>>;

/// The saves of one provider value, by image reference.
#[derive(Default)]
pub(crate) struct ImageSpool {
    saves: Mutex<HashMap<String, Saving>>,
}

impl std::fmt::Debug for ImageSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let images: Vec<String> = self
            .saves
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("ImageSpool")
            .field("images", &images)
            .finish()
    }
}

impl ImageSpool {
    /// Starts saving `image` from this machine's engine in the background, unless a save of
    /// it is under way or done. Does nothing when there is no Tokio runtime.
    pub(crate) fn prefetch(&self, image: &str) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let saving = self.saving(image, false);
        tokio::spawn(async move {
            if let Err(e) = saving.await {
                tracing::debug!(error = %e, "saving an image ahead failed; the copy saves it again");
            }
        });
    }

    /// `image` saved, with the local image's current id: the prefetched save when it
    /// matches, else a new one. `Ok(None)`: this machine's engine has no such image.
    pub(crate) async fn get(&self, image: &str) -> Result<Option<Arc<SavedImage>>, StepError> {
        let local = local_docker();
        let Some(id) = image_id(&local, image).await? else {
            return Ok(None);
        };
        if let Ok(saved) = self.saving(image, false).await
            && saved.id == id
        {
            return Ok(Some(saved));
        }
        let saved = self
            .saving(image, true)
            .await
            .map_err(|e| StepError::Check(e.to_string()))?;
        Ok(Some(saved))
    }

    /// The save of `image`, started if there is none (or `fresh`: a new one replaces it).
    fn saving(&self, image: &str, fresh: bool) -> Saving {
        let mut saves = match self.saves.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !fresh && let Some(s) = saves.get(image) {
            return s.clone();
        }
        let owned = image.to_owned();
        let saving = async move { save(&owned).await.map(Arc::new).map_err(Arc::new) }
            .boxed()
            .shared();
        saves.insert(image.to_owned(), saving.clone());
        saving
    }
}

fn local_docker() -> Docker {
    Docker::new(Arc::new(LocalExecutor::new()))
}

async fn image_id(docker: &Docker, image: &str) -> Result<Option<String>, DockerError> {
    Ok(docker
        .inspect_format(ObjectKind::Image, image, "{{.Id}}")
        .await?
        .filter(|id| !id.is_empty()))
}

/// `docker save IMAGE` into a new anonymous file.
async fn save(image: &str) -> Result<SavedImage, String> {
    let docker = local_docker();
    let id = image_id(&docker, image)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("this machine's Docker engine has no image {image}"))?;
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| format!("the temporary-file task failed: {e}"))?
        .map_err(|e| format!("cannot make a temporary file to save {image} into: {e}"))?;
    let mut sink = tokio::fs::File::from_std(
        file.try_clone()
            .map_err(|e| format!("cannot use the temporary file: {e}"))?,
    );
    docker
        .save(image, &mut sink)
        .await
        .map_err(|e| e.to_string())?;
    sink.flush()
        .await
        .map_err(|e| format!("writing the saved image: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("reading the saved image's size: {e}"))?
        .len();
    tracing::debug!(%image, %id, bytes = len, "image saved ahead");
    Ok(SavedImage {
        id,
        file: Arc::new(file),
        len,
    })
}

impl SavedImage {
    /// Loads the saved image into `dest` (`docker load`, its input streamed from the file
    /// with positional reads, so several loads of one file may run at once).
    pub(crate) async fn load_into(&self, dest: &Docker) -> Result<(), StepError> {
        let (mut writer, mut reader) = tokio::io::duplex(CHUNK);
        let (file, len) = (self.file.clone(), self.len);
        let feed = async move {
            let mut offset = 0u64;
            while offset < len {
                let f = file.clone();
                let (buf, n) = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; CHUNK];
                    f.read_at(&mut buf, offset).map(|n| (buf, n))
                })
                .await
                .map_err(std::io::Error::other)??;
                if n == 0 {
                    break;
                }
                writer.write_all(&buf[..n]).await?;
                offset += n as u64;
            }
            writer.shutdown().await
        };
        let load = async move {
            let loaded = dest.load(&mut reader).await;
            // A load that ends early drops its end, so the feed stops too.
            drop(reader);
            loaded
        };
        let (fed, loaded) = tokio::join!(feed, load);
        // The load's error says more than the feed's broken pipe.
        loaded?;
        fed.map_err(|e| StepError::Check(format!("reading the saved image: {e}")))?;
        Ok(())
    }
}

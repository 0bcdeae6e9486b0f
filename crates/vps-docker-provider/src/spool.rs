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

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use docker_ssh::{Docker, DockerError, Executor as _, LocalExecutor, ObjectKind, check_output};
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::StepError;

/// How much of the file one read takes.
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

/// `docker save IMAGE` into a new anonymous file: the `docker` process writes the file
/// itself (its stdout is the file), so the 191 MB of the host image never pass through
/// this process.
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
    let stdout = file
        .try_clone()
        .map_err(|e| format!("cannot use the temporary file: {e}"))?;
    let cmd = docker.cli().save(image);
    let exec = LocalExecutor::new();
    let out = exec
        .run_into_file(&cmd, stdout)
        .await
        .map_err(|e| e.to_string())?;
    check_output(&exec.target(), &cmd, out).map_err(|e| e.to_string())?;
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
    /// Loads the saved image into `dest` (`docker load`, its input read from the file
    /// with positional reads, so several loads of one file may run at once).
    pub(crate) async fn load_into(&self, dest: &Docker) -> Result<(), StepError> {
        let mut reader = FileReader::new(self.file.clone(), self.len);
        dest.load(&mut reader).await?;
        Ok(())
    }
}

/// Reads `len` bytes of a shared file from its start, a chunk at a time, with positional
/// reads on the blocking pool (the file's own offset is shared by its clones, so plain
/// reads would mix up concurrent loads). One chunk buffer is reused throughout.
struct FileReader {
    file: Arc<File>,
    /// The file offset of the next chunk.
    offset: u64,
    len: u64,
    /// The current chunk, and how much of it has been read out.
    buf: Vec<u8>,
    pos: usize,
    pending: Option<tokio::task::JoinHandle<(Vec<u8>, std::io::Result<usize>)>>,
}

impl FileReader {
    fn new(file: Arc<File>, len: u64) -> Self {
        Self {
            file,
            offset: 0,
            len,
            buf: Vec::new(),
            pos: 0,
            pending: None,
        }
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.buf.len() {
                let n = out.remaining().min(this.buf.len() - this.pos);
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            let handle = match &mut this.pending {
                Some(handle) => handle,
                None if this.offset >= this.len => return Poll::Ready(Ok(())),
                None => {
                    let mut buf = std::mem::take(&mut this.buf);
                    let want = CHUNK.min(usize::try_from(this.len - this.offset).unwrap_or(CHUNK));
                    buf.resize(want, 0);
                    let (file, offset) = (this.file.clone(), this.offset);
                    this.pending.insert(tokio::task::spawn_blocking(move || {
                        let read = file.read_at(&mut buf, offset);
                        (buf, read)
                    }))
                }
            };
            let joined = ready!(Pin::new(handle).poll(cx));
            this.pending = None;
            let (mut buf, read) = joined.map_err(std::io::Error::other)?;
            let n = read?;
            if n == 0 {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the saved image ends at {} of its {} bytes (the temporary file was cut short)",
                        this.offset, this.len
                    ),
                )));
            }
            buf.truncate(n);
            this.offset += n as u64;
            this.buf = buf;
            this.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use tokio::io::AsyncReadExt as _;

    use super::*;

    fn file_with(bytes: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(bytes).expect("write");
        Arc::new(f)
    }

    #[tokio::test]
    async fn file_reader_reads_the_whole_file_across_chunks_and_concurrently() {
        let bytes: Vec<u8> = (0..(2 * CHUNK + 12_345)).map(|i| (i % 251) as u8).collect();
        let file = file_with(&bytes);
        let len = bytes.len() as u64;
        let read = |file: Arc<File>| async move {
            let mut out = Vec::new();
            FileReader::new(file, len)
                .read_to_end(&mut out)
                .await
                .expect("read");
            out
        };
        let (a, b) = tokio::join!(read(file.clone()), read(file.clone()));
        assert!(
            a == bytes && b == bytes,
            "both readers see every byte in order"
        );
    }

    #[tokio::test]
    async fn file_reader_reports_a_file_shorter_than_said() {
        let file = file_with(b"short");
        let mut out = Vec::new();
        let err = FileReader::new(file, 10)
            .read_to_end(&mut out)
            .await
            .expect_err("cut short");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(
            err.to_string().contains("ends at 5 of its 10 bytes"),
            "{err}"
        );
    }
}

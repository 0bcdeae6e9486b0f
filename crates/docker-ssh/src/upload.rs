//! Uploads: a local directory as a tar stream over one channel (for Docker build
//! contexts), honouring a `.dockerignore`-like exclude list; or any byte stream to a file.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::command::Command;
use crate::error::ExecError;
use crate::executor::{Executor, check_output};
use crate::glob::glob_match;
use vps_primitives::quote;

/// Default limit for one upload.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(900);

/// An upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// Reading the local files failed.
    #[error("could not read {} for upload: {source}", path.display())]
    Local {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The remote side failed (connection, timeout, or `tar`/`cat` exited non-zero).
    #[error("upload failed: {0}")]
    Remote(#[from] ExecError),
    /// Reading the stream given to [`upload_stream`] failed; nothing was installed at the
    /// remote path and the temporary file was removed.
    #[error("could not read the stream to upload to {remote_path}: {source}")]
    Stream {
        /// Where the stream was going.
        remote_path: String,
        /// The read error.
        #[source]
        source: io::Error,
    },
}

/// Size of an upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Bytes sent (the tar stream for directories).
    pub bytes: u64,
    /// Regular files sent (0 for a byte stream).
    pub files: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    segments: Vec<String>,
    negated: bool,
}

/// Paths to leave out of an upload, with `.dockerignore` semantics: one pattern per line,
/// `#` comments, `*`/`?`/`[...]` within a path segment, `**` across segments, a leading
/// `/` is ignored, a pattern matching a directory excludes everything under it, and a
/// later `!pattern` re-includes. The last matching rule wins.
///
/// ```
/// use docker_ssh::ExcludeList;
/// let ex = ExcludeList::parse("# build junk\nnode_modules\n**/*.pyc\n!keep.pyc\n");
/// assert!(ex.is_excluded("node_modules/x/index.js"));
/// assert!(ex.is_excluded("src/deep/a.pyc"));
/// assert!(!ex.is_excluded("keep.pyc"));
/// assert!(!ex.is_excluded("src/main.py"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExcludeList {
    rules: Vec<Rule>,
}

impl ExcludeList {
    /// Nothing excluded.
    pub fn none() -> Self {
        Self::default()
    }

    /// From patterns (`!` prefix to re-include).
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::default();
        for p in patterns {
            list.push(p.as_ref());
        }
        list
    }

    /// From the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Self {
        Self::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
    }

    /// The `.dockerignore` of `dir`, or nothing excluded if it has none.
    pub fn from_dockerignore(dir: &Path) -> Result<Self, UploadError> {
        let path = dir.join(".dockerignore");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::none()),
            Err(source) => Err(UploadError::Local { path, source }),
        }
    }

    /// Adds a pattern.
    pub fn push(&mut self, pattern: &str) {
        let (negated, p) = match pattern.trim().strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, pattern.trim()),
        };
        let segments: Vec<String> = p
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_owned)
            .collect();
        if !segments.is_empty() {
            self.rules.push(Rule { segments, negated });
        }
    }

    fn has_negations(&self) -> bool {
        self.rules.iter().any(|r| r.negated)
    }

    /// Whether `path` (relative to the uploaded directory, `/`-separated) is left out.
    pub fn is_excluded(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for rule in &self.rules {
            // A rule matching the path or one of its parent directories applies.
            let hit = (1..=parts.len()).any(|n| segments_match(&rule.segments, &parts[..n]));
            if hit {
                excluded = !rule.negated;
            }
        }
        excluded
    }
}

fn segments_match(pattern: &[String], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=parts.len()).any(|skip| segments_match(rest, &parts[skip..]))
        }
        Some((first, rest)) => match parts.split_first() {
            Some((part, tail)) => glob_match(first, part, true) && segments_match(rest, tail),
            None => false,
        },
    }
}

/// Shared state between the tar thread and the reader.
#[derive(Default)]
struct TarState {
    error: Option<(PathBuf, io::Error)>,
    files: u64,
}

/// An `AsyncRead` of a tar archive of a directory, produced on a blocking thread as it is
/// read (the tree is never held in memory). Create it with [`tar_dir`].
pub struct TarStream {
    rx: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    offset: usize,
    state: Arc<Mutex<TarState>>,
    bytes: u64,
}

impl std::fmt::Debug for TarStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarStream")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl TarStream {
    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The local error that cut the archive short, if any (taken once).
    pub fn take_error(&self) -> Option<(PathBuf, io::Error)> {
        self.state.lock().ok()?.error.take()
    }

    fn files(&self) -> u64 {
        self.state.lock().map(|s| s.files).unwrap_or(0)
    }
}

impl AsyncRead for TarStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.offset < self.pending.len() {
                let n = buf.remaining().min(self.pending.len() - self.offset);
                let start = self.offset;
                buf.put_slice(&self.pending[start..start + n]);
                self.offset += n;
                self.bytes += n as u64;
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    self.pending = chunk;
                    self.offset = 0;
                }
                Poll::Ready(None) => {
                    let failed = self.state.lock().map(|s| s.error.is_some()).unwrap_or(true);
                    return Poll::Ready(if failed {
                        Err(io::Error::other("reading the local files failed"))
                    } else {
                        Ok(())
                    });
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Sends what the tar builder writes to the reader, in chunks.
struct ChunkSender(mpsc::Sender<Vec<u8>>);

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload was abandoned"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams a tar archive of `dir`'s contents (paths relative to `dir`), leaving out what
/// `excludes` excludes. Symlinks are archived as links; sockets, FIFOs and devices are
/// skipped. Must be called inside a Tokio runtime.
pub fn tar_dir(dir: &Path, excludes: &ExcludeList) -> TarStream {
    let (tx, rx) = mpsc::channel(8);
    let state = Arc::new(Mutex::new(TarState::default()));
    let thread_state = state.clone();
    let dir = dir.to_owned();
    let excludes = excludes.clone();
    tokio::task::spawn_blocking(move || {
        let writer = BufWriter::with_capacity(256 * 1024, ChunkSender(tx));
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        let mut files = 0u64;
        let mut writer = None;
        let result = append_tree(&mut builder, &dir, Path::new(""), &excludes, &mut files)
            .and_then(|()| {
                let mut w = builder.into_inner().map_err(|e| (dir.clone(), e))?;
                w.flush().map_err(|e| (dir.clone(), e))?;
                writer = Some(w);
                Ok(())
            });
        // Record the outcome before the writer is dropped: dropping it ends the stream,
        // and the reader looks at this state when it sees the end.
        if let Ok(mut s) = thread_state.lock() {
            s.files = files;
            if let Err((path, e)) = result
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                s.error = Some((path, e));
            }
        }
        drop(writer);
    });
    TarStream {
        rx,
        pending: Vec::new(),
        offset: 0,
        state,
        bytes: 0,
    }
}

type TreeResult = Result<(), (PathBuf, io::Error)>;

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    excludes: &ExcludeList,
    files: &mut u64,
) -> TreeResult {
    let dir = root.join(rel);
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(&dir)
        .map_err(|e| (dir.clone(), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| (dir.clone(), e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel_path = rel.join(entry.file_name());
        let full = root.join(&rel_path);
        let rel_text = rel_path.to_string_lossy().replace('\\', "/");
        let kind = entry.file_type().map_err(|e| (full.clone(), e))?;
        let excluded = excludes.is_excluded(&rel_text);
        if kind.is_dir() {
            if !excluded {
                builder
                    .append_path_with_name(&full, &rel_path)
                    .map_err(|e| (full.clone(), e))?;
            }
            // An excluded directory may still hold re-included files.
            if !excluded || excludes.has_negations() {
                append_tree(builder, root, &rel_path, excludes, files)?;
            }
        } else if excluded {
            continue;
        } else if kind.is_file() || kind.is_symlink() {
            builder
                .append_path_with_name(&full, &rel_path)
                .map_err(|e| (full.clone(), e))?;
            if kind.is_file() {
                *files += 1;
            }
        }
    }
    Ok(())
}

/// Uploads the contents of local directory `local_dir` into `remote_dir` (created if
/// missing; existing files are overwritten, others kept) as one tar stream over one
/// command: `tar -x` on the remote side. Paths matching `excludes` stay local. Takes at
/// most [`UPLOAD_TIMEOUT`].
///
/// ```no_run
/// # async fn demo(pool: &docker_ssh::SshPool) -> Result<(), docker_ssh::UploadError> {
/// use std::path::Path;
/// use docker_ssh::{ExcludeList, upload_dir};
/// let ctx = Path::new("./build-context");
/// let stats = upload_dir(pool, ctx, "/tmp/mngr-build", &ExcludeList::from_dockerignore(ctx)?).await?;
/// println!("sent {} files, {} bytes", stats.files, stats.bytes);
/// # Ok(()) }
/// ```
pub async fn upload_dir(
    exec: &(impl Executor + ?Sized),
    local_dir: &Path,
    remote_dir: &str,
    excludes: &ExcludeList,
) -> Result<UploadStats, UploadError> {
    let meta = tokio::fs::metadata(local_dir)
        .await
        .map_err(|source| UploadError::Local {
            path: local_dir.to_owned(),
            source,
        })?;
    if !meta.is_dir() {
        return Err(UploadError::Local {
            path: local_dir.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let q = quote(remote_dir);
    let cmd = Command::script(format!(
        "mkdir -p -- {q} && tar -x -f - -C {q} --no-same-owner"
    ))
    .timeout(UPLOAD_TIMEOUT);
    let mut stream = tar_dir(local_dir, excludes);
    let result = exec.run_with_stdin(&cmd, &mut stream).await;
    // A local read error explains whatever the remote side then said.
    if let Some((path, source)) = stream.take_error() {
        return Err(UploadError::Local { path, source });
    }
    check_output(&exec.target(), &cmd, result?)?;
    Ok(UploadStats {
        bytes: stream.bytes_read(),
        files: stream.files(),
    })
}

/// Length of the end marker [`upload_stream`] sends after the data: a 32-hex-digit nonce
/// and the data's length in 20 decimal digits. The remote side installs the file only if
/// the stream ends with exactly this marker, so a stream cut short (a local read error, a
/// dropped connection: both end in a plain EOF on the remote side) never replaces the
/// file.
const END_MARKER_LEN: usize = 52;

/// The remote script of [`upload_stream`]: a new private temporary file (mode 0600,
/// created with `noclobber`, so an existing file or symlink at that name is never
/// written through), removed on any failure, checked and cut free of its end marker,
/// then renamed into place.
fn upload_script(dir: &str, tmp: &str, dest: &str, nonce: &str) -> String {
    format!(
        r#"dest={dest}; tmp={tmp}
mkdir -p -- {dir} || exit
if [ -d "$dest" ]; then echo "upload: $dest is a directory" >&2; exit 1; fi
umask 077
set -C
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP INT TERM PIPE
cat > "$tmp" || exit
size=$(wc -c < "$tmp") && len=$((size - {END_MARKER_LEN})) && [ "$len" -ge 0 ] \
  && [ "$(tail -c {END_MARKER_LEN} "$tmp")" = "{nonce}$(printf %020d "$len")" ] \
  || {{ echo "upload: the stream to $dest ended early; nothing was installed" >&2; exit 1; }}
dd if=/dev/null of="$tmp" bs=1 seek="$len" 2>/dev/null || exit
mv -f -- "$tmp" "$dest" || exit
trap - EXIT"#,
        dest = quote(dest),
        tmp = quote(tmp),
        dir = quote(dir),
    )
}

/// Streams `reader` into the remote file `remote_path` (its directory is created).
///
/// The file appears only when the whole stream has arrived, and then with mode 0600
/// (change it afterwards if others must read it): the data goes to a new temporary file
/// of a unique name in the same directory, which is renamed into place. Concurrent
/// uploads to one path each leave a whole file (the last rename wins); a file or symlink
/// that already has the temporary name is never written through; a failed upload (a
/// local read error, a timeout, a dropped connection) leaves nothing behind and the old
/// file, if any, untouched. `remote_path` must not be a directory.
pub async fn upload_stream(
    exec: &(impl Executor + ?Sized),
    reader: &mut (dyn AsyncRead + Send + Unpin),
    remote_path: &str,
) -> Result<UploadStats, UploadError> {
    let (dir, _) = remote_path.rsplit_once('/').unwrap_or((".", remote_path));
    let dir = if dir.is_empty() { "/" } else { dir };
    let nonce = format!("{:032x}", rand::random::<u128>());
    let tmp = format!("{remote_path}.upload-{}", &nonce[..16]);
    let cmd =
        Command::script(upload_script(dir, &tmp, remote_path, &nonce)).timeout(UPLOAD_TIMEOUT);
    let mut framed = FramedReader {
        inner: reader,
        payload: 0,
        marker: None,
        nonce,
        error: None,
    };
    let result = exec.run_with_stdin(&cmd, &mut framed).await;
    if result.is_err() {
        // Killed on timeout, or cut off: the remote cleanup may not have run.
        let rm = Command::argv(["rm", "-f", "--", &tmp]).timeout(Duration::from_secs(30));
        if let Err(e) = exec.run_checked(&rm).await {
            tracing::warn!(target = %exec.target(), %tmp, error = %e, "could not remove the temporary file of a failed upload");
        }
    }
    if let Some(source) = framed.error.take() {
        return Err(UploadError::Stream {
            remote_path: remote_path.to_owned(),
            source,
        });
    }
    check_output(&exec.target(), &cmd, result?)?;
    Ok(UploadStats {
        bytes: framed.payload,
        files: 0,
    })
}

/// Passes the caller's stream on and, once it has ended cleanly, the end marker (see
/// [`END_MARKER_LEN`]). A read error is passed on (the executor then ends stdin, without
/// a marker) and kept for the caller.
struct FramedReader<'a> {
    inner: &'a mut (dyn AsyncRead + Send + Unpin),
    /// Bytes of the caller's stream passed on.
    payload: u64,
    /// The end marker and how much of it is sent, once the stream has ended.
    marker: Option<(Vec<u8>, usize)>,
    nonce: String,
    error: Option<io::Error>,
}

impl AsyncRead for FramedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.marker.is_none() {
            let before = buf.filled().len();
            match Pin::new(&mut *self.inner).poll_read(cx, buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.error = Some(io::Error::new(e.kind(), e.to_string()));
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {
                    let added = buf.filled().len() - before;
                    if added > 0 {
                        self.payload += added as u64;
                        return Poll::Ready(Ok(()));
                    }
                    let marker = format!("{}{:020}", self.nonce, self.payload).into_bytes();
                    debug_assert_eq!(marker.len(), END_MARKER_LEN);
                    self.marker = Some((marker, 0));
                }
            }
        }
        if let Some((marker, sent)) = self.marker.as_mut() {
            let n = buf.remaining().min(marker.len() - *sent);
            buf.put_slice(&marker[*sent..*sent + n]);
            *sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_semantics() {
        let ex = ExcludeList::parse(
            "# comment\n\n/target\n*.log\ndocs/**/*.png\n.git\n!important.log\nbuild/\n",
        );
        let cases = [
            ("target", true),
            ("target/debug/x", true),
            ("src/target", false),
            ("a.log", true),
            ("important.log", false),
            ("sub/a.log", false),
            ("docs/a.png", true),
            ("docs/x/y/a.png", true),
            ("docs/a.jpg", false),
            (".git/HEAD", true),
            (".gitignore", false),
            ("build/out", true),
            ("README.md", false),
        ];
        for (path, want) in cases {
            assert_eq!(ex.is_excluded(path), want, "{path}");
        }
        assert!(!ExcludeList::none().is_excluded("anything"));
        let all_but = ExcludeList::new(["*", "!keep"]);
        assert!(all_but.is_excluded("x") && !all_but.is_excluded("keep"));
    }

    #[tokio::test]
    async fn tar_stream_holds_the_tree_minus_exclusions() {
        use tokio::io::AsyncReadExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        fs::create_dir_all(root.join("src/deep")).expect("mkdir");
        fs::create_dir_all(root.join("node_modules/pkg")).expect("mkdir");
        fs::write(root.join("src/deep/it's a file.txt"), "hello").expect("write");
        fs::write(root.join("node_modules/pkg/index.js"), "x").expect("write");
        fs::write(root.join("keep.log"), "k").expect("write");
        fs::write(root.join("drop.log"), "d").expect("write");
        std::os::unix::fs::symlink("src", root.join("link")).expect("symlink");
        let ex = ExcludeList::new(["node_modules", "*.log", "!keep.log"]);
        let mut stream = tar_dir(root, &ex);
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read");
        assert_eq!(stream.bytes_read(), bytes.len() as u64);
        assert_eq!(stream.files(), 2);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "keep.log",
                "link",
                "src",
                "src/deep",
                "src/deep/it's a file.txt"
            ]
        );
    }

    #[tokio::test]
    async fn local_read_errors_are_reported_as_local() {
        let exec = crate::LocalExecutor::new();
        let tmp = tempfile::tempdir().expect("tmp");
        let err = upload_dir(
            &exec,
            &tmp.path().join("missing"),
            &tmp.path().join("out").to_string_lossy(),
            &ExcludeList::none(),
        )
        .await
        .expect_err("missing dir");
        assert!(matches!(err, UploadError::Local { .. }), "{err}");
    }

    #[tokio::test]
    async fn upload_dir_and_stream_through_the_local_executor() {
        let exec = crate::LocalExecutor::new();
        let src = tempfile::tempdir().expect("tmp");
        let dst = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(src.path().join("a b/ü")).expect("mkdir");
        fs::write(src.path().join("a b/ü/\"q\".bin"), vec![7u8; 300_000]).expect("write");
        fs::write(src.path().join("skip.tmp"), "no").expect("write");
        let target = dst.path().join("ctx dir");
        let stats = upload_dir(
            &exec,
            src.path(),
            &target.to_string_lossy(),
            &ExcludeList::new(["*.tmp"]),
        )
        .await
        .expect("upload");
        assert_eq!(stats.files, 1);
        assert!(stats.bytes > 300_000);
        assert_eq!(
            fs::read(target.join("a b/ü/\"q\".bin")).expect("read"),
            vec![7u8; 300_000]
        );
        assert!(!target.join("skip.tmp").exists());

        let mut data: &[u8] = b"stream body";
        let file = dst.path().join("new dir/file.txt");
        let stats = upload_stream(&exec, &mut data, &file.to_string_lossy())
            .await
            .expect("upload");
        assert_eq!(stats.bytes, 11);
        assert_eq!(fs::read(&file).expect("read"), b"stream body");
    }
}

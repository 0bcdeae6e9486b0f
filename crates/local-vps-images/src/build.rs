//! Building images on the local engine with the `docker` CLI.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{INPUTS_LABEL, Image};

/// Lines of a failed command's output kept for the error message.
const TAIL_LINES: usize = 40;

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The `docker` CLI or the engine behind it did not answer.
    #[error(
        "no Docker engine answered (`docker {what}`: {detail}); start dockerd (e.g. `dockerd &`) and check `docker info`"
    )]
    EngineUnreachable {
        /// The docker subcommand that was tried.
        what: &'static str,
        /// What the CLI said.
        detail: String,
    },
    /// A program the build needs is not installed.
    #[error("`{program}` is not installed: {hint}")]
    MissingProgram {
        /// The program.
        program: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// A build step failed.
    #[error("building {tag} failed at `{step}` (exit {code:?}); last output:\n{tail}")]
    Step {
        /// The image being built.
        tag: String,
        /// The step, e.g. `debootstrap`.
        step: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its last lines of output.
        tail: String,
    },
    /// Reading or writing the build context failed.
    #[error("preparing the build of {tag}: {source}")]
    Io {
        /// The image being built.
        tag: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The placeholder a child image's Dockerfile uses in `FROM` for `parent`.
pub(crate) fn parent_placeholder(parent: Image) -> &'static str {
    match parent {
        Image::Base => "{{base}}",
        Image::FakeVpsFresh => "{{fresh}}",
        Image::Sshd | Image::FakeVps | Image::Host => "{{unused}}",
    }
}

/// Whether `tag` exists on the local engine.
pub fn image_present(tag: &str) -> Result<bool, ImageError> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .map_err(|e| ImageError::EngineUnreachable {
            what: "image inspect",
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such image") || stderr.contains("no such image") {
        Ok(false)
    } else {
        Err(ImageError::EngineUnreachable {
            what: "image inspect",
            detail: stderr.trim().to_owned(),
        })
    }
}

/// Makes sure `image` (and its parents) exist on the local engine, building what is
/// missing, and returns its tag. `progress` receives one line per step and the build
/// output. Concurrent callers (threads or processes) on one machine build each image once.
pub fn ensure_image(image: Image, progress: &mut dyn FnMut(&str)) -> Result<String, ImageError> {
    let tag = image.tag();
    // Fast path without the lock: nothing to build.
    if image_present(&tag)? {
        return Ok(tag);
    }
    let lock_path = std::env::temp_dir().join("mngr-local-vps-images.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&tag))?;
    lock.lock().map_err(io(&tag))?;
    let result = ensure_locked(image, progress);
    drop(lock); // closing the file releases the lock
    result
}

fn ensure_locked(image: Image, progress: &mut dyn FnMut(&str)) -> Result<String, ImageError> {
    let tag = image.tag();
    if image_present(&tag)? {
        return Ok(tag);
    }
    let parent_tag = match image.parent() {
        Some(parent) => Some((parent, ensure_locked(parent, progress)?)),
        None => None,
    };
    progress(&format!(
        "building image {tag} (first use; cached afterwards)"
    ));
    let started = std::time::Instant::now();
    match image {
        Image::Base => build_base(&tag, image, progress)?,
        _ => build_dockerfile(&tag, image, parent_tag, progress)?,
    }
    progress(&format!(
        "built {tag} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(tag)
}

fn io(tag: &str) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        tag: tag.to_owned(),
        source,
    }
}

fn write_inputs(dir: &Path, image: Image, replace: Option<(&str, &str)>) -> std::io::Result<()> {
    for (path, bytes) in image.inputs() {
        let target = dir.join(path);
        match replace {
            Some((from, to)) if *path == "Dockerfile" => {
                let text = String::from_utf8_lossy(bytes).replace(from, to);
                fs::write(&target, text)?;
            }
            _ => fs::write(&target, bytes)?,
        }
        let mode = if path.ends_with(".sh") { 0o755 } else { 0o644 };
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn build_base(tag: &str, image: Image, progress: &mut dyn FnMut(&str)) -> Result<(), ImageError> {
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(ImageError::MissingProgram {
            program: "debootstrap",
            hint: "apt-get install -y debootstrap (building the base image also needs root)",
        });
    }
    // /var/tmp: a root filesystem is too big for a small /tmp tmpfs.
    let work = tempfile::Builder::new()
        .prefix("mngr-local-rootfs-")
        .tempdir_in("/var/tmp")
        .map_err(io(tag))?;
    write_inputs(work.path(), image, None).map_err(io(tag))?;
    let rootfs = work.path().join("rootfs");
    progress("debootstrap --variant=minbase bookworm (about 30-60 s)");
    let mut cmd = Command::new("bash");
    cmd.arg(work.path().join("build-rootfs.sh")).arg(&rootfs);
    run_streamed(tag, "debootstrap", &mut cmd, progress)?;

    progress("docker import");
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "-C"])
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(tag))?;
    let tar_out = tar
        .stdout
        .take()
        .ok_or_else(|| io(tag)(std::io::Error::other("tar has no stdout")))?;
    let label = format!("LABEL {INPUTS_LABEL}={}", image.input_hash());
    let mut import = Command::new("docker");
    import
        .args([
            "import",
            "-c",
            "CMD [\"bash\"]",
            "-c",
            "ENV LANG=C.UTF-8",
            "-c",
        ])
        .arg(label)
        .args(["-m", "debootstrap --variant=minbase bookworm", "-", tag])
        .stdin(Stdio::from(tar_out));
    let imported = run_streamed(tag, "docker import", &mut import, progress);
    let tar_status = tar.wait().map_err(io(tag))?;
    imported?;
    if !tar_status.success() {
        let mut err = String::new();
        if let Some(mut e) = tar.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        // The import may have succeeded on a partial stream: never keep that image.
        let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
        return Err(ImageError::Step {
            tag: tag.to_owned(),
            step: "tar of the root filesystem".into(),
            code: tar_status.code(),
            tail: err,
        });
    }
    Ok(())
}

fn build_dockerfile(
    tag: &str,
    image: Image,
    parent: Option<(Image, String)>,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let ctx = tempfile::Builder::new()
        .prefix("mngr-local-build-")
        .tempdir()
        .map_err(io(tag))?;
    let replace = parent
        .as_ref()
        .map(|(p, t)| (parent_placeholder(*p), t.as_str()));
    write_inputs(ctx.path(), image, replace).map_err(io(tag))?;
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--rm", "--force-rm", "--label"])
        .arg(format!("{INPUTS_LABEL}={}", image.input_hash()))
        .args(["-t", tag])
        .arg(ctx.path());
    run_streamed(tag, "docker build", &mut cmd, progress)
}

/// Runs `cmd`, passing each line of its stdout to `progress` and keeping the last lines of
/// stdout and stderr for the error.
fn run_streamed(
    tag: &str,
    step: &str,
    cmd: &mut Command,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    tracing::debug!(?cmd, "image build step");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(tag))?;
    let stderr = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut tail = VecDeque::new();
        if let Some(err) = stderr {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        tail
    });
    let mut tail = VecDeque::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            progress(&line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status = child.wait().map_err(io(tag))?;
    let err_tail = stderr_reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let mut all: Vec<String> = tail.into_iter().collect();
    all.extend(err_tail);
    let start = all.len().saturating_sub(TAIL_LINES);
    Err(ImageError::Step {
        tag: tag.to_owned(),
        step: step.to_owned(),
        code: status.code(),
        tail: all[start..].join("\n"),
    })
}

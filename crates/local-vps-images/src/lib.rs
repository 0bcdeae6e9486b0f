//! Builds the Docker images behind `local-vps` and the test bed, on the local engine, with
//! no container registry: a Debian 12 base from `debootstrap` (imported with
//! `docker import`), and images built `FROM` it with `docker build`.
//!
//! | image | what it is |
//! |---|---|
//! | [`Image::Base`] | slim Debian 12, like the official `debian:bookworm-slim` |
//! | [`Image::Sshd`] | OpenSSH server whose keys come from the environment (SSH tests) |
//! | [`Image::FakeVpsFresh`] | a fresh Debian 12 VPS: systemd, sshd, real cloud-init (NoCloud), iptables, a metadata service at 169.254.169.254 serving the seed's user_data; Docker's packages cached, not installed |
//! | [`Image::FakeVps`] | the same with Docker installed and enabled, like a cloud's Docker image |
//! | [`Image::Host`] | the default host container of the `local` provider: slim Debian 12 with sshd and the tools a host needs (no SSH host keys of its own) |
//!
//! Every build input lives in this crate (`images/`), compiled in. An image is tagged with
//! a hash of its inputs and of its parent's tag, so a changed input gives a new tag and an
//! unchanged one is never rebuilt:
//!
//! ```no_run
//! use local_vps_images::{Image, ensure_image};
//! let tag = ensure_image(Image::FakeVps, &mut |line| eprintln!("{line}"))?;
//! println!("fake VPS image: {tag}");
//! # Ok::<(), local_vps_images::ImageError>(())
//! ```
//!
//! Building the base image needs root, `debootstrap` and a reachable Debian mirror;
//! the others need only the engine. Run options for a fake VPS, which differ between
//! engines that allow `--privileged` and those that don't, come from [`Privilege`].

mod build;
mod privilege;

pub use build::{ImageError, ensure_image, image_present};
pub use privilege::{PRIVILEGE_ENV, Privilege, fake_vps_run_args};

use sha2::{Digest, Sha256};

/// Repository part of every tag this crate makes.
pub const REPOSITORY_PREFIX: &str = "mngr-local";

/// Label put on every image this crate builds (value: the input hash).
pub const INPUTS_LABEL: &str = "com.imbue.mngr.image-inputs";

/// One of the images this crate builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Image {
    /// Slim Debian 12 from debootstrap.
    Base,
    /// OpenSSH server for SSH tests.
    Sshd,
    /// Fresh Debian 12 VPS without Docker.
    FakeVpsFresh,
    /// Debian 12 VPS with Docker preinstalled (the fast default).
    FakeVps,
    /// Host container image: Debian 12 with sshd and the host's tool set.
    Host,
}

/// One build input: a path in the build context and its bytes.
type Input = (&'static str, &'static [u8]);

macro_rules! inputs {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(($file, include_bytes!(concat!("../images/", $dir, "/", $file)) as &[u8])),*]
    };
}

impl Image {
    /// Every image, parents before children.
    pub const ALL: [Image; 5] = [
        Image::Base,
        Image::Sshd,
        Image::FakeVpsFresh,
        Image::FakeVps,
        Image::Host,
    ];

    /// The short name, used in the tag: `mngr-local/<name>:<hash>`.
    pub fn name(self) -> &'static str {
        match self {
            Image::Base => "debian-base",
            Image::Sshd => "sshd",
            Image::FakeVpsFresh => "fake-vps-fresh",
            Image::FakeVps => "fake-vps",
            Image::Host => "host",
        }
    }

    /// The image this one is built `FROM`.
    pub fn parent(self) -> Option<Image> {
        match self {
            Image::Base => None,
            Image::Sshd | Image::FakeVpsFresh | Image::Host => Some(Image::Base),
            Image::FakeVps => Some(Image::FakeVpsFresh),
        }
    }

    fn inputs(self) -> &'static [Input] {
        match self {
            Image::Base => inputs!("base": "build-rootfs.sh"),
            Image::Sshd => inputs!("sshd": "Dockerfile", "entrypoint.sh"),
            Image::FakeVpsFresh => {
                inputs!("fake-vps-fresh":
                    "Dockerfile",
                    "99-fake-vps.cfg",
                    "pre-init.sh",
                    "metadata-net.sh",
                    "metadata-server.py",
                    "fake-vps-metadata.service",
                )
            }
            Image::FakeVps => inputs!("fake-vps": "Dockerfile"),
            Image::Host => inputs!("host": "Dockerfile"),
        }
    }

    /// The first 16 hex digits of the SHA-256 of this image's inputs and its parent's tag.
    pub fn input_hash(self) -> String {
        let mut h = Sha256::new();
        h.update(b"local-vps-images recipe v1\0");
        h.update(self.name().as_bytes());
        h.update([0]);
        if let Some(parent) = self.parent() {
            h.update(parent.tag().as_bytes());
            h.update([0]);
        }
        for (path, bytes) in self.inputs() {
            h.update(path.as_bytes());
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        hex::encode(h.finalize())[..16].to_owned()
    }

    /// The full tag, e.g. `mngr-local/fake-vps:0123456789abcdef`.
    pub fn tag(self) -> String {
        format!("{REPOSITORY_PREFIX}/{}:{}", self.name(), self.input_hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_distinct_and_chained() {
        let tags: Vec<String> = Image::ALL.iter().map(|i| i.tag()).collect();
        for (i, t) in tags.iter().enumerate() {
            assert!(t.starts_with("mngr-local/"), "{t}");
            assert_eq!(t.rsplit(':').next().map(str::len), Some(16), "{t}");
            assert_eq!(*t, Image::ALL[i].tag(), "tag must be deterministic");
            for u in &tags[i + 1..] {
                assert_ne!(t, u);
            }
        }
        assert_eq!(Image::FakeVps.parent(), Some(Image::FakeVpsFresh));
        assert_eq!(Image::Base.parent(), None);
    }

    #[test]
    fn dockerfiles_build_from_their_parent_placeholder() {
        for image in Image::ALL {
            let Some(parent) = image.parent() else {
                continue;
            };
            let dockerfile = image
                .inputs()
                .iter()
                .find(|(p, _)| *p == "Dockerfile")
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let placeholder = build::parent_placeholder(parent);
            assert!(
                dockerfile.contains(&format!("FROM {placeholder}")),
                "{image:?} must build FROM {placeholder}"
            );
        }
    }
}

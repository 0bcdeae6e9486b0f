//! Cleanup by label: the one place that removes every Docker object carrying a label
//! (`cargo xtask clean`, the test bed, and `local-vps`'s tests all use it).

use crate::command::{Command, CommandBody};

use super::{DEFAULT_TIMEOUT, Docker, DockerError};

/// What [`Docker::remove_labelled`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Containers (with their anonymous volumes).
    pub containers: usize,
    /// Volumes.
    pub volumes: usize,
    /// Networks.
    pub networks: usize,
    /// Images.
    pub images: usize,
}

impl Removed {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} container(s), {} volume(s), {} network(s), {} image(s)",
            self.containers, self.volumes, self.networks, self.images
        )
    }
}

/// The four kinds of object, in the order they are removed: containers first (they hold
/// volumes, networks and images), images last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Container,
    Volume,
    Network,
    Image,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Container, Kind::Volume, Kind::Network, Kind::Image];

    /// `docker … ls` words that print one id or name a line, before the filter.
    fn list(self) -> &'static [&'static str] {
        match self {
            Kind::Container => &["ps", "-a", "-q", "--no-trunc"],
            Kind::Volume => &["volume", "ls", "-q"],
            Kind::Network => &["network", "ls", "-q", "--no-trunc"],
            Kind::Image => &["image", "ls", "-q", "--no-trunc"],
        }
    }

    /// `docker … rm` words, before the ids.
    fn remove(self) -> &'static [&'static str] {
        match self {
            // -v: also the container's anonymous volumes.
            Kind::Container => &["rm", "-f", "-v"],
            Kind::Volume => &["volume", "rm", "-f"],
            Kind::Network => &["network", "rm"],
            Kind::Image => &["image", "rm", "-f"],
        }
    }
}

/// `label=KEY` (any value) or `label=KEY=VALUE`.
fn label_filter(key: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("label={key}={v}"),
        None => format!("label={key}"),
    }
}

fn list_command(program: &str, kind: Kind, filter: &str) -> Command {
    let mut argv = vec![program];
    argv.extend(kind.list());
    argv.extend(["--filter", filter]);
    Command::argv(argv).timeout(DEFAULT_TIMEOUT).idempotent()
}

/// `docker … rm [flags] -- IDS…`: the ids come from Docker's own listing; `--` keeps any
/// of them from being read as a flag all the same.
fn remove_command(program: &str, kind: Kind, ids: &[String]) -> Command {
    let mut argv: Vec<&str> = vec![program];
    argv.extend(kind.remove());
    argv.push("--");
    argv.extend(ids.iter().map(String::as_str));
    Command::argv(argv).timeout(DEFAULT_TIMEOUT)
}

/// Ids (or names) one a line, blank lines and repeats dropped (`docker image ls` lists an
/// image once per tag).
fn ids(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in super::parse::parse_lines(stdout) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl Docker {
    /// Removes every container (forced, with its anonymous volumes), then every volume,
    /// network and image that carries label `key` (with any value when `value` is
    /// `None`, else exactly `key=value`), and says how many of each it removed.
    ///
    /// For cleanup after tests and test runs: an object removed meanwhile by someone else
    /// is no error, but anything Docker refuses (e.g. a network still used by a container
    /// without the label) is.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use docker_ssh::{Docker, LocalExecutor};
    ///
    /// # async fn demo() -> Result<(), docker_ssh::DockerError> {
    /// let docker = Docker::new(Arc::new(LocalExecutor::new()));
    /// let removed = docker.remove_labelled("com.imbue.mngr.test-run", Some("ci-42")).await?;
    /// println!("removed {removed}");
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip(self), fields(target = %self.executor().target()))]
    pub async fn remove_labelled(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Removed, DockerError> {
        let program = self.program();
        let filter = label_filter(key, value);
        let mut removed = Removed::default();
        for kind in Kind::ALL {
            let listed = ids(&self
                .checked(&list_command(&program, kind, &filter))
                .await?
                .stdout_text());
            if listed.is_empty() {
                continue;
            }
            let cmd = remove_command(&program, kind, &listed);
            let out = self.executor().run(&cmd).await?;
            // Gone meanwhile (removed with its container, or by a parallel cleanup).
            if !out.success() && !super::parse::is_no_such_object(&out.stderr_text()) {
                crate::executor::check_output(&self.executor().target(), &cmd, out)?;
            }
            let count = listed.len();
            match kind {
                Kind::Container => removed.containers = count,
                Kind::Volume => removed.volumes = count,
                Kind::Network => removed.networks = count,
                Kind::Image => removed.images = count,
            }
        }
        tracing::debug!(%removed, "removed by label");
        Ok(removed)
    }

    /// The `docker` program the command builder runs (its first word).
    fn program(&self) -> String {
        match self.cli().server_version().body() {
            CommandBody::Argv(argv) if !argv.is_empty() => argv[0].clone(),
            _ => "docker".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &Command) -> String {
        cmd.command_line()
    }

    #[test]
    fn lists_each_kind_by_label_with_or_without_a_value() {
        let any = label_filter("com.imbue.mngr.test-run", None);
        let one = label_filter("com.imbue.mngr.test-run", Some("ci 42"));
        assert_eq!(any, "label=com.imbue.mngr.test-run");
        assert_eq!(one, "label=com.imbue.mngr.test-run=ci 42");
        let lines: Vec<String> = Kind::ALL
            .iter()
            .map(|k| words(&list_command("docker", *k, &one)))
            .collect();
        insta::assert_snapshot!(lines.join("\n"), @r"
        docker ps -a -q --no-trunc --filter 'label=com.imbue.mngr.test-run=ci 42'
        docker volume ls -q --filter 'label=com.imbue.mngr.test-run=ci 42'
        docker network ls -q --no-trunc --filter 'label=com.imbue.mngr.test-run=ci 42'
        docker image ls -q --no-trunc --filter 'label=com.imbue.mngr.test-run=ci 42'
        ");
    }

    #[test]
    fn removes_containers_with_their_volumes_and_ends_options_before_ids() {
        let ids = vec!["a1".to_owned(), "-v".to_owned()];
        let lines: Vec<String> = Kind::ALL
            .iter()
            .map(|k| words(&remove_command("/usr/bin/docker", *k, &ids)))
            .collect();
        insta::assert_snapshot!(lines.join("\n"), @r"
        /usr/bin/docker rm -f -v -- a1 -v
        /usr/bin/docker volume rm -f -- a1 -v
        /usr/bin/docker network rm -- a1 -v
        /usr/bin/docker image rm -f -- a1 -v
        ");
    }

    #[test]
    fn ids_are_one_a_line_without_repeats() {
        assert_eq!(
            ids("sha256:1\n\nsha256:2\nsha256:1\n"),
            ["sha256:1", "sha256:2"]
        );
        assert!(ids("").is_empty());
        assert!(Removed::default().is_empty());
        let some = Removed {
            containers: 1,
            volumes: 2,
            networks: 0,
            images: 3,
        };
        assert_eq!(
            some.to_string(),
            "1 container(s), 2 volume(s), 0 network(s), 3 image(s)"
        );
    }
}

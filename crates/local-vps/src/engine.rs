//! Docker commands `local-vps` needs that `docker-ssh`'s [`DockerCli`] does not build (yet):
//! `create`, `cp`, `network`, `volume ls`/`inspect` of several, `pause`, `commit` with
//! changes, attached `run --rm`. Pure argv building (no shell, so no quoting), run over the
//! same [`LocalExecutor`](docker_ssh::LocalExecutor) as the rest. Where the builder has the
//! options type ([`RunOptions`]), its argv is reused so both agree on every flag.

use std::collections::BTreeMap;
use std::time::Duration;

use docker_ssh::{Command, CommandBody, DEFAULT_TIMEOUT, DockerCli, RunOptions};
use serde::Deserialize;

const DOCKER: &str = "docker";

/// Long enough to copy a VPS's `/var/lib/docker` or to commit a big container.
pub(crate) const COPY_TIMEOUT: Duration = Duration::from_secs(900);

fn cmd<I, S>(args: I, timeout: Duration) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut argv = vec![DOCKER.to_owned()];
    argv.extend(args.into_iter().map(Into::into));
    Command::argv(argv).timeout(timeout)
}

/// `docker run -d …` from the builder with `-d` replaced by `replacement`.
fn run_variant(options: &RunOptions, replacement: &[&str], timeout: Duration) -> Command {
    let built = DockerCli::new().run(options);
    let CommandBody::Argv(argv) = built.body() else {
        unreachable!("DockerCli::run builds an argv")
    };
    // The builder emits `docker run -d --name …`.
    debug_assert_eq!(
        argv.get(1..3),
        Some(&["run".to_owned(), "-d".to_owned()][..])
    );
    let mut out: Vec<String> = replacement.iter().map(|s| (*s).to_owned()).collect();
    out.extend(argv.iter().skip(3).cloned());
    cmd(out, timeout)
}

/// `docker create …` with every option of `docker run -d`: the container exists but does
/// not run, so files can be copied in before its first boot.
pub(crate) fn create(options: &RunOptions) -> Command {
    run_variant(options, &["create"], DEFAULT_TIMEOUT)
}

/// `docker run --rm …` in the foreground: waits until the container exits.
pub(crate) fn run_attached(options: &RunOptions, timeout: Duration) -> Command {
    run_variant(options, &["run", "--rm"], timeout)
}

/// `docker cp SRC CONTAINER:DEST` (`SRC` ending in `/.` copies a directory's contents).
pub(crate) fn cp_into(src: &str, container: &str, dest: &str) -> Command {
    cmd(
        [
            "cp".to_owned(),
            src.to_owned(),
            format!("{container}:{dest}"),
        ],
        DEFAULT_TIMEOUT,
    )
}

/// `docker pause NAME` / `docker unpause NAME`.
pub(crate) fn pause(container: &str, pause: bool) -> Command {
    cmd(
        [if pause { "pause" } else { "unpause" }, container],
        DEFAULT_TIMEOUT,
    )
}

/// `docker commit --pause=false [--change C]… CONTAINER REF`; prints the image id.
pub(crate) fn commit(container: &str, reference: &str, changes: &[String]) -> Command {
    let mut a = vec!["commit".to_owned(), "--pause=false".to_owned()];
    for c in changes {
        a.extend(["--change".to_owned(), c.clone()]);
    }
    a.extend([container.to_owned(), reference.to_owned()]);
    cmd(a, COPY_TIMEOUT)
}

fn label_filters(filters: &[(String, String)]) -> Vec<String> {
    filters
        .iter()
        .flat_map(|(k, v)| ["--filter".to_owned(), format!("label={k}={v}")])
        .collect()
}

/// `docker network create --label K=V… NAME`.
pub(crate) fn network_create(name: &str, labels: &[(String, String)]) -> Command {
    let mut a = vec!["network".to_owned(), "create".to_owned()];
    for (k, v) in labels {
        a.extend(["--label".to_owned(), format!("{k}={v}")]);
    }
    a.push(name.to_owned());
    cmd(a, DEFAULT_TIMEOUT)
}

/// `docker network rm NAME…`.
pub(crate) fn network_rm(names: &[String]) -> Command {
    let mut a = vec!["network".to_owned(), "rm".to_owned()];
    a.extend(names.iter().cloned());
    cmd(a, DEFAULT_TIMEOUT)
}

/// `docker network ls -q --no-trunc --filter label=K=V…`: one network id a line.
pub(crate) fn network_ls(filters: &[(String, String)]) -> Command {
    let mut a = vec![
        "network".to_owned(),
        "ls".to_owned(),
        "-q".to_owned(),
        "--no-trunc".to_owned(),
    ];
    a.extend(label_filters(filters));
    cmd(a, DEFAULT_TIMEOUT)
}

/// `docker volume ls -q --filter label=K=V…`: one volume name a line.
pub(crate) fn volume_ls(filters: &[(String, String)]) -> Command {
    let mut a = vec!["volume".to_owned(), "ls".to_owned(), "-q".to_owned()];
    a.extend(label_filters(filters));
    cmd(a, DEFAULT_TIMEOUT)
}

/// `docker volume inspect NAME…`: a JSON array (see [`parse_volumes`]).
pub(crate) fn volume_inspect(names: &[String]) -> Command {
    let mut a = vec!["volume".to_owned(), "inspect".to_owned()];
    a.extend(names.iter().cloned());
    cmd(a, DEFAULT_TIMEOUT)
}

/// `docker save IMAGE` (the tar goes to stdout).
pub(crate) fn save_argv(image: &str) -> Vec<String> {
    vec![DOCKER.to_owned(), "save".to_owned(), image.to_owned()]
}

/// One volume as `docker volume inspect` reports it (the parts read here).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct VolumeInfo {
    /// Its name.
    pub name: String,
    /// Its labels.
    #[serde(deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

fn null_as_empty<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// Parses `docker volume inspect` output.
pub(crate) fn parse_volumes(stdout: &str) -> Result<Vec<VolumeInfo>, serde_json::Error> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(trimmed)
}

/// The non-empty lines of `-q` output.
pub(crate) fn lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use docker_ssh::{PortMapping, VolumeMount};

    use super::*;

    #[test]
    fn create_and_attached_run_reuse_the_run_builder() {
        let opts = RunOptions::new("img:1", "lvps-1")
            .port(PortMapping::new(22).host_ip([127, 0, 0, 1].into()))
            .volume(VolumeMount::new("lvps-1-docker", "/var/lib/docker"))
            .label("k", "v w")
            .extra_args(["--hostname", "h"]);
        insta::assert_snapshot!(create(&opts).command_line(), @"docker create --name lvps-1 -p 127.0.0.1::22 -v lvps-1-docker:/var/lib/docker --label 'k=v w' --hostname h img:1");
        let helper = RunOptions::new("base", "h1").args(["cp", "-a", "/a/.", "/b/"]);
        insta::assert_snapshot!(run_attached(&helper, COPY_TIMEOUT).command_line(), @"docker run --rm --name h1 base cp -a /a/. /b/");
    }

    #[test]
    fn other_commands() {
        let f = [("com.x".to_owned(), "a=b".to_owned())];
        insta::assert_snapshot!(network_ls(&f).command_line(), @"docker network ls -q --no-trunc --filter label=com.x=a=b");
        insta::assert_snapshot!(volume_ls(&f).command_line(), @"docker volume ls -q --filter label=com.x=a=b");
        insta::assert_snapshot!(network_create("n", &f).command_line(), @"docker network create --label com.x=a=b n");
        insta::assert_snapshot!(cp_into("/tmp/x/.", "c", "/seed/").command_line(), @"docker cp /tmp/x/. c:/seed/");
        insta::assert_snapshot!(commit("c", "r:t", &["LABEL a=b".to_owned()]).command_line(), @"docker commit --pause=false --change 'LABEL a=b' c r:t");
        assert_eq!(pause("c", false).command_line(), "docker unpause c");
    }

    #[test]
    fn volume_inspect_output_parses() {
        let out = r#"[{"CreatedAt":"2026-11-30T05:00:00Z","Driver":"local","Labels":{"a":"1"},"Name":"v1"},
                      {"CreatedAt":"2026-11-30T05:00:01Z","Labels":null,"Name":"v2"}]"#;
        let v = parse_volumes(out).expect("parses");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels.get("a").map(String::as_str), Some("1"));
        assert!(v[1].labels.is_empty());
        assert_eq!(v[1].created_at, "2026-11-30T05:00:01Z");
        assert!(parse_volumes("  ").expect("empty").is_empty());
        assert!(parse_volumes("{").is_err());
        assert_eq!(lines("a\n\n b \n"), ["a", "b"]);
    }
}

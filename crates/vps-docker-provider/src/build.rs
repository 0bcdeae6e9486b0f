//! Building the host's image on the VPS from a local build context.
//!
//! The build args that are not `--vps-` args go to `docker build` on the VPS. The last
//! positional arg is the local build context (a directory); it is uploaded as one tar
//! stream honouring its `.dockerignore` into a temporary directory on the VPS, built there
//! with the tag `mngr-build-<host id>`, and the directory is removed afterwards (also when
//! the build fails). `-f X`, `-f=X`, `--file X` and `--file=X` name the Dockerfile; a
//! relative path is resolved inside the context (upstream's rule, not the Docker CLI's,
//! since the context is what is uploaded). Everything is checked here before anything is
//! created: the context must be a directory and the Dockerfile a file inside it.

use std::path::{Component, Path, PathBuf};

use docker_ssh::{
    BuildContext, BuildOptions, Command, Docker, ExcludeList, OutputStream, quote, upload_dir,
};
use vps_primitives::HostId;

use crate::error::{ProviderError, StepError};
use crate::step::{Progress, Step};

/// Flags of `docker build` that take their value in the next arg (`--flag value`), so that
/// the value is not mistaken for the build context. `-f`/`--file` are handled apart.
pub const VALUE_FLAGS: &[&str] = &[
    "-t",
    "--tag",
    "--build-arg",
    "--label",
    "--target",
    "--platform",
    "--network",
    "--cache-from",
    "--cache-to",
    "--secret",
    "--ssh",
    "--add-host",
    "--iidfile",
    "--progress",
    "--shm-size",
    "-m",
    "--memory",
    "--memory-swap",
    "--cpu-shares",
    "-c",
    "--cpuset-cpus",
    "--cpuset-mems",
    "--cpu-period",
    "--cpu-quota",
    "--ulimit",
    "--build-context",
    "--output",
    "-o",
    "--isolation",
    "--cgroup-parent",
    "--security-opt",
];

/// The `docker build` args of a create, read but not yet checked against the file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerBuildArgs {
    /// The build context as given (the last positional arg).
    pub context: String,
    /// The Dockerfile as given (`-f`/`--file`), if any.
    pub dockerfile: Option<String>,
    /// Every other arg, in order.
    pub rest: Vec<String>,
}

/// Reads the `docker build` args (the build args left after the `--vps-` ones). `Ok(None)`
/// when there are none: no build. Errors name the offending arg.
pub fn parse_docker_build_args(args: &[String]) -> Result<Option<DockerBuildArgs>, ProviderError> {
    if args.is_empty() {
        return Ok(None);
    }
    let invalid = |m: String| Err(ProviderError::InvalidInput(m));
    let mut positional = Vec::new();
    let mut dockerfile = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let file_value = if arg == "-f" || arg == "--file" {
            match it.next() {
                Some(v) => Some(v.clone()),
                None => return invalid(format!("build arg {arg} needs a value (the Dockerfile)")),
            }
        } else {
            arg.strip_prefix("--file=")
                .or_else(|| arg.strip_prefix("-f="))
                .map(str::to_owned)
        };
        if let Some(v) = file_value {
            if v.is_empty() || v == "-" {
                return invalid(format!(
                    "build arg {arg} {v:?}: name a Dockerfile inside the build context (a Dockerfile on stdin is not supported)"
                ));
            }
            dockerfile = Some(v);
        } else if VALUE_FLAGS.contains(&arg.as_str()) {
            rest.push(arg.clone());
            match it.next() {
                Some(v) => rest.push(v.clone()),
                None => return invalid(format!("build arg {arg} needs a value")),
            }
        } else if arg.starts_with('-') && arg != "-" {
            rest.push(arg.clone());
        } else {
            positional.push(arg.clone());
        }
    }
    match positional.as_slice() {
        [] => invalid(format!(
            "the build args {args:?} name no build context: give a local directory as the last build arg"
        )),
        [context] => Ok(Some(DockerBuildArgs {
            context: context.clone(),
            dockerfile,
            rest,
        })),
        many => invalid(format!(
            "the build args name more than one build context ({many:?}); give exactly one local directory (a flag's value must follow its flag, or use --flag=value)"
        )),
    }
}

/// A build checked against the file system: what to upload and what to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildPlan {
    /// The local context directory.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context, `/`-separated.
    pub dockerfile: String,
    /// The other `docker build` args, in order.
    pub rest: Vec<String>,
}

/// Checks `args` against the file system (relative paths from `cwd`): the context must be
/// a directory, the Dockerfile (default `Dockerfile`) a file inside it.
pub fn check_build(args: DockerBuildArgs, cwd: &Path) -> Result<BuildPlan, ProviderError> {
    let context = cwd.join(&args.context);
    if !context.is_dir() {
        return Err(ProviderError::InvalidInput(format!(
            "the build context {:?} is not a directory ({})",
            args.context,
            if context.exists() {
                "it is a file"
            } else {
                "it does not exist"
            }
        )));
    }
    let given = args.dockerfile.unwrap_or_else(|| "Dockerfile".to_owned());
    let relative = match Path::new(&given).strip_prefix(&context) {
        Ok(inside) => inside.to_path_buf(),
        Err(_) if Path::new(&given).is_absolute() => {
            let canonical = Path::new(&given)
                .canonicalize()
                .ok()
                .zip(context.canonicalize().ok())
                .and_then(|(f, c)| f.strip_prefix(c).ok().map(Path::to_path_buf));
            match canonical {
                Some(inside) => inside,
                None => {
                    return Err(ProviderError::InvalidInput(format!(
                        "the Dockerfile {given:?} is not inside the build context {:?}; only the context is uploaded",
                        args.context
                    )));
                }
            }
        }
        Err(_) => PathBuf::from(&given),
    };
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ProviderError::InvalidInput(format!(
            "the Dockerfile {given:?} must be a path inside the build context {:?}, without `..`",
            args.context
        )));
    }
    if !context.join(&relative).is_file() {
        return Err(ProviderError::InvalidInput(format!(
            "the Dockerfile {given:?} does not exist in the build context {:?}",
            args.context
        )));
    }
    let dockerfile = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    Ok(BuildPlan {
        context,
        dockerfile,
        rest: args.rest,
    })
}

/// Reads and checks the `docker build` args of a create: `Ok(None)` when there are none.
pub fn plan_build(args: &[String]) -> Result<Option<BuildPlan>, ProviderError> {
    let Some(parsed) = parse_docker_build_args(args)? else {
        return Ok(None);
    };
    let cwd = std::env::current_dir().map_err(|e| {
        ProviderError::InvalidInput(format!(
            "cannot resolve the build context: no current directory ({e})"
        ))
    })?;
    check_build(parsed, &cwd).map(Some)
}

/// The tag of the image built for a host.
pub fn build_tag(id: &HostId) -> String {
    format!("mngr-build-{id}")
}

/// The VPS directory a host's build context is uploaded to.
pub fn remote_build_dir(id: &HostId) -> String {
    format!("/tmp/mngr-build-{id}")
}

/// What the context's upload leaves out: its `.dockerignore`, except the Dockerfile
/// (which Docker always sends).
pub(crate) fn excludes(plan: &BuildPlan) -> Result<ExcludeList, StepError> {
    let mut excludes = ExcludeList::from_dockerignore(&plan.context)
        .map_err(|e| StepError::Check(format!("could not read the .dockerignore: {e}")))?;
    excludes.push(&format!("!{}", plan.dockerfile));
    Ok(excludes)
}

/// Uploads the context, builds `tag` on the VPS streaming the output to `progress` line by
/// line, and removes the uploaded directory whatever happened.
pub(crate) async fn build_on_vps(
    docker: &Docker,
    plan: &BuildPlan,
    id: &HostId,
    tag: &str,
    progress: &dyn Progress,
) -> Result<(), StepError> {
    let step = Step::Image;
    let remote = remote_build_dir(id);
    let excludes = excludes(plan)?;
    let exec = docker.executor();
    progress.output(
        step,
        &format!(
            "uploading the build context {} to the VPS",
            plan.context.display()
        ),
    );
    let built = async {
        let stats = upload_dir(exec.as_ref(), &plan.context, &remote, &excludes)
            .await
            .map_err(|e| StepError::Check(format!("uploading the build context failed: {e}")))?;
        tracing::info!(files = stats.files, bytes = stats.bytes, %remote, "build context uploaded");
        progress.output(step, &format!("building {tag} on the VPS"));
        let options = BuildOptions::new(tag, BuildContext::Dir(remote.clone()))
            .dockerfile(format!("{remote}/{}", plan.dockerfile))
            .extra_args(plan.rest.iter().cloned());
        let mut on_line = |_: OutputStream, line: &str| {
            if !line.trim().is_empty() {
                progress.output(step, line);
            }
        };
        docker.build(&options, None, &mut on_line).await?;
        Ok::<_, StepError>(())
    }
    .await;
    let cleanup = exec
        .run_checked(&Command::script(format!("rm -rf -- {}", quote(&remote))))
        .await;
    if let Err(e) = &cleanup {
        tracing::warn!(%remote, error = %e, "could not remove the build directory on the VPS");
    }
    built?;
    cleanup?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_build_args_table() {
        let ok = |a: &[&str]| {
            parse_docker_build_args(&args(a))
                .expect("valid")
                .expect("a build")
        };
        type Case<'a> = (&'a [&'a str], &'a str, Option<&'a str>, &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&["."], ".", None, &[]),
            (&["-f", "Dockerfile", "ctx"], "ctx", Some("Dockerfile"), &[]),
            (&["ctx", "-f", "Dockerfile"], "ctx", Some("Dockerfile"), &[]),
            (&["--file", "d/Df", "ctx"], "ctx", Some("d/Df"), &[]),
            (&["--file=a b/Df", "ctx"], "ctx", Some("a b/Df"), &[]),
            (&["-f=Df", "ctx"], "ctx", Some("Df"), &[]),
            (
                &["--build-arg", "A=1", "--no-cache", "ctx"],
                "ctx",
                None,
                &["--build-arg", "A=1", "--no-cache"],
            ),
            (
                &["--target", "prod", "-t", "x:1", "ctx"],
                "ctx",
                None,
                &["--target", "prod", "-t", "x:1"],
            ),
            (
                &["--build-arg=A=1", "ctx"],
                "ctx",
                None,
                &["--build-arg=A=1"],
            ),
            (&["-f", "a", "-f", "b", "ctx"], "ctx", Some("b"), &[]),
        ];
        for (input, context, dockerfile, rest) in cases {
            let parsed = ok(input);
            assert_eq!(parsed.context, *context, "{input:?}");
            assert_eq!(parsed.dockerfile.as_deref(), *dockerfile, "{input:?}");
            assert_eq!(parsed.rest, args(rest), "{input:?}");
        }
        assert_eq!(parse_docker_build_args(&[]).expect("none"), None);
    }

    #[test]
    fn bad_docker_build_args_name_the_problem() {
        let err = |a: &[&str]| {
            parse_docker_build_args(&args(a))
                .expect_err("invalid")
                .to_string()
        };
        assert!(err(&["-f"]).contains("needs a value"));
        assert!(err(&["--build-arg"]).contains("needs a value"));
        assert!(err(&["--no-cache"]).contains("no build context"));
        assert!(err(&["-f", "Dockerfile"]).contains("no build context"));
        assert!(err(&["a", "b"]).contains("more than one build context"));
        assert!(err(&["-f", "-", "ctx"]).contains("stdin"));
    }

    #[test]
    fn the_dockerfile_is_resolved_inside_the_context() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ctx = tmp.path().join("my ctx");
        std::fs::create_dir_all(ctx.join("sub")).expect("mkdir");
        std::fs::write(ctx.join("Dockerfile"), "FROM x\n").expect("write");
        std::fs::write(ctx.join("sub/Df"), "FROM x\n").expect("write");
        std::fs::write(tmp.path().join("outside"), "FROM x\n").expect("write");
        let check = |context: &str, dockerfile: Option<&str>| {
            check_build(
                DockerBuildArgs {
                    context: context.into(),
                    dockerfile: dockerfile.map(Into::into),
                    rest: vec![],
                },
                tmp.path(),
            )
        };
        assert_eq!(
            check("my ctx", None).expect("default").dockerfile,
            "Dockerfile"
        );
        assert_eq!(
            check("my ctx", Some("sub/Df")).expect("sub").dockerfile,
            "sub/Df"
        );
        assert_eq!(
            check("my ctx", Some("./sub/Df")).expect("dot").dockerfile,
            "sub/Df"
        );
        let absolute = ctx.join("sub/Df").to_string_lossy().into_owned();
        assert_eq!(
            check("my ctx", Some(&absolute)).expect("abs").dockerfile,
            "sub/Df"
        );
        let e = |r: Result<BuildPlan, ProviderError>| r.expect_err("invalid").to_string();
        assert!(e(check("nope", None)).contains("does not exist"));
        assert!(e(check("outside", None)).contains("is a file"));
        assert!(
            e(check("my ctx", Some("Missing"))).contains("does not exist in the build context")
        );
        assert!(e(check("my ctx", Some("../outside"))).contains("without `..`"));
        let outside = tmp.path().join("outside").to_string_lossy().into_owned();
        assert!(e(check("my ctx", Some(&outside))).contains("not inside the build context"));
    }

    #[test]
    fn the_dockerfile_is_uploaded_even_when_ignored() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join(".dockerignore"), "Dockerfile\nsecret*\n").expect("write");
        let plan = BuildPlan {
            context: tmp.path().to_owned(),
            dockerfile: "Dockerfile".into(),
            rest: vec![],
        };
        let ex = excludes(&plan).expect("excludes");
        assert!(!ex.is_excluded("Dockerfile"));
        assert!(ex.is_excluded("secret.txt"));
    }

    #[test]
    fn names_follow_the_host() {
        let id = HostId::parse("host-0123456789abcdef0123456789abcdef").expect("id");
        assert_eq!(
            build_tag(&id),
            "mngr-build-host-0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            remote_build_dir(&id),
            "/tmp/mngr-build-host-0123456789abcdef0123456789abcdef"
        );
    }
}

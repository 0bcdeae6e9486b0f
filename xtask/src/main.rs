//! Project tasks, run as `cargo xtask <task>`:
//!
//! | task | what it does |
//! |---|---|
//! | `images` | builds the local images the tests and `local-vps` need (skipped when present), removes outdated ones |
//! | `unit` | unit tests and doc tests: no Docker needed |
//! | `integration` | images, then the integration tests (needs a Docker engine) |
//! | `test` | images, then every test: unit, doc and integration |
//! | `ci` | `fmt --check`, `clippy -D warnings`, `cargo deny`, docs without warnings, then `test` |
//! | `bench [ssh \| provider]` | benchmarks, printed side by side |
//! | `clean` | removes containers, volumes, networks and images left by test runs |
//!
//! Everything the tests create carries the label `com.imbue.mngr.test-run=<run id>`
//! (`vps_primitives::LABEL_TEST_RUN`); `test`
//! removes what carries its run id when it ends, whether the tests passed or not.

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use docker_ssh::{Docker, LocalExecutor};
use local_vps_images::{Image, Privilege, ensure_image};
use vps_primitives::LABEL_TEST_RUN;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    let result = match task {
        "images" => images().map(|_| ()),
        "unit" => unit(rest),
        "integration" => integration(rest),
        "test" => test(rest),
        "ci" => ci(),
        "bench" => bench(rest),
        "clean" => clean(None),
        "help" | "--help" | "-h" => {
            println!("{}", usage());
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> &'static str {
    "usage: cargo xtask <images | unit | integration | test | ci | bench [ssh | provider [--quick]] | clean> [extra nextest args]"
}

/// Runs a command with inherited output; an error names the command and its exit status.
fn run(cmd: &mut Command) -> Result {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(cmd)))
    }
}

fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn require_docker() -> Result {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map_err(|e| format!("the `docker` CLI is not installed ({e}); install docker.io"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "no Docker engine is reachable: `docker info` says: {}\n\
             Start one (as root: `dockerd >/var/log/dockerd.log 2>&1 &`) or run `bash .ci/run`, \
             which installs and starts it. Unit tests alone: `cargo xtask unit`.",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Builds every image that is missing; returns how `--privileged` is granted here.
fn images() -> Result<Privilege> {
    require_docker()?;
    let started = Instant::now();
    for image in Image::ALL {
        let tag = ensure_image(image, &mut |line| eprintln!("  [{}] {line}", image.name()))
            .map_err(|e| e.to_string())?;
        println!("{:<16} {tag}", image.name());
    }
    prune_stale_images();
    let privilege = Privilege::detect(&Image::Base.tag()).map_err(|e| e.to_string())?;
    println!(
        "privilege mode: {} ({:.1}s)",
        privilege.as_env_value(),
        started.elapsed().as_secs_f64()
    );
    Ok(privilege)
}

/// Removes images this project built from older inputs (tags that are no longer current).
/// Images still used by a container stay: `docker rmi` without `-f` refuses them.
fn prune_stale_images() {
    let current: Vec<String> = Image::ALL.iter().map(|i| i.tag()).collect();
    let listed = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .arg("--filter")
        .arg(format!(
            "reference={}/*",
            local_vps_images::REPOSITORY_PREFIX
        ))
        .output();
    let Ok(listed) = listed else { return };
    let stale: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|tag| !current.iter().any(|c| c == tag))
        .map(str::to_owned)
        .collect();
    for tag in stale {
        let removed = Command::new("docker").args(["rmi", &tag]).output();
        if removed.map(|o| o.status.success()).unwrap_or(false) {
            eprintln!("removed outdated image {tag}");
        }
    }
}

fn run_id() -> String {
    std::env::var("MNGR_TEST_RUN_ID").unwrap_or_else(|_| format!("xtask-{}", std::process::id()))
}

fn nextest(filter: Option<&str>, extra: &[String], env: &[(&str, String)]) -> Result {
    let mut cmd = cargo();
    if has_nextest() {
        cmd.args([
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ]);
        if let Some(f) = filter {
            cmd.args(["-E", f]);
        }
    } else {
        eprintln!("cargo-nextest not found: falling back to cargo test");
        cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
        match filter {
            Some("kind(lib) | kind(bin)") => {
                cmd.args(["--lib", "--bins"]);
            }
            Some(_) => {
                cmd.arg("--tests");
            }
            None => {}
        }
    }
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn doc_tests() -> Result {
    run(cargo().args(["test", "--workspace", "--all-features", "--doc"]))
}

fn unit(extra: &[String]) -> Result {
    nextest(Some("kind(lib) | kind(bin)"), extra, &[])?;
    doc_tests()
}

/// Runs `tests` with the images built and a run id set, then removes what the run left.
fn with_bed(tests: impl FnOnce(&[(&str, String)]) -> Result) -> Result {
    let privilege = images()?;
    let id = run_id();
    let env = [
        ("MNGR_TEST_RUN_ID", id.clone()),
        ("MNGR_LOCAL_PRIVILEGE", privilege.as_env_value().to_owned()),
    ];
    let result = tests(&env);
    let cleaned = clean(Some(&id));
    result.and(cleaned)
}

fn integration(extra: &[String]) -> Result {
    with_bed(|env| nextest(Some("not (kind(lib) | kind(bin))"), extra, env))
}

fn test(extra: &[String]) -> Result {
    with_bed(|env| {
        let tests = nextest(None, extra, env);
        let docs = doc_tests();
        tests.and(docs)
    })
}

fn ci() -> Result {
    let started = Instant::now();
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    deny()?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    test(&[])?;
    eprintln!(
        "xtask ci: all green in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn deny() -> Result {
    let present = cargo()
        .args(["deny", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !present {
        return Err(
            "cargo-deny is not installed: `cargo install --locked cargo-deny@0.20.2` (about 2 minutes)"
                .into(),
        );
    }
    // Advisories need the advisory database from the network: checked elsewhere.
    run(cargo().args(["deny", "check", "licenses", "bans", "sources"]))
}

fn bench(rest: &[String]) -> Result {
    let which = rest.first().map(String::as_str).unwrap_or("all");
    match which {
        "ssh" | "all" => {
            require_docker()?;
            images()?;
            // A binary of this package behind its `bench` feature, so that `cargo xtask`
            // itself does not build the SSH stack, and the bench runs in release mode.
            run(cargo()
                .args([
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    "xtask",
                    "--features",
                    "bench",
                    "--bin",
                    "bench_ssh",
                    "--",
                ])
                .args(&rest[rest.len().min(1)..]))
        }
        "provider" => {
            require_docker()?;
            images()?;
            // The host lifecycle on local-vps (an example, so it may use dev-only crates).
            run(cargo()
                .args([
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    "vps-docker-provider",
                    "--example",
                    "bench_provider",
                    "--",
                ])
                .args(&rest[rest.len().min(1)..]))
        }
        other => Err(format!("unknown benchmark `{other}`; known: ssh, provider")),
    }
}

/// Removes containers, volumes, networks and images labelled by a test run (`run_id`), or
/// by any test run, with docker-ssh's one cleanup by label, and says how many.
fn clean(run_id: Option<&str>) -> Result {
    let docker = Docker::new(Arc::new(LocalExecutor::new()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let removed = runtime
        .block_on(docker.remove_labelled(LABEL_TEST_RUN, run_id))
        .map_err(|e| format!("cleanup by label {LABEL_TEST_RUN}: {e}"))?;
    let which = run_id.map_or_else(|| "any test run".to_owned(), |id| format!("test run {id}"));
    eprintln!("cleaned {removed} labelled by {which} ({LABEL_TEST_RUN})");
    Ok(())
}

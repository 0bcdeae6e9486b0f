//! The verbs: each resolves the settings, builds the provider instance, does its one
//! thing, and returns the exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use docker_ssh::{ExecIo, ExitStatus, OutputStream};
use local_vps::LocalVpsClient;
use local_vps_images::Image;
use vps_docker_provider::{
    CleanupReport, CreateHostRequest, Host, Step, StopReason, VpsDockerProvider,
};
use vps_primitives::{HostId, HostName};

use crate::backend::{self, Images};
use crate::cli::{Cli, Command, CreateArgs, SnapshotCommand};
use crate::error::{CliError, code};
use crate::interrupt::CtrlC;
use crate::output::{self, HostView, LeakView, SnapshotView};
use crate::progress::{Mode, Reporter, seconds};
use crate::settings::{self, ConfigFile, Env, LocalDefaults, Paths, Resolved};

/// Runs the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let env = Env::from_process();
    let flag = cli.provider.as_deref();
    match cli.command {
        Command::Create(args) => create(&env, flag, args).await,
        Command::List { json } => list(&env, flag, json).await,
        Command::Show { name, json } => show(&env, flag, &name, json).await,
        Command::Exec { name, command } => exec(&env, flag, &name, command).await,
        Command::Ssh { name, command } => ssh(&env, flag, &name, command).await,
        Command::Stop { name } => stop(&env, flag, &name).await,
        Command::Start { name, snapshot } => start(&env, flag, &name, snapshot.as_deref()).await,
        Command::Snapshot(command) => snapshot(&env, flag, command).await,
        Command::Hibernate { name } => hibernate(&env, flag, &name).await,
        Command::Sweep => sweep(&env, flag).await,
        Command::Wake { name } => wake(&env, flag, &name).await,
        Command::Cleanup {
            older_than,
            delete,
            json,
        } => cleanup(&env, flag, older_than, delete, json).await,
        Command::Destroy { name, yes } => destroy(&env, flag, &name, yes).await,
        Command::Config { json } => config(&env, flag, json),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "mngr-vps",
                &mut std::io::stdout(),
            );
            Ok(code::OK)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| CliError::Failed(format!("could not write the man page: {e}")))?;
            Ok(code::OK)
        }
    }
}

/// The settings of this invocation: directories, config file, provider instance.
fn resolve(env: &Env, flag: Option<&str>) -> Result<Resolved, CliError> {
    let paths = Paths::resolve(env)?;
    let path = paths.config_file();
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => Some(ConfigFile::parse(&text, &path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CliError::Usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    let local = LocalDefaults {
        host_image: Image::Host.tag(),
        os_id: LocalVpsClient::default_os_id().0,
    };
    settings::resolve(env, paths, file.as_ref(), flag, &local)
}

/// A NAME argument must be a host id or a valid host name; refused with the rule before
/// anything else happens.
fn check_name_or_id(name: &str) -> Result<(), CliError> {
    if HostId::parse(name).is_ok() {
        return Ok(());
    }
    HostName::parse(name)
        .map(|_| ())
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// The provider for a verb that needs no new image.
async fn open(
    env: &Env,
    flag: Option<&str>,
    reporter: &Reporter,
) -> Result<(Resolved, VpsDockerProvider), CliError> {
    let resolved = resolve(env, flag)?;
    let provider = backend::provider(&resolved, reporter, Images::Check).await?;
    Ok((resolved, provider))
}

/// A handle to the running host NAME (no progress output: stdout is the command's).
async fn connect(env: &Env, flag: Option<&str>, name: &str) -> Result<Host, CliError> {
    check_name_or_id(name)?;
    let (_, provider) = open(env, flag, &Reporter::new(Mode::Quiet)).await?;
    Ok(provider.connect(name).await?)
}

/// `--provider X ` for the hints, when it is not the default instance.
fn provider_hint(resolved: &Resolved) -> String {
    if resolved.provider.as_str() == settings::DEFAULT_PROVIDER {
        String::new()
    } else {
        format!("--provider {} ", resolved.provider)
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("could not render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

async fn create(env: &Env, flag: Option<&str>, args: CreateArgs) -> Result<u8, CliError> {
    let name = HostName::parse(&args.name).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(source) = &args.from_snapshot {
        check_name_or_id(&source.host)?;
    }
    let resolved = resolve(env, flag)?;
    let reporter = Reporter::new(Mode::detect(args.json));
    let started = Instant::now();
    let provider = backend::provider(&resolved, &reporter, Images::Ensure).await?;
    let mut request = CreateHostRequest::new(name.clone());
    request.image = args.image;
    request.build_args = args.build_args;
    request.start_args = args.start_args;
    request.tags = args.tags.into_iter().collect();
    request.idle_timeout = args.idle_timeout;
    request.idle_mode = args.idle_mode;
    request.snapshot = args.from_snapshot;

    let ctrl_c = CtrlC::watch(&reporter, "rolling back what was made so far");
    let result = provider
        .create_host(request, &reporter, ctrl_c.cancel())
        .await;
    ctrl_c.stop(&reporter, result.is_ok());
    reporter.finish();
    let host = result?;
    if args.json {
        print_json(&output::Created {
            host: HostView::from(host.info()),
            phases: output::phases(host.phases()),
            warnings: host.warnings().to_vec(),
        })?;
    } else {
        println!(
            "created host {name} ({}) on provider {} in {}",
            host.id(),
            resolved.provider,
            seconds(started.elapsed())
        );
        print_next_steps(&resolved, name.as_ref());
    }
    host.close().await;
    Ok(code::OK)
}

/// What to do with a running host, after `create` and `wake`.
fn print_next_steps(resolved: &Resolved, name: &str) {
    let p = provider_hint(resolved);
    println!("  run a command: mngr-vps {p}exec {name} -- uname -a");
    println!("  open a shell:  mngr-vps {p}ssh {name}");
    println!("  destroy it:    mngr-vps {p}destroy {name}");
}

async fn list(env: &Env, flag: Option<&str>, json: bool) -> Result<u8, CliError> {
    let reporter = Reporter::new(Mode::Quiet);
    let (resolved, provider) = open(env, flag, &reporter).await?;
    let hosts: Vec<HostView> = provider
        .list_hosts()
        .await?
        .iter()
        .map(HostView::from)
        .collect();
    if json {
        print_json(&hosts)?;
    } else if hosts.is_empty() {
        println!(
            "no hosts at provider {}; create one with `mngr-vps {}create NAME`",
            resolved.provider,
            provider_hint(&resolved)
        );
    } else {
        print!("{}", output::hosts_table(&hosts));
    }
    Ok(code::OK)
}

async fn show(env: &Env, flag: Option<&str>, name: &str, json: bool) -> Result<u8, CliError> {
    check_name_or_id(name)?;
    let reporter = Reporter::new(Mode::Quiet);
    let (_, provider) = open(env, flag, &reporter).await?;
    let view = HostView::from(&provider.get_host(name).await?);
    if json {
        print_json(&view)?;
    } else {
        print!("{}", output::host_details(&view));
    }
    Ok(code::OK)
}

async fn exec(
    env: &Env,
    flag: Option<&str>,
    name: &str,
    command: Vec<String>,
) -> Result<u8, CliError> {
    let host = connect(env, flag, name).await?;
    let mut stdout = tokio::io::stdout();
    let mut on_line = |stream: OutputStream, line: &str| {
        if stream == OutputStream::Stderr {
            eprintln!("{line}");
        }
    };
    let io = ExecIo {
        stdin: None,
        on_line: Some(&mut on_line),
        stdout: Some(&mut stdout),
    };
    let result = host.execute(&docker_ssh::Command::argv(command), io).await;
    tokio::io::AsyncWriteExt::flush(&mut stdout).await.ok();
    host.close().await;
    let out = result?;
    Ok(exit_code_of(&out.status))
}

/// The CLI's exit code for a remote command's status: its code (capped at 255), or
/// 128 + the signal's number as a shell reports it.
pub fn exit_code_of(status: &ExitStatus) -> u8 {
    match status {
        ExitStatus::Code(c) => u8::try_from(*c).unwrap_or(255),
        ExitStatus::Signal(name) => {
            let number = match name.as_str() {
                "HUP" => 1,
                "INT" => 2,
                "QUIT" => 3,
                "ABRT" => 6,
                "KILL" => 9,
                "SEGV" => 11,
                "PIPE" => 13,
                "ALRM" => 14,
                "TERM" => 15,
                other => other.parse::<u8>().unwrap_or(127),
            };
            128u8.saturating_add(number)
        }
    }
}

async fn ssh(
    env: &Env,
    flag: Option<&str>,
    name: &str,
    command: Vec<String>,
) -> Result<u8, CliError> {
    use std::os::unix::process::CommandExt;
    let host = connect(env, flag, name).await?;
    let mut argv = host.ssh_argv(&command);
    if !std::io::stdin().is_terminal() {
        // No terminal to give the remote command: say so to OpenSSH instead of its warning.
        if let Some(t) = argv.iter_mut().find(|a| a.as_str() == "-t") {
            *t = "-T".into();
        }
    }
    tracing::debug!(?argv, "running OpenSSH");
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| CliError::Failed("empty ssh command line".into()))?;
    // Replaces this process: the exit status is ssh's (the remote command's, or 255).
    let error = std::process::Command::new(program).args(rest).exec();
    Err(CliError::Failed(format!(
        "could not run `{program}`: {error}; install OpenSSH's client (`apt-get install openssh-client`)"
    )))
}

async fn stop(env: &Env, flag: Option<&str>, name: &str) -> Result<u8, CliError> {
    check_name_or_id(name)?;
    let reporter = Reporter::new(Mode::detect(false));
    let (resolved, provider) = open(env, flag, &reporter).await?;
    reporter.activity(&format!("stopping {name}"));
    let result = provider.stop_host(name, StopReason::User).await;
    reporter.finish();
    let info = result?;
    println!(
        "stopped host {}; start it again with `mngr-vps {}start {}`",
        info.display_name(),
        provider_hint(&resolved),
        info.display_name()
    );
    Ok(code::OK)
}

async fn start(
    env: &Env,
    flag: Option<&str>,
    name: &str,
    snapshot: Option<&str>,
) -> Result<u8, CliError> {
    check_name_or_id(name)?;
    let reporter = Reporter::new(Mode::detect(false));
    let (_, provider) = open(env, flag, &reporter).await?;
    let result = match snapshot {
        None => {
            reporter.activity(&format!("starting {name}"));
            provider.start_host(name).await
        }
        Some(snap) => {
            reporter.activity(&format!(
                "{} ({name}, snapshot {snap})",
                Step::RestoreSnapshot.describe()
            ));
            provider.start_from_snapshot(name, snap).await
        }
    };
    reporter.finish();
    let host = result?;
    for w in host.warnings() {
        eprintln!("warning: {w}");
    }
    match snapshot {
        None => println!("started host {}", host.info().display_name()),
        Some(snap) => println!(
            "started host {} from its snapshot {snap}",
            host.info().display_name()
        ),
    }
    host.close().await;
    Ok(code::OK)
}

async fn snapshot(env: &Env, flag: Option<&str>, command: SnapshotCommand) -> Result<u8, CliError> {
    match command {
        SnapshotCommand::Create {
            name,
            snapshot,
            json,
        } => {
            check_name_or_id(&name)?;
            let reporter = Reporter::new(Mode::detect(json));
            let (resolved, provider) = open(env, flag, &reporter).await?;
            reporter.activity(&format!("{} ({name})", Step::ContainerSnapshot.describe()));
            let result = provider.create_snapshot(&name, snapshot.as_deref()).await;
            reporter.finish();
            let taken = SnapshotView::from(&result?);
            if json {
                print_json(&taken)?;
            } else {
                println!(
                    "took snapshot {} of host {name} ({})",
                    taken.name, taken.image
                );
                println!(
                    "  restore it:  mngr-vps {}start {name} --snapshot {}",
                    provider_hint(&resolved),
                    vps_primitives::quote(&taken.name)
                );
            }
            Ok(code::OK)
        }
        SnapshotCommand::List { name, json } => {
            check_name_or_id(&name)?;
            let (resolved, provider) = open(env, flag, &Reporter::new(Mode::Quiet)).await?;
            let listed: Vec<SnapshotView> = provider
                .list_snapshots(&name)
                .await?
                .iter()
                .map(SnapshotView::from)
                .collect();
            if json {
                print_json(&listed)?;
            } else if listed.is_empty() {
                println!(
                    "host {name} has no snapshots; take one with `mngr-vps {}snapshot create {name}`",
                    provider_hint(&resolved)
                );
            } else {
                print!("{}", output::snapshots_table(&listed));
            }
            Ok(code::OK)
        }
        SnapshotCommand::Delete { name, snapshot } => {
            check_name_or_id(&name)?;
            let reporter = Reporter::new(Mode::detect(false));
            let (_, provider) = open(env, flag, &reporter).await?;
            reporter.activity(&format!(
                "{} ({name}, {snapshot})",
                Step::DeleteSnapshot.describe()
            ));
            let result = provider.delete_snapshot(&name, &snapshot).await;
            reporter.finish();
            let deleted = result?;
            println!("deleted snapshot {} of host {name}", deleted.name);
            Ok(code::OK)
        }
    }
}

async fn sweep(env: &Env, flag: Option<&str>) -> Result<u8, CliError> {
    let reporter = Reporter::new(Mode::detect(false));
    let (_, provider) = open(env, flag, &reporter).await?;
    let ctrl_c = CtrlC::watch(
        &reporter,
        "stopping the sweep (a hibernation under way undoes itself)",
    );
    let result = provider
        .hibernate_idle_hosts(&reporter, ctrl_c.cancel())
        .await;
    ctrl_c.stop(&reporter, result.is_ok());
    reporter.finish();
    let sweep = result?;
    print!("{sweep}");
    Ok(if sweep.failed.is_empty() {
        code::OK
    } else {
        code::FAILED
    })
}

async fn hibernate(env: &Env, flag: Option<&str>, name: &str) -> Result<u8, CliError> {
    check_name_or_id(name)?;
    let reporter = Reporter::new(Mode::detect(false));
    let (resolved, provider) = open(env, flag, &reporter).await?;
    let ctrl_c = CtrlC::watch(
        &reporter,
        "undoing the hibernate (the container starts again, the unfinished snapshot is deleted)",
    );
    let result = provider
        .hibernate_host(name, &reporter, ctrl_c.cancel())
        .await;
    ctrl_c.stop(&reporter, result.is_ok());
    reporter.finish();
    let info = result?;
    let view = HostView::from(&info);
    println!(
        "hibernated host {} ({}): its VPS is gone, {} holds it",
        info.display_name(),
        info.id,
        view.status_detail
            .as_deref()
            .unwrap_or("a provider snapshot")
    );
    println!(
        "  wake it:     mngr-vps {}wake {}",
        provider_hint(&resolved),
        info.display_name()
    );
    Ok(code::OK)
}

async fn wake(env: &Env, flag: Option<&str>, name: &str) -> Result<u8, CliError> {
    check_name_or_id(name)?;
    let reporter = Reporter::new(Mode::detect(false));
    let started = Instant::now();
    let (resolved, provider) = open(env, flag, &reporter).await?;
    let ctrl_c = CtrlC::watch(
        &reporter,
        "removing the new VPS (the host stays hibernated)",
    );
    let result = provider.wake_host(name, &reporter, ctrl_c.cancel()).await;
    ctrl_c.stop(&reporter, result.is_ok());
    reporter.finish();
    let host = result?;
    let shown = host.info().display_name();
    println!(
        "woke host {shown} ({}) on a new VPS{} in {}",
        host.id(),
        host.info()
            .instance_id
            .as_ref()
            .map(|i| format!(" ({i})"))
            .unwrap_or_default(),
        seconds(started.elapsed())
    );
    print_next_steps(&resolved, &shown);
    host.close().await;
    Ok(code::OK)
}

async fn cleanup(
    env: &Env,
    flag: Option<&str>,
    older_than: Duration,
    delete: bool,
    json: bool,
) -> Result<u8, CliError> {
    let reporter = Reporter::new(Mode::detect(json));
    let (resolved, provider) = open(env, flag, &reporter).await?;
    let age = output::duration_arg(older_than);
    reporter.activity(&format!("looking for leaks older than {age}"));
    let found = provider.find_leaks(older_than).await;
    reporter.finish();
    let leaks = found?;
    let report = if delete && !leaks.is_empty() {
        reporter.activity(&format!("deleting {}", count_of(leaks.len(), "leak")));
        let report = provider.delete_leaks(&leaks).await;
        reporter.finish();
        Some(report)
    } else {
        None
    };
    let code = match &report {
        Some(r) if !r.is_complete() => code::FAILED,
        _ => code::OK,
    };
    if json {
        let report = report.or_else(|| delete.then(CleanupReport::default));
        print_json(&output::CleanupView::new(
            older_than,
            &leaks,
            report.as_ref(),
        ))?;
        return Ok(code);
    }
    if leaks.is_empty() {
        println!(
            "no leaks older than {age} at provider {}",
            resolved.provider
        );
        return Ok(code);
    }
    let views: Vec<LeakView> = leaks.iter().map(LeakView::from).collect();
    print!("{}", output::leaks_table(&views));
    match &report {
        None => println!(
            "{} older than {age}; delete {} with `mngr-vps {}cleanup --older-than {age} --delete`",
            count_of(leaks.len(), "leak"),
            if leaks.len() == 1 { "it" } else { "them" },
            provider_hint(&resolved),
        ),
        Some(r) => {
            for leak in &r.deleted {
                println!("deleted {leak}");
            }
            for (leak, error) in &r.failed {
                eprintln!("could not delete {leak}: {error}");
            }
            if !r.is_complete() {
                eprintln!(
                    "{} of {} failed; fix what the messages say and run `mngr-vps {}cleanup --older-than {age} --delete` again",
                    r.failed.len(),
                    count_of(leaks.len(), "deletion"),
                    provider_hint(&resolved)
                );
            }
        }
    }
    Ok(code)
}

/// `1 leak`, `2 leaks`.
fn count_of(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

async fn destroy(env: &Env, flag: Option<&str>, name: &str, yes: bool) -> Result<u8, CliError> {
    check_name_or_id(name)?;
    if !yes && !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "refusing to destroy {name} without confirmation: stdin is not a terminal to ask on; pass --yes"
        )));
    }
    let reporter = Reporter::new(Mode::detect(false));
    let (_, provider) = open(env, flag, &reporter).await?;
    let info = provider.get_host(name).await?;
    if !yes
        && !confirm(&format!(
            "destroy host {} ({}) with its container, data and VPS? [y/N] ",
            info.display_name(),
            info.id
        ))?
    {
        eprintln!("not destroyed");
        return Ok(code::FAILED);
    }
    reporter.activity(&format!("destroying {}", info.display_name()));
    let result = provider.destroy_host(info.id.as_str()).await;
    reporter.finish();
    let id = result?;
    println!("destroyed host {} ({id})", info.display_name());
    Ok(code::OK)
}

fn confirm(question: &str) -> Result<bool, CliError> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Failed(format!("could not read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn config(env: &Env, flag: Option<&str>, json: bool) -> Result<u8, CliError> {
    let resolved = resolve(env, flag)?;
    let settings = resolved.settings();
    if json {
        print_json(&output::settings_json(&settings))?;
    } else {
        print!("{}", output::settings_table(&settings));
    }
    Ok(code::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_status_becomes_the_exit_code() {
        assert_eq!(exit_code_of(&ExitStatus::Code(0)), 0);
        assert_eq!(exit_code_of(&ExitStatus::Code(7)), 7);
        assert_eq!(exit_code_of(&ExitStatus::Code(300)), 255);
        assert_eq!(exit_code_of(&ExitStatus::Signal("KILL".into())), 137);
        assert_eq!(exit_code_of(&ExitStatus::Signal("TERM".into())), 143);
    }

    #[test]
    fn names_are_checked_before_anything_happens() {
        for bad in ["", "a b", "x'y", "$(id)", "a\nb", &"a".repeat(64)] {
            let e = check_name_or_id(bad).expect_err(bad);
            assert_eq!(e.exit_code(), code::USAGE, "{bad:?}");
        }
        check_name_or_id("my-agent").expect("valid name");
    }
}

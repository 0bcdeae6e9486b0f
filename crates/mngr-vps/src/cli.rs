//! The command line, as clap definitions (the completions and the man page are generated
//! from these).

use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use host_store::IdleMode;
use vps_docker_provider::SnapshotSource;

use crate::error::EXIT_CODES_HELP;

const ABOUT: &str =
    "Run coding agents on hosts: one VPS, one Docker container, reached over SSH with pinned keys.";

const AFTER_HELP: &str = "\
Examples:
  mngr-vps create my-agent                          # a host on the local Docker engine
  mngr-vps exec my-agent -- uname -a                # run a command in its container
  mngr-vps list
  mngr-vps ssh my-agent                             # a shell in the container (OpenSSH, pinned key)
  mngr-vps destroy my-agent --yes
  mngr-vps snapshot create my-agent --name before   # the container's files and its volume
  mngr-vps start my-agent --snapshot before         # back to them
  mngr-vps hibernate my-agent                       # its VPS becomes a snapshot; `wake` undoes it
  mngr-vps cleanup --older-than 2h                  # what failed creates left; --delete deletes it
  mngr-vps --provider vultr create big -b --vps-plan=vc2-2c-4gb
  mngr-vps --provider hetzner create small -b --vps-region=nbg1

Environment:
  MNGR_VPS_HOME      holds config.toml and keys/<provider>/ (default: the XDG directories)
  MNGR_VPS_PROVIDER  the provider instance when --provider is not given
  VULTR_API_KEY      the Vultr API key when the config file has none
  HCLOUD_TOKEN       the Hetzner Cloud API token when the config file has none
  MNGR_TEST_RUN_ID   label everything the local provider makes with com.imbue.mngr.test-run=<id>

";

/// `mngr-vps`.
#[derive(Debug, Parser)]
#[command(
    name = "mngr-vps",
    version,
    about = ABOUT,
    after_help = const_format_help(),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The provider instance: `local` (containers on this machine's Docker engine),
    /// `vultr`, `hetzner`, or a `[providers.<name>]` of config.toml.
    #[arg(long, global = true, value_name = "NAME")]
    pub provider: Option<String>,

    /// More output on stderr: -v info, -vv debug (tracing).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The after-help text: examples, environment and exit codes.
fn const_format_help() -> String {
    format!("{AFTER_HELP}{EXIT_CODES_HELP}")
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a host: order the VPS, pin its keys, start its container.
    ///
    /// Ctrl-C rolls back everything made so far and exits 130.
    Create(CreateArgs),
    /// List the hosts of the provider instance.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one host.
    Show {
        /// Host name or id.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a host's container; exits with its status.
    ///
    /// The command's stdout and stderr are streamed. It has no terminal and no stdin:
    /// use `mngr-vps ssh NAME -- CMD` for that.
    Exec {
        /// Host name or id.
        name: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Open a shell in a host's container with OpenSSH (pinned key), or run CMD with a terminal.
    Ssh {
        /// Host name or id.
        name: String,
        /// A command to run instead of a shell, after `--`.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Stop a host's container (the VPS keeps running).
    Stop {
        /// Host name or id.
        name: String,
    },
    /// Start a stopped host's container, or replace it with one of its snapshots.
    ///
    /// With --snapshot the container and its volume are replaced by the snapshot's (the
    /// old ones are removed once the new container answers); the host's keys, start args
    /// and tags stay.
    Start {
        /// Host name or id.
        name: String,
        /// Start from this snapshot of the host (its name or id; `snapshot list NAME`).
        #[arg(long, value_name = "SNAP", value_parser = NonEmptyStringValueParser::new())]
        snapshot: Option<String>,
    },
    /// Destroy a host: its container, data, VPS, uploaded key and local keys.
    ///
    /// Asks first unless --yes; without a terminal to ask on, --yes is required (exit 2).
    Destroy {
        /// Host name or id.
        name: String,
        /// Do not ask.
        #[arg(short, long)]
        yes: bool,
    },
    /// Take, list or delete container snapshots of a host.
    ///
    /// A snapshot is one image on the host's VPS: the container's filesystem and a copy of
    /// its volume (not its processes, nor other volumes). `start NAME --snapshot SNAP`
    /// restores one; `create NEW --from-snapshot NAME:SNAP` starts a new host from one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Hibernate a host: its VPS becomes a provider snapshot, so only storage is billed.
    ///
    /// Stops the container, snapshots the VPS, waits until the snapshot is complete, then
    /// destroys the VPS. Ctrl-C before that undoes it (the container runs again) and exits
    /// 130. `wake NAME` brings the host back; this machine's keys for it are needed then.
    Hibernate {
        /// Host name or id.
        name: String,
    },
    /// Hibernate every host its idle watcher stopped, when the provider's config says
    /// `idle_action = "hibernate"`.
    ///
    /// Hibernating calls the provider's API, whose key never lives on the VPS, so this runs
    /// here: from cron or a timer. Exits 1 if any hibernation failed.
    Sweep,
    /// Wake a hibernated host: a new VPS from its snapshot, its container started again.
    ///
    /// The snapshot is deleted once the host answers. Ctrl-C removes the new VPS (the host
    /// stays hibernated) and exits 130. A host that is not hibernated is refused (exit 1).
    Wake {
        /// Host name or id.
        name: String,
    },
    /// List what this provider instance made that no host accounts for; --delete deletes it.
    ///
    /// Leaks are VPS instances without a host record (a failed or killed create), uploaded
    /// SSH keys and local key directories of hosts that exist no more, and VPS snapshots of
    /// running hosts that their record does not mention (left by a wake).
    /// Nothing younger than --older-than, and nothing that cannot be judged (a VPS that
    /// does not answer, another machine's host), counts. Exits 1 if a deletion failed.
    Cleanup {
        /// Only what is at least this old: `90s`, `30m`, `1h`, `2d`, or seconds.
        #[arg(
            long,
            value_name = "DURATION",
            default_value = "1h",
            value_parser = parse_duration
        )]
        older_than: Duration,
        /// Delete what is listed (without it, nothing is deleted).
        #[arg(long)]
        delete: bool,
        /// Print JSON: {"older_than_seconds", "delete", "leaks", "deleted", "failed"}.
        #[arg(long)]
        json: bool,
    },
    /// Show the effective configuration and where each value came from.
    Config {
        /// Print JSON: {"key": {"value": …, "source": …}}.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
}

/// `snapshot …`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a host's container and volume (a running container is paused
    /// meanwhile).
    Create {
        /// Host name or id.
        name: String,
        /// The snapshot's name (default: `mngr-snapshot-<host id>-<unix seconds>`).
        #[arg(long = "name", value_name = "SNAP")]
        snapshot: Option<String>,
        /// Print the snapshot as JSON, and no progress.
        #[arg(long)]
        json: bool,
    },
    /// List a host's snapshots, oldest first.
    List {
        /// Host name or id.
        name: String,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot of a host (its image on the VPS and its entry in the record).
    Delete {
        /// Host name or id.
        name: String,
        /// The snapshot's name or id.
        #[arg(value_name = "SNAP", value_parser = NonEmptyStringValueParser::new())]
        snapshot: String,
    },
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The host's name: 1 to 63 letters, digits, `-` or `_`, starting and ending with a
    /// letter or digit.
    pub name: String,
    /// The container image (default: the provider's `default_image`).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// A build arg; `--vps-region=R`, `--vps-plan=P`, `--vps-os=N` choose the VPS.
    #[arg(
        short = 'b',
        long = "build-arg",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub build_args: Vec<String>,
    /// A `docker run` argument for the container (after the provider's defaults).
    #[arg(
        short = 's',
        long = "start-arg",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub start_args: Vec<String>,
    /// A user tag, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Idle timeout in seconds (at least 1).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: Option<u64>,
    /// Idle mode: IO, USER, AGENT, SSH, CREATE, BOOT, START, RUN, DISABLED.
    #[arg(long, value_name = "MODE", value_parser = parse_idle_mode)]
    pub idle_mode: Option<IdleMode>,
    /// Start from a snapshot of another host, HOST:SNAP (HOST a name or id; SNAP the
    /// snapshot's name or id): its image is copied to the new VPS, its volume copy fills
    /// the new host's volume.
    #[arg(
        long,
        value_name = "HOST:SNAP",
        value_parser = parse_snapshot_source,
        conflicts_with = "image"
    )]
    pub from_snapshot: Option<SnapshotSource>,
    /// Print the new host as JSON, and no progress.
    #[arg(long)]
    pub json: bool,
}

/// `HOST:SNAP`, split at the first `:` (host names and ids have none; snapshot names and
/// image references may).
fn parse_snapshot_source(s: &str) -> Result<SnapshotSource, String> {
    match s.split_once(':') {
        Some((host, snapshot)) if !host.is_empty() && !snapshot.is_empty() => Ok(SnapshotSource {
            host: host.to_owned(),
            snapshot: snapshot.to_owned(),
        }),
        _ => Err(format!(
            "{s:?} is not HOST:SNAP (a host name or id, a colon, and the snapshot's name or id)"
        )),
    }
}

/// A duration: a whole number with a unit `s`, `m`, `h` or `d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let rule = "use a whole number of seconds, or one with a unit: 90s, 30m, 1h, 2d";
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?} is not a duration; {rule}")),
    };
    if digits.is_empty() {
        return Err(format!("{s:?} is not a duration; {rule}"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long a duration; {rule}"))
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.chars().any(char::is_control) => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!(
            "{s:?} is not KEY=VALUE with a non-empty key (no control characters)"
        )),
    }
}

fn parse_idle_mode(s: &str) -> Result<IdleMode, String> {
    let upper = s.to_ascii_uppercase();
    IdleMode::PRESETS
        .into_iter()
        .find(|m| {
            serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(|n| n == upper))
                .unwrap_or(false)
        })
        .ok_or_else(|| {
            format!("{s:?} is not an idle mode; use one of IO, USER, AGENT, SSH, CREATE, BOOT, START, RUN, DISABLED")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tags_and_idle_modes_parse() {
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_tag("=x").is_err());
        assert!(parse_tag("novalue").is_err());
        assert_eq!(parse_idle_mode("ssh"), Ok(IdleMode::Ssh));
        assert_eq!(parse_idle_mode("DISABLED"), Ok(IdleMode::Disabled));
        assert!(parse_idle_mode("sometimes").is_err());
    }

    #[test]
    fn durations_parse_with_a_unit_or_as_seconds() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("1h", 3600),
            ("2d", 172_800),
            ("45", 45),
            ("0", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "h",
            "1.5h",
            "-1h",
            "1w",
            "1 h",
            "1hh",
            "h1",
            "99999999999999999999d",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains("90s, 30m, 1h, 2d"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn snapshot_sources_split_at_the_first_colon() {
        let s = parse_snapshot_source("my-agent:mngr-snapshot-x:1746964800-000000").expect("ok");
        assert_eq!(s.host, "my-agent");
        assert_eq!(s.snapshot, "mngr-snapshot-x:1746964800-000000");
        for bad in ["nocolon", ":snap", "host:", ":"] {
            assert!(parse_snapshot_source(bad).is_err(), "{bad:?}");
        }
    }
}

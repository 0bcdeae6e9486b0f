//! The command line, as clap definitions (the completions and the man page are generated
//! from these).

use clap::{Args, Parser, Subcommand};
use host_store::IdleMode;

use crate::error::EXIT_CODES_HELP;

const ABOUT: &str =
    "Run coding agents on hosts: one VPS, one Docker container, reached over SSH with pinned keys.";

const AFTER_HELP: &str = "\
Examples:
  mngr-vps create my-agent                 # a host on the local Docker engine
  mngr-vps exec my-agent -- uname -a       # run a command in its container
  mngr-vps list
  mngr-vps ssh my-agent                    # a shell in the container (OpenSSH, pinned key)
  mngr-vps destroy my-agent --yes
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
    /// Start a stopped host's container.
    Start {
        /// Host name or id.
        name: String,
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
    /// Print the new host as JSON, and no progress.
    #[arg(long)]
    pub json: bool,
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
}

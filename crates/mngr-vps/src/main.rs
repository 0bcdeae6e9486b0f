//! `mngr-vps`: the command line of the toolkit. It creates, lists, enters, stops, starts
//! and destroys hosts (one VPS, one Docker container) on a provider instance: `local`
//! (containers on this machine's Docker engine, the default), `vultr`, or one defined in
//! `config.toml`.
//!
//! Modules: [`cli`] (clap definitions), [`settings`] (directories, config file and provider
//! resolution with the origin of every value; pure), [`backend`] (building the provider
//! instance), [`commands`] (the verbs), [`output`] (JSON shape and tables; pure),
//! [`progress`] (spinner, plain lines, or nothing), [`interrupt`] (Ctrl-C), [`error`]
//! (exit codes).

mod backend;
mod cli;
mod commands;
mod error;
mod interrupt;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    // One thread: the CLI mostly waits on SSH and provider APIs, and on one thread the
    // russh session task and the task feeding it stay together. With a worker pool every
    // 32 KiB packet of an image streamed to a VPS is a cross-thread wake-up, which doubled
    // this process's CPU per create (0.35 s against 0.6 to 1.0 s, `cargo xtask bench
    // provider`). Blocking work goes to the blocking pool either way.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mngr-vps: error: cannot start the async runtime: {e}");
            return ExitCode::from(error::code::FAILED);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Do not wait for lingering connection tasks.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mngr-vps: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `-v` info, `-vv` debug, to stderr; `RUST_LOG` refines it when set.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

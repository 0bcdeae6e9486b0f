//! Progress of long operations: a spinner with the current step and its elapsed time on a
//! terminal (output lines printed above it), plain timestamped lines on stderr otherwise,
//! nothing with `--json`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vps_docker_provider::{Progress, Step};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A spinner on stderr (a terminal).
    Terminal,
    /// Timestamped lines on stderr.
    Plain,
    /// Nothing (`--json`).
    Quiet,
}

impl Mode {
    /// Quiet with `--json`, else a spinner when stderr is a terminal, else plain lines.
    pub fn detect(json: bool) -> Self {
        if json {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            Self::Terminal
        } else {
            Self::Plain
        }
    }
}

/// The progress sink of one command. Cheap to clone; clones share the spinner.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    bar: Mutex<Option<ProgressBar>>,
}

impl Reporter {
    /// A reporter in `mode`.
    pub fn new(mode: Mode) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                bar: Mutex::new(None),
            }),
        }
    }

    /// Shows `what` as the current activity (a spinner, or one plain line).
    pub fn activity(&self, what: &str) {
        match self.inner.mode {
            Mode::Quiet => {}
            Mode::Plain => plain(what),
            Mode::Terminal => {
                let mut bar = self.lock();
                let bar = bar.get_or_insert_with(spinner);
                bar.reset_elapsed();
                bar.set_message(what.to_owned());
            }
        }
    }

    /// A line above the spinner (or a plain line).
    pub fn line(&self, text: &str) {
        match self.inner.mode {
            Mode::Quiet => {}
            Mode::Plain => plain(text),
            Mode::Terminal => match self.lock().as_ref() {
                Some(bar) => bar.println(text),
                None => eprintln!("{text}"),
            },
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = self.lock().take() {
            bar.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.inner
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for Reporter {
    fn step_started(&self, step: Step) {
        self.activity(step.describe());
    }

    fn step_done(&self, step: Step, took: Duration) {
        self.line(&format!("✓ {} ({})", step.describe(), seconds(took)));
    }

    fn output(&self, _step: Step, line: &str) {
        self.line(&format!("  {line}"));
    }

    fn warning(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn plain(text: &str) {
    eprintln!("{} {text}", timestamp());
}

/// The UTC time of day, `HH:MM:SS`.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// `1.2s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

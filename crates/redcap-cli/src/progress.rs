//! What a command tells the person at the terminal: status lines and progress bars on stderr.
//!
//! Bars are drawn only when stderr is a terminal and `--quiet` is off; status lines are
//! printed unless `--quiet`. Data goes to stdout, so pipes and files never see either.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redcap::workflow::{NoProgress, Progress, ProgressEvent};

/// Where status and progress go.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    /// `--quiet`.
    pub quiet: bool,
    /// Bars are drawn (stderr is a terminal and not quiet).
    pub bars: bool,
    /// `--json`: results as one JSON object on stdout.
    pub json: bool,
}

impl Ui {
    /// From `--quiet` and whether stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        Ui { quiet, bars: !quiet && std::io::stderr().is_terminal(), json: false }
    }

    /// A status line on stderr (not with `--quiet`).
    pub fn status(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            crate::output::to_stderr(format!("{}\n", crate::error::redact(msg.as_ref())));
        }
    }

    /// A warning on stderr (not with `--quiet`): something the user should know that did not
    /// stop the command.
    pub fn warn(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            crate::output::to_stderr(format!("warning: {}\n", crate::error::redact(msg.as_ref())));
        }
    }

    /// A progress observer for a workflow: bars on a terminal, nothing otherwise.
    pub fn observer(&self) -> Box<dyn Progress> {
        if self.bars { Box::new(Bars::default()) } else { Box::new(NoProgress) }
    }

    /// A byte bar for one transfer (`total` known: a bar; unknown: a running count), or none.
    pub fn transfer(&self, msg: impl Into<String>, total: Option<u64>) -> Option<ProgressBar> {
        if !self.bars {
            return None;
        }
        let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = match total {
            Some(_) => "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {msg}",
            None => "{spinner} {msg}: {bytes} ({bytes_per_sec})",
        };
        pb.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        pb.set_message(msg.into());
        pb.enable_steady_tick(Duration::from_millis(120));
        Some(pb)
    }
}

/// Progress bars drawn from workflow events.
#[derive(Debug, Default)]
pub struct Bars {
    state: Mutex<Option<(ProgressBar, bool)>>,
}

impl Bars {
    fn spinner() -> ProgressBar {
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    fn bar(len: u64, by_bytes: bool) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let template = if by_bytes {
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {wide_msg}"
        } else {
            "{bar:30} {pos}/{len} {elapsed}  {wide_msg}"
        };
        pb.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        pb
    }
}

impl Progress for Bars {
    fn event(&self, event: ProgressEvent) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ProgressEvent::FolderListed { path } => {
                let (pb, _) = state.get_or_insert_with(|| (Bars::spinner(), false));
                pb.set_message(if path.is_empty() {
                    "listed the top folder".to_owned()
                } else {
                    format!("listed {path}")
                });
            }
            ProgressEvent::Planned { items, bytes } => {
                if let Some((old, _)) = state.take() {
                    old.finish_and_clear();
                }
                *state = Some((Bars::bar(bytes.unwrap_or(items), bytes.is_some()), bytes.is_some()));
            }
            ProgressEvent::Started { item, .. } => {
                if let Some((pb, _)) = state.as_ref() {
                    pb.set_message(item);
                }
            }
            ProgressEvent::Finished { bytes, .. } => {
                if let Some((pb, by_bytes)) = state.as_ref() {
                    pb.inc(if *by_bytes { bytes } else { 1 });
                }
            }
            ProgressEvent::Split { item, reason, parts } => {
                // The parts replace the item: the bar grows by the difference.
                let line = crate::error::redact(&format!("retrying {item} as {parts} smaller requests: {reason}"));
                match state.as_ref() {
                    Some((pb, by_bytes)) => {
                        if !*by_bytes {
                            pb.inc_length(parts.saturating_sub(1));
                        }
                        pb.println(line);
                    }
                    None => crate::output::to_stderr(format!("{line}\n")),
                }
            }
            ProgressEvent::Failed { item, error } => {
                let line = crate::error::redact(&format!("failed: {item}: {error}"));
                match state.as_ref() {
                    Some((pb, _)) => pb.println(line),
                    None => crate::output::to_stderr(format!("{line}\n")),
                }
            }
            _ => {}
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some((pb, _)) = self.state.get_mut().ok().and_then(Option::take) {
            pb.finish_and_clear();
        }
    }
}

//! The console: what a person watching the run (or reading a CI log) sees.
//!
//! On a terminal each suite gets a progress bar sized by its `planned` checks and only failures, unverified checks
//! and suite totals are printed above the bars; elsewhere (a pipe, a CI log) every check is one plain line, since the
//! log is what remains. At the end: the rules that failed or stayed unverified, the counts of each verdict, the launch
//! decision when there is one, and what the exit status means. Colour follows the terminal and `NO_COLOR`.

use std::ffi::OsString;
use std::io::{IsTerminal, Stdout, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Writer;
use super::event::{
    CheckOutcome, CheckRecord, CriterionStatus, Event, GateDecision, RuleResult, RunFinished, RunStarted,
    SuiteFinished, SuiteStarted,
};
use super::text::{self, RuleCounts};
use crate::error::Error;

/// How the console draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleStyle {
    /// Progress bars (a terminal) instead of a line per check.
    pub progress: bool,
    /// ANSI colours.
    pub color: bool,
}

impl ConsoleStyle {
    /// Plain lines, no colour: for logs, pipes and snapshots.
    pub const PLAIN: ConsoleStyle = ConsoleStyle { progress: false, color: false };

    /// The style for standard output as it is now.
    pub fn detect() -> ConsoleStyle {
        ConsoleStyle::for_output(std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR"))
    }

    /// Bars and colour on a terminal; no colour when `NO_COLOR` is set to anything but the empty string
    /// (<https://no-color.org>).
    pub fn for_output(is_terminal: bool, no_color: Option<OsString>) -> ConsoleStyle {
        let color_refused = no_color.is_some_and(|value| !value.is_empty());
        ConsoleStyle { progress: is_terminal, color: is_terminal && !color_refused }
    }
}

/// The console writer, over any output so that tests can capture it.
pub struct Console<W: Write> {
    out: W,
    style: ConsoleStyle,
    bars: Option<Bars>,
}

/// The progress bars of the suites running now.
struct Bars {
    multi: MultiProgress,
    by_suite: Vec<(String, ProgressBar)>,
}

impl Console<Stdout> {
    /// The console on standard output, styled for what it is connected to.
    pub fn stdout() -> Console<Stdout> {
        Console::new(std::io::stdout(), ConsoleStyle::detect())
    }
}

impl<W: Write> Console<W> {
    /// A console writing to `out`. Progress bars, when `style.progress`, are drawn on standard output.
    pub fn new(out: W, style: ConsoleStyle) -> Console<W> {
        let bars = style.progress.then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            by_suite: Vec::new(),
        });
        Console { out, style, bars }
    }

    /// The output, once the run is over (tests read what was written).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Prints `text` above the progress bars (or simply, without bars).
    fn print(&mut self, text: &str) -> Result<(), Error> {
        let out = &mut self.out;
        let result = match &self.bars {
            Some(bars) => bars.multi.suspend(|| out.write_all(text.as_bytes()).and_then(|()| out.flush())),
            None => out.write_all(text.as_bytes()).and_then(|()| out.flush()),
        };
        result.map_err(Error::Console)
    }

    fn paint(&self, text: &str, color: Color) -> String {
        if self.style.color { format!("\x1b[{}m{text}\x1b[0m", color.code()) } else { text.to_owned() }
    }

    fn run_started(&mut self, run: &RunStarted) -> Result<(), Error> {
        let mut text = format!(
            "{} {}: target {} ({}), seed {}",
            self.paint("conform", Color::Bold),
            run.version,
            run.target,
            run.environment,
            run.seed
        );
        if !run.faults.is_empty() {
            text.push_str(&format!(", faults {}", run.faults.join(", ")));
        }
        text.push_str(&format!("\n  suites: {}", text::list_or_none(&run.suites)));
        if !run.tags.is_empty() {
            text.push_str(&format!("; tags: {}", run.tags.join(", ")));
        }
        text.push('\n');
        self.print(&text)
    }

    fn suite_started(&mut self, suite: &SuiteStarted) -> Result<(), Error> {
        if let Some(bars) = &mut self.bars {
            let bar = match suite.planned {
                Some(planned) => ProgressBar::new(planned).with_style(bar_style()),
                None => ProgressBar::new_spinner().with_style(spinner_style()),
            };
            let bar = bars.multi.add(bar.with_prefix(suite.suite.clone()));
            bars.by_suite.push((suite.suite.clone(), bar));
            return Ok(());
        }
        let planned = suite.planned.map(|n| format!(" ({} planned)", text::count(n, "check"))).unwrap_or_default();
        let text = format!("{}{planned}\n", self.paint(&format!("── {}", suite.suite), Color::Bold));
        self.print(&text)
    }

    fn check_finished(&mut self, check: &CheckRecord) -> Result<(), Error> {
        if let Some(bars) = &self.bars
            && let Some((_, bar)) = bars.by_suite.iter().find(|(suite, _)| *suite == check.suite)
        {
            bar.inc(1);
            bar.set_message(check.name.clone());
        }
        let text = match &check.outcome {
            // With bars, a pass only moves its bar.
            CheckOutcome::Passed if self.bars.is_some() => return Ok(()),
            CheckOutcome::Passed => {
                let observations = text::count(check.observations, "observation");
                format!("  {} {} ({observations})\n", self.paint("pass      ", Color::Green), check.id())
            }
            CheckOutcome::Failed(failure) => {
                let mut text = format!(
                    "  {} {}  [{}]\n             {}\n",
                    self.paint("FAIL      ", Color::Red),
                    check.id(),
                    check.rules.join(", "),
                    failure.message
                );
                if let Some((number, last)) = failure.reproduction.iter().enumerate().next_back() {
                    text.push_str("             last step:\n");
                    text.push_str(&text::step_text(number + 1, last, "               "));
                }
                text.push_str(&format!("             replay: {}\n", text::replay_command(failure)));
                text
            }
            CheckOutcome::Unverified { reason } => {
                format!("  {} {}: {reason}\n", self.paint("unverified", Color::Yellow), check.id())
            }
        };
        self.print(&text)
    }

    fn suite_finished(&mut self, suite: &SuiteFinished) -> Result<(), Error> {
        if let Some(bars) = &mut self.bars
            && let Some(index) = bars.by_suite.iter().position(|(name, _)| *name == suite.suite)
        {
            let (_, bar) = bars.by_suite.remove(index);
            bar.finish_and_clear();
            bars.multi.remove(&bar);
        }
        let text = format!(
            "   {}: {} passed, {} failed, {} unverified in {}\n",
            suite.suite,
            suite.passed,
            suite.failed,
            suite.unverified,
            text::seconds(suite.duration_ms)
        );
        self.print(&text)
    }

    fn run_finished(&mut self, finished: &RunFinished) -> Result<(), Error> {
        let mut text =
            format!("\n{} {}\n", self.paint("rules:", Color::Bold), RuleCounts::of(&finished.rules).summary());
        for rule in &finished.rules {
            let detail = match rule.result {
                RuleResult::Failed => format!("failed by {}", rule.failed_by.join(", ")),
                RuleResult::Unverified => rule.reason.clone().unwrap_or_default(),
                RuleResult::Passed | RuleResult::Exercised => continue,
            };
            let color = if rule.result == RuleResult::Failed { Color::Red } else { Color::Yellow };
            let verdict = self.paint(&format!("{:<10}", rule.result.name()), color);
            text.push_str(&format!("  {verdict} {:<8} {} — {detail}\n", rule.id, rule.title));
        }
        if let Some(gate) = &finished.gate {
            text.push_str(&self.gate_text(gate));
        }
        let exit = format!("exit {}: {}", finished.exit_code, finished.exit_meaning);
        let color = if finished.exit_code == 0 { Color::Green } else { Color::Red };
        text.push_str(&format!("{} (in {})\n", self.paint(&exit, color), text::seconds(finished.duration_ms)));
        self.print(&text)
    }

    fn gate_text(&self, gate: &GateDecision) -> String {
        let color = if gate.launch { Color::Green } else { Color::Red };
        let mut text = format!("{}\n", self.paint(&text::launch_headline(gate), color));
        for criterion in &gate.criteria {
            let color = match criterion.status {
                CriterionStatus::Passed => Color::Green,
                CriterionStatus::Waived | CriterionStatus::Unverified => Color::Yellow,
                CriterionStatus::Failed => Color::Red,
            };
            let status = self.paint(&format!("{:<10}", text::criterion_status(criterion.status)), color);
            let blocking = if criterion.blocking { "blocking" } else { "advisory" };
            text.push_str(&format!("  {status} {:<28} {blocking}  {}\n", criterion.id, criterion.explanation));
        }
        text
    }
}

impl<W: Write> Writer for Console<W> {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::RunStarted(run) => self.run_started(run),
            Event::SuiteStarted(suite) => self.suite_started(suite),
            Event::CheckFinished(check) => self.check_finished(check),
            Event::SuiteFinished(suite) => self.suite_finished(suite),
            Event::RunFinished(finished) => self.run_finished(finished),
        }
    }
}

/// The few colours the console uses.
#[derive(Clone, Copy)]
enum Color {
    Bold,
    Red,
    Green,
    Yellow,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Bold => "1",
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
        }
    }
}

// The bars carry no colour, so that NO_COLOR holds for them without depending on indicatif's own detection.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {wide_msg}")
        .expect("a valid template")
        .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>12} {spinner} {pos} checks {wide_msg}").expect("a valid template")
}

//! `summary.md`: the run in a page of GitHub-flavoured Markdown, fit for a CI job summary
//! (`cat reports/summary.md >> "$GITHUB_STEP_SUMMARY"`). The verdict and the launch decision come first, then the
//! counts, the failed checks with their rules and replay commands (each reproduction folded under it), drills'
//! evidence, the launch criteria one by one, and the unverified rules and checks folded in `<details>`. Written at
//! `RunFinished`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Writer;
use super::event::{CheckOutcome, Event, GateDecision, RuleResult, RunFinished};
use super::run_log::RunLog;
use super::text::{self, CheckCounts, RuleCounts};
use crate::error::Error;

/// The file name in the report directory.
pub const FILE_NAME: &str = "summary.md";

/// Keeps the run and writes `summary.md` when it finishes.
pub struct Markdown {
    path: PathBuf,
    log: RunLog,
}

impl Markdown {
    /// A writer of `dir/summary.md`; the file is written at `RunFinished`.
    pub fn new(dir: &Path) -> Markdown {
        Markdown { path: dir.join(FILE_NAME), log: RunLog::default() }
    }
}

impl Writer for Markdown {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::RunStarted(run) => self.log.run_started(run),
            Event::SuiteStarted(suite) => self.log.suite_started(suite),
            Event::CheckFinished(check) => self.log.check_finished(check),
            Event::SuiteFinished(suite) => self.log.suite_finished(suite),
            Event::RunFinished(finished) => {
                std::fs::write(&self.path, render(&self.log, finished))
                    .map_err(|source| Error::ReportWrite { path: self.path.clone(), source })?;
            }
        }
        Ok(())
    }
}

// `write!` into a String cannot fail; the results below are ignored for that reason.
fn render(log: &RunLog, finished: &RunFinished) -> String {
    let mut md = String::new();
    let mark = if finished.exit_code == 0 { "✅" } else { "❌" };
    let _ = writeln!(md, "# {mark} conform: exit {} — {}\n", finished.exit_code, cell(&finished.exit_meaning));
    if let Some(run) = &log.run {
        let faults =
            if run.faults.is_empty() { String::new() } else { format!(", faults {}", cell(&run.faults.join(", "))) };
        let _ = writeln!(
            md,
            "Target <code>{}</code> ({}), seed {}{faults}; suites: {}; {}.\n",
            cell(&run.target),
            cell(&run.environment),
            run.seed,
            cell(&text::list_or_none(&run.suites)),
            text::seconds(finished.duration_ms)
        );
    }
    match &finished.gate {
        Some(gate) => {
            let mark = if gate.launch { "✅" } else { "❌" };
            let _ = writeln!(md, "**Launch:** {mark} {}\n", cell(&text::launch_headline(gate)));
        }
        None => md.push_str("**Launch:** not decided (no launch criteria given)\n\n"),
    }

    let checks = CheckCounts::of(log.checks());
    let rules = RuleCounts::of(&finished.rules);
    md.push_str("| | passed | failed | unverified | exercised |\n|---|---:|---:|---:|---:|\n");
    let _ = writeln!(md, "| checks | {} | {} | {} | |", checks.passed, checks.failed, checks.unverified);
    let _ =
        writeln!(md, "| rules | {} | {} | {} | {} |\n", rules.passed, rules.failed, rules.unverified, rules.exercised);

    failed_checks(&mut md, log);
    drills(&mut md, log);
    if let Some(gate) = &finished.gate {
        criteria(&mut md, gate);
    }
    unverified(&mut md, log, finished);
    md
}

fn failed_checks(md: &mut String, log: &RunLog) {
    let failed: Vec<_> = log
        .checks()
        .filter_map(|check| match &check.outcome {
            CheckOutcome::Failed(failure) => Some((check, failure)),
            CheckOutcome::Passed | CheckOutcome::Unverified { .. } => None,
        })
        .collect();
    if failed.is_empty() {
        md.push_str("No check failed.\n\n");
        return;
    }
    let _ = writeln!(md, "## Failed checks ({})\n", failed.len());
    md.push_str("| check | finding | rules | threats | replay |\n|---|---|---|---|---|\n");
    for (check, failure) in &failed {
        let _ = writeln!(
            md,
            "| <code>{}</code> | {} | {} | {} | <code>{}</code> |",
            cell(&check.id()),
            cell(&failure.message),
            cell(&check.rules.join(", ")),
            cell(&check.threats.join(", ")),
            cell(text::replay_command(failure))
        );
    }
    md.push('\n');
    for (check, failure) in &failed {
        let _ = writeln!(md, "<details><summary>Reproduction of <code>{}</code></summary>\n", cell(&check.id()));
        md.push_str(&fenced(&text::reproduction_text(failure)));
        md.push_str("\n</details>\n\n");
    }
}

fn drills(md: &mut String, log: &RunLog) {
    let drills: Vec<_> = log.checks().filter_map(|check| check.evidence.as_ref().map(|e| (check, e))).collect();
    if drills.is_empty() {
        return;
    }
    md.push_str(
        "## Drills\n\n| drill | result | time to detect | time to contain | funds lost |\n|---|---|---|---|---|\n",
    );
    for (check, evidence) in drills {
        let _ = writeln!(
            md,
            "| <code>{}</code> | {} | {} | {} | {} |",
            cell(&check.id()),
            check.outcome.name(),
            text::optional_seconds(evidence.time_to_detect_ms),
            text::optional_seconds(evidence.time_to_contain_ms),
            cell(&evidence.funds_lost)
        );
    }
    md.push('\n');
}

fn criteria(md: &mut String, gate: &GateDecision) {
    md.push_str("## Launch criteria\n\n| criterion | blocking | status | explanation |\n|---|---|---|---|\n");
    for criterion in &gate.criteria {
        let _ = writeln!(
            md,
            "| **{}** {} | {} | {} | {} |",
            cell(&criterion.id),
            cell(&criterion.title),
            if criterion.blocking { "yes" } else { "no" },
            text::criterion_status(criterion.status),
            cell(&criterion.explanation)
        );
    }
    md.push('\n');
}

fn unverified(md: &mut String, log: &RunLog, finished: &RunFinished) {
    let rules: Vec<_> = finished.rules.iter().filter(|rule| rule.result == RuleResult::Unverified).collect();
    if !rules.is_empty() {
        let _ = writeln!(md, "<details><summary>{} unverified</summary>\n", text::count(rules.len() as u64, "rule"));
        md.push_str("| rule | title | why |\n|---|---|---|\n");
        for rule in rules {
            let reason = rule.reason.as_deref().unwrap_or("");
            let _ = writeln!(md, "| {} | {} | {} |", cell(&rule.id), cell(&rule.title), cell(reason));
        }
        md.push_str("\n</details>\n\n");
    }
    let checks: Vec<_> = log
        .checks()
        .filter_map(|check| match &check.outcome {
            CheckOutcome::Unverified { reason } => Some((check, reason)),
            CheckOutcome::Passed | CheckOutcome::Failed(_) => None,
        })
        .collect();
    if !checks.is_empty() {
        let _ = writeln!(md, "<details><summary>{} unverified</summary>\n", text::count(checks.len() as u64, "check"));
        md.push_str("| check | rules | why |\n|---|---|---|\n");
        for (check, reason) in checks {
            let _ = writeln!(
                md,
                "| <code>{}</code> | {} | {} |",
                cell(&check.id()),
                cell(&check.rules.join(", ")),
                cell(reason)
            );
        }
        md.push_str("\n</details>\n\n");
    }
}

/// Text made safe for a table cell: HTML-escaped (GitHub renders inline HTML), `|` would end the cell, and a line
/// break would end the row.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a fenced code block, with a fence longer than any run of backticks inside it.
fn fenced(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    format!("{fence}text\n{}\n{fence}\n", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::{cell, fenced};

    #[test]
    fn a_cell_cannot_break_its_table() {
        assert_eq!(cell("a | b\n<c> & d"), "a &#124; b<br>&lt;c&gt; &amp; d");
    }

    #[test]
    fn a_fence_outlasts_backticks_inside() {
        assert_eq!(fenced("x ```` y"), "`````text\nx ```` y\n`````\n");
        assert_eq!(fenced("plain"), "```text\nplain\n```\n");
    }
}

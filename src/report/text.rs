//! Plain-text pieces more than one writer shows the same way: a reproduction, a duration, verdict counts and the
//! launch headline. Presentation only: every verdict here was decided before the event was emitted.

use std::fmt::Write as _;

use super::CheckRecord;
use super::event::{
    CheckOutcome, CriterionDecision, CriterionStatus, DrillEvidence, Failure, GateDecision, ReproStep, RuleLine,
    RuleResult,
};

/// A duration in seconds with milliseconds, e.g. `12.034s` (integer arithmetic: the lints forbid floats).
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// One step of a reproduction: its number, then the request, expected and observed outcomes on aligned lines,
/// each line starting with `indent`.
pub fn step_text(number: usize, step: &ReproStep, indent: &str) -> String {
    let label = format!("{number}. ");
    let pad = " ".repeat(label.len());
    format!(
        "{indent}{label}request:  {}\n{indent}{pad}expected: {}\n{indent}{pad}observed: {}\n",
        step.request, step.expected, step.observed
    )
}

/// A failure's whole reproduction as text: what differed, every step, the seed, the file and the replay command.
/// It is what a reader of a CI log or a JUnit report needs to reproduce the finding without opening anything else.
pub fn reproduction_text(failure: &Failure) -> String {
    let mut text = format!("expected: {}\nobserved: {}\n", failure.expected, failure.observed);
    if let Some(seed) = failure.seed {
        let _ = writeln!(text, "seed: {seed}");
    }
    match failure.reproduction.len() {
        0 => text.push_str("reproduction: none recorded\n"),
        steps => {
            let _ = writeln!(text, "reproduction ({steps} steps; the last one differs):");
            for (index, step) in failure.reproduction.iter().enumerate() {
                text.push_str(&step_text(index + 1, step, "  "));
            }
        }
    }
    if let Some(file) = &failure.file {
        let _ = writeln!(text, "file: {file}");
    }
    let _ = writeln!(text, "replay: {}", replay_command(failure));
    text
}

/// A drill's evidence as text: the times to detect and contain, the funds lost, and the timeline.
pub fn evidence_text(evidence: &DrillEvidence) -> String {
    let mut text = format!(
        "drill evidence: time to detect {}; time to contain {}; funds lost {}\ntimeline:\n",
        optional_seconds(evidence.time_to_detect_ms),
        optional_seconds(evidence.time_to_contain_ms),
        evidence.funds_lost
    );
    for entry in &evidence.timeline {
        let _ = writeln!(
            text,
            "  +{:<9} {:<12} {:<15} {}",
            seconds(entry.at_ms),
            entry.phase,
            if entry.ok { "as runbook" } else { "NOT as runbook" },
            entry.text
        );
    }
    text
}

/// A duration that may not have been measured: `not reached` when it was not.
pub fn optional_seconds(ms: Option<u64>) -> String {
    ms.map_or_else(|| "not reached".to_owned(), seconds)
}

/// The replay command, or what to do without one.
pub fn replay_command(failure: &Failure) -> &str {
    failure.replay.as_deref().unwrap_or("(none: this finding has no replay file)")
}

/// `rules: …; threats: …; tags: …`, the traceability line of a check.
pub fn trace_line(check: &CheckRecord) -> String {
    format!(
        "rules: {}; threats: {}; tags: {}",
        list_or_none(&check.rules),
        list_or_none(&check.threats),
        list_or_none(&check.tags)
    )
}

/// `1 check`, `3 checks`.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Items joined by `, `, or `none`.
pub fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

/// How many checks ended each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckCounts {
    pub passed: usize,
    pub failed: usize,
    pub unverified: usize,
}

impl CheckCounts {
    pub fn of<'a>(checks: impl IntoIterator<Item = &'a CheckRecord>) -> CheckCounts {
        let mut counts = CheckCounts::default();
        for check in checks {
            match check.outcome {
                CheckOutcome::Passed => counts.passed += 1,
                CheckOutcome::Failed(_) => counts.failed += 1,
                CheckOutcome::Unverified { .. } => counts.unverified += 1,
            }
        }
        counts
    }

    pub fn total(&self) -> usize {
        self.passed + self.failed + self.unverified
    }
}

/// How many rules got each verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuleCounts {
    pub passed: usize,
    pub failed: usize,
    pub exercised: usize,
    pub unverified: usize,
}

impl RuleCounts {
    pub fn of(rules: &[RuleLine]) -> RuleCounts {
        let mut counts = RuleCounts::default();
        for rule in rules {
            match rule.result {
                RuleResult::Passed => counts.passed += 1,
                RuleResult::Failed => counts.failed += 1,
                RuleResult::Exercised => counts.exercised += 1,
                RuleResult::Unverified => counts.unverified += 1,
            }
        }
        counts
    }

    /// `3 passed, 1 failed, 0 exercised, 2 unverified`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} exercised, {} unverified",
            self.passed, self.failed, self.exercised, self.unverified
        )
    }
}

/// The blocking criteria that stand in the way of launch, as the gate decided them (failed or unverified, without a
/// valid waiver).
pub fn blocking_unmet(gate: &GateDecision) -> Vec<&CriterionDecision> {
    gate.criteria
        .iter()
        .filter(|c| c.blocking && matches!(c.status, CriterionStatus::Failed | CriterionStatus::Unverified))
        .collect()
}

/// One line for the launch decision: `launch may go ahead` or `launch refused: 2 of 13 blocking criteria not met
/// (LC-A, LC-B)`.
pub fn launch_headline(gate: &GateDecision) -> String {
    if gate.launch {
        return "launch may go ahead".to_owned();
    }
    let unmet = blocking_unmet(gate);
    let blocking = gate.criteria.iter().filter(|c| c.blocking).count();
    let ids: Vec<&str> = unmet.iter().map(|c| c.id.as_str()).collect();
    format!("launch refused: {} of {blocking} blocking criteria not met ({})", unmet.len(), ids.join(", "))
}

/// A criterion's status word.
pub fn criterion_status(status: CriterionStatus) -> &'static str {
    match status {
        CriterionStatus::Passed => "passed",
        CriterionStatus::Failed => "failed",
        CriterionStatus::Unverified => "unverified",
        CriterionStatus::Waived => "waived",
    }
}

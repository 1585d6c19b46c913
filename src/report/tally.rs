//! The verdict per rule and the coverage per threat, tallied from a run's checks. This is where verdicts are
//! decided; writers only show them.
//!
//! A rule is `failed` when a check tracing to it failed; `passed` when a check against a target tracing to it
//! passed; `exercised` when only the model suite went through it; `unverified` otherwise (with the reason of an
//! unverified check of it when there is one). Checks of the `model` suite never pass a rule: the model is the
//! oracle, not the target.

use super::CheckRecord;
use super::event::{CheckOutcome, RuleLine, RuleResult, ThreatLine};
use crate::contracts::{Rules, Threats};

/// The suite that runs the model alone.
pub const MODEL_SUITE: &str = "model";

/// The verdict of every rule of the catalog, in catalog order.
pub fn rule_lines(rules: &Rules, checks: &[CheckRecord]) -> Vec<RuleLine> {
    rules.iter().map(|rule| rule_line(&rule.id, &rule.title, checks)).collect()
}

/// The verdict of one rule from the checks that trace to it; `title` only labels the line. The launch gate decides
/// its rule evidence with this too, so that a rule means the same in the reports and in the launch decision.
pub fn rule_line(id: &str, title: &str, checks: &[CheckRecord]) -> RuleLine {
    let of_rule = || checks.iter().filter(|c| c.rules.iter().any(|r| r == id));
    let failed_by: Vec<String> =
        of_rule().filter(|c| matches!(c.outcome, CheckOutcome::Failed(_))).map(CheckRecord::id).collect();
    let passed = |model: bool| {
        of_rule()
            .filter(|c| c.outcome == CheckOutcome::Passed && (c.suite == MODEL_SUITE) == model)
            .map(|c| c.observations.max(1))
            .sum::<u64>()
    };
    let unverified_reason = of_rule().find_map(|c| match &c.outcome {
        CheckOutcome::Unverified { reason } => Some(format!("{}: {reason}", c.id())),
        _ => None,
    });
    let (result, count, reason) = if !failed_by.is_empty() {
        (RuleResult::Failed, passed(false), None)
    } else if passed(false) > 0 {
        (RuleResult::Passed, passed(false), None)
    } else if passed(true) > 0 {
        (RuleResult::Exercised, passed(true), Some("only the model went through it".to_owned()))
    } else {
        let reason = unverified_reason.unwrap_or_else(|| "no check that ran traces to it".to_owned());
        (RuleResult::Unverified, 0, Some(reason))
    };
    RuleLine { id: id.to_owned(), title: title.to_owned(), result, count, failed_by, reason }
}

/// Each threat with the verdicts of its rules.
pub fn threat_lines(threats: &Threats, rules: &[RuleLine]) -> Vec<ThreatLine> {
    threats
        .iter()
        .map(|threat| ThreatLine {
            id: threat.id.clone(),
            title: threat.title.clone(),
            rules: threat
                .rules
                .iter()
                .map(|id| {
                    let result = rules.iter().find(|r| r.id == *id).map_or(RuleResult::Unverified, |r| r.result);
                    (id.clone(), result)
                })
                .collect(),
        })
        .collect()
}

/// The threats of `rules` (through the catalog), sorted and without repeats: every check is tagged with them.
pub fn threats_of(catalog: &Rules, rules: &[String]) -> Vec<String> {
    let mut threats: Vec<String> =
        rules.iter().filter_map(|id| catalog.get(id)).flat_map(|rule| rule.threats.iter().cloned()).collect();
    threats.sort();
    threats.dedup();
    threats
}

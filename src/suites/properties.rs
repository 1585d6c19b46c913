//! The property suite against a target: generated scenarios run side by side on the model and the target (one
//! suite body for every target), the first difference shrunk to a minimal scenario and saved with its seed and
//! the model-versus-target trace, replayable with `conform replay`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use conform_reference::generate::{Step, scenario};
use proptest::test_runner::{TestCaseError, TestError};
use serde::Serialize;

use super::model::GeneratedOptions;
use super::{CheckResult, Reporter, Session, differential_failure, runner};
use crate::error::Error;
use crate::oracle::differential::{DifferentialRun, Exchange, Finding};
use crate::report::CheckOutcome;

/// A difference, shrunk, with the exchanges that show it: the replayable file `counterexample-target.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCounterexample {
    /// Always `target`.
    pub kind: &'static str,
    /// The seed that found it.
    pub seed: u64,
    /// The target's name.
    pub target: String,
    /// The minimal scenario.
    pub steps: Vec<Step>,
    /// The difference and the rules it breaks.
    pub finding: Finding,
    /// Every exchange of the minimal scenario, model and target side by side.
    pub trace: Vec<Exchange>,
}

/// The file a target difference is saved to.
pub const COUNTEREXAMPLE_FILE: &str = "counterexample-target.json";

/// Totals of a property run, for the console and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct PropertyTotals {
    /// Requests compared (generated cases only, not the shrinker's re-runs).
    pub requests: usize,
    /// Requests whose outcome the target did not report.
    pub unknown: usize,
    /// Why, for the first few of them.
    pub unknown_reasons: Vec<String>,
    /// Checks made and held, per rule.
    pub checks: BTreeMap<&'static str, u64>,
    /// Whether a difference was found.
    pub failed: bool,
}

/// Runs the property suite against the session's target and reports its checks.
pub fn run(
    session: &mut Session,
    options: GeneratedOptions,
    replay_hint: &str,
    report_dir: &Path,
    reporter: &mut Reporter<'_>,
) -> Result<PropertyTotals, Error> {
    let started = Instant::now();
    let mut suite = reporter.suite("properties", None)?;
    let session = RefCell::new(session);
    let totals = RefCell::new(PropertyTotals::default());
    let shrinking = RefCell::new(false);
    let mut runner = runner(options.seed, options.cases, 512);
    let execute = |steps: &[Step]| -> DifferentialRun { session.borrow_mut().run_steps(steps) };
    let result = runner.run(&scenario(1..=options.max_steps.max(1)), |steps| {
        let run = execute(&steps);
        if !*shrinking.borrow() {
            let mut totals = totals.borrow_mut();
            totals.requests += run.requests;
            totals.unknown += run.unknown.len();
            for (index, reason) in &run.unknown {
                if totals.unknown_reasons.len() < 5 {
                    totals.unknown_reasons.push(format!("request {index}: {reason}"));
                }
            }
            for (rule, n) in &run.checks {
                *totals.checks.entry(rule).or_default() += n;
            }
        }
        match run.finding {
            None => Ok(()),
            Some(finding) => {
                *shrinking.borrow_mut() = true;
                Err(TestCaseError::fail(format!("{:?}", finding.difference.rules)))
            }
        }
    });
    let counterexample = match result {
        Ok(()) => None,
        Err(TestError::Fail(_, steps)) => {
            let run = execute(&steps);
            let target = session.borrow().profile().name().to_owned();
            run.finding.map(|finding| TargetCounterexample {
                kind: "target",
                seed: options.seed,
                target,
                steps,
                finding,
                trace: run.trace,
            })
        }
        Err(TestError::Abort(reason)) => return Err(Error::Usage(format!("the generator gave up: {reason}"))),
    };
    let mut totals = totals.into_inner();
    for (rule, n) in &totals.checks {
        if suite.selected(&[rule], &[]) {
            let mut check = CheckResult::new(*rule, vec![*rule], CheckOutcome::Passed);
            check.observations = *n;
            suite.check(check)?;
        }
    }
    if totals.unknown > 0 {
        let reason = format!(
            "{} of {} requests had no outcome to judge: {}",
            totals.unknown,
            totals.requests,
            totals.unknown_reasons.join("; ")
        );
        suite.check(CheckResult::new(
            "outcomes reported",
            Vec::<String>::new(),
            CheckOutcome::Unverified { reason },
        ))?;
    }
    if let Some(counterexample) = counterexample {
        totals.failed = true;
        let file = crate::run::write_json(report_dir, COUNTEREXAMPLE_FILE, &counterexample)?;
        let failure = differential_failure(
            &counterexample.finding,
            &counterexample.trace,
            Some(counterexample.seed),
            Some(COUNTEREXAMPLE_FILE.to_owned()),
            Some(format!("conform replay {}{replay_hint}", file.display())),
        );
        let mut check = CheckResult::new(
            "counterexample",
            counterexample.finding.difference.rules.clone(),
            CheckOutcome::Failed(failure),
        );
        check.requests = counterexample.trace.len() as u64;
        check.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(check)?;
    }
    suite.finish()?;
    Ok(totals)
}

//! The model suite: generated scenarios on the reference model alone, every invariant and rule checked after every
//! request; the first failure shrunk and saved with its seed. It proves the oracle consistent before any target is
//! judged by it; its checks never pass a rule for a target (they are `exercised`).

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

use conform_reference::generate::{Step, scenario};
use conform_reference::model_suite::{Coverage, ModelFinding, check_on_model};
use proptest::test_runner::{TestCaseError, TestError};
use serde::Serialize;

use super::{CheckResult, Reporter, runner};
use crate::error::Error;
use crate::report::CheckOutcome;
use crate::report::event::{Failure, ReproStep};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct GeneratedOptions {
    /// Drives all generation.
    pub seed: u64,
    /// Scenarios to generate.
    pub cases: u32,
    /// Longest scenario, in steps.
    pub max_steps: usize,
}

/// A failure on the model, shrunk: the replayable file `counterexample-model.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCounterexample {
    /// Always `model`.
    pub kind: &'static str,
    /// The seed that found it.
    pub seed: u64,
    /// The rules broken.
    pub rules: Vec<&'static str>,
    /// The minimal scenario.
    pub steps: Vec<Step>,
    /// What went wrong, at which request.
    pub detail: String,
}

/// The file a model failure is saved to.
pub const COUNTEREXAMPLE_FILE: &str = "counterexample-model.json";

/// Runs the model suite and reports its checks: one per rule it checked (and per transition row it fired), and the
/// shrunk failure if any.
pub fn run(options: GeneratedOptions, report_dir: &Path, reporter: &mut Reporter<'_>) -> Result<Coverage, Error> {
    let started = Instant::now();
    let mut suite = reporter.suite("model", None)?;
    let mut runner = runner(options.seed, options.cases, 4096);
    let coverage = RefCell::new(Coverage::default());
    let first_finding: RefCell<Option<ModelFinding>> = RefCell::new(None);
    let shrinking = RefCell::new(false);
    let result = runner.run(&scenario(1..=options.max_steps.max(1)), |steps| {
        // Coverage counts the generated cases only, not the shrinker's re-runs.
        let mut scratch = Coverage::default();
        let outcome = check_on_model(&steps, &mut scratch);
        if !*shrinking.borrow() {
            coverage.borrow_mut().merge(&scratch);
        }
        outcome.map_err(|finding| {
            *shrinking.borrow_mut() = true;
            let message = format!("{:?}", finding.rules);
            *first_finding.borrow_mut() = Some(finding);
            TestCaseError::fail(message)
        })
    });
    let counterexample = match result {
        Ok(()) => None,
        Err(TestError::Fail(_, steps)) => {
            // Re-run the minimal scenario to describe exactly what it breaks.
            let finding = check_on_model(&steps, &mut Coverage::default()).err().or_else(|| first_finding.take());
            finding.map(|f| ModelCounterexample {
                kind: "model",
                seed: options.seed,
                rules: f.rules,
                steps,
                detail: f.detail,
            })
        }
        Err(TestError::Abort(reason)) => return Err(Error::Usage(format!("the generator gave up: {reason}"))),
    };
    let coverage = coverage.into_inner();
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut counts = coverage.checks.clone();
    for (rule, n) in &coverage.transitions {
        *counts.entry(rule).or_default() += n;
    }
    for (rule, n) in counts {
        if !suite.selected(&[rule], &[]) {
            continue;
        }
        let mut check = CheckResult::new(rule, vec![rule], CheckOutcome::Passed);
        check.observations = n;
        suite.check(check)?;
    }
    if let Some(counterexample) = counterexample {
        let file = crate::run::write_json(report_dir, COUNTEREXAMPLE_FILE, &counterexample)?;
        let failure = Failure {
            message: format!("the model breaks {} (seed {})", counterexample.rules.join(", "), counterexample.seed),
            expected: "every invariant and rule holds on the model".to_owned(),
            observed: counterexample.detail.clone(),
            seed: Some(counterexample.seed),
            reproduction: counterexample
                .steps
                .iter()
                .map(|step| ReproStep {
                    request: format!("{step:?}"),
                    expected: String::new(),
                    observed: String::new(),
                })
                .collect(),
            file: Some(COUNTEREXAMPLE_FILE.to_owned()),
            replay: Some(format!("conform replay {}", file.display())),
        };
        let mut check = CheckResult::new("counterexample", counterexample.rules.clone(), CheckOutcome::Failed(failure));
        check.duration_ms = duration_ms;
        suite.check(check)?;
    }
    suite.finish()?;
    Ok(coverage)
}

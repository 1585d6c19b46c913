//! `conform run` on the model alone: the property suite over generated scenarios, every rule checked after every
//! request, the first failure shrunk to a minimal scenario and saved with its seed.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use conform_reference::generate::{Step, scenario};
use conform_reference::model_suite::{Coverage, ModelFinding, check_on_model};
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use serde::Serialize;

use crate::error::Error;

/// What to run.
#[derive(Debug, Clone)]
pub struct ModelRunOptions {
    /// Drives all generation.
    pub seed: u64,
    /// Scenarios to generate.
    pub cases: u32,
    /// Longest scenario, in steps.
    pub max_steps: usize,
}

/// A failure, shrunk.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// The seed that found it.
    pub seed: u64,
    /// The rules broken.
    pub rules: Vec<&'static str>,
    /// The minimal scenario.
    pub steps: Vec<Step>,
    /// What went wrong, at which request.
    pub detail: String,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRunReport {
    /// The seed.
    pub seed: u64,
    /// Scenarios generated.
    pub cases: u32,
    /// What was exercised and checked.
    pub coverage: Coverage,
    /// The shrunk failure, if any.
    pub counterexample: Option<Counterexample>,
}

/// The seed as proptest's ChaCha RNG wants it.
pub fn rng_seed(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed.rotate_left(i as u32 * 16) ^ (i as u64)).to_le_bytes());
    }
    bytes
}

/// Runs the model property suite.
pub fn run_model(options: &ModelRunOptions) -> ModelRunReport {
    let config =
        Config { cases: options.cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(options.seed)));
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
        match outcome {
            Ok(()) => Ok(()),
            Err(finding) => {
                *shrinking.borrow_mut() = true;
                let message = format!("{:?}", finding.rules);
                *first_finding.borrow_mut() = Some(finding);
                Err(proptest::test_runner::TestCaseError::fail(message))
            }
        }
    });
    let counterexample = match result {
        Ok(()) => None,
        Err(TestError::Fail(_, steps)) => {
            // Re-run the minimal scenario to describe exactly what it breaks.
            let finding = check_on_model(&steps, &mut Coverage::default()).err().or_else(|| first_finding.take());
            finding.map(|f| Counterexample { seed: options.seed, rules: f.rules, steps, detail: f.detail })
        }
        Err(TestError::Abort(reason)) => Some(Counterexample {
            seed: options.seed,
            rules: vec![],
            steps: vec![],
            detail: format!("the generator gave up: {reason}"),
        }),
    };
    ModelRunReport { seed: options.seed, cases: options.cases, coverage: coverage.into_inner(), counterexample }
}

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Usage(format!("cannot encode {name}: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(|source| Error::ReportWrite { path: path.clone(), source })?;
    Ok(path)
}

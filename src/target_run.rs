//! `conform run` against a target: the property suite driven differentially (model and target side by side,
//! through the profile), the first difference shrunk to a minimal scenario with its trace, and per-rule checks.
//!
//! Today the target is the embedded one, started in-process with the SHKeeper simulator standing in for the
//! provider; any profile-bound target runs through the same [`run_differential`] body.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use conform_embedded::TargetConfig;
use conform_embedded::faults::FaultSet;
use conform_reference::generate::{Abilities, Step, scenario};
use conform_reference::ledger::Provider;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::Serialize;

use crate::drive::http::{HttpConfig, HttpDriver};
use crate::error::Error;
use crate::model_run::rng_seed;
use crate::oracle::differential::{DifferentialRun, Exchange, Finding, run_differential};
use crate::oracle::http_target::HttpTarget;
use crate::profile::Profile;
use crate::simulate::{ShkeeperConfig, ShkeeperSim};

/// What to run against the embedded target.
#[derive(Debug, Clone)]
pub struct TargetRunOptions {
    /// Drives all generation.
    pub seed: u64,
    /// Scenarios to generate.
    pub cases: u32,
    /// Longest scenario, in steps.
    pub max_steps: usize,
    /// Faults to start the embedded target with.
    pub faults: FaultSet,
}

/// A difference, shrunk, with the exchanges that show it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCounterexample {
    /// The seed that found it.
    pub seed: u64,
    /// The minimal scenario.
    pub steps: Vec<Step>,
    /// The difference and the rules it breaks.
    pub finding: Finding,
    /// Every exchange of the minimal scenario, model and target side by side.
    pub trace: Vec<Exchange>,
}

/// What a run against a target found.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRunReport {
    /// The target's name.
    pub target: String,
    /// The seed.
    pub seed: u64,
    /// Scenarios generated.
    pub cases: u32,
    /// Requests sent (generated cases only, not the shrinker's re-runs).
    pub requests: usize,
    /// Requests whose outcome the target did not report.
    pub unknown: usize,
    /// Why, for the first few of them.
    pub unknown_reasons: Vec<String>,
    /// Checks made and held, per rule.
    pub checks: BTreeMap<&'static str, u64>,
    /// The shrunk difference, if any.
    pub counterexample: Option<TargetCounterexample>,
}

/// The steps the embedded target can follow: its test clock, and SHKeeper or manual escrows (the simulator
/// stands in for SHKeeper only).
fn embedded_abilities() -> Abilities {
    Abilities {
        clock: true,
        switch_providers: false,
        providers: vec![Provider::Shkeeper, Provider::ManualWallet],
        payout_callbacks: vec![Provider::Shkeeper],
    }
}

/// Runs the differential property suite against the embedded target.
pub fn run_embedded(options: &TargetRunOptions) -> Result<TargetRunReport, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    let profile =
        Profile::parse("contracts/profiles/embedded.toml", include_str!("../contracts/profiles/embedded.toml"))
            .map_err(|e| Error::Usage(e.to_string()))?;
    let (_target, _sim, adapter) = runtime.block_on(async {
        let sim = Arc::new(
            ShkeeperSim::start(ShkeeperConfig::default())
                .await
                .map_err(|e| Error::Usage(format!("cannot start the SHKeeper simulator: {e}")))?,
        );
        let config = TargetConfig {
            faults: options.faults.clone(),
            test_mode: true,
            shkeeper_url: Some(sim.base_url()),
            shkeeper_api_key: sim.config().api_key.clone(),
            ..TargetConfig::default()
        };
        let target = conform_embedded::start(config)
            .await
            .map_err(|e| Error::Usage(format!("cannot start the embedded target: {e}")))?;
        let http = HttpDriver::new(HttpConfig::new(target.base_url()))
            .map_err(|e| Error::Usage(format!("cannot build the HTTP driver: {e}")))?;
        let key = sim.config().api_key.clone();
        let adapter = HttpTarget::new(profile, http, sim.clone(), key, format!("seed{}", options.seed));
        Ok::<_, Error>((target, sim, adapter))
    })?;
    let adapter = RefCell::new(adapter);
    let abilities = embedded_abilities();
    let totals = RefCell::new((0usize, 0usize, BTreeMap::<&'static str, u64>::new(), Vec::<String>::new()));
    let shrinking = RefCell::new(false);
    let config = Config { cases: options.cases, failure_persistence: None, max_shrink_iters: 512, ..Config::default() };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(options.seed)));
    let execute = |steps: &[Step]| -> DifferentialRun {
        runtime.block_on(run_differential(&mut *adapter.borrow_mut(), steps, &abilities))
    };
    let result = runner.run(&scenario(1..=options.max_steps.max(1)), |steps| {
        let run = execute(&steps);
        if !*shrinking.borrow() {
            let mut totals = totals.borrow_mut();
            totals.0 += run.requests;
            totals.1 += run.unknown.len();
            for (index, reason) in &run.unknown {
                if totals.3.len() < 5 {
                    totals.3.push(format!("request {index}: {reason}"));
                }
            }
            for (rule, n) in &run.checks {
                *totals.2.entry(rule).or_default() += n;
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
            run.finding.map(|finding| TargetCounterexample { seed: options.seed, steps, finding, trace: run.trace })
        }
        Err(TestError::Abort(reason)) => return Err(Error::Usage(format!("the generator gave up: {reason}"))),
    };
    let (requests, unknown, checks, unknown_reasons) = totals.into_inner();
    Ok(TargetRunReport {
        target: "embedded".to_owned(),
        seed: options.seed,
        cases: options.cases,
        requests,
        unknown,
        unknown_reasons,
        checks,
        counterexample,
    })
}

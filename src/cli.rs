//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::contracts::Rules;
use crate::error::Error;
use crate::exit::Exit;
use crate::model_run::{ModelRunOptions, run_model, write_json};
use crate::target_run::{TargetRunOptions, run_embedded};
use std::collections::BTreeMap;

const EXIT_STATUSES: &str = "\
Exit statuses:
  0  passed: every check that ran passed
  1  findings: at least one rule is broken (see the reports)
  2  usage or configuration error: a flag, profile, contract or input file is wrong; nothing ran
  3  target unreachable
  4  nothing ran: no case or check was selected";

/// conform: verification and conformance harness for escrow payment backends.
#[derive(Debug, Parser)]
#[command(name = "conform", version, after_help = EXIT_STATUSES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the suites and write reports.
    ///
    /// The property suite runs on the reference model alone (every invariant after every request), then
    /// differentially against the embedded target, started in-process with the SHKeeper simulator: the model
    /// predicts, the target answers over real HTTP, and the first difference is shrunk to a minimal scenario and
    /// saved with its trace and seed.
    #[command(
        after_help = "Examples:\n  conform run\n  conform run --seed 7 --cases 500 --report-dir /tmp/conform\n  \
                            conform run --fault release-race      # the embedded target with a known defect\n  \
                            conform run --model-only"
    )]
    Run {
        /// Seed for all generation; the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of generated scenarios (per suite).
        #[arg(long, default_value_t = 256)]
        cases: u32,
        /// Longest scenario, in steps.
        #[arg(long, default_value_t = 120)]
        max_steps: usize,
        /// Where reports are written (created if missing).
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
        /// Only the model: no target is started.
        #[arg(long)]
        model_only: bool,
        /// Start the embedded target with this named fault (repeatable; `conform serve embedded --list-faults`).
        #[arg(long = "fault", value_name = "NAME")]
        faults: Vec<String>,
        /// Scenarios against the target (each costs real HTTP requests).
        #[arg(long, default_value_t = 64)]
        target_cases: u32,
    },
    /// Run a payment provider simulator (SHKeeper or Request Network) for a backend to talk to, until Ctrl-C.
    ///
    /// It answers the provider's API and sends its signed callbacks; `--help` of each provider tells how to point
    /// a backend at it.
    #[command(subcommand)]
    Simulate(crate::simulate::SimulateCommand),
    /// Validate a profile (the binding of a target) and probe the target's capabilities.
    #[command(subcommand)]
    Profile(crate::profile::check::ProfileCommand),
    /// Run a target in the foreground until Ctrl-C: `conform serve embedded [--fault NAME]… [--test-mode]`.
    #[command(subcommand)]
    Serve(crate::serve::ServeCommand),
    /// Decide whether the target may launch, from a run's events and the launch criteria (SPEC §10).
    Gate(crate::gate::GateCommand),
}

/// Runs the command line and returns the exit status.
pub fn main(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Run { seed, cases, max_steps, report_dir, model_only, faults, target_cases } => {
            match conform_embedded::faults::FaultSet::parse(&faults) {
                Err(e) => Err(Error::Usage(e.to_string())),
                Ok(faults) => {
                    let target =
                        (!model_only).then_some(TargetRunOptions { seed, cases: target_cases, max_steps, faults });
                    run(&ModelRunOptions { seed, cases, max_steps }, target.as_ref(), &report_dir)
                }
            }
        }
        Command::Simulate(command) => return crate::simulate::run(command),
        Command::Profile(command) => return crate::profile::check::run(command),
        Command::Serve(command) => return crate::serve::run(command),
        Command::Gate(command) => return crate::gate::run(command),
    };
    result.unwrap_or_else(|error| {
        eprintln!("conform: {error}");
        error.exit()
    })
}

/// The verdict of one rule in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleResult {
    /// Checked and never broken.
    Passed,
    /// Broken at least once.
    Failed,
    /// The model went through it, but nothing here compares it with a target.
    Exercised,
    /// Not checked by what ran.
    Unverified,
}

/// One line of the per-rule summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleLine {
    /// Rule id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The verdict.
    pub result: RuleResult,
    /// How often it was checked (or, for exercised rules, fired).
    pub count: u64,
    /// Why it is unverified.
    pub reason: Option<&'static str>,
}

/// The per-rule verdicts of a run, in catalog order: failed when a suite broke the rule, passed when some check
/// of it held, exercised when the model only went through it, unverified otherwise.
pub fn rule_lines(
    rules: &Rules,
    checks: &BTreeMap<&'static str, u64>,
    exercised: &BTreeMap<&'static str, u64>,
    failed: &[&'static str],
    unverified_reason: &'static str,
) -> Vec<RuleLine> {
    rules
        .iter()
        .map(|rule| {
            let id = rule.id.as_str();
            let checked = checks.get(id).copied().unwrap_or(0);
            let fired = exercised.get(id).copied().unwrap_or(0);
            let (result, count, reason) = if failed.contains(&id) {
                (RuleResult::Failed, checked, None)
            } else if checked > 0 {
                (RuleResult::Passed, checked, None)
            } else if fired > 0 {
                (RuleResult::Exercised, fired, None)
            } else {
                (RuleResult::Unverified, 0, Some(unverified_reason))
            };
            RuleLine { id: rule.id.clone(), title: rule.title.clone(), result, count, reason }
        })
        .collect()
}

fn run(options: &ModelRunOptions, target: Option<&TargetRunOptions>, report_dir: &PathBuf) -> Result<Exit, Error> {
    let rules = Rules::embedded()?;
    std::fs::create_dir_all(report_dir).map_err(|source| Error::ReportWrite { path: report_dir.clone(), source })?;
    if options.cases == 0 && target.is_none_or(|t| t.cases == 0) {
        eprintln!("conform: nothing ran (--cases 0)");
        return Ok(Exit::NothingRan);
    }
    println!(
        "conform run: property suite on the reference model (seed {}, {} cases, up to {} steps)",
        options.seed, options.cases, options.max_steps
    );
    let model = run_model(options);
    println!("  {} requests applied to the model", model.coverage.requests);
    let mut checks = model.coverage.checks.clone();
    let mut failed: Vec<&'static str> = model.counterexample.as_ref().map(|c| c.rules.clone()).unwrap_or_default();
    let target_report = match target {
        None => None,
        Some(target) => {
            let faults: Vec<_> = target.faults.iter().map(|f| f.name()).collect();
            println!(
                "conform run: property suite against the embedded target{} ({} cases)",
                if faults.is_empty() { String::new() } else { format!(" with faults {}", faults.join(", ")) },
                target.cases
            );
            let report = run_embedded(target)?;
            println!("  {} requests compared, {} without an outcome", report.requests, report.unknown);
            for reason in &report.unknown_reasons {
                println!("    {reason}");
            }
            for (rule, n) in &report.checks {
                *checks.entry(rule).or_default() += n;
            }
            if let Some(c) = &report.counterexample {
                failed.extend(c.finding.difference.rules.iter().copied());
            }
            Some(report)
        }
    };
    let reason = if target.is_some() {
        "no suite that ran checks it yet"
    } else {
        "needs a target: no suite that runs on the model alone checks it"
    };
    let lines = rule_lines(&rules, &checks, &model.coverage.transitions, &failed, reason);
    println!("{:<8} {:<11} {:>9}  title", "rule", "result", "count");
    for line in &lines {
        let result = match line.result {
            RuleResult::Passed => "passed",
            RuleResult::Failed => "FAILED",
            RuleResult::Exercised => "exercised",
            RuleResult::Unverified => "unverified",
        };
        println!("{:<8} {:<11} {:>9}  {}", line.id, result, line.count, line.title);
    }
    let count = |r| lines.iter().filter(|l| l.result == r).count();
    println!(
        "rules: {} passed, {} failed, {} exercised, {} unverified",
        count(RuleResult::Passed),
        count(RuleResult::Failed),
        count(RuleResult::Exercised),
        count(RuleResult::Unverified)
    );
    let summary = serde_json::json!({
        "seed": model.seed,
        "model": { "cases": model.cases, "coverage": model.coverage },
        "target": target_report.as_ref().map(|r| serde_json::json!({
            "name": r.target, "cases": r.cases, "requests": r.requests, "unknown": r.unknown, "checks": r.checks,
        })),
        "rules": lines,
    });
    let path = write_json(report_dir, "summary.json", &summary)?;
    println!("wrote {}", path.display());
    let mut exit = Exit::Passed;
    if let Some(counterexample) = &model.counterexample {
        let path = write_json(report_dir, "counterexample-model.json", counterexample)?;
        println!(
            "finding on the model: {:?} broken (seed {}), minimal scenario of {} steps written to {}\n  {}",
            counterexample.rules,
            counterexample.seed,
            counterexample.steps.len(),
            path.display(),
            counterexample.detail
        );
        exit = Exit::Findings;
    }
    if let Some(counterexample) = target_report.as_ref().and_then(|r| r.counterexample.as_ref()) {
        let path = write_json(report_dir, "counterexample-target.json", counterexample)?;
        let d = &counterexample.finding.difference;
        println!(
            "finding on the target: {:?} broken (seed {}), minimal scenario of {} steps written to {}\n  at request {}: {:?}\n  expected: {}\n  observed: {}",
            d.rules,
            counterexample.seed,
            counterexample.steps.len(),
            path.display(),
            counterexample.finding.request_index,
            counterexample.finding.request.op,
            d.expected,
            d.observed
        );
        exit = Exit::Findings;
    }
    Ok(exit)
}

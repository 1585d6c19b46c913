//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::contracts::Rules;
use crate::error::Error;
use crate::exit::Exit;
use crate::model_run::{ModelRunOptions, ModelRunReport, run_model, write_json};

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
    /// Today this runs the property suite on the reference model alone: generated scenarios by generated actors,
    /// every invariant checked after every request, the first failure shrunk to a minimal scenario and saved.
    #[command(after_help = "Examples:\n  conform run\n  conform run --seed 7 --cases 2000 --report-dir /tmp/conform")]
    Run {
        /// Seed for all generation; the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of generated scenarios.
        #[arg(long, default_value_t = 256)]
        cases: u32,
        /// Longest scenario, in steps.
        #[arg(long, default_value_t = 120)]
        max_steps: usize,
        /// Where reports are written (created if missing).
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
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
}

/// Runs the command line and returns the exit status.
pub fn main(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Run { seed, cases, max_steps, report_dir } => {
            run(&ModelRunOptions { seed, cases, max_steps }, &report_dir)
        }
        Command::Simulate(command) => return crate::simulate::run(command),
        Command::Profile(command) => return crate::profile::check::run(command),
        Command::Serve(command) => return crate::serve::run(command),
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

/// The per-rule verdicts of a model run, in catalog order.
pub fn rule_lines(rules: &Rules, report: &ModelRunReport) -> Vec<RuleLine> {
    let failed = report.counterexample.as_ref().map(|c| c.rules.clone()).unwrap_or_default();
    rules
        .iter()
        .map(|rule| {
            let id = rule.id.as_str();
            let checks = report.coverage.checks.get(id).copied().unwrap_or(0);
            let fired = report.coverage.transitions.get(id).copied().unwrap_or(0);
            let (result, count, reason) = if failed.contains(&id) {
                (RuleResult::Failed, checks, None)
            } else if checks > 0 {
                (RuleResult::Passed, checks, None)
            } else if fired > 0 {
                (RuleResult::Exercised, fired, None)
            } else {
                (RuleResult::Unverified, 0, Some("needs a target: no suite that runs on the model alone checks it"))
            };
            RuleLine { id: rule.id.clone(), title: rule.title.clone(), result, count, reason }
        })
        .collect()
}

fn run(options: &ModelRunOptions, report_dir: &PathBuf) -> Result<Exit, Error> {
    let rules = Rules::embedded()?;
    std::fs::create_dir_all(report_dir).map_err(|source| Error::ReportWrite { path: report_dir.clone(), source })?;
    if options.cases == 0 {
        eprintln!("conform: nothing ran (--cases 0)");
        return Ok(Exit::NothingRan);
    }
    println!(
        "conform run: property suite on the reference model (seed {}, {} cases, up to {} steps)",
        options.seed, options.cases, options.max_steps
    );
    let report = run_model(options);
    let lines = rule_lines(&rules, &report);
    println!("{} requests applied", report.coverage.requests);
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
        "{} passed, {} failed, {} exercised, {} unverified",
        count(RuleResult::Passed),
        count(RuleResult::Failed),
        count(RuleResult::Exercised),
        count(RuleResult::Unverified)
    );
    let summary =
        serde_json::json!({ "seed": report.seed, "cases": report.cases, "coverage": report.coverage, "rules": lines });
    let path = write_json(report_dir, "model-summary.json", &summary)?;
    println!("wrote {}", path.display());
    match &report.counterexample {
        None => Ok(Exit::Passed),
        Some(counterexample) => {
            let path = write_json(report_dir, "counterexample-model.json", counterexample)?;
            println!(
                "finding: {:?} broken (seed {}), minimal scenario of {} steps written to {}\n  {}",
                counterexample.rules,
                counterexample.seed,
                counterexample.steps.len(),
                path.display(),
                counterexample.detail
            );
            Ok(Exit::Findings)
        }
    }
}

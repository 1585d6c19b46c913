//! A plain console writer: one line per suite and per failed or unverified check, and the verdict counts.

use super::event::RuleResult;
use super::{CheckOutcome, Event, Writer};
use crate::error::Error;

/// Prints to standard output.
pub struct Plain;

impl Writer for Plain {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::RunStarted(run) => println!(
                "conform run: target {} ({}), seed {}{}",
                run.target,
                run.environment,
                run.seed,
                if run.faults.is_empty() { String::new() } else { format!(", faults {}", run.faults.join(", ")) }
            ),
            Event::SuiteStarted(suite) => println!("suite {}", suite.suite),
            Event::CheckFinished(check) => match &check.outcome {
                CheckOutcome::Passed => {}
                CheckOutcome::Failed(failure) => {
                    println!("  FAILED {} [{}]: {}", check.id(), check.rules.join(", "), failure.message);
                    println!("    expected: {}\n    observed: {}", failure.expected, failure.observed);
                    if let Some(replay) = &failure.replay {
                        println!("    replay:   {replay}");
                    }
                }
                CheckOutcome::Unverified { reason } => println!("  unverified {}: {reason}", check.id()),
            },
            Event::SuiteFinished(s) => println!(
                "  {}: {} passed, {} failed, {} unverified ({} ms)",
                s.suite, s.passed, s.failed, s.unverified, s.duration_ms
            ),
            Event::RunFinished(run) => {
                let count = |r: RuleResult| run.rules.iter().filter(|l| l.result == r).count();
                println!(
                    "rules: {} passed, {} failed, {} exercised, {} unverified",
                    count(RuleResult::Passed),
                    count(RuleResult::Failed),
                    count(RuleResult::Exercised),
                    count(RuleResult::Unverified)
                );
                println!("exit {}: {}", run.exit_code, run.exit_meaning);
            }
        }
        Ok(())
    }
}

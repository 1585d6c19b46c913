//! `conform replay FILE`: re-runs a saved counterexample (its steps, under its seed) and shows every request,
//! what the model expected and what the target did. A target counterexample runs against any target (the embedded
//! one, with or without faults, or a profile's); a model counterexample runs on the model alone.

use std::path::Path;

use conform_reference::generate::Step;
use conform_reference::model_suite::{Coverage, EPOCH, check_on_model};
use conform_reference::world::{Config, World};
use serde::Deserialize;

use crate::error::Error;
use crate::exit::Exit;
use crate::suites::{Session, TargetOptions, describe_request};

/// The replayable part of a counterexample file.
#[derive(Debug, Deserialize)]
struct Saved {
    kind: Kind,
    seed: u64,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Model,
    Target,
}

/// Replays `file`; exits 1 when the difference still shows, 0 when it no longer does.
pub fn replay(file: &Path, target: &TargetOptions) -> Result<Exit, Error> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let saved: Saved = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}:{}:{}: not a conform counterexample (fields `kind`, `seed`, `steps`): {e}",
            file.display(),
            e.line(),
            e.column()
        ))
    })?;
    println!("replaying {} ({} steps, seed {})", file.display(), saved.steps.len(), saved.seed);
    match saved.kind {
        Kind::Model => Ok(replay_on_model(&saved.steps)),
        Kind::Target => replay_on_target(&saved.steps, target),
    }
}

fn replay_on_model(steps: &[Step]) -> Exit {
    let mut world = World::new(Config::default(), EPOCH);
    let mut index = 0;
    conform_reference::generate::run_on_model(&mut world, steps, |_, _, request, outcome| {
        index += 1;
        println!("{index:>4}. {}\n      model: {outcome:?}", describe_request(request));
    });
    match check_on_model(steps, &mut Coverage::default()) {
        Ok(()) => {
            println!("the model no longer breaks a rule on these steps");
            Exit::Passed
        }
        Err(finding) => {
            println!("still broken: {} — {}", finding.rules.join(", "), finding.detail);
            Exit::Findings
        }
    }
}

fn replay_on_target(steps: &[Step], target: &TargetOptions) -> Result<Exit, Error> {
    let profile = target.load_profile()?;
    let mut session = Session::open(target, profile, format!("replay{}", std::process::id()))?;
    let run = session.run_steps(steps);
    let differing = run.finding.as_ref().map(|f| f.request_index);
    for (i, exchange) in run.trace.iter().enumerate() {
        let mark = if Some(i + 1) == differing { "≠" } else { " " };
        println!(
            "{mark}{:>3}. {}\n      expected: {}\n      observed: {:?}",
            i + 1,
            describe_request(&exchange.request),
            exchange.predicted,
            exchange.observed
        );
    }
    Ok(match &run.finding {
        None => {
            println!("target {}: no difference on these steps", session.profile().name());
            Exit::Passed
        }
        Some(finding) => {
            let d = &finding.difference;
            println!(
                "target {}: request {} breaks {}\n  expected: {}\n  observed: {}",
                session.profile().name(),
                finding.request_index,
                d.rules.join(", "),
                d.expected,
                d.observed
            );
            Exit::Findings
        }
    })
}

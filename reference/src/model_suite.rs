//! The property suite's body on the model alone: run a scenario, check every invariant of the registry after
//! every request, and the rules that need a before-and-after view. Used by the property tests and by
//! `conform run`, so both judge by the same checks.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::escrow::EscrowState;
use crate::generate::{Step, run_on_model};
use crate::ids::{EscrowId, Timestamp};
use crate::invariants::{Checker, REGISTRY};
use crate::ops::OperationClass;
use crate::world::{Config, Op, World};

/// The start time of every model run.
pub const EPOCH: Timestamp = Timestamp(1_700_000_000);

/// A rule broken on the model: which rules, after which request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFinding {
    /// The rule ids broken.
    pub rules: Vec<&'static str>,
    /// Index of the request in the run (setup included).
    pub request_index: usize,
    /// The step, the request and its outcome, and what was wrong.
    pub detail: String,
}

/// What a run exercised, per rule id: how often each was checked, and which transitions and refusals happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Requests applied.
    pub requests: u64,
    /// Checks made per rule id.
    pub checks: BTreeMap<&'static str, u64>,
    /// Transition-table rows fired, per rule id.
    pub transitions: BTreeMap<&'static str, u64>,
    /// States reached.
    pub states: BTreeMap<&'static str, u64>,
    /// Refusals given, per error code.
    pub refusals: BTreeMap<&'static str, u64>,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        self.requests += other.requests;
        for (map, from) in [(&mut self.checks, &other.checks), (&mut self.transitions, &other.transitions)] {
            for (k, v) in from {
                *map.entry(k).or_default() += v;
            }
        }
        for (map, from) in [(&mut self.states, &other.states), (&mut self.refusals, &other.refusals)] {
            for (k, v) in from {
                *map.entry(k).or_default() += v;
            }
        }
    }
}

/// What a refused request may not change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Footprint {
    entries: usize,
    escrows: Vec<(EscrowState, u64, i128)>,
    audit: usize,
    dead_letters: usize,
}

fn footprint(world: &World) -> Footprint {
    Footprint {
        entries: world.ledger().entries().len(),
        escrows: world.escrows().iter().map(|e| (e.state, e.version, e.received)).collect(),
        audit: world.audit_log().len(),
        dead_letters: world.dead_letters().len(),
    }
}

/// Runs `steps` on a fresh model and checks every rule after every request. Stops at the first request that
/// breaks one.
pub fn check_on_model(steps: &[Step], coverage: &mut Coverage) -> Result<(), ModelFinding> {
    let mut world = World::new(Config::default(), EPOCH);
    let mut checker = Checker::new();
    let mut before = footprint(&world);
    let mut finding: Option<ModelFinding> = None;
    let mut index = 0usize;
    run_on_model(&mut world, steps, |world, step, request, outcome| {
        index += 1;
        if finding.is_some() {
            return;
        }
        coverage.requests += 1;
        for (id, row) in world.last_transitions() {
            *coverage.transitions.entry(row.rule).or_default() += 1;
            if let Some(e) = world.escrow(*id) {
                *coverage.states.entry(e.state.name()).or_default() += 1;
            }
        }
        if let Err(refusal) = outcome {
            *coverage.refusals.entry(refusal.code()).or_default() += 1;
        }
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let violations = world.observe(|obs| checker.step(obs));
        for invariant in REGISTRY {
            *coverage.checks.entry(invariant.id).or_default() += 1;
        }
        problems.extend(violations.iter().map(|v| (v.invariant, v.to_string())));

        let after = footprint(world);
        let admin_call = request.op.kind().is_some_and(|k| k.class() == OperationClass::AdminStepUp);
        *coverage.checks.entry("ESC-19").or_default() += u64::from(outcome.is_err());
        if outcome.is_err() {
            // A refusal leaves no trace but an audit record for an admin call and a dead letter for a delivery.
            let delivery = matches!(request.op, Op::DeliverWebhook { .. });
            // Deadlines that came due fire before any request is decided (ESC-9, ESC-12): their changes are the
            // clock's, not the refused request's.
            let mut expected = Footprint {
                audit: before.audit + usize::from(admin_call),
                dead_letters: before.dead_letters + usize::from(delivery),
                ..before.clone()
            };
            for (id, row) in world.last_transitions() {
                if matches!(row.rule, "ESC-9" | "ESC-12")
                    && let (Some(slot), Some(now)) =
                        (expected.escrows.get_mut(id.0 as usize), after.escrows.get(id.0 as usize))
                {
                    *slot = *now;
                    expected.entries += usize::from(row.rule == "ESC-12");
                }
            }
            if delivery && after.dead_letters == before.dead_letters {
                problems.push(("WH-5", "WH-5: a refused delivery left no dead letter".to_owned()));
            } else if after != expected {
                problems.push((
                    "ESC-19",
                    format!("ESC-19: refused with {outcome:?} but changed {before:?} into {after:?}"),
                ));
            }
        }
        if admin_call {
            *coverage.checks.entry("AZ-9").or_default() += 1;
            if after.audit != before.audit + 1 {
                problems.push(("AZ-9", "AZ-9: an admin call left no audit record".to_owned()));
            }
        }
        let mut payouts: BTreeMap<EscrowId, BTreeSet<(String, i128)>> = BTreeMap::new();
        for r in world.payout_requests() {
            payouts.entry(r.escrow).or_default().insert((r.key.clone(), r.amount.minor));
        }
        *coverage.checks.entry("PRV-4").or_default() += 1;
        if let Some((escrow, asked)) = payouts.iter().find(|(_, asked)| asked.len() > 1) {
            problems.push(("PRV-4", format!("PRV-4: {escrow} was asked for different payouts: {asked:?}")));
        }
        if !problems.is_empty() {
            let mut rules: Vec<&'static str> = problems.iter().map(|(rule, _)| *rule).collect();
            rules.sort_unstable();
            rules.dedup();
            let lines: Vec<String> = problems.into_iter().map(|(_, line)| line).collect();
            finding = Some(ModelFinding {
                rules,
                request_index: index,
                detail: format!("after {step:?}\n  {request:?}\n  -> {outcome:?}\n  {}", lines.join("\n  ")),
            });
        }
        before = after;
    });
    finding.map_or(Ok(()), Err)
}

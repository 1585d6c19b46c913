//! The differential runner: one suite body for every target. The model's [`Script`] plans each step, the model
//! predicts its outcome, the [`Target`] executes the same request in its own terms, and [`super::compare`] judges
//! the pair. After every request the target's ledger, where it can be read, is checked against the same invariant
//! registry as the model's.

use conform_reference::escrow::EscrowState;
use conform_reference::generate::{Abilities, Planned, Script, Step};
use conform_reference::ids::EscrowId;
use conform_reference::invariants::{Checker, EscrowFacts, Observation};
use conform_reference::ledger::{Entry, Ledger};
use conform_reference::model_suite::EPOCH;
use conform_reference::world::{Accepted, Config, Outcome, Request, World};
use serde::Serialize;

use super::{Difference, Observed, Verdict, compare};

/// A target's ledger as the invariants see it, with the model's ids.
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    /// Entries in append order.
    pub entries: Vec<Entry>,
    /// Facts of the escrows known to the run.
    pub escrows: Vec<EscrowFacts>,
}

/// A backend the differential runner drives.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// Starts a new scenario: the model starts from nothing, so the adapter forgets the ids it learnt (the target
    /// keeps its data; the new scenario's users and escrows are new ones).
    fn begin_scenario(&mut self);

    /// Executes `request` (in the model's ids and tokens) and reduces the answer to canonical terms. `predicted`
    /// and `model` let the adapter learn the target's ids for the model's (a created escrow, issued tokens).
    async fn execute(&mut self, request: &Request, predicted: &Outcome, model: &World) -> Observed;

    /// The target's ledger now, in the model's ids, or `None` when the target does not expose it (the ledger
    /// rules are then `unverified` for this target).
    async fn ledger(&mut self, model: &World) -> Option<Result<LedgerView, String>>;
}

/// A difference found by the runner, at one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Index of the request in the run (setup included), from 1.
    pub request_index: usize,
    /// The step it came from (`None` during setup).
    pub step: Option<Step>,
    /// The request, in the model's terms.
    pub request: Request,
    /// What differed, and the rules it breaks.
    pub difference: Difference,
}

/// What one run of a scenario found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DifferentialRun {
    /// Requests sent.
    pub requests: usize,
    /// Requests whose outcome agreed.
    pub agreed: usize,
    /// Requests the target gave no outcome for, with why.
    pub unknown: Vec<(usize, String)>,
    /// The first difference, if any: the run stops there, since later steps build on a state that already differs.
    pub finding: Option<Finding>,
    /// Every exchange, in order: the reproduction a report shows.
    pub trace: Vec<Exchange>,
    /// How often each rule was checked and held: the rules of every agreed decision, and the ledger invariants
    /// after every request where the ledger could be read.
    pub checks: std::collections::BTreeMap<&'static str, u64>,
    /// Transition rows the model fired on an escrow whose state the target has not yet been seen to share (a
    /// deadline passing fires on escrows the request did not name): each is credited once a later agreed request
    /// compares that escrow's state.
    #[serde(skip)]
    unconfirmed_transitions: Vec<(EscrowId, &'static str)>,
}

/// One request as both sides answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exchange {
    /// The request, in the model's terms.
    pub request: Request,
    /// The model's outcome.
    pub predicted: String,
    /// The target's.
    pub observed: Observed,
}

/// The escrow's state in the model after the request: after an accepted request, and after a request refused for a
/// protected field (AZ-8 lets a target ignore the field instead of refusing it, but then the state must be
/// unchanged).
fn state_after(request: &Request, predicted: &Outcome, model: &World) -> Option<EscrowState> {
    judged_escrow(request, predicted).and_then(|id| model.escrow(id).map(|e| e.state))
}

/// The escrow whose state the comparison judges after the request, if any (see [`state_after`]).
fn judged_escrow(request: &Request, predicted: &Outcome) -> Option<EscrowId> {
    let id = match predicted {
        Ok(Accepted::Escrow(id)) => Some(*id),
        _ => request.op.escrow(),
    }?;
    use conform_reference::world::Op;
    let judged = predicted.is_ok()
        || matches!(
            request.op,
            Op::UpdateEscrow { .. }
                | Op::StartPayment { extra: Some(_), .. }
                | Op::SubmitPaymentProof { extra: Some(_), .. }
        );
    judged.then_some(id)
}

/// Credits the transition-table rows (ESC-…) the model fired: at once for the escrow whose state the target was
/// just seen to share, later for the others, when an agreed request compares their state.
fn credit_transitions(run: &mut DifferentialRun, world: &World, compared: Option<EscrowId>) {
    run.unconfirmed_transitions.extend(world.last_transitions().iter().map(|(id, row)| (*id, row.rule)));
    let Some(compared) = compared else { return };
    let checks = &mut run.checks;
    run.unconfirmed_transitions.retain(|(id, rule)| {
        if *id == compared {
            *checks.entry(rule).or_default() += 1;
        }
        *id != compared
    });
}

/// Runs `steps` on a fresh model and on `target` side by side; steps beyond the target's `abilities` are skipped
/// on both sides.
pub async fn run_differential<T: Target>(target: &mut T, steps: &[Step], abilities: &Abilities) -> DifferentialRun {
    let mut differential = Differential::begin(target, abilities).await;
    for step in steps {
        if !differential.step(target, step).await {
            break;
        }
    }
    differential.finish()
}

/// A differential run taken one step at a time, for suites that act between steps (a drill injects a fault,
/// reads the target, or times a phase) while every request still goes through the model and the comparison.
#[derive(Debug)]
pub struct Differential {
    world: World,
    script: Script,
    checker: Checker,
    run: DifferentialRun,
}

impl Differential {
    /// Starts a scenario on a fresh model and on `target`: the cast's setup requests.
    pub async fn begin<T: Target>(target: &mut T, abilities: &Abilities) -> Differential {
        let mut differential = Differential {
            // Passkeys start as the target's do when a scenario begins.
            world: World::new(Config { passkeys_enabled: abilities.passkeys, ..Config::default() }, EPOCH),
            script: Script::with_abilities(abilities.clone()),
            checker: Checker::new(),
            run: DifferentialRun::default(),
        };
        target.begin_scenario();
        for request in differential.script.setup() {
            if differential.exchange(target, None, request).await.is_none() {
                break;
            }
        }
        differential
    }

    /// Runs one step on both sides; `false` once a finding has ended the run (later steps would build on a
    /// state that already differs, so they are not sent).
    pub async fn step<T: Target>(&mut self, target: &mut T, step: &Step) -> bool {
        if self.stopped() {
            return false;
        }
        // At most a sign-in, a step-up or a passkey challenge, and the call itself, as on the model alone.
        for _ in 0..3 {
            let Some(planned) = self.script.plan(step) else { break };
            let (request, again) = match planned {
                Planned::Prepare(request) => (request, true),
                Planned::Call(request) => (request, false),
            };
            match self.exchange(target, Some(step), request).await {
                None => return false,
                Some(accepted) if again && accepted => {}
                Some(_) => break,
            }
        }
        true
    }

    /// Whether a finding has ended the run.
    pub fn stopped(&self) -> bool {
        self.run.finding.is_some()
    }

    /// The model as it stands: what it predicts for the scenario so far.
    pub fn model(&self) -> &World {
        &self.world
    }

    /// The request the script would make next for `step`, without making it: a race suite sends the requests of
    /// several steps at once, outside the one-at-a-time comparison.
    pub fn plan(&self, step: &Step) -> Option<Planned> {
        self.script.plan(step)
    }

    /// The run so far.
    pub fn run(&self) -> &DifferentialRun {
        &self.run
    }

    /// The run.
    pub fn finish(self) -> DifferentialRun {
        self.run
    }

    /// One request on both sides: whether the model accepted it, or `None` when a finding ends the run.
    async fn exchange<T: Target>(&mut self, target: &mut T, step: Option<&Step>, request: Request) -> Option<bool> {
        let Differential { world, script, checker, run } = self;
        match exchange(target, world, script, checker, run, step, request).await {
            Ok(accepted) => Some(accepted),
            Err(finding) => {
                run.finding = Some(finding);
                None
            }
        }
    }
}

/// One request on both sides. Returns whether the model accepted it, or the finding that ends the run.
async fn exchange<T: Target>(
    target: &mut T,
    world: &mut World,
    script: &mut Script,
    checker: &mut Checker,
    run: &mut DifferentialRun,
    step: Option<&Step>,
    request: Request,
) -> Result<bool, Finding> {
    run.requests += 1;
    let predicted = world.apply(&request);
    script.observe(step, &request, &predicted);
    let observed = target.execute(&request, &predicted, world).await;
    run.trace.push(Exchange {
        request: request.clone(),
        predicted: format!("{predicted:?}"),
        observed: observed.clone(),
    });
    let request_index = run.requests;
    let finding = |request: Request, difference| Finding { request_index, step: step.cloned(), request, difference };
    match compare(&request.op, &predicted, state_after(&request, &predicted, world), &observed) {
        Verdict::Agree => {
            run.agreed += 1;
            let rules = match &predicted {
                Ok(_) => super::rules_of_operation(&request.op),
                Err(refusal) => super::rules_of_refusal(*refusal),
            };
            for rule in rules {
                *run.checks.entry(rule).or_default() += 1;
            }
            credit_transitions(run, world, judged_escrow(&request, &predicted));
        }
        Verdict::Unknown { reason } => run.unknown.push((run.requests, reason)),
        Verdict::Differ(difference) => return Err(finding(request, difference)),
    }
    match target.ledger(world).await {
        None => {}
        Some(Err(reason)) => run.unknown.push((run.requests, format!("ledger read failed: {reason}"))),
        Some(Ok(view)) => {
            let balances = Ledger::from_entries(view.entries.clone()).raw_balances();
            let violations =
                checker.step(&Observation { entries: &view.entries, balances: &balances, escrows: &view.escrows });
            if violations.is_empty() {
                for invariant in conform_reference::invariants::REGISTRY {
                    *run.checks.entry(invariant.id).or_default() += 1;
                }
            } else {
                let mut rules: Vec<&'static str> = violations.iter().map(|v| v.invariant).collect();
                rules.dedup();
                let observed = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                let expected = "every ledger invariant holds".to_owned();
                return Err(finding(request, Difference { rules, expected, observed }));
            }
        }
    }
    Ok(predicted.is_ok())
}

/// The model itself as a target: the baseline arm of every suite (it must always agree), and the side that the
/// differential benchmark compares a real target with.
#[derive(Debug, Clone)]
pub struct ModelTarget {
    world: World,
}

impl Default for ModelTarget {
    fn default() -> Self {
        // Passkeys on, as `Abilities::default` says a scenario begins.
        ModelTarget { world: World::new(Config { passkeys_enabled: true, ..Config::default() }, EPOCH) }
    }
}

impl Target for ModelTarget {
    fn begin_scenario(&mut self) {
        *self = ModelTarget::default();
    }

    async fn execute(&mut self, request: &Request, _: &Outcome, _: &World) -> Observed {
        let outcome = self.world.apply(request);
        match outcome {
            Ok(Accepted::Escrows(escrows)) => Observed::Listed { status: 200, escrows, foreign: 0 },
            Ok(Accepted::PendingApproval(_)) => Observed::Accepted { status: 202, state: None },
            Ok(ref accepted) => {
                let state = match accepted {
                    Accepted::Escrow(id) => self.world.escrow(*id).map(|e| e.state),
                    _ => request.op.escrow().and_then(|id| self.world.escrow(id)).map(|e| e.state),
                };
                Observed::Accepted { status: 200, state }
            }
            Err(refusal) => Observed::Refused { status: refusal.http_status(), refusal: Some(refusal) },
        }
    }

    async fn ledger(&mut self, _: &World) -> Option<Result<LedgerView, String>> {
        Some(Ok(LedgerView { entries: self.world.ledger().entries().to_vec(), escrows: self.world.escrow_facts() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conform_reference::generate::scenario;
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

    /// The model against itself agrees on every request: the runner adds no difference of its own.
    #[tokio::test]
    async fn the_model_agrees_with_itself() {
        let mut runner =
            TestRunner::new_with_rng(RunnerConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[5; 32]));
        let strategy = scenario(20..80);
        for _ in 0..32 {
            let steps = strategy.new_tree(&mut runner).expect("scenario").current();
            let run = run_differential(&mut ModelTarget::default(), &steps, &Abilities::default()).await;
            assert_eq!(run.finding, None);
            assert_eq!(run.agreed, run.requests);
        }
    }

    /// A target that answers 200 where the model refuses is caught, with the rule of the refusal.
    #[tokio::test]
    async fn a_target_that_accepts_everything_is_caught() {
        struct Yes;
        impl Target for Yes {
            fn begin_scenario(&mut self) {}
            async fn execute(&mut self, _: &Request, _: &Outcome, _: &World) -> Observed {
                Observed::Accepted { status: 200, state: None }
            }
            async fn ledger(&mut self, _: &World) -> Option<Result<LedgerView, String>> {
                None
            }
        }
        let steps = [Step::Act {
            escrow: 0,
            who: conform_reference::generate::Who::Stranger,
            act: conform_reference::generate::EscrowAct::Get,
        }];
        let create = Step::Create {
            buyer: 0,
            seller: 1,
            major: 5,
            currency: 0,
            provider: conform_reference::ledger::Provider::Shkeeper,
            extra: None,
        };
        let run = run_differential(&mut Yes, &[create, steps[0].clone()], &Abilities::default()).await;
        let finding = run.finding.expect("a finding");
        assert_eq!(finding.difference.rules, vec!["AZ-2", "ESC-20"]);
    }
}

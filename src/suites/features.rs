//! The Gherkin contract suite: the features of `features/`, run in-process by cucumber inside the run's
//! [`Session`], each scenario reported as one check (suite `features`, name `feature/scenario`, rules the
//! scenario's and its feature's `@RULE-n` tags).
//!
//! Step definitions speak the model's vocabulary: every Given and When step is a [`Step`] taken at once by the
//! model and the target side by side ([`Session::step`]), so each request is compared and the ledger invariants
//! are checked after each, as in every other suite; a difference fails the step where it appeared. Then steps hold
//! the feature's claims against the model's prediction and against what the target answered and booked.
//!
//! Cucumber builds each scenario's world itself and wants `'static` hooks, while the session belongs to the run.
//! So cucumber runs on a thread of its own, and its worlds reach the session through a channel: the run's
//! thread serves their steps until the last world is gone. Cucumber's console output is replaced by a writer
//! that only collects results; the run's writers report them.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use conform_reference::generate::{EscrowAct, Portion, Step, Who};
use conform_reference::ids::EscrowId;
use conform_reference::ledger::{EntryKind, Provider};
use conform_reference::refusal::Refusal;
use conform_reference::world::{Accepted, World as Model};
use cucumber::event::{
    Cucumber as CucumberEvent, Feature as FeatureEvent, Hook as HookEvent, Rule as RuleEvent,
    Scenario as ScenarioEvent, Step as StepEvent,
};
use cucumber::{World as _, given, then, when};

use super::{CheckResult, Reporter, Session, area_of, differential_failure, reproduction};
use crate::error::Error;
use crate::oracle::Observed;
use crate::oracle::differential::{DifferentialRun, LedgerView};
use crate::report::CheckOutcome;
use crate::report::event::Failure;

/// The features, compiled in so that `conform run` works from any directory: (path under `features/`, text).
pub const FEATURES: &[(&str, &str)] =
    &[("webhooks/replay.feature", include_str!("../../features/webhooks/replay.feature"))];

/// A failed Then step whose claim the target cannot be checked for starts with this: the scenario is reported
/// `unverified`, never `passed`.
const UNVERIFIED: &str = "unverified: ";

/// What a scenario's steps see after each step.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The differential run so far.
    pub run: DifferentialRun,
    /// The model after it.
    pub model: Model,
    /// The target's ledger for this scenario (`None`: the profile declares no ledger read).
    pub ledger: Option<Result<LedgerView, String>>,
    /// Dead letters the target has listed in this scenario (`None`: the profile declares no dead-letter list).
    pub dead_letters: Option<usize>,
}

/// A request from a scenario to the session.
#[derive(Debug)]
enum Call {
    /// A new scenario: fresh users and escrows on both sides.
    Begin,
    /// One step on both sides.
    Step(Step),
}

/// How a scenario's world reaches the run's session.
#[derive(Debug, Clone)]
struct SessionHandle(mpsc::Sender<(Call, mpsc::Sender<Snapshot>)>);

/// The state of one scenario.
#[derive(Debug, Default, cucumber::World)]
pub struct ScenarioWorld {
    session: Option<SessionHandle>,
    /// The latest payment delivery, for "the same event again".
    last_delivery: Option<Step>,
    /// What the session answered to the latest step.
    snapshot: Option<Snapshot>,
}

impl ScenarioWorld {
    fn send(&mut self, call: Call) -> Result<&Snapshot, String> {
        let handle = self.session.as_ref().ok_or("no session: the scenario was not started by the features suite")?;
        let (reply, answer) = mpsc::channel();
        handle.0.send((call, reply)).map_err(|_| "the session has ended".to_owned())?;
        let snapshot = answer.recv().map_err(|_| "the session did not answer".to_owned())?;
        Ok(self.snapshot.insert(snapshot))
    }

    /// Takes one step on both sides; a difference fails the Gherkin step that caused it.
    fn drive(&mut self, step: Step) -> Result<(), String> {
        let snapshot = self.send(Call::Step(step))?;
        match &snapshot.run.finding {
            Some(finding) => Err(differential_failure(finding, &snapshot.run.trace, None, None, None).message),
            None => Ok(()),
        }
    }

    fn deliver(&mut self, event: i32, portion: Portion, authentic: bool) -> Result<(), String> {
        let event = u8::try_from(event).map_err(|_| format!("event {event}: events are numbered 0 to 255"))?;
        let step = Step::Pay { escrow: 0, portion, wrong_currency: false, event, authentic };
        self.last_delivery = Some(step.clone());
        self.drive(step)
    }

    fn latest(&self) -> Result<&Snapshot, String> {
        self.snapshot.as_ref().ok_or_else(|| "no step has run yet".to_owned())
    }
}

/// The scenario's escrow: the first one it created, in the model's ids (the adapter maps the target's to them).
const ESCROW: EscrowId = EscrowId(0);

#[given(expr = "a buyer's escrow of {int} USD paid through SHKeeper")]
fn escrow_of(world: &mut ScenarioWorld, major: i32) -> Result<(), String> {
    // Cast members 0 and 1 are the first two users; currency 0 is USD.
    world.drive(Step::Create {
        buyer: 0,
        seller: 1,
        major: i128::from(major),
        currency: 0,
        provider: Provider::Shkeeper,
        extra: None,
    })
}

#[given("the buyer has started the payment")]
fn payment_started(world: &mut ScenarioWorld) -> Result<(), String> {
    world.drive(Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::StartPayment })
}

#[when(expr = "SHKeeper delivers payment event {int} for the amount due")]
fn pays_due(world: &mut ScenarioWorld, event: i32) -> Result<(), String> {
    world.deliver(event, Portion::Due, true)
}

#[when(expr = "SHKeeper delivers payment event {int} for half the amount due")]
fn pays_half(world: &mut ScenarioWorld, event: i32) -> Result<(), String> {
    world.deliver(event, Portion::Half, true)
}

#[when("SHKeeper delivers the same event again")]
fn delivers_again(world: &mut ScenarioWorld) -> Result<(), String> {
    // The adapter signs each delivery afresh: a new signature and timestamp over the same provider event (WH-4).
    let step = world.last_delivery.clone().ok_or("no delivery to repeat")?;
    world.drive(step)
}

#[when(expr = "a forger delivers payment event {int} for the amount due with a wrong signature")]
fn forged(world: &mut ScenarioWorld, event: i32) -> Result<(), String> {
    world.deliver(event, Portion::Due, false)
}

#[then("the target agrees with the model on every request")]
fn agrees(world: &mut ScenarioWorld) -> Result<(), String> {
    let run = &world.latest()?.run;
    if let Some(finding) = &run.finding {
        return Err(differential_failure(finding, &run.trace, None, None, None).message);
    }
    match run.unknown.first() {
        Some((index, reason)) => Err(format!("{UNVERIFIED}request {index} got no outcome from the target: {reason}")),
        None => Ok(()),
    }
}

#[then(expr = "the escrow is {word}")]
fn escrow_is(world: &mut ScenarioWorld, state: String) -> Result<(), String> {
    // The buyer reads the escrow: the differential compares the state the target answers with the model's.
    world.drive(Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::Get })?;
    let model = &world.latest()?.model;
    let predicted = model.escrow(ESCROW).map(|e| e.state.to_string()).ok_or("the model has no escrow")?;
    if predicted != state {
        return Err(format!("the model predicts {predicted}, the feature says {state}: one of them is wrong"));
    }
    Ok(())
}

#[then(expr = "the escrow has {int} payment entry/entries in the ledger")]
fn payment_entries(world: &mut ScenarioWorld, expected: i32) -> Result<(), String> {
    let snapshot = world.latest()?;
    let expected = usize::try_from(expected).map_err(|_| "a count is not negative".to_owned())?;
    let payments = |entries: &[conform_reference::ledger::Entry]| {
        entries.iter().filter(|e| e.kind == EntryKind::Payment && e.escrow == Some(ESCROW)).count()
    };
    let predicted = payments(snapshot.model.ledger().entries());
    if predicted != expected {
        return Err(format!("the model predicts {predicted} payment entries, the feature says {expected}"));
    }
    match &snapshot.ledger {
        None => Err(format!("{UNVERIFIED}the profile declares no ledger read")),
        Some(Err(reason)) => Err(format!("{UNVERIFIED}the target's ledger could not be read: {reason}")),
        Some(Ok(view)) if payments(&view.entries) != expected => Err(format!(
            "the target booked {} payment entries for the escrow, expected {expected}",
            payments(&view.entries)
        )),
        Some(Ok(_)) => Ok(()),
    }
}

#[then("the delivery is refused as unauthenticated")]
fn refused_unauthenticated(world: &mut ScenarioWorld) -> Result<(), String> {
    let last = world.latest()?.run.trace.last().ok_or("nothing was delivered")?;
    let expected = format!("{:?}", Err::<Accepted, _>(Refusal::WebhookUnauthenticated));
    if last.predicted != expected {
        return Err(format!("the model predicts {}, the feature says a refusal as unauthenticated", last.predicted));
    }
    match &last.observed {
        Observed::Refused { status: 401, .. } => Ok(()),
        other => Err(format!("the target answered {other:?}, expected 401")),
    }
}

#[then(expr = "{int} delivery/deliveries is/are kept as a dead letter/letters")]
fn dead_letters(world: &mut ScenarioWorld, expected: i32) -> Result<(), String> {
    let snapshot = world.latest()?;
    let expected = usize::try_from(expected).map_err(|_| "a count is not negative".to_owned())?;
    let predicted = snapshot.model.dead_letters().len();
    if predicted != expected {
        return Err(format!("the model predicts {predicted} dead letters, the feature says {expected}"));
    }
    match snapshot.dead_letters {
        None => Err(format!("{UNVERIFIED}the profile declares no dead-letter list")),
        Some(listed) if listed != expected => {
            Err(format!("the target lists {listed} dead letters, expected {expected}"))
        }
        Some(_) => Ok(()),
    }
}

/// One scenario as it ran.
#[derive(Debug)]
struct ScenarioRecord {
    name: String,
    rules: Vec<String>,
    started: Instant,
    duration_ms: u64,
    /// The first failed step, its error, and the session's snapshot then.
    failure: Option<(String, String, Option<Snapshot>)>,
    /// Requests sent for it (counted by the session's side).
    requests: u64,
}

/// A cucumber writer that collects scenario results instead of printing.
#[derive(Debug, Default)]
struct Collector {
    scenarios: Vec<ScenarioRecord>,
    errors: Vec<String>,
}

impl Collector {
    fn scenario(
        &mut self,
        feature: &cucumber::gherkin::Feature,
        scenario: &cucumber::gherkin::Scenario,
        event: ScenarioEvent<ScenarioWorld>,
    ) {
        if matches!(event, ScenarioEvent::Started) {
            let rules = feature
                .tags
                .iter()
                .chain(&scenario.tags)
                .map(|t| t.trim_start_matches('@').to_owned())
                .filter(|t| t.contains('-') && area_of(t).is_some())
                .fold(Vec::new(), |mut rules, t| {
                    if !rules.contains(&t) {
                        rules.push(t);
                    }
                    rules
                });
            self.scenarios.push(ScenarioRecord {
                name: format!("{}/{}", feature.name, scenario.name),
                rules,
                started: Instant::now(),
                duration_ms: 0,
                failure: None,
                requests: 0,
            });
            return;
        }
        let Some(record) = self.scenarios.last_mut() else { return };
        let failed = match event {
            ScenarioEvent::Step(step, StepEvent::Failed(_, _, world, error))
            | ScenarioEvent::Background(step, StepEvent::Failed(_, _, world, error)) => {
                let text = format!("{}{}", step.keyword, step.value);
                // Only the snapshot is kept: the world holds a handle on the session, which must close.
                Some((text, error_text(&error), world.and_then(|w| w.snapshot.clone())))
            }
            ScenarioEvent::Hook(_, HookEvent::Failed(_, info)) => Some(("a hook".to_owned(), panic_text(&info), None)),
            ScenarioEvent::Step(_, StepEvent::Passed(..)) | ScenarioEvent::Background(_, StepEvent::Passed(..)) => None,
            ScenarioEvent::Finished => {
                record.duration_ms = record.started.elapsed().as_millis() as u64;
                None
            }
            _ => None,
        };
        if let Some(failure) = failed
            && record.failure.is_none()
        {
            record.failure = Some(failure);
        }
    }
}

fn panic_text(info: &cucumber::event::Info) -> String {
    info.downcast_ref::<String>()
        .cloned()
        .or_else(|| info.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a step panicked".to_owned())
}

fn error_text(error: &cucumber::event::StepError) -> String {
    match error {
        cucumber::event::StepError::Panic(info) => panic_text(info),
        other => other.to_string(),
    }
}

impl cucumber::Writer<ScenarioWorld> for Collector {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(
        &mut self,
        event: cucumber::parser::Result<cucumber::Event<CucumberEvent<ScenarioWorld>>>,
        _: &Self::Cli,
    ) {
        match event {
            Err(error) => self.errors.push(error.to_string()),
            Ok(event) => match event.value {
                CucumberEvent::Feature(feature, FeatureEvent::Scenario(scenario, retryable)) => {
                    self.scenario(&feature, &scenario, retryable.event);
                }
                CucumberEvent::Feature(feature, FeatureEvent::Rule(_, RuleEvent::Scenario(scenario, retryable))) => {
                    self.scenario(&feature, &scenario, retryable.event);
                }
                _ => {}
            },
        }
    }
}

/// Events arrive in order: scenarios run one at a time (see [`run_cucumber`]), so no reordering is needed.
impl cucumber::writer::Normalized for Collector {}

/// Runs cucumber over `dir`; every scenario begins a fresh differential scenario through `session`.
async fn run_cucumber(dir: PathBuf, session: SessionHandle) -> Collector {
    ScenarioWorld::cucumber()
        // One scenario at a time: they share the session, and each step's snapshot is its own scenario's.
        .max_concurrent_scenarios(1)
        .before(move |_, _, _, world| {
            world.session = Some(session.clone());
            let begun = world.send(Call::Begin).map(|_| ());
            Box::pin(async move {
                if let Err(reason) = begun {
                    panic!("{reason}");
                }
            })
        })
        .with_writer(Collector::default())
        // The default CLI: cucumber must not read `conform`'s own arguments.
        .with_default_cli()
        .run(dir)
        .await
}

/// Serves the scenarios' steps on the session until cucumber has finished and every world is gone. Returns the
/// requests each scenario sent, in the order they began (which is the order they ran).
fn serve(session: &mut Session, calls: &mpsc::Receiver<(Call, mpsc::Sender<Snapshot>)>) -> Vec<u64> {
    let mut current = None;
    let mut requests = Vec::new();
    while let Ok((call, reply)) = calls.recv() {
        if matches!(call, Call::Begin) {
            requests.push(0);
        }
        let differential = match call {
            Call::Begin => current.insert(session.begin()),
            Call::Step(step) => {
                let differential = current.get_or_insert_with(|| session.begin());
                session.step(differential, &step);
                differential
            }
        };
        let model = differential.model().clone();
        let snapshot = Snapshot {
            run: differential.run().clone(),
            ledger: session.target_ledger(&model),
            dead_letters: session.profile().capabilities().dead_letters.then(|| session.adapter.dead_letters_seen()),
            model,
        };
        if let Some(count) = requests.last_mut() {
            *count = snapshot.run.requests as u64;
        }
        // A world that gave up waiting is no reason to stop serving the others.
        let _ = reply.send(snapshot);
    }
    requests
}

/// Writes the compiled-in features to a directory of their own for cucumber to read.
fn write_features() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("conform-features-{}", std::process::id()));
    for (path, text) in FEATURES {
        let file = dir.join(path);
        let written = file.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&file, text));
        written.map_err(|e| Error::Usage(format!("cannot write {}: {e}", file.display())))?;
    }
    Ok(dir)
}

/// Runs every feature against the session's target and reports each scenario.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let planned =
        FEATURES.iter().flat_map(|(_, text)| text.lines()).filter(|l| l.trim_start().starts_with("Scenario")).count();
    let mut suite = reporter.suite("features", Some(planned as u64))?;
    let dir = write_features()?;
    let collected = run_features(session, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let collected = collected?;
    if let Some(error) = collected.errors.first() {
        return Err(Error::Usage(format!("features: {error}")));
    }
    for record in collected.scenarios {
        if !suite.selected(&record.rules, &["features"]) {
            continue;
        }
        let outcome = match record.failure {
            None => CheckOutcome::Passed,
            Some((step, error, _)) if error.starts_with(UNVERIFIED) => {
                CheckOutcome::Unverified { reason: format!("{step}: {}", error.trim_start_matches(UNVERIFIED)) }
            }
            Some((step, error, snapshot)) => CheckOutcome::Failed(failure(&step, &error, snapshot.as_ref())),
        };
        let mut check = CheckResult::new(record.name, record.rules, outcome);
        check.extra_tags = vec!["features"];
        check.requests = record.requests;
        check.duration_ms = record.duration_ms;
        suite.check(check)?;
    }
    suite.finish()
}

/// Runs the features on their own thread while this one serves their steps on the session.
fn run_features(session: &mut Session, dir: &Path) -> Result<Collector, Error> {
    let (calls, served) = mpsc::channel();
    let handle = SessionHandle(calls);
    let dir = dir.to_owned();
    std::thread::scope(|scope| {
        let cucumber = scope.spawn(move || futures_executor::block_on(run_cucumber(dir, handle)));
        let requests = serve(session, &served);
        let mut collected =
            cucumber.join().map_err(|_| Error::Usage("the features suite's runner panicked".to_owned()))?;
        for (record, requests) in collected.scenarios.iter_mut().zip(requests) {
            record.requests = requests;
        }
        Ok(collected)
    })
}

/// A failed scenario as a report shows it: the step, and the requests that led to it.
fn failure(step: &str, error: &str, snapshot: Option<&Snapshot>) -> Failure {
    let message = format!("{step}: {error}");
    match snapshot {
        Some(s) if s.run.finding.is_some() => {
            let finding = s.run.finding.as_ref().expect("checked above");
            Failure { message, ..differential_failure(finding, &s.run.trace, None, None, None) }
        }
        _ => Failure {
            message,
            expected: String::new(),
            observed: error.to_owned(),
            seed: None,
            reproduction: snapshot.map(|s| reproduction(&s.run.trace)).unwrap_or_default(),
            file: None,
            replay: None,
        },
    }
}

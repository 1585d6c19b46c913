//! Runbook drills (SPEC §8): a precondition, an injected fault, expectations with deadlines, recovery, and the
//! evidence a security engineer asks for afterwards: a timeline, time to detect, time to contain, funds lost.
//!
//! Every API call of a drill is a [`Step`] taken by the model and the target side by side ([`Session::step`]), so
//! each answer is compared and the ledger invariants are checked after each; the drill adds what only it can
//! see: the provider's side (which payouts it holds, under which idempotency keys) and the clock.
//!
//! Drills inject faults and move money: they refuse any target whose profile environment is not `test`.

pub mod file;

use std::time::{Duration, Instant};

use conform_reference::escrow::EscrowState;
use conform_reference::generate::{Call, EscrowAct, Step, Who};
use conform_reference::ids::EscrowId;
use conform_reference::ledger::EntryKind;
use conform_reference::money::Money;

pub use file::{Drill, DrillFileError, Fault};

use crate::error::Error;
use crate::oracle::Observed;
use crate::oracle::differential::Differential;
use crate::profile::Profile;
use crate::report::CheckOutcome;
use crate::report::event::{DrillEvidence, Failure, TimelineEntry};
use crate::simulate::{Confirmations, Outage, ShkeeperSim};
use crate::suites::{CheckResult, Reporter, Session, differential_failure, matrix, reproduction};

/// The drills, compiled in so that `conform run` and `conform drill` work from any directory.
pub const DRILLS: &[(&str, &str)] = &[("stuck-release", include_str!("../../drills/stuck-release.toml"))];

/// The drills to run: `all`, a name of [`DRILLS`], or a path to a drill file (`….toml`).
pub fn select(name: &str) -> Result<Vec<Drill>, Error> {
    let usage = |e: DrillFileError| Error::Usage(e.to_string());
    let shipped = |(name, text): &(&str, &str)| Drill::parse(&format!("drills/{name}.toml"), text).map_err(usage);
    if name == "all" {
        return DRILLS.iter().map(shipped).collect();
    }
    if name.ends_with(".toml") {
        let text = std::fs::read_to_string(name).map_err(|e| Error::Usage(format!("cannot read {name}: {e}")))?;
        return Drill::parse(name, &text).map(|d| vec![d]).map_err(usage);
    }
    match DRILLS.iter().find(|(n, _)| *n == name) {
        Some(entry) => Ok(vec![shipped(entry)?]),
        None => {
            let names: Vec<&str> = DRILLS.iter().map(|(n, _)| *n).collect();
            Err(Error::Usage(format!("unknown drill `{name}` (drills: {}, or all)", names.join(", "))))
        }
    }
}

/// Drills only run against disposable test deployments.
pub fn refuse_unless_test(profile: &Profile) -> Result<(), Error> {
    let environment = profile.environment();
    if environment.allows_drills() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "drills inject faults and move money: profile `{}` declares environment `{}`, and drills run only \
             against `test`",
            profile.name(),
            environment.name()
        )))
    }
}

/// Runs the drills as the suite `drills`; against a target that is not a test deployment, each is `unverified`.
pub fn run_suite(session: &mut Session, drills: &[Drill], reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let mut suite = reporter.suite("drills", Some(drills.len() as u64))?;
    let refusal = refuse_unless_test(session.profile()).err();
    for drill in drills {
        if !suite.selected(&drill.rules, &["drills"]) {
            continue;
        }
        let check = match &refusal {
            Some(reason) => CheckResult::new(
                drill.name.clone(),
                drill.rules.clone(),
                CheckOutcome::Unverified { reason: reason.to_string() },
            ),
            None => run_drill(drill, session),
        };
        suite.check(check)?;
    }
    suite.finish()
}

/// The scenario's escrow, in the model's ids.
const ESCROW: EscrowId = EscrowId(0);

/// A drill in progress: the differential scenario, the clock, and what has been recorded.
struct Run<'s> {
    session: &'s mut Session,
    differential: Differential,
    shkeeper: std::sync::Arc<ShkeeperSim>,
    started: Instant,
    timeline: Vec<TimelineEntry>,
    /// Payout tasks the simulator held before this drill: the later ones are this drill's.
    payouts_before: usize,
}

impl Run<'_> {
    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record(&mut self, phase: &str, text: String, ok: bool) {
        let at_ms = self.at_ms();
        self.timeline.push(TimelineEntry { at_ms, phase: phase.to_owned(), text, ok });
    }

    /// One step on both sides; a difference ends the drill with the reproduction.
    fn step(&mut self, step: Step) -> Result<(), String> {
        self.session.step(&mut self.differential, &step);
        match &self.differential.run().finding {
            Some(finding) => {
                Err(differential_failure(finding, &self.differential.run().trace, None, None, None).message)
            }
            None => Ok(()),
        }
    }

    fn model_state(&self) -> Option<EscrowState> {
        self.differential.model().escrow(ESCROW).map(|e| e.state)
    }

    /// The idempotency keys of the payouts the provider holds for this drill's escrow, in request order.
    fn payout_keys(&self) -> Vec<String> {
        let payouts = self.shkeeper.payouts();
        payouts
            .get(self.payouts_before..)
            .unwrap_or_default()
            .iter()
            .map(|p| p.external_id.clone().unwrap_or_default())
            .collect()
    }
}

/// What the phases left: the failure that ended the drill, if any, and the evidence.
struct Phases {
    failure: Option<(String, String)>,
    detected_ms: Option<u64>,
    contained_ms: Option<u64>,
    injected_ms: u64,
}

/// Runs one drill against the session's target (whose environment the caller has checked).
pub fn run_drill(drill: &Drill, session: &mut Session) -> CheckResult {
    let shkeeper = session.simulators.shkeeper.clone();
    let payouts_before = shkeeper.payouts().len();
    let started = Instant::now();
    let differential = session.begin();
    let mut run = Run { session, differential, shkeeper, started, timeline: Vec::new(), payouts_before };
    let mut phases = Phases { failure: None, detected_ms: None, contained_ms: None, injected_ms: 0 };
    if let Err((phase, message)) = phases_of(drill, &mut run, &mut phases) {
        run.record(&phase, message.clone(), false);
        phases.failure = Some((phase, message));
    }
    // Whatever happened, the provider is back to normal for what runs next.
    run.shkeeper.set_confirmations(Confirmations::Immediate);
    run.shkeeper.set_outage(Outage::None);
    let (lost_minor, funds_lost) = funds_lost(&run);
    if phases.failure.is_none() && lost_minor > drill.max_funds_lost_minor {
        let message = format!("funds lost: {funds_lost}, at most {} minor units allowed", drill.max_funds_lost_minor);
        run.record("recover", message.clone(), false);
        phases.failure = Some(("recover".to_owned(), message));
    }
    let since_fault = |at: Option<u64>| at.map(|at| at.saturating_sub(phases.injected_ms));
    let evidence = DrillEvidence {
        timeline: run.timeline.clone(),
        time_to_detect_ms: since_fault(phases.detected_ms),
        time_to_contain_ms: since_fault(phases.contained_ms),
        funds_lost,
    };
    let outcome = match phases.failure {
        None => CheckOutcome::Passed,
        Some((phase, message)) => {
            let trace = &run.differential.run().trace;
            let base = match &run.differential.run().finding {
                Some(finding) => differential_failure(finding, trace, None, None, None),
                None => Failure {
                    message: String::new(),
                    expected: "the runbook's expectation".to_owned(),
                    observed: message.clone(),
                    seed: None,
                    reproduction: reproduction(trace),
                    file: None,
                    replay: None,
                },
            };
            CheckOutcome::Failed(Failure { message: format!("{phase}: {message}"), ..base })
        }
    };
    let mut check = CheckResult::new(drill.name.clone(), drill.rules.clone(), outcome);
    check.extra_tags = vec!["drills"];
    check.requests = run.differential.run().requests as u64;
    check.duration_ms = run.at_ms();
    check.evidence = Some(evidence);
    check
}

/// Tags a phase's error with the phase.
fn fail(phase: &'static str) -> impl Fn(String) -> (String, String) {
    move |message| (phase.to_owned(), message)
}

/// The phases in order; the first that fails ends the drill, as `(phase, what went wrong)`.
fn phases_of(drill: &Drill, run: &mut Run<'_>, phases: &mut Phases) -> Result<(), (String, String)> {
    // Precondition: the rightful callers bring an escrow to the state; the target asks the provider for a payout.
    let steps = matrix::reach(&drill.precondition.to_string())
        .ok_or_else(|| fail("precondition")(format!("no scenario reaches {}", drill.precondition)))?;
    for step in steps {
        run.step(step).map_err(fail("precondition"))?;
    }
    if run.model_state() != Some(drill.precondition) {
        return Err(fail("precondition")(format!("the model did not reach {}", drill.precondition)));
    }
    let keys = run.payout_keys();
    if keys.is_empty() {
        return Err(fail("precondition")("the target asked the provider for no payout".to_owned()));
    }
    run.record(
        "precondition",
        format!("escrow in {}, payout requested under key {}", drill.precondition, keys[0]),
        true,
    );

    // The fault.
    match drill.fault {
        // The harness delivers payout confirmations only when a step says so; the simulator withholds its own.
        Fault::DropPayoutConfirmations => run.shkeeper.set_confirmations(Confirmations::Withheld),
        Fault::ProviderOutage => run.shkeeper.set_outage(Outage::Unavailable),
    }
    phases.injected_ms = run.at_ms();
    run.record("inject", drill.fault.describe().to_owned(), true);

    // Detection: past the threshold, an admin's stuck-payout list shows the escrow (the target's list is
    // compared with the model's by the differential); polled until the deadline.
    run.step(Step::Clock { seconds: drill.advance_clock_seconds }).map_err(fail("detect"))?;
    let deadline = Duration::from_millis(drill.detect_deadline_ms);
    loop {
        run.step(Step::Call { who: Who::AdminA, call: Call::ListStuckPayouts }).map_err(fail("detect"))?;
        let listed = match run.differential.run().trace.last().map(|e| &e.observed) {
            Some(Observed::Listed { escrows, .. }) => escrows.contains(&ESCROW),
            other => return Err(fail("detect")(format!("an admin could not read the stuck-payout list: {other:?}"))),
        };
        if listed {
            phases.detected_ms = Some(run.at_ms());
            run.record("detect", "the escrow is listed as a stuck payout".to_owned(), true);
            break;
        }
        if run.at_ms().saturating_sub(phases.injected_ms) > deadline.as_millis() as u64 {
            return Err(fail("detect")(format!("not listed as stuck within {} ms", drill.detect_deadline_ms)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Containment: an admin retries; the provider must see the first request's key again (PRV-4).
    run.step(Step::Act { escrow: 0, who: Who::Rightful, act: EscrowAct::RetryPayout }).map_err(fail("contain"))?;
    let keys = run.payout_keys();
    let first = keys[0].clone();
    if keys.len() < 2 {
        return Err(fail("contain")("the retry never reached the provider".to_owned()));
    }
    if let Some(other) = keys.iter().find(|k| **k != first) {
        return Err(fail("contain")(format!(
            "the retry asked the provider for a payout under a new key `{other}` (first `{first}`): two payouts for \
             one escrow (PRV-4)"
        )));
    }
    let contained = run.at_ms();
    if contained.saturating_sub(phases.injected_ms) > drill.contain_deadline_ms {
        return Err(fail("contain")(format!("contained after the deadline of {} ms", drill.contain_deadline_ms)));
    }
    phases.contained_ms = Some(contained);
    run.record(
        "contain",
        format!("retried under the same key `{first}` ({} requests to the provider)", keys.len()),
        true,
    );

    // Recovery: the provider is back and confirms once; the escrow ends as the runbook says, its books closed.
    run.shkeeper.set_confirmations(Confirmations::Immediate);
    run.shkeeper.set_outage(Outage::None);
    run.step(Step::PayoutNotice { escrow: 0, confirmed: true, event: 0 }).map_err(fail("recover"))?;
    // The buyer reads the escrow: the differential compares the target's state with the model's.
    run.step(Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::Get }).map_err(fail("recover"))?;
    if run.model_state() != Some(drill.recovered_state) {
        return Err(fail("recover")(format!(
            "the model ends in {:?}, the runbook says {}",
            run.model_state(),
            drill.recovered_state
        )));
    }
    let model = run.differential.model().clone();
    match run.session.target_ledger(&model) {
        None => {}
        Some(Err(reason)) => return Err(fail("recover")(format!("the target's ledger could not be read: {reason}"))),
        Some(Ok(view)) => {
            let confirmed = view
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::PayoutConfirmed && e.escrow == Some(ESCROW))
                .count();
            if confirmed != 1 {
                return Err(fail("recover")(format!("the target booked {confirmed} payout confirmations, not 1")));
            }
        }
    }
    if run.at_ms().saturating_sub(phases.injected_ms) > drill.recover_deadline_ms {
        return Err(fail("recover")(format!("recovered after the deadline of {} ms", drill.recover_deadline_ms)));
    }
    run.record("recover", format!("the provider confirmed once; the escrow is {}", drill.recovered_state), true);
    Ok(())
}

/// Money lost, from the provider's side: it pays every payout it holds under a distinct idempotency key once, so
/// each key beyond the first pays the seller again. `(minor units, as the report shows it)`.
fn funds_lost(run: &Run<'_>) -> (i128, String) {
    let mut keys = run.payout_keys();
    keys.sort();
    keys.dedup();
    let extra = keys.len().saturating_sub(1) as i128;
    let owed = run.differential.model().payout_requests().iter().find(|r| r.escrow == ESCROW).map(|r| r.amount);
    match owed {
        Some(amount) if extra > 0 => {
            let lost = Money::from_minor(amount.minor * extra, amount.currency);
            (lost.minor, format!("{} {}", lost.to_decimal_string(), amount.currency.code()))
        }
        _ => (0, "0".to_owned()),
    }
}

/// `conform drill NAME|all`: the drills alone against a target, reported like a run (console, `events.jsonl`,
/// summary), with a run's exit statuses; a target that is not a test deployment is refused before it starts.
pub fn command(
    name: &str,
    target: &crate::suites::TargetOptions,
    report_dir: &std::path::Path,
) -> Result<crate::exit::Exit, Error> {
    use crate::report::event::RunStarted;
    use crate::report::{Event, EventStream};

    let started = Instant::now();
    let drills = select(name)?;
    let profile = target.load_profile()?;
    refuse_unless_test(&profile)?;
    let catalog = crate::contracts::Rules::embedded()?;
    let threats = crate::contracts::Threats::embedded()?;
    std::fs::create_dir_all(report_dir).map_err(|source| Error::ReportWrite { path: report_dir.to_owned(), source })?;
    let mut stream = EventStream::new(crate::run::writers(report_dir, crate::gate::Date::today_utc())?);
    stream.emit(Event::RunStarted(RunStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        seed: 0,
        target: profile.name().to_owned(),
        environment: profile.environment().name().to_owned(),
        faults: target.faults.iter().map(|f| f.name().to_owned()).collect(),
        suites: vec!["drills".to_owned()],
        tags: Vec::new(),
    }))?;
    let mut session = Session::open(target, profile, format!("drill{}", std::process::id()))?;
    let mut reporter = Reporter::new(&catalog, &mut stream, &[]);
    run_suite(&mut session, &drills, &mut reporter)?;
    crate::run::finish(
        &mut stream,
        &catalog,
        &threats,
        &crate::gate::Waivers::none(),
        crate::gate::Date::today_utc(),
        started,
    )
}

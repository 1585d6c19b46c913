//! Runbook drills (SPEC §8): a precondition, an injected fault, expectations with deadlines, recovery, and the
//! evidence a security engineer asks for afterwards: a timeline, time to detect, time to contain, funds lost.
//!
//! Every API call of a drill is a [`Step`] taken by the model and the target side by side ([`Session::step`]), so
//! each answer is compared and the ledger invariants are checked after each; the drill adds what only it can
//! see: the provider's side (which invoices and payouts it holds, under which idempotency keys), the clock, the
//! attacker's socket, the dead letters and the audit log.
//!
//! One engine runs every drill: a drill file picks its fault, actions and expectations from a fixed vocabulary
//! ([`file`](mod@file)), and each word is implemented once here (`act`, `expectation`), whichever drill uses it. Each
//! drill is one check of the suite `drills`, named as the drill, so launch criteria name it `drills/NAME`.
//!
//! Drills inject faults and move money: they refuse any target whose profile environment is not `test`.

pub mod file;

use std::time::{Duration, Instant};

use conform_reference::escrow::EscrowState;
use conform_reference::generate::{Call, EscrowAct, Planned, Portion, Step, Who};
use conform_reference::ids::{EscrowId, UserId};
use conform_reference::ledger::{Account, Entry, EntryKind, Provider};
use conform_reference::money::{Currency, Money};
use conform_reference::providers::{ProofFlag, ProviderStatus};
use conform_reference::realtime::DISCONNECT_DEADLINE_SECONDS;
use conform_reference::refusal::Refusal;
use conform_reference::world::{ApprovalStatus, Resolution};
use serde_json::Value;

pub use file::{Action, AuditOf, Drill, DrillFileError, DrillProvider, Expect, Fault, OutageMode, Phase, Word};

use crate::drive::socketio::SocketIoClient;
use crate::drive::webhooks::{Damage, Secret};
use crate::error::Error;
use crate::oracle::Observed;
use crate::oracle::differential::Differential;
use crate::oracle::http_target::Forgery;
use crate::profile::Profile;
use crate::report::CheckOutcome;
use crate::report::event::{DrillEvidence, Failure, TimelineEntry};
use crate::simulate::{Confirmations, Outage, ShkeeperSim};
use crate::suites::realtime::{Connect, Dialect, SLACK, connect, is_refusal};
use crate::suites::{CheckResult, Reporter, Session, differential_failure, matrix, reproduction};

/// The drills, compiled in so that `conform run` and `conform drill` work from any directory.
pub const DRILLS: &[(&str, &str)] = &[
    ("provider-outage", include_str!("../../drills/provider-outage.toml")),
    ("leaked-webhook-secret", include_str!("../../drills/leaked-webhook-secret.toml")),
    ("stuck-release", include_str!("../../drills/stuck-release.toml")),
    ("suspicious-payment-proof", include_str!("../../drills/suspicious-payment-proof.toml")),
    ("compromised-admin", include_str!("../../drills/compromised-admin.toml")),
];

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

/// The cast, by index (`conform_reference::generate::CAST`): the setup creates it first, so a cast index is also the
/// model's user id.
const ADMIN_A: u8 = 4;
const ADMIN_B: u8 = 5;

/// How many copies of the provider's queued delivery arrive in the burst after an outage.
const BURST_COPIES: usize = 3;

/// The event numbers of the drills' payment deliveries: the genuine one, and the one forged with a leaked secret.
const GENUINE_EVENT: u8 = 0;
const FORGED_EVENT: u8 = 40;

/// Why a phase stopped: a runbook expectation broken, or one the target gives no means to check.
enum Stop {
    Failed(String),
    Unverified(String),
}

type Phased<T = ()> = Result<T, Stop>;

fn failed<T>(message: impl Into<String>) -> Phased<T> {
    Err(Stop::Failed(message.into()))
}

fn unverified<T>(message: impl Into<String>) -> Phased<T> {
    Err(Stop::Unverified(message.into()))
}

/// A drill in progress: the differential scenario, the clock, and what has been recorded.
struct Run<'s> {
    session: &'s mut Session,
    differential: Differential,
    shkeeper: std::sync::Arc<ShkeeperSim>,
    started: Instant,
    timeline: Vec<TimelineEntry>,
    /// Payout tasks and invoices the simulator held before this drill: the later ones are this drill's.
    payouts_before: usize,
    invoices_before: usize,
    /// The escrows the fault concerns, in the model's ids.
    escrows: Vec<EscrowId>,
    /// What the target answered to the key calls of the latest action, in order.
    answers: Vec<Observed>,
    /// The leaked webhook secret (never written to the timeline or a report).
    leaked: Option<String>,
    /// The secret SHKeeper deliveries were signed with before the drill rotated it, to put back afterwards.
    rotated_from: Option<String>,
    /// The secret the drill rotated to.
    rotated_to: Option<String>,
    /// The attacker's socket, on the compromised admin's session.
    socket: Option<Box<SocketIoClient>>,
    /// The compromised admin's access token on the target (never written to the timeline or a report).
    attacker_token: Option<String>,
    /// When the latest revocation was answered.
    revoked_at: Option<Instant>,
}

impl Run<'_> {
    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record(&mut self, phase: &str, text: String, ok: bool) {
        let at_ms = self.at_ms();
        self.timeline.push(TimelineEntry { at_ms, phase: phase.to_owned(), text, ok });
    }

    /// One step on both sides; a difference ends the drill with the reproduction, a request the target gave no
    /// outcome for leaves it unverified.
    fn step(&mut self, step: Step) -> Phased {
        let unknown_before = self.differential.run().unknown.len();
        self.session.step(&mut self.differential, &step);
        let run = self.differential.run();
        if let Some(finding) = &run.finding {
            return failed(differential_failure(finding, &run.trace, None, None, None).message);
        }
        match run.unknown.get(unknown_before) {
            Some((index, reason)) => unverified(format!("request {index} got no outcome from the target: {reason}")),
            None => Ok(()),
        }
    }

    /// One step whose call must reach both sides; the target's answer to it is kept in [`Run::answers`].
    fn call(&mut self, step: Step) -> Phased<Observed> {
        let before = self.differential.run().trace.len();
        self.step(step.clone())?;
        let trace = &self.differential.run().trace;
        if trace.len() == before {
            return unverified(format!("the target cannot be made to take the step {step:?} (its profile lacks it)"));
        }
        let observed = trace.last().map(|e| e.observed.clone()).unwrap_or(Observed::Unknown { reason: String::new() });
        self.answers.push(observed.clone());
        Ok(observed)
    }

    fn model(&self) -> &conform_reference::world::World {
        self.differential.model()
    }

    fn state_of(&self, escrow: EscrowId) -> Option<EscrowState> {
        self.model().escrow(escrow).map(|e| e.state)
    }

    /// The index [`Step::Act`] names an escrow by: from the latest backwards.
    fn index_of(&self, escrow: EscrowId) -> u8 {
        let count = self.model().escrows().len();
        let position = self.model().escrows().iter().position(|e| e.id == escrow).unwrap_or(0);
        count.saturating_sub(1 + position) as u8
    }

    fn act(&self, escrow: EscrowId, who: Who, act: EscrowAct) -> Step {
        Step::Act { escrow: self.index_of(escrow), who, act }
    }

    /// The idempotency keys of the payouts the provider holds since the drill began, in request order.
    fn payout_keys(&self) -> Vec<String> {
        let payouts = self.shkeeper.payouts();
        payouts
            .get(self.payouts_before..)
            .unwrap_or_default()
            .iter()
            .map(|p| p.external_id.clone().unwrap_or_default())
            .collect()
    }

    /// The invoices the provider holds since the drill began, by the target's external id.
    fn invoice_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .shkeeper
            .invoices()
            .get(self.invoices_before..)
            .unwrap_or_default()
            .iter()
            .map(|i| i.external_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The target's ledger entries of this scenario's escrows; `None` when the profile declares no ledger read.
    fn target_entries(&mut self) -> Phased<Option<Vec<Entry>>> {
        let model = self.model().clone();
        match self.session.target_ledger(&model) {
            None => Ok(None),
            Some(Err(reason)) => unverified(format!("the target's ledger could not be read: {reason}")),
            Some(Ok(view)) => Ok(Some(view.entries.into_iter().filter(|e| e.escrow.is_some()).collect())),
        }
    }

    /// The secrets this drill handles, which no answer may echo.
    fn secrets(&self) -> Vec<String> {
        [self.leaked.clone(), self.rotated_to.clone(), self.attacker_token.clone()].into_iter().flatten().collect()
    }
}

/// What the phases left: the stop that ended the drill, if any, and the evidence.
struct Phases {
    stop: Option<(String, Stop)>,
    detected_ms: Option<u64>,
    contained_ms: Option<u64>,
    injected_ms: u64,
}

/// Runs one drill against the session's target (whose environment the caller has checked).
pub fn run_drill(drill: &Drill, session: &mut Session) -> CheckResult {
    let shkeeper = session.simulators.shkeeper.clone();
    let payouts_before = shkeeper.payouts().len();
    let invoices_before = shkeeper.invoices().len();
    let started = Instant::now();
    let differential = session.begin();
    let mut run = Run {
        session,
        differential,
        shkeeper,
        started,
        timeline: Vec::new(),
        payouts_before,
        invoices_before,
        escrows: Vec::new(),
        answers: Vec::new(),
        leaked: None,
        rotated_from: None,
        rotated_to: None,
        socket: None,
        attacker_token: None,
        revoked_at: None,
    };
    let mut phases = Phases { stop: None, detected_ms: None, contained_ms: None, injected_ms: 0 };
    if let Err((phase, stop)) = phases_of(drill, &mut run, &mut phases) {
        let text = match &stop {
            Stop::Failed(message) => message.clone(),
            Stop::Unverified(reason) => format!("could not be checked: {reason}"),
        };
        run.record(&phase, text, false);
        phases.stop = Some((phase, stop));
    }
    // Whatever happened, the provider is back to normal for what runs next, and so is the webhook secret.
    run.shkeeper.set_confirmations(Confirmations::Immediate);
    run.shkeeper.set_outage(Outage::None);
    run.socket = None;
    // Counted before the secret is put back: that takes a scenario of its own, after which the adapter no longer
    // knows this scenario's escrows.
    let (lost_minor, funds_lost) = funds_lost(&mut run);
    if let Some(message) = restore_secret(&mut run) {
        run.record("cleanup", message.clone(), false);
        if phases.stop.is_none() {
            phases.stop = Some(("cleanup".to_owned(), Stop::Failed(message)));
        }
    }
    let losing = lost_minor > drill.max_funds_lost_minor;
    if losing && !matches!(phases.stop, Some((_, Stop::Failed(_)))) {
        let message = format!("funds lost: {funds_lost}, at most {} minor units allowed", drill.max_funds_lost_minor);
        run.record("recover", message.clone(), false);
        phases.stop = Some(("recover".to_owned(), Stop::Failed(message)));
    }
    let since_fault = |at: Option<u64>| at.map(|at| at.saturating_sub(phases.injected_ms));
    let evidence = DrillEvidence {
        timeline: run.timeline.clone(),
        time_to_detect_ms: since_fault(phases.detected_ms),
        time_to_contain_ms: since_fault(phases.contained_ms),
        funds_lost,
    };
    let outcome = match phases.stop {
        None => CheckOutcome::Passed,
        Some((phase, Stop::Unverified(reason))) => CheckOutcome::Unverified { reason: format!("{phase}: {reason}") },
        Some((phase, Stop::Failed(message))) => {
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

/// Tags a phase's stop with the phase.
fn at(phase: &'static str) -> impl Fn(Stop) -> (String, Stop) {
    move |stop| (phase.to_owned(), stop)
}

/// The phases in order; the first that stops ends the drill, as `(phase, why)`.
fn phases_of(drill: &Drill, run: &mut Run<'_>, phases: &mut Phases) -> Result<(), (String, Stop)> {
    precondition(drill, run).map_err(at("precondition"))?;
    inject(drill, run).map_err(at("inject"))?;
    phases.injected_ms = run.at_ms();
    run.record("inject", drill.fault.describe().to_owned(), true);

    if drill.advance_clock_seconds > 0 {
        run.step(Step::Clock { seconds: drill.advance_clock_seconds }).map_err(at("detect"))?;
        if !run.session.abilities.clock {
            return Err(at("detect")(Stop::Unverified("the profile declares no test clock to advance".to_owned())));
        }
    }
    phase("detect", &drill.detect, drill, run, phases.injected_ms).map_err(at("detect"))?;
    phases.detected_ms = Some(run.at_ms());
    phase("contain", &drill.contain, drill, run, phases.injected_ms).map_err(at("contain"))?;
    phases.contained_ms = Some(run.at_ms());
    phase("recover", &drill.recover, drill, run, phases.injected_ms).map_err(at("recover"))?;
    recovered(drill, run).map_err(at("recover"))?;
    if let Some(of) = drill.audit_of {
        audited(of, run).map_err(at("evidence"))?;
    }
    Ok(())
}

/// The rightful callers bring an escrow to the precondition's state, as the matrix suite's setups do.
fn precondition(drill: &Drill, run: &mut Run<'_>) -> Phased {
    let mut steps = matrix::reach(&drill.precondition.to_string())
        .ok_or_else(|| Stop::Failed(format!("no scenario reaches {}", drill.precondition)))?;
    for step in &mut steps {
        if let Step::Create { major, provider, .. } = step {
            *major = drill.major;
            if let Some(chosen) = drill.provider {
                *provider = provider_of(chosen);
            }
        }
    }
    if drill.payment_started {
        steps.push(Step::Act { escrow: 0, who: Who::Rightful, act: EscrowAct::StartPayment });
    }
    // A target that cannot take an escrow of the provider (no proof submission bound) cannot be drilled with it.
    for step in &steps {
        if let Step::Create { provider, .. } = step
            && !run.session.abilities.providers.contains(provider)
        {
            return unverified(format!("the profile offers no {} escrows", provider.name()));
        }
    }
    for step in steps {
        run.step(step)?;
    }
    let Some(escrow) = run.model().escrows().last().map(|e| e.id) else {
        return failed("the model created no escrow");
    };
    run.escrows = vec![escrow];
    if run.state_of(escrow) != Some(drill.precondition) {
        return failed(format!("the model did not reach {}", drill.precondition));
    }
    let amount = run.model().escrow(escrow).map(|e| e.amount).unwrap_or(Money::from_minor(0, Currency::Usd));
    let mut text =
        format!("escrow of {} {} in {}", amount.to_decimal_string(), amount.currency.code(), drill.precondition);
    if drill.payment_started {
        text.push_str(", its payment started");
    }
    if drill.precondition == EscrowState::ReleasePending {
        let keys = run.payout_keys();
        let Some(first) = keys.first() else { return failed("the target asked the provider for no payout") };
        text.push_str(&format!(", payout requested under key {first}"));
    }
    run.record("precondition", text, true);
    Ok(())
}

fn provider_of(provider: DrillProvider) -> Provider {
    match provider {
        DrillProvider::Shkeeper => Provider::Shkeeper,
        DrillProvider::ManualWallet => Provider::ManualWallet,
    }
}

/// The simulator's way of failing for an outage mode.
fn outage_of(mode: OutageMode) -> Outage {
    match mode {
        OutageMode::Http503 => Outage::Unavailable,
        OutageMode::Http200StatusError => Outage::ErrorInBody,
        OutageMode::NoAnswer => Outage::Hang,
    }
}

/// The proofs a buyer hands in under `compromise payment-proofs`: a hash already used (on the precondition's
/// escrow), the wrong amount (half), the wrong currency; each on an escrow of its own, with the flag it must raise.
const SUSPICIOUS_PROOFS: [(EscrowAct, ProofFlag); 3] = [
    (
        EscrowAct::SubmitProof { tx: 0, exact: true, right_destination: true, wrong_currency: false },
        ProofFlag::TxHashReused,
    ),
    (
        EscrowAct::SubmitProof { tx: 1, exact: false, right_destination: true, wrong_currency: false },
        ProofFlag::AmountMismatch,
    ),
    (
        EscrowAct::SubmitProof { tx: 2, exact: true, right_destination: true, wrong_currency: true },
        ProofFlag::CurrencyMismatch,
    ),
];

/// The fault.
fn inject(drill: &Drill, run: &mut Run<'_>) -> Phased {
    match drill.fault {
        // The harness delivers payout confirmations only when a step says so; the simulator withholds its own.
        Fault::DropPayoutConfirmations => run.shkeeper.set_confirmations(Confirmations::Withheld),
        Fault::ProviderOutage => {
            // The model's unavailable provider stands for every way of failing; the simulator fails in each mode in
            // turn when the buyer starts a payment.
            let down = ProviderStatus { enabled: true, available: false };
            run.step(Step::ProviderStatus { provider: Provider::Shkeeper, status: down })?;
            run.shkeeper.set_outage(outage_of(drill.outage_modes[0]));
        }
        Fault::LeakedWebhookSecret => run.leaked = Some(run.session.adapter.shkeeper_key().to_owned()),
        Fault::CompromisedPaymentProofs => {
            if !run.session.abilities.providers.contains(&Provider::ManualWallet) {
                return unverified("the profile binds no payment-proof submission (manual wallet)");
            }
            let mut escrows = Vec::new();
            for (proof, _) in SUSPICIOUS_PROOFS {
                run.step(Step::Create {
                    buyer: 0,
                    seller: 1,
                    major: drill.major,
                    currency: 0,
                    provider: Provider::ManualWallet,
                    extra: None,
                })?;
                let escrow = run.model().escrows().last().map(|e| e.id).unwrap_or(EscrowId(0));
                run.call(run.act(escrow, Who::Rightful, proof))?;
                escrows.push(escrow);
            }
            run.escrows = escrows;
        }
        Fault::CompromisedAdminSession => {
            run.step(Step::SignIn { actor: ADMIN_A, password_ok: true })?;
            let token = run.session.adapter.live_access_token(run.model(), UserId(u32::from(ADMIN_A)));
            let Some((_, token)) = token else { return failed("the first admin has no live session") };
            run.attacker_token = Some(token.clone());
            let dialect = Dialect::of(run.session).map_err(Stop::Unverified)?;
            match run.session.block_on(connect(dialect.config(Some(&token)))) {
                Connect::Accepted(client) => run.socket = Some(client),
                Connect::Refused(message) => {
                    return failed(format!("the admin's live token opened no socket: CONNECT_ERROR {message:?}"));
                }
                Connect::Failed(e) => return unverified(format!("no socket could be opened: {e}")),
            }
        }
    }
    Ok(())
}

/// One phase: its action, then each expectation; all within its deadline from the fault.
fn phase(name: &'static str, phase: &Phase, drill: &Drill, run: &mut Run<'_>, injected_ms: u64) -> Phased {
    if let Some(action) = phase.action {
        run.answers.clear();
        let text = act(action, drill, run)?;
        run.record(name, text, true);
    }
    for expect in &phase.expect {
        let text = expectation(*expect, phase, drill, run, injected_ms)?;
        run.record(name, text, true);
    }
    let took = run.at_ms().saturating_sub(injected_ms);
    if took > phase.deadline_ms {
        return failed(format!("done {took} ms after the fault, past the deadline of {} ms", phase.deadline_ms));
    }
    Ok(())
}

/// Does what an action says; what happened, for the timeline.
fn act(action: Action, drill: &Drill, run: &mut Run<'_>) -> Phased<String> {
    let escrows = run.escrows.clone();
    let first = escrows[0];
    Ok(match action {
        Action::StartPayment => {
            for mode in &drill.outage_modes {
                run.shkeeper.set_outage(outage_of(*mode));
                run.call(run.act(first, Who::Rightful, EscrowAct::StartPayment))?;
            }
            let modes: Vec<&str> = drill.outage_modes.iter().map(|m| m.name()).collect();
            format!("the buyer started the payment while the provider failed with {}", modes.join(", then "))
        }
        Action::ProviderRecovers => {
            run.shkeeper.set_outage(Outage::None);
            let up = ProviderStatus { enabled: true, available: true };
            run.step(Step::ProviderStatus { provider: Provider::Shkeeper, status: up })?;
            run.call(run.act(first, Who::Rightful, EscrowAct::StartPayment))?;
            "the provider answers again; the buyer started the payment".to_owned()
        }
        Action::BurstDeliveries => {
            // The same provider event, each copy signed anew (a new timestamp and signature): WH-3, WH-4. The
            // copies arrive at once, as a provider's queue empties: a target that checks for the event and records
            // it in two moves applies more than one. The model cannot take requests at once, so one more copy then
            // goes through the differential: the model applies the payment there, and for the target it is one
            // more duplicate; the ledger invariants and `ledger-matches-provider` judge what the target booked.
            let pay = Step::Pay {
                escrow: run.index_of(first),
                portion: Portion::Due,
                wrong_currency: false,
                event: GENUINE_EVENT,
                authentic: true,
            };
            let Some(Planned::Call(request)) = run.differential.plan(&pay) else {
                return unverified("the payment delivery could not be planned");
            };
            let copies = vec![request; BURST_COPIES];
            let model = run.model().clone();
            let answers = run.session.block_on(run.session.adapter.send_concurrently(&copies, &model));
            if let Some(answer) = answers.iter().find(|a| !matches!(a, Observed::Accepted { .. })) {
                return match answer {
                    Observed::Unknown { reason } => unverified(format!("a copy of the burst got no answer: {reason}")),
                    _ => failed(format!("a copy of the provider's delivery was answered {answer:?}, not 2xx (WH-3)")),
                };
            }
            run.call(pay)?;
            run.step(run.act(first, Who::Buyer, EscrowAct::Get))?;
            format!("the provider's queued payment arrived {} times, {BURST_COPIES} of them at once", BURST_COPIES + 1)
        }
        Action::RotateWebhookSecret => {
            let old = run.session.adapter.shkeeper_key().to_owned();
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let new = format!("conform-drill-rotated-{nanos:x}");
            rotate(run, &new)?;
            run.rotated_from = Some(old);
            run.rotated_to = Some(new);
            "the first admin stepped up and rotated SHKeeper's webhook secret (no overlap)".to_owned()
        }
        Action::DeliverWithLeakedSecret => {
            let Some(leaked) = run.leaked.clone() else { return failed("no secret leaked in this drill") };
            let forgery = Forgery::Damaged(Damage::OtherSecret(Secret::from(leaked.as_str())));
            run.session.adapter.forge_as(Some(forgery));
            let pay = Step::Pay {
                escrow: run.index_of(first),
                portion: Portion::Due,
                wrong_currency: false,
                event: FORGED_EVENT,
                authentic: false,
            };
            let sent = run.call(pay);
            run.session.adapter.forge_as(None);
            sent?;
            "a payment delivery signed with the leaked secret reached the target".to_owned()
        }
        Action::ProviderPays => {
            let pay = Step::Pay {
                escrow: run.index_of(first),
                portion: Portion::Due,
                wrong_currency: false,
                event: GENUINE_EVENT,
                authentic: true,
            };
            run.call(pay)?;
            run.step(run.act(first, Who::Buyer, EscrowAct::Get))?;
            "the provider delivered the payment, signed with the current secret".to_owned()
        }
        Action::ApproveAsOneAdmin => {
            for escrow in &escrows {
                run.call(run.act(*escrow, Who::Rightful, EscrowAct::ApproveProof)).map_err(|stop| match stop {
                    Stop::Failed(message) => Stop::Failed(format!(
                        "{message}: the proof should have been flagged (PRV-6) and its approval held for a second \
                         admin (AZ-7)"
                    )),
                    unverified => unverified,
                })?;
            }
            format!("the first admin (stepped up) approved the {} proofs", escrows.len())
        }
        Action::ApproveAgainAsSameAdmin => {
            let pending = approvals_of(run, UserId(u32::from(ADMIN_A)), Some(ApprovalStatus::Pending));
            if pending.is_empty() {
                return failed("the first admin has no pending approval to approve again");
            }
            for index in &pending {
                run.call(Step::ApprovePending { approval: *index, second: false })?;
            }
            format!("the first admin approved its own {} pending approvals again", pending.len())
        }
        Action::RejectProofs => {
            for escrow in &escrows {
                run.call(run.act(*escrow, Who::Rightful, EscrowAct::RejectProof))?;
            }
            format!("the first admin rejected the {} proofs", escrows.len())
        }
        Action::AttackerMovesFunds => {
            let resolve = EscrowAct::Resolve(Resolution::Release);
            run.call(run.act(first, Who::AdminA, resolve))?;
            // The worst case: the attacker holds the second factor too.
            run.step(Step::StepUp { actor: ADMIN_A, ok: true })?;
            run.call(run.act(first, Who::AdminA, resolve))?;
            run.call(Step::Call { who: Who::AdminA, call: Call::ApprovePending })?;
            "with the stolen session the attacker resolved the dispute for the seller, without then with a step-up, \
             and approved its own pending approval"
                .to_owned()
        }
        Action::RevokeAdminSessions => {
            run.step(Step::StepUp { actor: ADMIN_B, ok: true })?;
            let answer = run.call(Step::RevokeSessions { target: ADMIN_A })?;
            run.revoked_at = Some(Instant::now());
            if !matches!(answer, Observed::Accepted { .. }) {
                return failed(format!("the revocation was not accepted: {answer:?}"));
            }
            "the second admin stepped up and revoked every session of the first".to_owned()
        }
        Action::SecondAdminApprovesPending => {
            let requested = approvals_of(run, UserId(u32::from(ADMIN_A)), None);
            if requested.is_empty() {
                return failed("the first admin requested no approval");
            }
            for index in &requested {
                run.call(Step::ApprovePending { approval: *index, second: true })?;
            }
            format!("the second admin approved the first admin's {} approval(s)", requested.len())
        }
        Action::RetryPayout => {
            run.call(run.act(first, Who::Rightful, EscrowAct::RetryPayout))?;
            "an admin (stepped up) retried the payout".to_owned()
        }
        Action::ProviderConfirms => {
            run.shkeeper.set_confirmations(Confirmations::Immediate);
            run.shkeeper.set_outage(Outage::None);
            run.call(Step::PayoutNotice { escrow: run.index_of(first), confirmed: true, event: 0 })?;
            // The buyer reads the escrow: the differential compares the target's state with the model's.
            run.step(run.act(first, Who::Buyer, EscrowAct::Get))?;
            "the provider confirmed the payout once".to_owned()
        }
    })
}

/// The indices (creation order) of the approvals `admin` requested, in `status` if given.
fn approvals_of(run: &Run<'_>, admin: UserId, status: Option<ApprovalStatus>) -> Vec<u8> {
    let approvals = run.model().approvals();
    (0..approvals.len())
        .filter(|i| approvals[*i].requested_by == admin && status.is_none_or(|s| approvals[*i].status == s))
        .map(|i| i as u8)
        .collect()
}

/// The first admin steps up and rotates SHKeeper's secret to `secret` with no overlap; once the target accepted,
/// the adapter signs with it (the webhooks suite's rotation, `src/suites/webhooks.rs`).
fn rotate(run: &mut Run<'_>, secret: &str) -> Phased {
    run.step(Step::StepUp { actor: ADMIN_A, ok: true })?;
    run.session.adapter.rotate_as(Some((SHKEEPER.to_owned(), secret.to_owned())));
    let answer = run.call(Step::Call { who: Who::AdminA, call: Call::RotateWebhookSecret });
    run.session.adapter.rotate_as(None);
    match answer? {
        Observed::Accepted { .. } => {
            run.session.adapter.set_shkeeper_key(secret.to_owned());
            Ok(())
        }
        other => failed(format!("the rotation was not accepted: {other:?}")),
    }
}

/// The SHKeeper webhook's profile name, which a rotation names.
const SHKEEPER: &str = "shkeeper";

/// Puts back the secret the drill rotated away from, in a scenario of its own, so that later suites deliver as
/// before; `Some` says what went wrong.
fn restore_secret(run: &mut Run<'_>) -> Option<String> {
    let old = run.rotated_from.take()?;
    let mut differential = run.session.begin();
    std::mem::swap(&mut run.differential, &mut differential);
    let restored = rotate(run, &old);
    std::mem::swap(&mut run.differential, &mut differential);
    match restored {
        Ok(()) => None,
        Err(Stop::Failed(message) | Stop::Unverified(message)) => {
            Some(format!("rotating SHKeeper's secret back failed: {message}"))
        }
    }
}

/// Checks one expectation; what was seen, for the timeline.
fn expectation(expect: Expect, phase: &Phase, drill: &Drill, run: &mut Run<'_>, injected_ms: u64) -> Phased<String> {
    let escrows = run.escrows.clone();
    let first = escrows[0];
    Ok(match expect {
        Expect::ListedAsStuck => {
            // Past the threshold, an admin's stuck-payout list shows the escrow (the target's list is compared
            // with the model's by the differential); polled until the deadline.
            loop {
                let listed = match run.call(Step::Call { who: Who::AdminA, call: Call::ListStuckPayouts })? {
                    Observed::Listed { escrows, .. } => escrows.contains(&first),
                    other => return failed(format!("an admin could not read the stuck-payout list: {other:?}")),
                };
                if listed {
                    break "the escrow is listed as a stuck payout".to_owned();
                }
                if run.at_ms().saturating_sub(injected_ms) > phase.deadline_ms {
                    return failed(format!("not listed as stuck within {} ms", phase.deadline_ms));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Expect::SameIdempotencyKey => {
            let keys = run.payout_keys();
            let Some(first_key) = keys.first().cloned() else { return failed("the provider holds no payout") };
            if keys.len() < 2 {
                return failed("the retry never reached the provider");
            }
            if let Some(other) = keys.iter().find(|k| **k != first_key) {
                return failed(format!(
                    "the retry asked the provider for a payout under a new key `{other}` (first `{first_key}`): two \
                     payouts for one escrow (PRV-4)"
                ));
            }
            format!("retried under the same key `{first_key}` ({} requests to the provider)", keys.len())
        }
        Expect::ProviderUnavailable => {
            for answer in &run.answers {
                if !matches!(answer, Observed::Refused { status: 503, refusal: Some(Refusal::ProviderUnavailable) }) {
                    return failed(format!("start_payment answered {answer:?}, not 503 provider_unavailable (PRV-2)"));
                }
            }
            if let Some(entries) = run.target_entries()? {
                let orphans = entries.iter().filter(|e| e.escrow == Some(first)).count();
                if orphans > 0 {
                    return failed(format!(
                        "the target booked {orphans} ledger entries for the refused payment (PRV-2)"
                    ));
                }
            }
            if run.state_of(first) != Some(EscrowState::AwaitingPayment) {
                return failed("the escrow left awaiting_payment");
            }
            format!(
                "each start answered 503 provider_unavailable ({} tries); no ledger entry, the escrow unchanged",
                run.answers.len()
            )
        }
        Expect::OneInvoice => {
            let invoices = run.invoice_ids();
            if invoices.len() != 1 {
                return failed(format!("the provider holds {} invoices for the escrow, not 1 (PRV-1)", invoices.len()));
            }
            "the payment started; the provider holds one invoice for the escrow".to_owned()
        }
        Expect::RotationAccepted => {
            if run.rotated_to.is_none() {
                return failed("no rotation was accepted");
            }
            "the new secret is in force; deliveries are signed with it".to_owned()
        }
        Expect::RefusedAndDeadLettered => {
            let sent = run.session.adapter.last_delivery().cloned();
            let Some(sent) = sent else { return unverified("no delivery was sent") };
            let answer = String::from_utf8_lossy(&sent.body).into_owned();
            if !matches!(sent.status, 400 | 401) {
                return failed(format!("the forged delivery was answered {} (WH-8)", sent.status));
            }
            if run.secrets().iter().any(|s| !s.is_empty() && answer.contains(s.as_str())) {
                return failed("the refusal names a secret (WH-7)");
            }
            let mut text = format!("the forged delivery was refused with {}", sent.status);
            if run.session.profile().capabilities().dead_letters {
                let listed = run.session.adapter.dead_letters_seen();
                let predicted = run.model().dead_letters().len();
                if listed != predicted || listed == 0 {
                    return failed(format!(
                        "the target lists {listed} dead letters in this drill, the model keeps {predicted} (WH-5)"
                    ));
                }
                let items = run.session.adapter.dead_letter_items();
                let newest = items.last().map(ToString::to_string).unwrap_or_default();
                if run.secrets().iter().any(|s| !s.is_empty() && newest.contains(s.as_str())) {
                    return failed("the dead letter keeps a secret unredacted (WH-5)");
                }
                text.push_str(" and kept as a dead letter");
            } else {
                text.push_str(" (the profile declares no dead-letter list to look in)");
            }
            if let Some(entries) = run.target_entries()? {
                let booked = entries.iter().filter(|e| e.escrow == Some(first)).count();
                if booked > 0 {
                    return failed(format!("the forged delivery booked {booked} ledger entries"));
                }
                text.push_str("; it booked nothing");
            }
            text
        }
        Expect::PendingSecondAdmin => {
            for answer in &run.answers {
                if !matches!(answer, Observed::Accepted { status: 202, .. }) {
                    return failed(format!("one admin's approval answered {answer:?}, not 202 pending (AZ-7)"));
                }
            }
            let mut flagged = Vec::new();
            for (escrow, (_, flag)) in escrows.iter().zip(SUSPICIOUS_PROOFS) {
                let flags = run.model().escrow(*escrow).and_then(|e| e.proof.clone()).map(|(_, f)| f);
                if !flags.as_ref().is_some_and(|f| f.contains(&flag)) {
                    return failed(format!("the model did not flag the proof as {} ({flags:?})", flag.name()));
                }
                if run.state_of(*escrow) != Some(EscrowState::PaymentReview) {
                    return failed("a proof funded the escrow on one admin's word (AZ-7)");
                }
                flagged.push(flag.name());
            }
            format!("flagged ({}); each approval is pending a second admin, nothing funded", flagged.join(", "))
        }
        Expect::SameApproverRefused => {
            for answer in &run.answers {
                if !matches!(answer, Observed::Refused { status: 403, refusal: Some(Refusal::SameApprover) }) {
                    return failed(format!("the same admin's second approval answered {answer:?}, not 403 (AZ-7)"));
                }
            }
            "each second approval by the same admin was refused 403 same_approver".to_owned()
        }
        Expect::NeedsStepUpAndSecondAdmin => {
            let expected = [
                ("without a step-up", "401 step_up_required (AZ-6)"),
                ("with a step-up", "202 pending a second admin (AZ-7)"),
                ("approving its own approval", "403 same_approver (AZ-7)"),
            ];
            for (index, (when, wanted)) in expected.iter().enumerate() {
                let answer = run.answers.get(index);
                let ok = match index {
                    0 => matches!(
                        answer,
                        Some(Observed::Refused { status: 401, refusal: Some(Refusal::StepUpRequired) })
                    ),
                    1 => matches!(answer, Some(Observed::Accepted { status: 202, .. })),
                    _ => {
                        matches!(answer, Some(Observed::Refused { status: 403, refusal: Some(Refusal::SameApprover) }))
                    }
                };
                if !ok {
                    return failed(format!("the attacker {when} got {answer:?}, not {wanted}"));
                }
            }
            if run.state_of(first) != Some(drill.precondition) {
                return failed("the attacker moved the escrow alone");
            }
            "the attacker needed a step-up, then a second admin: nothing moved".to_owned()
        }
        Expect::CutOff => cut_off(run)?,
        Expect::ApprovalsVoid => {
            for answer in &run.answers {
                if !matches!(answer, Observed::Refused { .. }) {
                    return failed(format!("a void approval was approved: {answer:?}"));
                }
            }
            let requested = approvals_of(run, UserId(u32::from(ADMIN_A)), None);
            let live = approvals_of(run, UserId(u32::from(ADMIN_A)), Some(ApprovalStatus::Void));
            if live.len() != requested.len() {
                return failed("the model kept an approval of the revoked admin alive");
            }
            format!(
                "the revoked admin's {} pending approval(s) are void: the second approval was refused",
                requested.len()
            )
        }
        Expect::LedgerMatchesProvider => ledger_matches(run)?,
        Expect::OnePayoutConfirmed => match run.target_entries()? {
            None => "the profile declares no ledger read: the payout confirmations were not counted".to_owned(),
            Some(entries) => {
                let confirmed =
                    entries.iter().filter(|e| e.kind == EntryKind::PayoutConfirmed && e.escrow == Some(first)).count();
                if confirmed != 1 {
                    return failed(format!("the target booked {confirmed} payout confirmations, not 1"));
                }
                "the target booked one payout confirmation".to_owned()
            }
        },
    })
}

/// SES-5, RT-6: after the revocation the compromised admin's socket is disconnected within 2 s, its access and
/// refresh tokens are refused, and its token opens no new socket.
fn cut_off(run: &mut Run<'_>) -> Phased<String> {
    let Some(revoked_at) = run.revoked_at else { return failed("no revocation was made") };
    let Some(socket) = run.socket.take() else { return unverified("the attacker holds no socket to watch") };
    let bound = Duration::from_secs(DISCONNECT_DEADLINE_SECONDS as u64) + SLACK;
    let left = bound.saturating_sub(revoked_at.elapsed());
    let ended = run.session.block_on(socket.wait_disconnect(left));
    let after = revoked_at.elapsed().as_millis();
    if ended.is_err() {
        return failed(format!(
            "the revoked admin's socket stayed connected {after} ms after the revocation (RT-6: 2 s)"
        ));
    }
    // The differential compares each answer with the model's refusal; the drill insists on the refusal besides.
    let first = run.escrows[0];
    let access = run.call(run.act(first, Who::AdminA, EscrowAct::Get))?;
    if !matches!(access, Observed::Refused { status: 401, .. }) {
        return failed(format!("the revoked access token was answered {access:?}, not 401 (SES-5)"));
    }
    let refresh = run.call(Step::Refresh { actor: ADMIN_A, reuse: false })?;
    if !matches!(refresh, Observed::Refused { .. }) {
        return failed(format!("the revoked refresh token was answered {refresh:?} (SES-5)"));
    }
    let Some(token) = run.attacker_token.clone() else { return failed("no token was stolen") };
    let dialect = Dialect::of(run.session).map_err(Stop::Unverified)?;
    match run.session.block_on(connect(dialect.config(Some(&token)))) {
        Connect::Accepted(_) => return failed("the revoked access token opened a new socket (RT-6)"),
        Connect::Refused(_) => {}
        Connect::Failed(e) if is_refusal(&e) => {}
        Connect::Failed(e) => return unverified(format!("no answer to the CONNECT: {e}")),
    }
    Ok(format!(
        "the socket was disconnected {after} ms after the revocation; the access and refresh tokens are refused and \
         open no new socket"
    ))
}

/// WH-3, WH-4, LED-6: for each of the drill's escrows, the target's ledger holds the entries the model books from
/// what the provider sent (one per provider event, whatever the copies), of the same kinds and amounts.
fn ledger_matches(run: &mut Run<'_>) -> Phased<String> {
    let Some(entries) = run.target_entries()? else {
        return unverified("the profile declares no ledger read, so the ledger cannot be held against the provider");
    };
    for escrow in run.escrows.clone() {
        let summary = |entries: &mut dyn Iterator<Item = &Entry>| {
            let mut kinds: Vec<(String, i128)> = entries
                .filter(|e| e.escrow == Some(escrow))
                .map(|e| (format!("{:?}", e.kind), provider_side(e)))
                .collect();
            kinds.sort();
            kinds
        };
        let model = summary(&mut run.model().ledger().entries().iter());
        let target = summary(&mut entries.iter());
        if model != target {
            return failed(format!(
                "the target's ledger holds {target:?} for the escrow, the provider's events call for {model:?} \
                 (kind, money at the provider)"
            ));
        }
    }
    Ok("the ledger matches what the provider received and paid: one entry per provider event".to_owned())
}

/// The money an entry moves at the provider (debit: received, credit: paid out), in minor units.
fn provider_side(entry: &Entry) -> i128 {
    entry.postings.iter().filter(|p| matches!(p.account, Account::Provider(_))).map(|p| p.amount).sum()
}

/// The state every escrow of the drill ends in.
fn recovered(drill: &Drill, run: &mut Run<'_>) -> Phased {
    for escrow in run.escrows.clone() {
        // The buyer reads the escrow: the differential compares the target's state with the model's.
        run.step(run.act(escrow, Who::Buyer, EscrowAct::Get))?;
        if run.state_of(escrow) != Some(drill.recovered_state) {
            return failed(format!(
                "the model ends in {:?}, the runbook says {}",
                run.state_of(escrow),
                drill.recovered_state
            ));
        }
    }
    let count = run.escrows.len();
    let which = if count == 1 { "the escrow is".to_owned() } else { format!("the {count} escrows are") };
    run.record("recover", format!("{which} {}", drill.recovered_state), true);
    Ok(())
}

/// AZ-9: every admin call of `of` in the model's audit log is in the target's, with its outcome (refused or not)
/// and the fields an investigator needs; read by the other admin.
fn audited(of: AuditOf, run: &mut Run<'_>) -> Phased {
    if !run.session.profile().capabilities().audit_log {
        return unverified("the profile declares no audit log");
    }
    let (actor, reader, label) = match of {
        AuditOf::AdminA => (ADMIN_A, ADMIN_B, "the first admin"),
        AuditOf::AdminB => (ADMIN_B, ADMIN_A, "the second admin"),
    };
    let reading = if reader == ADMIN_B { Who::AdminB } else { Who::AdminA };
    run.call(Step::Call { who: reading, call: Call::ReadAuditLog })?;
    let model = run.model().clone();
    let Some((token, _)) = run.session.adapter.live_access_token(&model, UserId(u32::from(reader))) else {
        return unverified("the reader has no live session");
    };
    let actor_id = UserId(u32::from(actor));
    let records = match run.session.block_on(run.session.adapter.audit_records_of(token, actor_id)) {
        None => return unverified("the profile declares no audit log"),
        Some(Err(reason)) => return unverified(format!("the audit log could not be read: {reason}")),
        Some(Ok(records)) => records,
    };
    let mut left: Vec<&Value> = records.iter().collect();
    let mut listed = Vec::new();
    let mut missing = Vec::new();
    for record in model.audit_log().iter().filter(|r| r.actor == Some(actor_id)) {
        let action = record.action.name();
        // The canonical API's fields (contracts/openapi.yaml, AuditRecord).
        let outcome = if record.outcome.is_err() { "refused" } else { "allowed or pending_approval" };
        let found = left.iter().position(|r| {
            let refused = r.get("outcome").and_then(Value::as_str) == Some("refused");
            r.get("action").and_then(Value::as_str) == Some(action) && refused == record.outcome.is_err()
        });
        match found {
            Some(index) => {
                let kept = left.remove(index);
                let absent: Vec<&str> =
                    ["session_id", "request_id", "target"].into_iter().filter(|f| !has_field(kept, f)).collect();
                if !absent.is_empty() {
                    missing.push(format!("{action} ({outcome}) without {}", absent.join(", ")));
                }
                listed.push(format!("{action} {}", if record.outcome.is_err() { "refused" } else { "done" }));
            }
            None => missing.push(format!("{action} ({outcome})")),
        }
    }
    if listed.is_empty() && missing.is_empty() {
        return unverified(format!("the model audited no admin call of {label}"));
    }
    if !missing.is_empty() {
        return failed(format!("the audit log lacks calls of {label}: {} (AZ-9)", missing.join("; ")));
    }
    run.record("evidence", format!("the audit log lists every admin call of {label}: {}", listed.join(", ")), true);
    Ok(())
}

/// Whether an audit record carries `field` with a value. The profile language names no audit fields, so a field is
/// matched by name across dialects: `session_id`, `sessionId` and `SESSION-ID` are one.
fn has_field(record: &Value, field: &str) -> bool {
    let normalize = |name: &str| -> String {
        name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
    };
    let wanted = normalize(field);
    record
        .as_object()
        .is_some_and(|fields| fields.iter().any(|(name, value)| normalize(name) == wanted && !value.is_null()))
}

/// Money lost: payouts the provider holds under distinct idempotency keys beyond the first (it pays each once, so
/// each pays the seller again), and money the target's ledger moved at the provider that the provider's events do
/// not call for (a forged or duplicated payment credited, a payout booked twice). `(minor units, as shown)`.
fn funds_lost(run: &mut Run<'_>) -> (i128, String) {
    let mut keys = run.payout_keys();
    keys.sort();
    keys.dedup();
    let extra = keys.len().saturating_sub(1) as i128;
    let owed = run.model().payout_requests().first().map(|r| r.amount);
    let mut lost: Vec<Money> = Vec::new();
    if let Some(amount) = owed
        && extra > 0
    {
        lost.push(Money::from_minor(amount.minor * extra, amount.currency));
    }
    let model_entries: Vec<Entry> = run.model().ledger().entries().to_vec();
    if let Ok(Some(entries)) = run.target_entries() {
        for currency in Currency::ALL {
            let moved = |entries: &[Entry]| -> i128 {
                entries
                    .iter()
                    .filter(|e| e.escrow.is_some())
                    .flat_map(|e| e.postings.iter())
                    .filter(|p| matches!(p.account, Account::Provider(_)) && p.currency == currency)
                    .map(|p| p.amount)
                    .sum()
            };
            let difference = (moved(&entries) - moved(&model_entries)).abs();
            if difference > 0 {
                lost.push(Money::from_minor(difference, currency));
            }
        }
    }
    if lost.is_empty() {
        return (0, "0".to_owned());
    }
    let minor = lost.iter().map(|m| m.minor).sum();
    let shown: Vec<String> = lost.iter().map(|m| format!("{} {}", m.to_decimal_string(), m.currency.code())).collect();
    (minor, shown.join(" + "))
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

//! The byte-level webhook and provider-failure suite (suite `webhooks`): SHKeeper deliveries broken in the ways
//! receivers are broken in the wild (`shared/FACTS.md`), and SHKeeper's API failing in the ways it fails.
//!
//! Every probe is a model [`Step`] taken by the model and the target side by side ([`Session::step`]), so the model
//! predicts each answer and the differential compares it. A broken delivery is the model's inauthentic delivery
//! (`Step::Pay { authentic: false }`), which the adapter puts on the wire as the genuine delivery damaged in one
//! way ([`Forgery`]): a body re-serialized after signing, a timestamp outside the window, the legacy API-key-only
//! mode, the secret of before a rotation. What the model does not see is checked on the target directly after each
//! refused delivery: the answer's status and body (WH-7), the dead letter it left (WH-5), the escrow read back and
//! the ledger, which must hold no new entry.
//!
//! WH-9 is the providers suite's: SHKeeper's callbacks only ever report payments, so the late "pending" notice it
//! is about comes from Request Network (`payment.processing`).
//!
//! WH-8 rotates SHKeeper's secret on the target, the one every later delivery is signed with. The rotation probe
//! therefore rotates it back to the secret it found, in a scenario of its own that runs whatever the probe found,
//! and the adapter signs with whatever secret the target ends up with, so later suites keep delivering.

use std::time::Instant;

use conform_reference::generate::{Call, EscrowAct, Portion, Step, Who};
use conform_reference::ledger::Provider;
use conform_reference::providers::ProviderStatus;
use serde_json::Value;

use super::{CheckResult, Reporter, Session, differential_failure, reproduction};
use crate::drive::webhooks::{Damage, Secret};
use crate::error::Error;
use crate::oracle::Observed;
use crate::oracle::differential::Differential;
use crate::oracle::http_target::Forgery;
use crate::report::CheckOutcome;
use crate::report::event::Failure;
use crate::simulate::Outage;

/// The suite's name.
pub const SUITE: &str = "webhooks";

/// How far outside the tolerance window (WH-2: 300 s either way) a skewed delivery is signed: a minute beyond it,
/// far from any clock drift between harness and target.
const SKEW_SECONDS: i64 = 360;

/// The SHKeeper webhook's profile name, which the rotation names.
const SHKEEPER: &str = "shkeeper";

/// The genuine payment every probing scenario ends with: the same bytes as signed are accepted.
const GENUINE_EVENT: u8 = 1;

/// Why a probe stopped: the claim was broken, or could not be checked (boxed: a failure is large).
type Stop = Box<CheckOutcome>;

fn unverified(reason: impl Into<String>) -> CheckOutcome {
    CheckOutcome::Unverified { reason: reason.into() }
}

/// A probe that could not be checked.
fn not_checked(reason: impl Into<String>) -> Stop {
    Box::new(unverified(reason))
}

fn failed(failure: Failure) -> Stop {
    Box::new(CheckOutcome::Failed(failure))
}

/// What the checks of WH-5 and WH-7 judge, gathered from every refused delivery of the suite.
#[derive(Debug, Default)]
struct Refusals {
    /// Per refused delivery: its answer was 401 or 400 and named no secret (WH-7).
    answers: Vec<Result<(), Box<Failure>>>,
    /// Per refused delivery: it was kept as a dead letter with a reason and no secret (WH-5); `None` when the
    /// profile declares no dead-letter list.
    dead_letters: Vec<Option<Result<(), Box<Failure>>>>,
}

/// One scenario of the suite: a buyer's escrow paid through SHKeeper, on the model and the target side by side.
struct Probing<'s> {
    session: &'s mut Session,
    differential: Differential,
    refusals: &'s mut Refusals,
}

impl<'s> Probing<'s> {
    /// A new scenario with the cast and a buyer's escrow of 100 USD through SHKeeper; with `invoiced`, its
    /// payment started too, so the provider's invoice exists and payments can be delivered for it.
    fn open(session: &'s mut Session, refusals: &'s mut Refusals, invoiced: bool) -> Result<Probing<'s>, Stop> {
        let differential = session.begin();
        let mut probing = Probing { session, differential, refusals };
        probing.step(&Step::Create {
            buyer: 0,
            seller: 1,
            major: 100,
            currency: 0,
            provider: Provider::Shkeeper,
            extra: None,
        })?;
        if invoiced {
            probing.step(&Step::Act { escrow: 0, who: Who::Rightful, act: EscrowAct::StartPayment })?;
        }
        Ok(probing)
    }

    /// One step on both sides: a difference from the model fails the probe, a request the target gave no outcome
    /// for leaves it unverified.
    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        let unknown_before = self.differential.run().unknown.len();
        self.session.step(&mut self.differential, step);
        let run = self.differential.run();
        if let Some(finding) = &run.finding {
            return Err(failed(differential_failure(finding, &run.trace, None, None, None)));
        }
        match run.unknown.get(unknown_before) {
            Some((index, reason)) => {
                Err(not_checked(format!("request {index} got no outcome from the target: {reason}")))
            }
            None => Ok(()),
        }
    }

    /// The number of this scenario's entries in the target's ledger (`None`: the profile declares no ledger read).
    fn ledger_len(&mut self) -> Result<Option<usize>, Stop> {
        match self.session.target_ledger(self.differential.model()) {
            None => Ok(None),
            Some(Ok(view)) => Ok(Some(view.entries.len())),
            Some(Err(reason)) => Err(not_checked(format!("the target's ledger could not be read: {reason}"))),
        }
    }

    /// A failure of a claim the differential does not judge, with the scenario's requests as its reproduction.
    fn failure(&self, message: String, expected: &str, observed: String) -> Failure {
        Failure {
            message,
            expected: expected.to_owned(),
            observed,
            seed: None,
            reproduction: reproduction(&self.differential.run().trace),
            file: None,
            replay: None,
        }
    }

    /// The escrow read back agrees with the model (the differential compares its state), and the ledger holds
    /// exactly the `entries` it held before: the refused request changed nothing.
    fn unchanged(&mut self, what: &str, entries: Option<usize>) -> Result<(), Stop> {
        self.step(&Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::Get })?;
        match (entries, self.ledger_len()?) {
            (Some(before), Some(after)) if before != after => Err(failed(self.failure(
                format!("{what} was refused, yet the target's ledger went from {before} to {after} entries"),
                "no new ledger entry",
                format!("{} new entries", after.saturating_sub(before)),
            ))),
            _ => Ok(()),
        }
    }

    /// A payment for the escrow's invoice, delivered as SHKeeper sends it: accepted, and the escrow funded.
    fn genuine(&mut self) -> Result<(), Stop> {
        self.step(&pay(GENUINE_EVENT, true))?;
        self.step(&Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::Get })
    }

    /// The payment with event number `event` forged as `forgery`: the model predicts its refusal as
    /// unauthenticated (the differential compares); then the target's answer, dead letter, escrow and ledger.
    fn forged(&mut self, what: &str, forgery: Forgery, event: u8, secrets: &[&str]) -> Result<(), Stop> {
        let entries = self.ledger_len()?;
        let letters = self.session.adapter.dead_letters_seen();
        self.session.adapter.forge_as(Some(forgery));
        let stepped = self.step(&pay(event, false));
        self.session.adapter.forge_as(None);
        stepped?;
        let sent = self.session.adapter.last_delivery().cloned().ok_or_else(|| not_checked("no delivery was sent"))?;
        let answer = String::from_utf8_lossy(&sent.body).into_owned();
        let echoed = secrets.iter().any(|s| !s.is_empty() && answer.contains(s));
        let answer = if !matches!(sent.status, 400 | 401) || echoed {
            Err(Box::new(self.failure(
                format!(
                    "the refusal of {what} answered {}{}",
                    sent.status,
                    if echoed { " naming a secret" } else { "" }
                ),
                "401 (or 400 when malformed), naming no secret",
                format!("{} with a body of {} bytes", sent.status, sent.body.len()),
            )))
        } else {
            Ok(())
        };
        self.refusals.answers.push(answer);
        let dead_letter = self.session.profile().capabilities().dead_letters.then(|| self.kept(what, letters, secrets));
        self.refusals.dead_letters.push(dead_letter);
        self.unchanged(what, entries)
    }

    /// The refused delivery is the one new dead letter, with a reason and no secret (WH-5).
    fn kept(&self, what: &str, before: usize, secrets: &[&str]) -> Result<(), Box<Failure>> {
        let listed = self.session.adapter.dead_letters_seen();
        let predicted = self.differential.model().dead_letters().len();
        if listed != before + 1 || listed != predicted {
            return Err(Box::new(self.failure(
                format!("{what} was refused, and the target lists {} new dead letters for it", listed.abs_diff(before)),
                "one new dead letter",
                format!("{listed} dead letters in this scenario, the model keeps {predicted}"),
            )));
        }
        let items = self.session.adapter.dead_letter_items();
        let newest = items.last().cloned().unwrap_or(Value::Null);
        let reason = newest.get("reason").and_then(Value::as_str).unwrap_or_default();
        let text = newest.to_string();
        if reason.is_empty() {
            return Err(Box::new(self.failure(
                format!("the dead letter of {what} carries no reason"),
                "a dead letter with its reason",
                "no `reason` field, or an empty one".to_owned(),
            )));
        }
        if secrets.iter().any(|s| !s.is_empty() && text.contains(s)) {
            return Err(Box::new(self.failure(
                format!("the dead letter of {what} keeps a secret unredacted"),
                "headers with secrets redacted",
                format!("a dead letter with reason {reason:?} holding the secret"),
            )));
        }
        Ok(())
    }
}

/// A payment of the amount due for the scenario's escrow, with event number `event`.
fn pay(event: u8, authentic: bool) -> Step {
    Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event, authentic }
}

/// Runs the suite.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let mut suite = reporter.suite(SUITE, Some(10))?;
    let mut refusals = Refusals::default();
    let key = session.adapter.shkeeper_key().to_owned();

    let checks: Vec<(&str, &[&str], Probe)> = vec![
        ("a body re-serialized after signing is refused, the bytes as signed are accepted", &["WH-1"], raw_body),
        ("a delivery signed outside the timestamp window, past or future, is refused", &["WH-2"], timestamps),
        ("a legacy callback with only the SHKeeper API key is refused", &["WH-10"], legacy),
        ("after a rotation with no overlap the old secret is refused and the new one accepted", &["WH-8"], rotation),
    ];
    // The probes' refused deliveries are what WH-5 and WH-7 judge: a probe runs when either is selected too.
    let judged_later = suite.selected(&["WH-5", "WH-7"], &[]);
    for (name, rules, probe) in checks {
        let reported = suite.selected(rules, &[]);
        if !reported && !judged_later {
            continue;
        }
        let started = Instant::now();
        let (outcome, requests) = probe(session, &mut refusals, &key);
        if reported {
            let mut result = CheckResult::new(name, rules.iter().copied(), outcome);
            result.requests = requests;
            result.duration_ms = started.elapsed().as_millis() as u64;
            suite.check(result)?;
        }
    }

    if suite.selected(&["WH-5"], &[]) {
        let outcome = if !session.profile().capabilities().dead_letters {
            unverified("the profile declares no dead-letter list")
        } else {
            gathered(refusals.dead_letters.iter().flatten())
        };
        let name = "every refused delivery is kept as a dead letter with its reason and no secret";
        let observations = refusals.dead_letters.len() as u64;
        suite.check(CheckResult { observations, ..CheckResult::new(name, ["WH-5"], outcome) })?;
    }
    if suite.selected(&["WH-7"], &[]) {
        let name = "refusals of broken deliveries are 401 or 400 and name no secret";
        let observations = refusals.answers.len() as u64;
        let outcome = gathered(refusals.answers.iter());
        suite.check(CheckResult { observations, ..CheckResult::new(name, ["WH-7"], outcome) })?;
    }

    for (name, outage) in [
        ("start_payment answers 503 and changes nothing when SHKeeper answers 503", Outage::Unavailable),
        (
            "start_payment answers 503 and changes nothing when SHKeeper answers HTTP 200 with status error",
            Outage::ErrorInBody,
        ),
        ("start_payment answers 503 and changes nothing when SHKeeper does not answer", Outage::Hang),
    ] {
        if !suite.selected(&["PRV-2"], &[]) {
            continue;
        }
        let started = Instant::now();
        let (outcome, requests) = provider_failure(session, &mut refusals, outage);
        let mut result = CheckResult::new(name, ["PRV-2"], outcome);
        result.requests = requests;
        result.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(result)?;
    }

    if suite.selected(&["PRV-3"], &[]) {
        let started = Instant::now();
        let (outcome, requests) = disabled_provider(session, &mut refusals);
        let mut result = CheckResult::new(
            "a disabled provider refuses new escrows and its webhooks, dead-lettering them",
            ["PRV-3"],
            outcome,
        );
        result.requests = requests;
        result.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(result)?;
    }
    suite.finish()
}

/// The verdict over what every refused delivery showed: its first failure, unverified when nothing was refused.
fn gathered<'a>(seen: impl Iterator<Item = &'a Result<(), Box<Failure>>>) -> CheckOutcome {
    let mut any = false;
    for verdict in seen {
        any = true;
        if let Err(failure) = verdict {
            return CheckOutcome::Failed((**failure).clone());
        }
    }
    if any {
        CheckOutcome::Passed
    } else {
        unverified("no broken delivery was refused in this run (the probes stopped first)")
    }
}

/// A probe: its outcome and the requests it sent.
type Probe = fn(&mut Session, &mut Refusals, &str) -> (CheckOutcome, u64);

/// Runs `body` in a new invoiced scenario; the outcome, and the requests the scenario sent.
fn probing(
    session: &mut Session,
    refusals: &mut Refusals,
    invoiced: bool,
    body: impl FnOnce(&mut Probing<'_>) -> Result<(), Stop>,
) -> (CheckOutcome, u64) {
    let mut probing = match Probing::open(session, refusals, invoiced) {
        Ok(probing) => probing,
        Err(stop) => return (*stop, 0),
    };
    let outcome = body(&mut probing).err().map_or(CheckOutcome::Passed, |stop| *stop);
    (outcome, probing.differential.run().requests as u64)
}

/// WH-1: the signed body with its keys in another order, pretty-printed, and with one byte changed, each under
/// the original signature; then the bytes as signed.
fn raw_body(session: &mut Session, refusals: &mut Refusals, key: &str) -> (CheckOutcome, u64) {
    probing(session, refusals, true, |p| {
        for (event, damage) in [(10, Damage::ReorderedKeys), (11, Damage::ExtraWhitespace), (12, Damage::ChangedByte)] {
            let what = format!("a delivery with {}", damage.code().replace('_', " "));
            p.forged(&what, Forgery::Damaged(damage), event, &[key])?;
        }
        p.genuine()
    })
}

/// WH-2: correctly signed, at a timestamp a minute older than the window, then a minute beyond it in the future.
fn timestamps(session: &mut Session, refusals: &mut Refusals, key: &str) -> (CheckOutcome, u64) {
    probing(session, refusals, true, |p| {
        p.forged("a delivery signed 360 s ago", Forgery::SkewedTimestamp(-SKEW_SECONDS), 20, &[key])?;
        p.forged("a delivery signed 360 s ahead", Forgery::SkewedTimestamp(SKEW_SECONDS), 21, &[key])?;
        p.genuine()
    })
}

/// WH-10: the callback of an older SHKeeper, carrying the right API key and no signature.
fn legacy(session: &mut Session, refusals: &mut Refusals, key: &str) -> (CheckOutcome, u64) {
    probing(session, refusals, true, |p| {
        p.forged("a legacy API-key-only callback", Forgery::LegacyApiKeyOnly, 30, &[key])?;
        p.genuine()
    })
}

/// WH-8: the first admin (stepped up) rotates SHKeeper's secret with no overlap; a delivery signed with the old
/// secret is refused, one with the new secret accepted. Then the secret is rotated back in a scenario of its own,
/// whatever the probe found.
fn rotation(session: &mut Session, refusals: &mut Refusals, key: &str) -> (CheckOutcome, u64) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let new = format!("{key}-rotated-{nanos:x}");
    let (outcome, requests) = probing(session, refusals, true, |p| {
        rotate(p, &new)?;
        let old = Forgery::Damaged(Damage::OtherSecret(Secret::from(key)));
        p.forged("a delivery signed with the secret before the rotation", old, 40, &[key, &new])?;
        p.genuine()
    });
    let (restored, more) = probing(session, refusals, false, |p| rotate(p, key));
    let outcome = match (outcome, restored) {
        (CheckOutcome::Failed(failure), _) => CheckOutcome::Failed(failure),
        // The probe held but the secret could not be put back: later deliveries are signed with what the target
        // has (the adapter follows it), and the report says so.
        (_, CheckOutcome::Failed(mut failure)) => {
            failure.message = format!("rotating SHKeeper's secret back failed: {}", failure.message);
            CheckOutcome::Failed(failure)
        }
        (outcome, CheckOutcome::Passed) => outcome,
        (_, CheckOutcome::Unverified { reason }) => {
            unverified(format!("rotating SHKeeper's secret back got no answer: {reason}"))
        }
    };
    (outcome, requests + more)
}

/// The first admin steps up and rotates SHKeeper's secret to `secret` with no overlap; once the target accepted,
/// the adapter signs with it.
fn rotate(p: &mut Probing<'_>, secret: &str) -> Result<(), Stop> {
    p.step(&Step::StepUp { actor: 4, ok: true })?;
    p.session.adapter.rotate_as(Some((SHKEEPER.to_owned(), secret.to_owned())));
    let stepped = p.step(&Step::Call { who: Who::AdminA, call: Call::RotateWebhookSecret });
    p.session.adapter.rotate_as(None);
    stepped?;
    match p.differential.run().trace.last().map(|e| &e.observed) {
        Some(Observed::Accepted { .. }) => {
            p.session.adapter.set_shkeeper_key(secret.to_owned());
            Ok(())
        }
        other => Err(not_checked(format!("the rotation was not accepted: {other:?}"))),
    }
}

/// PRV-2: SHKeeper fails in the way `outage` says while the buyer starts the payment: 503 `provider_unavailable`,
/// the escrow and the ledger unchanged; once SHKeeper is back, the payment starts.
fn provider_failure(session: &mut Session, refusals: &mut Refusals, outage: Outage) -> (CheckOutcome, u64) {
    let result = probing(session, refusals, false, |p| {
        let down = ProviderStatus { enabled: true, available: false };
        p.step(&Step::ProviderStatus { provider: Provider::Shkeeper, status: down })?;
        // The model's unavailable provider stands for every way of failing; the simulator fails in this one.
        p.session.simulators.shkeeper.set_outage(outage);
        let entries = p.ledger_len()?;
        p.step(&Step::Act { escrow: 0, who: Who::Rightful, act: EscrowAct::StartPayment })?;
        p.unchanged("start_payment", entries)?;
        let up = ProviderStatus { enabled: true, available: true };
        p.step(&Step::ProviderStatus { provider: Provider::Shkeeper, status: up })?;
        p.step(&Step::Act { escrow: 0, who: Who::Rightful, act: EscrowAct::StartPayment })
    });
    // Whatever the probe found, SHKeeper answers again for what follows.
    session.simulators.shkeeper.set_outage(Outage::None);
    result
}

/// PRV-3: SHKeeper switched off; a new escrow with it is refused, and a payment delivery for an existing escrow
/// refused and dead-lettered. Needs a way to switch a provider off on the running target, which the profile
/// language does not offer yet.
fn disabled_provider(session: &mut Session, refusals: &mut Refusals) -> (CheckOutcome, u64) {
    if session.profile().configure_route().is_none() {
        return (
            unverified(
                "the profile has no [fixtures.configure]: no way to switch a provider off on the running target",
            ),
            0,
        );
    }
    // Generated scenarios never switch providers off; this one does, through the fixture.
    let switch_providers = std::mem::replace(&mut session.abilities.switch_providers, true);
    let (outcome, requests) = probing(session, refusals, true, |p| {
        let status = |enabled| Step::ProviderStatus {
            provider: Provider::Shkeeper,
            status: ProviderStatus { enabled, available: true },
        };
        // A second escrow whose payment has not started: the latest, escrow 0; the invoiced one is escrow 1.
        p.step(&Step::Create {
            buyer: 0,
            seller: 1,
            major: 100,
            currency: 0,
            provider: Provider::Shkeeper,
            extra: None,
        })?;
        p.step(&status(false))?;
        p.step(&Step::Act { escrow: 0, who: Who::Rightful, act: EscrowAct::StartPayment })?;
        let entries = p.ledger_len()?;
        let letters = p.session.adapter.dead_letters_seen();
        let invoiced = Step::Pay {
            escrow: 1,
            portion: Portion::Due,
            wrong_currency: false,
            event: GENUINE_EVENT,
            authentic: true,
        };
        p.step(&invoiced)?;
        if p.session.profile().capabilities().dead_letters {
            // The refused delivery is kept: the adapter read list_dead_letters after it.
            p.kept("a payment for a disabled provider", letters, &[]).map_err(|f| failed(*f))?;
        }
        p.unchanged("a payment for a disabled provider", entries)?;
        p.step(&Step::Call { who: Who::Buyer, call: Call::CreateEscrow })?;
        p.step(&status(true))
    });
    session.abilities.switch_providers = switch_providers;
    match (session.restore_configuration(), outcome) {
        (Err(reason), CheckOutcome::Passed) => {
            (unverified(format!("the provider could not be switched back on after the check: {reason}")), requests)
        }
        (_, outcome) => (outcome, requests),
    }
}

//! Targeted scenarios for rules that generated scenarios reach too rarely: refresh-token rotation and reuse
//! (SES-2, SES-3), passkeys (SES-8, in [`super::passkeys`]), the sign-in rate limit (SES-10), a role change
//! reaching open sessions (SES-7), a refund that cannot also be released (ESC-19), the audit trail of refused admin
//! calls (AZ-9), reused proof hashes (PRV-6), payments in another currency or naming another escrow (LED-10, PRV-5),
//! fee rounding (LED-5), and the deadlines that fire with no caller (ESC-9, ESC-12) on the target's test clock.
//!
//! Each is a fixed sequence of [`Step`]s taken by the model and the target side by side (every request compared,
//! the ledger invariants checked after each), ending in the request that the claim is about; where the claim is
//! about what the target keeps rather than what it answers (its audit log, its ledger's entries), that is read back
//! and held against the model too.

use std::time::Instant;

use conform_reference::generate::{Call, EscrowAct, Portion, Step, Who};
use conform_reference::ids::{EscrowId, UserId};
use conform_reference::ledger::Provider;
use conform_reference::ops::OperationKind;
use conform_reference::world::Resolution;

use super::matrix::reach;
use super::races::{Stop, ledger_difference, settled, take_steps};
use super::{CheckResult, Reporter, Session, reproduction};
use crate::error::Error;
use crate::oracle::differential::Differential;
use crate::report::CheckOutcome;
use crate::report::event::Failure;

/// A check: its name, the rules it verifies, and how it runs.
pub(super) type Check = (&'static str, &'static [&'static str], fn(&mut Session) -> CheckOutcome);

const CHECKS: &[Check] = &[
    ("a refresh token is refused once it has been used", &["SES-2"], refresh_rotates),
    ("reusing a rotated refresh token revokes the whole family", &["SES-3"], reuse_revokes_family),
    ("the eleventh wrong sign-in within a minute from one client gets 429", &["SES-10"], sign_in_rate_limited),
    ("refused admin calls leave audit records", &["AZ-9"], refused_admin_calls_audited),
    ("a proof reusing an earlier transaction hash needs a second admin", &["PRV-6", "AZ-7"], reused_tx_hash_flagged),
    (
        "a payment in another currency goes to suspense and funds nothing",
        &["LED-10", "PRV-5"],
        wrong_currency_to_suspense,
    ),
    (
        "a payment whose metadata names another escrow credits its invoice's escrow",
        &["LED-10"],
        metadata_names_another_escrow,
    ),
    ("the fee of a release is rounded down to a whole minor unit", &["LED-5"], fee_rounded_down),
    ("an escrow being refunded cannot be released as well", &["ESC-19", "LED-4"], refund_pending_not_released),
    ("a role change takes effect on the sessions already open", &["SES-7"], role_change_reaches_open_sessions),
    ("an unpaid escrow expires when its payment deadline passes", &["ESC-9"], unpaid_escrow_expires),
    ("a partly paid escrow does not expire at its payment deadline", &["ESC-9", "ESC-4"], partly_paid_escrow_stays),
    ("a delivered escrow is released when the auto-release window passes", &["ESC-12"], delivered_escrow_auto_released),
    ("a disputed escrow is not auto-released", &["ESC-12", "ESC-13"], disputed_escrow_not_auto_released),
];

/// Runs every check against the session's target.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let checks = CHECKS.iter().chain(super::passkeys::CHECKS);
    let mut suite = reporter.suite("sessions", Some((CHECKS.len() + super::passkeys::CHECKS.len()) as u64))?;
    for (name, rules, check) in checks {
        if !suite.selected(rules, &[]) {
            continue;
        }
        let started = Instant::now();
        let outcome = check(session);
        let mut result = CheckResult::new(*name, rules.iter().copied(), outcome);
        result.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(result)?;
    }
    suite.finish()
}

fn act(escrow: u8, who: Who, act: EscrowAct) -> Step {
    Step::Act { escrow, who, act }
}

/// Runs `steps` side by side; `Err` unless they all agreed and the last request made was of kind `probe` (a step
/// the target cannot follow is skipped on both sides, so the claim would go unchecked).
fn scenario(session: &mut Session, steps: &[Step], probe: OperationKind) -> Result<Differential, Stop> {
    reached(take_steps(session, steps)?, probe)
}

fn reached(differential: Differential, probe: OperationKind) -> Result<Differential, Stop> {
    match differential.run().trace.last().and_then(|e| e.request.op.kind()) {
        Some(kind) if kind == probe => Ok(differential),
        last => Err(Box::new(CheckOutcome::Unverified {
            reason: format!("the scenario did not reach its {probe} request (the last was {last:?})"),
        })),
    }
}

/// The outcome of a scenario whose claim is its answers alone.
pub(super) fn answers(session: &mut Session, steps: &[Step], probe: OperationKind) -> CheckOutcome {
    scenario(session, steps, probe).map_or_else(|outcome| *outcome, |_| CheckOutcome::Passed)
}

/// The outcome of a scenario whose claim is also what the target booked: its ledger must hold exactly the entries
/// the model's does.
fn answers_and_ledger(session: &mut Session, differential: Result<Differential, Stop>) -> CheckOutcome {
    let differential = match differential {
        Ok(differential) => differential,
        Err(outcome) => return *outcome,
    };
    let model = differential.model();
    match session.target_ledger(model) {
        None => CheckOutcome::Unverified {
            reason: "the profile declares no ledger read: the entries cannot be compared".to_owned(),
        },
        Some(Err(reason)) => CheckOutcome::Unverified { reason: format!("the ledger could not be read: {reason}") },
        Some(Ok(view)) => match ledger_difference(model.ledger().entries(), &view.entries) {
            None => CheckOutcome::Passed,
            Some(difference) => CheckOutcome::Failed(Failure {
                message: "the target's ledger is not the model's".to_owned(),
                expected: "the entries the model booked, and no others".to_owned(),
                observed: difference,
                seed: None,
                reproduction: reproduction(&differential.run().trace),
                file: None,
                replay: None,
            }),
        },
    }
}

/// SES-2: sign in, refresh, then present the refresh token that was just used.
fn refresh_rotates(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::SignIn { actor: 0, password_ok: true },
        Step::Refresh { actor: 0, reuse: false },
        Step::Refresh { actor: 0, reuse: true },
    ];
    answers(session, &steps, OperationKind::Refresh)
}

/// SES-3: after the reuse of a rotated refresh token, the current one of the same family is refused too.
fn reuse_revokes_family(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::SignIn { actor: 0, password_ok: true },
        Step::Refresh { actor: 0, reuse: false },
        Step::Refresh { actor: 0, reuse: true },
        Step::Refresh { actor: 0, reuse: false },
    ];
    answers(session, &steps, OperationKind::Refresh)
}

/// SES-10: eleven wrong passwords for one account from one client address (the adapter gives each cast member an
/// address of its own per scenario), within a second: the model counts ten and refuses the eleventh.
fn sign_in_rate_limited(session: &mut Session) -> CheckOutcome {
    let steps = vec![Step::SignIn { actor: 0, password_ok: false }; 11];
    answers(session, &steps, OperationKind::SignIn)
}

/// AZ-9: the first admin resolves a dispute without a step-up and support tries to (both refused), then the admin
/// reads the audit log; each refused call must be there, under its caller, as refused.
fn refused_admin_calls_audited(session: &mut Session) -> CheckOutcome {
    if !session.profile().capabilities().audit_log {
        return CheckOutcome::Unverified { reason: "the profile declares no audit log".to_owned() };
    }
    let Some(mut steps) = reach("disputed") else {
        return CheckOutcome::Unverified { reason: "no setup reaches a dispute".to_owned() };
    };
    steps.extend([
        act(0, Who::AdminA, EscrowAct::Resolve(Resolution::Release)),
        act(0, Who::Support, EscrowAct::Resolve(Resolution::Release)),
        Step::Call { who: Who::AdminA, call: Call::ReadAuditLog },
    ]);
    let differential = match scenario(session, &steps, OperationKind::ReadAuditLog) {
        Ok(differential) => differential,
        Err(outcome) => return *outcome,
    };
    let Some(reader) = differential.run().trace.last().and_then(|e| e.request.auth) else {
        return CheckOutcome::Unverified { reason: "the audit log was read anonymously".to_owned() };
    };
    // The cast's users are created first, in cast order: support is user 3, the first admin user 4.
    let mut missing = Vec::new();
    for (actor, who) in [(UserId(3), "support"), (UserId(4), "the admin without a step-up")] {
        let refused =
            differential.model().audit_log().iter().filter(|r| r.actor == Some(actor) && r.outcome.is_err()).count();
        if refused == 0 {
            return CheckOutcome::Unverified { reason: format!("the model refused no admin call by {who}") };
        }
        let records = match session.block_on(session.adapter.audit_records_of(reader, actor)) {
            None => return CheckOutcome::Unverified { reason: "the profile declares no audit log".to_owned() },
            Some(Err(reason)) => {
                return CheckOutcome::Unverified { reason: format!("the audit log could not be read: {reason}") };
            }
            Some(Ok(records)) => records,
        };
        // The canonical API's field (contracts/openapi.yaml, AuditRecord.outcome).
        let audited = records.iter().filter(|r| r.get("outcome").and_then(|o| o.as_str()) == Some("refused")).count();
        if audited < refused {
            missing.push(format!("{who}: {refused} refused call(s), {audited} refused record(s)"));
        }
    }
    if missing.is_empty() {
        return CheckOutcome::Passed;
    }
    CheckOutcome::Failed(Failure {
        message: "refused admin calls left no audit record".to_owned(),
        expected: "one audit record with outcome `refused` per refused admin call".to_owned(),
        observed: missing.join("; "),
        seed: None,
        reproduction: reproduction(&differential.run().trace),
        file: None,
        replay: None,
    })
}

/// PRV-6: a second manual-wallet escrow's proof carries the first one's transaction hash (right amount, right
/// address): it is flagged, so one admin's approval only records a pending two-person approval (202).
fn reused_tx_hash_flagged(session: &mut Session) -> CheckOutcome {
    if !session.abilities.providers.contains(&Provider::ManualWallet) {
        return CheckOutcome::Unverified { reason: "the profile binds no payment-proof submission".to_owned() };
    }
    let create =
        Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::ManualWallet, extra: None };
    let proof = act(
        0,
        Who::Rightful,
        EscrowAct::SubmitProof { tx: 0, exact: true, right_destination: true, wrong_currency: false },
    );
    let steps = [create.clone(), proof.clone(), create, proof, act(0, Who::Rightful, EscrowAct::ApproveProof)];
    answers(session, &steps, OperationKind::ApproveProof)
}

/// An escrow of 100 major units of `Currency::ALL[currency]`, sold by the second user, with its SHKeeper invoice.
fn invoiced_escrow(buyer: u8, currency: u8) -> [Step; 2] {
    [
        Step::Create { buyer, seller: 1, major: 100, currency, provider: Provider::Shkeeper, extra: None },
        act(0, Who::Rightful, EscrowAct::StartPayment),
    ]
}

/// LED-10, PRV-5: the invoice of a USDT escrow is paid its due amount in minor units of USD (a million dollars: a
/// target that reads the amount in the escrow's currency is fully paid). The model books it to suspense and the
/// escrow keeps awaiting payment; the buyer reads it back, and the ledgers must hold the same entries.
fn wrong_currency_to_suspense(session: &mut Session) -> CheckOutcome {
    // Currency 1 is USDT.
    let mut steps = invoiced_escrow(0, 1).to_vec();
    steps.extend([
        Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: true, event: 0, authentic: true },
        act(0, Who::Buyer, EscrowAct::Get),
    ]);
    let differential = scenario(session, &steps, OperationKind::GetEscrow);
    answers_and_ledger(session, differential)
}

/// LED-10: two escrows with invoices, the first a stranger's to the second's buyer; an authentic SHKeeper payment
/// of the second's invoice whose body names the first in `metadata.escrow_id` (SHKeeper sends no such field; a
/// provider that echoes merchant metadata does, and LED-10 forbids trusting it). The model credits the invoice's
/// escrow; both buyers read theirs back, and the ledgers must hold the same entries.
fn metadata_names_another_escrow(session: &mut Session) -> CheckOutcome {
    let mut differential = session.begin();
    let [create, start] = invoiced_escrow(0, 0);
    let [create_own, start_own] = invoiced_escrow(2, 0);
    for step in [create, start, create_own, start_own] {
        session.step(&mut differential, &step);
    }
    // The model's ids count escrows from 0 in creation order: the stranger's is the first.
    session.adapter.name_escrow_in_next_payment(EscrowId(0));
    let payment = Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event: 0, authentic: true };
    for step in [payment, act(1, Who::Buyer, EscrowAct::Get), act(0, Who::Buyer, EscrowAct::Get)] {
        session.step(&mut differential, &step);
    }
    let differential = settled(differential).and_then(|d| reached(d, OperationKind::GetEscrow));
    answers_and_ledger(session, differential)
}

/// LED-5: an escrow of 101 USD is released: 2.5 % of 10,100 cents is 252.5, so the fee is 252 and the payout
/// 9,848. The ledger invariants after each request hold the release entry to that.
fn fee_rounded_down(session: &mut Session) -> CheckOutcome {
    let Some(mut steps) = reach("release_pending") else {
        return CheckOutcome::Unverified { reason: "no setup reaches release_pending".to_owned() };
    };
    if let Some(Step::Create { major, .. }) = steps.first_mut() {
        *major = 101;
    }
    let differential = scenario(session, &steps, OperationKind::ConfirmReceipt);
    answers_and_ledger(session, differential)
}

/// ESC-19, LED-4: the seller refunds a delivered escrow, then the buyer confirms receipt: the model refuses
/// (409 invalid_transition), and the ledgers must hold the refund alone, never a payout beside it.
fn refund_pending_not_released(session: &mut Session) -> CheckOutcome {
    let Some(mut steps) = reach("delivered") else {
        return CheckOutcome::Unverified { reason: "no setup reaches delivered".to_owned() };
    };
    steps.extend([act(0, Who::Seller, EscrowAct::RefundVoluntarily), act(0, Who::Buyer, EscrowAct::ConfirmReceipt)]);
    let differential = scenario(session, &steps, OperationKind::ConfirmReceipt);
    answers_and_ledger(session, differential)
}

/// SES-7: the third user of the cast signs in and is refused a look at someone else's escrow; the first admin
/// (after a step-up) makes them support, a second admin approving if the change waits for one; the same session, not
/// a new one, then reads the escrow, as support may. A target that reads the role from the session refuses.
fn role_change_reaches_open_sessions(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::Shkeeper, extra: None },
        act(0, Who::Stranger, EscrowAct::Get),
        Step::Call { who: Who::AdminA, call: Call::StepUp },
        Step::Call { who: Who::AdminA, call: Call::ChangeRole },
        Step::Call { who: Who::AdminB, call: Call::ApprovePending },
        act(0, Who::Stranger, EscrowAct::Get),
    ];
    read_back_answered(scenario(session, &steps, OperationKind::GetEscrow))
        .map_or_else(|outcome| *outcome, |_| CheckOutcome::Passed)
}

/// `Err(unverified)` when the model refused the scenario's last request: a read-back meant to show a state proves
/// nothing when it is refused on both sides.
fn read_back_answered(differential: Result<Differential, Stop>) -> Result<Differential, Stop> {
    differential.and_then(|differential| match differential.run().trace.last().map(|e| e.predicted.starts_with("Ok")) {
        Some(true) => Ok(differential),
        _ => Err(Box::new(CheckOutcome::Unverified {
            reason: "the model refused the read-back, so it shows no state".to_owned(),
        })),
    })
}

/// A deadline scenario: `setup`, then time passes on the test clock by `seconds`, then the buyer reads the escrow
/// back (its state compared with the model's) and the ledgers must hold the same entries. Without a test clock the
/// clock step would be skipped on both sides and the read would prove nothing: unverified.
fn after_deadline(session: &mut Session, mut setup: Vec<Step>, seconds: i64) -> CheckOutcome {
    if !session.abilities.clock {
        return CheckOutcome::Unverified { reason: "the profile declares no test clock".to_owned() };
    }
    // The buyer's access token has expired by then (15 min): a fresh sign-in, so that the read is answered.
    setup.extend([
        Step::Clock { seconds },
        Step::SignIn { actor: 0, password_ok: true },
        act(0, Who::Buyer, EscrowAct::Get),
    ]);
    let differential = read_back_answered(scenario(session, &setup, OperationKind::GetEscrow));
    answers_and_ledger(session, differential)
}

/// Just past the payment deadline (ESC-9, 72 h).
const PAST_PAYMENT_DEADLINE: i64 = 72 * 3600 + 60;
/// Just past the auto-release window (ESC-12, 14 days).
const PAST_AUTO_RELEASE: i64 = 14 * 86_400 + 60;

/// ESC-9: nothing paid, the deadline passes: expired.
fn unpaid_escrow_expires(session: &mut Session) -> CheckOutcome {
    let create =
        Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::Shkeeper, extra: None };
    after_deadline(session, vec![create], PAST_PAYMENT_DEADLINE)
}

/// ESC-9, ESC-4: half the price was paid, the deadline passes: the escrow keeps awaiting the rest, since expiring
/// it would strand the buyer's money in a terminal escrow.
fn partly_paid_escrow_stays(session: &mut Session) -> CheckOutcome {
    let mut steps = invoiced_escrow(0, 0).to_vec();
    steps.push(Step::Pay { escrow: 0, portion: Portion::Half, wrong_currency: false, event: 0, authentic: true });
    after_deadline(session, steps, PAST_PAYMENT_DEADLINE)
}

/// ESC-12: delivered and undisputed for the whole window: released to the seller (release_pending, with its entry).
fn delivered_escrow_auto_released(session: &mut Session) -> CheckOutcome {
    let Some(steps) = reach("delivered") else {
        return CheckOutcome::Unverified { reason: "no setup reaches delivered".to_owned() };
    };
    after_deadline(session, steps, PAST_AUTO_RELEASE)
}

/// ESC-12, ESC-13: delivered, then disputed by the buyer: the window passing must not release it, whatever the
/// delivery time says.
fn disputed_escrow_not_auto_released(session: &mut Session) -> CheckOutcome {
    let Some(mut steps) = reach("delivered") else {
        return CheckOutcome::Unverified { reason: "no setup reaches delivered".to_owned() };
    };
    steps.push(act(0, Who::Buyer, EscrowAct::OpenDispute));
    after_deadline(session, steps, PAST_AUTO_RELEASE)
}

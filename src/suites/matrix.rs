//! The authorization-matrix suite: every operation × principal class of `contracts/authorization-matrix.toml`, each
//! in its own scenario that first brings an escrow (or the platform) to the state where the rightful caller would
//! succeed, so that a refusal is due to authorization alone; then the probe call by that principal. The probe and
//! every setup request are compared with the model, so a wrong decision, a wrong refusal (403 where the matrix says
//! 404: an existence leak) or a state change on a refused call is a finding. The model's own decision is also held
//! against the matrix cell: the contract and the oracle must agree.

use std::time::Instant;

use conform_reference::authz::PrincipalClass;
use conform_reference::generate::{Call, EscrowAct, PasskeyAssertion, Portion, Step, Who, run_on_model};
use conform_reference::ledger::Provider;
use conform_reference::model_suite::EPOCH;
use conform_reference::ops::OperationKind;
use conform_reference::refusal::Refusal;
use conform_reference::world::{Config, Resolution, World};

use super::{CheckResult, Reporter, Session, differential_failure};
use crate::contracts::Cell;
use crate::contracts::matrix::{Matrix, MatrixRow, Transport};
use crate::error::Error;
use crate::report::CheckOutcome;
use crate::report::event::Failure;

/// How a principal class is played: who calls, and what must happen just before.
fn principal(class: PrincipalClass) -> (Who, Vec<Step>) {
    match class {
        PrincipalClass::Anonymous => (Who::Anonymous, vec![]),
        PrincipalClass::Stranger => (Who::Stranger, vec![]),
        PrincipalClass::Buyer => (Who::Buyer, vec![]),
        PrincipalClass::Seller => (Who::Seller, vec![]),
        PrincipalClass::Support => (Who::Support, vec![]),
        // The second admin, who never stepped up; setups act through the first admin only.
        PrincipalClass::Admin => (Who::AdminB, vec![]),
        PrincipalClass::AdminSteppedUp => (Who::AdminB, vec![Step::StepUp { actor: 5, ok: true }]),
    }
}

fn act(who: Who, act: EscrowAct) -> Step {
    Step::Act { escrow: 0, who, act }
}

/// Steps that bring the latest escrow to `state` by its rightful callers (drills start from these too).
pub(crate) fn reach(state: &str) -> Option<Vec<Step>> {
    let create = |provider| Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider, extra: None };
    let funded = vec![
        create(Provider::Shkeeper),
        act(Who::Rightful, EscrowAct::StartPayment),
        Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event: 0, authentic: true },
    ];
    let with = |mut steps: Vec<Step>, more: &[Step]| {
        steps.extend_from_slice(more);
        steps
    };
    Some(match state {
        "awaiting_payment" => vec![create(Provider::Shkeeper)],
        "funded" => funded,
        "delivered" => with(funded, &[act(Who::Rightful, EscrowAct::MarkDelivered)]),
        "disputed" => with(funded, &[act(Who::Rightful, EscrowAct::OpenDispute)]),
        "release_pending" => {
            with(funded, &[act(Who::Rightful, EscrowAct::MarkDelivered), act(Who::Rightful, EscrowAct::ConfirmReceipt)])
        }
        "payment_review" => vec![
            create(Provider::ManualWallet),
            act(
                Who::Rightful,
                EscrowAct::SubmitProof { tx: 0, exact: true, right_destination: true, wrong_currency: false },
            ),
        ],
        _ => return None,
    })
}

/// The escrow act of an escrow operation.
fn escrow_act(op: OperationKind) -> Option<EscrowAct> {
    use OperationKind as K;
    Some(match op {
        K::GetEscrow => EscrowAct::Get,
        K::UpdateEscrow => EscrowAct::Update(conform_reference::world::EscrowField::Description),
        K::StartPayment => EscrowAct::StartPayment,
        K::SubmitPaymentProof => {
            EscrowAct::SubmitProof { tx: 1, exact: true, right_destination: true, wrong_currency: false }
        }
        K::CancelEscrow => EscrowAct::Cancel,
        K::MarkDelivered => EscrowAct::MarkDelivered,
        K::ConfirmReceipt => EscrowAct::ConfirmReceipt,
        K::OpenDispute => EscrowAct::OpenDispute,
        K::RefundVoluntarily => EscrowAct::RefundVoluntarily,
        K::ResolveDispute => EscrowAct::Resolve(Resolution::Release),
        K::ApproveProof => EscrowAct::ApproveProof,
        K::RejectProof => EscrowAct::RejectProof,
        K::RetryPayout => EscrowAct::RetryPayout,
        _ => return None,
    })
}

/// The call of an operation that is not about one escrow, with the setup it needs.
fn platform_call(op: OperationKind) -> Option<(Call, Vec<Step>)> {
    use OperationKind as K;
    let escrow =
        Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::Shkeeper, extra: None };
    Some(match op {
        K::Logout => (Call::Logout, vec![]),
        K::ListSessions => (Call::ListSessions, vec![]),
        // The first user signs in first, so that an anonymous caller has a real session id to name.
        K::RevokeOwnSession => (Call::RevokeOwnSession, vec![Step::SignIn { actor: 0, password_ok: true }]),
        K::ChangePassword => (Call::ChangePassword, vec![]),
        K::StepUp => (Call::StepUp, vec![]),
        K::CreateEscrow => (Call::CreateEscrow, vec![]),
        K::ListEscrows => (Call::ListEscrows, vec![escrow]),
        // A pending approval by the first admin: granting the admin role needs a second admin (AZ-7).
        K::ApprovePending => (
            Call::ApprovePending,
            vec![
                Step::StepUp { actor: 4, ok: true },
                Step::ChangeRole { target: 2, role: conform_reference::authz::Role::Admin },
            ],
        ),
        // A forged delivery is dead-lettered (WH-5).
        K::ReplayDeadLetter => (
            Call::ReplayDeadLetter,
            vec![
                escrow,
                Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event: 0, authentic: false },
            ],
        ),
        K::RotateWebhookSecret => (Call::RotateWebhookSecret, vec![]),
        K::ChangeRole => (Call::ChangeRole, vec![]),
        K::DeleteAccount => (Call::DeleteAccount, vec![]),
        K::RevokeUserSessions => (Call::RevokeUserSessions, vec![]),
        K::ListStuckPayouts => (Call::ListStuckPayouts, vec![]),
        K::ListDeadLetters => (Call::ListDeadLetters, vec![]),
        K::ReadAuditLog => (Call::ReadAuditLog, vec![]),
        K::ReadLedger => (Call::ReadLedger, vec![]),
        K::PasskeyRegisterOptions => (Call::PasskeyRegisterOptions, vec![]),
        // The first user's challenge first, so that a caller with none of its own (anonymous) has one to name;
        // the caller's own comes in `cell_scenario`.
        K::PasskeyRegister => {
            (Call::PasskeyRegister, vec![Step::Call { who: Who::Buyer, call: Call::PasskeyRegisterOptions }])
        }
        _ => return None,
    })
}

/// The scenario of one cell: setup, the principal's preparation, the probe. `Err` says why the cell has none.
fn cell_scenario(row: &MatrixRow, op: OperationKind, class: PrincipalClass) -> Result<Vec<Step>, String> {
    let (who, prepare) = principal(class);
    if row.transport == Transport::Socketio {
        // The subscription itself is the realtime suite's probe: the setup and the preparation only.
        let state = row.state.as_deref().ok_or("a Socket.IO row without a state")?;
        let mut steps = reach(state).ok_or_else(|| format!("no setup reaches `{state}`"))?;
        steps.extend(prepare);
        return Ok(steps);
    }
    let (mut steps, probe) = if let Some(act_) = escrow_act(op) {
        let state = row.state.as_deref().ok_or("an escrow row without a state")?;
        let mut setup = reach(state).ok_or_else(|| format!("no setup reaches `{state}`"))?;
        if op == OperationKind::SubmitPaymentProof {
            // Proofs are for manual-wallet escrows.
            setup[0] = Step::Create {
                buyer: 0,
                seller: 1,
                major: 100,
                currency: 0,
                provider: Provider::ManualWallet,
                extra: None,
            };
        }
        (setup, act(who, act_))
    } else if let Some((call, mut setup)) = platform_call(op) {
        if op == OperationKind::PasskeyRegister {
            setup.push(Step::Call { who, call: Call::PasskeyRegisterOptions });
        }
        (setup, Step::Call { who, call })
    } else {
        // Public operations: the caller's class does not matter, so each class signs in (or refreshes) as the
        // cast member that plays it, and the matrix says every one of them is allowed.
        let actor = match who {
            Who::Seller => 1,
            Who::Stranger => 2,
            Who::Support => 3,
            Who::AdminB => 5,
            _ => 0,
        };
        match op {
            OperationKind::SignIn => (vec![], Step::SignIn { actor, password_ok: true }),
            OperationKind::PasskeySignInOptions => (vec![], Step::Call { who, call: Call::PasskeySignInOptions }),
            // The class's cast member registers a passkey and signs in with it.
            OperationKind::PasskeySignIn => (
                vec![Step::PasskeyRegister { actor, counter: true }],
                Step::PasskeySignIn { passkey: 0, assertion: PasskeyAssertion::Genuine },
            ),
            OperationKind::Refresh => {
                (vec![Step::SignIn { actor, password_ok: true }], Step::Refresh { actor, reuse: false })
            }
            // A genuine delivery: authenticated by its signature, whoever else is signed in.
            OperationKind::DeliverWebhook => {
                let mut setup = reach("awaiting_payment").ok_or("no setup reaches `awaiting_payment`")?;
                setup.push(act(Who::Rightful, EscrowAct::StartPayment));
                let pay =
                    Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event: 0, authentic: true };
                (setup, pay)
            }
            _ => return Err(format!("{} has no model operation to drive it by principal yet", op.name())),
        }
    };
    steps.extend(prepare);
    steps.push(probe);
    Ok(steps)
}

/// The model's authorization decision on the probe (the last request of the scenario), as a matrix cell: a
/// refusal for another reason than authorization (a forged delivery replayed, a version conflict) means the caller
/// was authorized.
fn model_cell(steps: &[Step], op: OperationKind) -> Option<Cell> {
    // The matrix's passkey cells assume passkeys on (its notes); other operations do not depend on the switch.
    let mut world = World::new(Config { passkeys_enabled: true, ..Config::default() }, EPOCH);
    let mut last = None;
    run_on_model(&mut world, steps, |_, step, request, outcome| {
        if step == steps.last() && request.op.kind() == Some(op) {
            last = Some(match outcome {
                Err(refusal) if is_authorization(*refusal) => Cell::Refuse(*refusal),
                _ => Cell::Allow,
            });
        }
    });
    last
}

fn is_authorization(refusal: Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Unauthenticated
            | Refusal::NotFound
            | Refusal::Forbidden
            | Refusal::StepUpRequired
            | Refusal::SameApprover
    )
}

/// Runs every cell against the session's target.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let matrix = Matrix::embedded()?;
    let mut suite = reporter.suite("matrix", Some((matrix.operation.len() * PrincipalClass::ALL.len()) as u64))?;
    for row in matrix.rows() {
        let Ok(op) = row.operation() else { continue };
        let rules = &row.rules;
        if !suite.selected(rules, &["matrix"]) {
            continue;
        }
        // A webhook delivery carries no session: one check for the row, not one per class.
        let classes: &[PrincipalClass] =
            if op == OperationKind::DeliverWebhook { &[PrincipalClass::Anonymous] } else { &PrincipalClass::ALL };
        for &class in classes {
            let name = if op == OperationKind::DeliverWebhook {
                format!("{} × any principal", op.name())
            } else {
                format!("{} × {}", op.name(), class.name())
            };
            let expected = row.cell(class);
            let started = Instant::now();
            let outcome = match cell_scenario(row, op, class) {
                Err(reason) => CheckOutcome::Unverified { reason },
                Ok(steps) if row.transport == Transport::Socketio => {
                    let (who, prepare) = principal(class);
                    let setup = &steps[..steps.len() - prepare.len()];
                    super::realtime::subscribe_cell(session, class, who, setup, &prepare, expected)
                }
                Ok(steps) => judge(session, &steps, op, expected),
            };
            let mut check = CheckResult::new(name, rules.iter().cloned(), outcome);
            check.extra_tags = vec!["matrix"];
            check.duration_ms = started.elapsed().as_millis() as u64;
            suite.check(check)?;
        }
    }
    for case in &matrix.mass_assignment {
        if !suite.selected(&case.rules, &["matrix"]) {
            continue;
        }
        let name = format!("{} sets {} as {}", case.operation, case.field, case.principal);
        let started = Instant::now();
        let outcome = match mass_assignment_scenario(&case.operation, &case.principal, &case.field) {
            Err(reason) => CheckOutcome::Unverified { reason },
            Ok(_) if !sends_field(session, &case.operation) => CheckOutcome::Unverified {
                reason: format!(
                    "the profile's {} body has no `\"{{field}}\" = \"{{value}}\"` entry, so the field cannot be sent",
                    case.operation
                ),
            },
            Ok(steps) => judge_run(session, &steps),
        };
        let mut check = CheckResult::new(name, case.rules.iter().cloned(), outcome);
        check.extra_tags = vec!["matrix"];
        check.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(check)?;
    }
    suite.finish()
}

/// A mass-assignment case (AZ-8): the principal sends the protected field, then the buyer reads the escrow back; the
/// model refuses the field, and a target that ignores it instead must leave the escrow as it was.
fn mass_assignment_scenario(operation: &str, principal: &str, field: &str) -> Result<Vec<Step>, String> {
    use conform_reference::world::EscrowField as F;
    let field = match field {
        "state" => F::State,
        "buyer_id" => F::BuyerId,
        "seller_id" => F::SellerId,
        "amount" => F::Amount,
        "amount_received" => F::AmountReceived,
        "id" => F::Id,
        "status" => F::Status,
        "currency" => F::Currency,
        "version" => F::Version,
        "role" => F::Role,
        "flagged" => F::Flagged,
        other => return Err(format!("the model has no escrow field `{other}` to smuggle")),
    };
    let who = match principal {
        "buyer" => Who::Buyer,
        "seller" => Who::Seller,
        other => return Err(format!("no mass-assignment scenario for principal `{other}`")),
    };
    let read_back = act(Who::Buyer, EscrowAct::Get);
    match operation {
        "create_escrow" => Ok(vec![
            Step::Create {
                buyer: 0,
                seller: 1,
                major: 100,
                currency: 0,
                provider: Provider::Shkeeper,
                extra: Some(field),
            },
            read_back,
        ]),
        "update_escrow" => Ok(vec![
            Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::Shkeeper, extra: None },
            act(who, EscrowAct::Update(field)),
            read_back,
        ]),
        "start_payment" => Ok(vec![
            Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::Shkeeper, extra: None },
            act(who, EscrowAct::StartPaymentWith(field)),
            read_back,
        ]),
        // A manual-wallet escrow, the only kind that takes proofs. No read-back: a target that ignores the field
        // has taken an ordinary proof (the escrow is in review), which the model, refusing, cannot follow; the
        // answer's state is judged instead (review or unchanged; anything else means the field was applied).
        "submit_payment_proof" => Ok(vec![
            Step::Create {
                buyer: 0,
                seller: 1,
                major: 100,
                currency: 0,
                provider: Provider::ManualWallet,
                extra: None,
            },
            act(who, EscrowAct::SubmitProofWith(field)),
        ]),
        other => Err(format!("no mass-assignment scenario for `{other}` yet")),
    }
}

/// Whether the profile's binding of `operation` can carry a smuggled field: without `"{field}" = "{value}"` in
/// its body the request goes out without it, and a pass would judge nothing.
fn sends_field(session: &Session, operation: &str) -> bool {
    let kind = match operation {
        "create_escrow" => OperationKind::CreateEscrow,
        "update_escrow" => OperationKind::UpdateEscrow,
        "start_payment" => OperationKind::StartPayment,
        "submit_payment_proof" => OperationKind::SubmitPaymentProof,
        _ => return false,
    };
    session
        .profile()
        .operation(kind)
        .and_then(|b| b.body.as_ref())
        .is_some_and(|body| body.to_string().contains("{field}"))
}

/// A scenario's differential verdict: passed when the target agreed with the model on every request.
fn judge_run(session: &mut Session, steps: &[Step]) -> CheckOutcome {
    let run = session.run_steps(steps);
    match &run.finding {
        Some(finding) => CheckOutcome::Failed(differential_failure(finding, &run.trace, None, None, None)),
        None => match run.trace.iter().find_map(|e| match &e.observed {
            crate::oracle::Observed::Unknown { reason } => Some(reason.clone()),
            _ => None,
        }) {
            Some(reason) => CheckOutcome::Unverified { reason: format!("the target gave no outcome: {reason}") },
            None => CheckOutcome::Passed,
        },
    }
}

fn judge(session: &mut Session, steps: &[Step], op: OperationKind, expected: Cell) -> CheckOutcome {
    if op.is_passkey() && !session.abilities.passkeys {
        return CheckOutcome::Unverified {
            reason: "the profile declares the target's passkeys off (capabilities.passkeys): the matrix's passkey \
                     cells assume them on"
                .to_owned(),
        };
    }
    match model_cell(steps, op) {
        None => {
            return CheckOutcome::Unverified {
                reason: "the setup did not reach the probe on the model (no escrow, approval or dead letter to name)"
                    .to_owned(),
            };
        }
        Some(model) if model != expected => {
            return CheckOutcome::Failed(Failure {
                message: format!("the model answers {model} where the matrix says {expected}"),
                expected: expected.to_string(),
                observed: format!("model: {model}"),
                seed: None,
                reproduction: Vec::new(),
                file: None,
                replay: None,
            });
        }
        Some(_) => {}
    }
    let run = session.run_steps(steps);
    if let Some(finding) = &run.finding {
        return CheckOutcome::Failed(differential_failure(finding, &run.trace, None, None, None));
    }
    match run.trace.last() {
        Some(last) if last.request.op.kind() == Some(op) => match &last.observed {
            crate::oracle::Observed::Unknown { reason } => {
                CheckOutcome::Unverified { reason: format!("the target gave no outcome: {reason}") }
            }
            _ => CheckOutcome::Passed,
        },
        _ => CheckOutcome::Unverified { reason: "the target's scenario did not reach the probe".to_owned() },
    }
}

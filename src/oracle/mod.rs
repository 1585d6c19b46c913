//! The oracle: the reference model predicts, the target answers, and every difference becomes a finding tagged
//! with the SPEC rules (and, through `contracts/rules.toml`, the threats) it breaks.
//!
//! This module is the comparison itself, pure and transport-free: a target adapter reduces each HTTP, Socket.IO or
//! webhook exchange to an [`Observed`] in canonical terms (through the profile), and [`compare`] judges it against
//! the model's [`Outcome`]. An outcome the target did not report (a timeout, a dropped connection) is
//! [`Verdict::Unknown`]: recorded, never guessed.

pub mod differential;
pub mod http_target;

use conform_reference::escrow::EscrowState;
use conform_reference::ops::OperationKind;
use conform_reference::refusal::Refusal;
use conform_reference::world::{Accepted, Op, Outcome};
use serde::Serialize;

/// What a target answered to one request, in canonical terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Observed {
    /// A success status.
    Accepted {
        /// The HTTP status (202 for a pending two-person approval).
        status: u16,
        /// The escrow's state in the answer, mapped by the profile, if the answer carries one.
        state: Option<EscrowState>,
    },
    /// A success status with a list of escrows: those of this run, in the model's ids, and how many others the
    /// list showed that the caller has no business seeing (escrows the run does not know, shown to a non-staff
    /// caller).
    Listed {
        /// The HTTP status.
        status: u16,
        /// The run's escrows in the list.
        escrows: Vec<conform_reference::ids::EscrowId>,
        /// Escrows of others in the list.
        foreign: usize,
    },
    /// An error status, with the refusal the profile maps it to (`None`: the target's error is not mapped).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The canonical refusal.
        refusal: Option<Refusal>,
    },
    /// No answer to judge: a timeout or a transport failure.
    Unknown {
        /// What happened.
        reason: String,
    },
}

/// A difference between the model and the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The SPEC rules the difference breaks, most specific first.
    pub rules: Vec<&'static str>,
    /// What the model predicted.
    pub expected: String,
    /// What the target did.
    pub observed: String,
}

/// The judgement of one exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// The target decided as the model did.
    Agree,
    /// It did not.
    Differ(Difference),
    /// The target gave no outcome to judge.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// The rules a refusal of this kind enforces: what is broken when a target accepts where the model refuses so.
pub fn rules_of_refusal(refusal: Refusal) -> &'static [&'static str] {
    match refusal {
        Refusal::Unauthenticated => &["AZ-1", "SES-4", "SES-6"],
        Refusal::InvalidGrant => &["SES-3", "SES-2"],
        Refusal::InvalidCredentials => &["SES-1"],
        Refusal::StepUpRequired => &["AZ-6", "SES-9"],
        Refusal::Forbidden => &["AZ-3", "AZ-5"],
        Refusal::SameApprover => &["AZ-7"],
        Refusal::NotFound => &["AZ-2", "ESC-20"],
        Refusal::PasskeysDisabled => &["SES-8"],
        Refusal::InvalidTransition => &["ESC-19", "ESC-22"],
        Refusal::VersionMismatch => &["ESC-21"],
        Refusal::ValidationFailed => &["AZ-8", "ESC-1"],
        Refusal::ProviderDisabled => &["PRV-3"],
        Refusal::RateLimited => &["SES-10"],
        Refusal::ProviderUnavailable => &["PRV-2"],
        Refusal::WebhookUnauthenticated => &["WH-1", "WH-2", "WH-8", "WH-10"],
        Refusal::WebhookMalformed => &["WH-7"],
    }
}

/// The rules an accepted operation of this kind fulfils: what is broken when a target refuses where the model
/// accepts.
pub fn rules_of_operation(op: &Op) -> &'static [&'static str] {
    use OperationKind as K;
    match op.kind() {
        None => &[],
        Some(kind) => match kind {
            K::SignIn => &["SES-1"],
            K::Refresh => &["SES-2"],
            K::Logout => &["SES-4"],
            K::ListSessions | K::RevokeOwnSession => &["SES-5"],
            K::StepUp => &["SES-9"],
            K::ChangePassword => &["SES-7"],
            K::PasskeyRegisterOptions | K::PasskeyRegister | K::PasskeySignInOptions | K::PasskeySignIn => &["SES-8"],
            K::CreateEscrow => &["ESC-1"],
            K::GetEscrow | K::SubscribeEscrow => &["AZ-2"],
            K::ListEscrows => &["AZ-4"],
            K::UpdateEscrow => &["AZ-8"],
            K::StartPayment => &["ESC-2", "PRV-1"],
            K::SubmitPaymentProof => &["ESC-5", "PRV-6"],
            K::CancelEscrow => &["ESC-8"],
            K::MarkDelivered => &["ESC-10"],
            K::ConfirmReceipt => &["ESC-11"],
            K::OpenDispute => &["ESC-13"],
            K::RefundVoluntarily => &["ESC-15"],
            K::ResolveDispute => &["ESC-14", "AZ-7"],
            K::ApproveProof => &["ESC-6", "AZ-7"],
            K::RejectProof => &["ESC-7"],
            K::ApprovePending => &["AZ-7"],
            K::RetryPayout => &["ESC-18", "PRV-4"],
            K::ReplayDeadLetter => &["WH-6"],
            K::RotateWebhookSecret => &["WH-8"],
            K::ChangeRole => &["SES-7", "AZ-7"],
            K::DeleteAccount => &["AZ-6"],
            K::RevokeUserSessions => &["SES-5"],
            K::ListStuckPayouts => &["ESC-18"],
            K::ListDeadLetters => &["WH-5"],
            K::ReadAuditLog => &["AZ-9"],
            K::ReadLedger => &["LED-7"],
            K::DeliverWebhook => &["WH-3", "WH-4"],
        },
    }
}

/// The rules of the transition a provider's notice makes, by the state the model left the escrow in: what is
/// broken when the target's escrow ends elsewhere (a partial payment that funds breaks ESC-4 and PRV-5, and its
/// funding without the money is a state change apart from its entry, LED-8).
fn rules_of_notice(kind: &conform_reference::world::NoticeKind, expected: EscrowState) -> &'static [&'static str] {
    use conform_reference::world::NoticeKind as N;
    match (kind, expected) {
        (N::Payment(_), EscrowState::AwaitingPayment) => &["ESC-4", "PRV-5", "LED-8"],
        (N::Payment(_), EscrowState::Funded) => &["ESC-3", "LED-8"],
        (N::Payment(_), _) | (N::Pending, _) => &["WH-9"],
        (N::PayoutConfirmed, _) => &["ESC-16"],
        (N::RefundConfirmed, _) => &["ESC-17"],
        (N::PayoutFailed, _) => &["ESC-18"],
    }
}

/// Operations whose success may be a 202 pending two-person approval (AZ-7).
fn can_be_pending(op: &Op) -> bool {
    matches!(op, Op::ResolveDispute { .. } | Op::ApproveProof { .. } | Op::ChangeRole { .. })
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Ok(Accepted::PendingApproval(_)) => "202 pending approval".to_owned(),
        Ok(accepted) => format!("accepted ({})", accepted_name(accepted)),
        Err(refusal) => format!("refused {refusal}"),
    }
}

fn accepted_name(accepted: &Accepted) -> &'static str {
    match accepted {
        Accepted::User(_) => "user",
        Accepted::Tokens(_) => "tokens",
        Accepted::Challenge(_) => "passkey challenge",
        Accepted::Escrow(_) => "escrow",
        Accepted::Escrows(_) => "escrow list",
        Accepted::Sessions(_) => "session list",
        Accepted::PendingApproval(_) => "pending approval",
        Accepted::Done => "done",
        Accepted::Duplicate => "duplicate, no effect",
        Accepted::DeadLettered(_) => "dead-lettered for review",
        Accepted::StuckPayouts(_) => "stuck payouts",
        Accepted::DeadLetters(_) => "dead letters",
        Accepted::AuditLog(_) => "audit log",
    }
}

fn describe_observed(observed: &Observed) -> String {
    match observed {
        Observed::Accepted { status, state: Some(state) } => format!("{status} accepted, state {state}"),
        Observed::Accepted { status, state: None } => format!("{status} accepted"),
        Observed::Listed { status, escrows, foreign } => {
            let ids: Vec<String> = escrows.iter().map(ToString::to_string).collect();
            format!("{status} listed [{}] and {foreign} escrow(s) of others", ids.join(", "))
        }
        Observed::Refused { status, refusal: Some(refusal) } => format!("{status} refused {}", refusal.code()),
        Observed::Refused { status, refusal: None } => {
            format!("{status} refused with an error the profile does not map")
        }
        Observed::Unknown { reason } => format!("no outcome: {reason}"),
    }
}

/// Judges what the target did against what the model predicted. `model_state` is the escrow's state in the model
/// after the request, when the request names an escrow and the answer is expected to carry its state.
pub fn compare(op: &Op, predicted: &Outcome, model_state: Option<EscrowState>, observed: &Observed) -> Verdict {
    let differ = |rules: &[&'static str]| {
        Verdict::Differ(Difference {
            rules: rules.to_vec(),
            expected: match (predicted, model_state) {
                (Ok(_), Some(state)) => format!("{}, state {state}", describe(predicted)),
                _ => describe(predicted),
            },
            observed: describe_observed(observed),
        })
    };
    // A passkey ceremony's refusals are SES-8's whatever their code (a replay is refused as a wrong password is).
    let refused_for = |refusal: Refusal| -> Vec<&'static str> {
        let mut rules = rules_of_refusal(refusal).to_vec();
        if op.kind().is_some_and(OperationKind::is_passkey) && !rules.contains(&"SES-8") {
            rules.insert(0, "SES-8");
        }
        rules
    };
    match (predicted, observed) {
        (_, Observed::Unknown { reason }) => Verdict::Unknown { reason: reason.clone() },
        (Ok(Accepted::PendingApproval(_)), Observed::Accepted { status, .. }) if *status != 202 => differ(&["AZ-7"]),
        // A two-person hold where the model executes at once (or the reverse above): the escrow no longer moves
        // as the model's does.
        (Ok(accepted), Observed::Accepted { status: 202, .. })
            if !matches!(accepted, Accepted::PendingApproval(_)) && can_be_pending(op) =>
        {
            let mut rules = vec!["AZ-7"];
            rules.extend(rules_of_operation(op).iter().filter(|r| **r != "AZ-7"));
            differ(&rules)
        }
        (Ok(_), Observed::Accepted { state, .. }) => match (model_state, state) {
            (Some(expected), Some(seen)) if expected != *seen => {
                let mut rules = match op {
                    Op::DeliverWebhook { notice, .. } => rules_of_notice(&notice.kind, expected).to_vec(),
                    _ => rules_of_operation(op).to_vec(),
                };
                rules.push("ESC-19");
                differ(&rules)
            }
            _ => Verdict::Agree,
        },
        (Ok(Accepted::Escrows(expected)), Observed::Listed { escrows, foreign, .. }) => {
            let mut expected = expected.clone();
            let mut seen = escrows.clone();
            expected.sort();
            seen.sort();
            if expected == seen && *foreign == 0 { Verdict::Agree } else { differ(&["AZ-4", "AZ-2"]) }
        }
        (Ok(Accepted::StuckPayouts(expected)), Observed::Listed { escrows, .. }) => {
            let mut expected = expected.clone();
            let mut seen = escrows.clone();
            expected.sort();
            seen.sort();
            if expected == seen { Verdict::Agree } else { differ(&["ESC-18", "DRL-3"]) }
        }
        (Ok(_), Observed::Listed { .. }) => Verdict::Agree,
        (Err(refusal), Observed::Listed { .. }) => differ(rules_of_refusal(*refusal)),
        (Ok(_), Observed::Refused { .. }) => differ(rules_of_operation(op)),
        // AZ-8 allows a protected field to be ignored instead of refused: accepting is not yet a difference; a
        // field that was applied shows as a state or amount difference on the next read.
        (Err(Refusal::ValidationFailed), Observed::Accepted { state, .. })
            if matches!(
                op,
                Op::UpdateEscrow { .. }
                    | Op::CreateEscrow { extra: Some(_), .. }
                    | Op::StartPayment { extra: Some(_), .. }
                    | Op::SubmitPaymentProof { extra: Some(_), .. }
            ) =>
        {
            // A created escrow starts awaiting payment, whatever the body said.
            let model_state = match op {
                Op::CreateEscrow { .. } => Some(EscrowState::AwaitingPayment),
                _ => model_state,
            };
            // A proof whose smuggled field was ignored is an ordinary proof: it goes to review.
            let ignored = |seen: EscrowState| {
                matches!(op, Op::SubmitPaymentProof { .. })
                    && model_state == Some(EscrowState::AwaitingPayment)
                    && seen == EscrowState::PaymentReview
            };
            match (model_state, state) {
                // Ignored, but applied after all: the answer shows the state the caller smuggled in.
                (Some(expected), Some(seen)) if expected != *seen && !ignored(*seen) => Verdict::Differ(Difference {
                    rules: vec!["AZ-8", "ESC-19"],
                    expected: format!("the protected field refused or ignored: state stays {expected}"),
                    observed: describe_observed(observed),
                }),
                _ => Verdict::Agree,
            }
        }
        (Err(refusal), Observed::Accepted { .. }) => differ(&refused_for(*refusal)),
        (Err(expected), Observed::Refused { refusal: Some(seen), .. }) if expected == seen => Verdict::Agree,
        (Err(expected), Observed::Refused { status, refusal: None }) if *status == expected.http_status() => {
            Verdict::Agree
        }
        (Err(expected), Observed::Refused { .. }) => differ(&refused_for(*expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conform_reference::ids::EscrowId;
    use conform_reference::world::EscrowField;

    const GET: Op = Op::GetEscrow { escrow: EscrowId(0) };

    fn refused(refusal: Refusal) -> Observed {
        Observed::Refused { status: refusal.http_status(), refusal: Some(refusal) }
    }

    #[test]
    fn the_same_decision_agrees() {
        assert_eq!(compare(&GET, &Err(Refusal::NotFound), None, &refused(Refusal::NotFound)), Verdict::Agree);
        let accepted = Observed::Accepted { status: 200, state: Some(EscrowState::Funded) };
        assert_eq!(
            compare(&GET, &Ok(Accepted::Escrow(EscrowId(0))), Some(EscrowState::Funded), &accepted),
            Verdict::Agree
        );
    }

    #[test]
    fn an_escrow_shown_to_a_stranger_breaks_object_level_authorization() {
        let observed = Observed::Accepted { status: 200, state: Some(EscrowState::Funded) };
        let Verdict::Differ(d) = compare(&GET, &Err(Refusal::NotFound), None, &observed) else { panic!("agreed") };
        assert_eq!(d.rules, vec!["AZ-2", "ESC-20"]);
        assert_eq!(d.expected, "refused 404 not_found");
        assert_eq!(d.observed, "200 accepted, state funded");
    }

    #[test]
    fn a_wrong_refusal_is_a_difference_of_the_expected_rule() {
        let op = Op::ResolveDispute { escrow: EscrowId(0), resolution: conform_reference::world::Resolution::Refund };
        let Verdict::Differ(d) = compare(&op, &Err(Refusal::StepUpRequired), None, &refused(Refusal::Forbidden)) else {
            panic!("agreed")
        };
        assert_eq!(d.rules, vec!["AZ-6", "SES-9"]);
    }

    #[test]
    fn a_refusal_where_the_model_accepts_names_the_operation_rules() {
        let op = Op::ConfirmReceipt { escrow: EscrowId(0) };
        let Verdict::Differ(d) = compare(
            &op,
            &Ok(Accepted::Escrow(EscrowId(0))),
            Some(EscrowState::ReleasePending),
            &refused(Refusal::InvalidTransition),
        ) else {
            panic!("agreed")
        };
        assert_eq!(d.rules, vec!["ESC-11"]);
    }

    #[test]
    fn a_different_state_is_a_difference() {
        let op = Op::ConfirmReceipt { escrow: EscrowId(0) };
        let observed = Observed::Accepted { status: 200, state: Some(EscrowState::Released) };
        let verdict = compare(&op, &Ok(Accepted::Escrow(EscrowId(0))), Some(EscrowState::ReleasePending), &observed);
        assert!(matches!(verdict, Verdict::Differ(d) if d.rules.contains(&"ESC-19")));
    }

    #[test]
    fn two_person_actions_must_answer_202() {
        let op = Op::ApprovePending { approval: conform_reference::ids::ApprovalId(0) };
        let predicted = Ok(Accepted::PendingApproval(conform_reference::ids::ApprovalId(0)));
        assert_eq!(compare(&op, &predicted, None, &Observed::Accepted { status: 202, state: None }), Verdict::Agree);
        assert!(matches!(
            compare(&op, &predicted, None, &Observed::Accepted { status: 200, state: None }),
            Verdict::Differ(_)
        ));
    }

    #[test]
    fn ignoring_a_protected_field_is_allowed_and_timeouts_are_unknown() {
        let op = Op::UpdateEscrow { escrow: EscrowId(0), field: EscrowField::State };
        let observed = Observed::Accepted { status: 200, state: None };
        assert_eq!(compare(&op, &Err(Refusal::ValidationFailed), None, &observed), Verdict::Agree);
        let unknown = Observed::Unknown { reason: "timed out after 10 s".into() };
        assert_eq!(
            compare(&op, &Err(Refusal::ValidationFailed), None, &unknown),
            Verdict::Unknown { reason: "timed out after 10 s".into() }
        );
    }

    #[test]
    fn a_list_showing_others_escrows_breaks_filtering() {
        let predicted = Ok(Accepted::Escrows(vec![EscrowId(1)]));
        let same = Observed::Listed { status: 200, escrows: vec![EscrowId(1)], foreign: 0 };
        assert_eq!(compare(&Op::ListEscrows, &predicted, None, &same), Verdict::Agree);
        let leaky = Observed::Listed { status: 200, escrows: vec![EscrowId(1)], foreign: 3 };
        assert!(
            matches!(compare(&Op::ListEscrows, &predicted, None, &leaky), Verdict::Differ(d) if d.rules[0] == "AZ-4")
        );
        let extra = Observed::Listed { status: 200, escrows: vec![EscrowId(0), EscrowId(1)], foreign: 0 };
        assert!(matches!(compare(&Op::ListEscrows, &predicted, None, &extra), Verdict::Differ(_)));
    }

    #[test]
    fn an_unmapped_error_agrees_only_on_the_status() {
        let observed = Observed::Refused { status: 404, refusal: None };
        assert_eq!(compare(&GET, &Err(Refusal::NotFound), None, &observed), Verdict::Agree);
        let observed = Observed::Refused { status: 500, refusal: None };
        assert!(matches!(compare(&GET, &Err(Refusal::NotFound), None, &observed), Verdict::Differ(_)));
    }

    #[test]
    fn every_refusal_and_operation_names_known_rules() {
        let rules = crate::contracts::Rules::embedded().expect("rules");
        for refusal in Refusal::ALL {
            for rule in rules_of_refusal(refusal) {
                assert!(rules.get(rule).is_some(), "{rule} of {refusal}");
            }
        }
    }
}

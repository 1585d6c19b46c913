//! REST authorization (SPEC §3) as one pure decision: who may call which operation on which escrow.
//!
//! The order of the checks is the rule: authentication (AZ-1), then whether the caller may know the escrow
//! exists (AZ-2, ESC-20: before any state), then the function (AZ-3, AZ-5, staff operations), then step-up
//! (AZ-6). Two-person approval (AZ-7) and mass assignment (AZ-8) are decided by the escrow machine, after this.

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, UserId};
use crate::ops::{OperationClass, OperationKind};
use crate::refusal::Refusal;

/// Seconds a step-up stays valid, in the session that performed it (AZ-6, SES-9).
pub const STEP_UP_WINDOW_SECONDS: i64 = 300;

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary account: buyer or seller of its own escrows.
    User,
    /// Staff with read-only access (AZ-5).
    Support,
    /// Staff who may move funds and manage accounts, with step-up (AZ-6).
    Admin,
}

impl Role {
    /// Whether this role is staff (sees every escrow, AZ-4).
    pub const fn is_staff(self) -> bool {
        matches!(self, Role::Support | Role::Admin)
    }

    /// The role's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }
}

/// The caller as the server knows it after authenticating the session. The role is the account's role now, not
/// the one at sign-in (SES-7); the step-up is the one of this very session (SES-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// No valid session.
    Anonymous,
    /// A signed-in account.
    Signed {
        /// The account.
        user: UserId,
        /// Its current role.
        role: Role,
        /// When this session last stepped up, if it did.
        step_up_at: Option<Timestamp>,
    },
}

/// The two participants of an escrow: all authorization needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parties {
    /// The account that created and pays for the escrow.
    pub buyer: UserId,
    /// The account that delivers and is paid.
    pub seller: UserId,
}

/// Which participant an escrow operation is reserved to (AZ-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Participant {
    Buyer,
    Seller,
    Either,
}

fn reserved_to(op: OperationKind) -> Participant {
    use OperationKind::*;
    match op {
        StartPayment | SubmitPaymentProof | ConfirmReceipt => Participant::Buyer,
        MarkDelivered | RefundVoluntarily => Participant::Seller,
        _ => Participant::Either,
    }
}

/// Whether a step-up taken at `step_up_at` is still valid at `now`.
pub fn step_up_valid(step_up_at: Option<Timestamp>, now: Timestamp) -> bool {
    step_up_at.is_some_and(|at| {
        let age = now.seconds_since(at);
        (0..STEP_UP_WINDOW_SECONDS).contains(&age)
    })
}

/// Decides whether `principal` may call `op`, on `escrow` when the operation names one.
///
/// An operation that names an escrow must be given its parties; when the escrow does not exist the caller passes
/// `None` and gets the same 404 a non-participant gets, so existence never leaks.
pub fn authorize(
    principal: &Principal,
    op: OperationKind,
    escrow: Option<Parties>,
    now: Timestamp,
) -> Result<(), Refusal> {
    if op.class() == OperationClass::Public {
        return Ok(());
    }
    let Principal::Signed { user, role, step_up_at } = *principal else {
        return Err(Refusal::Unauthenticated);
    };
    if op.targets_escrow() {
        let Some(parties) = escrow else { return Err(Refusal::NotFound) };
        let is_buyer = parties.buyer == user;
        let is_seller = parties.seller == user;
        if !is_buyer && !is_seller && !role.is_staff() {
            return Err(Refusal::NotFound);
        }
        return match op.class() {
            OperationClass::Read => Ok(()),
            OperationClass::AdminStepUp => admin_step_up(role, step_up_at, now),
            OperationClass::Write if is_buyer || is_seller => match reserved_to(op) {
                Participant::Either => Ok(()),
                Participant::Buyer if is_buyer => Ok(()),
                Participant::Seller if is_seller => Ok(()),
                _ => Err(Refusal::Forbidden),
            },
            // Staff are not participants: support is read-only (AZ-5) and admins act only through admin operations.
            OperationClass::Write | OperationClass::StaffRead | OperationClass::Public => Err(Refusal::Forbidden),
        };
    }
    match op.class() {
        OperationClass::Public | OperationClass::Read => Ok(()),
        // Support may manage its own session, but create nothing (AZ-5).
        OperationClass::Write if role == Role::Support && op == OperationKind::CreateEscrow => Err(Refusal::Forbidden),
        OperationClass::Write => Ok(()),
        OperationClass::StaffRead => match (role, op) {
            (Role::Admin, _) => Ok(()),
            // The audit log is readable by admins only (AZ-9).
            (Role::Support, OperationKind::ReadAuditLog) => Err(Refusal::Forbidden),
            (Role::Support, _) => Ok(()),
            (Role::User, _) => Err(Refusal::Forbidden),
        },
        OperationClass::AdminStepUp => admin_step_up(role, step_up_at, now),
    }
}

fn admin_step_up(role: Role, step_up_at: Option<Timestamp>, now: Timestamp) -> Result<(), Refusal> {
    match role {
        Role::Admin if step_up_valid(step_up_at, now) => Ok(()),
        Role::Admin => Err(Refusal::StepUpRequired),
        Role::User | Role::Support => Err(Refusal::Forbidden),
    }
}

/// The principal classes of the authorization matrix: each cell of `contracts/authorization-matrix.toml` is one
/// operation called by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalClass {
    /// No session.
    Anonymous,
    /// A signed-in user who is neither buyer nor seller of the escrow.
    Stranger,
    /// The escrow's buyer.
    Buyer,
    /// The escrow's seller.
    Seller,
    /// Read-only staff.
    Support,
    /// An admin whose session has no valid step-up.
    Admin,
    /// An admin whose session stepped up less than 5 minutes ago.
    AdminSteppedUp,
}

impl PrincipalClass {
    /// Every class, in matrix column order.
    pub const ALL: [PrincipalClass; 7] = [
        PrincipalClass::Anonymous,
        PrincipalClass::Stranger,
        PrincipalClass::Buyer,
        PrincipalClass::Seller,
        PrincipalClass::Support,
        PrincipalClass::Admin,
        PrincipalClass::AdminSteppedUp,
    ];

    /// The class's name in the matrix file.
    pub const fn name(self) -> &'static str {
        match self {
            PrincipalClass::Anonymous => "anonymous",
            PrincipalClass::Stranger => "stranger",
            PrincipalClass::Buyer => "buyer",
            PrincipalClass::Seller => "seller",
            PrincipalClass::Support => "support",
            PrincipalClass::Admin => "admin",
            PrincipalClass::AdminSteppedUp => "admin_stepped_up",
        }
    }

    /// A principal of this class for an escrow between `parties`, at `now`; `other` is an account that is no
    /// participant (the stranger, or the staff member).
    pub fn principal(self, parties: Parties, other: UserId, now: Timestamp) -> Principal {
        let signed = |user, role, step_up_at| Principal::Signed { user, role, step_up_at };
        match self {
            PrincipalClass::Anonymous => Principal::Anonymous,
            PrincipalClass::Stranger => signed(other, Role::User, None),
            PrincipalClass::Buyer => signed(parties.buyer, Role::User, None),
            PrincipalClass::Seller => signed(parties.seller, Role::User, None),
            PrincipalClass::Support => signed(other, Role::Support, None),
            PrincipalClass::Admin => signed(other, Role::Admin, None),
            PrincipalClass::AdminSteppedUp => signed(other, Role::Admin, Some(now.plus(-60))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_000_000);
    const PARTIES: Parties = Parties { buyer: UserId(1), seller: UserId(2) };

    fn decide(class: PrincipalClass, op: OperationKind) -> Result<(), Refusal> {
        authorize(&class.principal(PARTIES, UserId(3), NOW), op, Some(PARTIES), NOW)
    }

    #[test]
    fn strangers_learn_nothing_about_an_escrow() {
        for &op in OperationKind::ALL.iter().filter(|op| op.targets_escrow()) {
            assert_eq!(decide(PrincipalClass::Stranger, op), Err(Refusal::NotFound), "{op}");
        }
    }

    #[test]
    fn a_missing_escrow_looks_like_a_hidden_one() {
        let admin = PrincipalClass::AdminSteppedUp.principal(PARTIES, UserId(3), NOW);
        assert_eq!(authorize(&admin, OperationKind::GetEscrow, None, NOW), Err(Refusal::NotFound));
    }

    #[test]
    fn step_up_expires_after_five_minutes() {
        assert!(step_up_valid(Some(NOW), NOW));
        assert!(step_up_valid(Some(NOW.plus(-299)), NOW));
        assert!(!step_up_valid(Some(NOW.plus(-300)), NOW));
        assert!(!step_up_valid(Some(NOW.plus(10)), NOW), "a step-up from the future is not trusted");
        assert!(!step_up_valid(None, NOW));
    }

    #[test]
    fn participants_are_held_to_their_role() {
        assert_eq!(decide(PrincipalClass::Seller, OperationKind::ConfirmReceipt), Err(Refusal::Forbidden));
        assert_eq!(decide(PrincipalClass::Buyer, OperationKind::MarkDelivered), Err(Refusal::Forbidden));
        assert_eq!(decide(PrincipalClass::Buyer, OperationKind::ConfirmReceipt), Ok(()));
        assert_eq!(decide(PrincipalClass::Support, OperationKind::ConfirmReceipt), Err(Refusal::Forbidden));
        assert_eq!(decide(PrincipalClass::Admin, OperationKind::ResolveDispute), Err(Refusal::StepUpRequired));
        assert_eq!(decide(PrincipalClass::AdminSteppedUp, OperationKind::ResolveDispute), Ok(()));
        assert_eq!(decide(PrincipalClass::Buyer, OperationKind::ResolveDispute), Err(Refusal::Forbidden));
    }
}

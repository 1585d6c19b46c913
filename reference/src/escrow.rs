//! The escrow state machine of SPEC §1: states, the transition table ESC-1…ESC-18 as data, and the escrow record.
//!
//! The table is the single source of truth for which state an event may move an escrow from and to; the world
//! model ([`crate::world`]) asks it for every change, and the coverage test counts its rows.

use serde::{Deserialize, Serialize};

use crate::ids::{EscrowId, Timestamp, UserId};
use crate::ledger::Provider;
use crate::money::Money;

/// The states of an escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscrowState {
    /// Created; waiting for the buyer's payment.
    AwaitingPayment,
    /// A manual payment proof waits for an admin.
    PaymentReview,
    /// Fully paid; the seller may deliver.
    Funded,
    /// The seller says it delivered.
    Delivered,
    /// A participant disputes; an admin decides.
    Disputed,
    /// The release entry is written; the seller's payout is under way.
    ReleasePending,
    /// The provider confirmed the seller's payout. Terminal.
    Released,
    /// The refund entry is written; the buyer's refund is under way.
    RefundPending,
    /// The provider confirmed the buyer's refund. Terminal.
    Refunded,
    /// Cancelled before any payment. Terminal.
    Cancelled,
    /// Never paid before its deadline. Terminal.
    Expired,
}

impl EscrowState {
    /// Every state, in SPEC order.
    pub const ALL: [EscrowState; 11] = [
        EscrowState::AwaitingPayment,
        EscrowState::PaymentReview,
        EscrowState::Funded,
        EscrowState::Delivered,
        EscrowState::Disputed,
        EscrowState::ReleasePending,
        EscrowState::Released,
        EscrowState::RefundPending,
        EscrowState::Refunded,
        EscrowState::Cancelled,
        EscrowState::Expired,
    ];

    /// The state's canonical name.
    pub const fn name(self) -> &'static str {
        match self {
            EscrowState::AwaitingPayment => "awaiting_payment",
            EscrowState::PaymentReview => "payment_review",
            EscrowState::Funded => "funded",
            EscrowState::Delivered => "delivered",
            EscrowState::Disputed => "disputed",
            EscrowState::ReleasePending => "release_pending",
            EscrowState::Released => "released",
            EscrowState::RefundPending => "refund_pending",
            EscrowState::Refunded => "refunded",
            EscrowState::Cancelled => "cancelled",
            EscrowState::Expired => "expired",
        }
    }

    /// The state with this canonical name.
    pub fn parse(name: &str) -> Option<EscrowState> {
        EscrowState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Terminal states never change again and get no further ledger entry (ESC-22).
    pub const fn is_terminal(self) -> bool {
        matches!(self, EscrowState::Released | EscrowState::Refunded | EscrowState::Cancelled | EscrowState::Expired)
    }

    /// States in which the escrow account must be empty (LED-3): the money has moved on, or never came.
    pub const fn holds_nothing(self) -> bool {
        matches!(self, EscrowState::ReleasePending | EscrowState::RefundPending) || self.is_terminal()
    }

    /// States in which the whole amount is held.
    pub const fn fully_held(self) -> bool {
        matches!(self, EscrowState::Funded | EscrowState::Delivered | EscrowState::Disputed)
    }
}

impl std::fmt::Display for EscrowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to an escrow: the "event" column of SPEC §1's table, split where the table's target depends on a
/// guard (a payment that completes, or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscrowEvent {
    /// ESC-1.
    Create,
    /// ESC-2: the provider invoice is created.
    StartPayment,
    /// ESC-3: a verified payment brings the total to the amount.
    PaymentCompletes,
    /// ESC-4: a verified payment leaves the total short.
    PaymentPartial,
    /// ESC-5.
    SubmitProof,
    /// ESC-6: approval credits enough.
    ApproveProofCompletes,
    /// ESC-6: approval credits less than due.
    ApproveProofPartial,
    /// ESC-7.
    RejectProof,
    /// ESC-8.
    Cancel,
    /// ESC-9.
    Expire,
    /// ESC-10.
    MarkDelivered,
    /// ESC-11.
    ConfirmReceipt,
    /// ESC-12.
    AutoRelease,
    /// ESC-13.
    OpenDispute,
    /// ESC-14 with outcome release.
    ResolveRelease,
    /// ESC-14 with outcome refund.
    ResolveRefund,
    /// ESC-15.
    RefundVoluntarily,
    /// ESC-16.
    PayoutConfirmed,
    /// ESC-17.
    RefundConfirmed,
    /// ESC-18.
    PayoutFailed,
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The SPEC rule id.
    pub rule: &'static str,
    /// The event.
    pub event: EscrowEvent,
    /// States it may happen in (empty for creation).
    pub from: &'static [EscrowState],
    /// The state after; `None` means unchanged.
    pub to: Option<EscrowState>,
}

use EscrowState as S;

/// SPEC §1's table. Every change of an escrow's state goes through [`transition`], which reads this.
pub const TRANSITIONS: &[Transition] = &[
    Transition { rule: "ESC-1", event: EscrowEvent::Create, from: &[], to: Some(S::AwaitingPayment) },
    Transition { rule: "ESC-2", event: EscrowEvent::StartPayment, from: &[S::AwaitingPayment], to: None },
    Transition {
        rule: "ESC-3",
        event: EscrowEvent::PaymentCompletes,
        from: &[S::AwaitingPayment],
        to: Some(S::Funded),
    },
    Transition { rule: "ESC-4", event: EscrowEvent::PaymentPartial, from: &[S::AwaitingPayment], to: None },
    Transition {
        rule: "ESC-5",
        event: EscrowEvent::SubmitProof,
        from: &[S::AwaitingPayment],
        to: Some(S::PaymentReview),
    },
    Transition {
        rule: "ESC-6",
        event: EscrowEvent::ApproveProofCompletes,
        from: &[S::PaymentReview],
        to: Some(S::Funded),
    },
    Transition {
        rule: "ESC-6",
        event: EscrowEvent::ApproveProofPartial,
        from: &[S::PaymentReview],
        to: Some(S::AwaitingPayment),
    },
    Transition {
        rule: "ESC-7",
        event: EscrowEvent::RejectProof,
        from: &[S::PaymentReview],
        to: Some(S::AwaitingPayment),
    },
    Transition { rule: "ESC-8", event: EscrowEvent::Cancel, from: &[S::AwaitingPayment], to: Some(S::Cancelled) },
    Transition { rule: "ESC-9", event: EscrowEvent::Expire, from: &[S::AwaitingPayment], to: Some(S::Expired) },
    Transition { rule: "ESC-10", event: EscrowEvent::MarkDelivered, from: &[S::Funded], to: Some(S::Delivered) },
    Transition {
        rule: "ESC-11",
        event: EscrowEvent::ConfirmReceipt,
        from: &[S::Delivered],
        to: Some(S::ReleasePending),
    },
    Transition { rule: "ESC-12", event: EscrowEvent::AutoRelease, from: &[S::Delivered], to: Some(S::ReleasePending) },
    Transition {
        rule: "ESC-13",
        event: EscrowEvent::OpenDispute,
        from: &[S::Funded, S::Delivered],
        to: Some(S::Disputed),
    },
    Transition {
        rule: "ESC-14",
        event: EscrowEvent::ResolveRelease,
        from: &[S::Disputed],
        to: Some(S::ReleasePending),
    },
    Transition { rule: "ESC-14", event: EscrowEvent::ResolveRefund, from: &[S::Disputed], to: Some(S::RefundPending) },
    Transition {
        rule: "ESC-15",
        event: EscrowEvent::RefundVoluntarily,
        from: &[S::Funded, S::Delivered],
        to: Some(S::RefundPending),
    },
    Transition {
        rule: "ESC-16",
        event: EscrowEvent::PayoutConfirmed,
        from: &[S::ReleasePending],
        to: Some(S::Released),
    },
    Transition {
        rule: "ESC-17",
        event: EscrowEvent::RefundConfirmed,
        from: &[S::RefundPending],
        to: Some(S::Refunded),
    },
    Transition {
        rule: "ESC-18",
        event: EscrowEvent::PayoutFailed,
        from: &[S::ReleasePending, S::RefundPending],
        to: None,
    },
];

/// The table row for `event` from `state`; `None` means the event is refused there (ESC-19).
pub fn transition(state: EscrowState, event: EscrowEvent) -> Option<&'static Transition> {
    TRANSITIONS.iter().find(|t| t.event == event && t.from.contains(&state))
}

/// The state after `event` in `state`, or `None` if refused (ESC-19).
pub fn next_state(state: EscrowState, event: EscrowEvent) -> Option<EscrowState> {
    transition(state, event).map(|t| t.to.unwrap_or(state))
}

/// A buyer's manual payment proof (ESC-5, PRV-6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The transaction hash the buyer claims paid.
    pub tx_hash: String,
    /// The amount the buyer claims paid.
    pub amount: Money,
    /// The address the buyer claims to have paid to.
    pub destination: String,
}

/// The state of the payout or refund a release or refund asked the provider for (PRV-4, ESC-18, DRL-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutProgress {
    /// When the first request was made.
    pub requested_at: Timestamp,
    /// How many times it was requested (1 + retries).
    pub attempts: u32,
    /// How many failures the provider reported.
    pub failures: u32,
}

/// An escrow as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escrow {
    /// Its id.
    pub id: EscrowId,
    /// Who pays.
    pub buyer: UserId,
    /// Who is paid.
    pub seller: UserId,
    /// The price.
    pub amount: Money,
    /// Who moves the money.
    pub provider: Provider,
    /// Current state.
    pub state: EscrowState,
    /// Incremented on every change of state (ESC-21).
    pub version: u64,
    /// Cumulative amount credited to the escrow account (never more than `amount`).
    pub received: i128,
    /// When it was created.
    pub created_at: Timestamp,
    /// When the seller marked it delivered.
    pub delivered_at: Option<Timestamp>,
    /// The provider invoice's external id, bound server-side at start_payment (LED-10).
    pub invoice: Option<String>,
    /// How many invoices were created for it at the provider (PRV-1: at most one).
    pub invoices_created: u32,
    /// The proof under review, if any, with its flags.
    pub proof: Option<(Proof, Vec<crate::providers::ProofFlag>)>,
    /// The payout or refund under way, if any.
    pub payout: Option<PayoutProgress>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_but_creation_is_reachable_in_the_table() {
        for state in EscrowState::ALL {
            let reachable =
                TRANSITIONS.iter().any(|t| t.to == Some(state) || (t.to.is_none() && t.from.contains(&state)));
            assert!(reachable, "{state} is not reachable");
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for t in TRANSITIONS {
            assert!(t.from.iter().all(|s| !s.is_terminal()), "{} leaves a terminal state", t.rule);
        }
    }

    #[test]
    fn refusals_follow_the_table() {
        assert_eq!(next_state(S::Funded, EscrowEvent::ConfirmReceipt), None);
        assert_eq!(next_state(S::Delivered, EscrowEvent::ConfirmReceipt), Some(S::ReleasePending));
        assert_eq!(next_state(S::ReleasePending, EscrowEvent::PayoutFailed), Some(S::ReleasePending));
        assert_eq!(next_state(S::Released, EscrowEvent::RefundVoluntarily), None);
        assert_eq!(EscrowState::parse("release_pending"), Some(S::ReleasePending));
    }
}

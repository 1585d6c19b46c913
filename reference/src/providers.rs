//! Payment provider rules (SPEC §7) as pure decisions: how a payment is split between the escrow, the buyer's
//! credit and suspense; which manual proofs are flagged; which idempotency key a payout carries.

use serde::{Deserialize, Serialize};

use crate::ids::EscrowId;
use crate::money::Money;

/// Whether a provider is switched on, and whether it currently answers (PRV-2, PRV-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// Switched on by configuration. A disabled provider refuses new escrows, payments and webhooks (PRV-3).
    pub enabled: bool,
    /// Answering. An unavailable provider makes start_payment fail with 503 and change nothing (PRV-2).
    pub available: bool,
}

impl Default for ProviderStatus {
    fn default() -> Self {
        ProviderStatus { enabled: true, available: true }
    }
}

/// How one payment of `paid` is split (SPEC §2's first two posting rows, PRV-5, LED-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// Credited to the escrow account: at most what is still due.
    pub to_escrow: i128,
    /// Credited to the buyer's credit: the overpayment.
    pub to_buyer_credit: i128,
    /// Credited to suspense: the whole payment when it matches no open escrow of its currency.
    pub to_suspense: i128,
}

/// Splits a payment on an escrow of `amount` that has received `received` so far. A payment in another currency,
/// or on an escrow that is closed (`open == false`), goes to suspense whole and funds nothing (LED-10, PRV-5).
pub fn allocate_payment(amount: Money, received: i128, paid: Money, open: bool) -> Allocation {
    if !open || paid.currency != amount.currency {
        return Allocation { to_escrow: 0, to_buyer_credit: 0, to_suspense: paid.minor };
    }
    let due = (amount.minor - received).max(0);
    let to_escrow = paid.minor.min(due);
    Allocation { to_escrow, to_buyer_credit: paid.minor - to_escrow, to_suspense: 0 }
}

/// Why a manual payment proof needs a second admin (PRV-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofFlag {
    /// The transaction hash was used before, on any escrow.
    TxHashReused,
    /// The amount differs from what is due.
    AmountMismatch,
    /// The currency differs from the escrow's.
    CurrencyMismatch,
    /// The destination is not the platform's address.
    WrongDestination,
}

impl ProofFlag {
    /// The flag's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            ProofFlag::TxHashReused => "tx_hash_reused",
            ProofFlag::AmountMismatch => "amount_mismatch",
            ProofFlag::CurrencyMismatch => "currency_mismatch",
            ProofFlag::WrongDestination => "wrong_destination",
        }
    }
}

/// The flags of a proof claiming `claimed` was sent to `destination` in transaction `tx_hash`, for an escrow that
/// still has `due` to receive. `tx_hash_seen` says whether that hash was used before on any escrow.
pub fn proof_flags(
    claimed: Money,
    destination: &str,
    due: Money,
    tx_hash_seen: bool,
    platform_address: &str,
) -> Vec<ProofFlag> {
    let mut flags = Vec::new();
    if tx_hash_seen {
        flags.push(ProofFlag::TxHashReused);
    }
    if claimed.currency != due.currency {
        flags.push(ProofFlag::CurrencyMismatch);
    } else if claimed.minor != due.minor {
        flags.push(ProofFlag::AmountMismatch);
    }
    if destination != platform_address {
        flags.push(ProofFlag::WrongDestination);
    }
    flags
}

/// The idempotency key of the payout (or refund) of an escrow: derived from the escrow alone, so every retry
/// carries the same key and a provider can never be asked for two different payouts of one escrow (PRV-4).
pub fn payout_idempotency_key(escrow: EscrowId) -> String {
    format!("payout-{}", escrow.0)
}

/// The invoice external id the server gives the provider for an escrow: the server's own id, so the escrow a
/// payment funds is found server-side, never from provider metadata (LED-10, PRV-1).
pub fn invoice_external_id(escrow: EscrowId) -> String {
    format!("inv-{}", escrow.0)
}

/// Whether an escrow of `amount` is high-risk: at least `threshold_major` major units of its currency (SPEC §0).
pub fn is_high_risk(amount: Money, threshold_major: i128) -> bool {
    amount.minor >= threshold_major * amount.currency.minor_per_major()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    const USD: Currency = Currency::Usd;

    #[test]
    fn underpayment_stays_partial_and_overpayment_goes_to_credit() {
        let amount = Money::from_minor(10_000, USD);
        let a = allocate_payment(amount, 0, Money::from_minor(4_000, USD), true);
        assert_eq!((a.to_escrow, a.to_buyer_credit, a.to_suspense), (4_000, 0, 0));
        let a = allocate_payment(amount, 4_000, Money::from_minor(7_000, USD), true);
        assert_eq!((a.to_escrow, a.to_buyer_credit, a.to_suspense), (6_000, 1_000, 0));
        let a = allocate_payment(amount, 10_000, Money::from_minor(1, USD), true);
        assert_eq!((a.to_escrow, a.to_buyer_credit), (0, 1));
    }

    #[test]
    fn wrong_currency_and_closed_escrows_go_to_suspense() {
        let amount = Money::from_minor(10_000, USD);
        let a = allocate_payment(amount, 0, Money::from_minor(10_000, Currency::Usdt), true);
        assert_eq!((a.to_escrow, a.to_suspense), (0, 10_000));
        let a = allocate_payment(amount, 0, Money::from_minor(10_000, USD), false);
        assert_eq!((a.to_escrow, a.to_suspense), (0, 10_000));
    }

    #[test]
    fn proofs_are_flagged_for_each_discrepancy() {
        let due = Money::from_minor(500, USD);
        assert!(proof_flags(due, "platform", due, false, "platform").is_empty());
        assert_eq!(proof_flags(due, "platform", due, true, "platform"), vec![ProofFlag::TxHashReused]);
        assert_eq!(
            proof_flags(Money::from_minor(499, USD), "platform", due, false, "platform"),
            vec![ProofFlag::AmountMismatch]
        );
        assert_eq!(
            proof_flags(Money::from_minor(500, Currency::Btc), "elsewhere", due, false, "platform"),
            vec![ProofFlag::CurrencyMismatch, ProofFlag::WrongDestination]
        );
    }

    #[test]
    fn payout_key_depends_on_the_escrow_only() {
        assert_eq!(payout_idempotency_key(EscrowId(3)), payout_idempotency_key(EscrowId(3)));
        assert_ne!(payout_idempotency_key(EscrowId(3)), payout_idempotency_key(EscrowId(4)));
        assert!(is_high_risk(Money::from_minor(1_000_000, USD), 10_000));
        assert!(!is_high_risk(Money::from_minor(999_999, USD), 10_000));
    }
}

//! The funds ledger of SPEC §2: double entry, per currency, append-only.
//!
//! A posting's amount is signed: a debit is positive, a credit negative, so every entry sums to zero per currency
//! (LED-1). Liability and income accounts therefore carry negative raw sums; [`Ledger::balance`] returns the
//! natural balance (positive for money held) so that "no liability below zero" (LED-9) reads as it is written.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{EntryId, EscrowId, Timestamp, UserId};
use crate::money::{Currency, Money, platform_fee};

/// A payment provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// SHKeeper, self-hosted crypto payments.
    Shkeeper,
    /// Request Network API v2.
    RequestNetwork,
    /// Payment to the platform's own wallet, proven by the buyer and approved by an admin.
    ManualWallet,
}

impl Provider {
    /// Every provider, in a fixed order.
    pub const ALL: [Provider; 3] = [Provider::Shkeeper, Provider::RequestNetwork, Provider::ManualWallet];

    /// The provider's name in account names, profiles and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::Shkeeper => "shkeeper",
            Provider::RequestNetwork => "request_network",
            Provider::ManualWallet => "manual_wallet",
        }
    }
}

/// An account of the chart of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// Asset: funds at a provider.
    Provider(Provider),
    /// Liability: held for an escrow.
    Escrow(EscrowId),
    /// Liability: owed to the seller, payout under way.
    Payout(EscrowId),
    /// Liability: owed to the buyer, refund under way.
    Refund(EscrowId),
    /// Liability: a buyer's overpayments.
    BuyerCredit(UserId),
    /// Liability: money that matches no open escrow.
    Suspense,
    /// Income: platform fees.
    Fees,
}

/// Whether an account holds what the platform has (asset) or what it owes or earned (liability, income).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// Debit-normal.
    Asset,
    /// Credit-normal: money owed.
    Liability,
    /// Credit-normal: money earned.
    Income,
}

impl Account {
    /// The kind of the account.
    pub const fn kind(self) -> AccountKind {
        match self {
            Account::Provider(_) => AccountKind::Asset,
            Account::Fees => AccountKind::Income,
            Account::Escrow(_)
            | Account::Payout(_)
            | Account::Refund(_)
            | Account::BuyerCredit(_)
            | Account::Suspense => AccountKind::Liability,
        }
    }

    /// The escrow this account belongs to, if any.
    pub const fn escrow(self) -> Option<EscrowId> {
        match self {
            Account::Escrow(id) | Account::Payout(id) | Account::Refund(id) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Provider(p) => write!(f, "provider:{}", p.name()),
            Account::Escrow(id) => write!(f, "escrow:{}", id.0),
            Account::Payout(id) => write!(f, "payout:{}", id.0),
            Account::Refund(id) => write!(f, "refund:{}", id.0),
            Account::BuyerCredit(user) => write!(f, "buyer_credit:{}", user.0),
            Account::Suspense => f.write_str("suspense"),
            Account::Fees => f.write_str("fees"),
        }
    }
}

/// One line of an entry: a signed amount (debit positive, credit negative) on one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Posting {
    /// The account.
    pub account: Account,
    /// The currency.
    pub currency: Currency,
    /// Minor units; debit positive, credit negative.
    pub amount: i128,
}

impl Posting {
    /// A debit of `money` on `account`.
    pub const fn debit(account: Account, money: Money) -> Posting {
        Posting { account, currency: money.currency, amount: money.minor }
    }

    /// A credit of `money` on `account`.
    pub const fn credit(account: Account, money: Money) -> Posting {
        Posting { account, currency: money.currency, amount: -money.minor }
    }
}

/// What caused an entry. LED-6: each cause appears on at most one entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An external provider event, by its deduplication key (for SHKeeper, `external_id:txid`).
    ProviderEvent {
        /// The provider.
        provider: Provider,
        /// The provider's event key.
        event: String,
    },
    /// An action (a user's, an admin's or the system's), by its action id.
    Action(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::ProviderEvent { provider, event } => write!(f, "{}:{event}", provider.name()),
            Cause::Action(id) => write!(f, "action:{id}"),
        }
    }
}

/// The kinds of entry of SPEC §2's posting table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A payment on an open escrow: Dr provider; Cr escrow, Cr buyer credit for any excess.
    Payment,
    /// A payment that matches no open escrow of its currency: Dr provider; Cr suspense.
    Unmatched,
    /// A release with its fee: Dr escrow; Cr payout; Cr fees.
    Release,
    /// A refund of what was held: Dr escrow; Cr refund.
    Refund,
    /// The provider confirmed the seller's payout: Dr payout; Cr provider.
    PayoutConfirmed,
    /// The provider confirmed the buyer's refund: Dr refund; Cr provider.
    RefundConfirmed,
}

/// A journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's id, in append order.
    pub id: EntryId,
    /// What caused it.
    pub cause: Cause,
    /// The escrow it concerns, where there is one.
    pub escrow: Option<EscrowId>,
    /// When it was written (server time).
    pub time: Timestamp,
    /// Which row of the posting table it is.
    pub kind: EntryKind,
    /// The invoice (provider external id) a payment was received for, as the provider named it.
    pub invoice: Option<String>,
    /// Two or more postings.
    pub postings: Vec<Posting>,
}

/// The journal and its running balances. Entries are only ever appended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<Entry>,
    raw_balances: HashMap<(Account, Currency), i128>,
}

/// The postings of the release of an escrow of `amount` at `fee_bps`: Dr escrow A; Cr payout A−F; Cr fees F.
pub fn release_postings(escrow: EscrowId, amount: Money, fee_bps: crate::money::BasisPoints) -> Vec<Posting> {
    let fee = Money::from_minor(platform_fee(amount.minor, fee_bps), amount.currency);
    let payout = Money::from_minor(amount.minor - fee.minor, amount.currency);
    vec![
        Posting::debit(Account::Escrow(escrow), amount),
        Posting::credit(Account::Payout(escrow), payout),
        Posting::credit(Account::Fees, fee),
    ]
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// A ledger made of entries read elsewhere (a target's ledger), with balances recomputed.
    pub fn from_entries(entries: Vec<Entry>) -> Ledger {
        let mut ledger = Ledger::new();
        for entry in entries {
            ledger.push(entry);
        }
        ledger
    }

    /// Appends an entry as given. The caller (the world model) builds entries from the posting table; invariants
    /// check them, so this does not refuse anything: a wrong entry must be observable, not hidden.
    pub fn push(&mut self, entry: Entry) {
        for p in &entry.postings {
            *self.raw_balances.entry((p.account, p.currency)).or_insert(0) += p.amount;
        }
        self.entries.push(entry);
    }

    /// Appends a new entry, numbering it.
    pub fn append(
        &mut self,
        cause: Cause,
        escrow: Option<EscrowId>,
        time: Timestamp,
        kind: EntryKind,
        invoice: Option<String>,
        postings: Vec<Posting>,
    ) -> EntryId {
        let id = EntryId(self.entries.len() as u32);
        self.push(Entry { id, cause, escrow, time, kind, invoice, postings });
        id
    }

    /// Every entry, in append order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The raw signed sum of an account (debits minus credits).
    pub fn raw_balance(&self, account: Account, currency: Currency) -> i128 {
        self.raw_balances.get(&(account, currency)).copied().unwrap_or(0)
    }

    /// The natural balance: positive for an asset the platform has, or for money a liability account holds.
    pub fn balance(&self, account: Account, currency: Currency) -> i128 {
        let raw = self.raw_balance(account, currency);
        match account.kind() {
            AccountKind::Asset => raw,
            AccountKind::Liability | AccountKind::Income => -raw,
        }
    }

    /// Every (account, currency) with its raw balance, in a deterministic order.
    pub fn raw_balances(&self) -> Vec<((Account, Currency), i128)> {
        let mut all: Vec<_> = self.raw_balances.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_postings_follow_the_fee_rule() {
        let amount = Money::from_minor(12_550, Currency::Usd);
        let postings = release_postings(EscrowId(7), amount, 250);
        assert_eq!(
            postings[0],
            Posting { account: Account::Escrow(EscrowId(7)), currency: Currency::Usd, amount: 12_550 }
        );
        assert_eq!(postings[1].amount, -(12_550 - 313));
        assert_eq!(postings[2], Posting { account: Account::Fees, currency: Currency::Usd, amount: -313 });
        assert_eq!(postings.iter().map(|p| p.amount).sum::<i128>(), 0);
    }

    #[test]
    fn balances_are_natural_per_kind() {
        let mut ledger = Ledger::new();
        let m = Money::from_minor(500, Currency::Usdt);
        ledger.append(
            Cause::Action("a".into()),
            Some(EscrowId(1)),
            Timestamp(0),
            EntryKind::Payment,
            None,
            vec![
                Posting::debit(Account::Provider(Provider::Shkeeper), m),
                Posting::credit(Account::Escrow(EscrowId(1)), m),
            ],
        );
        assert_eq!(ledger.balance(Account::Provider(Provider::Shkeeper), Currency::Usdt), 500);
        assert_eq!(ledger.balance(Account::Escrow(EscrowId(1)), Currency::Usdt), 500);
        assert_eq!(ledger.raw_balance(Account::Escrow(EscrowId(1)), Currency::Usdt), -500);
        assert_eq!(Account::BuyerCredit(UserId(4)).to_string(), "buyer_credit:4");
    }
}

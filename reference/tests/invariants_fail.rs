//! Every named invariant of the registry has teeth: for each one, hand-made bad ledgers or histories that break it
//! and nothing else, and the same ledger without the defect, which passes.
//!
//! Each case states exactly which invariants must fire (the set reported by `check_all`, no more, no fewer), what
//! the messages must name (the entry, account or escrow at fault), and a control: the same scaffolding minus the
//! defect, on which `check_all` reports nothing. Where a defect necessarily breaks two rules, the case says which
//! and why. `every_invariant_has_an_isolated_failing_case` makes a new invariant without such a case fail the build.
//!
//! Unless a case says otherwise: escrows are in USD, cost 1000 minor units, use the default fee of 250 bps (fee 25,
//! payout 975) and are bought by `user-2`; payments arrive through SHKeeper.

use std::collections::BTreeSet;

use conform_reference::escrow::EscrowState::{self, *};
use conform_reference::ids::{EntryId, EscrowId, Timestamp, UserId};
use conform_reference::invariants::{EscrowFacts, History, Observation, REGISTRY, Violation, check_all};
use conform_reference::ledger::{
    Account, Cause, Entry,
    EntryKind::{self, *},
    Ledger, Posting, Provider, release_postings,
};
use conform_reference::money::{Currency, Money};

const USD: Currency = Currency::Usd;
const E7: EscrowId = EscrowId(7);
const E8: EscrowId = EscrowId(8);
const BUYER: UserId = UserId(2);
const FEE_BPS: u32 = 250;
const PROVIDER: Account = Account::Provider(Provider::Shkeeper);

fn usd(minor: i128) -> Money {
    Money::from_minor(minor, USD)
}

fn dr(account: Account, minor: i128) -> Posting {
    Posting::debit(account, usd(minor))
}

fn cr(account: Account, minor: i128) -> Posting {
    Posting::credit(account, usd(minor))
}

fn escrow(id: EscrowId) -> Account {
    Account::Escrow(id)
}

fn event(key: &str) -> Cause {
    Cause::ProviderEvent { provider: Provider::Shkeeper, event: key.to_owned() }
}

fn action(id: &str) -> Cause {
    Cause::Action(id.to_owned())
}

/// Entries in append order, numbered `entry-0`, `entry-1`, … Each builder method appends one entry with a cause of
/// its own (`evt-N` for provider events, `action-N` for actions) unless told otherwise.
#[derive(Clone, Default)]
struct Journal(Vec<Entry>);

impl Journal {
    fn new() -> Journal {
        Journal::default()
    }

    fn next(&self) -> usize {
        self.0.len()
    }

    /// Appends an entry of any shape.
    fn add(mut self, kind: EntryKind, escrow: Option<EscrowId>, cause: Cause, postings: Vec<Posting>) -> Journal {
        let n = u32::try_from(self.0.len()).expect("few entries");
        let time = Timestamp(1_700_000_000 + i64::from(n) * 60);
        self.0.push(Entry { id: EntryId(n), cause, escrow, time, kind, invoice: None, postings });
        self
    }

    /// A provider payment of `minor`, all of it credited to the escrow.
    fn paid(self, id: EscrowId, minor: i128) -> Journal {
        let cause = event(&format!("evt-{}", self.next()));
        self.add(Payment, Some(id), cause, vec![dr(PROVIDER, minor), cr(escrow(id), minor)])
    }

    /// A provider payment of `minor` on an escrow already paid in full: all of it to the buyer's credit.
    fn overpaid(self, id: EscrowId, minor: i128) -> Journal {
        let cause = event(&format!("evt-{}", self.next()));
        self.add(Payment, Some(id), cause, vec![dr(PROVIDER, minor), cr(Account::BuyerCredit(BUYER), minor)])
    }

    /// A payment that matches no escrow: to suspense, filed under no escrow.
    fn unmatched(self, minor: i128) -> Journal {
        let cause = event(&format!("evt-{}", self.next()));
        self.add(Unmatched, None, cause, vec![dr(PROVIDER, minor), cr(Account::Suspense, minor)])
    }

    /// The release of an escrow of `amount` at the default fee, exactly as SPEC §0 says.
    fn released(self, id: EscrowId, amount: i128) -> Journal {
        let cause = action(&format!("action-{}", self.next()));
        self.add(Release, Some(id), cause, release_postings(id, usd(amount), FEE_BPS))
    }

    /// The refund of what an escrow held.
    fn refunded(self, id: EscrowId, held: i128) -> Journal {
        let cause = action(&format!("action-{}", self.next()));
        self.add(Refund, Some(id), cause, vec![dr(escrow(id), held), cr(Account::Refund(id), held)])
    }

    /// The provider's confirmation of a seller's payout.
    fn payout_confirmed(self, id: EscrowId, payout: i128) -> Journal {
        let cause = event(&format!("evt-{}", self.next()));
        self.add(PayoutConfirmed, Some(id), cause, vec![dr(Account::Payout(id), payout), cr(PROVIDER, payout)])
    }

    /// Gives the last entry another cause.
    fn caused_by(mut self, cause: Cause) -> Journal {
        self.last().cause = cause;
        self
    }

    /// Names the invoice the last entry was received for.
    fn for_invoice(mut self, invoice: &str) -> Journal {
        self.last().invoice = Some(invoice.to_owned());
        self
    }

    /// Files the last entry under another escrow (or none).
    fn filed_under(mut self, escrow: Option<EscrowId>) -> Journal {
        self.last().escrow = escrow;
        self
    }

    /// Drops the entry at `index`, keeping the ids of the others (as a target that deleted a row would).
    fn without(mut self, index: usize) -> Journal {
        self.0.remove(index);
        self
    }

    fn last(&mut self) -> &mut Entry {
        self.0.last_mut().expect("an entry to change")
    }
}

/// An escrow's facts: USD, amount `minor`, version 1, the default fee, nothing reported received, no invoice.
fn facts(id: EscrowId, state: EscrowState, minor: i128) -> EscrowFacts {
    EscrowFacts { id, state, version: 1, amount: usd(minor), fee_bps: FEE_BPS, received: None, invoice: None }
}

type Balances = Vec<((Account, Currency), i128)>;

/// One observation: entries, reported balances (raw, debit positive) and escrows.
#[derive(Clone)]
struct Snapshot {
    entries: Vec<Entry>,
    balances: Balances,
    escrows: Vec<EscrowFacts>,
}

/// A snapshot whose balances are the ones the entries give, as an honest target reports them.
fn snap(journal: Journal, escrows: Vec<EscrowFacts>) -> Snapshot {
    let balances = Ledger::from_entries(journal.0.clone()).raw_balances();
    Snapshot { entries: journal.0, balances, escrows }
}

impl Snapshot {
    fn observation(&self) -> Observation<'_> {
        Observation { entries: &self.entries, balances: &self.balances, escrows: &self.escrows }
    }

    /// Reports the balances differently from what the entries give (LED-2 cases only).
    fn misreport(mut self, change: impl FnOnce(&mut Balances)) -> Snapshot {
        change(&mut self.balances);
        self
    }
}

fn set_balance(balances: &mut Balances, account: Account, raw: i128) {
    match balances.iter_mut().find(|((a, c), _)| *a == account && *c == USD) {
        Some((_, value)) => *value = raw,
        None => balances.push(((account, USD), raw)),
    }
}

/// What is checked: one observation, after an optional earlier one recorded in the history.
struct Scenario {
    earlier: Option<Snapshot>,
    now: Snapshot,
}

fn alone(now: Snapshot) -> Scenario {
    Scenario { earlier: None, now }
}

fn after(earlier: &Snapshot, now: Snapshot) -> Scenario {
    Scenario { earlier: Some(earlier.clone()), now }
}

impl Scenario {
    fn violations(&self) -> Vec<Violation> {
        let mut history = History::new();
        if let Some(earlier) = &self.earlier {
            history.record(&earlier.observation());
        }
        check_all(&self.now.observation(), &history)
    }
}

/// A defect and its control.
struct Case {
    /// Exactly the invariants that must fire on `bad`.
    fires: &'static [&'static str],
    /// Strings each of which some violation's message must contain: the entry, account or escrow at fault.
    names: &'static [&'static str],
    /// The ledger or history with the defect.
    bad: Scenario,
    /// The same without the defect: must pass with no violation at all.
    good: Scenario,
}

fn show(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("\n  {v}")).collect()
}

fn assert_case(name: &str, case: &Case) {
    let good = case.good.violations();
    assert!(good.is_empty(), "{name}: the control (the same ledger without the defect) must pass, got:{}", show(&good));

    let bad = case.bad.violations();
    let fired: BTreeSet<&str> = bad.iter().map(|v| v.invariant).collect();
    let expected: BTreeSet<&str> = case.fires.iter().copied().collect();
    assert_eq!(fired, expected, "{name}: wrong set of invariants fired:{}", show(&bad));
    for needle in case.names {
        assert!(
            bad.iter().any(|v| v.message.contains(needle)),
            "{name}: no violation message names {needle:?}:{}",
            show(&bad)
        );
    }
}

/// Declares each case once: a test of its own, and a row of `CASES` for the coverage test.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod each {
            $(
                #[test]
                fn $name() {
                    super::assert_case(stringify!($name), &super::$name());
                }
            )*
        }

        const CASES: &[(&str, fn() -> Case)] = &[$((stringify!($name), $name)),*];
    };
}

cases! {
    led1_entry_that_does_not_balance_offset_by_another,
    led1_entry_that_does_not_balance,
    led1_entry_with_a_single_posting,
    led2_reported_balances_disagree_with_entries,
    led2_reported_balances_do_not_sum_to_zero,
    led2_balance_missing_from_report,
    led3_escrow_account_holds_money_in_release_pending,
    led3_escrow_account_holds_more_than_its_amount,
    led3_escrow_reports_received_other_than_held,
    led4_double_release_with_escrow_back_at_zero,
    led4_double_refund,
    led4_release_and_refund_of_one_escrow,
    led5_fee_rounded_up,
    led5_release_without_fee,
    led6_duplicate_provider_event_booked_twice,
    led6_admin_action_booked_twice,
    led7_earlier_entry_changed,
    led7_last_entry_removed,
    led7_middle_entry_removed,
    led8_release_pending_without_release_entry,
    led8_release_pending_with_money_still_in_escrow,
    led8_funded_while_holding_less_than_amount,
    led8_awaiting_payment_though_fully_paid,
    led8_released_without_payout_confirmation,
    led9_buyer_credit_below_zero,
    led9_suspense_below_zero,
    led9_payout_confirmed_twice,
    led10_payment_in_wrong_currency_credits_escrow,
    led10_payment_for_another_escrows_invoice,
    led10_unmatched_entry_credits_escrow,
    esc21_version_goes_backwards,
    esc21_state_changes_without_new_version,
    esc22_terminal_escrow_changes_state,
    esc22_terminal_escrow_gets_new_entry,
}

#[test]
fn every_invariant_has_an_isolated_failing_case() {
    let cases: Vec<(&str, Case)> = CASES.iter().map(|(name, make)| (*name, make())).collect();
    for (name, case) in &cases {
        for id in case.fires {
            assert!(REGISTRY.iter().any(|i| i.id == *id), "{name} expects {id}, which is not in the registry");
        }
    }
    for invariant in REGISTRY {
        let isolated = cases.iter().any(|(_, case)| case.fires == [invariant.id]);
        assert!(isolated, "{} has no case in which it alone fires; add one to tests/invariants_fail.rs", invariant.id);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-1: every entry balances to zero per currency.

/// Two entries that do not balance, by +10 and −10: the trial balance still sums to zero, so only LED-1 sees them.
fn led1_entry_that_does_not_balance_offset_by_another() -> Case {
    let escrows = vec![EscrowFacts { received: Some(1000), ..facts(E7, Funded, 1000) }];
    let bad = Journal::new()
        .add(Payment, Some(E7), event("evt-0"), vec![dr(PROVIDER, 1010), cr(escrow(E7), 1000)])
        .add(Unmatched, None, event("evt-1"), vec![dr(PROVIDER, 90), cr(Account::Suspense, 100)]);
    let good = Journal::new().paid(E7, 1000).unmatched(100);
    Case {
        fires: &["LED-1"],
        names: &["entry-0", "entry-1"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

/// One entry that does not balance. Not isolable: the balances of an honest report are the sums of the postings,
/// so an entry off by 10 leaves the whole ledger off by 10, and LED-2 ("all balances sum to zero") fires too.
fn led1_entry_that_does_not_balance() -> Case {
    let escrows = vec![facts(E7, Funded, 1000)];
    let bad = Journal::new().add(Payment, Some(E7), event("evt-0"), vec![dr(PROVIDER, 1010), cr(escrow(E7), 1000)]);
    let good = Journal::new().paid(E7, 1000);
    Case {
        fires: &["LED-1", "LED-2"],
        names: &["entry-0", "does not balance"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

/// An entry of one (zero) posting: it balances, but an entry needs two or more.
fn led1_entry_with_a_single_posting() -> Case {
    let escrows = vec![facts(E7, Funded, 1000)];
    let good = Journal::new().paid(E7, 1000);
    let bad = good.clone().add(Unmatched, None, event("evt-1"), vec![cr(Account::Suspense, 0)]);
    Case {
        fires: &["LED-1"],
        names: &["entry-1", "1 posting"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-2: all balances sum to zero per currency and agree with the entries.

/// Reported balances that still sum to zero, but are not what the entries say (400 was paid, 300 reported).
fn led2_reported_balances_disagree_with_entries() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let journal = Journal::new().paid(E7, 400);
    let bad = snap(journal.clone(), escrows.clone()).misreport(|b| {
        set_balance(b, escrow(E7), -300);
        set_balance(b, PROVIDER, 300);
    });
    Case {
        fires: &["LED-2"],
        names: &["escrow:7", "provider:shkeeper"],
        bad: alone(bad),
        good: alone(snap(journal, escrows)),
    }
}

/// A balance for an account no entry touches: the report no longer sums to zero.
fn led2_reported_balances_do_not_sum_to_zero() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let journal = Journal::new().paid(E7, 400);
    let bad = snap(journal.clone(), escrows.clone()).misreport(|b| set_balance(b, Account::BuyerCredit(BUYER), -50));
    Case {
        fires: &["LED-2"],
        names: &["buyer_credit:2", "sum to -50"],
        bad: alone(bad),
        good: alone(snap(journal, escrows)),
    }
}

/// An account with postings left out of the report.
fn led2_balance_missing_from_report() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let journal = Journal::new().paid(E7, 400);
    let bad = snap(journal.clone(), escrows.clone()).misreport(|b| b.retain(|((a, _), _)| *a != escrow(E7)));
    Case {
        fires: &["LED-2"],
        names: &["no balance reported for escrow:7"],
        bad: alone(bad),
        good: alone(snap(journal, escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-3: an escrow account holds what it received while open, and nothing after.

/// A late payment credited to the escrow account after the release emptied it: it must go to the buyer's credit.
fn led3_escrow_account_holds_money_in_release_pending() -> Case {
    let escrows = vec![facts(E7, ReleasePending, 1000)];
    let base = Journal::new().paid(E7, 1000).released(E7, 1000);
    Case {
        fires: &["LED-3"],
        names: &["escrow:7", "release_pending"],
        bad: alone(snap(base.clone().paid(E7, 200), escrows.clone())),
        good: alone(snap(base.overpaid(E7, 200), escrows)),
    }
}

/// An overpayment credited whole to the escrow. Not isolable: LED-8 requires a funded escrow to hold exactly its
/// amount (and an unfunded one to hold less), so an escrow holding more than its amount breaks LED-8 in every open
/// state, and held-nothing states are LED-3's other branch.
fn led3_escrow_account_holds_more_than_its_amount() -> Case {
    let escrows = vec![facts(E7, Funded, 1000)];
    let bad = Journal::new().paid(E7, 1200);
    let good = Journal::new().add(
        Payment,
        Some(E7),
        event("evt-0"),
        vec![dr(PROVIDER, 1200), cr(escrow(E7), 1000), cr(Account::BuyerCredit(BUYER), 200)],
    );
    Case {
        fires: &["LED-3", "LED-8"],
        names: &["escrow:7", "1200", "outside 0..=1000"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

/// The escrow says it received 300; its account holds the 400 that was paid.
fn led3_escrow_reports_received_other_than_held() -> Case {
    let journal = Journal::new().paid(E7, 400);
    let bad = vec![EscrowFacts { received: Some(300), ..facts(E7, AwaitingPayment, 1000) }];
    let good = vec![EscrowFacts { received: Some(400), ..facts(E7, AwaitingPayment, 1000) }];
    Case {
        fires: &["LED-3"],
        names: &["escrow:7", "reports 300 received"],
        bad: alone(snap(journal.clone(), bad)),
        good: alone(snap(journal, good)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-4: at most one release and one refund per escrow, never both.

/// Payment, release, a second payment, a second release: the escrow account is back at zero, so only the count of
/// release entries shows the double release. The control parks the second payment as buyer credit.
fn led4_double_release_with_escrow_back_at_zero() -> Case {
    let escrows = vec![facts(E7, ReleasePending, 1000)];
    let base = Journal::new().paid(E7, 1000).released(E7, 1000);
    Case {
        fires: &["LED-4"],
        names: &["escrow-7", "2 release entries", "entry-1", "entry-3"],
        bad: alone(snap(base.clone().paid(E7, 1000).released(E7, 1000), escrows.clone())),
        good: alone(snap(base.overpaid(E7, 1000), escrows)),
    }
}

/// The same with refunds.
fn led4_double_refund() -> Case {
    let escrows = vec![facts(E7, RefundPending, 1000)];
    let base = Journal::new().paid(E7, 1000).refunded(E7, 1000);
    Case {
        fires: &["LED-4"],
        names: &["escrow-7", "2 refund entries", "entry-1", "entry-3"],
        bad: alone(snap(base.clone().paid(E7, 1000).refunded(E7, 1000), escrows.clone())),
        good: alone(snap(base.overpaid(E7, 1000), escrows)),
    }
}

/// A release and a refund of one escrow. Not isolable: LED-8 ties a release entry to release_pending/released and
/// a refund entry to refund_pending/refunded, so whatever state the escrow reports, one of the two entries
/// contradicts it.
fn led4_release_and_refund_of_one_escrow() -> Case {
    let escrows = vec![facts(E7, ReleasePending, 1000)];
    let base = Journal::new().paid(E7, 1000).released(E7, 1000);
    Case {
        fires: &["LED-4", "LED-8"],
        names: &["escrow-7", "both a release (entry-1) and a refund (entry-3)"],
        bad: alone(snap(base.clone().paid(E7, 1000).refunded(E7, 1000), escrows.clone())),
        good: alone(snap(base.overpaid(E7, 1000), escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-5: fee and payout are exact; payout + fee = amount.

/// 2.5 % of 12550 is 313.75: the fee is 313, never 314.
fn led5_fee_rounded_up() -> Case {
    let escrows = vec![facts(E7, ReleasePending, 12_550)];
    let base = Journal::new().paid(E7, 12_550);
    let bad = base.clone().add(
        Release,
        Some(E7),
        action("release"),
        vec![dr(escrow(E7), 12_550), cr(Account::Payout(E7), 12_236), cr(Account::Fees, 314)],
    );
    let good = base.released(E7, 12_550).caused_by(action("release"));
    Case {
        fires: &["LED-5"],
        names: &["entry-1", "escrow-7", "fee 314", "fee 313"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

/// A release that pays the seller everything and takes no fee.
fn led5_release_without_fee() -> Case {
    let escrows = vec![facts(E7, ReleasePending, 1000)];
    let base = Journal::new().paid(E7, 1000);
    let bad = base.clone().add(
        Release,
        Some(E7),
        action("release"),
        vec![dr(escrow(E7), 1000), cr(Account::Payout(E7), 1000)],
    );
    let good = base.released(E7, 1000).caused_by(action("release"));
    Case {
        fires: &["LED-5"],
        names: &["entry-1", "pays out 1000 with fee 0"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-6: each external event and action causes at most one entry.

/// A provider's webhook delivered twice and booked twice. The target's own count of what was received agrees with
/// its ledger, so only the repeated cause shows it.
fn led6_duplicate_provider_event_booked_twice() -> Case {
    let once = Journal::new().paid(E7, 400).caused_by(event("inv-7:tx-1"));
    let twice = once.clone().paid(E7, 400).caused_by(event("inv-7:tx-1"));
    let received = |minor| vec![EscrowFacts { received: Some(minor), ..facts(E7, AwaitingPayment, 1000) }];
    Case {
        fires: &["LED-6"],
        names: &["entry-1", "shkeeper:inv-7:tx-1", "of entry-0"],
        bad: alone(snap(twice, received(800))),
        good: alone(snap(once, received(400))),
    }
}

/// An admin's proof approval (one action id) credited twice.
fn led6_admin_action_booked_twice() -> Case {
    let wallet = Account::Provider(Provider::ManualWallet);
    let approve = |j: Journal| {
        j.add(Payment, Some(E7), action("approve-proof:7:0xabc"), vec![dr(wallet, 300), cr(escrow(E7), 300)])
    };
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    Case {
        fires: &["LED-6"],
        names: &["entry-1", "action:approve-proof:7:0xabc"],
        bad: alone(snap(approve(approve(Journal::new())), escrows.clone())),
        good: alone(snap(approve(Journal::new()), escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-7: the ledger is append-only (checked against the history of an earlier observation).

/// Between two reads, the first payment grew from 400 to 500 (postings still balanced, balances recomputed).
fn led7_earlier_entry_changed() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let earlier = snap(Journal::new().paid(E7, 400), escrows.clone());
    let changed = Journal::new().paid(E7, 500).paid(E7, 100);
    let extended = Journal::new().paid(E7, 400).paid(E7, 100);
    Case {
        fires: &["LED-7"],
        names: &["entry-0 changed"],
        bad: after(&earlier, snap(changed, escrows.clone())),
        good: after(&earlier, snap(extended, escrows)),
    }
}

/// Between two reads, the last entry disappeared.
fn led7_last_entry_removed() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let journal = Journal::new().paid(E7, 300).paid(E7, 200);
    let earlier = snap(journal.clone(), escrows.clone());
    Case {
        fires: &["LED-7"],
        names: &["entry-1", "shrank from 2 to 1"],
        bad: after(&earlier, snap(journal.clone().without(1), escrows.clone())),
        good: after(&earlier, snap(journal, escrows)),
    }
}

/// Between two reads, an entry in the middle disappeared; the one after it moved up a place.
fn led7_middle_entry_removed() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let journal = Journal::new().paid(E7, 300).paid(E7, 200).paid(E7, 100);
    let earlier = snap(journal.clone(), escrows.clone());
    Case {
        fires: &["LED-7"],
        names: &["entry-1 was removed", "losing entry-1"],
        bad: after(&earlier, snap(journal.clone().without(1), escrows.clone())),
        good: after(&earlier, snap(journal, escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-8: state and money move together.

/// An unpaid escrow reported in release_pending: the state moved, no release entry was written (and, nothing having
/// been paid, the escrow account is rightly empty, so LED-3 has nothing to say).
fn led8_release_pending_without_release_entry() -> Case {
    let other = Journal::new().paid(E8, 1000);
    Case {
        fires: &["LED-8"],
        names: &["escrow-7 is release_pending but lacks a release entry"],
        bad: alone(snap(other.clone(), vec![facts(E7, ReleasePending, 1000), facts(E8, Funded, 1000)])),
        good: alone(snap(other, vec![facts(E7, AwaitingPayment, 1000), facts(E8, Funded, 1000)])),
    }
}

/// A funded escrow moved to release_pending but its release entry was lost. Not isolable: the money the release
/// should have moved is still in the escrow account, where LED-3 requires 0 in release_pending.
fn led8_release_pending_with_money_still_in_escrow() -> Case {
    let paid = Journal::new().paid(E7, 1000);
    Case {
        fires: &["LED-3", "LED-8"],
        names: &["escrow-7 is release_pending but lacks a release entry", "escrow:7 holds 1000"],
        bad: alone(snap(paid.clone(), vec![facts(E7, ReleasePending, 1000)])),
        good: alone(snap(paid.released(E7, 1000), vec![facts(E7, ReleasePending, 1000)])),
    }
}

/// Funded after a partial payment of 600.
fn led8_funded_while_holding_less_than_amount() -> Case {
    let paid = Journal::new().paid(E7, 600);
    Case {
        fires: &["LED-8"],
        names: &["escrow-7 is funded but holds 600 of 1000"],
        bad: alone(snap(paid.clone(), vec![facts(E7, Funded, 1000)])),
        good: alone(snap(paid, vec![facts(E7, AwaitingPayment, 1000)])),
    }
}

/// Paid in full but still awaiting payment: the money moved, the state did not.
fn led8_awaiting_payment_though_fully_paid() -> Case {
    let paid = Journal::new().paid(E7, 1000);
    Case {
        fires: &["LED-8"],
        names: &["escrow-7 holds its whole amount but is still awaiting_payment"],
        bad: alone(snap(paid.clone(), vec![facts(E7, AwaitingPayment, 1000)])),
        good: alone(snap(paid, vec![facts(E7, Funded, 1000)])),
    }
}

/// Released with no payout confirmation entry.
fn led8_released_without_payout_confirmation() -> Case {
    let base = Journal::new().paid(E7, 1000).released(E7, 1000);
    let escrows = vec![facts(E7, Released, 1000)];
    Case {
        fires: &["LED-8"],
        names: &["escrow-7 is released but lacks a payout confirmation entry"],
        bad: alone(snap(base.clone(), escrows.clone())),
        good: alone(snap(base.payout_confirmed(E7, 975), escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-9: no liability account below zero.

/// The buyer overpaid escrow 7 by 200, then escrow 8 (300) was funded from 300 of buyer credit.
fn led9_buyer_credit_below_zero() -> Case {
    let credit = Account::BuyerCredit(BUYER);
    let escrows = vec![facts(E7, Funded, 1000), facts(E8, Funded, 300)];
    let base = Journal::new().add(
        Payment,
        Some(E7),
        event("evt-0"),
        vec![dr(PROVIDER, 1200), cr(escrow(E7), 1000), cr(credit, 200)],
    );
    let bad = base.clone().add(Payment, Some(E8), event("evt-1"), vec![dr(credit, 300), cr(escrow(E8), 300)]);
    let good =
        base.add(Payment, Some(E8), event("evt-1"), vec![dr(credit, 200), dr(PROVIDER, 100), cr(escrow(E8), 300)]);
    Case {
        fires: &["LED-9"],
        names: &["buyer_credit:2 is at -100"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

/// 500 went to suspense; review returned 700 of it.
fn led9_suspense_below_zero() -> Case {
    let base = Journal::new().unmatched(500);
    let give_back = |j: Journal, minor| {
        j.add(Unmatched, None, action("review-1"), vec![dr(Account::Suspense, minor), cr(PROVIDER, minor)])
    };
    Case {
        fires: &["LED-9"],
        names: &["suspense is at -200"],
        bad: alone(snap(give_back(base.clone(), 700), vec![])),
        good: alone(snap(give_back(base, 500), vec![])),
    }
}

/// The seller's payout confirmed under two provider event ids: LED-6 cannot see it (two causes), but the payout
/// account is drained twice.
fn led9_payout_confirmed_twice() -> Case {
    let escrows = vec![facts(E7, Released, 1000)];
    let base = Journal::new().paid(E7, 1000).released(E7, 1000).payout_confirmed(E7, 975);
    Case {
        fires: &["LED-9"],
        names: &["payout:7 is at -975"],
        bad: alone(snap(base.clone().payout_confirmed(E7, 975), escrows.clone())),
        good: alone(snap(base, escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LED-10: funds follow the server's records, not metadata.

/// 1000 USDT paid on a USD escrow credited to the escrow; the control sends it to suspense for review.
fn led10_payment_in_wrong_currency_credits_escrow() -> Case {
    let usdt = Money::from_minor(1000, Currency::Usdt);
    let escrows = vec![EscrowFacts { invoice: Some("inv-7".into()), ..facts(E7, AwaitingPayment, 1000) }];
    let bad = Journal::new()
        .add(Payment, Some(E7), event("evt-0"), vec![Posting::debit(PROVIDER, usdt), Posting::credit(escrow(E7), usdt)])
        .for_invoice("inv-7");
    let good = Journal::new()
        .add(
            Unmatched,
            None,
            event("evt-0"),
            vec![Posting::debit(PROVIDER, usdt), Posting::credit(Account::Suspense, usdt)],
        )
        .for_invoice("inv-7");
    Case {
        fires: &["LED-10"],
        names: &["entry-0", "escrow-7 in USDT", "suspense"],
        bad: alone(snap(bad, escrows.clone())),
        good: alone(snap(good, escrows)),
    }
}

/// A payment for invoice inv-8 (bound to escrow 8) credited to escrow 7, as the provider's metadata claimed.
fn led10_payment_for_another_escrows_invoice() -> Case {
    let escrows = vec![
        EscrowFacts { invoice: Some("inv-7".into()), ..facts(E7, AwaitingPayment, 1000) },
        EscrowFacts { invoice: Some("inv-8".into()), ..facts(E8, AwaitingPayment, 1000) },
    ];
    Case {
        fires: &["LED-10"],
        names: &["entry-0 credits escrow-7 for invoice \"inv-8\"", "bound to invoice \"inv-7\""],
        bad: alone(snap(Journal::new().paid(E7, 400).for_invoice("inv-8"), escrows.clone())),
        good: alone(snap(Journal::new().paid(E8, 400).for_invoice("inv-8"), escrows)),
    }
}

/// An entry booked as unmatched (suspense money) that credits an escrow anyway.
fn led10_unmatched_entry_credits_escrow() -> Case {
    let escrows = vec![facts(E7, AwaitingPayment, 1000)];
    let payment =
        |kind| Journal::new().add(kind, Some(E7), event("evt-0"), vec![dr(PROVIDER, 400), cr(escrow(E7), 400)]);
    Case {
        fires: &["LED-10"],
        names: &["entry-0 (Unmatched) credits escrow:7"],
        bad: alone(snap(payment(Unmatched), escrows.clone())),
        good: alone(snap(payment(Payment), escrows)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ESC-21: every change of state increments the version (checked against an earlier observation).

fn funded_at(version: u64) -> Vec<EscrowFacts> {
    vec![EscrowFacts { version, ..facts(E7, Funded, 1000) }]
}

/// Read at version 3, then at version 2.
fn esc21_version_goes_backwards() -> Case {
    let paid = Journal::new().paid(E7, 1000);
    let earlier = snap(paid.clone(), funded_at(3));
    Case {
        fires: &["ESC-21"],
        names: &["escrow-7 went from version 3 back to 2"],
        bad: after(&earlier, snap(paid.clone(), funded_at(2))),
        good: after(&earlier, snap(paid, funded_at(3))),
    }
}

/// Funded at version 3, then delivered still at version 3.
fn esc21_state_changes_without_new_version() -> Case {
    let paid = Journal::new().paid(E7, 1000);
    let earlier = snap(paid.clone(), funded_at(3));
    let delivered = |version| vec![EscrowFacts { version, ..facts(E7, Delivered, 1000) }];
    Case {
        fires: &["ESC-21"],
        names: &["escrow-7 changed from funded to delivered without a new version (3)"],
        bad: after(&earlier, snap(paid.clone(), delivered(3))),
        good: after(&earlier, snap(paid, delivered(4))),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ESC-22: terminal states never change and get no entry (checked against an earlier observation).

/// Cancelled (unpaid), then awaiting payment again, with a new version so ESC-21 has nothing to say.
fn esc22_terminal_escrow_changes_state() -> Case {
    let at = |state, version| vec![EscrowFacts { version, ..facts(E7, state, 1000) }];
    let earlier = snap(Journal::new(), at(Cancelled, 2));
    Case {
        fires: &["ESC-22"],
        names: &["escrow-7 left terminal state cancelled for awaiting_payment"],
        bad: after(&earlier, snap(Journal::new(), at(AwaitingPayment, 3))),
        good: after(&earlier, snap(Journal::new(), at(Cancelled, 2))),
    }
}

/// A late payment on a released escrow, rightly sent to suspense but filed under the escrow: a terminal escrow got
/// another entry. The control files it under no escrow, as SPEC §2 wants suspense money.
fn esc22_terminal_escrow_gets_new_entry() -> Case {
    let escrows = vec![EscrowFacts { version: 5, ..facts(E7, Released, 1000) }];
    let closed = Journal::new().paid(E7, 1000).released(E7, 1000).payout_confirmed(E7, 975);
    let earlier = snap(closed.clone(), escrows.clone());
    Case {
        fires: &["ESC-22"],
        names: &["entry-3 was written for escrow-7 after it became released"],
        bad: after(&earlier, snap(closed.clone().unmatched(300).filed_under(Some(E7)), escrows.clone())),
        good: after(&earlier, snap(closed.unmatched(300), escrows)),
    }
}

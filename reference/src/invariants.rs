//! The named invariants of SPEC §2 (LED-1…LED-10) and the history rules ESC-21 and ESC-22, in one registry.
//!
//! Every suite checks the same [`REGISTRY`] after every step: property tests on the model, the oracle on a
//! target's ledger, drills. An invariant sees an [`Observation`] (entries, reported balances, the escrows' facts)
//! and the [`History`] of earlier observations, so it works as well on a ledger read from a target as on the
//! model's own. Each violation names the invariant, and the entry, account or escrow at fault.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::escrow::EscrowState;
use crate::ids::{EntryId, EscrowId};
use crate::ledger::{Account, AccountKind, Entry, EntryKind, Posting};
use crate::money::{BasisPoints, Currency, Money, platform_fee};

/// What an invariant needs to know of one escrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowFacts {
    /// The escrow.
    pub id: EscrowId,
    /// Its state.
    pub state: EscrowState,
    /// Its version.
    pub version: u64,
    /// Its price.
    pub amount: Money,
    /// The fee rate its release must use.
    pub fee_bps: BasisPoints,
    /// What it has received so far, when the target reports it.
    pub received: Option<i128>,
    /// The invoice bound to it server-side, when known.
    pub invoice: Option<String>,
}

/// One look at a ledger and the escrows it concerns.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Every entry, in append order.
    pub entries: &'a [Entry],
    /// Balances as reported (raw: debit positive), which must agree with the entries.
    pub balances: &'a [((Account, Currency), i128)],
    /// The escrows.
    pub escrows: &'a [EscrowFacts],
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The invariant's rule id, e.g. `LED-4`.
    pub invariant: &'static str,
    /// What is wrong, naming the entry, account or escrow.
    pub message: String,
    /// The escrow concerned, if one is.
    pub escrow: Option<EscrowId>,
    /// The entry concerned, if one is.
    pub entry: Option<EntryId>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.message)
    }
}

/// What earlier observations showed: enough to check append-only history (LED-7), versions (ESC-21) and terminal
/// states (ESC-22) without keeping every earlier ledger.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The id and digest of every entry seen, in append order: the id names an entry that later goes missing.
    entry_digests: Vec<(EntryId, u64)>,
    escrows: BTreeMap<EscrowId, SeenEscrow>,
}

#[derive(Debug, Clone, Copy)]
struct SeenEscrow {
    state: EscrowState,
    version: u64,
    /// How many entries the ledger had when the escrow was first seen terminal.
    entries_when_terminal: Option<usize>,
}

fn digest(entry: &Entry) -> u64 {
    // SipHash with fixed keys: the same entry gives the same digest in every run of one build.
    let mut hasher = DefaultHasher::new();
    entry.hash(&mut hasher);
    hasher.finish()
}

impl History {
    /// No earlier observation.
    pub fn new() -> History {
        History::default()
    }

    /// Remembers an observation as the new "earlier".
    pub fn record(&mut self, obs: &Observation<'_>) {
        for entry in &obs.entries[self.entry_digests.len().min(obs.entries.len())..] {
            self.entry_digests.push((entry.id, digest(entry)));
        }
        self.entry_digests.truncate(obs.entries.len());
        for facts in obs.escrows {
            let seen = self.escrows.entry(facts.id).or_insert(SeenEscrow {
                state: facts.state,
                version: facts.version,
                entries_when_terminal: None,
            });
            seen.state = facts.state;
            seen.version = facts.version;
            if facts.state.is_terminal() && seen.entries_when_terminal.is_none() {
                seen.entries_when_terminal = Some(obs.entries.len());
            }
        }
    }
}

/// A named invariant.
#[derive(Clone, Copy)]
pub struct Invariant {
    /// Its rule id.
    pub id: &'static str,
    /// What it says.
    pub title: &'static str,
    check: fn(&Observation<'_>, &History, &mut Vec<Violation>),
}

impl fmt::Debug for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.title)
    }
}

impl Invariant {
    /// Checks this invariant alone.
    pub fn check(&self, obs: &Observation<'_>, history: &History) -> Vec<Violation> {
        let mut out = Vec::new();
        (self.check)(obs, history, &mut out);
        out
    }
}

/// Every invariant, in rule order.
pub const REGISTRY: &[Invariant] = &[
    Invariant { id: "LED-1", title: "every entry balances to zero per currency", check: led1_entries_balance },
    Invariant {
        id: "LED-2",
        title: "all balances sum to zero per currency and agree with the entries",
        check: led2_trial_balance,
    },
    Invariant {
        id: "LED-3",
        title: "an escrow account holds what it received while open, and nothing after",
        check: led3_escrow_holds,
    },
    Invariant {
        id: "LED-4",
        title: "at most one release and one refund per escrow, never both",
        check: led4_single_outcome,
    },
    Invariant { id: "LED-5", title: "fee and payout are exact; payout + fee = amount", check: led5_fee_exact },
    Invariant {
        id: "LED-6",
        title: "each external event and action causes at most one entry",
        check: led6_unique_cause,
    },
    Invariant { id: "LED-7", title: "the ledger is append-only", check: led7_append_only },
    Invariant { id: "LED-8", title: "state and money move together", check: led8_state_matches_money },
    Invariant { id: "LED-9", title: "no liability account below zero", check: led9_no_negative_liability },
    Invariant { id: "LED-10", title: "funds follow the server's records, not metadata", check: led10_server_records },
    Invariant { id: "ESC-21", title: "every change of state increments the version", check: esc21_versions },
    Invariant { id: "ESC-22", title: "terminal states never change and get no entry", check: esc22_terminal_final },
];

/// Looks an invariant up by rule id.
pub fn by_id(id: &str) -> Option<&'static Invariant> {
    REGISTRY.iter().find(|i| i.id == id)
}

/// Checks every invariant.
pub fn check_all(obs: &Observation<'_>, history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    for invariant in REGISTRY {
        (invariant.check)(obs, history, &mut out);
    }
    out
}

/// Checks every invariant after every step, remembering each observation for the next.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    history: History,
}

impl Checker {
    /// A checker with no history.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Checks an observation against the registry and the history, then records it.
    pub fn step(&mut self, obs: &Observation<'_>) -> Vec<Violation> {
        let violations = check_all(obs, &self.history);
        self.history.record(obs);
        violations
    }
}

fn violation(
    out: &mut Vec<Violation>,
    invariant: &'static str,
    escrow: Option<EscrowId>,
    entry: Option<EntryId>,
    message: String,
) {
    out.push(Violation { invariant, message, escrow, entry });
}

fn sums_per_currency<'p>(postings: impl Iterator<Item = &'p Posting>) -> BTreeMap<Currency, i128> {
    let mut sums = BTreeMap::new();
    for p in postings {
        *sums.entry(p.currency).or_insert(0) += p.amount;
    }
    sums
}

fn led1_entries_balance(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    for e in obs.entries {
        if e.postings.len() < 2 {
            violation(
                out,
                "LED-1",
                e.escrow,
                Some(e.id),
                format!("{} has {} posting(s); an entry needs two or more", e.id, e.postings.len()),
            );
        }
        for (currency, sum) in sums_per_currency(e.postings.iter()) {
            if sum != 0 {
                violation(
                    out,
                    "LED-1",
                    e.escrow,
                    Some(e.id),
                    format!("{} does not balance in {currency}: postings sum to {sum} minor units", e.id),
                );
            }
        }
    }
}

fn led2_trial_balance(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    let mut totals: BTreeMap<Currency, i128> = BTreeMap::new();
    for ((_, currency), raw) in obs.balances {
        *totals.entry(*currency).or_insert(0) += raw;
    }
    for (currency, total) in totals {
        if total != 0 {
            violation(out, "LED-2", None, None, format!("balances in {currency} sum to {total} minor units, not zero"));
        }
    }
    let mut from_entries: HashMap<(Account, Currency), i128> = HashMap::new();
    for p in obs.entries.iter().flat_map(|e| &e.postings) {
        *from_entries.entry((p.account, p.currency)).or_insert(0) += p.amount;
    }
    for ((account, currency), raw) in obs.balances {
        let expected = from_entries.remove(&(*account, *currency)).unwrap_or(0);
        if expected != *raw {
            violation(
                out,
                "LED-2",
                account.escrow(),
                None,
                format!("balance of {account} in {currency} is {raw} but its entries sum to {expected}"),
            );
        }
    }
    let mut missing: Vec<_> = from_entries.into_iter().filter(|(_, v)| *v != 0).collect();
    missing.sort();
    for ((account, currency), expected) in missing {
        violation(
            out,
            "LED-2",
            account.escrow(),
            None,
            format!("no balance reported for {account} in {currency}, whose entries sum to {expected}"),
        );
    }
}

/// The natural balance of an escrow's account from the entries.
fn escrow_balance(entries: &[Entry], escrow: EscrowId, currency: Currency) -> i128 {
    -entries
        .iter()
        .flat_map(|e| &e.postings)
        .filter(|p| p.account == Account::Escrow(escrow) && p.currency == currency)
        .map(|p| p.amount)
        .sum::<i128>()
}

fn led3_escrow_holds(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    for f in obs.escrows {
        let held = escrow_balance(obs.entries, f.id, f.amount.currency);
        let account = Account::Escrow(f.id);
        if f.state.holds_nothing() {
            if held != 0 {
                violation(
                    out,
                    "LED-3",
                    Some(f.id),
                    None,
                    format!("{account} holds {held} minor units in state {}, where it must hold 0", f.state),
                );
            }
            continue;
        }
        if held < 0 || held > f.amount.minor {
            violation(
                out,
                "LED-3",
                Some(f.id),
                None,
                format!("{account} holds {held} minor units, outside 0..={} (the amount)", f.amount.minor),
            );
        } else if let Some(received) = f.received
            && received != held
        {
            violation(
                out,
                "LED-3",
                Some(f.id),
                None,
                format!("{account} holds {held} minor units but the escrow reports {received} received"),
            );
        }
    }
}

fn entries_of(entries: &[Entry], escrow: EscrowId, kind: EntryKind) -> impl Iterator<Item = &Entry> {
    entries.iter().filter(move |e| e.escrow == Some(escrow) && e.kind == kind)
}

fn escrows_with_entries(obs: &Observation<'_>) -> Vec<EscrowId> {
    let mut ids: Vec<EscrowId> = obs.entries.iter().filter_map(|e| e.escrow).collect();
    ids.extend(obs.escrows.iter().map(|f| f.id));
    ids.sort();
    ids.dedup();
    ids
}

fn led4_single_outcome(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    for id in escrows_with_entries(obs) {
        let releases: Vec<_> = entries_of(obs.entries, id, EntryKind::Release).map(|e| e.id).collect();
        let refunds: Vec<_> = entries_of(obs.entries, id, EntryKind::Refund).map(|e| e.id).collect();
        if releases.len() > 1 {
            violation(
                out,
                "LED-4",
                Some(id),
                releases.get(1).copied(),
                format!("{id} has {} release entries: {}", releases.len(), list(&releases)),
            );
        }
        if refunds.len() > 1 {
            violation(
                out,
                "LED-4",
                Some(id),
                refunds.get(1).copied(),
                format!("{id} has {} refund entries: {}", refunds.len(), list(&refunds)),
            );
        }
        if let (Some(r), Some(f)) = (releases.first(), refunds.first()) {
            violation(
                out,
                "LED-4",
                Some(id),
                Some(*f.max(r)),
                format!("{id} has both a release ({r}) and a refund ({f})"),
            );
        }
    }
}

fn list(ids: &[EntryId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn led5_fee_exact(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    let facts: HashMap<EscrowId, &EscrowFacts> = obs.escrows.iter().map(|f| (f.id, f)).collect();
    for e in obs.entries.iter().filter(|e| e.kind == EntryKind::Release) {
        let Some(id) = e.escrow else {
            violation(out, "LED-5", None, Some(e.id), format!("release {} names no escrow", e.id));
            continue;
        };
        let sum_on =
            |account: Account| e.postings.iter().filter(|p| p.account == account).map(|p| p.amount).sum::<i128>();
        let released = sum_on(Account::Escrow(id));
        let payout = -sum_on(Account::Payout(id));
        let fee = -sum_on(Account::Fees);
        let Some(f) = facts.get(&id) else {
            violation(
                out,
                "LED-5",
                Some(id),
                Some(e.id),
                format!("release {} is for {id}, which the target does not report", e.id),
            );
            continue;
        };
        let expected_fee = platform_fee(f.amount.minor, f.fee_bps);
        if released != f.amount.minor || fee != expected_fee || payout != f.amount.minor - expected_fee {
            violation(
                out,
                "LED-5",
                Some(id),
                Some(e.id),
                format!(
                    "release {} of {id}: debits {released} from the escrow, pays out {payout} with fee {fee}; \
                     expected {} = payout {} + fee {expected_fee} (floor of {} bps)",
                    e.id,
                    f.amount.minor,
                    f.amount.minor - expected_fee,
                    f.fee_bps
                ),
            );
        }
    }
}

fn led6_unique_cause(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    let mut seen = HashMap::new();
    for e in obs.entries {
        if let Some(first) = seen.insert(&e.cause, e.id) {
            seen.insert(&e.cause, first);
            violation(out, "LED-6", e.escrow, Some(e.id), format!("{} repeats cause {} of {first}", e.id, e.cause));
        }
    }
}

fn led7_append_only(obs: &Observation<'_>, history: &History, out: &mut Vec<Violation>) {
    if obs.entries.len() < history.entry_digests.len() {
        let present: HashSet<EntryId> = obs.entries.iter().map(|e| e.id).collect();
        let gone: Vec<EntryId> =
            history.entry_digests.iter().map(|(id, _)| *id).filter(|id| !present.contains(id)).collect();
        violation(
            out,
            "LED-7",
            None,
            gone.first().copied(),
            format!(
                "the ledger shrank from {} to {} entries, losing {}",
                history.entry_digests.len(),
                obs.entries.len(),
                list(&gone)
            ),
        );
    }
    for (entry, (id, earlier)) in obs.entries.iter().zip(&history.entry_digests) {
        if digest(entry) == *earlier {
            continue;
        }
        if entry.id == *id {
            violation(out, "LED-7", entry.escrow, Some(*id), format!("{id} changed after it was written"));
        } else {
            violation(
                out,
                "LED-7",
                None,
                Some(*id),
                format!("{id} was removed or replaced: {} now stands in its place", entry.id),
            );
        }
    }
}

fn led8_state_matches_money(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    use EscrowState as S;
    for f in obs.escrows {
        let count = |kind| entries_of(obs.entries, f.id, kind).count();
        let expectations = [
            (EntryKind::Release, matches!(f.state, S::ReleasePending | S::Released), "a release entry"),
            (EntryKind::Refund, matches!(f.state, S::RefundPending | S::Refunded), "a refund entry"),
            (EntryKind::PayoutConfirmed, f.state == S::Released, "a payout confirmation entry"),
            (EntryKind::RefundConfirmed, f.state == S::Refunded, "a refund confirmation entry"),
        ];
        for (kind, expected, what) in expectations {
            let present = count(kind) > 0;
            if present != expected {
                let says = if present { "has" } else { "lacks" };
                violation(out, "LED-8", Some(f.id), None, format!("{} is {} but {says} {what}", f.id, f.state));
            }
        }
        let held = escrow_balance(obs.entries, f.id, f.amount.currency);
        if f.state.fully_held() && held != f.amount.minor {
            violation(
                out,
                "LED-8",
                Some(f.id),
                None,
                format!("{} is {} but holds {held} of {} minor units", f.id, f.state, f.amount.minor),
            );
        }
        if matches!(f.state, S::AwaitingPayment | S::PaymentReview) && held >= f.amount.minor {
            violation(
                out,
                "LED-8",
                Some(f.id),
                None,
                format!("{} holds its whole amount but is still {}", f.id, f.state),
            );
        }
    }
}

fn led9_no_negative_liability(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    let mut sums: BTreeMap<(Account, Currency), i128> = BTreeMap::new();
    for p in obs.entries.iter().flat_map(|e| &e.postings) {
        *sums.entry((p.account, p.currency)).or_insert(0) += p.amount;
    }
    for ((account, currency), raw) in sums {
        if account.kind() == AccountKind::Liability && raw > 0 {
            let last = obs.entries.iter().rev().find(|e| e.postings.iter().any(|p| p.account == account)).map(|e| e.id);
            violation(
                out,
                "LED-9",
                account.escrow(),
                last,
                format!("{account} is at {} minor units of {currency}, below zero", -raw),
            );
        }
    }
}

fn led10_server_records(obs: &Observation<'_>, _: &History, out: &mut Vec<Violation>) {
    let facts: HashMap<EscrowId, &EscrowFacts> = obs.escrows.iter().map(|f| (f.id, f)).collect();
    for e in obs.entries {
        for p in e.postings.iter().filter(|p| matches!(p.account, Account::Escrow(_)) && p.amount < 0) {
            let Account::Escrow(id) = p.account else { continue };
            if e.kind != EntryKind::Payment {
                violation(
                    out,
                    "LED-10",
                    Some(id),
                    Some(e.id),
                    format!("{} ({:?}) credits escrow:{}; only payments may", e.id, e.kind, id.0),
                );
                continue;
            }
            let Some(f) = facts.get(&id) else { continue };
            if p.currency != f.amount.currency {
                violation(
                    out,
                    "LED-10",
                    Some(id),
                    Some(e.id),
                    format!(
                        "{} credits {id} in {} but the escrow is in {}; a wrong currency goes to suspense",
                        e.id, p.currency, f.amount.currency
                    ),
                );
            }
            if let (Some(bound), Some(named)) = (&f.invoice, &e.invoice)
                && bound != named
            {
                violation(
                    out,
                    "LED-10",
                    Some(id),
                    Some(e.id),
                    format!("{} credits {id} for invoice {named:?}, but {id} is bound to invoice {bound:?}", e.id),
                );
            }
        }
    }
}

fn esc21_versions(obs: &Observation<'_>, history: &History, out: &mut Vec<Violation>) {
    for f in obs.escrows {
        let Some(seen) = history.escrows.get(&f.id) else { continue };
        if f.version < seen.version {
            violation(
                out,
                "ESC-21",
                Some(f.id),
                None,
                format!("{} went from version {} back to {}", f.id, seen.version, f.version),
            );
        } else if f.state != seen.state && f.version == seen.version {
            violation(
                out,
                "ESC-21",
                Some(f.id),
                None,
                format!("{} changed from {} to {} without a new version ({})", f.id, seen.state, f.state, f.version),
            );
        }
    }
}

fn esc22_terminal_final(obs: &Observation<'_>, history: &History, out: &mut Vec<Violation>) {
    let states: HashMap<EscrowId, EscrowState> = obs.escrows.iter().map(|f| (f.id, f.state)).collect();
    for (id, seen) in &history.escrows {
        let Some(since) = seen.entries_when_terminal else { continue };
        if let Some(now) = states.get(id)
            && *now != seen.state
        {
            violation(out, "ESC-22", Some(*id), None, format!("{id} left terminal state {} for {now}", seen.state));
        }
        let late: HashSet<EntryId> =
            obs.entries.iter().skip(since).filter(|e| e.escrow == Some(*id)).map(|e| e.id).collect();
        let mut late: Vec<_> = late.into_iter().collect();
        late.sort();
        for entry in late {
            violation(
                out,
                "ESC-22",
                Some(*id),
                Some(entry),
                format!("{entry} was written for {id} after it became {}", seen.state),
            );
        }
    }
}

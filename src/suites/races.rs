//! The race suite: fund-moving requests sent to the target at the same time, judged against every sequential order
//! the model allows. A conforming backend serializes them: whatever it did must be what one order of the requests,
//! taken one after the other, does on the model — the same decisions (as a multiset: which copy wins is the
//! target's choice), the same final state of the escrow, and the same new ledger entries; and its ledger must still
//! satisfy every invariant (LED-1…LED-10). A backend that checks a state and moves money outside one critical
//! section (check-then-act) answers with more successes, or books more entries, than any order can.
//!
//! Each race first brings an escrow to the state it needs through the differential runner (model and target side
//! by side, every setup request compared), then plans the competing requests with the scenario's script, sends
//! them at once ([`HttpTarget::send_concurrently`](crate::oracle::http_target::HttpTarget::send_concurrently)),
//! reads the escrow and the ledger back, and applies every distinct order of the same requests to clones of the
//! model as it stood after the setup.

use std::time::Instant;

use conform_reference::escrow::EscrowState;
use conform_reference::generate::{EscrowAct, Planned, Portion, Step, Who};
use conform_reference::ids::EscrowId;
use conform_reference::invariants::{Checker, EscrowFacts, Observation};
use conform_reference::ledger::{Entry, EntryKind, Ledger};
use conform_reference::refusal::Refusal;
use conform_reference::world::{Accepted, Op, Outcome, Request, Resolution, World};

use super::matrix::reach;
use super::{CheckResult, Reporter, Session, describe_request, differential_failure, reproduction};
use crate::error::Error;
use crate::oracle::Observed;
use crate::oracle::differential::{Differential, LedgerView};
use crate::report::CheckOutcome;
use crate::report::event::{Failure, ReproStep};

/// How many copies of one request the duplicate races send at once.
const COPIES: usize = 10;

/// More distinct orders than this and a race is not judged (none of ours comes near: 10 copies of one request
/// have one order, five and five of two have 252).
const MAX_ORDERS: usize = 50_000;

/// One race: the state to bring the escrow to, and the steps whose requests compete.
struct Race {
    name: &'static str,
    rules: &'static [&'static str],
    setup: Vec<Step>,
    contenders: Vec<Step>,
}

fn act(who: Who, act: EscrowAct) -> Step {
    Step::Act { escrow: 0, who, act }
}

fn with(mut steps: Vec<Step>, more: impl IntoIterator<Item = Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}

/// The races, each with its setup; `None` where a state cannot be reached by the shared setups.
fn races() -> Option<Vec<Race>> {
    let delivered = reach("delivered")?;
    let invoiced = with(reach("awaiting_payment")?, [act(Who::Rightful, EscrowAct::StartPayment)]);
    let confirm = act(Who::Rightful, EscrowAct::ConfirmReceipt);
    let refund = act(Who::Rightful, EscrowAct::RefundVoluntarily);
    let payment = Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event: 0, authentic: true };
    Some(vec![
        Race {
            name: "ten parallel confirm_receipt calls release once",
            rules: &["ESC-11", "ESC-19", "LED-4", "LED-8"],
            setup: delivered.clone(),
            contenders: vec![confirm.clone(); COPIES],
        },
        Race {
            name: "one SHKeeper payment delivered ten times in parallel is applied once",
            rules: &["WH-4", "LED-6", "ESC-3"],
            setup: invoiced,
            contenders: vec![payment; COPIES],
        },
        Race {
            name: "confirm_receipt against the seller opening a dispute",
            rules: &["ESC-11", "ESC-13", "ESC-19", "LED-4", "LED-8"],
            setup: delivered.clone(),
            contenders: vec![confirm.clone(), act(Who::Seller, EscrowAct::OpenDispute)],
        },
        Race {
            name: "confirm_receipt against an admin's resolution of the dispute",
            rules: &["ESC-11", "ESC-14", "ESC-19", "LED-4", "LED-8"],
            // The model refuses confirm_receipt on a disputed escrow, so the dispute is opened first; the admin
            // steps up beforehand, so that both requests are ready to go.
            setup: with(
                delivered.clone(),
                [act(Who::Seller, EscrowAct::OpenDispute), Step::StepUp { actor: 4, ok: true }],
            ),
            contenders: vec![confirm.clone(), act(Who::Rightful, EscrowAct::Resolve(Resolution::Refund))],
        },
        Race {
            name: "confirm_receipt against refund_voluntarily, five of each",
            rules: &["ESC-11", "ESC-15", "ESC-19", "LED-4", "LED-8"],
            setup: delivered,
            contenders: [vec![confirm; 5], vec![refund; 5]].concat(),
        },
    ])
}

/// Runs every race against the session's target.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let races = races().ok_or_else(|| Error::Usage("the race setups no longer reach their states".to_owned()))?;
    let mut suite = reporter.suite("races", Some(races.len() as u64))?;
    for race in &races {
        if !suite.selected(race.rules, &["race"]) {
            continue;
        }
        let started = Instant::now();
        let (outcome, requests) = judge(session, race);
        let mut check = CheckResult::new(race.name, race.rules.iter().copied(), outcome);
        check.extra_tags = vec!["race"];
        check.requests = requests as u64;
        check.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(check)?;
    }
    suite.finish()
}

/// A check's outcome decided before its end: failed, or unverified (boxed: a failure with its reproduction is
/// large, and it travels through `?`).
pub(crate) type Stop = Box<CheckOutcome>;

/// Takes `steps` on the model and the target side by side. `Err` is the check's outcome when the scenario cannot
/// go on: failed at a difference, unverified when the target gave no outcome to judge.
pub(crate) fn take_steps(session: &mut Session, steps: &[Step]) -> Result<Differential, Stop> {
    let mut differential = session.begin();
    for step in steps {
        session.step(&mut differential, step);
    }
    settled(differential)
}

/// The scenario so far as a check sees it: `Err` with the outcome when it found a difference, or when the target
/// gave no outcome to judge.
pub(crate) fn settled(differential: Differential) -> Result<Differential, Stop> {
    let run = differential.run();
    if let Some(finding) = &run.finding {
        return Err(Box::new(CheckOutcome::Failed(differential_failure(finding, &run.trace, None, None, None))));
    }
    if let Some(reason) = run.trace.iter().find_map(|e| match &e.observed {
        Observed::Unknown { reason } => Some(reason.clone()),
        _ => None,
    }) {
        return Err(Box::new(CheckOutcome::Unverified { reason: format!("the target gave no outcome: {reason}") }));
    }
    Ok(differential)
}

/// One race: its outcome and the requests it sent.
fn judge(session: &mut Session, race: &Race) -> (CheckOutcome, usize) {
    let differential = match take_steps(session, &race.setup) {
        Ok(differential) => differential,
        Err(outcome) => return (*outcome, 0),
    };
    let setup_requests = differential.run().requests;
    let outcome = race_on(session, &differential, race).unwrap_or_else(|outcome| *outcome);
    (outcome, setup_requests + race.contenders.len() + 1)
}

/// The race itself, after its setup: `Err` carries a failed or unverified outcome.
fn race_on(session: &mut Session, differential: &Differential, race: &Race) -> Result<CheckOutcome, Stop> {
    let unverified = |reason: String| Box::new(CheckOutcome::Unverified { reason });
    let before = differential.model().clone();
    let escrow = before.escrows().last().map(|e| e.id).ok_or_else(|| unverified("the setup made no escrow".into()))?;
    let planned = |step: &Step| match differential.plan(step) {
        Some(Planned::Call(request)) => Ok(request),
        _ => Err(unverified(format!("the setup left no caller ready for {step:?}"))),
    };
    let requests = race.contenders.iter().map(planned).collect::<Result<Vec<_>, _>>()?;
    let read_back = planned(&act(Who::Buyer, EscrowAct::Get))?;
    let orders = distinct_orders(&requests).ok_or_else(|| unverified("too many orders to judge".into()))?;

    let ledger_before = session.target_ledger(&before).transpose().map_err(unverified)?;
    let observed = session.block_on(session.adapter.send_concurrently(&requests, &before));
    if let Some(reason) = observed.iter().find_map(|o| match o {
        Observed::Unknown { reason } => Some(reason.clone()),
        _ => None,
    }) {
        return Err(unverified(format!("the target gave no outcome: {reason}")));
    }
    let final_state = match session.block_on(session.adapter.send_concurrently(&[read_back], &before)).pop() {
        Some(Observed::Accepted { state, .. }) => state,
        other => return Err(unverified(format!("the escrow could not be read back: {other:?}"))),
    };
    let ledger_after = session.target_ledger(&before).transpose().map_err(unverified)?;

    let seen = Seen {
        decisions: requests.iter().zip(&observed).map(|(r, o)| Decision::observed(&r.op, o)).collect(),
        state: final_state,
        entries: match (&ledger_before, &ledger_after) {
            (Some(b), Some(a)) => Some(a.entries.get(b.entries.len()..).unwrap_or_default().iter().map(key).collect()),
            _ => None,
        },
    };
    let sequential: Vec<Sequential> =
        orders.iter().map(|order| Sequential::of(&before, &requests, order, escrow)).collect();
    let matching = sequential.iter().find(|s| s.explains(&seen));
    // The ledger invariants, with the escrows as the order that explains the target left them (or, if none does,
    // as the first order left them: a broken invariant is worth reporting either way).
    let facts_from = matching.or(sequential.first()).map(|s| &s.world).unwrap_or(&before);
    let violations = ledger_after.as_ref().map(|view| violations(view, facts_from)).unwrap_or_default();
    if matching.is_some() && violations.is_empty() {
        return Ok(match (final_state, &ledger_after) {
            (Some(_), Some(_)) => CheckOutcome::Passed,
            (None, _) => {
                *unverified("the profile maps no state in the escrow's answer, so the final state is unknown".into())
            }
            (_, None) => *unverified(
                "the profile declares no ledger read: the decisions and the state are those of a sequential order, \
                 the entries are unchecked"
                    .into(),
            ),
        });
    }
    let mut outcomes: Vec<String> = sequential.iter().map(Sequential::describe).collect();
    outcomes.sort();
    outcomes.dedup();
    let message = match (matching, violations.is_empty()) {
        (None, true) => "the target's outcome is that of no sequential order of the requests".to_owned(),
        (None, false) => format!(
            "the target's outcome is that of no sequential order of the requests, and its ledger breaks {}",
            violations.join("; ")
        ),
        (Some(_), _) => format!("the target's ledger breaks {}", violations.join("; ")),
    };
    let mut repro = reproduction(&differential.run().trace);
    repro.extend(requests.iter().zip(&observed).map(|(request, observed)| ReproStep {
        request: format!("at once: {}", describe_request(request)),
        expected: "as in one sequential order".to_owned(),
        observed: format!("{observed:?}"),
    }));
    Err(Box::new(CheckOutcome::Failed(Failure {
        message,
        expected: format!("one of: {}", outcomes.join(" | ")),
        observed: seen.describe(),
        seed: None,
        reproduction: repro,
        file: None,
        replay: None,
    })))
}

/// The ledger invariants on the target's ledger, with the escrows' facts as `model` has them.
fn violations(view: &LedgerView, model: &World) -> Vec<String> {
    let known: Vec<EscrowId> = view.escrows.iter().map(|f| f.id).collect();
    let facts: Vec<EscrowFacts> = model
        .escrow_facts()
        .into_iter()
        .filter(|f| known.contains(&f.id))
        .map(|f| EscrowFacts { received: None, invoice: None, ..f })
        .collect();
    let balances = Ledger::from_entries(view.entries.clone()).raw_balances();
    Checker::new()
        .step(&Observation { entries: &view.entries, balances: &balances, escrows: &facts })
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A decision as both sides can state it. A refusal the profile does not map is known by its status only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Decision {
    Accepted,
    /// 202: a two-person approval is pending (AZ-7).
    Pending,
    Refused(u16, Option<Refusal>),
}

impl Decision {
    fn predicted(outcome: &Outcome) -> Decision {
        match outcome {
            Ok(Accepted::PendingApproval(_)) => Decision::Pending,
            Ok(_) => Decision::Accepted,
            Err(refusal) => Decision::Refused(refusal.http_status(), Some(*refusal)),
        }
    }

    fn observed(op: &Op, observed: &Observed) -> Decision {
        let may_wait = matches!(op, Op::ResolveDispute { .. } | Op::ApproveProof { .. } | Op::ChangeRole { .. });
        match observed {
            Observed::Accepted { status: 202, .. } if may_wait => Decision::Pending,
            Observed::Accepted { .. } | Observed::Listed { .. } | Observed::Unknown { .. } => Decision::Accepted,
            Observed::Refused { status, refusal } => Decision::Refused(*status, *refusal),
        }
    }

    /// Whether the target's decision `self` is the model's `predicted` one.
    fn is(self, predicted: Decision) -> bool {
        match (self, predicted) {
            (Decision::Refused(status, None), Decision::Refused(expected, _)) => status == expected,
            _ => self == predicted,
        }
    }

    fn describe(self) -> String {
        match self {
            Decision::Accepted => "accepted".to_owned(),
            Decision::Pending => "202 pending approval".to_owned(),
            Decision::Refused(_, Some(refusal)) => format!("refused {}", refusal.code()),
            Decision::Refused(status, None) => format!("refused {status}"),
        }
    }
}

/// Whether the decisions are the same multiset, a target's unmapped refusal matching any of its status.
fn same_decisions(seen: &[Decision], predicted: &[Decision]) -> bool {
    if seen.len() != predicted.len() {
        return false;
    }
    let mut left: Vec<Decision> = predicted.to_vec();
    // Exact decisions first, so that a refusal known only by its status takes what the exact ones leave.
    let (exact, by_status): (Vec<Decision>, Vec<Decision>) =
        seen.iter().partition(|d| !matches!(d, Decision::Refused(_, None)));
    exact.iter().chain(&by_status).all(|decision| match left.iter().position(|p| decision.is(*p)) {
        Some(index) => {
            left.swap_remove(index);
            true
        }
        None => false,
    })
}

/// A ledger entry as two ledgers can share it: its kind, escrow and postings, not its ids, causes or time. A
/// payment held in suspense belongs to no escrow in the model; a target may keep the escrow on it.
type EntryKey = (String, Option<EscrowId>, Vec<(String, i128)>);

fn key(entry: &Entry) -> EntryKey {
    let escrow = if entry.kind == EntryKind::Unmatched { None } else { entry.escrow };
    let mut postings: Vec<(String, i128)> =
        entry.postings.iter().map(|p| (format!("{} {}", p.account, p.currency.code()), p.amount)).collect();
    postings.sort();
    (format!("{:?}", entry.kind), escrow, postings)
}

/// What the entries of two ledgers do not share, both ways, or `None` when they hold the same entries.
pub(crate) fn ledger_difference(expected: &[Entry], seen: &[Entry]) -> Option<String> {
    let mut missing: Vec<EntryKey> = expected.iter().map(key).collect();
    let mut extra = Vec::new();
    for entry in seen.iter().map(key) {
        match missing.iter().position(|k| *k == entry) {
            Some(index) => {
                missing.swap_remove(index);
            }
            None => extra.push(entry),
        }
    }
    (!missing.is_empty() || !extra.is_empty()).then(|| {
        let show = |keys: &[EntryKey]| keys.iter().map(describe_key).collect::<Vec<_>>().join(", ");
        format!(
            "entries the model booked and the target did not: [{}]; entries only the target booked: [{}]",
            show(&missing),
            show(&extra)
        )
    })
}

fn describe_key((kind, escrow, postings): &EntryKey) -> String {
    let postings: Vec<String> = postings.iter().map(|(account, amount)| format!("{account} {amount:+}")).collect();
    let escrow = escrow.map(|e| format!(" {e}")).unwrap_or_default();
    format!("{kind}{escrow} ({})", postings.join(", "))
}

/// What the target did in a race.
struct Seen {
    decisions: Vec<Decision>,
    state: Option<EscrowState>,
    /// The entries the race added (`None`: the profile declares no ledger read).
    entries: Option<Vec<EntryKey>>,
}

impl Seen {
    fn describe(&self) -> String {
        let decisions: Vec<String> = self.decisions.iter().map(|d| d.describe()).collect();
        let state = self.state.map_or("state not shown".to_owned(), |s| format!("state {s}"));
        let entries = match &self.entries {
            None => "ledger not readable".to_owned(),
            Some(keys) => {
                format!("{} new entries [{}]", keys.len(), keys.iter().map(describe_key).collect::<Vec<_>>().join(", "))
            }
        };
        format!("{}; {state}; {entries}", decisions.join(", "))
    }
}

/// One sequential order of the race's requests, applied to the model.
struct Sequential {
    decisions: Vec<Decision>,
    state: Option<EscrowState>,
    entries: Vec<EntryKey>,
    world: World,
}

impl Sequential {
    fn of(before: &World, requests: &[Request], order: &[usize], escrow: EscrowId) -> Sequential {
        let mut world = before.clone();
        let mut decisions: Vec<Decision> =
            order.iter().map(|i| Decision::predicted(&world.apply(&requests[*i]))).collect();
        decisions.sort();
        let entries = world.ledger().entries().get(before.ledger().entries().len()..).unwrap_or_default();
        Sequential {
            decisions,
            state: world.escrow(escrow).map(|e| e.state),
            entries: entries.iter().map(key).collect(),
            world,
        }
    }

    fn explains(&self, seen: &Seen) -> bool {
        let same_entries = seen.entries.as_ref().is_none_or(|entries| {
            let mut entries = entries.clone();
            let mut expected = self.entries.clone();
            entries.sort();
            expected.sort();
            entries == expected
        });
        same_decisions(&seen.decisions, &self.decisions)
            && seen.state.is_none_or(|state| Some(state) == self.state)
            && same_entries
    }

    fn describe(&self) -> String {
        let decisions: Vec<String> = self.decisions.iter().map(|d| d.describe()).collect();
        let state = self.state.map_or("no escrow".to_owned(), |s| format!("state {s}"));
        let entries: Vec<String> = self.entries.iter().map(describe_key).collect();
        format!("{}; {state}; {} new entries [{}]", decisions.join(", "), entries.len(), entries.join(", "))
    }
}

/// Every distinct order of `requests` (equal requests are interchangeable), as indices into it; `None` beyond
/// [`MAX_ORDERS`].
fn distinct_orders(requests: &[Request]) -> Option<Vec<Vec<usize>>> {
    // Each request stands for the first one equal to it; an order is a sequence of those representatives.
    let representatives: Vec<usize> =
        requests.iter().map(|r| requests.iter().position(|other| other == r).unwrap_or(0)).collect();
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for r in &representatives {
        match counts.iter_mut().find(|(rep, _)| rep == r) {
            Some((_, n)) => *n += 1,
            None => counts.push((*r, 1)),
        }
    }
    let mut orders = Vec::new();
    let mut order = Vec::with_capacity(requests.len());
    extend_orders(&mut counts, &mut order, requests.len(), &mut orders);
    (orders.len() <= MAX_ORDERS).then_some(orders)
}

fn extend_orders(counts: &mut [(usize, usize)], order: &mut Vec<usize>, len: usize, out: &mut Vec<Vec<usize>>) {
    if out.len() > MAX_ORDERS {
        return;
    }
    if order.len() == len {
        out.push(order.clone());
        return;
    }
    for i in 0..counts.len() {
        if counts[i].1 == 0 {
            continue;
        }
        counts[i].1 -= 1;
        order.push(counts[i].0);
        extend_orders(counts, order, len, out);
        order.pop();
        counts[i].1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conform_reference::sessions::AccessToken;

    fn confirm(token: u64) -> Request {
        Request::by(AccessToken(token), Op::ConfirmReceipt { escrow: EscrowId(0) })
    }

    #[test]
    fn equal_requests_have_one_order_and_different_ones_all() {
        assert_eq!(distinct_orders(&vec![confirm(1); 10]).map(|o| o.len()), Some(1));
        let mixed = [vec![confirm(1); 5], vec![confirm(2); 5]].concat();
        assert_eq!(distinct_orders(&mixed).map(|o| o.len()), Some(252));
        let three = [confirm(1), confirm(2), confirm(3)];
        assert_eq!(distinct_orders(&three).map(|o| o.len()), Some(6));
    }

    #[test]
    fn an_unmapped_refusal_matches_by_status() {
        let conflict = Decision::Refused(409, Some(Refusal::InvalidTransition));
        let seen = [Decision::Accepted, Decision::Refused(409, None)];
        assert!(same_decisions(&seen, &[conflict, Decision::Accepted]));
        assert!(!same_decisions(&seen, &[Decision::Accepted, Decision::Accepted]));
        assert!(!same_decisions(&[Decision::Accepted; 2], &[conflict, Decision::Accepted]));
    }
}

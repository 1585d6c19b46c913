//! The providers suite (suite `providers`): how money from each provider lands, checked side by side on the model
//! and the target, state and ledger postings both.
//!
//! - PRV-5 / ESC-4 / LED-10: an underpayment leaves the escrow awaiting payment with only what arrived held; an
//!   overpayment funds it and books the excess to the buyer's credit; a payment in another currency funds nothing
//!   and goes to suspense.
//! - ESC-17: the refund path to `refunded`, closed by the provider's refund confirmation.
//! - WH-9: a Request Network `payment.processing` delivered after the payment that funded the escrow changes
//!   nothing (SHKeeper's callbacks only ever report payments, so Request Network is the provider that can say
//!   "pending" late).
//! - PRV-7: the same lifecycle (pay, deliver, confirm, the payout's confirmation; and a refund path with the
//!   refund's confirmation) through SHKeeper, Request Network and a manual wallet (Request Network has no payout
//!   callback and a manual wallet no callback at all: their paths end where the provider would have to call back); each target ledger must post what the model posts, and the
//!   postings' shape (accounts and amounts, the provider's account taken as one) must be the same whichever
//!   provider moved the money.
//!
//! Every step goes through the differential (its answers and the target's ledger invariants after each request);
//! what it does not judge, the entries the target booked, is compared here with the model's entries.

use std::time::Instant;

use conform_reference::escrow::EscrowState;
use conform_reference::generate::{EscrowAct, Portion, Step, Who};
use conform_reference::ledger::{Account, Entry, EntryKind, Provider};

use super::{CheckResult, Reporter, Session, differential_failure, reproduction};
use crate::error::Error;
use crate::oracle::differential::Differential;
use crate::report::CheckOutcome;
use crate::report::event::Failure;

/// The suite's name.
pub const SUITE: &str = "providers";

/// Why a scenario stopped: the claim was broken, or could not be checked (boxed: a failure is large).
type Stop = Box<CheckOutcome>;

fn unverified(reason: impl Into<String>) -> Stop {
    Box::new(CheckOutcome::Unverified { reason: reason.into() })
}

/// One entry as PRV-7 compares it: its row of the posting table and its postings (account class, currency, signed
/// minor amount), sorted. The provider's account is one class whichever provider it is, and ids are left out.
type Shape = (String, Vec<(String, &'static str, i128)>);

fn account_class(account: Account) -> String {
    match account {
        Account::Provider(_) => "provider",
        Account::Escrow(_) => "escrow",
        Account::Payout(_) => "payout",
        Account::Refund(_) => "refund",
        Account::BuyerCredit(_) => "buyer_credit",
        Account::Suspense => "suspense",
        Account::Fees => "fees",
    }
    .to_owned()
}

fn kind_name(kind: EntryKind) -> String {
    format!("{kind:?}")
}

fn shapes(entries: &[Entry]) -> Vec<Shape> {
    entries
        .iter()
        .map(|e| {
            let mut postings: Vec<_> =
                e.postings.iter().map(|p| (account_class(p.account), p.currency.code(), p.amount)).collect();
            postings.sort();
            (kind_name(e.kind), postings)
        })
        .collect()
}

/// The entries exactly, provider included: what the model posts is what the target must post.
fn exact(entries: &[Entry]) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .map(|e| {
            let mut postings: Vec<String> =
                e.postings.iter().map(|p| format!("{:?} {} {}", p.account, p.currency.code(), p.amount)).collect();
            postings.sort();
            (kind_name(e.kind), postings)
        })
        .collect()
}

/// One scenario on the model and the target side by side.
struct Scenario<'s> {
    session: &'s mut Session,
    differential: Differential,
}

impl<'s> Scenario<'s> {
    fn open(session: &'s mut Session) -> Scenario<'s> {
        let differential = session.begin();
        Scenario { session, differential }
    }

    /// One step on both sides: a difference fails the check, a request without an outcome leaves it unverified,
    /// and a step the target cannot take (its abilities) leaves it unverified too, never passed.
    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        let (requests, unknown) = (self.differential.run().requests, self.differential.run().unknown.len());
        self.session.step(&mut self.differential, step);
        let run = self.differential.run();
        if let Some(finding) = &run.finding {
            return Err(Box::new(CheckOutcome::Failed(differential_failure(finding, &run.trace, None, None, None))));
        }
        if let Some((index, reason)) = run.unknown.get(unknown) {
            return Err(unverified(format!("request {index} got no outcome from the target: {reason}")));
        }
        if run.requests == requests {
            return Err(unverified(format!("the target cannot take the step {step:?}")));
        }
        Ok(())
    }

    fn steps(&mut self, steps: &[Step]) -> Result<(), Stop> {
        steps.iter().try_for_each(|s| self.step(s))
    }

    /// The model's state of the scenario's first escrow, which the steps must have reached.
    fn reached(&self, state: EscrowState) -> Result<(), Stop> {
        let seen = self.differential.model().escrows().first().map(|e| e.state);
        if seen == Some(state) {
            Ok(())
        } else {
            // The model decides where the steps lead; a scenario that does not reach its state checks nothing.
            Err(unverified(format!("the scenario left the model's escrow in {seen:?}, not {state}")))
        }
    }

    fn failure(&self, message: String, expected: String, observed: String) -> Stop {
        Box::new(CheckOutcome::Failed(Failure {
            message,
            expected,
            observed,
            seed: None,
            reproduction: reproduction(&self.differential.run().trace),
            file: None,
            replay: None,
        }))
    }

    /// The target's entries of this scenario, in the model's ids.
    fn target_entries(&mut self) -> Result<Vec<Entry>, Stop> {
        match self.session.target_ledger(self.differential.model()) {
            None => Err(unverified("the profile declares no ledger read")),
            Some(Err(reason)) => Err(unverified(format!("the target's ledger could not be read: {reason}"))),
            Some(Ok(view)) => Ok(view.entries),
        }
    }

    /// The target booked exactly the entries the model booked (rows, accounts, amounts); returns their shape.
    fn same_postings(&mut self, what: &str) -> Result<Vec<Shape>, Stop> {
        let target = self.target_entries()?;
        let model = self.differential.model().ledger().entries().to_vec();
        let (expected, observed) = (exact(&model), exact(&target));
        if expected != observed {
            return Err(self.failure(
                format!("{what}: the target's ledger entries differ from the model's"),
                format!("{expected:?}"),
                format!("{observed:?}"),
            ));
        }
        Ok(shapes(&target))
    }

    fn requests(&self) -> u64 {
        self.differential.run().requests as u64
    }
}

/// Runs `body` in a new scenario; the outcome and the requests sent.
fn scenario(session: &mut Session, body: impl FnOnce(&mut Scenario<'_>) -> Result<(), Stop>) -> (CheckOutcome, u64) {
    let mut s = Scenario::open(session);
    let outcome = body(&mut s).err().map_or(CheckOutcome::Passed, |stop| *stop);
    (outcome, s.requests())
}

fn create(provider: Provider) -> Step {
    Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider, extra: None }
}

fn act(who: Who, act: EscrowAct) -> Step {
    Step::Act { escrow: 0, who, act }
}

fn pay(portion: Portion, wrong_currency: bool, event: u8) -> Step {
    Step::Pay { escrow: 0, portion, wrong_currency, event, authentic: true }
}

fn get() -> Step {
    act(Who::Buyer, EscrowAct::Get)
}

/// The steps that fund a 100 USD escrow of `provider`: an invoice paid in full, or an exact proof to the
/// platform's address approved by the first admin.
fn funding(provider: Provider) -> Vec<Step> {
    let mut steps = vec![create(provider)];
    match provider {
        Provider::ManualWallet => {
            let proof = EscrowAct::SubmitProof { tx: 0, exact: true, right_destination: true, wrong_currency: false };
            steps.extend([act(Who::Rightful, proof), act(Who::Rightful, EscrowAct::ApproveProof)]);
        }
        _ => steps.extend([act(Who::Rightful, EscrowAct::StartPayment), pay(Portion::Due, false, 1)]),
    }
    steps
}

/// Whether the target's refunds (`refund`) or payouts of `provider` can be confirmed through a callback in this
/// session: Request Network confirms refunds (`payment.refunded`) but has no payout callback.
fn confirmable(session: &Session, provider: Provider, refund: bool) -> bool {
    session.abilities.payout_callbacks.contains(&provider) && (refund || provider != Provider::RequestNetwork)
}

/// Adds Request Network to what the session's target can do when the profile binds its webhook: its escrows,
/// its pending notices and its refund confirmations (`payment.refunded`; it has no payout callback).
fn with_request_network(session: &mut Session) -> bool {
    if session.profile().webhook("request_network").is_none() {
        return false;
    }
    let a = &mut session.abilities;
    for list in [&mut a.providers, &mut a.pending_callbacks, &mut a.payout_callbacks] {
        if !list.contains(&Provider::RequestNetwork) {
            list.push(Provider::RequestNetwork);
        }
    }
    true
}

/// Runs the suite.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let mut suite = reporter.suite(SUITE, Some(6))?;
    let saved = session.abilities.clone();
    let request_network = with_request_network(session);

    type Check =
        (&'static str, &'static [&'static str], &'static [&'static str], fn(&mut Session, bool) -> (CheckOutcome, u64));
    let checks: Vec<Check> = vec![
        (
            "an underpayment leaves the escrow awaiting payment, holding only what arrived",
            &["ESC-4", "PRV-5", "LED-8"],
            &["shkeeper"],
            underpayment,
        ),
        (
            "an overpayment funds the escrow and books the excess to the buyer's credit",
            &["PRV-5", "ESC-3", "LED-10"],
            &["shkeeper"],
            overpayment,
        ),
        (
            "a payment in another currency funds nothing and is booked to suspense",
            &["PRV-5", "LED-10"],
            &["shkeeper"],
            wrong_currency,
        ),
        (
            "a refund confirmed by the provider moves refund_pending to refunded",
            &["ESC-17", "ESC-15"],
            &["shkeeper"],
            refund_confirmed,
        ),
        (
            "a Request Network payment.processing after the payment never moves the escrow back",
            &["WH-9"],
            &["request-network"],
            late_pending,
        ),
        (
            "the postings are the same whichever provider moves the money (SHKeeper, Request Network, manual wallet)",
            &["PRV-7"],
            &["shkeeper", "request-network", "manual-wallet"],
            same_postings_everywhere,
        ),
    ];
    for (name, rules, tags, check) in checks {
        if !suite.selected(rules, tags) {
            continue;
        }
        let started = Instant::now();
        let (outcome, requests) = check(session, request_network);
        let mut result = CheckResult::new(name, rules.iter().copied(), outcome);
        result.extra_tags = tags.to_vec();
        result.requests = requests;
        result.duration_ms = started.elapsed().as_millis() as u64;
        suite.check(result)?;
    }
    session.abilities = saved;
    suite.finish()
}

/// ESC-4, PRV-5: half of what is due arrives; the escrow stays awaiting payment (the read-back after the delivery
/// is judged), and the target holds exactly the half in the escrow's account, as the model does.
fn underpayment(session: &mut Session, _: bool) -> (CheckOutcome, u64) {
    scenario(session, |s| {
        s.steps(&[create(Provider::Shkeeper), act(Who::Rightful, EscrowAct::StartPayment)])?;
        s.steps(&[pay(Portion::Half, false, 1), get()])?;
        s.reached(EscrowState::AwaitingPayment)?;
        s.same_postings("a partial payment").map(drop)
    })
}

/// PRV-5: what is due and a tenth more arrives; funded, with the excess in the buyer's credit.
fn overpayment(session: &mut Session, _: bool) -> (CheckOutcome, u64) {
    scenario(session, |s| {
        s.steps(&[create(Provider::Shkeeper), act(Who::Rightful, EscrowAct::StartPayment)])?;
        s.steps(&[pay(Portion::Over, false, 1), get()])?;
        s.reached(EscrowState::Funded)?;
        s.same_postings("an overpayment").map(drop)
    })
}

/// PRV-5, LED-10: the amount due arrives in another currency; nothing funds, the money is in suspense.
fn wrong_currency(session: &mut Session, _: bool) -> (CheckOutcome, u64) {
    scenario(session, |s| {
        s.steps(&[create(Provider::Shkeeper), act(Who::Rightful, EscrowAct::StartPayment)])?;
        s.steps(&[pay(Portion::Due, true, 1), get()])?;
        s.reached(EscrowState::AwaitingPayment)?;
        s.same_postings("a payment in another currency").map(drop)
    })
}

/// The refund path of a funded escrow of `provider`: the seller refunds, and the provider's refund confirmation
/// closes it when the provider can send one.
fn refund_path(provider: Provider, session: &Session) -> (Vec<Step>, EscrowState) {
    let mut steps = funding(provider);
    steps.push(act(Who::Rightful, EscrowAct::RefundVoluntarily));
    if confirmable(session, provider, true) {
        steps.extend([Step::PayoutNotice { escrow: 0, confirmed: true, event: 1 }, get()]);
        (steps, EscrowState::Refunded)
    } else {
        steps.push(get());
        (steps, EscrowState::RefundPending)
    }
}

/// The release path of `provider`: delivered, confirmed by the buyer, and the payout confirmed when the provider
/// can call back for it.
fn release_path(provider: Provider, session: &Session) -> (Vec<Step>, EscrowState) {
    let mut steps = funding(provider);
    steps.extend([act(Who::Rightful, EscrowAct::MarkDelivered), act(Who::Rightful, EscrowAct::ConfirmReceipt)]);
    if confirmable(session, provider, false) {
        steps.extend([Step::PayoutNotice { escrow: 0, confirmed: true, event: 1 }, get()]);
        (steps, EscrowState::Released)
    } else {
        steps.push(get());
        (steps, EscrowState::ReleasePending)
    }
}

/// ESC-17: a funded SHKeeper escrow refunded by its seller; the provider's refund confirmation (the read-back
/// after the delivery is judged) makes it refunded, and the refund's entries are the model's.
fn refund_confirmed(session: &mut Session, _: bool) -> (CheckOutcome, u64) {
    let (steps, end) = refund_path(Provider::Shkeeper, session);
    if end != EscrowState::Refunded {
        return (*unverified("the target's SHKeeper payouts cannot be confirmed through a callback"), 0);
    }
    scenario(session, |s| {
        s.steps(&steps)?;
        s.reached(EscrowState::Refunded)?;
        s.same_postings("a confirmed refund").map(drop)
    })
}

/// WH-9: a Request Network escrow funded by `payment.confirmed`, then a `payment.processing` for an earlier
/// transaction; the escrow is read back (still funded) and the ledger is the model's.
fn late_pending(session: &mut Session, request_network: bool) -> (CheckOutcome, u64) {
    if !request_network {
        return (*unverified("the profile binds no Request Network webhook"), 0);
    }
    scenario(session, |s| {
        s.steps(&funding(Provider::RequestNetwork))?;
        s.reached(EscrowState::Funded)?;
        s.steps(&[Step::PaymentPending { escrow: 0, event: 0 }, get()])?;
        s.reached(EscrowState::Funded)?;
        s.same_postings("a late payment.processing").map(drop)
    })
}

/// PRV-7: the release and the refund path through each provider; each target ledger posts what the model posts,
/// and the shapes agree across providers (over the entries each provider's path has: Request Network and a
/// manual wallet have no payout callback, so their paths end before the payout's confirmation).
fn same_postings_everywhere(session: &mut Session, request_network: bool) -> (CheckOutcome, u64) {
    let mut providers = vec![Provider::Shkeeper];
    if request_network {
        providers.push(Provider::RequestNetwork);
    }
    if session.abilities.providers.contains(&Provider::ManualWallet) {
        providers.push(Provider::ManualWallet);
    }
    let mut requests = 0;
    for (path, build) in [("release", release_path as fn(Provider, &Session) -> _), ("refund", refund_path)] {
        let mut seen: Vec<(Provider, Vec<Shape>)> = Vec::new();
        for provider in &providers {
            let (steps, end) = build(*provider, session);
            let mut shape = Vec::new();
            let (outcome, sent) = scenario(session, |s| {
                s.steps(&steps)?;
                s.reached(end)?;
                shape = s.same_postings(&format!("the {path} path through {}", provider.name()))?;
                // Across providers: the shorter path's entries are the start of the longer one's.
                for (other, theirs) in &seen {
                    let n = shape.len().min(theirs.len());
                    if shape[..n] != theirs[..n] {
                        return Err(s.failure(
                            format!(
                                "the {path} path posts differently through {} and {}",
                                other.name(),
                                provider.name()
                            ),
                            format!("{:?}", &theirs[..n]),
                            format!("{:?}", &shape[..n]),
                        ));
                    }
                }
                Ok(())
            });
            requests += sent;
            if !matches!(outcome, CheckOutcome::Passed) {
                return (outcome, requests);
            }
            seen.push((*provider, shape));
        }
    }
    if providers.len() < 3 {
        let missing: Vec<&str> = [Provider::RequestNetwork, Provider::ManualWallet]
            .into_iter()
            .filter(|p| !providers.contains(p))
            .map(Provider::name)
            .collect();
        return (
            *unverified(format!("only {} could be driven; not {}", providers.len(), missing.join(", "))),
            requests,
        );
    }
    (CheckOutcome::Passed, requests)
}

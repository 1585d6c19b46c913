//! The realtime suite (`conform::suites::realtime`) inside a run's session: every check passes on the clean
//! embedded target, and each realtime fault of the catalog makes a check carrying the fault's rule fail. The
//! `subscribe_escrow` cells of the authorization matrix are probed the same way.

use conform::contracts::Cell;
use conform::contracts::Rules;
use conform::report::{CheckOutcome, CheckRecord, EventStream};
use conform::suites::{Reporter, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};
use conform_reference::authz::PrincipalClass;
use conform_reference::generate::{Step, Who};
use conform_reference::ledger::Provider;
use conform_reference::refusal::Refusal;

fn session(faults: FaultSet, tag: &str) -> Session {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = options.load_profile().expect("embedded profile");
    Session::open(&options, profile, format!("realtime-{tag}-{}", std::process::id())).expect("session")
}

/// The realtime suite's checks against the embedded target with these faults.
fn realtime(faults: FaultSet, tag: &str) -> Vec<CheckRecord> {
    let mut session = session(faults, tag);
    let catalog = Rules::embedded().expect("rules");
    let mut stream = EventStream::new(Vec::new());
    let mut reporter = Reporter::new(&catalog, &mut stream, &[]);
    conform::suites::realtime::run(&mut session, &mut reporter).expect("the suite runs");
    stream.checks().to_vec()
}

fn failed_rules(checks: &[CheckRecord]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Failed(_)))
        .flat_map(|c| c.rules.iter().cloned())
        .collect()
}

#[test]
fn every_check_passes_on_the_clean_target() {
    let checks = realtime(FaultSet::none(), "clean");
    assert_eq!(checks.len(), 19, "{checks:#?}");
    for check in &checks {
        assert_eq!(check.suite, "realtime");
        assert_eq!(check.outcome, CheckOutcome::Passed, "{}", check.name);
        assert!(check.rules.iter().any(|r| r.starts_with("RT-")), "{:?}", check.rules);
        assert!(check.tags.contains(&"realtime".to_owned()));
    }
}

/// Each realtime fault is caught by a failed check carrying the fault's rule, and no token leaks into a report.
fn caught(fault: Fault) {
    let checks = realtime(FaultSet::of([fault]), fault.info().name);
    let rules = failed_rules(&checks);
    assert!(
        fault.info().rules.iter().any(|r| rules.iter().any(|f| f == r)),
        "{}: failed rules {rules:?}\n{checks:#?}",
        fault.info().name
    );
    for check in checks.iter().filter(|c| matches!(c.outcome, CheckOutcome::Failed(_))) {
        let CheckOutcome::Failed(failure) = &check.outcome else { unreachable!() };
        assert!(!failure.reproduction.is_empty(), "{}", check.name);
        let text = serde_json::to_string(&check).expect("serializes");
        assert!(!holds_token(&text), "a token in the report of {}: {text}", check.name);
    }
}

/// Whether `text` holds something shaped like the embedded target's tokens: 64 hex digits in a row.
fn holds_token(text: &str) -> bool {
    text.as_bytes().split(|b| !b.is_ascii_hexdigit()).any(|run| run.len() >= 64)
}

#[test]
fn a_token_in_the_query_string_is_caught() {
    caught(Fault::TokenInQueryString);
}

#[test]
fn a_client_named_room_is_caught() {
    caught(Fault::ClientNamedRoom);
}

#[test]
fn a_global_broadcast_is_caught() {
    caught(Fault::GlobalBroadcast);
}

#[test]
fn sockets_kept_after_revocation_are_caught() {
    caught(Fault::NoDisconnectOnRevocation);
}

#[test]
fn a_missing_socket_rate_limit_is_caught() {
    caught(Fault::NoSocketRateLimit);
}

#[test]
fn a_stale_role_on_sockets_is_caught() {
    caught(Fault::StaleRoleInSession);
}

/// The matrix's `subscribe_escrow` cells: an escrow awaiting payment, then the principal's subscription.
fn cells(faults: FaultSet, tag: &str) -> Vec<(PrincipalClass, Cell, CheckOutcome)> {
    let mut session = session(faults, tag);
    let matrix = conform::contracts::matrix::Matrix::embedded().expect("matrix");
    let row = matrix.operation.iter().find(|r| r.name == "subscribe_escrow").expect("the row");
    let setup =
        [Step::Create { buyer: 0, seller: 1, major: 100, currency: 0, provider: Provider::Shkeeper, extra: None }];
    let mut out = Vec::new();
    for class in PrincipalClass::ALL {
        let (who, prepare) = match class {
            PrincipalClass::Anonymous => (Who::Anonymous, vec![]),
            PrincipalClass::Stranger => (Who::Stranger, vec![]),
            PrincipalClass::Buyer => (Who::Buyer, vec![]),
            PrincipalClass::Seller => (Who::Seller, vec![]),
            PrincipalClass::Support => (Who::Support, vec![]),
            PrincipalClass::Admin => (Who::AdminB, vec![]),
            PrincipalClass::AdminSteppedUp => (Who::AdminB, vec![Step::StepUp { actor: 5, ok: true }]),
        };
        let expected = row.cell(class);
        let outcome = conform::suites::realtime::subscribe_cell(&mut session, class, who, &setup, &prepare, expected);
        out.push((class, expected, outcome));
    }
    out
}

#[test]
fn the_matrix_subscription_cells_pass_on_the_clean_target_and_catch_a_client_named_room() {
    for (class, expected, outcome) in cells(FaultSet::none(), "cells") {
        assert_eq!(outcome, CheckOutcome::Passed, "{class:?} (matrix: {expected})");
    }
    let faulty = cells(FaultSet::of([Fault::ClientNamedRoom]), "cells-room");
    let (_, expected, outcome) = faulty.iter().find(|(c, ..)| *c == PrincipalClass::Stranger).expect("stranger");
    assert_eq!(*expected, Cell::Refuse(Refusal::NotFound));
    assert!(matches!(outcome, CheckOutcome::Failed(_)), "{outcome:?}");
}

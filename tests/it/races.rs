//! The race suite against the embedded target: nothing fails on the clean target, and the races find the
//! check-then-act faults under the rules those faults break.

use conform::contracts::Rules;
use conform::report::{CheckOutcome, CheckRecord, EventStream};
use conform::suites::{Reporter, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};

/// The race suite's checks against the embedded target with these faults.
fn races(faults: FaultSet) -> Vec<CheckRecord> {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = options.load_profile().expect("embedded profile");
    let mut session = Session::open(&options, profile, format!("races{}", std::process::id())).expect("session");
    let catalog = Rules::embedded().expect("rules");
    let mut stream = EventStream::new(Vec::new());
    let mut reporter = Reporter::new(&catalog, &mut stream, &[]);
    conform::suites::races::run(&mut session, &mut reporter).expect("the suite runs");
    stream.checks().to_vec()
}

fn failed_under(checks: &[CheckRecord], fault: Fault) -> Vec<&CheckRecord> {
    checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Failed(_)))
        .filter(|c| c.rules.iter().any(|r| fault.info().rules.contains(&r.as_str())))
        .collect()
}

#[test]
fn every_race_passes_on_the_clean_target() {
    let checks = races(FaultSet::none());
    assert_eq!(checks.len(), 5, "{checks:#?}");
    for check in &checks {
        assert_eq!(check.suite, "races");
        assert_eq!(check.outcome, CheckOutcome::Passed, "{}", check.name);
        assert!(
            check.requests > 0 && check.threats.contains(&"T06".to_owned()) || check.rules.contains(&"WH-4".to_owned())
        );
    }
}

#[test]
fn a_release_checked_outside_its_critical_section_is_caught() {
    let checks = races(FaultSet::of([Fault::ReleaseRace]));
    let failed = failed_under(&checks, Fault::ReleaseRace);
    assert!(failed.iter().any(|c| c.name.starts_with("ten parallel confirm_receipt")), "{checks:#?}");
    for check in failed {
        let CheckOutcome::Failed(failure) = &check.outcome else { unreachable!() };
        assert!(!failure.reproduction.is_empty());
        assert!(failure.expected.starts_with("one of: "), "{}", failure.expected);
    }
}

#[test]
fn a_check_then_insert_deduplication_is_caught() {
    let checks = races(FaultSet::of([Fault::RacyWebhookDedup]));
    let failed = failed_under(&checks, Fault::RacyWebhookDedup);
    assert_eq!(failed.len(), 1, "{checks:#?}");
    let CheckOutcome::Failed(failure) = &failed[0].outcome else { unreachable!() };
    assert!(failure.message.contains("LED-6"), "{}", failure.message);
}

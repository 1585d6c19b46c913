//! The Gherkin suite (`features/`) inside a run's session: every scenario passes on the clean embedded target,
//! and the ones about deduplication fail, at the step where the target parts from the model, when the target
//! applies a provider event twice.

use conform::contracts::Rules;
use conform::report::{CheckOutcome, CheckRecord, EventStream};
use conform::suites::{Reporter, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};

/// The features suite's checks against the embedded target with these faults.
fn features(faults: FaultSet) -> Vec<CheckRecord> {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = options.load_profile().expect("embedded profile");
    let mut session = Session::open(&options, profile, format!("features{}", std::process::id())).expect("session");
    let catalog = Rules::embedded().expect("rules");
    let mut stream = EventStream::new(Vec::new());
    let mut reporter = Reporter::new(&catalog, &mut stream, &[]);
    conform::suites::features::run(&mut session, &mut reporter).expect("the suite runs");
    stream.checks().to_vec()
}

#[test]
fn every_scenario_passes_on_the_clean_target() {
    let checks = features(FaultSet::none());
    assert_eq!(checks.len(), 3, "{checks:#?}");
    for check in &checks {
        assert_eq!(check.suite, "features");
        assert_eq!(check.outcome, CheckOutcome::Passed, "{}", check.name);
        assert!(check.requests > 0, "{} sent no request", check.name);
        assert!(check.rules.iter().all(|r| r.contains('-')) && !check.rules.is_empty(), "{:?}", check.rules);
    }
    let duplicate =
        checks.iter().find(|c| c.name.ends_with("delivered twice funds the escrow once")).expect("scenario");
    assert_eq!(duplicate.rules, ["WH-3", "WH-4", "LED-6"]);
    assert!(duplicate.threats.contains(&"T04".to_owned()));
}

#[test]
fn a_target_without_deduplication_fails_at_the_repeated_delivery() {
    let checks = features(FaultSet::of([Fault::NoWebhookDedup]));
    let failed: Vec<&CheckRecord> = checks.iter().filter(|c| matches!(c.outcome, CheckOutcome::Failed(_))).collect();
    assert_eq!(failed.len(), 2, "{checks:#?}");
    for check in failed {
        let CheckOutcome::Failed(failure) = &check.outcome else { unreachable!() };
        assert!(failure.message.starts_with("And SHKeeper delivers the same event again"), "{}", failure.message);
        assert!(failure.message.contains("LED-6"), "{}", failure.message);
        assert!(!failure.reproduction.is_empty());
    }
    // The forged delivery has nothing to do with deduplication.
    assert!(checks.iter().any(|c| c.name.contains("forged") && c.outcome == CheckOutcome::Passed));
}

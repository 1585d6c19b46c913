//! The targeted session, audit, proof and money scenarios against the embedded target: all pass on the clean
//! target, and each fault they are aimed at fails the check of its rule.

use conform::contracts::Rules;
use conform::report::{CheckOutcome, CheckRecord, EventStream};
use conform::suites::{Reporter, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};

/// The suite's checks against the embedded target with these faults.
fn sessions(faults: FaultSet) -> Vec<CheckRecord> {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = options.load_profile().expect("embedded profile");
    let mut session = Session::open(&options, profile, format!("sessions{}", std::process::id())).expect("session");
    let catalog = Rules::embedded().expect("rules");
    let mut stream = EventStream::new(Vec::new());
    let mut reporter = Reporter::new(&catalog, &mut stream, &[]);
    conform::suites::sessions::run(&mut session, &mut reporter).expect("the suite runs");
    stream.checks().to_vec()
}

#[test]
fn every_check_passes_on_the_clean_target() {
    let checks = sessions(FaultSet::none());
    // Fourteen of its own and the five passkey checks (tests/it/passkeys.rs).
    assert_eq!(checks.len(), 19, "{checks:#?}");
    for check in &checks {
        assert_eq!(check.suite, "sessions");
        assert_eq!(check.outcome, CheckOutcome::Passed, "{}: {:?}", check.name, check.outcome);
    }
}

/// Each fault fails a check carrying one of the rules it breaks.
#[test]
fn each_targeted_fault_fails_its_check() {
    let faults = [
        Fault::RefreshNotRotated,
        Fault::RefreshReuseUndetected,
        Fault::NoSignInRateLimit,
        Fault::RefusedAdminCallsNotAudited,
        Fault::ReusedTxHashNotFlagged,
        Fault::WrongCurrencyFunds,
        Fault::EscrowFromWebhookMetadata,
        Fault::FeeRoundedUp,
        Fault::StaleRoleInSession,
        Fault::PartiallyPaidEscrowExpires,
        Fault::AutoReleaseDuringDispute,
        Fault::ReleaseAfterRefund,
    ];
    for fault in faults {
        let checks = sessions(FaultSet::of([fault]));
        let caught = checks.iter().any(|c| {
            matches!(c.outcome, CheckOutcome::Failed(_))
                && c.rules.iter().any(|r| fault.info().rules.contains(&r.as_str()))
        });
        assert!(caught, "{fault} not caught: {checks:#?}");
    }
}

//! SES-8 and PRV-3 through `[fixtures.configure]` against the embedded target: the passkey checks of the
//! `sessions` suite and the disabled-provider check of the `webhooks` suite pass on the clean target, each fault
//! they are aimed at fails a check of its own rule, and a profile without the fixture leaves the checks that need
//! it unverified.

use conform::contracts::Rules;
use conform::report::{CheckOutcome, CheckRecord, EventStream};
use conform::suites::{Reporter, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};

const DISABLED_PROVIDER: &str = "a disabled provider refuses new escrows and its webhooks, dead-lettering them";

/// The `sessions` and `webhooks` suites' SES-8 and PRV-3 checks against the embedded target with these faults,
/// through this profile text (`None`: the embedded profile).
fn checks(faults: FaultSet, profile_text: Option<String>) -> Vec<CheckRecord> {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = match profile_text {
        None => options.load_profile().expect("embedded profile"),
        Some(text) => conform::profile::Profile::parse("edited.toml", &text).expect("edited profile"),
    };
    let mut session = Session::open(&options, profile, format!("passkeys{}", std::process::id())).expect("session");
    let catalog = Rules::embedded().expect("rules");
    let mut stream = EventStream::new(Vec::new());
    // Passkeys are threat T08; PRV-3 is in the providers area.
    let tags = ["T08".to_owned(), "providers".to_owned()];
    let mut reporter = Reporter::new(&catalog, &mut stream, &tags);
    conform::suites::sessions::run(&mut session, &mut reporter).expect("the sessions suite runs");
    conform::suites::webhooks::run(&mut session, &mut reporter).expect("the webhooks suite runs");
    stream.checks().iter().filter(|c| c.rules.iter().any(|r| r == "SES-8" || r == "PRV-3")).cloned().collect()
}

fn by_name<'a>(checks: &'a [CheckRecord], name: &str) -> &'a CheckRecord {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name:?}: {checks:#?}"))
}

#[test]
fn the_clean_target_passes_every_passkey_and_disabled_provider_check() {
    let checks = checks(FaultSet::none(), None);
    let passkeys: Vec<_> = checks.iter().filter(|c| c.rules.contains(&"SES-8".to_owned())).collect();
    assert_eq!(passkeys.len(), 5, "{checks:#?}");
    for check in &checks {
        assert_eq!(check.outcome, CheckOutcome::Passed, "{}: {:?}", check.name, check.outcome);
    }
    assert_eq!(by_name(&checks, DISABLED_PROVIDER).outcome, CheckOutcome::Passed);
    assert!(passkeys.iter().all(|c| c.threats.contains(&"T08".to_owned())), "{passkeys:#?}");
}

/// Each fault fails a check carrying one of the rules it breaks.
#[test]
fn each_fault_fails_a_check_of_its_rule() {
    for (fault, check) in [
        (Fault::ReusablePasskeyChallenge, "a passkey challenge is single-use: a replayed assertion is refused"),
        (Fault::PasskeySignatureUnchecked, "an assertion by another credential is refused"),
        (Fault::PasskeyCounterNotChecked, "a passkey sign counter that goes backwards is refused"),
        (Fault::CounterlessPasskeyRefused, "a software authenticator registers a passkey and signs in with it"),
        (Fault::PasskeysSwitchIgnored, "passkeys switched off answer passkeys_disabled and create no credential"),
        (Fault::DisabledProviderAccepts, DISABLED_PROVIDER),
    ] {
        let checks = checks(FaultSet::of([fault]), None);
        let record = by_name(&checks, check);
        let CheckOutcome::Failed(failure) = &record.outcome else {
            panic!("{fault} not caught by {check:?}: {:?}", record.outcome);
        };
        assert!(record.rules.iter().any(|r| fault.info().rules.contains(&r.as_str())), "{record:#?}");
        assert!(fault.info().rules.iter().any(|r| failure.message.contains(r)), "{failure:#?}");
    }
}

/// Without `[fixtures.configure]`, what needs a switch is unverified with the reason; the rest still runs.
#[test]
fn a_profile_without_the_fixture_leaves_the_switched_checks_unverified() {
    let text = conform::suites::session::EMBEDDED_PROFILE;
    let start = text.find("[fixtures.configure]").expect("the embedded profile binds the fixture");
    let end = start + text[start..].find("\n\n").expect("a blank line after the table");
    let without = format!("{}{}", &text[..start], &text[end..]);
    let checks = checks(FaultSet::none(), Some(without));
    for name in ["passkeys switched off answer passkeys_disabled and create no credential", DISABLED_PROVIDER] {
        let CheckOutcome::Unverified { reason } = &by_name(&checks, name).outcome else {
            panic!("{name}: {:?}", by_name(&checks, name).outcome);
        };
        assert!(reason.contains("[fixtures.configure]"), "{reason}");
    }
    let registers = by_name(&checks, "a software authenticator registers a passkey and signs in with it");
    assert_eq!(registers.outcome, CheckOutcome::Passed);
}

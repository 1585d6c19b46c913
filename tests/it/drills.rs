//! Runbook drills (`drills/`): every shipped drill passes on the clean embedded target with its evidence, and fails
//! against each fault of the catalog that breaks its runbook, naming one of that fault's own rules; drills refuse a
//! staging profile, and a malformed drill file is reported by file, line and field.

use std::path::Path;
use std::process::{Command, Output};

use conform::drill::{self, Drill};
use conform::report::CheckOutcome;
use conform::report::event::DrillEvidence;
use conform::suites::{CheckResult, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};

fn run(name: &str, faults: FaultSet) -> CheckResult {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = options.load_profile().expect("embedded profile");
    let mut session = Session::open(&options, profile, format!("drill{}", std::process::id())).expect("session");
    let drills = drill::select(name).expect("shipped drill");
    drill::run_drill(&drills[0], &mut session)
}

fn stuck_release(faults: FaultSet) -> CheckResult {
    run("stuck-release", faults)
}

fn conform(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conform")).args(args).current_dir(dir).output().expect("run conform")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("conform-drills-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn the_stuck_release_drill_passes_on_the_clean_target_with_its_evidence() {
    let check = stuck_release(FaultSet::none());
    assert_eq!(check.outcome, CheckOutcome::Passed, "{check:#?}");
    let evidence = check.evidence.expect("evidence");
    let mut phases: Vec<&str> = evidence.timeline.iter().map(|e| e.phase.as_str()).collect();
    phases.dedup();
    assert_eq!(phases, ["precondition", "inject", "detect", "contain", "recover"]);
    assert!(evidence.timeline.iter().all(|e| e.ok));
    assert!(evidence.timeline.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    let (detect, contain) =
        (evidence.time_to_detect_ms.expect("detected"), evidence.time_to_contain_ms.expect("contained"));
    assert!(detect <= contain, "{detect} {contain}");
    assert_eq!(evidence.funds_lost, "0");
    assert!(check.rules.contains(&"DRL-3".to_owned()));
}

#[test]
fn a_retry_under_a_new_idempotency_key_fails_the_drill_and_loses_money() {
    let check = stuck_release(FaultSet::of([Fault::NewPayoutKeyOnRetry]));
    let CheckOutcome::Failed(failure) = &check.outcome else { panic!("not caught: {check:#?}") };
    assert!(failure.message.starts_with("contain: "), "{}", failure.message);
    assert!(failure.message.contains("PRV-4"), "{}", failure.message);
    let evidence = check.evidence.expect("evidence");
    assert_eq!(evidence.time_to_contain_ms, None);
    assert!(evidence.time_to_detect_ms.is_some());
    assert_eq!(evidence.funds_lost, "97.50 USD");
    assert!(!evidence.timeline.last().expect("timeline").ok);
}

#[test]
fn drills_refuse_a_profile_that_is_not_a_test_deployment() {
    let dir = scratch("staging");
    let embedded = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/profiles/embedded.toml"))
        .expect("profile");
    let staging = embedded.replacen("environment = \"test\"", "environment = \"staging\"", 1);
    assert_ne!(staging, embedded);
    std::fs::write(dir.join("staging.toml"), staging).expect("write");
    let out = conform(&["drill", "stuck-release", "--profile", "staging.toml", "--report-dir", "out"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`staging`") && stderr.contains("profile `"), "{stderr}");
}

#[test]
fn a_malformed_drill_file_is_reported_by_file_line_and_field() {
    let dir = scratch("malformed");
    let stuck = drill::DRILLS.iter().find(|(n, _)| *n == "stuck-release").expect("shipped").1;
    let text = stuck.replace("kind = \"drop\"", "kind = \"hold\"");
    std::fs::write(dir.join("bad.toml"), &text).expect("write");
    let line = text.lines().position(|l| l.starts_with("kind = ")).expect("kind") + 1;
    let out = conform(&["drill", "bad.toml", "--report-dir", "out"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("bad.toml:{line}: fault.kind: ")), "{stderr}");
    assert!(stderr.contains("money words"), "{stderr}");
    // An unknown key is located too.
    let error =
        Drill::parse("x.toml", &stuck.replace("[recover]\n", "[recover]\nretries = 3\n")).expect_err("unknown field");
    assert_eq!(error.field, "recover.retries", "{error}");
}

#[test]
fn every_drill_passes_on_the_clean_target_with_its_evidence() {
    for (name, _) in drill::DRILLS {
        let check = run(name, FaultSet::none());
        assert_eq!(check.outcome, CheckOutcome::Passed, "{name}: {check:#?}");
        // The check is named as the drill, so that launch criteria find it as `drills/NAME`.
        assert_eq!(check.name, *name);
        assert!(check.rules.iter().any(|r| r.starts_with("DRL-")), "{name}");
        let evidence = check.evidence.expect("evidence");
        let mut phases: Vec<&str> = evidence.timeline.iter().map(|e| e.phase.as_str()).collect();
        phases.dedup();
        assert_eq!(phases[..5], ["precondition", "inject", "detect", "contain", "recover"], "{name}");
        assert!(evidence.timeline.iter().all(|e| e.ok), "{name}");
        assert!(evidence.timeline.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{name}");
        let (detect, contain) =
            (evidence.time_to_detect_ms.expect("detected"), evidence.time_to_contain_ms.expect("contained"));
        assert!(detect <= contain, "{name}: {detect} {contain}");
        assert_eq!(evidence.funds_lost, "0", "{name}");
    }
}

/// `drill` against the embedded target with `fault`: failed in `phase`, under one of the fault's own rules, with
/// its evidence.
fn caught(drill: &str, fault: Fault, phase: &str) -> DrillEvidence {
    let check = run(drill, FaultSet::of([fault]));
    let CheckOutcome::Failed(failure) = &check.outcome else { panic!("{drill} missed {fault}: {check:#?}") };
    assert!(failure.message.starts_with(&format!("{phase}: ")), "{drill} / {fault}: {}", failure.message);
    assert!(
        fault.info().rules.iter().any(|rule| failure.message.contains(rule)),
        "{drill} / {fault}: {} names none of {:?}",
        failure.message,
        fault.info().rules
    );
    let evidence = check.evidence.expect("evidence");
    assert!(!evidence.timeline.last().expect("timeline").ok, "{drill} / {fault}");
    assert!(evidence.time_to_detect_ms.is_some() || phase == "detect", "{drill} / {fault}");
    evidence
}

#[test]
fn the_provider_outage_drill_fails_when_deliveries_apply_twice_or_an_error_is_taken_for_an_invoice() {
    // The burst's four copies of a 100 USD payment, all applied: three times too many.
    let evidence = caught("provider-outage", Fault::NoWebhookDedup, "recover");
    assert_eq!(evidence.funds_lost, "300.00 USD");
    caught("provider-outage", Fault::RacyWebhookDedup, "recover");
    let evidence = caught("provider-outage", Fault::ShkeeperErrorAsSuccess, "detect");
    assert_eq!(evidence.time_to_detect_ms, None);
}

#[test]
fn the_leaked_secret_drill_fails_when_the_old_secret_still_works_or_nothing_is_dead_lettered() {
    let evidence = caught("leaked-webhook-secret", Fault::OldSecretAfterRotation, "contain");
    assert_eq!(evidence.time_to_contain_ms, None);
    assert_eq!(evidence.funds_lost, "100.00 USD");
    caught("leaked-webhook-secret", Fault::DeadLetterDropped, "contain");
}

#[test]
fn the_suspicious_proof_drill_fails_when_one_admin_can_fund_or_decisions_go_unaudited() {
    caught("suspicious-payment-proof", Fault::ReusedTxHashNotFlagged, "detect");
    caught("suspicious-payment-proof", Fault::SameAdminApprovesTwice, "contain");
    caught("suspicious-payment-proof", Fault::RefusedAdminCallsNotAudited, "evidence");
}

#[test]
fn the_compromised_admin_drill_fails_when_the_attacker_acts_alone_or_keeps_its_socket() {
    caught("compromised-admin", Fault::StepUpNotChecked, "detect");
    caught("compromised-admin", Fault::SameAdminApprovesTwice, "detect");
    let evidence = caught("compromised-admin", Fault::NoDisconnectOnRevocation, "contain");
    assert!(evidence.time_to_detect_ms.is_some());
    caught("compromised-admin", Fault::RefusedAdminCallsNotAudited, "evidence");
}

#[test]
fn the_leaked_secret_drill_puts_the_secret_back_for_what_runs_next() {
    let options = TargetOptions::default();
    let profile = options.load_profile().expect("embedded profile");
    let mut session = Session::open(&options, profile, format!("drill{}", std::process::id())).expect("session");
    let key = session.adapter.shkeeper_key().to_owned();
    for name in ["leaked-webhook-secret", "provider-outage"] {
        let drills = drill::select(name).expect("shipped drill");
        let check = drill::run_drill(&drills[0], &mut session);
        assert_eq!(check.outcome, CheckOutcome::Passed, "{name}: {check:#?}");
        assert_eq!(session.adapter.shkeeper_key(), key, "{name}");
        // No secret is written into the evidence.
        let text = format!("{:?}", check.evidence);
        assert!(!text.contains(&key) && !text.contains("conform-drill-rotated"), "{name}: {text}");
    }
}

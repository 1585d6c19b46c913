//! Runbook drills (`drills/`): the stuck-release drill passes on the clean embedded target with its evidence,
//! fails when a payout retry carries a new idempotency key (the provider would pay twice), refuses a staging
//! profile, and a malformed drill file is reported by file, line and field.

use std::path::Path;
use std::process::{Command, Output};

use conform::drill::{self, Drill};
use conform::report::CheckOutcome;
use conform::suites::{CheckResult, Session, TargetOptions};
use conform_embedded::faults::{Fault, FaultSet};

fn stuck_release(faults: FaultSet) -> CheckResult {
    let options = TargetOptions { faults, ..TargetOptions::default() };
    let profile = options.load_profile().expect("embedded profile");
    let mut session = Session::open(&options, profile, format!("drill{}", std::process::id())).expect("session");
    let drills = drill::select("stuck-release").expect("shipped drill");
    drill::run_drill(&drills[0], &mut session)
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
    let phases: Vec<&str> = evidence.timeline.iter().map(|e| e.phase.as_str()).collect();
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
    let text = drill::DRILLS[0].1.replace("kind = \"drop\"", "kind = \"hold\"");
    std::fs::write(dir.join("bad.toml"), &text).expect("write");
    let line = text.lines().position(|l| l.starts_with("kind = ")).expect("kind") + 1;
    let out = conform(&["drill", "bad.toml", "--report-dir", "out"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("bad.toml:{line}: fault.kind: ")), "{stderr}");
    assert!(stderr.contains("money words"), "{stderr}");
    // An unknown key is located too.
    let error = Drill::parse("x.toml", &drill::DRILLS[0].1.replace("[recover]\n", "[recover]\nretries = 3\n"))
        .expect_err("unknown field");
    assert_eq!(error.field, "recover.retries", "{error}");
}

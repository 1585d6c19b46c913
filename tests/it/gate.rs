//! The launch gate against the real `contracts/launch-criteria.toml`: a clean run launches, a failed rule or an
//! unverified blocking criterion refuses launch, waivers are honoured while valid, and a wrong waivers file is
//! refused with its file, line and field. Then `conform gate` as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conform::contracts::LaunchCriteria;
use conform::error::Error;
use conform::gate::{Date, Waivers, decide};
use conform::report::Writer;
use conform::report::event::{
    CheckOutcome, CheckRecord, CriterionStatus, Event, Failure, GateDecision, RunStarted, SuiteStarted,
};
use conform::report::jsonl::JsonLines;

fn criteria() -> LaunchCriteria {
    LaunchCriteria::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/launch-criteria.toml"))
        .expect("launch-criteria.toml")
}

fn date(text: &str) -> Date {
    text.parse().expect("a date")
}

fn check(suite: &str, name: &str, rules: &[&str], tags: &[&str], outcome: CheckOutcome) -> CheckRecord {
    CheckRecord {
        suite: suite.to_owned(),
        name: name.to_owned(),
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        threats: Vec::new(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        outcome,
        observations: 1,
        requests: 1,
        duration_ms: 1,
        evidence: None,
    }
}

fn failed(message: &str) -> CheckOutcome {
    CheckOutcome::Failed(Failure {
        message: message.to_owned(),
        expected: "refused".to_owned(),
        observed: "accepted".to_owned(),
        seed: None,
        reproduction: Vec::new(),
        file: None,
        replay: None,
    })
}

/// A run in which every piece of evidence the criteria name has a passing check against a target: each rule, each
/// tag, and each suite (or `suite/name`).
struct CleanRun {
    checks: Vec<CheckRecord>,
    suites: Vec<String>,
}

impl CleanRun {
    fn new(criteria: &LaunchCriteria) -> CleanRun {
        let mut run = CleanRun { checks: Vec::new(), suites: Vec::new() };
        for criterion in criteria {
            let evidence = &criterion.evidence;
            for rule in &evidence.rules {
                run.add(check("properties", &format!("holds-{rule}"), &[rule], &[], CheckOutcome::Passed));
            }
            for tag in &evidence.tags {
                run.add(check("features", &format!("tagged-{tag}"), &[], &[tag], CheckOutcome::Passed));
            }
            for entry in &evidence.suites {
                let (suite, name) = entry.split_once('/').unwrap_or((entry, "smoke"));
                run.add(check(suite, name, &[], &[], CheckOutcome::Passed));
            }
        }
        run
    }

    fn add(&mut self, check: CheckRecord) {
        if !self.suites.contains(&check.suite) {
            self.suites.push(check.suite.clone());
        }
        if !self.checks.iter().any(|c| c.id() == check.id()) {
            self.checks.push(check);
        }
    }

    fn without_rule(mut self, rule: &str) -> CleanRun {
        self.checks.retain(|c| !c.rules.iter().any(|r| r == rule));
        self
    }

    fn decide(&self, criteria: &LaunchCriteria, waivers: &Waivers, today: &str) -> GateDecision {
        decide(criteria, waivers, &self.checks, &self.suites, date(today))
    }
}

fn status_of<'a>(decision: &'a GateDecision, id: &str) -> (&'a CriterionStatus, &'a str) {
    let criterion = decision.criteria.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id} decided"));
    (&criterion.status, &criterion.explanation)
}

#[test]
fn gate_passes_every_criterion_of_a_clean_run() {
    let criteria = criteria();
    let decision = CleanRun::new(&criteria).decide(&criteria, &Waivers::none(), "2026-06-01");
    assert_eq!(decision.criteria.len(), criteria.criterion.len());
    for criterion in &decision.criteria {
        assert_eq!(criterion.status, CriterionStatus::Passed, "{}: {}", criterion.id, criterion.explanation);
        assert!(criterion.explanation.starts_with("passed: "), "{}", criterion.explanation);
    }
    assert!(decision.launch);
}

#[test]
fn gate_fails_the_criterion_of_a_failed_rule() {
    let criteria = criteria();
    let mut run = CleanRun::new(&criteria);
    run.add(check("matrix", "get_escrow×stranger", &["AZ-2"], &["authz"], failed("a stranger read an escrow")));
    let decision = run.decide(&criteria, &Waivers::none(), "2026-06-01");
    let (status, explanation) = status_of(&decision, "LC-REST-AUTHZ");
    assert_eq!(*status, CriterionStatus::Failed);
    assert!(explanation.starts_with("failed: AZ-2 failed by matrix/get_escrow×stranger"), "{explanation}");
    assert!(explanation.contains("tagged authz"), "the tag evidence names the check too: {explanation}");
    assert!(!decision.launch);
    // A criterion that lists neither the rule, the tag nor the suite is untouched.
    assert_eq!(*status_of(&decision, "LC-WEBHOOKS").0, CriterionStatus::Passed);
}

#[test]
fn gate_fails_an_unverified_blocking_criterion() {
    let criteria = criteria();
    // RT-9 has no check at all, and RT-8 only an unverified one: both unverified, never passed.
    let mut run = CleanRun::new(&criteria).without_rule("RT-9").without_rule("RT-8");
    let reason = CheckOutcome::Unverified { reason: "the profile declares no rate limit".to_owned() };
    run.add(check("realtime", "rate-limit", &["RT-8"], &[], reason));
    let decision = run.decide(&criteria, &Waivers::none(), "2026-06-01");
    let (status, explanation) = status_of(&decision, "LC-REALTIME");
    assert_eq!(*status, CriterionStatus::Unverified);
    assert!(explanation.contains("2 rules unverified: RT-8, RT-9"), "{explanation}");
    assert!(explanation.contains("realtime/rate-limit unverified"), "{explanation}");
    assert!(explanation.ends_with("unverified blocks launch (LC-1)"), "{explanation}");
    assert!(!decision.launch);
}

#[test]
fn gate_reports_a_suite_that_did_not_run_as_unverified() {
    let criteria = criteria();
    let mut run = CleanRun::new(&criteria);
    run.checks.retain(|c| c.suite != "drills");
    run.suites.retain(|s| s != "drills");
    let decision = run.decide(&criteria, &Waivers::none(), "2026-06-01");
    let (status, explanation) = status_of(&decision, "LC-DRILL-PROVIDER-OUTAGE");
    assert_eq!(*status, CriterionStatus::Unverified);
    assert!(explanation.contains("suite drills did not run"), "{explanation}");
}

const WAIVER: &str = r#"# a comment
[[waiver]]
criterion = "LC-REST-AUTHZ"
reason = "The stranger read is behind a feature flag that stays off at launch."
approver_role = "security-engineering-lead"
expires = 2027-01-31
"#;

/// A run whose only failure is AZ-2, in a suite no criterion lists, so that only LC-REST-AUTHZ is unmet.
fn run_failing_only_rest_authz(criteria: &LaunchCriteria) -> CleanRun {
    let mut run = CleanRun::new(criteria);
    run.add(check("races", "get_escrow×stranger", &["AZ-2"], &[], failed("a stranger read an escrow")));
    run
}

#[test]
fn gate_waives_a_failed_blocking_criterion_with_a_valid_waiver() {
    let criteria = criteria();
    let waivers = Waivers::parse("waivers.toml", WAIVER, &criteria).expect("valid waivers");
    let decision = run_failing_only_rest_authz(&criteria).decide(&criteria, &waivers, "2027-01-31");
    let (status, explanation) = status_of(&decision, "LC-REST-AUTHZ");
    assert_eq!(*status, CriterionStatus::Waived);
    assert!(
        explanation.starts_with(
            "waived until 2027-01-31 by security-engineering-lead (waivers.toml:3): The stranger read is behind"
        ),
        "{explanation}"
    );
    assert!(explanation.contains("Without the waiver, failed: AZ-2 failed by races/get_escrow×stranger"));
    assert!(decision.launch, "{decision:#?}");
}

#[test]
fn gate_fails_a_criterion_whose_waiver_expired() {
    let criteria = criteria();
    let waivers = Waivers::parse("waivers.toml", WAIVER, &criteria).expect("valid waivers");
    let decision = run_failing_only_rest_authz(&criteria).decide(&criteria, &waivers, "2027-02-01");
    let (status, explanation) = status_of(&decision, "LC-REST-AUTHZ");
    assert_eq!(*status, CriterionStatus::Failed);
    assert!(explanation.ends_with("its waiver (waivers.toml:3) expired on 2027-01-31"), "{explanation}");
    assert!(!decision.launch);
}

/// The error for `text` as a waivers file, judged on 2026-06-01.
fn waiver_error(text: &str) -> String {
    match Waivers::parse("waivers.toml", text, &criteria()) {
        Err(error @ Error::Waiver { .. }) => error.to_string(),
        Err(other) => panic!("not a waiver error: {other}"),
        Ok(waivers) => panic!("accepted: {waivers:?}"),
    }
}

#[test]
fn gate_refuses_wrong_waivers_naming_file_line_and_field() {
    let cases = [
        (
            WAIVER.replace("approver_role =", "approver =").as_str().to_owned(),
            "waivers.toml:5: approver: unknown field `approver`",
        ),
        (
            WAIVER.replace("reason = \"The stranger read is behind a feature flag that stays off at launch.\"\n", ""),
            "waivers.toml:2: reason: missing field `reason`",
        ),
        (
            WAIVER.replace("security-engineering-lead", "cto"),
            "waivers.toml:5: approver_role: `cto` is not one of the owners",
        ),
        (WAIVER.replace("LC-REST-AUTHZ", "LC-NOPE"), "waivers.toml:3: criterion: unknown criterion `LC-NOPE`"),
        (WAIVER.replace("2027-01-31", "\"2027-01-31\""), "waivers.toml:6: expires:"),
        (
            WAIVER.replace("2027-01-31", "2027-01-31T10:00:00Z"),
            "waivers.toml:6: expires: `2027-01-31T10:00:00Z` is not a plain date",
        ),
        (
            WAIVER.replace("\"The stranger read is behind a feature flag that stays off at launch.\"", "\" \""),
            "waivers.toml:4: reason: empty",
        ),
        (
            format!("{WAIVER}\n{}", WAIVER.replace("# a comment\n", "")),
            "waivers.toml:9: criterion: `LC-REST-AUTHZ` already has a waiver at waivers.toml:3",
        ),
    ];
    for (text, expected) in cases {
        let error = waiver_error(&text);
        assert!(error.starts_with(expected), "expected {expected:?}, got {error:?} for\n{text}");
    }
}

#[test]
fn gate_accepts_the_example_waivers_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/waivers.example.toml");
    let waivers = Waivers::load(&path, &criteria()).expect("the example is valid");
    assert_eq!(waivers.waivers.len(), 1);
}

// ------------------------------------------------------------------------------------------------------------------
// `conform gate`.

fn conform(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conform")).args(args).current_dir(dir).output().expect("run conform")
}

/// A scratch directory with `reports/events.jsonl` holding `run`'s events.
fn report_dir(name: &str, run: &CleanRun) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gate-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).expect("scratch dir");
    let mut events = JsonLines::create(&reports).expect("events.jsonl");
    let mut emit = |event: Event| events.write(&event).expect("write event");
    emit(Event::RunStarted(RunStarted {
        version: "0.1.0".to_owned(),
        seed: 1,
        target: "embedded".to_owned(),
        environment: "test".to_owned(),
        faults: Vec::new(),
        suites: run.suites.clone(),
        tags: Vec::new(),
    }));
    for suite in &run.suites {
        emit(Event::SuiteStarted(SuiteStarted { suite: suite.clone(), planned: None }));
    }
    for check in &run.checks {
        emit(Event::CheckFinished(check.clone()));
    }
    dir
}

fn criteria_arg() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/launch-criteria.toml").display().to_string()
}

#[test]
fn gate_command_exits_0_on_a_clean_run_and_writes_gate_json() {
    let dir = report_dir("clean", &CleanRun::new(&criteria()));
    let out = conform(&["gate", "--criteria", &criteria_arg(), "--today", "2026-06-01"], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("launch may go ahead"), "{stdout}");
    let json = std::fs::read_to_string(dir.join("reports/gate.json")).expect("gate.json");
    let decision: GateDecision = serde_json::from_str(&json).expect("a gate decision");
    assert!(decision.launch);
}

#[test]
fn gate_command_exits_1_when_launch_is_refused_and_honours_waivers() {
    let criteria = criteria();
    let dir = report_dir("refused", &run_failing_only_rest_authz(&criteria));
    let out = conform(&["gate", "--criteria", &criteria_arg(), "--today", "2026-06-01"], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("failed") && l.contains("LC-REST-AUTHZ")), "{stdout}");
    assert!(stdout.contains("launch refused: 1 of 13 blocking criteria not met (LC-REST-AUTHZ)"), "{stdout}");

    std::fs::write(dir.join("waivers.toml"), WAIVER).expect("waivers");
    let out =
        conform(&["gate", "--criteria", &criteria_arg(), "--waivers", "waivers.toml", "--today", "2026-06-01"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn gate_command_exits_2_on_bad_input() {
    let dir = report_dir("bad-input", &CleanRun::new(&criteria()));
    std::fs::write(dir.join("waivers.toml"), WAIVER.replace("security-engineering-lead", "cto")).expect("waivers");
    let cases: [(&[&str], &str); 4] = [
        (&["--waivers", "waivers.toml", "--today", "2026-06-01"], "waivers.toml:5: approver_role:"),
        (&["--report-dir", "elsewhere", "--today", "2026-06-01"], "elsewhere/events.jsonl"),
        (&["--today", "2026-13-01"], "not a date"),
        (&["--waivers", "missing.toml"], "missing.toml"),
    ];
    for (args, expected) in cases {
        let criteria = criteria_arg();
        let mut all = vec!["gate", "--criteria", criteria.as_str()];
        all.extend_from_slice(args);
        let out = conform(&all, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in {stderr}");
    }
    let out = conform(&["gate", "--criteria", "nowhere.toml"], &dir);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn gate_command_help_has_examples_and_exit_statuses() {
    let out = conform(&["gate", "--help"], Path::new(env!("CARGO_TARGET_TMPDIR")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for expected in ["Examples:", "--waivers", "--today", "Exit statuses:", "launch refused"] {
        assert!(stdout.contains(expected), "{expected} missing from:\n{stdout}");
    }
}

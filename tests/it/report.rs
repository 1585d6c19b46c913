//! The report writers, each fed one fixed run: a passed check, a failed check with a three-step reproduction and a
//! replay command, an unverified check, a drill with its evidence, and a launch decision. Every output is
//! snapshotted (times, durations, the seed, ports and the date redacted); the JUnit file is also validated against
//! the Jenkins xUnit schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use conform::report::Writer;
use conform::report::console::{Console, ConsoleStyle};
use conform::report::event::{
    CheckOutcome, CheckRecord, CriterionDecision, CriterionStatus, DrillEvidence, Event, Failure, GateDecision,
    ReproStep, RuleLine, RuleResult, RunFinished, RunStarted, SuiteFinished, SuiteStarted, ThreatLine, TimelineEntry,
};
use conform::report::{html, junit, markdown};

/// A seed no other number in the fixture looks like, so that a filter can redact it wherever it appears.
const SEED: u64 = 4_242_424_242;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn check(
    suite: &str,
    name: &str,
    rules: &[&str],
    threats: &[&str],
    tags: &[&str],
    outcome: CheckOutcome,
) -> CheckRecord {
    CheckRecord {
        suite: suite.to_owned(),
        name: name.to_owned(),
        rules: strings(rules),
        threats: strings(threats),
        tags: strings(tags),
        outcome,
        observations: 1,
        requests: 1,
        duration_ms: 12,
        evidence: None,
    }
}

fn failed_check() -> CheckRecord {
    let step = |request: &str, expected: &str, observed: &str| ReproStep {
        request: request.to_owned(),
        expected: expected.to_owned(),
        observed: observed.to_owned(),
    };
    let failure = Failure {
        message: "a stranger read an escrow they are not a party to".to_owned(),
        expected: "404 not_found".to_owned(),
        observed: "200 with the escrow".to_owned(),
        seed: Some(SEED),
        reproduction: vec![
            step("POST /escrows as alice (buyer), seller bob, 10.00 USD", "201 escrow e1", "201 escrow e1"),
            step("POST /escrows/e1/fund as alice", "200 funded", "200 funded"),
            // Markup in the data: every writer must show it as text.
            step("GET /escrows/e1 as mallory (stranger)", "404 not_found", "200 <escrow e1 & \"its\" parties>"),
        ],
        file: Some("counterexamples/matrix-get_escrow-stranger.json".to_owned()),
        replay: Some(
            "conform replay reports/counterexamples/matrix-get_escrow-stranger.json --target http://127.0.0.1:41234"
                .to_owned(),
        ),
    };
    CheckRecord {
        observations: 3,
        requests: 3,
        duration_ms: 87,
        ..check(
            "matrix",
            "get_escrow×stranger",
            &["AZ-2", "ESC-8"],
            &["T01"],
            &["authz"],
            CheckOutcome::Failed(failure),
        )
    }
}

fn drill_check() -> CheckRecord {
    let entry = |at_ms: u64, phase: &str, text: &str| TimelineEntry {
        at_ms,
        phase: phase.to_owned(),
        text: text.to_owned(),
        ok: true,
    };
    CheckRecord {
        duration_ms: 5_012,
        requests: 41,
        evidence: Some(DrillEvidence {
            timeline: vec![
                entry(0, "precondition", "escrow e1 funded, payout pending"),
                entry(150, "inject", "provider outage: SHKeeper answers 503"),
                entry(1_200, "detect", "payout marked failed, alert raised"),
                entry(2_500, "contain", "retries paused; no ledger entry without a payout"),
                TimelineEntry {
                    ok: false,
                    ..entry(4_800, "recover", "one retry was sent before the provider came back")
                },
            ],
            time_to_detect_ms: Some(1_050),
            time_to_contain_ms: Some(2_350),
            funds_lost: "0 USD".to_owned(),
        }),
        ..check("drills", "provider-outage", &["DRL-1", "PRV-2"], &["T13"], &["drill"], CheckOutcome::Passed)
    }
}

fn rule(id: &str, title: &str, result: RuleResult, count: u64, failed_by: &[&str], reason: Option<&str>) -> RuleLine {
    RuleLine {
        id: id.to_owned(),
        title: title.to_owned(),
        result,
        count,
        failed_by: strings(failed_by),
        reason: reason.map(str::to_owned),
    }
}

fn criterion(id: &str, title: &str, blocking: bool, status: CriterionStatus, explanation: &str) -> CriterionDecision {
    CriterionDecision {
        id: id.to_owned(),
        title: title.to_owned(),
        blocking,
        status,
        explanation: explanation.to_owned(),
    }
}

/// The fixed run every writer renders.
fn events() -> Vec<Event> {
    let passed = CheckRecord {
        observations: 256,
        requests: 1_024,
        duration_ms: 1_234,
        ..check(
            "properties",
            "escrow_funds_once",
            &["ESC-1", "LED-3"],
            &["T06", "T07"],
            &["escrow", "ledger"],
            CheckOutcome::Passed,
        )
    };
    let unverified = check(
        "properties",
        "ledger_matches_model",
        &["LED-2"],
        &["T07"],
        &["ledger"],
        CheckOutcome::Unverified { reason: "the profile declares no ledger read (capability `ledger`)".to_owned() },
    );
    let rules = vec![
        rule("ESC-1", "An escrow is funded once", RuleResult::Passed, 256, &[], None),
        rule("ESC-8", "Only parties see an escrow", RuleResult::Failed, 0, &["matrix/get_escrow×stranger"], None),
        rule(
            "LED-2",
            "The ledger balances",
            RuleResult::Unverified,
            0,
            &[],
            Some("properties/ledger_matches_model: the profile declares no ledger read (capability `ledger`)"),
        ),
        rule("LED-3", "A release moves the escrowed amount once", RuleResult::Passed, 256, &[], None),
        rule(
            "AZ-2",
            "Object-level authorization on escrows",
            RuleResult::Failed,
            0,
            &["matrix/get_escrow×stranger"],
            None,
        ),
        rule(
            "RT-3",
            "Rooms are derived by the server",
            RuleResult::Unverified,
            0,
            &[],
            Some("no check that ran traces to it"),
        ),
        rule("DRL-1", "Provider outage drill", RuleResult::Passed, 1, &[], None),
        rule("PRV-2", "A provider outage leaves no orphan entry", RuleResult::Passed, 1, &[], None),
    ];
    let threats = vec![
        ThreatLine {
            id: "T01".to_owned(),
            title: "Object-level authorization bypass on escrows".to_owned(),
            rules: vec![
                ("ESC-8".to_owned(), RuleResult::Failed),
                ("AZ-2".to_owned(), RuleResult::Failed),
                ("RT-3".to_owned(), RuleResult::Unverified),
            ],
        },
        ThreatLine {
            id: "T13".to_owned(),
            title: "Provider outage".to_owned(),
            rules: vec![("DRL-1".to_owned(), RuleResult::Passed), ("PRV-2".to_owned(), RuleResult::Passed)],
        },
    ];
    let gate = GateDecision {
        launch: false,
        criteria: vec![
            criterion(
                "LC-REST-AUTHZ",
                "Every operation answers every principal as the matrix says",
                true,
                CriterionStatus::Failed,
                "failed: AZ-2 failed by matrix/get_escrow×stranger; 1 rule unverified: RT-3",
            ),
            criterion(
                "LC-DRILL-PROVIDER-OUTAGE",
                "Drill: provider outage is contained",
                true,
                CriterionStatus::Passed,
                "passed: 2 rules passed; suite drills/provider-outage passed",
            ),
            criterion(
                "LC-LEDGER",
                "Ledger invariants hold",
                true,
                CriterionStatus::Waived,
                "waived until 2027-01-31 by finance-operations-lead (waivers.toml:3): ledger read ships next sprint. Without the waiver, unverified: 1 rule unverified: LED-2",
            ),
            criterion(
                "LC-AUDIT",
                "Admin calls leave an audit record",
                false,
                CriterionStatus::Unverified,
                "unverified: suite features did not run; not blocking",
            ),
        ],
    };
    vec![
        Event::RunStarted(RunStarted {
            version: "0.1.0".to_owned(),
            seed: SEED,
            target: "embedded".to_owned(),
            environment: "test".to_owned(),
            faults: strings(&["stranger-reads-escrow"]),
            suites: strings(&["properties", "matrix", "drills"]),
            tags: Vec::new(),
        }),
        Event::SuiteStarted(SuiteStarted { suite: "properties".to_owned(), planned: Some(2) }),
        Event::CheckFinished(passed),
        Event::CheckFinished(unverified),
        Event::SuiteFinished(SuiteFinished {
            suite: "properties".to_owned(),
            passed: 1,
            failed: 0,
            unverified: 1,
            duration_ms: 2_345,
        }),
        Event::SuiteStarted(SuiteStarted { suite: "matrix".to_owned(), planned: Some(1) }),
        Event::CheckFinished(failed_check()),
        Event::SuiteFinished(SuiteFinished {
            suite: "matrix".to_owned(),
            passed: 0,
            failed: 1,
            unverified: 0,
            duration_ms: 345,
        }),
        Event::SuiteStarted(SuiteStarted { suite: "drills".to_owned(), planned: None }),
        Event::CheckFinished(drill_check()),
        Event::SuiteFinished(SuiteFinished {
            suite: "drills".to_owned(),
            passed: 1,
            failed: 0,
            unverified: 0,
            duration_ms: 5_012,
        }),
        Event::RunFinished(RunFinished {
            rules,
            threats,
            gate: Some(gate),
            exit_code: 1,
            exit_meaning: "findings: at least one rule is broken (see the reports)".to_owned(),
            duration_ms: 9_876,
        }),
    ]
}

/// Redacts what changes from run to run: durations and times, the seed, ports and dates.
fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d+\.\d{3}s", "[duration]");
    settings.add_filter(r#"time="[0-9.]+""#, r#"time="[time]""#);
    settings.add_filter(&SEED.to_string(), "[seed]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[date]");
    settings
}

fn feed(writer: &mut impl Writer) {
    for event in events() {
        writer.write(&event).expect("the writer accepts every event");
    }
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn console_report_plain() {
    let mut console = Console::new(Vec::new(), ConsoleStyle::PLAIN);
    feed(&mut console);
    let text = String::from_utf8(console.into_inner()).expect("utf-8");
    assert!(!text.contains('\x1b'), "plain output has no escape codes:\n{text}");
    redactions().bind(|| insta::assert_snapshot!("console_plain", text));
}

#[test]
fn console_report_colours_only_a_terminal_without_no_color() {
    assert_eq!(ConsoleStyle::for_output(false, None), ConsoleStyle { progress: false, color: false });
    assert_eq!(ConsoleStyle::for_output(true, None), ConsoleStyle { progress: true, color: true });
    assert_eq!(ConsoleStyle::for_output(true, Some("1".into())), ConsoleStyle { progress: true, color: false });
    // no-color.org: an empty NO_COLOR does not count.
    assert_eq!(ConsoleStyle::for_output(true, Some("".into())), ConsoleStyle { progress: true, color: true });

    let mut console = Console::new(Vec::new(), ConsoleStyle { progress: false, color: true });
    feed(&mut console);
    let text = String::from_utf8(console.into_inner()).expect("utf-8");
    assert!(text.contains("\x1b[31mFAIL"), "{text}");
}

#[test]
fn console_report_with_progress_bars_prints_only_what_needs_reading() {
    // Bars go to the terminal (hidden when stdout is not one, as under the test runner); the output keeps failures,
    // unverified checks, suite totals and the end, but not a line per passed check.
    let mut console = Console::new(Vec::new(), ConsoleStyle { progress: true, color: false });
    feed(&mut console);
    let text = String::from_utf8(console.into_inner()).expect("utf-8");
    assert!(!text.contains("pass "), "{text}");
    for expected in
        ["FAIL       matrix/get_escrow×stranger", "unverified properties/ledger_matches_model", "drills: 1 passed"]
    {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(text.ends_with("(in 9.876s)\n"), "{text}");
}

#[test]
fn junit_report() {
    let dir = scratch("junit");
    feed(&mut junit::Junit::new(&dir));
    let path = dir.join(junit::FILE_NAME);
    let xml = read(&path);
    redactions().bind(|| insta::assert_snapshot!("junit", xml));
    if let Err(errors) = validate_junit(&path) {
        panic!("{} does not validate against junit-10.xsd:\n{errors}", path.display());
    }
}

#[test]
fn junit_validation_rejects_a_broken_document() {
    // The same report with one required attribute renamed: the validator must refuse it, or a passing
    // `junit_report` would prove nothing.
    let dir = scratch("junit-broken");
    feed(&mut junit::Junit::new(&dir));
    let path = dir.join(junit::FILE_NAME);
    let broken = read(&path).replacen("<testcase name=", "<testcase title=", 1);
    std::fs::write(&path, broken).expect("write");
    let errors = validate_junit(&path).expect_err("a testcase without a name must not validate");
    assert!(errors.contains("name"), "the error names the missing attribute: {errors}");
}

/// Runs `tests/peers/validate-xml.mjs` (xmllint compiled to WebAssembly) on `file` with the vendored schema.
fn validate_junit(file: &Path) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let peers = root.join("tests/peers");
    assert!(
        peers.join("node_modules/xmllint-wasm/package.json").is_file(),
        "tests/peers/node_modules/xmllint-wasm is missing: run `npm ci --prefix tests/peers` (needs Node.js)"
    );
    let output = Command::new("node")
        .arg(peers.join("validate-xml.mjs"))
        .arg(root.join("tests/schemas/junit-10.xsd"))
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js and run `npm ci --prefix tests/peers`"));
    match output.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        _ => panic!("validate-xml.mjs failed to run: {}", String::from_utf8_lossy(&output.stderr)),
    }
}

#[test]
fn markdown_report() {
    let dir = scratch("markdown");
    feed(&mut markdown::Markdown::new(&dir));
    let md = read(&dir.join(markdown::FILE_NAME));
    redactions().bind(|| insta::assert_snapshot!("markdown", md));
}

#[test]
fn html_report() {
    let dir = scratch("html");
    feed(&mut html::Html::new(&dir).with_date("2026-05-01T12:00:00Z"));
    let page = read(&dir.join(html::FILE_NAME));
    redactions().bind(|| insta::assert_snapshot!("html", page));

    // Self-contained: no script, no external asset or link.
    for forbidden in ["<script", "src=", "href=\"http", "<link"] {
        assert!(!page.contains(forbidden), "report.html contains {forbidden}");
    }
    // The data's markup is text.
    assert!(page.contains("200 &lt;escrow e1 &amp; &quot;its&quot; parties&gt;"));
    assert!(!page.contains("<escrow"));
    // From the failed rule to its finding, whose reproduction highlights the differing step.
    let anchor = "check-matrix-get_escrow-stranger";
    let rule_row = page.lines().find(|l| l.starts_with("<tr id=\"rule-AZ-2\">")).expect("AZ-2 row");
    assert!(rule_row.contains(&format!("href=\"#{anchor}\"")), "{rule_row}");
    let finding = &page[page.find(&format!("<article id=\"{anchor}\">")).expect("the finding")..];
    let finding = &finding[..finding.find("</article>").expect("its end")];
    assert!(finding.contains("<tr class=\"differs\"><td>3</td>"), "{finding}");
    assert!(finding.contains("conform replay reports/counterexamples/matrix-get_escrow-stranger.json"));
}

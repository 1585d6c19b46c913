//! `junit.xml`: the run for CI systems that show test results (Jenkins, GitLab, GitHub actions that read JUnit).
//!
//! One `<testsuite>` per suite, one `<testcase>` per check (name = check name, classname = suite). A failed check
//! is a `<failure>` whose message is the finding's one line and whose text is the whole reproduction with the replay
//! command; an unverified check is `<skipped>` with the reason; every check's rules, threats and tags are in its
//! `<system-out>`. When the run carries a launch decision, a `launch-gate` suite has one case per criterion, so that
//! the CI page shows why a launch was refused. Written at `RunFinished`; it validates against the Jenkins xUnit
//! `junit-10.xsd` (tests/schemas/).

use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::Writer;
use super::event::{CheckOutcome, CheckRecord, CriterionStatus, Event, GateDecision, RunFinished, RunStarted};
use super::run_log::{RunLog, SuiteLog};
use super::text;
use crate::error::Error;

/// The file name in the report directory.
pub const FILE_NAME: &str = "junit.xml";

/// The suite holding one case per launch criterion.
pub const GATE_SUITE: &str = "launch-gate";

/// Keeps the run and writes `junit.xml` when it finishes.
pub struct Junit {
    path: PathBuf,
    log: RunLog,
}

impl Junit {
    /// A writer of `dir/junit.xml`; the file is written at `RunFinished`.
    pub fn new(dir: &Path) -> Junit {
        Junit { path: dir.join(FILE_NAME), log: RunLog::default() }
    }
}

impl Writer for Junit {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::RunStarted(run) => self.log.run_started(run),
            Event::SuiteStarted(suite) => self.log.suite_started(suite),
            Event::CheckFinished(check) => self.log.check_finished(check),
            Event::SuiteFinished(suite) => self.log.suite_finished(suite),
            Event::RunFinished(finished) => {
                let xml = render(&self.log, finished)?;
                std::fs::write(&self.path, xml)
                    .map_err(|source| Error::ReportWrite { path: self.path.clone(), source })?;
            }
        }
        Ok(())
    }
}

/// The JUnit document of a finished run.
fn render(log: &RunLog, finished: &RunFinished) -> Result<String, Error> {
    let mut report = Report::new("conform");
    report.set_time(millis(finished.duration_ms));
    let properties = log.run.as_ref().map(run_properties).unwrap_or_default();
    for suite in &log.suites {
        report.add_test_suite(test_suite(suite, &properties));
    }
    if let Some(gate) = &finished.gate {
        report.add_test_suite(gate_suite(gate));
    }
    let xml = report.to_string().map_err(|e| Error::Usage(format!("cannot encode {FILE_NAME}: {e}")))?;
    Ok(without_root_skipped_count(xml))
}

/// The run's description, repeated on each suite (`<testsuites>` cannot carry properties).
fn run_properties(run: &RunStarted) -> Vec<Property> {
    vec![
        Property::new("conform.version", run.version.as_str()),
        Property::new("target", run.target.as_str()),
        Property::new("environment", run.environment.as_str()),
        Property::new("seed", run.seed.to_string()),
        Property::new("faults", text::list_or_none(&run.faults)),
        Property::new("tags", text::list_or_none(&run.tags)),
    ]
}

fn test_suite(suite: &SuiteLog, properties: &[Property]) -> TestSuite {
    let mut test_suite = TestSuite::new(suite.name.as_str());
    test_suite.add_properties(properties.iter().cloned());
    if let Some(finished) = &suite.finished {
        test_suite.set_time(millis(finished.duration_ms));
    }
    test_suite.add_test_cases(suite.checks.iter().map(test_case));
    test_suite
}

fn test_case(check: &CheckRecord) -> TestCase {
    let status = match &check.outcome {
        CheckOutcome::Passed => TestCaseStatus::success(),
        CheckOutcome::Failed(failure) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(failure.message.as_str())
                .set_type(format!("broken rule: {}", check.rules.join(", ")))
                .set_description(text::reproduction_text(failure));
            status
        }
        CheckOutcome::Unverified { reason } => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(format!("unverified: {reason}")).set_type("unverified");
            status
        }
    };
    let mut case = TestCase::new(check.name.as_str(), status);
    case.set_classname(check.suite.as_str()).set_time(millis(check.duration_ms));
    let mut out =
        format!("{}\nobservations: {}; requests: {}\n", text::trace_line(check), check.observations, check.requests);
    if let Some(evidence) = &check.evidence {
        out.push_str(&text::evidence_text(evidence));
    }
    case.set_system_out(out);
    case
}

/// One case per criterion: a blocking criterion that stands in the way of launch is a failure, a non-blocking one
/// that did not pass is skipped (reported, never blocking), and passed or waived ones pass; the explanation is in
/// the output either way.
fn gate_suite(gate: &GateDecision) -> TestSuite {
    let mut suite = TestSuite::new(GATE_SUITE);
    suite.add_property(Property::new("launch", if gate.launch { "go" } else { "refused" }));
    for criterion in &gate.criteria {
        let status = match (criterion.status, criterion.blocking) {
            (CriterionStatus::Passed | CriterionStatus::Waived, _) => TestCaseStatus::success(),
            (CriterionStatus::Failed | CriterionStatus::Unverified, true) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(criterion.explanation.as_str())
                    .set_type(format!("blocking criterion {}", text::criterion_status(criterion.status)));
                status
            }
            (CriterionStatus::Failed | CriterionStatus::Unverified, false) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(criterion.explanation.as_str()).set_type("advisory criterion not met");
                status
            }
        };
        let mut case = TestCase::new(criterion.id.as_str(), status);
        case.set_classname(GATE_SUITE).set_system_out(format!(
            "{}\nstatus: {}\n{}\n",
            criterion.title,
            text::criterion_status(criterion.status),
            criterion.explanation
        ));
        suite.add_test_case(case);
    }
    suite
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// quick-junit always writes a `skipped` count on the root `<testsuites>`, which the Jenkins xUnit schema
/// (`junit-10.xsd`) does not allow there, and the xUnit plugin rejects a report that does not validate. Each
/// `<testsuite>` keeps its own `skipped` count (allowed), so nothing is lost by dropping the root's.
fn without_root_skipped_count(mut xml: String) -> String {
    let Some(root) = xml.find("<testsuites") else { return xml };
    let root_end = xml[root..].find('>').map_or(xml.len(), |end| root + end);
    if let Some(attribute) = xml[root..root_end].find(" skipped=\"").map(|at| root + at) {
        let value_start = attribute + " skipped=\"".len();
        if let Some(value_len) = xml[value_start..root_end].find('"') {
            xml.replace_range(attribute..value_start + value_len + 1, "");
        }
    }
    xml
}

#[cfg(test)]
mod tests {
    use super::without_root_skipped_count;

    #[test]
    fn only_the_root_skipped_count_is_dropped() {
        let xml = r#"<?xml version="1.0"?><testsuites name="conform" tests="2" skipped="1" failures="0"><testsuite name="a" skipped="1"/></testsuites>"#;
        assert_eq!(
            without_root_skipped_count(xml.to_owned()),
            r#"<?xml version="1.0"?><testsuites name="conform" tests="2" failures="0"><testsuite name="a" skipped="1"/></testsuites>"#
        );
    }
}

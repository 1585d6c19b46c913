//! The suites: each runs its checks (on the model alone, or side by side with a target through a [`Session`]) and
//! reports every check to the event stream as it ends, tagged with its rules, their threats and its areas.

pub mod features;
pub mod matrix;
pub mod model;
mod passkeys;
pub mod properties;
pub mod providers;
pub mod races;
pub mod realtime;
pub mod session;
pub mod sessions;
pub mod webhooks;

use std::time::Instant;

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

pub use session::{Session, TargetOptions};

use crate::contracts::Rules;
use crate::error::Error;
use crate::report::event::{DrillEvidence, Failure, ReproStep, SuiteFinished, SuiteStarted};
use crate::report::tally::threats_of;
use crate::report::{CheckOutcome, CheckRecord, Event, EventStream};

/// Every suite, in the order a run takes them.
pub const SUITES: [&str; 10] =
    ["model", "properties", "matrix", "features", "drills", "races", "sessions", "webhooks", "providers", "realtime"];

/// Runs every suite that drives a target, in order; `replay_hint` is what `conform replay` needs besides the file
/// to reach the same target (e.g. ` --profile FILE`).
pub fn run_target_suites(
    session: &mut Session,
    options: model::GeneratedOptions,
    replay_hint: &str,
    report_dir: &std::path::Path,
    reporter: &mut Reporter<'_>,
) -> Result<(), Error> {
    type Suite<'s> = Box<dyn FnOnce(&mut Session, &mut Reporter<'_>) -> Result<(), Error> + 's>;
    let suites: Vec<Suite<'_>> = vec![
        Box::new(|session, reporter| properties::run(session, options, replay_hint, report_dir, reporter).map(drop)),
        Box::new(matrix::run),
        Box::new(features::run),
        Box::new(|session, reporter| crate::drill::run_suite(session, &crate::drill::select("all")?, reporter)),
        Box::new(races::run),
        Box::new(sessions::run),
        Box::new(webhooks::run),
        Box::new(providers::run),
        Box::new(realtime::run),
    ];
    for suite in suites {
        if reporter.found_what_it_looks_for() {
            break;
        }
        suite(session, reporter)?;
    }
    Ok(())
}

/// The area tag of a rule id (`AZ-2` → `authz`): what `--tags` and launch criteria select by.
pub fn area_of(rule: &str) -> Option<&'static str> {
    let prefix = rule.split('-').next()?;
    Some(match prefix {
        "ESC" => "escrow",
        "LED" => "ledger",
        "AZ" => "authz",
        "RT" => "realtime",
        "SES" => "sessions",
        "WH" => "webhooks",
        "PRV" => "providers",
        "DRL" => "drills",
        "LC" => "launch",
        "CAP" => "capabilities",
        _ => return None,
    })
}

/// The tags `--tags` accepts: the areas and the threat ids.
pub fn known_tags(catalog: &Rules) -> Vec<String> {
    let mut tags: Vec<String> = catalog.iter().filter_map(|r| area_of(&r.id)).map(str::to_owned).collect();
    tags.extend(catalog.iter().flat_map(|r| r.threats.iter().cloned()));
    tags.sort();
    tags.dedup();
    tags
}

/// The proptest runner every generated suite uses: ChaCha seeded from the run's one seed, no persistence file.
pub fn runner(seed: u64, cases: u32, max_shrink_iters: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, max_shrink_iters, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(seed)))
}

/// The seed as proptest's ChaCha RNG wants it.
pub fn rng_seed(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed.rotate_left(i as u32 * 16) ^ (i as u64)).to_le_bytes());
    }
    bytes
}

/// What a suite needs from the run: the rule catalog (for threats), the stream, and which tags are selected.
pub struct Reporter<'a> {
    /// The rule catalog.
    pub catalog: &'a Rules,
    /// Where events go.
    pub stream: &'a mut EventStream,
    /// `--tags`; empty selects everything.
    pub tags: &'a [String],
    /// Skip the remaining suites once a check failed under one of these rules, or under any rule when empty: the
    /// selftest needs only the first detection of a fault under the rules it breaks. `None` runs everything.
    pub stop_once_failed_under: Option<Vec<String>>,
}

impl<'a> Reporter<'a> {
    /// A reporter of every check to `stream`.
    pub fn new(catalog: &'a Rules, stream: &'a mut EventStream, tags: &'a [String]) -> Reporter<'a> {
        Reporter { catalog, stream, tags, stop_once_failed_under: None }
    }

    /// Whether the run may stop: a check failed under one of the rules of [`Reporter::stop_once_failed_under`].
    fn found_what_it_looks_for(&self) -> bool {
        let Some(rules) = &self.stop_once_failed_under else { return false };
        self.stream.checks().iter().any(|c| {
            matches!(c.outcome, CheckOutcome::Failed(_))
                && (rules.is_empty() || c.rules.iter().any(|r| rules.contains(r)))
        })
    }

    /// Whether a check with these rules (and extra tags) is selected by `--tags`.
    pub fn selected<R: AsRef<str>>(&self, rules: &[R], extra_tags: &[&str]) -> bool {
        self.tags.is_empty() || {
            let tags = self.tags_of(rules, extra_tags);
            self.tags.iter().any(|t| tags.contains(t))
        }
    }

    fn tags_of<R: AsRef<str>>(&self, rules: &[R], extra_tags: &[&str]) -> Vec<String> {
        let mut tags: Vec<String> = rules.iter().filter_map(|r| area_of(r.as_ref())).map(str::to_owned).collect();
        let owned: Vec<String> = rules.iter().map(|r| r.as_ref().to_owned()).collect();
        tags.extend(threats_of(self.catalog, &owned));
        tags.extend(extra_tags.iter().map(|t| (*t).to_owned()));
        tags.sort();
        tags.dedup();
        tags
    }

    /// Starts a suite.
    pub fn suite(&mut self, suite: &'static str, planned: Option<u64>) -> Result<SuiteRun<'_, 'a>, Error> {
        self.stream.emit(Event::SuiteStarted(SuiteStarted { suite: suite.to_owned(), planned }))?;
        Ok(SuiteRun { reporter: self, suite, started: Instant::now(), counts: [0; 3] })
    }
}

/// A suite in progress.
pub struct SuiteRun<'s, 'a> {
    reporter: &'s mut Reporter<'a>,
    suite: &'static str,
    started: Instant,
    counts: [u64; 3],
}

/// One check's result, before it is tagged.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Its name within the suite.
    pub name: String,
    /// The rules it traces to.
    pub rules: Vec<String>,
    /// Tags beyond the rules' areas and threats (a provider, a transport).
    pub extra_tags: Vec<&'static str>,
    /// The outcome.
    pub outcome: CheckOutcome,
    /// Times the claim was checked.
    pub observations: u64,
    /// Requests sent for it.
    pub requests: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// A drill's evidence (timeline, times to detect and contain, funds lost).
    pub evidence: Option<DrillEvidence>,
}

impl CheckResult {
    /// A check with no extra tags, observed once, with no request count.
    pub fn new<R: Into<String>>(
        name: impl Into<String>,
        rules: impl IntoIterator<Item = R>,
        outcome: CheckOutcome,
    ) -> CheckResult {
        CheckResult {
            name: name.into(),
            rules: rules.into_iter().map(Into::into).collect(),
            extra_tags: Vec::new(),
            outcome,
            observations: 1,
            requests: 0,
            duration_ms: 0,
            evidence: None,
        }
    }
}

impl SuiteRun<'_, '_> {
    /// Whether a check with these rules is selected by `--tags`.
    pub fn selected<R: AsRef<str>>(&self, rules: &[R], extra_tags: &[&str]) -> bool {
        self.reporter.selected(rules, extra_tags)
    }

    /// Reports one check.
    pub fn check(&mut self, result: CheckResult) -> Result<(), Error> {
        let index = match result.outcome {
            CheckOutcome::Passed => 0,
            CheckOutcome::Failed(_) => 1,
            CheckOutcome::Unverified { .. } => 2,
        };
        self.counts[index] += 1;
        let record = CheckRecord {
            suite: self.suite.to_owned(),
            name: result.name,
            threats: threats_of(self.reporter.catalog, &result.rules),
            tags: self.reporter.tags_of(&result.rules, &result.extra_tags),
            rules: result.rules,
            outcome: result.outcome,
            observations: result.observations,
            requests: result.requests,
            duration_ms: result.duration_ms,
            evidence: result.evidence,
        };
        self.reporter.stream.emit(Event::CheckFinished(record))
    }

    /// Ends the suite.
    pub fn finish(self) -> Result<(), Error> {
        let [passed, failed, unverified] = self.counts;
        self.reporter.stream.emit(Event::SuiteFinished(SuiteFinished {
            suite: self.suite.to_owned(),
            passed,
            failed,
            unverified,
            duration_ms: self.started.elapsed().as_millis() as u64,
        }))
    }
}

/// A failure of a differential run as a report shows it: the difference, and the exchanges that lead to it.
pub fn differential_failure(
    finding: &crate::oracle::differential::Finding,
    trace: &[crate::oracle::differential::Exchange],
    seed: Option<u64>,
    file: Option<String>,
    replay: Option<String>,
) -> Failure {
    let d = &finding.difference;
    Failure {
        message: format!(
            "request {} ({}) broke {}",
            finding.request_index,
            describe_op(&finding.request.op),
            d.rules.join(", ")
        ),
        expected: d.expected.clone(),
        observed: d.observed.clone(),
        seed,
        reproduction: reproduction(trace),
        file,
        replay,
    }
}

/// The exchanges of a differential run as a report's reproduction: each request, expected against observed.
pub fn reproduction(trace: &[crate::oracle::differential::Exchange]) -> Vec<ReproStep> {
    trace
        .iter()
        .map(|e| ReproStep {
            request: describe_request(&e.request),
            expected: e.predicted.clone(),
            observed: format!("{:?}", e.observed),
        })
        .collect()
}

/// A request in words: the operation, and who made it (by the model's token number).
pub fn describe_request(request: &conform_reference::world::Request) -> String {
    let who = request.auth.map_or("anonymous".to_owned(), |t| format!("token {}", t.0));
    let version = request.if_match.map(|v| format!(" If-Match {v}")).unwrap_or_default();
    format!("{} as {who}{version}", describe_op(&request.op))
}

fn describe_op(op: &conform_reference::world::Op) -> String {
    format!("{op:?}")
}

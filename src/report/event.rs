//! The one stream every suite writes to and every writer reads: what ran, each check's result, and the run's
//! verdicts. Writers only render these events; verdicts are decided before they are emitted (rule verdicts by
//! [`super::tally`], the launch decision by `crate::gate`).
//!
//! Events are serializable both ways: `events.jsonl`, written line by line as the run goes, is the run's record,
//! and `conform gate` decides from it.

use serde::{Deserialize, Serialize};

/// One event of a run.
// One event is built and handed by reference to every writer; boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run begins.
    RunStarted(RunStarted),
    /// A suite begins.
    SuiteStarted(SuiteStarted),
    /// One check ended.
    CheckFinished(CheckRecord),
    /// A suite ended.
    SuiteFinished(SuiteFinished),
    /// The run ended, with its verdicts.
    RunFinished(RunFinished),
}

/// What the run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    /// conform's version.
    pub version: String,
    /// The seed that drives all generation.
    pub seed: u64,
    /// The target's name (`model` when no target runs).
    pub target: String,
    /// Its environment class (`test`, `staging`, `production`).
    pub environment: String,
    /// Faults the embedded target was started with.
    pub faults: Vec<String>,
    /// The suites that will run, in order.
    pub suites: Vec<String>,
    /// Tags selecting checks (`--tags`), empty for all.
    pub tags: Vec<String>,
}

/// A suite begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteStarted {
    /// Its name: `model`, `properties`, `matrix`, `races`, `webhooks`, `realtime`, `features`, `drills`.
    pub suite: String,
    /// How many checks it will report, when known (for progress).
    pub planned: Option<u64>,
}

/// One check: a verifiable claim tagged with the SPEC rules and threats it traces to, and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// The suite it belongs to.
    pub suite: String,
    /// Its name, unique within the suite.
    pub name: String,
    /// SPEC rule ids.
    pub rules: Vec<String>,
    /// Threat ids.
    pub threats: Vec<String>,
    /// Area tags (`authz`, `webhooks`, …) for `--tags` and launch criteria.
    pub tags: Vec<String>,
    /// The result.
    pub outcome: CheckOutcome,
    /// How many times the claim was checked (a property holds over many requests).
    pub observations: u64,
    /// Requests sent to the target for it.
    pub requests: u64,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
    /// A drill's evidence.
    pub evidence: Option<DrillEvidence>,
}

impl CheckRecord {
    /// `suite/name`, the id reports and JUnit use.
    pub fn id(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The claim held every time it was checked.
    Passed,
    /// The claim was broken.
    Failed(Failure),
    /// The claim could not be checked; never a pass.
    Unverified {
        /// Why (a missing capability, no answer from the target).
        reason: String,
    },
}

impl CheckOutcome {
    /// `passed`, `failed` or `unverified`.
    pub fn name(&self) -> &'static str {
        match self {
            CheckOutcome::Passed => "passed",
            CheckOutcome::Failed(_) => "failed",
            CheckOutcome::Unverified { .. } => "unverified",
        }
    }
}

/// A broken claim, with the shortest reproduction found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// One line: what went wrong.
    pub message: String,
    /// What the model (or the rule) expected.
    pub expected: String,
    /// What the target did.
    pub observed: String,
    /// The seed that found it, when generated.
    pub seed: Option<u64>,
    /// The requests that show it, in order; the last one differs.
    pub reproduction: Vec<ReproStep>,
    /// The replayable file holding it, relative to the report directory.
    pub file: Option<String>,
    /// The command that replays it.
    pub replay: Option<String>,
}

/// One request of a reproduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReproStep {
    /// The request, in the model's terms.
    pub request: String,
    /// The model's outcome.
    pub expected: String,
    /// The target's.
    pub observed: String,
}

/// What a drill recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillEvidence {
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
    /// From the fault's injection to its first detection.
    pub time_to_detect_ms: Option<u64>,
    /// From the fault's injection to its containment.
    pub time_to_contain_ms: Option<u64>,
    /// Money that left where it should not have, as a decimal amount with its currency (`0` when none).
    pub funds_lost: String,
}

/// One moment of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Milliseconds since the drill began.
    pub at_ms: u64,
    /// `precondition`, `inject`, `expect`, `detect`, `contain`, `recover`.
    pub phase: String,
    /// What happened.
    pub text: String,
    /// Whether it went as the runbook says.
    pub ok: bool,
}

/// A suite ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteFinished {
    /// Its name.
    pub suite: String,
    /// Checks passed.
    pub passed: u64,
    /// Checks failed.
    pub failed: u64,
    /// Checks unverified.
    pub unverified: u64,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
}

/// The run's verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFinished {
    /// The verdict per SPEC rule, in catalog order.
    pub rules: Vec<RuleLine>,
    /// Coverage per threat.
    pub threats: Vec<ThreatLine>,
    /// The launch decision, when criteria were given.
    pub gate: Option<GateDecision>,
    /// The exit status the run ends with.
    pub exit_code: u8,
    /// Its meaning.
    pub exit_meaning: String,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
}

/// The verdict of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleResult {
    /// Checked against the target and never broken.
    Passed,
    /// Broken at least once.
    Failed,
    /// Only the model went through it; nothing compared it with a target.
    Exercised,
    /// Not checked by what ran.
    Unverified,
}

impl RuleResult {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            RuleResult::Passed => "passed",
            RuleResult::Failed => "failed",
            RuleResult::Exercised => "exercised",
            RuleResult::Unverified => "unverified",
        }
    }
}

/// One line of the per-rule summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLine {
    /// Rule id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The verdict.
    pub result: RuleResult,
    /// Checks of it that passed (observations summed).
    pub count: u64,
    /// The checks that failed it.
    pub failed_by: Vec<String>,
    /// Why it is unverified.
    pub reason: Option<String>,
}

/// Coverage of one threat: the verdicts of the rules that counter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatLine {
    /// Threat id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its rules with their verdicts.
    pub rules: Vec<(String, RuleResult)>,
}

/// The launch decision (SPEC §10, LC-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    /// Whether launch may go ahead.
    pub launch: bool,
    /// The decision per criterion, in the criteria file's order.
    pub criteria: Vec<CriterionDecision>,
}

/// The decision on one launch criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionDecision {
    /// Criterion id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Whether it blocks launch.
    pub blocking: bool,
    /// `passed`, `failed`, `unverified`, `waived`.
    pub status: CriterionStatus,
    /// Why, in words: which rules, checks or suites decided it, and the waiver if any.
    pub explanation: String,
}

/// The status of one criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionStatus {
    /// All its evidence passed.
    Passed,
    /// Some evidence failed.
    Failed,
    /// Some evidence could not be checked.
    Unverified,
    /// Not passed, but a valid waiver covers it.
    Waived,
}

//! `report.html`: the run as one self-contained page (inline CSS, no script, no external asset) to attach to a CI
//! run or mail to whoever decides a launch.
//!
//! From the top: what ran (target, seed, faults, date), the launch decision with each criterion's explanation, the
//! verdict per SPEC rule, the threat coverage matrix, one section per finding, drills' evidence, unverified checks
//! and every check. Everything links: a failed rule to the checks that failed it, each finding to its rules, a threat
//! to its rules. A finding shows its reproduction as a table of steps with the differing (last) step highlighted,
//! its file and its replay command. Every piece of text from the run is HTML-escaped. Written at `RunFinished`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Writer;
use super::event::{
    CheckOutcome, CheckRecord, CriterionStatus, DrillEvidence, Event, Failure, GateDecision, RuleLine, RuleResult,
    RunFinished, ThreatLine,
};
use super::run_log::RunLog;
use super::text::{self, CheckCounts, RuleCounts};
use crate::error::Error;

/// The file name in the report directory.
pub const FILE_NAME: &str = "report.html";

/// Keeps the run and writes `report.html` when it finishes.
pub struct Html {
    path: PathBuf,
    log: RunLog,
    date: Option<String>,
}

impl Html {
    /// A writer of `dir/report.html`; the file is written at `RunFinished`.
    pub fn new(dir: &Path) -> Html {
        Html { path: dir.join(FILE_NAME), log: RunLog::default(), date: None }
    }

    /// Shows `date` in the header. The caller reads the clock, not the writer, so that the page depends only on
    /// its inputs (and a snapshot can redact the date).
    pub fn with_date(mut self, date: impl Into<String>) -> Html {
        self.date = Some(date.into());
        self
    }
}

impl Writer for Html {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::RunStarted(run) => self.log.run_started(run),
            Event::SuiteStarted(suite) => self.log.suite_started(suite),
            Event::CheckFinished(check) => self.log.check_finished(check),
            Event::SuiteFinished(suite) => self.log.suite_finished(suite),
            Event::RunFinished(finished) => {
                let page = Page::new(&self.log, finished, self.date.as_deref()).render();
                std::fs::write(&self.path, page)
                    .map_err(|source| Error::ReportWrite { path: self.path.clone(), source })?;
            }
        }
        Ok(())
    }
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#1d1d1f}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f6}code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f4f6;padding:.6em;overflow-x:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
.passed{background:#dff3e3}.failed{background:#fbdcdc}.unverified{background:#fff1c7}.exercised{background:#dde9fb}.waived{background:#ece0fa}
.badge{display:inline-block;padding:.05em .45em;margin:.1em;border-radius:.3em;border:1px solid #bbb;color:inherit;text-decoration:none}
.banner{font-size:1.2em;font-weight:600;padding:.5em .8em;border-radius:.3em}
tr.differs td{background:#fbdcdc;font-weight:600}article{border-left:4px solid #d33;padding-left:1em;margin:1.5em 0}
article.drill{border-left-color:#888}
";

/// The page of one finished run.
struct Page<'a> {
    log: &'a RunLog,
    finished: &'a RunFinished,
    date: Option<&'a str>,
    /// The anchor of each check, by its id.
    anchors: BTreeMap<String, String>,
    html: String,
}

// `write!` into a String cannot fail; the results below are ignored for that reason.
impl<'a> Page<'a> {
    fn new(log: &'a RunLog, finished: &'a RunFinished, date: Option<&'a str>) -> Page<'a> {
        Page { log, finished, date, anchors: check_anchors(log), html: String::new() }
    }

    fn render(mut self) -> String {
        self.html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        self.html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let target = self.log.run.as_ref().map_or("unknown target", |run| run.target.as_str());
        let _ = writeln!(self.html, "<title>conform report: {}</title>", esc(target));
        let _ = writeln!(self.html, "<style>{STYLE}</style>\n</head>\n<body>");
        self.header();
        self.launch();
        self.rules();
        self.threats();
        self.findings();
        self.drills();
        self.unverified_checks();
        self.all_checks();
        self.html.push_str("</body>\n</html>\n");
        self.html
    }

    fn header(&mut self) {
        let finished = self.finished;
        self.html.push_str("<header>\n<h1>conform report</h1>\n<dl>\n");
        if let Some(run) = &self.log.run {
            let faults = text::list_or_none(&run.faults);
            let rows = [
                ("target", format!("{} ({})", run.target, run.environment)),
                ("seed", run.seed.to_string()),
                ("faults", faults),
                ("suites", text::list_or_none(&run.suites)),
                ("tags", if run.tags.is_empty() { "all".to_owned() } else { run.tags.join(", ") }),
                ("conform", run.version.clone()),
            ];
            for (name, value) in rows {
                let _ = writeln!(self.html, "<dt>{name}</dt><dd>{}</dd>", esc(&value));
            }
        }
        if let Some(date) = self.date {
            let _ = writeln!(self.html, "<dt>date</dt><dd>{}</dd>", esc(date));
        }
        let _ = writeln!(self.html, "<dt>duration</dt><dd>{}</dd>", text::seconds(finished.duration_ms));
        let class = if finished.exit_code == 0 { "passed" } else { "failed" };
        let _ = writeln!(
            self.html,
            "<dt>exit</dt><dd class=\"{class}\">{}: {}</dd>",
            finished.exit_code,
            esc(&finished.exit_meaning)
        );
        let checks = CheckCounts::of(self.log.checks());
        let _ = writeln!(
            self.html,
            "<dt>checks</dt><dd>{} passed, {} failed, {} unverified</dd>",
            checks.passed, checks.failed, checks.unverified
        );
        let _ = writeln!(self.html, "<dt>rules</dt><dd>{}</dd>", RuleCounts::of(&finished.rules).summary());
        self.html.push_str("</dl>\n</header>\n");
    }

    fn launch(&mut self) {
        self.html.push_str("<section id=\"launch\">\n<h2>Launch decision</h2>\n");
        let finished = self.finished;
        let Some(gate) = &finished.gate else {
            self.html.push_str("<p>Not decided: no launch criteria were given to this run.</p>\n</section>\n");
            return;
        };
        self.gate(gate);
        self.html.push_str("</section>\n");
    }

    fn gate(&mut self, gate: &GateDecision) {
        let class = if gate.launch { "passed" } else { "failed" };
        let _ = writeln!(self.html, "<p class=\"banner {class}\">{}</p>", esc(&text::launch_headline(gate)));
        self.html.push_str(
            "<table>\n<tr><th>criterion</th><th>title</th><th>blocking</th><th>status</th><th>why</th></tr>\n",
        );
        for criterion in &gate.criteria {
            let status = text::criterion_status(criterion.status);
            let _ = writeln!(
                self.html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{status}</td><td>{}</td></tr>",
                esc(&criterion.id),
                esc(&criterion.title),
                if criterion.blocking { "yes" } else { "no" },
                criterion_class(criterion.status),
                esc(&criterion.explanation)
            );
        }
        self.html.push_str("</table>\n");
    }

    fn rules(&mut self) {
        self.html.push_str("<section id=\"rules\">\n<h2>Results per SPEC rule</h2>\n<table>\n");
        self.html
            .push_str("<tr><th>rule</th><th>title</th><th>verdict</th><th>passed observations</th><th>failed by / why</th></tr>\n");
        let finished = self.finished;
        for rule in &finished.rules {
            let detail = self.rule_detail(rule);
            let _ = writeln!(
                self.html,
                "<tr id=\"{}\"><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{detail}</td></tr>",
                rule_anchor(&rule.id),
                esc(&rule.id),
                esc(&rule.title),
                rule.result.name(),
                rule.result.name(),
                rule.count
            );
        }
        self.html.push_str("</table>\n</section>\n");
    }

    /// The failing checks of a rule as links to their findings, or why it is not passed.
    fn rule_detail(&self, rule: &RuleLine) -> String {
        if !rule.failed_by.is_empty() {
            return rule.failed_by.iter().map(|id| self.check_link(id)).collect::<Vec<_>>().join(", ");
        }
        rule.reason.as_deref().map(esc).unwrap_or_default()
    }

    fn threats(&mut self) {
        self.html.push_str("<section id=\"threats\">\n<h2>Threat coverage</h2>\n");
        self.html.push_str("<p>Each threat with the rules that counter it, coloured by their verdict.</p>\n<table>\n");
        self.html.push_str("<tr><th>threat</th><th>title</th><th>rules</th></tr>\n");
        let finished = self.finished;
        for threat in &finished.threats {
            let _ = writeln!(
                self.html,
                "<tr id=\"threat-{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                slug(&threat.id),
                esc(&threat.id),
                esc(&threat.title),
                threat_rules(threat)
            );
        }
        self.html.push_str("</table>\n</section>\n");
    }

    fn findings(&mut self) {
        let log = self.log;
        let failed: Vec<(&CheckRecord, &Failure)> = log
            .checks()
            .filter_map(|check| match &check.outcome {
                CheckOutcome::Failed(failure) => Some((check, failure)),
                CheckOutcome::Passed | CheckOutcome::Unverified { .. } => None,
            })
            .collect();
        let _ = writeln!(self.html, "<section id=\"findings\">\n<h2>Findings ({})</h2>", failed.len());
        if failed.is_empty() {
            self.html.push_str("<p>No check failed.</p>\n");
        }
        for (check, failure) in failed {
            self.finding(check, failure);
        }
        self.html.push_str("</section>\n");
    }

    fn finding(&mut self, check: &CheckRecord, failure: &Failure) {
        let anchor = self.anchor(&check.id());
        let _ = writeln!(self.html, "<article id=\"{anchor}\">\n<h3>{}</h3>", esc(&check.id()));
        let _ = writeln!(self.html, "<p><strong>{}</strong></p>\n<dl>", esc(&failure.message));
        let rules = check.rules.iter().map(|id| rule_link(id)).collect::<Vec<_>>().join(" ");
        let threats = check
            .threats
            .iter()
            .map(|id| format!("<a class=\"badge\" href=\"#threat-{}\">{}</a>", slug(id), esc(id)))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(self.html, "<dt>rules</dt><dd>{rules}</dd>\n<dt>threats</dt><dd>{threats}</dd>");
        let _ = writeln!(self.html, "<dt>tags</dt><dd>{}</dd>", esc(&text::list_or_none(&check.tags)));
        let _ = writeln!(self.html, "<dt>expected</dt><dd>{}</dd>", esc(&failure.expected));
        let _ = writeln!(self.html, "<dt>observed</dt><dd>{}</dd>", esc(&failure.observed));
        if let Some(seed) = failure.seed {
            let _ = writeln!(self.html, "<dt>seed</dt><dd>{seed}</dd>");
        }
        let file =
            failure.file.as_deref().map_or_else(|| "none".to_owned(), |file| format!("<code>{}</code>", esc(file)));
        let _ = writeln!(self.html, "<dt>file</dt><dd>{file}</dd>\n</dl>");
        self.reproduction(failure);
        let _ = writeln!(self.html, "<p>Replay:</p>\n<pre><code>{}</code></pre>", esc(text::replay_command(failure)));
        if check.evidence.is_some() {
            let _ = writeln!(self.html, "<p><a href=\"#drill-{anchor}\">The drill's evidence</a></p>");
        }
        self.html.push_str("</article>\n");
    }

    fn reproduction(&mut self, failure: &Failure) {
        if failure.reproduction.is_empty() {
            self.html.push_str("<p>No reproduction was recorded.</p>\n");
            return;
        }
        let _ = writeln!(
            self.html,
            "<table class=\"reproduction\">\n<caption>Reproduction: {} steps, the last one differs</caption>",
            failure.reproduction.len()
        );
        self.html.push_str("<tr><th>#</th><th>request</th><th>expected</th><th>observed</th></tr>\n");
        let last = failure.reproduction.len() - 1;
        for (index, step) in failure.reproduction.iter().enumerate() {
            let class = if index == last { " class=\"differs\"" } else { "" };
            let _ = writeln!(
                self.html,
                "<tr{class}><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                index + 1,
                esc(&step.request),
                esc(&step.expected),
                esc(&step.observed)
            );
        }
        self.html.push_str("</table>\n");
    }

    fn drills(&mut self) {
        let log = self.log;
        let drills: Vec<(&CheckRecord, &DrillEvidence)> =
            log.checks().filter_map(|check| check.evidence.as_ref().map(|e| (check, e))).collect();
        if drills.is_empty() {
            return;
        }
        self.html.push_str("<section id=\"drills\">\n<h2>Drills</h2>\n");
        for (check, evidence) in drills {
            let anchor = self.anchor(&check.id());
            let outcome = check.outcome.name();
            let _ = writeln!(
                self.html,
                "<article class=\"drill\" id=\"drill-{anchor}\">\n<h3>{} <span class=\"badge {outcome}\">{outcome}</span></h3>\n<dl>",
                esc(&check.id())
            );
            let _ = writeln!(
                self.html,
                "<dt>time to detect</dt><dd>{}</dd>\n<dt>time to contain</dt><dd>{}</dd>\n<dt>funds lost</dt><dd>{}</dd>\n</dl>",
                text::optional_seconds(evidence.time_to_detect_ms),
                text::optional_seconds(evidence.time_to_contain_ms),
                esc(&evidence.funds_lost)
            );
            self.html.push_str(
                "<table>\n<tr><th>at</th><th>phase</th><th>what happened</th><th>as the runbook says</th></tr>\n",
            );
            for entry in &evidence.timeline {
                let (class, ok) = if entry.ok { ("passed", "yes") } else { ("failed", "no") };
                let _ = writeln!(
                    self.html,
                    "<tr><td>+{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{ok}</td></tr>",
                    text::seconds(entry.at_ms),
                    esc(&entry.phase),
                    esc(&entry.text)
                );
            }
            self.html.push_str("</table>\n</article>\n");
        }
        self.html.push_str("</section>\n");
    }

    fn unverified_checks(&mut self) {
        let log = self.log;
        let unverified: Vec<(&CheckRecord, &String)> = log
            .checks()
            .filter_map(|check| match &check.outcome {
                CheckOutcome::Unverified { reason } => Some((check, reason)),
                CheckOutcome::Passed | CheckOutcome::Failed(_) => None,
            })
            .collect();
        if unverified.is_empty() {
            return;
        }
        let _ = writeln!(self.html, "<section id=\"unverified\">\n<h2>Unverified checks ({})</h2>", unverified.len());
        self.html.push_str("<table>\n<tr><th>check</th><th>rules</th><th>why</th></tr>\n");
        for (check, reason) in unverified {
            let anchor = self.anchor(&check.id());
            let rules = check.rules.iter().map(|id| rule_link(id)).collect::<Vec<_>>().join(" ");
            let _ = writeln!(
                self.html,
                "<tr id=\"{anchor}\"><td>{}</td><td>{rules}</td><td>{}</td></tr>",
                esc(&check.id()),
                esc(reason)
            );
        }
        self.html.push_str("</table>\n</section>\n");
    }

    fn all_checks(&mut self) {
        self.html.push_str("<section id=\"checks\">\n<h2>Every check</h2>\n<details>\n");
        let _ = writeln!(self.html, "<summary>{} checks</summary>", self.log.checks().count());
        self.html.push_str(
            "<table>\n<tr><th>check</th><th>result</th><th>observations</th><th>requests</th><th>time</th></tr>\n",
        );
        let log = self.log;
        for check in log.checks() {
            let outcome = check.outcome.name();
            // Failed and unverified checks have a section to go to, and so do drills; other passed checks do not.
            let name = match (&check.outcome, &check.evidence) {
                (CheckOutcome::Failed(_) | CheckOutcome::Unverified { .. }, _) => self.check_link(&check.id()),
                (CheckOutcome::Passed, Some(_)) => {
                    format!("<a href=\"#drill-{}\">{}</a>", self.anchor(&check.id()), esc(&check.id()))
                }
                (CheckOutcome::Passed, None) => esc(&check.id()),
            };
            let _ = writeln!(
                self.html,
                "<tr><td>{name}</td><td class=\"{outcome}\">{outcome}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                check.observations,
                check.requests,
                text::seconds(check.duration_ms)
            );
        }
        self.html.push_str("</table>\n</details>\n</section>\n");
    }

    fn anchor(&self, check_id: &str) -> String {
        self.anchors.get(check_id).cloned().unwrap_or_else(|| format!("check-{}", slug(check_id)))
    }

    /// A link to a check's section when the run has that check; its bare id otherwise.
    fn check_link(&self, check_id: &str) -> String {
        match self.anchors.get(check_id) {
            Some(anchor) => format!("<a href=\"#{anchor}\">{}</a>", esc(check_id)),
            None => esc(check_id),
        }
    }
}

/// A unique anchor per check id: its slug, numbered when two ids slug alike (`a×b` and `a-b`).
fn check_anchors(log: &RunLog) -> BTreeMap<String, String> {
    let mut anchors = BTreeMap::new();
    let mut taken = std::collections::BTreeSet::new();
    for check in log.checks() {
        let id = check.id();
        if anchors.contains_key(&id) {
            continue;
        }
        let base = format!("check-{}", slug(&id));
        let mut anchor = base.clone();
        let mut n = 2;
        while !taken.insert(anchor.clone()) {
            anchor = format!("{base}-{n}");
            n += 1;
        }
        anchors.insert(id, anchor);
    }
    anchors
}

fn threat_rules(threat: &ThreatLine) -> String {
    threat
        .rules
        .iter()
        .map(|(id, result)| {
            format!(
                "<a class=\"badge {}\" href=\"#{}\" title=\"{}\">{}</a>",
                result.name(),
                rule_anchor(id),
                result.name(),
                esc(id)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn rule_anchor(id: &str) -> String {
    format!("rule-{}", slug(id))
}

fn rule_link(id: &str) -> String {
    format!("<a class=\"badge\" href=\"#{}\">{}</a>", rule_anchor(id), esc(id))
}

fn criterion_class(status: CriterionStatus) -> &'static str {
    match status {
        CriterionStatus::Passed => RuleResult::Passed.name(),
        CriterionStatus::Failed => RuleResult::Failed.name(),
        CriterionStatus::Unverified => RuleResult::Unverified.name(),
        CriterionStatus::Waived => "waived",
    }
}

/// An id made fit for an HTML `id` and a URL fragment: ASCII letters, digits, `-` and `_`; anything else becomes `-`.
fn slug(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// HTML-escapes text for element content and quoted attribute values alike.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{esc, slug};

    #[test]
    fn text_cannot_open_a_tag_or_leave_an_attribute() {
        assert_eq!(esc("<script>\"x\" & 'y'</script>"), "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;");
    }

    #[test]
    fn a_slug_keeps_only_safe_characters() {
        assert_eq!(slug("matrix/get_escrow×stranger"), "matrix-get_escrow-stranger");
    }
}

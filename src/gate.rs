//! The launch gate (SPEC §10; rules LC-1 and CAP-1): from a run's checks, the launch criteria and the waivers, it
//! decides whether a target may launch, and says for each criterion what decided it.
//!
//! A criterion's evidence has three kinds, all of which must hold:
//! - `rules`: each rule must have a passing check against a target and none failing (the verdict of
//!   [`crate::report::tally::rule_line`], so a rule means the same here as in the reports); a rule with only
//!   unverified checks, only the model's, or none, is unverified.
//! - `tags`: every check carrying one of the tags (area tags or threat ids) must pass, and at least one against a
//!   target must exist.
//! - `suites`: each suite (optionally narrowed to `suite/name`) must have run and its checks passed; not run, or no
//!   check, is unverified.
//!
//! A failure anywhere makes the criterion failed; otherwise anything unverified makes it unverified. A blocking
//! criterion lets launch go ahead only when passed, or when a valid waiver covers it (`waived`); an unverified one
//! fails the gate (silence never passes). A non-blocking criterion is reported and never blocks.
//!
//! [`decide`] reads no clock: the day that decides whether a waiver still holds is a parameter, so a decision can be
//! reproduced (`conform gate --today`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;

use crate::contracts::LaunchCriteria;
use crate::contracts::launch::Criterion;
use crate::error::Error;
use crate::exit::Exit;
use crate::report::event::{CheckOutcome, CheckRecord, CriterionDecision, CriterionStatus, GateDecision, RuleResult};
use crate::report::tally::{self, MODEL_SUITE};
use crate::report::text::{self, count};
use crate::report::{Event, jsonl};

/// The file `conform gate` writes in the report directory.
pub const FILE_NAME: &str = "gate.json";

/// How many ids an explanation lists before it says "and N more".
const LISTED: usize = 5;

// ------------------------------------------------------------------------------------------------------------------
// Dates.

/// A calendar day (proleptic Gregorian, UTC), enough for waiver expiries without a date crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// The day, if it exists.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days_in_month).contains(&day).then_some(Date { year, month, day })
    }

    /// The day `days` after 1970-01-01 (negative: before), by Howard Hinnant's `civil_from_days`
    /// (<https://howardhinnant.github.io/date_algorithms.html>): eras of 400 years, years starting in March so that
    /// the leap day comes last.
    pub fn from_days_since_epoch(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097); // [0, 146096]
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
        let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
        let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
        let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 }; // [1, 12]
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        let year = i32::try_from(year).expect("a year within i32 for any i64 day count divided by 365");
        Date { year, month: month as u8, day: day as u8 }
    }

    /// The UTC day of `time`.
    pub fn from_system_time(time: SystemTime) -> Date {
        const SECONDS_PER_DAY: u64 = 86_400;
        let days = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs() / SECONDS_PER_DAY).unwrap_or(i64::MAX / 2),
            // Before 1970: round down to the day that contains it.
            Err(before) => -i64::try_from(before.duration().as_secs().div_ceil(SECONDS_PER_DAY)).unwrap_or(0),
        };
        Date::from_days_since_epoch(days)
    }

    /// Today in UTC, from the system clock; only the command line calls it.
    pub fn today_utc() -> Date {
        Date::from_system_time(SystemTime::now())
    }

    fn from_toml(datetime: &toml::value::Datetime) -> Option<Date> {
        match (datetime.date, datetime.time, datetime.offset) {
            (Some(date), None, None) => Date::new(i32::from(date.year), date.month, date.day),
            _ => None,
        }
    }
}

impl std::str::FromStr for Date {
    type Err = String;

    /// `YYYY-MM-DD`.
    fn from_str(text: &str) -> Result<Date, String> {
        let invalid = || format!("`{text}` is not a date: write YYYY-MM-DD, e.g. 2027-01-31");
        let datetime: toml::value::Datetime = text.parse().map_err(|_| invalid())?;
        Date::from_toml(&datetime).ok_or_else(invalid)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Waivers.

/// Accepted waivers: each names a criterion it lets pass while unmet, who approved it and until when.
#[derive(Debug, Default)]
pub struct Waivers {
    /// The waivers, in file order; at most one per criterion.
    pub waivers: Vec<Waiver>,
}

/// One waiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// The criterion it covers.
    pub criterion: String,
    /// Why launching without it is acceptable.
    pub reason: String,
    /// Who approved it: one of the criteria file's owners.
    pub approver_role: String,
    /// The last day it holds.
    pub expires: Date,
    /// Where it was written (`file:line`), so an explanation can point to it.
    pub source: String,
}

/// The file as written, with positions for errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaiversFile {
    #[serde(default)]
    waiver: Vec<Spanned<WaiverEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaiverEntry {
    criterion: Spanned<String>,
    reason: Spanned<String>,
    approver_role: Spanned<String>,
    expires: Spanned<toml::value::Datetime>,
}

impl Waivers {
    /// No waiver.
    pub fn none() -> Waivers {
        Waivers::default()
    }

    /// Reads and checks a waivers file; see [`Waivers::parse`].
    pub fn load(path: &Path, criteria: &LaunchCriteria) -> Result<Waivers, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read the waivers file {}: {e}", path.display())))?;
        Waivers::parse(&path.display().to_string(), &text, criteria)
    }

    /// Parses a waivers file and refuses, naming `file`, the line and the field: an unknown or missing field, a
    /// criterion the criteria do not have, an approver role that is not one of their owners, an empty reason, an
    /// expiry that is not a plain date, and a second waiver for one criterion.
    pub fn parse(file: &str, text: &str, criteria: &LaunchCriteria) -> Result<Waivers, Error> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let refuse = |offset: usize, field: &str, message: String| Error::Waiver {
            file: file.to_owned(),
            line: line_of(offset),
            field: field.to_owned(),
            message,
        };
        let parsed: WaiversFile = toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            let field = field_of_error(error.message(), text, offset);
            let hint =
                if field == "expires" { " (write a TOML date without quotes: expires = 2027-01-31)" } else { "" };
            refuse(offset, &field, format!("{}{hint}", error.message().trim()))
        })?;

        let mut waivers: Vec<Waiver> = Vec::new();
        for entry in parsed.waiver {
            let entry = entry.into_inner();
            let criterion = entry.criterion.get_ref();
            if criteria.get(criterion).is_none() {
                let known: Vec<&str> = criteria.iter().map(|c| c.id.as_str()).collect();
                let message = format!("unknown criterion `{criterion}`; the criteria are {}", known.join(", "));
                return Err(refuse(entry.criterion.span().start, "criterion", message));
            }
            if let Some(earlier) = waivers.iter().find(|w| w.criterion == *criterion) {
                let message = format!("`{criterion}` already has a waiver at {}; keep one", earlier.source);
                return Err(refuse(entry.criterion.span().start, "criterion", message));
            }
            if entry.reason.get_ref().trim().is_empty() {
                let message = "empty; say why launching without this criterion is acceptable".to_owned();
                return Err(refuse(entry.reason.span().start, "reason", message));
            }
            let role = entry.approver_role.get_ref();
            if !criteria.owners.iter().any(|owner| owner == role) {
                let message =
                    format!("`{role}` is not one of the owners in the launch criteria: {}", criteria.owners.join(", "));
                return Err(refuse(entry.approver_role.span().start, "approver_role", message));
            }
            let expires_at = entry.expires.span().start;
            let Some(expires) = Date::from_toml(entry.expires.get_ref()) else {
                let message =
                    format!("`{}` is not a plain date: write e.g. expires = 2027-01-31", entry.expires.get_ref());
                return Err(refuse(expires_at, "expires", message));
            };
            // An expired waiver is not bad input: `decide` fails its criterion and says the waiver expired.
            waivers.push(Waiver {
                criterion: criterion.clone(),
                reason: entry.reason.into_inner(),
                approver_role: role.clone(),
                expires,
                source: format!("{file}:{}", line_of(entry.criterion.span().start)),
            });
        }
        Ok(Waivers { waivers })
    }

    /// The waiver of a criterion, if any.
    pub fn for_criterion(&self, id: &str) -> Option<&Waiver> {
        self.waivers.iter().find(|waiver| waiver.criterion == id)
    }
}

/// The field a TOML error is about: serde names it in backticks for a missing or unknown field; otherwise (a wrong
/// type, a syntax error) it is the key written on the error's line, if there is one.
fn field_of_error(message: &str, text: &str, offset: usize) -> String {
    if (message.starts_with("missing field") || message.starts_with("unknown field"))
        && let Some(field) = message.split('`').nth(1)
    {
        return field.to_owned();
    }
    let line_start = text[..offset.min(text.len())].rfind('\n').map_or(0, |newline| newline + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => key.trim().to_owned(),
        _ => "waiver".to_owned(),
    }
}

// ------------------------------------------------------------------------------------------------------------------
// The decision.

/// Refuses criteria whose gate policy conform cannot honour: SPEC §10 makes an unverified blocking criterion fail,
/// and a waiver carries exactly the fields conform reads.
pub fn check_policy(criteria: &LaunchCriteria) -> Result<(), Error> {
    let file = LaunchCriteria::FILE;
    if criteria.gate.unverified_blocking != "fail" {
        return Err(Error::Usage(format!(
            "{file}: gate.unverified_blocking is `{}`; it must be \"fail\" (SPEC §10, LC-1: an unverified blocking \
             criterion never passes)",
            criteria.gate.unverified_blocking
        )));
    }
    const WAIVER_FIELDS: [&str; 4] = ["criterion", "reason", "approver_role", "expires"];
    if let Some(unknown) = criteria.gate.waiver_fields.iter().find(|f| !WAIVER_FIELDS.contains(&f.as_str())) {
        return Err(Error::Usage(format!(
            "{file}: gate.waiver_fields names `{unknown}`, which a waiver cannot carry; a waiver has {}",
            WAIVER_FIELDS.join(", ")
        )));
    }
    Ok(())
}

/// Decides every criterion, in the criteria file's order, and whether launch may go ahead.
pub fn decide(
    criteria: &LaunchCriteria,
    waivers: &Waivers,
    checks: &[CheckRecord],
    suites_run: &[String],
    today: Date,
) -> GateDecision {
    let decisions: Vec<CriterionDecision> = criteria
        .iter()
        .map(|criterion| decide_criterion(criterion, waivers.for_criterion(&criterion.id), checks, suites_run, today))
        .collect();
    let launch =
        decisions.iter().all(|d| !d.blocking || matches!(d.status, CriterionStatus::Passed | CriterionStatus::Waived));
    GateDecision { launch, criteria: decisions }
}

/// What a criterion's evidence showed, as phrases for its explanation.
#[derive(Default)]
struct Weighing {
    failed: Vec<String>,
    unverified: Vec<String>,
    passed: Vec<String>,
}

impl Weighing {
    fn status(&self) -> CriterionStatus {
        if !self.failed.is_empty() {
            CriterionStatus::Failed
        } else if !self.unverified.is_empty() {
            CriterionStatus::Unverified
        } else {
            CriterionStatus::Passed
        }
    }

    /// `failed: …` with what decided it: the failures and what stayed unverified, or everything that passed.
    fn explanation(&self) -> String {
        let status = text::criterion_status(self.status());
        let phrases: Vec<&str> = match self.status() {
            CriterionStatus::Passed => self.passed.iter().map(String::as_str).collect(),
            _ => self.failed.iter().chain(&self.unverified).map(String::as_str).collect(),
        };
        format!("{status}: {}", phrases.join("; "))
    }
}

fn decide_criterion(
    criterion: &Criterion,
    waiver: Option<&Waiver>,
    checks: &[CheckRecord],
    suites_run: &[String],
    today: Date,
) -> CriterionDecision {
    let mut weighing = Weighing::default();
    weigh_rules(&mut weighing, &criterion.evidence.rules, checks);
    weigh_tags(&mut weighing, &criterion.evidence.tags, checks);
    weigh_suites(&mut weighing, &criterion.evidence.suites, checks, suites_run);
    if weighing.failed.is_empty() && weighing.unverified.is_empty() && weighing.passed.is_empty() {
        weighing.unverified.push("the criterion lists no evidence".to_owned());
    }

    let evidence_status = weighing.status();
    let mut explanation = weighing.explanation();
    let status = match (evidence_status, waiver) {
        (CriterionStatus::Passed, Some(waiver)) => {
            explanation.push_str(&format!("; the waiver at {} is not needed", waiver.source));
            CriterionStatus::Passed
        }
        (CriterionStatus::Passed, None) => CriterionStatus::Passed,
        (_, Some(waiver)) if waiver.expires >= today => {
            explanation = format!(
                "waived until {} by {} ({}): {}. Without the waiver, {explanation}",
                waiver.expires, waiver.approver_role, waiver.source, waiver.reason
            );
            CriterionStatus::Waived
        }
        (unmet, Some(waiver)) => {
            explanation.push_str(&format!("; its waiver ({}) expired on {}", waiver.source, waiver.expires));
            unmet
        }
        (unmet, None) => unmet,
    };
    match (status, criterion.blocking) {
        (CriterionStatus::Unverified, true) => explanation.push_str("; unverified blocks launch (LC-1)"),
        (CriterionStatus::Failed | CriterionStatus::Unverified, false) => explanation.push_str("; not blocking"),
        _ => {}
    }
    CriterionDecision {
        id: criterion.id.clone(),
        title: criterion.title.clone(),
        blocking: criterion.blocking,
        status,
        explanation,
    }
}

/// Each rule by its report verdict: failed, passed, or (exercised on the model only, or unverified) unverified.
fn weigh_rules(weighing: &mut Weighing, rules: &[String], checks: &[CheckRecord]) {
    let mut passed: u64 = 0;
    let mut unverified = Vec::new();
    for id in rules {
        let line = tally::rule_line(id, "", checks);
        match line.result {
            RuleResult::Failed => weighing.failed.push(format!("{id} failed by {}", listed(&line.failed_by))),
            RuleResult::Passed => passed += 1,
            RuleResult::Exercised | RuleResult::Unverified => unverified.push(id.clone()),
        }
    }
    if !unverified.is_empty() {
        weighing.unverified.push(format!(
            "{} unverified: {}",
            count(unverified.len() as u64, "rule"),
            listed(&unverified)
        ));
    }
    if passed > 0 {
        weighing.passed.push(format!("{} passed", count(passed, "rule")));
    }
}

/// Every check carrying one of the tags (as an area tag or a threat id) must pass; at least one against a target.
fn weigh_tags(weighing: &mut Weighing, tags: &[String], checks: &[CheckRecord]) {
    if tags.is_empty() {
        return;
    }
    let tagged: Vec<&CheckRecord> =
        checks.iter().filter(|c| tags.iter().any(|t| c.tags.contains(t) || c.threats.contains(t))).collect();
    let ids = |outcome: &str| -> Vec<String> {
        tagged.iter().filter(|c| c.outcome.name() == outcome).map(|c| c.id()).collect()
    };
    let (failed, unverified) = (ids("failed"), ids("unverified"));
    let passed_on_target =
        tagged.iter().filter(|c| c.outcome == CheckOutcome::Passed && c.suite != MODEL_SUITE).count();
    let tag_list = tags.join(", ");
    if !failed.is_empty() {
        weighing.failed.push(format!("tagged {tag_list}: {} failed", listed(&failed)));
    }
    if !unverified.is_empty() {
        weighing.unverified.push(format!("tagged {tag_list}: {} unverified", listed(&unverified)));
    }
    if failed.is_empty() && unverified.is_empty() {
        if passed_on_target == 0 {
            weighing.unverified.push(format!("no check against a target is tagged {tag_list}"));
        } else {
            weighing.passed.push(format!("{} tagged {tag_list} passed", count(passed_on_target as u64, "check")));
        }
    }
}

/// Each suite (or `suite/name`: its checks of that name or under `name/`) must have run and passed.
fn weigh_suites(weighing: &mut Weighing, suites: &[String], checks: &[CheckRecord], suites_run: &[String]) {
    let mut passed = Vec::new();
    for entry in suites {
        let (suite, name) = match entry.split_once('/') {
            Some((suite, name)) => (suite, Some(name)),
            None => (entry.as_str(), None),
        };
        if !suites_run.iter().any(|run| run == suite) {
            weighing.unverified.push(format!("suite {suite} did not run"));
            continue;
        }
        let of_entry: Vec<&CheckRecord> = checks
            .iter()
            .filter(|c| c.suite == suite)
            .filter(|c| name.is_none_or(|name| c.name == name || c.name.starts_with(&format!("{name}/"))))
            .collect();
        let ids = |outcome: &str| -> Vec<String> {
            of_entry.iter().filter(|c| c.outcome.name() == outcome).map(|c| c.id()).collect()
        };
        if of_entry.is_empty() {
            weighing.unverified.push(format!("{entry} ran no check"));
            continue;
        }
        let (failed, unverified) = (ids("failed"), ids("unverified"));
        if !failed.is_empty() {
            weighing.failed.push(format!("{entry}: {} failed", listed(&failed)));
        }
        if !unverified.is_empty() {
            weighing.unverified.push(format!("{entry}: {} unverified", listed(&unverified)));
        }
        if failed.is_empty() && unverified.is_empty() {
            passed.push(entry.clone());
        }
    }
    if !passed.is_empty() {
        weighing.passed.push(format!("{} passed", plural_list("suite", &passed)));
    }
}

/// `a, b, c` or `a, b, c, d, e and 3 more`.
fn listed(items: &[String]) -> String {
    if items.len() <= LISTED {
        return items.join(", ");
    }
    format!("{} and {} more", items[..LISTED].join(", "), items.len() - LISTED)
}

/// `suite matrix`, `suites matrix, features`.
fn plural_list(noun: &str, items: &[String]) -> String {
    if items.len() == 1 { format!("{noun} {}", items[0]) } else { format!("{noun}s {}", listed(items)) }
}

// ------------------------------------------------------------------------------------------------------------------
// `conform gate`.

fn gate_after_help() -> String {
    let mut help = String::from(
        "Examples:\n  conform gate --criteria contracts/launch-criteria.toml\n  \
         conform gate --criteria contracts/launch-criteria.toml --waivers waivers.toml --report-dir reports\n  \
         conform gate --criteria contracts/launch-criteria.toml --today 2027-01-15   # as on that day\n\n\
         Waivers: see contracts/waivers.example.toml.\n\nExit statuses:\n",
    );
    for (code, meaning) in Exit::GATE_TABLE {
        help.push_str(&format!("  {code}  {meaning}\n"));
    }
    help
}

/// Decide whether the target may launch (SPEC §10), from a run's events, the launch criteria and any waivers.
///
/// Reads DIR/events.jsonl (written by `conform run`), decides every criterion, prints each decision with what
/// decided it, and writes DIR/gate.json. A blocking criterion must pass, or carry a waiver that names a reason, an
/// approver role and an expiry not yet past; an unverified blocking criterion fails.
#[derive(Debug, clap::Args)]
#[command(after_help = gate_after_help())]
pub struct GateCommand {
    /// The launch criteria file.
    #[arg(long, value_name = "FILE")]
    criteria: PathBuf,
    /// Waivers for unmet criteria (TOML; see contracts/waivers.example.toml).
    #[arg(long, value_name = "FILE")]
    waivers: Option<PathBuf>,
    /// The report directory of the run to judge; gate.json is written there.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    report_dir: PathBuf,
    /// The day waivers are judged on (YYYY-MM-DD), instead of today in UTC.
    #[arg(long, value_name = "DATE")]
    today: Option<Date>,
}

/// Runs `conform gate`.
pub fn run(command: GateCommand) -> Exit {
    match run_gate(&command) {
        Ok(true) => Exit::Passed,
        Ok(false) => Exit::Findings,
        Err(error) => {
            eprintln!("conform gate: {error}");
            error.exit()
        }
    }
}

/// Decides, prints and writes gate.json; `Ok(launch)`.
fn run_gate(command: &GateCommand) -> Result<bool, Error> {
    let criteria = LaunchCriteria::load(&command.criteria)?;
    check_policy(&criteria)?;
    let today = command.today.unwrap_or_else(Date::today_utc);
    let waivers = match &command.waivers {
        Some(path) => Waivers::load(path, &criteria)?,
        None => Waivers::none(),
    };
    let events = jsonl::read(&command.report_dir.join(jsonl::FILE_NAME))?;
    let mut checks = Vec::new();
    let mut suites_run = Vec::new();
    for event in events {
        match event {
            Event::CheckFinished(check) => checks.push(check),
            Event::SuiteStarted(suite) => suites_run.push(suite.suite),
            Event::RunStarted(_) | Event::SuiteFinished(_) | Event::RunFinished(_) => {}
        }
    }
    let decision = decide(&criteria, &waivers, &checks, &suites_run, today);

    println!("conform gate: {} criteria, {} checks, judged on {today}", criteria.criterion.len(), checks.len());
    for criterion in &decision.criteria {
        let blocking = if criterion.blocking { "blocking" } else { "advisory" };
        println!(
            "{:<10} {:<28} {blocking:<8}  {}",
            text::criterion_status(criterion.status),
            criterion.id,
            criterion.explanation
        );
    }
    println!("{}", text::launch_headline(&decision));

    let path = command.report_dir.join(FILE_NAME);
    let json =
        serde_json::to_string_pretty(&decision).map_err(|e| Error::Usage(format!("cannot encode {FILE_NAME}: {e}")))?;
    std::fs::write(&path, json + "\n").map_err(|source| Error::ReportWrite { path: path.clone(), source })?;
    println!("wrote {}", path.display());
    Ok(decision.launch)
}

#[cfg(test)]
mod tests {
    use super::Date;

    #[test]
    fn days_since_the_epoch_become_calendar_days() {
        let cases = [
            (0, "1970-01-01"),
            (-1, "1969-12-31"),
            (11_016, "2000-02-29"),
            (11_017, "2000-03-01"),
            (19_723, "2024-01-01"),
            (-719_468, "0000-03-01"),
        ];
        for (days, expected) in cases {
            assert_eq!(Date::from_days_since_epoch(days).to_string(), expected, "day {days}");
        }
    }

    #[test]
    fn a_date_is_parsed_strictly() {
        assert_eq!("2027-01-31".parse::<Date>().map(|d| d.to_string()), Ok("2027-01-31".to_owned()));
        for bad in ["2027-02-30", "2027-1-31", "31/01/2027", "2027-01-31T00:00:00Z", ""] {
            assert!(bad.parse::<Date>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_system_time_gives_its_utc_day() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_704_067_199); // 2023-12-31T23:59:59Z
        assert_eq!(Date::from_system_time(time).to_string(), "2023-12-31");
    }
}

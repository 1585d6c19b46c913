//! `conform run`: the suites in order, on the model and (unless `--model-only`) against a target, every check
//! reported to the event stream as it ends; then the verdicts per rule and threat, and the exit status.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::contracts::{LaunchCriteria, Rules, Threats};
use crate::error::Error;
use crate::exit::Exit;
use crate::gate::{Date, Waivers, decide};
use crate::report::event::{RunFinished, RunStarted};
use crate::report::jsonl::JsonLines;
use crate::report::tally::{rule_lines, threat_lines};
use crate::report::{CheckOutcome, Event, EventStream, Writer};
use crate::suites::model::GeneratedOptions;
use crate::suites::{Reporter, Session, TargetOptions, known_tags};

/// Everything `conform run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Seed, scenario counts and length for the model suite.
    pub model: GeneratedOptions,
    /// Scenarios against the target.
    pub target_cases: u32,
    /// Where reports go.
    pub report_dir: PathBuf,
    /// The target; `None`: the model alone.
    pub target: Option<TargetOptions>,
    /// `--tags`.
    pub tags: Vec<String>,
    /// Waivers for the launch decision.
    pub waivers: Option<PathBuf>,
}

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Usage(format!("cannot encode {name}: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(|source| Error::ReportWrite { path: path.clone(), source })?;
    Ok(path)
}

/// Checks what can be checked before anything runs: tags, the report directory, the profile.
fn validate(options: &RunOptions, catalog: &Rules) -> Result<(), Error> {
    let known = known_tags(catalog);
    for tag in &options.tags {
        if !known.contains(tag) {
            return Err(Error::Usage(format!("--tags: unknown tag `{tag}` (known: {})", known.join(", "))));
        }
    }
    std::fs::create_dir_all(&options.report_dir)
        .map_err(|source| Error::ReportWrite { path: options.report_dir.clone(), source })?;
    let probe = options.report_dir.join(".conform-write-test");
    std::fs::write(&probe, b"").map_err(|source| Error::ReportWrite { path: options.report_dir.clone(), source })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The writers of a run: everything the report directory holds, plus the console.
pub(crate) fn writers(report_dir: &Path, today: Date) -> Result<Vec<Box<dyn Writer>>, Error> {
    Ok(vec![
        Box::new(crate::report::console::Console::stdout()),
        Box::new(JsonLines::create(report_dir)?),
        Box::new(crate::report::summary::Summary::new(report_dir)),
        Box::new(crate::report::junit::Junit::new(report_dir)),
        Box::new(crate::report::markdown::Markdown::new(report_dir)),
        Box::new(crate::report::html::Html::new(report_dir).with_date(today.to_string())),
    ])
}

/// Runs `conform run`.
pub fn run(options: &RunOptions) -> Result<Exit, Error> {
    let started = Instant::now();
    let catalog = Rules::embedded()?;
    let threats = Threats::embedded()?;
    validate(options, &catalog)?;
    let today = Date::today_utc();
    let criteria = LaunchCriteria::embedded()?;
    let waivers = match &options.waivers {
        Some(path) => Waivers::load(path, &criteria)?,
        None => Waivers::none(),
    };
    let profile = options.target.as_ref().map(TargetOptions::load_profile).transpose()?;
    if options.model.cases == 0 && (options.target.is_none() || options.target_cases == 0) {
        eprintln!("conform: nothing ran (--cases 0)");
        return Ok(Exit::NothingRan);
    }
    let mut stream = EventStream::new(writers(&options.report_dir, today)?);
    let suites: Vec<String> = if options.target.is_some() { crate::suites::SUITES.to_vec() } else { vec!["model"] }
        .into_iter()
        .map(str::to_owned)
        .collect();
    stream.emit(Event::RunStarted(RunStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        seed: options.model.seed,
        target: profile.as_ref().map_or("model".to_owned(), |p| p.name().to_owned()),
        environment: profile.as_ref().map_or("test".to_owned(), |p| p.environment().name().to_owned()),
        faults: options
            .target
            .as_ref()
            .map(|t| t.faults.iter().map(|f| f.name().to_owned()).collect())
            .unwrap_or_default(),
        suites,
        tags: options.tags.clone(),
    }))?;
    let mut reporter = Reporter::new(&catalog, &mut stream, &options.tags);
    crate::suites::model::run(options.model, &options.report_dir, &mut reporter)?;
    if let (Some(target), Some(profile)) = (&options.target, profile) {
        let mut session = Session::open(target, profile, format!("seed{}", options.model.seed))?;
        let hint = match &target.profile {
            Some(path) => format!(" --profile {}", path.display()),
            None => String::new(),
        };
        let generated = GeneratedOptions { cases: options.target_cases, ..options.model };
        crate::suites::run_target_suites(&mut session, generated, &hint, &options.report_dir, &mut reporter)?;
    }
    finish(&mut stream, &catalog, &threats, &waivers, today, started)
}

/// Ends a run: the verdicts per rule and threat, the launch decision, and the exit status, from the checks the stream
/// has seen.
pub(crate) fn finish(
    stream: &mut EventStream,
    catalog: &Rules,
    threats: &Threats,
    waivers: &Waivers,
    today: Date,
    started: Instant,
) -> Result<Exit, Error> {
    let criteria = LaunchCriteria::embedded()?;
    let rules = rule_lines(catalog, stream.checks());
    let threat_lines = threat_lines(threats, &rules);
    let failed = stream.checks().iter().any(|c| matches!(c.outcome, CheckOutcome::Failed(_)));
    let exit = if failed { Exit::Findings } else { Exit::Passed };
    stream.emit(Event::RunFinished(RunFinished {
        rules,
        threats: threat_lines,
        gate: Some(decide(&criteria, waivers, stream.checks(), stream.suites(), today)),
        exit_code: exit.code(),
        exit_meaning: exit.meaning().to_owned(),
        duration_ms: started.elapsed().as_millis() as u64,
    }))?;
    Ok(exit)
}

//! `conform selftest`: the harness's teeth. Every target suite runs against the embedded target once clean and once
//! per fault of its catalog. Clean, nothing may be found; with each fault, something must be found, and among the
//! findings' rules must be one the fault is known to break. Per fault it records the time to the first finding and
//! the length of the shortest reproduction.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use conform_embedded::faults::{CATALOG, FaultSet};
use serde::Serialize;

use crate::contracts::Rules;
use crate::error::Error;
use crate::exit::Exit;
use crate::report::{CheckOutcome, Event, EventStream, Writer};
use crate::suites::model::GeneratedOptions;
use crate::suites::{Reporter, Session, TargetOptions, run_target_suites};

/// What to run.
#[derive(Debug, Clone)]
pub struct SelftestOptions {
    /// Seed, scenarios and length of the generated suites.
    pub generated: GeneratedOptions,
    /// Faults to try (names); empty: the whole catalog.
    pub faults: Vec<String>,
    /// Where the table and each run's counterexamples go.
    pub report_dir: PathBuf,
    /// Runs at once.
    pub jobs: usize,
}

/// One line of the detection table.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// The fault (`clean` for none).
    pub fault: String,
    /// The rules the catalog says it breaks.
    pub breaks: Vec<String>,
    /// Whether any check failed.
    pub found: bool,
    /// The rules of the failed checks.
    pub found_rules: Vec<String>,
    /// The checks that failed.
    pub failed_checks: Vec<String>,
    /// Milliseconds from the start of the suites to the first failed check.
    pub time_to_detect_ms: Option<u64>,
    /// Requests in the shortest reproduction.
    pub shortest_reproduction: Option<usize>,
    /// Whether this line is what it should be: clean finds nothing; a fault is found under one of its rules.
    pub as_expected: bool,
}

/// Remembers when the first failed check arrived.
struct FirstFailure {
    started: Instant,
    at: Rc<RefCell<Option<u64>>>,
}

impl Writer for FirstFailure {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::CheckFinished(check) => {
                if matches!(check.outcome, CheckOutcome::Failed(_)) && self.at.borrow().is_none() {
                    *self.at.borrow_mut() = Some(self.started.elapsed().as_millis() as u64);
                }
            }
            Event::RunStarted(_) | Event::SuiteStarted(_) | Event::SuiteFinished(_) | Event::RunFinished(_) => {}
        }
        Ok(())
    }
}

/// Runs the target suites once against the embedded target with `faults`.
fn detect(label: &str, faults: FaultSet, options: &SelftestOptions, catalog: &Rules) -> Result<Detection, Error> {
    let dir = options.report_dir.join(label);
    std::fs::create_dir_all(&dir).map_err(|source| Error::ReportWrite { path: dir.clone(), source })?;
    let breaks: Vec<String> = faults.iter().flat_map(|f| f.info().rules.iter().map(|r| (*r).to_owned())).collect();
    let target = TargetOptions { faults, log_dir: dir.clone(), ..TargetOptions::default() };
    let profile = target.load_profile()?;
    let mut session = Session::open(&target, profile, format!("selftest-{label}-{}", std::process::id()))?;
    let first = Rc::new(RefCell::new(None));
    let mut stream = EventStream::new(vec![Box::new(FirstFailure { started: Instant::now(), at: first.clone() })]);
    let mut reporter = Reporter::new(catalog, &mut stream, &[]);
    reporter.stop_once_failed_under = Some(breaks.clone());
    let hint = format!(" --fault {label}");
    run_target_suites(&mut session, options.generated, &hint, &dir, &mut reporter)?;
    let failed: Vec<_> =
        stream.checks().iter().filter(|c| matches!(c.outcome, CheckOutcome::Failed(_))).cloned().collect();
    let mut found_rules: Vec<String> = failed.iter().flat_map(|c| c.rules.iter().cloned()).collect();
    found_rules.sort();
    found_rules.dedup();
    let shortest_reproduction = failed
        .iter()
        .filter_map(|c| match &c.outcome {
            CheckOutcome::Failed(f) if !f.reproduction.is_empty() => Some(f.reproduction.len()),
            _ => None,
        })
        .min();
    let found = !failed.is_empty();
    let as_expected = if breaks.is_empty() { !found } else { found && breaks.iter().any(|r| found_rules.contains(r)) };
    let time_to_detect_ms = *first.borrow();
    Ok(Detection {
        fault: label.to_owned(),
        breaks,
        found,
        found_rules,
        failed_checks: failed.iter().map(|c| c.id()).collect(),
        time_to_detect_ms,
        shortest_reproduction,
        as_expected,
    })
}

/// Runs `conform selftest`: exits 0 when the clean target shows nothing and every fault is caught under its rules.
pub fn selftest(options: &SelftestOptions) -> Result<Exit, Error> {
    let lines = selftest_lines(options)?;
    Ok(if lines.iter().all(|l| l.as_expected) { Exit::Passed } else { Exit::Findings })
}

/// Runs the clean target and each fault, prints the table as it goes and writes it; the clean line comes first.
pub fn selftest_lines(options: &SelftestOptions) -> Result<Vec<Detection>, Error> {
    let catalog = Rules::embedded()?;
    let faults = if options.faults.is_empty() {
        CATALOG.iter().map(|f| f.name.to_owned()).collect()
    } else {
        FaultSet::parse(&options.faults).map_err(|e| Error::Usage(e.to_string()))?;
        options.faults.clone()
    };
    std::fs::create_dir_all(&options.report_dir)
        .map_err(|source| Error::ReportWrite { path: options.report_dir.clone(), source })?;
    println!("{:<34} {:<8} {:>9} {:>6}  rules found (expected)", "fault", "caught", "detect ms", "steps");
    let runs: Vec<(String, FaultSet)> = std::iter::once(("clean".to_owned(), FaultSet::none()))
        .chain(faults.iter().map(|name| (name.clone(), FaultSet::parse([name]).unwrap_or_default())))
        .collect();
    // Each run has its own target, simulators and runtime, and spends much of its time waiting on sockets and
    // deadlines: running a few at once shortens the selftest without changing any run's verdict.
    let next = std::sync::Mutex::new(runs.iter().enumerate());
    let done: std::sync::Mutex<Vec<Option<Detection>>> = std::sync::Mutex::new(vec![None; runs.len()]);
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| {
                while let Some((index, (label, set))) = next.lock().map(|mut n| n.next()).ok().flatten() {
                    match detect(label, set.clone(), options, &catalog) {
                        Ok(line) => {
                            print_line(&line);
                            let mut done = done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            done[index] = Some(line);
                            // The table so far is on disk after every run: an interrupted selftest keeps it.
                            let so_far: Vec<Detection> = done.iter().flatten().cloned().collect();
                            if let Err(e) = write_table(&options.report_dir, &so_far) {
                                first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(e);
                            }
                        }
                        Err(e) => {
                            first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = first_error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        return Err(error);
    }
    let lines: Vec<Detection> =
        done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).into_iter().flatten().collect();
    let faults_caught = lines.iter().filter(|l| !l.breaks.is_empty() && l.as_expected).count();
    println!(
        "{faults_caught} of {} faults caught under their rules; clean target: {}",
        lines.len() - 1,
        if lines[0].as_expected { "no findings" } else { "FINDINGS" }
    );
    Ok(lines)
}

fn print_line(line: &Detection) {
    let caught = match (line.breaks.is_empty(), line.as_expected) {
        (true, true) => "clean",
        (true, false) => "FINDINGS",
        (false, true) => "yes",
        (false, false) if line.found => "OTHER",
        (false, false) => "MISSED",
    };
    println!(
        "{:<34} {:<8} {:>9} {:>6}  {} ({})",
        line.fault,
        caught,
        line.time_to_detect_ms.map_or("-".to_owned(), |t| t.to_string()),
        line.shortest_reproduction.map_or("-".to_owned(), |n| n.to_string()),
        line.found_rules.join(","),
        line.breaks.join(",")
    );
}

fn write_table(dir: &Path, lines: &[Detection]) -> Result<(), Error> {
    crate::run::write_json(dir, "selftest.json", &lines)?;
    let mut md = String::from(
        "| fault | caught | time to detect (ms) | shortest reproduction (requests) | rules found | rules it breaks |\n|---|---|---|---|---|---|\n",
    );
    for l in lines {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            l.fault,
            if l.as_expected { "yes" } else { "no" },
            l.time_to_detect_ms.map_or("-".to_owned(), |t| t.to_string()),
            l.shortest_reproduction.map_or("-".to_owned(), |n| n.to_string()),
            l.found_rules.join(", "),
            l.breaks.join(", ")
        ));
    }
    let path = dir.join("selftest.md");
    std::fs::write(&path, md).map_err(|source| Error::ReportWrite { path, source })
}

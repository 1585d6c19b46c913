//! `summary.json`: the run's verdicts in one document (what ran, the verdict per rule and threat, the launch
//! decision, the exit status), without wall times, so that two runs with the same seed give the same file.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::event::RunStarted;
use super::{Event, Writer};
use crate::error::Error;

/// Writes `summary.json` when the run ends.
pub struct Summary {
    dir: PathBuf,
    run: Option<RunStarted>,
}

impl Summary {
    /// A summary written into `dir`.
    pub fn new(dir: &Path) -> Summary {
        Summary { dir: dir.to_owned(), run: None }
    }
}

impl Writer for Summary {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::RunStarted(run) => self.run = Some(run.clone()),
            Event::SuiteStarted(_) | Event::CheckFinished(_) | Event::SuiteFinished(_) => {}
            Event::RunFinished(finished) => {
                let run = self.run.as_ref();
                let summary = json!({
                    "seed": run.map(|r| r.seed),
                    "target": run.map(|r| r.target.clone()),
                    "environment": run.map(|r| r.environment.clone()),
                    "faults": run.map(|r| r.faults.clone()),
                    "suites": run.map(|r| r.suites.clone()),
                    "rules": finished.rules,
                    "threats": finished.threats,
                    "gate": finished.gate,
                    "exit_code": finished.exit_code,
                });
                crate::run::write_json(&self.dir, "summary.json", &summary)?;
            }
        }
        Ok(())
    }
}

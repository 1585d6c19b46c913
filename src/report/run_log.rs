//! The record a whole-run writer (JUnit, Markdown, HTML) keeps until `RunFinished`: the run's description and each
//! suite's checks, in the order they came. Writers call it from their own exhaustive `match`, so each still handles
//! every event kind explicitly.

use super::event::{CheckRecord, RunStarted, SuiteFinished, SuiteStarted};

/// The events of one run so far, grouped by suite.
#[derive(Debug, Default)]
pub(crate) struct RunLog {
    /// The run's description, once `RunStarted` came.
    pub run: Option<RunStarted>,
    /// The suites in the order they started (or, for a check of a suite that never started, first appeared).
    pub suites: Vec<SuiteLog>,
}

/// One suite's part of the run.
#[derive(Debug)]
pub(crate) struct SuiteLog {
    /// Its name.
    pub name: String,
    /// The checks it announced, when it did.
    pub planned: Option<u64>,
    /// Its checks, in the order they finished.
    pub checks: Vec<CheckRecord>,
    /// Its totals, once it finished.
    pub finished: Option<SuiteFinished>,
}

impl RunLog {
    /// A new run begins: whatever an earlier run left is dropped, so one writer can serve runs one after another.
    pub fn run_started(&mut self, run: &RunStarted) {
        *self = RunLog { run: Some(run.clone()), suites: Vec::new() };
    }

    pub fn suite_started(&mut self, suite: &SuiteStarted) {
        self.suite_mut(&suite.suite).planned = suite.planned;
    }

    pub fn check_finished(&mut self, check: &CheckRecord) {
        self.suite_mut(&check.suite).checks.push(check.clone());
    }

    pub fn suite_finished(&mut self, suite: &SuiteFinished) {
        self.suite_mut(&suite.suite).finished = Some(suite.clone());
    }

    /// Every check, suite by suite.
    pub fn checks(&self) -> impl Iterator<Item = &CheckRecord> {
        self.suites.iter().flat_map(|suite| suite.checks.iter())
    }

    fn suite_mut(&mut self, name: &str) -> &mut SuiteLog {
        let index = match self.suites.iter().position(|suite| suite.name == name) {
            Some(index) => index,
            None => {
                let suite = SuiteLog { name: name.to_owned(), planned: None, checks: Vec::new(), finished: None };
                self.suites.push(suite);
                self.suites.len() - 1
            }
        };
        &mut self.suites[index]
    }
}

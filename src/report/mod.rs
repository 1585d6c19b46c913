//! Reports: one stream of [`Event`]s, many writers. Suites emit events through an [`EventStream`]; each writer
//! renders every event kind and never decides a verdict (rule verdicts come from [`tally`], the launch decision from
//! `crate::gate`, both before `RunFinished` is emitted).

pub mod console;
pub mod event;
pub mod html;
pub mod jsonl;
pub mod junit;
pub mod markdown;
mod run_log;
pub mod summary;
pub mod tally;
pub mod text;

pub use event::{CheckOutcome, CheckRecord, Event};

use crate::error::Error;

/// A report writer: renders events as they come. A writer that needs the whole run (JUnit, Markdown, HTML) keeps
/// what it needs and writes its file on `RunFinished`; a streaming one (console, JSON lines) writes at once.
pub trait Writer {
    /// Handles one event.
    fn write(&mut self, event: &Event) -> Result<(), Error>;
}

/// The fan-out from suites to writers; it also keeps the checks, from which the verdicts are tallied.
#[derive(Default)]
pub struct EventStream {
    writers: Vec<Box<dyn Writer>>,
    checks: Vec<CheckRecord>,
    suites: Vec<String>,
}

impl EventStream {
    /// A stream to these writers.
    pub fn new(writers: Vec<Box<dyn Writer>>) -> EventStream {
        EventStream { writers, checks: Vec::new(), suites: Vec::new() }
    }

    /// Sends `event` to every writer, in order; the first writer error ends the run (results already written stay
    /// written).
    pub fn emit(&mut self, event: Event) -> Result<(), Error> {
        match &event {
            Event::CheckFinished(check) => self.checks.push(check.clone()),
            Event::SuiteStarted(suite) => self.suites.push(suite.suite.clone()),
            _ => {}
        }
        for writer in &mut self.writers {
            writer.write(&event)?;
        }
        Ok(())
    }

    /// Every check so far.
    pub fn checks(&self) -> &[CheckRecord] {
        &self.checks
    }

    /// The suites started so far.
    pub fn suites(&self) -> &[String] {
        &self.suites
    }
}

//! `events.jsonl`: every event as one JSON line, flushed as it is written, so that a killed run leaves every
//! result so far. `conform gate` reads it back.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{Event, Writer};
use crate::error::Error;

/// The file name in the report directory.
pub const FILE_NAME: &str = "events.jsonl";

/// Writes events as JSON lines.
pub struct JsonLines {
    path: PathBuf,
    file: File,
}

impl JsonLines {
    /// Creates (truncates) `dir/events.jsonl`.
    pub fn create(dir: &Path) -> Result<JsonLines, Error> {
        let path = dir.join(FILE_NAME);
        let file = File::create(&path).map_err(|source| Error::ReportWrite { path: path.clone(), source })?;
        Ok(JsonLines { path, file })
    }
}

impl Writer for JsonLines {
    fn write(&mut self, event: &Event) -> Result<(), Error> {
        let mut line =
            serde_json::to_string(event).map_err(|e| Error::Usage(format!("cannot encode an event: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| Error::ReportWrite { path: self.path.clone(), source })
    }
}

/// Reads a run's events back; an unreadable line is an error naming the file and the line.
pub fn read(path: &Path) -> Result<Vec<Event>, Error> {
    let file = File::open(path).map_err(|e| {
        Error::Usage(format!("cannot read {}: {e} (run `conform run` first, or pass --report-dir)", path.display()))
    })?;
    let mut events = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::Usage(format!("{}:{}: {e}", path.display(), index + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line)
            .map_err(|e| Error::Usage(format!("{}:{}: not a conform event: {e}", path.display(), index + 1)))?;
        events.push(event);
    }
    Ok(events)
}

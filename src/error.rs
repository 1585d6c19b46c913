//! The error type of the `conform` library: what a user can cause, with the context to act on it.

use std::path::PathBuf;

use crate::exit::Exit;

/// An error a user can cause or fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A report could not be written.
    #[error("cannot write {path}: {source} (choose another --report-dir, or fix its permissions)")]
    ReportWrite {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A contract file is wrong.
    #[error(transparent)]
    Contract(#[from] crate::contracts::ContractError),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The target is down or never came up.
    #[error("{0}")]
    TargetUnreachable(String),
}

impl Error {
    /// The exit status this error ends the command with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::ReportWrite { .. } | Error::Contract(_) | Error::Usage(_) => Exit::Usage,
            Error::TargetUnreachable(_) => Exit::TargetUnreachable,
        }
    }
}

//! The contract folder (`contracts/`), typed.
//!
//! The contracts are the harness's expectations written down once: which rules exist and what they are called, who
//! may call what, how each operation is bound to a route or an event, what a launch needs. Reports, suites and the
//! launch gate read them through these types rather than each parsing the files, so that every reader agrees on
//! their meaning and a mistake in a file is caught in one place.
//!
//! Every struct refuses unknown fields: a misspelled key would otherwise be dropped silently and the expectation it
//! carried would vanish from every suite. Errors name the file and, through the parser, the line and the field.
//!
//! Each file can be read two ways. `embedded()` uses the copy compiled into the binary, so `conform` runs from any
//! directory and always agrees with the suites it was built with. `load(path)` reads a file on disk, for the launch
//! gate (which must judge the contracts as they are in the repository now) and for the tests. Both go through
//! `parse(file_name, text)`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub mod launch;
pub mod matrix;
pub mod openapi;
pub mod realtime;
pub mod rules;
pub mod threats;

pub use launch::LaunchCriteria;
pub use matrix::{Cell, Matrix};
pub use openapi::OpenApi;
pub use realtime::Realtime;
pub use rules::Rules;
pub use threats::Threats;

/// A contract file that cannot be read or does not have the expected shape.
///
/// Every message starts with `contracts/<file>` so that a user knows which file to fix without knowing which code
/// read it. The underlying error's text is part of the message (it carries the line and the field) and is therefore
/// not also reported as [`std::error::Error::source`], which would print it twice in an error chain.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The file could not be read at all (missing, unreadable, not UTF-8).
    #[error("contracts/{file}: cannot read {}: {error}", path.display())]
    Read {
        /// The file's name, as the contract is known in `contracts/`.
        file: String,
        /// Where it was looked for, since a path given on the command line may not be in `contracts/`.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// A TOML file does not parse, or does not fit its type (missing, unknown or mistyped field).
    #[error("contracts/{file}: {error}")]
    Toml {
        /// The file's name.
        file: String,
        /// The parser's error, which names the line, the column and the field. Boxed to keep results small.
        error: Box<toml::de::Error>,
    },
    /// A YAML file does not parse, or does not fit its type.
    #[error("contracts/{file}: {error}")]
    Yaml {
        /// The file's name.
        file: String,
        /// The parser's error, which names the line, the column and the field. Boxed to keep results small.
        error: Box<serde_saphyr::Error>,
    },
}

impl ContractError {
    /// The name of the file at fault, for callers that group or filter errors by file.
    pub fn file(&self) -> &str {
        match self {
            ContractError::Read { file, .. } | ContractError::Toml { file, .. } | ContractError::Yaml { file, .. } => {
                file
            }
        }
    }
}

/// Parses a TOML contract; `file` only names the file in the error.
fn parse_toml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ContractError> {
    toml::from_str(text).map_err(|error| ContractError::Toml { file: file.to_owned(), error: Box::new(error) })
}

/// Parses a YAML contract; `file` only names the file in the error.
fn parse_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ContractError> {
    serde_saphyr::from_str(text).map_err(|error| ContractError::Yaml { file: file.to_owned(), error: Box::new(error) })
}

/// Reads a contract from disk and returns the name to report it by with its text. The name is the path's own file
/// name, so that a fixture or a copy elsewhere is reported as what it is; `default` covers paths without one.
fn read(path: &Path, default: &str) -> Result<(String, String), ContractError> {
    let file = path.file_name().map_or_else(|| default.to_owned(), |name| name.to_string_lossy().into_owned());
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(error) => Err(ContractError::Read { file, path: path.to_owned(), error }),
    }
}

/// Gives a contract type its file name, its embedded copy and the three constructors, identically for every file.
///
/// `$embedded` is an `include_str!` written at the call site, so that its path is relative to the submodule.
macro_rules! contract_file {
    ($ty:ident, $file:literal, $parse:ident, $embedded:expr) => {
        impl $ty {
            #[doc = concat!("The file's name in `contracts/`: `", $file, "`.")]
            pub const FILE: &'static str = $file;

            #[doc = concat!("`contracts/", $file, "` as it was when this binary was built.")]
            pub const EMBEDDED: &'static str = $embedded;

            /// Parses the file's text; `file_name` is only used to name the file in the error, so that text from
            /// anywhere (a fixture, a string in a test) is reported under the name the user knows it by.
            pub fn parse(file_name: &str, text: &str) -> Result<Self, $crate::contracts::ContractError> {
                $crate::contracts::$parse(file_name, text)
            }

            /// Reads and parses the file at `path`, as it is on disk now.
            pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, $crate::contracts::ContractError> {
                let (file, text) = $crate::contracts::read(path.as_ref(), Self::FILE)?;
                Self::parse(&file, &text)
            }

            /// Parses the copy embedded in the binary, which needs no file system and matches the build.
            pub fn embedded() -> Result<Self, $crate::contracts::ContractError> {
                Self::parse(Self::FILE, Self::EMBEDDED)
            }
        }
    };
}
use contract_file;

/// Every contract file, for the readers that need several of them to agree (the tests, the launch gate).
#[derive(Debug)]
pub struct Contracts {
    /// `rules.toml`.
    pub rules: Rules,
    /// `threats.toml`.
    pub threats: Threats,
    /// `authorization-matrix.toml`.
    pub matrix: Matrix,
    /// `openapi.yaml`.
    pub openapi: OpenApi,
    /// `realtime.toml`.
    pub realtime: Realtime,
    /// `launch-criteria.toml`.
    pub launch: LaunchCriteria,
}

impl Contracts {
    /// Every file from the copies embedded in the binary.
    pub fn embedded() -> Result<Contracts, ContractError> {
        Ok(Contracts {
            rules: Rules::embedded()?,
            threats: Threats::embedded()?,
            matrix: Matrix::embedded()?,
            openapi: OpenApi::embedded()?,
            realtime: Realtime::embedded()?,
            launch: LaunchCriteria::embedded()?,
        })
    }

    /// Every file from a contracts directory on disk, each under its usual name; the first error is returned.
    pub fn load(dir: impl AsRef<Path>) -> Result<Contracts, ContractError> {
        let dir = dir.as_ref();
        Ok(Contracts {
            rules: Rules::load(dir.join(Rules::FILE))?,
            threats: Threats::load(dir.join(Threats::FILE))?,
            matrix: Matrix::load(dir.join(Matrix::FILE))?,
            openapi: OpenApi::load(dir.join(OpenApi::FILE))?,
            realtime: Realtime::load(dir.join(Realtime::FILE))?,
            launch: LaunchCriteria::load(dir.join(LaunchCriteria::FILE))?,
        })
    }
}

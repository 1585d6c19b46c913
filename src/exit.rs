//! Exit statuses of the `conform` binary: the one place they are defined. README.md's table is written from this.

use std::process::ExitCode;

/// How a `conform` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything that ran passed.
    Passed,
    /// 1: at least one finding (a rule broken).
    Findings,
    /// 2: the command line, a profile, a contract or another input file is wrong; nothing ran.
    Usage,
    /// 3: the target could not be reached.
    TargetUnreachable,
    /// 4: nothing ran (no case, no check selected): never a pass.
    NothingRan,
}

impl Exit {
    /// Every status with its meaning, for `--help` and the README.
    pub const TABLE: [(u8, &'static str); 5] = [
        (0, "passed: every check that ran passed"),
        (1, "findings: at least one rule is broken (see the reports)"),
        (2, "usage or configuration error: a flag, profile, contract or input file is wrong; nothing ran"),
        (3, "target unreachable"),
        (4, "nothing ran: no case or check was selected"),
    ];

    /// What the status means, from [`Exit::TABLE`].
    pub fn meaning(self) -> &'static str {
        Exit::TABLE.iter().find(|(code, _)| *code == self.code()).map_or("", |(_, meaning)| meaning)
    }
    /// What `conform gate` exits with: it answers one question, so three statuses apply.
    pub const GATE_TABLE: [(u8, &'static str); 3] = [
        (Exit::Passed.code(), "launch may go ahead: every blocking criterion passed or carries a valid waiver"),
        (
            Exit::Findings.code(),
            "launch refused: a blocking criterion failed or is unverified, and no valid waiver covers it",
        ),
        (Exit::Usage.code(), "bad input: no events file, or a wrong criteria or waivers file; nothing was decided"),
    ];

    /// The numeric status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Passed => 0,
            Exit::Findings => 1,
            Exit::Usage => 2,
            Exit::TargetUnreachable => 3,
            Exit::NothingRan => 4,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

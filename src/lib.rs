//! conform: a verification and conformance harness for escrow payment backends.
//!
//! The reference model (crate `conform-reference`) predicts; the drivers speak to a target as its real clients
//! and providers do; suites compare the two and report per SPEC rule.

pub mod cli;
pub mod contracts;
pub mod drill;
pub mod drive;
pub mod error;
pub mod exit;
pub mod gate;
pub mod launch;
pub mod oracle;
pub mod profile;
pub mod replay;
pub mod report;
pub mod run;
pub mod selftest;
pub mod serve;
pub mod simulate;
pub mod suites;

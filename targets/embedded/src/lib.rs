//! The embedded target: a conforming implementation of the canonical contract (`contracts/openapi.yaml`,
//! `contracts/realtime.toml`), built from the reference model's parts, that can be started with any set of named
//! faults ([`faults`]). `conform run` starts it in-process on an ephemeral port; `conform serve embedded` runs it
//! alone.

pub mod faults;
pub mod realtime_api;

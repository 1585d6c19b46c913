//! Integration tests of the embedded target over real HTTP on loopback.

mod common;
mod conforming;
mod fault_probes;
mod load;
mod passkeys;

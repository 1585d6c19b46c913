//! The reference model of an escrow backend, used by conform as the oracle.
//!
//! Everything here is pure and deterministic: no async, no network, no clock reads (time is a value passed in),
//! no floating point. Each module is the executable form of one part of `SPEC.md`:
//!
//! | module | SPEC |
//! |---|---|
//! | [`money`] | §0 amounts, currencies, the platform fee |
//! | [`ledger`] | §2 accounts, postings, journal entries |
//! | [`invariants`] | §2 LED-1…LED-10 and ESC-21/22 as named checks in one registry |
//! | [`escrow`] | §1 the escrow state machine, ESC-1…ESC-22 |
//! | [`world`] | the whole backend as one state machine: escrows, ledger, sessions, approvals, audit, dead letters |
//! | [`authz`] | §3 REST authorization, AZ-1…AZ-9 |
//! | [`sessions`] | §5 sessions, step-up, passkeys, SES-1…SES-10 |
//! | [`webhooks`] | §6 signature schemes, tolerance, deduplication keys, dead-letter reasons, WH-1…WH-10 |
//! | [`providers`] | §7 payment allocation, proof flags, payout idempotency keys, PRV-1…PRV-7 |
//! | [`realtime`] | §4 who may subscribe, who must and must not receive each event, RT-3…RT-7 |
//!
//! [`world::World::next_state`] returns `None` for a refusal, in the manner of stateright's `Model`;
//! [`world::World::apply`] gives the refusal's kind and mutates in place for speed.
#![deny(missing_docs)]

pub mod authz;
pub mod escrow;
pub mod ids;
pub mod invariants;
pub mod ledger;
pub mod money;
pub mod ops;
pub mod providers;
pub mod realtime;
pub mod refusal;
pub mod sessions;
pub mod webhooks;
pub mod world;

#[cfg(feature = "generate")]
pub mod generate;
#[cfg(feature = "generate")]
pub mod model_suite;

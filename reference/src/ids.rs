//! Identifiers and time. The model numbers its objects in creation order, so a run is deterministic; the oracle
//! maps a target's unguessable ids (UUIDs, ULIDs) to these.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// An account (a person or a staff member).
    UserId,
    "user-"
);
id_type!(
    /// An escrow.
    EscrowId,
    "escrow-"
);
id_type!(
    /// A session: one sign-in and every token rotated from it (its "family").
    SessionId,
    "session-"
);
id_type!(
    /// A pending two-person approval.
    ApprovalId,
    "approval-"
);
id_type!(
    /// A dead-lettered webhook delivery.
    DeadLetterId,
    "dead-letter-"
);
id_type!(
    /// A journal entry of the ledger.
    EntryId,
    "entry-"
);

/// A point in time, in whole seconds since the Unix epoch. The model never reads a clock: every operation that
/// depends on time receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This time plus a number of seconds.
    pub const fn plus(self, seconds: i64) -> Timestamp {
        Timestamp(self.0 + seconds)
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub const fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}", self.0)
    }
}

//! The seam between the backend's state and its Socket.IO layer: the realtime layer asks the backend who a token
//! belongs to and who may see an escrow, and the backend tells the realtime layer what changed. Neither knows the
//! other's internals.

use conform_reference::authz::Role;

/// Who a socket belongs to, as the backend authenticates its access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's public id.
    pub user: String,
    /// The session's public id.
    pub session: String,
    /// The account's role now.
    pub role: Role,
}

/// What the realtime layer needs to ask the backend.
pub trait RealtimeAuthority: Send + Sync + 'static {
    /// The identity behind an access token, or `None` when it is missing, malformed, expired or revoked (RT-1).
    fn authenticate(&self, token: &str) -> Option<Identity>;
    /// Whether this identity may see the escrow (participant, or staff): the same decision as REST (RT-3, AZ-2).
    fn may_subscribe(&self, identity: &Identity, escrow_id: &str) -> bool;
    /// The account's role now (RT-7), `None` if it no longer exists.
    fn current_role(&self, user: &str) -> Option<Role>;
}

/// What the backend tells the realtime layer, in order, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeEvent {
    /// An escrow changed state (RT-4): its participants and subscribed staff must hear of it, nobody else.
    EscrowUpdated {
        /// The escrow's public id.
        escrow_id: String,
        /// Its new state.
        state: &'static str,
        /// Its new version.
        version: u64,
        /// Its buyer's public id.
        buyer: String,
        /// Its seller's public id.
        seller: String,
    },
    /// A session was revoked (RT-6): its sockets must be gone within 2 seconds.
    SessionRevoked {
        /// The session's public id.
        session: String,
    },
    /// An account's role changed (RT-7): losing staff means leaving the staff room within 2 seconds.
    RoleChanged {
        /// The account's public id.
        user: String,
        /// Its new role.
        role: Role,
    },
}

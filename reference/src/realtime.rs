//! Realtime decisions (SPEC §4) as pure functions: which rooms a socket is in, who may subscribe to an escrow,
//! who must and who must not receive each update, and which sockets must go when a session or role changes.
//!
//! The oracle compares what Socket.IO observers received with these answers (RT-3, RT-4, RT-6, RT-7).

use serde::{Deserialize, Serialize};

use crate::authz::{Parties, Principal, Role, authorize};
use crate::ids::{EscrowId, SessionId, Timestamp, UserId};
use crate::ops::OperationKind;
use crate::refusal::Refusal;
use crate::sessions::Revocation;

/// Seconds within which a revoked session's sockets, or a demoted user's staff rooms, must be gone (RT-6, RT-7).
pub const DISCONNECT_DEADLINE_SECONDS: i64 = 2;
/// Events a socket may send per second before acks say `rate_limited` (RT-5).
pub const EVENTS_PER_SECOND_LIMIT: u32 = 20;
/// Seconds of sustained abuse after which the socket is disconnected (RT-5).
pub const SUSTAINED_ABUSE_SECONDS: u32 = 5;

/// A room, always derived by the server (RT-3): a client never names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Room {
    /// Every socket of one account.
    User(UserId),
    /// Every staff socket.
    Staff,
    /// The sockets subscribed to one escrow.
    Escrow(EscrowId),
}

/// The rooms the server joins a fresh socket of an account with `role` to (RT-3).
pub fn rooms_on_connect(user: UserId, role: Role) -> Vec<Room> {
    let mut rooms = vec![Room::User(user)];
    if role.is_staff() {
        rooms.push(Room::Staff);
    }
    rooms
}

/// Whether `principal` may subscribe to an escrow with `parties` (`None`: no such escrow). The refusal is the ack's
/// error: `not_found` for both a hidden and a missing escrow, so a subscription never leaks existence (RT-3).
pub fn may_subscribe(principal: &Principal, parties: Option<Parties>, now: Timestamp) -> Result<(), Refusal> {
    authorize(principal, OperationKind::SubscribeEscrow, parties, now).map_err(|refusal| match refusal {
        Refusal::Forbidden => Refusal::NotFound,
        other => other,
    })
}

/// A connected account as the realtime oracle sees it: who, with which role, and which escrows it subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The account.
    pub user: UserId,
    /// Its role now.
    pub role: Role,
    /// Escrows it subscribed to (and was acked for).
    pub subscriptions: Vec<EscrowId>,
}

/// Whether `listener` must receive `escrow:updated` for an escrow with `parties` (RT-4). Everyone else must not:
/// there is no third answer, so a receipt by a non-recipient is always a leak (RT-4, T10).
pub fn must_receive(listener: &Listener, escrow: EscrowId, parties: Parties) -> bool {
    let participant = listener.user == parties.buyer || listener.user == parties.seller;
    let subscribed_staff = listener.role.is_staff() && listener.subscriptions.contains(&escrow);
    participant || subscribed_staff
}

/// Splits listeners into those that must and those that must not receive an update of `escrow` (RT-4).
pub fn audience(listeners: &[Listener], escrow: EscrowId, parties: Parties) -> (Vec<UserId>, Vec<UserId>) {
    let (must, must_not): (Vec<&Listener>, Vec<&Listener>) =
        listeners.iter().partition(|l| must_receive(l, escrow, parties));
    (must.into_iter().map(|l| l.user).collect(), must_not.into_iter().map(|l| l.user).collect())
}

/// The deadline by which every socket of a revoked session must be disconnected (RT-6).
pub fn disconnect_deadline(revocation: &Revocation) -> (SessionId, Timestamp) {
    (revocation.session, revocation.at.plus(DISCONNECT_DEADLINE_SECONDS))
}

/// Whether a role change from `before` to `after` must remove the user's sockets from the staff room, and by when
/// (RT-7): only losing staff status does.
pub fn staff_room_exit(before: Role, after: Role, at: Timestamp) -> Option<Timestamp> {
    (before.is_staff() && !after.is_staff()).then(|| at.plus(DISCONNECT_DEADLINE_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(10_000);
    const PARTIES: Parties = Parties { buyer: UserId(1), seller: UserId(2) };

    fn signed(user: u32, role: Role) -> Principal {
        Principal::Signed { user: UserId(user), role, step_up_at: None }
    }

    #[test]
    fn subscriptions_never_reveal_existence() {
        assert_eq!(may_subscribe(&signed(1, Role::User), Some(PARTIES), NOW), Ok(()));
        assert_eq!(may_subscribe(&signed(3, Role::User), Some(PARTIES), NOW), Err(Refusal::NotFound));
        assert_eq!(may_subscribe(&signed(3, Role::User), None, NOW), Err(Refusal::NotFound));
        assert_eq!(may_subscribe(&signed(3, Role::Support), Some(PARTIES), NOW), Ok(()));
        assert_eq!(may_subscribe(&Principal::Anonymous, Some(PARTIES), NOW), Err(Refusal::Unauthenticated));
    }

    #[test]
    fn only_participants_and_subscribed_staff_receive_updates() {
        let escrow = EscrowId(5);
        let listeners = [
            Listener { user: UserId(1), role: Role::User, subscriptions: vec![] },
            Listener { user: UserId(2), role: Role::User, subscriptions: vec![] },
            Listener { user: UserId(3), role: Role::User, subscriptions: vec![escrow] },
            Listener { user: UserId(4), role: Role::Admin, subscriptions: vec![escrow] },
            Listener { user: UserId(5), role: Role::Support, subscriptions: vec![] },
        ];
        let (must, must_not) = audience(&listeners, escrow, PARTIES);
        assert_eq!(must, vec![UserId(1), UserId(2), UserId(4)]);
        assert_eq!(
            must_not,
            vec![UserId(3), UserId(5)],
            "a stranger's subscription and unsubscribed staff get nothing"
        );
    }

    #[test]
    fn staff_rooms_and_demotion() {
        assert_eq!(rooms_on_connect(UserId(4), Role::Admin), vec![Room::User(UserId(4)), Room::Staff]);
        assert_eq!(rooms_on_connect(UserId(1), Role::User), vec![Room::User(UserId(1))]);
        assert_eq!(staff_room_exit(Role::Admin, Role::User, NOW), Some(NOW.plus(2)));
        assert_eq!(staff_room_exit(Role::Admin, Role::Support, NOW), None);
        assert_eq!(staff_room_exit(Role::User, Role::Admin, NOW), None);
    }
}

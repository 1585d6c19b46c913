//! The embedded target's Socket.IO layer (SPEC §4, `contracts/realtime.toml`), on socketioxide.
//!
//! - RT-1/RT-2: a socket authenticates with `{"token": …}` in the CONNECT auth payload, checked by
//!   [`RealtimeAuthority::authenticate`]; anything else gets CONNECT_ERROR `unauthorized`. A token in the query string
//!   is ignored (fault [`Fault::TokenInQueryString`]: accepted).
//! - RT-3: rooms are server-derived: `user:{id}` and, for staff, `staff` on connect; `escrow:{id}` on an
//!   `escrow:subscribe` that [`RealtimeAuthority::may_subscribe`] allows, else ack `{"error":"not_found"}`
//!   (fault [`Fault::ClientNamedRoom`]: whatever room the client names, unchecked).
//! - RT-4/RT-9: [`RealtimeEvent::EscrowUpdated`] becomes `escrow:updated` `{escrow_id, state, version}` to the
//!   buyer's and seller's user rooms and the escrow's room, each socket once (fault [`Fault::GlobalBroadcast`]: to
//!   every socket).
//! - RT-5: more than [`EVENTS_PER_SECOND`] events in a second from one socket get `{"error":"rate_limited"}`; over
//!   the limit for [`SUSTAINED_ABUSE`] the socket is disconnected (fault [`Fault::NoSocketRateLimit`]: no limit).
//! - RT-6: [`RealtimeEvent::SessionRevoked`] disconnects every socket of the session at once (fault
//!   [`Fault::NoDisconnectOnRevocation`]: nothing happens).
//! - RT-7/SES-7: [`RealtimeEvent::RoleChanged`] updates the sockets' role at once; losing staff leaves `staff` and
//!   every escrow room the new role may not see (fault [`Fault::StaleRoleInSession`]: the connect-time role stays).
//! - RT-8: malformed payloads get `{"error":"validation_failed"}` (or are dropped without an ack id); unknown events
//!   likewise. Nothing here panics on input.

use crate::faults::{Fault, FaultSet};
use crate::realtime_api::{Identity, RealtimeAuthority, RealtimeEvent};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Sid;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Events one socket may send in one second (RT-5).
pub const EVENTS_PER_SECOND: u32 = 20;
/// Over the limit this long, consecutively: the socket is disconnected (RT-5).
pub const SUSTAINED_ABUSE: Duration = Duration::from_secs(5);
/// Longest escrow id accepted in a payload; longer is a validation failure (RT-8).
pub const MAX_ID_LEN: usize = 128;

/// The Socket.IO layer of the embedded target: builds the server, registers its handlers and spawns the task that
/// turns `events` into emissions, disconnects and room changes. Must be called inside a Tokio runtime.
pub fn layer(
    authority: Arc<dyn RealtimeAuthority>,
    events: broadcast::Sender<RealtimeEvent>,
    faults: FaultSet,
) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder().build_layer();
    let shared = Arc::new(Shared { authority, faults, conns: Mutex::new(HashMap::new()) });
    let middleware = {
        let shared = shared.clone();
        async move |s: SocketRef, TryData(auth): TryData<Value>| -> Result<(), Unauthorized> {
            shared.connect(&s, auth.ok())
        }
    };
    io.ns("/", { async || () }.with(middleware));
    let rx = events.subscribe();
    tokio::spawn(run_events(shared, io, rx));
    layer
}

/// The CONNECT_ERROR message.
#[derive(Debug)]
struct Unauthorized;

impl std::fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unauthorized")
    }
}

/// One connected socket, as the layer knows it.
struct Conn {
    socket: SocketRef,
    /// Who it is; the role is kept current unless [`Fault::StaleRoleInSession`].
    identity: Identity,
    /// The escrow ids whose rooms it joined.
    escrows: BTreeSet<String>,
    limiter: RateLimiter,
}

struct Shared {
    authority: Arc<dyn RealtimeAuthority>,
    faults: FaultSet,
    conns: Mutex<HashMap<Sid, Conn>>,
}

/// What an incoming event may do.
enum Admission {
    /// Go on, as this identity.
    Allowed(Identity),
    /// Over the rate limit: ack `rate_limited`.
    Limited,
    /// Not (or no longer) registered, or disconnected for abuse: drop.
    Gone,
}

fn error(code: &str) -> Value {
    json!({ "error": code })
}

fn ok() -> Value {
    json!({ "ok": true })
}

fn user_room(user: &str) -> String {
    format!("user:{user}")
}

fn escrow_room(escrow_id: &str) -> String {
    format!("escrow:{escrow_id}")
}

const STAFF_ROOM: &str = "staff";

/// The `token` parameter of a query string, as-is.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token=")).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The escrow id of a subscribe/unsubscribe payload, or `None` when malformed (RT-8).
fn escrow_id_of(payload: Option<&Value>) -> Option<&str> {
    let id = payload?.as_object()?.get("escrow_id")?.as_str()?;
    (!id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)).then_some(id)
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<Sid, Conn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connect middleware: authenticate, join the server-derived rooms, register the handlers. It runs before
    /// socketioxide answers the CONNECT, so no event the client sends right after can miss its handler.
    fn connect(self: &Arc<Self>, s: &SocketRef, auth: Option<Value>) -> Result<(), Unauthorized> {
        let from_auth = auth.as_ref().and_then(|a| a.get("token")).and_then(Value::as_str).map(str::to_owned);
        let token = from_auth.or_else(|| {
            self.faults.is_on(Fault::TokenInQueryString).then(|| query_token(s.req_parts().uri.query())).flatten()
        });
        let token = token.ok_or(Unauthorized)?;
        let identity = self.authority.authenticate(&token).ok_or(Unauthorized)?;
        self.conns().insert(
            s.id,
            Conn { socket: s.clone(), identity, escrows: BTreeSet::new(), limiter: RateLimiter::default() },
        );
        // A revocation processed between `authenticate` and the insert would have missed this socket: check again.
        if self.authority.authenticate(&token).is_none() {
            self.conns().remove(&s.id);
            return Err(Unauthorized);
        }
        {
            // Under the registry lock, so that a role change cannot slip between reading the role and joining.
            let conns = self.conns();
            let Some(conn) = conns.get(&s.id) else { return Err(Unauthorized) };
            s.join(user_room(&conn.identity.user));
            if conn.identity.role.is_staff() {
                s.join(STAFF_ROOM);
            }
        }
        self.register_handlers(s);
        Ok(())
    }

    fn register_handlers(self: &Arc<Self>, s: &SocketRef) {
        let shared = self.clone();
        s.on("escrow:subscribe", async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let answer = shared.subscribe(&s, data.ok().as_ref());
            if let Some(answer) = answer {
                ack.send(&answer).ok();
            }
        });
        let shared = self.clone();
        s.on("escrow:unsubscribe", async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let answer = shared.unsubscribe(&s, data.ok().as_ref());
            if let Some(answer) = answer {
                ack.send(&answer).ok();
            }
        });
        let shared = self.clone();
        s.on_fallback(async move |s: SocketRef, ack: AckSender| {
            let answer = match shared.admit(&s) {
                Admission::Allowed(_) => Some(error("validation_failed")),
                Admission::Limited => Some(error("rate_limited")),
                Admission::Gone => None,
            };
            if let Some(answer) = answer {
                ack.send(&answer).ok();
            }
        });
        let shared = self.clone();
        s.on_disconnect(async move |s: SocketRef| {
            shared.conns().remove(&s.id);
        });
    }

    /// Counts an incoming event against the socket's rate limit (RT-5); disconnects sustained abuse.
    fn admit(&self, s: &SocketRef) -> Admission {
        let verdict = {
            let mut conns = self.conns();
            let Some(conn) = conns.get_mut(&s.id) else { return Admission::Gone };
            let verdict = if self.faults.is_on(Fault::NoSocketRateLimit) {
                Verdict::Allowed
            } else {
                conn.limiter.check(Instant::now())
            };
            match verdict {
                Verdict::Allowed => return Admission::Allowed(conn.identity.clone()),
                Verdict::Limited => return Admission::Limited,
                Verdict::Abusive => {
                    conns.remove(&s.id);
                    verdict
                }
            }
        };
        debug_assert_eq!(verdict, Verdict::Abusive);
        s.clone().disconnect().ok();
        Admission::Gone
    }

    /// `escrow:subscribe` (RT-3, AZ-2): the ack, or `None` to drop.
    fn subscribe(&self, s: &SocketRef, payload: Option<&Value>) -> Option<Value> {
        let identity = match self.admit(s) {
            Admission::Allowed(identity) => identity,
            Admission::Limited => return Some(error("rate_limited")),
            Admission::Gone => return None,
        };
        let Some(escrow_id) = escrow_id_of(payload) else { return Some(error("validation_failed")) };
        if self.faults.is_on(Fault::ClientNamedRoom) {
            // The defect: the room the client names is joined as-is, nobody asks who may see it.
            let named = payload.and_then(|p| p.get("room")).and_then(Value::as_str);
            s.join(named.map_or_else(|| escrow_room(escrow_id), str::to_owned));
            self.record_escrow(s, escrow_id);
            return Some(ok());
        }
        let identity = if self.faults.is_on(Fault::StaleRoleInSession) {
            identity
        } else {
            // SES-7: the account's role now, not the one the socket connected with.
            let Some(role) = self.authority.current_role(&identity.user) else { return Some(error("not_found")) };
            Identity { role, ..identity }
        };
        if !self.authority.may_subscribe(&identity, escrow_id) {
            return Some(error("not_found"));
        }
        s.join(escrow_room(escrow_id));
        self.record_escrow(s, escrow_id);
        Some(ok())
    }

    fn record_escrow(&self, s: &SocketRef, escrow_id: &str) {
        if let Some(conn) = self.conns().get_mut(&s.id) {
            conn.escrows.insert(escrow_id.to_owned());
        }
    }

    /// `escrow:unsubscribe`: leave the escrow's room; not being in it is fine.
    fn unsubscribe(&self, s: &SocketRef, payload: Option<&Value>) -> Option<Value> {
        match self.admit(s) {
            Admission::Allowed(_) => {}
            Admission::Limited => return Some(error("rate_limited")),
            Admission::Gone => return None,
        }
        let Some(escrow_id) = escrow_id_of(payload) else { return Some(error("validation_failed")) };
        s.leave(escrow_room(escrow_id));
        if let Some(conn) = self.conns().get_mut(&s.id) {
            conn.escrows.remove(escrow_id);
        }
        Some(ok())
    }

    /// What the backend said happened.
    async fn on_event(&self, io: &SocketIo, event: RealtimeEvent) {
        match event {
            RealtimeEvent::EscrowUpdated { escrow_id, state, version, buyer, seller } => {
                // RT-9: ids, state and version only.
                let payload = json!({ "escrow_id": escrow_id, "state": state, "version": version });
                if self.faults.is_on(Fault::GlobalBroadcast) {
                    io.emit("escrow:updated", &payload).await.ok();
                } else {
                    let rooms = vec![user_room(&buyer), user_room(&seller), escrow_room(&escrow_id)];
                    io.to(rooms).emit("escrow:updated", &payload).await.ok();
                }
            }
            RealtimeEvent::SessionRevoked { session } => {
                if self.faults.is_on(Fault::NoDisconnectOnRevocation) {
                    return;
                }
                let sockets: Vec<SocketRef> = {
                    let mut conns = self.conns();
                    let sids: Vec<Sid> =
                        conns.iter().filter(|(_, c)| c.identity.session == session).map(|(sid, _)| *sid).collect();
                    sids.iter().filter_map(|sid| conns.remove(sid)).map(|c| c.socket).collect()
                };
                for socket in sockets {
                    socket.disconnect().ok();
                }
            }
            RealtimeEvent::RoleChanged { user, role } => {
                if self.faults.is_on(Fault::StaleRoleInSession) {
                    return;
                }
                let mut conns = self.conns();
                for conn in conns.values_mut().filter(|c| c.identity.user == user) {
                    conn.identity.role = role;
                    if role.is_staff() {
                        conn.socket.join(STAFF_ROOM);
                        continue;
                    }
                    conn.socket.leave(STAFF_ROOM);
                    let lost: Vec<String> = conn
                        .escrows
                        .iter()
                        .filter(|e| !self.authority.may_subscribe(&conn.identity, e))
                        .cloned()
                        .collect();
                    for escrow_id in lost {
                        conn.socket.leave(escrow_room(&escrow_id));
                        conn.escrows.remove(&escrow_id);
                    }
                }
            }
        }
    }
}

async fn run_events(shared: Arc<Shared>, io: SocketIo, mut rx: broadcast::Receiver<RealtimeEvent>) {
    loop {
        match rx.recv().await {
            Ok(event) => shared.on_event(&io, event).await,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// A rate limiter's answer for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over the limit in this second.
    Limited,
    /// Over the limit for [`SUSTAINED_ABUSE`] consecutively: disconnect.
    Abusive,
}

/// Per-socket fixed one-second windows (RT-5).
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    window_start: Option<Instant>,
    count: u32,
    /// Start of the first of the consecutive over-limit windows up to the current one.
    over_since: Option<Instant>,
}

impl RateLimiter {
    /// Counts one event at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let second = Duration::from_secs(1);
        let start = match self.window_start {
            Some(start) if now.saturating_duration_since(start) < second => start,
            Some(start) => {
                let elapsed = now.saturating_duration_since(start).as_secs();
                let was_over = self.count > EVENTS_PER_SECOND;
                if !(was_over && elapsed == 1) {
                    self.over_since = None;
                }
                self.count = 0;
                start + Duration::from_secs(elapsed)
            }
            None => now,
        };
        self.window_start = Some(start);
        self.count = self.count.saturating_add(1);
        if self.count <= EVENTS_PER_SECOND {
            return Verdict::Allowed;
        }
        let since = *self.over_since.get_or_insert(start);
        if now.saturating_duration_since(since) >= SUSTAINED_ABUSE { Verdict::Abusive } else { Verdict::Limited }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(limiter: &mut RateLimiter, at: Instant, n: u32) -> Vec<Verdict> {
        (0..n).map(|i| limiter.check(at + Duration::from_millis(u64::from(i)))).collect()
    }

    #[test]
    fn twenty_a_second_pass_the_twenty_first_is_limited() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::default();
        let verdicts = burst(&mut limiter, t0, 25);
        assert!(verdicts[..20].iter().all(|v| *v == Verdict::Allowed));
        assert!(verdicts[20..].iter().all(|v| *v == Verdict::Limited));
        // A new second starts afresh.
        assert_eq!(limiter.check(t0 + Duration::from_millis(1100)), Verdict::Allowed);
    }

    #[test]
    fn five_consecutive_seconds_over_the_limit_is_abuse() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::default();
        for s in 0..5 {
            let verdicts = burst(&mut limiter, t0 + Duration::from_secs(s), 30);
            assert!(!verdicts.contains(&Verdict::Abusive), "second {s}");
        }
        let verdicts = burst(&mut limiter, t0 + Duration::from_secs(5), 30);
        assert_eq!(verdicts.last(), Some(&Verdict::Abusive));
    }

    #[test]
    fn a_quiet_second_resets_the_streak() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::default();
        for s in [0, 1, 2, 4, 5, 6, 7] {
            let verdicts = burst(&mut limiter, t0 + Duration::from_secs(s), 30);
            assert!(!verdicts.contains(&Verdict::Abusive), "second {s}");
        }
    }

    #[test]
    fn malformed_payloads_have_no_escrow_id() {
        for bad in [
            json!(null),
            json!(1),
            json!("e1"),
            json!([]),
            json!({}),
            json!({"escrow_id": 5}),
            json!({"escrow_id": ""}),
        ] {
            assert_eq!(escrow_id_of(Some(&bad)), None, "{bad}");
        }
        assert_eq!(escrow_id_of(None), None);
        assert_eq!(escrow_id_of(Some(&json!({"escrow_id": "x".repeat(MAX_ID_LEN + 1)}))), None);
        assert_eq!(escrow_id_of(Some(&json!({"escrow_id": "e1"}))), Some("e1"));
    }

    #[test]
    fn query_tokens() {
        assert_eq!(query_token(Some("EIO=4&transport=websocket&token=abc")), Some("abc".into()));
        assert_eq!(query_token(Some("EIO=4&token=")), None);
        assert_eq!(query_token(None), None);
    }
}

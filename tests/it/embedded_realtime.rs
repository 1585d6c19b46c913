//! The embedded target's Socket.IO layer (`conform_embedded::realtime::layer`, SPEC §4 RT-1..RT-9) mounted alone on
//! a bare axum router, with a fake `RealtimeAuthority` (fixed tokens, one escrow) and a broadcast sender the test
//! controls, driven by conform's own Socket.IO client. Each realtime fault is shown to change what a client sees.
//! Every wait is bounded.

use conform::drive::socketio::{ClientConfig, Payload, ServerEvent, SocketIoClient, SocketIoError};
use conform_embedded::faults::{Fault, FaultSet};
use conform_embedded::realtime::layer;
use conform_embedded::realtime_api::{Identity, RealtimeAuthority, RealtimeEvent};
use conform_reference::authz::Role;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Bound for waits that should succeed.
const T: Duration = Duration::from_secs(5);
/// Window for "receives nothing" checks.
const QUIET: Duration = Duration::from_millis(500);
/// RT-6, RT-7 deadline.
const DEADLINE: Duration = Duration::from_secs(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// token → (user, session)
const TOKENS: &[(&str, &str, &str)] = &[
    ("tok-buyer", "buyer1", "s-buyer"),
    ("tok-buyer-2", "buyer1", "s-buyer-2"),
    ("tok-seller", "seller1", "s-seller"),
    ("tok-stranger", "stranger1", "s-stranger"),
    ("tok-stranger-2", "stranger2", "s-stranger-2"),
    ("tok-staff", "staff1", "s-staff"),
    ("tok-staff-2", "staff2", "s-staff-2"),
];

/// escrow → (buyer, seller)
const ESCROWS: &[(&str, &str, &str)] = &[("e1", "buyer1", "seller1"), ("e2", "other-buyer", "other-seller")];

/// A backend with fixed accounts: sessions can be revoked and roles changed.
struct FakeAuthority {
    revoked: Mutex<HashSet<String>>,
    roles: Mutex<HashMap<String, Role>>,
}

impl FakeAuthority {
    fn new() -> Self {
        let mut roles: HashMap<String, Role> =
            TOKENS.iter().map(|(_, user, _)| ((*user).to_owned(), Role::User)).collect();
        roles.insert("staff1".into(), Role::Support);
        roles.insert("staff2".into(), Role::Admin);
        Self { revoked: Mutex::new(HashSet::new()), roles: Mutex::new(roles) }
    }

    fn revoke(&self, session: &str) {
        self.revoked.lock().expect("lock").insert(session.to_owned());
    }

    fn set_role(&self, user: &str, role: Role) {
        self.roles.lock().expect("lock").insert(user.to_owned(), role);
    }
}

impl RealtimeAuthority for FakeAuthority {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        let (_, user, session) = TOKENS.iter().find(|(t, _, _)| *t == token)?;
        if self.revoked.lock().expect("lock").contains(*session) {
            return None;
        }
        let role = self.current_role(user)?;
        Some(Identity { user: (*user).to_owned(), session: (*session).to_owned(), role })
    }

    fn may_subscribe(&self, identity: &Identity, escrow_id: &str) -> bool {
        ESCROWS.iter().find(|(id, _, _)| *id == escrow_id).is_some_and(|(_, buyer, seller)| {
            identity.role.is_staff() || identity.user == *buyer || identity.user == *seller
        })
    }

    fn current_role(&self, user: &str) -> Option<Role> {
        self.roles.lock().expect("lock").get(user).copied()
    }
}

/// The layer on a bare router on an ephemeral port; dropping it stops the server.
struct Server {
    base: String,
    events: broadcast::Sender<RealtimeEvent>,
    authority: Arc<FakeAuthority>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(faults: &[Fault]) -> Server {
        let authority = Arc::new(FakeAuthority::new());
        let (events, _) = broadcast::channel(64);
        let layer = layer(authority.clone(), events.clone(), FaultSet::of(faults.iter().copied()));
        let app = axum::Router::new().route("/", axum::routing::get(async || "embedded realtime")).layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Server { base: format!("http://127.0.0.1:{port}"), events, authority, task }
    }

    fn config(&self) -> ClientConfig {
        ClientConfig::new(&self.base).timeout(T)
    }

    async fn connect(&self, token: &str) -> SocketIoClient {
        SocketIoClient::connect(self.config().auth(json!({ "token": token })))
            .await
            .unwrap_or_else(|e| panic!("connect with {token}: {e}"))
    }

    fn send(&self, event: RealtimeEvent) {
        self.events.send(event).expect("the layer listens");
    }

    fn update(&self, escrow_id: &str, version: u64) {
        let (_, buyer, seller) = ESCROWS.iter().find(|(id, _, _)| *id == escrow_id).expect("known escrow");
        self.send(RealtimeEvent::EscrowUpdated {
            escrow_id: escrow_id.to_owned(),
            state: "funded",
            version,
            buyer: (*buyer).to_owned(),
            seller: (*seller).to_owned(),
        });
    }
}

fn first(payload: &Payload) -> Value {
    payload.args.first().cloned().unwrap_or(Value::Null)
}

async fn subscribe(client: &SocketIoClient, payload: Value) -> Value {
    first(&client.emit_with_ack("escrow:subscribe", payload).await.expect("subscribe ack"))
}

fn updates(events: &[ServerEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Event(ev) if ev.name == "escrow:updated" => Some(first(&ev.payload)),
            _ => None,
        })
        .collect()
}

/// Asserts that `client` receives no `escrow:updated` within [`QUIET`].
async fn assert_no_update(client: &SocketIoClient, who: &str) {
    let got = updates(&client.events_for(QUIET).await);
    assert!(got.is_empty(), "{who} received {got:?}");
}

async fn assert_update(client: &SocketIoClient, escrow_id: &str, version: u64, who: &str) {
    let ev = client.wait_event("escrow:updated", T).await.unwrap_or_else(|e| panic!("{who} got no update: {e}"));
    assert_eq!(first(&ev.payload), json!({"escrow_id": escrow_id, "state": "funded", "version": version}), "{who}");
}

async fn assert_refused(result: Result<SocketIoClient, SocketIoError>, what: &str) {
    match result {
        Err(SocketIoError::ConnectRefused { message, .. }) => assert_eq!(message, "unauthorized", "{what}"),
        Err(other) => panic!("{what}: expected CONNECT_ERROR, got {other}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

// -----------------------------------------------------------------------------------------------------------------
// RT-1, RT-2: handshake
// -----------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn handshake_accepts_auth_token_and_refuses_missing_bad_and_revoked() {
    let server = Server::start(&[]).await;
    let client = server.connect("tok-buyer").await;
    assert!(client.sid().is_some());

    assert_refused(SocketIoClient::connect(server.config()).await, "no auth payload").await;
    for auth in [json!({}), json!({"token": "nope"}), json!({"token": 5}), json!({"token": ""}), json!("tok-buyer")] {
        assert_refused(SocketIoClient::connect(server.config().auth(auth.clone())).await, &auth.to_string()).await;
    }
    server.authority.revoke("s-seller");
    assert_refused(SocketIoClient::connect(server.config().auth(json!({"token": "tok-seller"}))).await, "revoked")
        .await;
    // The accepted socket carries on.
    assert_eq!(subscribe(&client, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
}

#[tokio::test]
async fn query_string_token_is_refused() {
    let server = Server::start(&[]).await;
    assert_refused(SocketIoClient::connect(server.config().query("token", "tok-buyer")).await, "query token").await;
}

#[tokio::test]
async fn fault_token_in_query_string_accepts_it() {
    let server = Server::start(&[Fault::TokenInQueryString]).await;
    let client = SocketIoClient::connect(server.config().query("token", "tok-buyer")).await.expect("accepted");
    assert_eq!(subscribe(&client, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
}

// -----------------------------------------------------------------------------------------------------------------
// RT-3, RT-4, RT-9: rooms and targeted emission
// -----------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscribe_is_allowed_to_participants_and_staff_and_not_found_otherwise() {
    let server = Server::start(&[]).await;
    let buyer = server.connect("tok-buyer").await;
    let stranger = server.connect("tok-stranger").await;
    let staff = server.connect("tok-staff").await;
    assert_eq!(subscribe(&buyer, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
    assert_eq!(subscribe(&staff, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
    assert_eq!(subscribe(&stranger, json!({"escrow_id": "e1"})).await, json!({"error": "not_found"}));
    // An escrow that does not exist gets the same answer.
    assert_eq!(subscribe(&stranger, json!({"escrow_id": "nope"})).await, json!({"error": "not_found"}));
    assert_eq!(subscribe(&buyer, json!({"escrow_id": "e2"})).await, json!({"error": "not_found"}));
    // A room the client names is not joined.
    assert_eq!(
        subscribe(&stranger, json!({"escrow_id": "nope", "room": "user:buyer1"})).await,
        json!({"error": "not_found"})
    );
    server.update("e1", 2);
    assert_no_update(&stranger, "stranger who named a room").await;
    // Unsubscribe is acknowledged, in or out of the room.
    let ack = staff.emit_with_ack("escrow:unsubscribe", json!({"escrow_id": "e1"})).await.expect("ack");
    assert_eq!(first(&ack), json!({"ok": true}));
    let ack = stranger.emit_with_ack("escrow:unsubscribe", json!({"escrow_id": "e1"})).await.expect("ack");
    assert_eq!(first(&ack), json!({"ok": true}));
}

#[tokio::test]
async fn updates_reach_participants_and_subscribed_staff_only() {
    let server = Server::start(&[]).await;
    let buyer = server.connect("tok-buyer").await;
    let buyer_subscribed = server.connect("tok-buyer-2").await;
    let seller = server.connect("tok-seller").await;
    let stranger = server.connect("tok-stranger").await;
    let staff_idle = server.connect("tok-staff").await;
    let staff_subscribed = server.connect("tok-staff-2").await;
    assert_eq!(subscribe(&buyer_subscribed, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
    assert_eq!(subscribe(&staff_subscribed, json!({"escrow_id": "e1"})).await, json!({"ok": true}));

    server.update("e1", 3);
    assert_update(&buyer, "e1", 3, "unsubscribed buyer").await;
    assert_update(&seller, "e1", 3, "unsubscribed seller").await;
    assert_update(&staff_subscribed, "e1", 3, "subscribed staff").await;
    assert_update(&buyer_subscribed, "e1", 3, "subscribed buyer").await;
    // Once per socket, even in both its user room and the escrow room.
    assert_no_update(&buyer_subscribed, "subscribed buyer, a second time").await;
    assert_no_update(&stranger, "stranger").await;
    assert_no_update(&staff_idle, "unsubscribed staff").await;

    // Another escrow's update reaches none of them.
    server.update("e2", 1);
    for (client, who) in [(&buyer, "buyer"), (&seller, "seller"), (&staff_subscribed, "staff")] {
        assert_no_update(client, who).await;
    }
}

#[tokio::test]
async fn fault_global_broadcast_reaches_strangers() {
    let server = Server::start(&[Fault::GlobalBroadcast]).await;
    let buyer = server.connect("tok-buyer").await;
    let stranger = server.connect("tok-stranger").await;
    server.update("e1", 4);
    assert_update(&buyer, "e1", 4, "buyer").await;
    assert_update(&stranger, "e1", 4, "stranger").await;
}

#[tokio::test]
async fn fault_client_named_room_lets_strangers_in() {
    let server = Server::start(&[Fault::ClientNamedRoom]).await;
    let stranger = server.connect("tok-stranger").await;
    let snoop = server.connect("tok-stranger-2").await;
    assert_eq!(subscribe(&stranger, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
    assert_eq!(subscribe(&snoop, json!({"escrow_id": "x", "room": "user:seller1"})).await, json!({"ok": true}));
    server.update("e1", 5);
    assert_update(&stranger, "e1", 5, "stranger in the escrow room").await;
    assert_update(&snoop, "e1", 5, "stranger in the seller's room").await;
}

// -----------------------------------------------------------------------------------------------------------------
// RT-5: rate limit
// -----------------------------------------------------------------------------------------------------------------

async fn flood_answers(client: &SocketIoClient, count: usize) -> Vec<Value> {
    let ids = client.flood("escrow:subscribe", json!({"escrow_id": "e1"}), count, true).await.expect("flood");
    let mut answers = Vec::new();
    for id in ids {
        answers.push(first(&client.wait_ack(id, T).await.expect("every flooded event is acked")));
    }
    answers
}

#[tokio::test]
async fn flood_gets_rate_limited_and_other_sockets_are_unaffected() {
    let server = Server::start(&[]).await;
    let offender = server.connect("tok-buyer").await;
    let same_user = server.connect("tok-buyer").await;
    let answers = flood_answers(&offender, 40).await;
    let limited = answers.iter().filter(|a| **a == json!({"error": "rate_limited"})).count();
    let ok = answers.iter().filter(|a| **a == json!({"ok": true})).count();
    assert!(limited >= 1 && ok >= 1 && limited + ok == 40, "{answers:?}");
    assert!(ok <= 20, "{ok} accepted in one burst");
    assert_eq!(subscribe(&same_user, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
}

#[tokio::test]
async fn fault_no_socket_rate_limit_accepts_floods() {
    let server = Server::start(&[Fault::NoSocketRateLimit]).await;
    let offender = server.connect("tok-buyer").await;
    let answers = flood_answers(&offender, 40).await;
    assert!(answers.iter().all(|a| *a == json!({"ok": true})), "{answers:?}");
}

#[tokio::test]
async fn sustained_flood_is_disconnected_and_others_carry_on() {
    let server = Server::start(&[]).await;
    let offender = server.connect("tok-buyer").await;
    let bystander = server.connect("tok-buyer").await;
    let started = Instant::now();
    let flood = async {
        for _ in 0..80 {
            if offender.flood("escrow:subscribe", json!({"escrow_id": "e1"}), 15, false).await.is_err() {
                break;
            }
            tokio::time::sleep(ms(200)).await;
        }
        std::future::pending::<()>().await;
    };
    let how = tokio::select! {
        how = offender.wait_disconnect(Duration::from_secs(12)) => how,
        () = flood => unreachable!("the flood never ends by itself"),
    };
    how.expect("disconnected for sustained abuse");
    let after = started.elapsed();
    assert!(after >= Duration::from_secs(4), "disconnected after {after:?}, before 5 s of abuse");
    assert_eq!(subscribe(&bystander, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
}

// -----------------------------------------------------------------------------------------------------------------
// RT-6: revocation
// -----------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn revoked_session_is_disconnected_within_two_seconds() {
    let server = Server::start(&[]).await;
    let revoked_a = server.connect("tok-buyer").await;
    let revoked_b = server.connect("tok-buyer").await;
    let other_session = server.connect("tok-buyer-2").await;
    server.authority.revoke("s-buyer");
    let started = Instant::now();
    server.send(RealtimeEvent::SessionRevoked { session: "s-buyer".into() });
    revoked_a.wait_disconnect(DEADLINE).await.expect("first socket disconnected within 2 s");
    revoked_b.wait_disconnect(DEADLINE.saturating_sub(started.elapsed())).await.expect("second socket too");
    server.update("e1", 6);
    assert_update(&other_session, "e1", 6, "the user's other session").await;
    assert_no_update(&revoked_a, "revoked socket").await;
    assert_refused(SocketIoClient::connect(server.config().auth(json!({"token": "tok-buyer"}))).await, "reconnect")
        .await;
}

#[tokio::test]
async fn fault_no_disconnect_on_revocation_keeps_the_socket() {
    let server = Server::start(&[Fault::NoDisconnectOnRevocation]).await;
    let revoked = server.connect("tok-buyer").await;
    server.authority.revoke("s-buyer");
    server.send(RealtimeEvent::SessionRevoked { session: "s-buyer".into() });
    let kept = revoked.wait_disconnect(DEADLINE + ms(500)).await;
    assert!(matches!(kept, Err(SocketIoError::Timeout { .. })), "{kept:?}");
    server.update("e1", 7);
    assert_update(&revoked, "e1", 7, "revoked socket under the fault").await;
}

// -----------------------------------------------------------------------------------------------------------------
// RT-7, SES-7: role loss
// -----------------------------------------------------------------------------------------------------------------

async fn demote_staff(server: &Server) -> SocketIoClient {
    let staff = server.connect("tok-staff").await;
    assert_eq!(subscribe(&staff, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
    server.authority.set_role("staff1", Role::User);
    server.send(RealtimeEvent::RoleChanged { user: "staff1".into(), role: Role::User });
    tokio::time::sleep(DEADLINE).await;
    server.update("e1", 8);
    staff
}

#[tokio::test]
async fn demoted_staff_leave_escrow_rooms_within_two_seconds() {
    let server = Server::start(&[]).await;
    let staff = demote_staff(&server).await;
    assert_no_update(&staff, "demoted staff").await;
    assert_eq!(subscribe(&staff, json!({"escrow_id": "e1"})).await, json!({"error": "not_found"}));
}

#[tokio::test]
async fn fault_stale_role_keeps_demoted_staff_in_rooms() {
    let server = Server::start(&[Fault::StaleRoleInSession]).await;
    let staff = demote_staff(&server).await;
    assert_update(&staff, "e1", 8, "demoted staff under the fault").await;
    assert_eq!(subscribe(&staff, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
}

// -----------------------------------------------------------------------------------------------------------------
// RT-8: malformed input
// -----------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_payloads_get_validation_failed_and_the_server_carries_on() {
    let server = Server::start(&[]).await;
    let client = server.connect("tok-buyer").await;
    let bystander = server.connect("tok-seller").await;
    let bad: Vec<Payload> = vec![
        json!("e1").into(),
        json!(42).into(),
        json!(null).into(),
        json!([]).into(),
        json!({}).into(),
        json!({"escrow_id": 42}).into(),
        json!({"escrow_id": ["e1"]}).into(),
        json!({"escrow_id": ""}).into(),
        json!({"escrow_id": "x".repeat(1000)}).into(),
        Payload::new(),
    ];
    for payload in bad {
        let ack = client.emit_with_ack("escrow:subscribe", payload.clone()).await;
        let ack = ack.unwrap_or_else(|e| panic!("{payload:?}: {e}"));
        assert_eq!(first(&ack), json!({"error": "validation_failed"}), "{payload:?}");
    }
    let ack = client.emit_with_ack("escrow:unsubscribe", json!(7)).await.expect("ack");
    assert_eq!(first(&ack), json!({"error": "validation_failed"}));
    let ack = client.emit_with_ack("no:such:event", json!({"escrow_id": "e1"})).await.expect("ack");
    assert_eq!(first(&ack), json!({"error": "validation_failed"}));
    // Without an ack id: dropped, nothing comes back.
    client.emit("escrow:subscribe", json!("e1")).await.expect("send");
    assert!(updates(&client.events_for(ms(200)).await).is_empty());

    // Broken packets on a third socket: the server may close that one only.
    let vandal = server.connect("tok-stranger").await;
    for raw in ["42[\"escrow:subscribe\",{", "42{}", "42[]", "4299x", "2garbage", "4"] {
        if vandal.send_text(raw).await.is_err() {
            break;
        }
    }
    let _ = vandal.events_for(QUIET).await;

    assert_eq!(subscribe(&client, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
    server.update("e1", 9);
    assert_update(&client, "e1", 9, "the malformed sender").await;
    assert_update(&bystander, "e1", 9, "bystander").await;
    let fresh = server.connect("tok-buyer-2").await;
    assert_eq!(subscribe(&fresh, json!({"escrow_id": "e1"})).await, json!({"ok": true}));
}

//! Interop tests of conform's Socket.IO client (`conform::drive::socketio`) against two real servers, Node
//! `socket.io` 4.8 (`tests/peers/socketio-server.mjs`, needs `npm ci --prefix tests/peers`) and socketioxide 0.18
//! (in this process, on axum), plus bad-input tests against a small misbehaving server written here.
//!
//! Both peers behave the same (see the header of `tests/peers/socketio-server.mjs`); the tests assert meaning
//! (accepted, refused, disconnected, closed), not bytes, since the two servers differ in details (FACTS.md).

use conform::drive::socketio::{
    ClientConfig, Disconnection, Payload, ServerEvent, SocketIoClient, SocketIoError, Timeouts, WsMessage,
};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};

/// Bound for every wait against a real peer.
const T: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A running peer; dropping it stops the server.
struct Peer {
    /// `node` or `socketioxide`.
    name: &'static str,
    base: String,
    _guard: Guard,
}

#[allow(dead_code)] // the fields are held for their Drop
enum Guard {
    Node(tokio::process::Child),
    Rust(AbortOnDrop),
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Peer {
    fn config(&self) -> ClientConfig {
        ClientConfig::new(&self.base).timeout(T)
    }

    fn good(&self) -> ClientConfig {
        self.config().auth(json!({"token": "good"}))
    }
}

// -----------------------------------------------------------------------------------------------------------------
// Peer (a): Node socket.io 4.8
// -----------------------------------------------------------------------------------------------------------------

async fn node_peer() -> Peer {
    let (child, port) = crate::peers::start_node_peer("socketio-server.mjs", "socket.io").await;
    Peer { name: "node", base: format!("http://127.0.0.1:{port}"), _guard: Guard::Node(child) }
}

// -----------------------------------------------------------------------------------------------------------------
// Peer (b): socketioxide 0.18 on axum, same behaviour
// -----------------------------------------------------------------------------------------------------------------

mod rust_peer {
    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use socketioxide::SocketIo;
    use socketioxide::adapter::Adapter;
    use socketioxide::extract::{AckSender, Data, SocketRef, TryData};
    use socketioxide::handler::{ConnectHandler, FromMessageParts};
    use socketioxide::socket::Socket;
    use std::sync::Arc;
    use std::time::Duration;

    /// One echo argument: JSON, or a top-level binary attachment (socketioxide needs a bytes type for binary).
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Arg {
        Json(Value),
        Bin(bytes::Bytes),
    }

    /// The ack id of the incoming event, to echo with an ack or with an event like the Node peer.
    struct AckId(Option<i64>);

    impl<A: Adapter> FromMessageParts<A> for AckId {
        type Error = std::convert::Infallible;
        fn from_message_parts(
            _: &Arc<Socket<A>>,
            _: &mut socketioxide::handler::Value,
            ack_id: &Option<i64>,
        ) -> Result<Self, Self::Error> {
            Ok(Self(*ack_id))
        }
    }

    #[derive(Debug)]
    struct Unauthorized;

    impl std::fmt::Display for Unauthorized {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("unauthorized")
        }
    }

    /// The auth middleware. It also registers the event handlers: socketioxide sends the CONNECT answer before it
    /// runs the (spawned, async) connect handler, so handlers registered there can miss an event the client sends
    /// right after CONNECT; the middleware runs before the answer.
    async fn authenticate(s: SocketRef, TryData(auth): TryData<Value>) -> Result<(), Unauthorized> {
        match auth {
            Ok(auth) if auth.get("token").and_then(Value::as_str) == Some("good") => {
                register_handlers(&s);
                Ok(())
            }
            _ => Err(Unauthorized),
        }
    }

    fn register_handlers(s: &SocketRef) {
        s.on("echo", async |s: SocketRef, AckId(id): AckId, Data(arg): Data<Arg>, ack: AckSender| {
            if id.is_some() {
                ack.send(&arg).ok();
            } else {
                s.emit("echo", &arg).ok();
            }
        });
        s.on("join", async |s: SocketRef, Data(room): Data<String>, ack: AckSender| {
            s.join(room);
            ack.send("joined").ok();
        });
        s.on("to-room", async |s: SocketRef, Data((room, payload)): Data<(String, Value)>, ack: AckSender| {
            s.within(room.clone()).emit("room-message", &(room, payload)).await.ok();
            ack.send("sent").ok();
        });
        s.on("whoami", async |s: SocketRef, ack: AckSender| {
            ack.send(s.ns()).ok();
        });
        s.on("handshake-query", async |s: SocketRef, ack: AckSender| {
            let token = s
                .req_parts()
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_owned);
            ack.send(&token).ok();
        });
        s.on("kick", async |s: SocketRef| {
            s.disconnect().ok();
        });
    }

    pub async fn start() -> (u16, tokio::task::JoinHandle<()>) {
        let (layer, io) = SocketIo::builder()
            .ping_interval(Duration::from_millis(300))
            .ping_timeout(Duration::from_millis(200))
            .max_payload(1_000_000)
            .ws_max_message_size(1_000_000)
            .build_layer();
        io.ns("/", { async || () }.with(authenticate));
        io.ns("/admin", { async || () }.with(authenticate));
        let app = axum::Router::new().route("/", axum::routing::get(async || "conform socketioxide peer")).layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        (port, task)
    }
}

async fn socketioxide_peer() -> Peer {
    let (port, task) = rust_peer::start().await;
    Peer { name: "socketioxide", base: format!("http://127.0.0.1:{port}"), _guard: Guard::Rust(AbortOnDrop(task)) }
}

// -----------------------------------------------------------------------------------------------------------------
// Cases, run against each peer
// -----------------------------------------------------------------------------------------------------------------

async fn accepted_handshake(peer: Peer) {
    let client = SocketIoClient::connect(peer.good()).await.expect("connect with a good token");
    let open = client.open_packet();
    assert!(!open.sid.is_empty());
    assert_eq!((open.ping_interval_ms, open.ping_timeout_ms), (300, 200));
    assert!(client.sid().is_some_and(|s| !s.is_empty()));
    let ack = client.emit_with_ack("whoami", ()).await.expect("whoami ack");
    assert_eq!(ack.args, vec![json!("/")]);
    client.close().await.expect("clean close");
}

async fn refused_handshake(peer: Peer) {
    for auth in [Some(json!({"token": "bad"})), Some(json!({})), None] {
        let mut config = peer.config();
        config.auth = auth.clone();
        let started = Instant::now();
        match SocketIoClient::connect(config).await {
            Err(SocketIoError::ConnectRefused { message, .. }) => assert_eq!(message, "unauthorized", "{auth:?}"),
            other => panic!("auth {auth:?}: expected a refusal, got {other:?}"),
        }
        assert!(started.elapsed() < T);
    }
}

async fn named_namespace(peer: Peer) {
    let client = SocketIoClient::connect(peer.good().namespace("/admin")).await.expect("connect to /admin");
    assert!(client.sid_of("/admin").is_some());
    let ack = client.emit_with_ack("whoami", ()).await.expect("whoami ack");
    assert_eq!(ack.args, vec![json!("/admin")]);
    // The namespace's own middleware applies too.
    let refused = SocketIoClient::connect(peer.config().namespace("/admin").auth(json!({"token": "bad"}))).await;
    assert!(matches!(refused, Err(SocketIoError::ConnectRefused { .. })), "{refused:?}");
    // A namespace the server does not have is refused, not left hanging.
    let unknown = SocketIoClient::connect(peer.good().namespace("/nope")).await;
    assert!(matches!(unknown, Err(SocketIoError::ConnectRefused { .. })), "{unknown:?}");
}

async fn ack_round_trip(peer: Peer) {
    let client = SocketIoClient::connect(peer.good()).await.expect("connect");
    let body = json!({"escrow_id": "e-1", "n": [1, 2, 3], "s": "ünïcödé"});
    let ack = client.emit_with_ack("echo", body.clone()).await.expect("echo ack");
    assert_eq!(ack.args, vec![body.clone()]);
    // Ids increase; acks are matched to their id whatever the order we collect them in.
    let first = client.emit_ack_id("echo", json!(1)).await.expect("emit");
    let second = client.emit_ack_id("echo", json!(2)).await.expect("emit");
    assert_eq!(second, first + 1);
    assert_eq!(client.wait_ack(second, T).await.expect("ack 2").args, vec![json!(2)]);
    assert_eq!(client.wait_ack(first, T).await.expect("ack 1").args, vec![json!(1)]);
    // Without an ack the peer emits the event back.
    client.emit("echo", json!("back")).await.expect("emit");
    let event = client.wait_event("echo", T).await.expect("echo event");
    assert_eq!(event.payload.args, vec![json!("back")]);
    assert_eq!(event.ack_id, None);
    // An ack for an id never used times out, as a typed error, within the bound.
    let started = Instant::now();
    let missing = client.wait_ack(10_000, ms(300)).await;
    assert!(matches!(missing, Err(SocketIoError::Timeout { .. })), "{missing:?}");
    assert!(started.elapsed() < ms(1300));
}

async fn binary_round_trip(peer: Peer) {
    let client = SocketIoClient::connect(peer.good()).await.expect("connect");
    let bytes: Vec<u8> = (0..=255).collect();
    let ack = client.emit_with_ack("echo", Payload::new().binary(bytes.clone())).await.expect("binary ack");
    assert_eq!(ack.binary_arg(0), Some(bytes.as_slice()), "BINARY_ACK attachment: {ack:?}");
    // Without an ack: a BINARY_EVENT comes back.
    client.emit("echo", Payload::new().binary(vec![0xde, 0xad, 0xbe, 0xef])).await.expect("emit");
    let event = client.wait_event("echo", T).await.expect("binary echo event");
    assert_eq!(event.payload.binary_arg(0), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
}

async fn room_isolation(peer: Peer) {
    let a = SocketIoClient::connect(peer.good()).await.expect("connect a");
    let b = SocketIoClient::connect(peer.good()).await.expect("connect b");
    let outsider = SocketIoClient::connect(peer.good()).await.expect("connect outsider");
    for member in [&a, &b] {
        let ack = member.emit_with_ack("join", json!("escrow:e-1")).await.expect("join");
        assert_eq!(ack.args, vec![json!("joined")]);
    }
    let ack = a.emit_with_ack("to-room", vec![json!("escrow:e-1"), json!({"state": "funded"})]).await.expect("to-room");
    assert_eq!(ack.args, vec![json!("sent")]);
    for member in [&a, &b] {
        let got = member.wait_event("room-message", T).await.expect("room member receives");
        assert_eq!(got.payload.args, vec![json!("escrow:e-1"), json!({"state": "funded"})]);
    }
    let leaked: Vec<ServerEvent> = outsider
        .events_for(ms(500))
        .await
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::Event(ev) if ev.name == "room-message"))
        .collect();
    assert!(leaked.is_empty(), "a socket outside the room received {leaked:?}");
}

async fn server_disconnect(peer: Peer) {
    let client = SocketIoClient::connect(peer.good()).await.expect("connect");
    client.emit("kick", ()).await.expect("emit kick");
    let how = client.wait_disconnect(T).await.expect("the server disconnects us");
    assert!(
        matches!(how, Disconnection::Namespace { ref nsp } if nsp == "/")
            || matches!(how, Disconnection::EngineClose | Disconnection::Closed { .. }),
        "{how:?}"
    );
    // Waiting for an ack after that fails at once (not after the timeout).
    let started = Instant::now();
    let after = match client.emit_ack_id("whoami", ()).await {
        Ok(id) => client.wait_ack(id, T).await,
        Err(e) => Err(e),
    };
    assert!(matches!(after, Err(SocketIoError::Disconnected { .. } | SocketIoError::Closed { .. })), "{after:?}");
    assert!(started.elapsed() < ms(1000));
}

async fn ping_timeout(peer: Peer) {
    let client = SocketIoClient::connect(peer.good()).await.expect("connect");
    // With automatic pongs the session outlives several ping periods (300 + 200 ms).
    tokio::time::sleep(ms(1200)).await;
    assert!(client.emit_with_ack("whoami", ()).await.is_ok(), "session died while pongs were sent");
    let stats = client.stats();
    assert!(stats.pings_received >= 2 && stats.pongs_sent >= 2, "{stats:?}");
    // Withheld pongs: the server ends the session by its ping timeout.
    client.set_auto_pong(false);
    let started = Instant::now();
    let how = client.wait_disconnect(ms(3000)).await.expect("the server enforces its ping timeout");
    assert!(matches!(how, Disconnection::EngineClose | Disconnection::Closed { .. }), "{how:?}");
    assert!(started.elapsed() < ms(3000));
    let closed = client.wait_closed(ms(3000)).await.expect("the WebSocket closes after the ping timeout");
    assert!(closed.code >= 1000, "{closed:?}");
}

async fn query_token_is_not_auth(peer: Peer) {
    // RT-2: a token in the query string must not authenticate; the test peers only read the CONNECT auth.
    let refused = SocketIoClient::connect(peer.config().query("token", "good")).await;
    assert!(matches!(refused, Err(SocketIoError::ConnectRefused { .. })), "{refused:?}");
    // The token did reach the server in the query string: with auth it is connected and can read it back.
    let client = SocketIoClient::connect(peer.good().query("token", "good")).await.expect("connect");
    let ack = client.emit_with_ack("handshake-query", ()).await.expect("query ack");
    assert_eq!(ack.args, vec![json!("good")]);
}

async fn bounded_buffer_and_flood(peer: Peer) {
    let client = SocketIoClient::connect(peer.good().event_buffer(3)).await.expect("connect");
    client.flood("echo", json!("x"), 10, false).await.expect("flood without acks");
    let ids = client.flood("echo", json!("y"), 5, true).await.expect("flood with acks");
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    for id in ids {
        assert_eq!(client.wait_ack(id, T).await.expect("flood ack").args, vec![json!("y")]);
    }
    // The 10 echoes arrive (before the acks on Node; in any order on socketioxide); only 3 are kept.
    let deadline = Instant::now() + T;
    while client.stats().events_dropped < 7 && Instant::now() < deadline {
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(client.stats().events_dropped, 7);
    let kept = client.events_for(ms(100)).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
}

async fn malformed_packet_is_not_fatal_to_others(peer: Peer) {
    // RT-8 as seen from the wire: a malformed EVENT makes these servers drop the offender; others carry on.
    let bystander = SocketIoClient::connect(peer.good()).await.expect("connect bystander");
    let offender = SocketIoClient::connect(peer.good()).await.expect("connect offender");
    offender.send_text("42{\"not\":\"an array\"}").await.expect("raw send");
    let how = offender.wait_disconnect(T).await.expect("the server drops a socket sending malformed packets");
    assert!(!matches!(how, Disconnection::Failed(_)), "{how:?}");
    assert!(bystander.emit_with_ack("whoami", ()).await.is_ok());
}

async fn oversize_frame_from_us(peer: Peer) {
    // Both servers cap incoming messages at 1 MB (socket.io's maxHttpBufferSize default; set on the socketioxide
    // peer to match): a bigger frame ends the session.
    let client = SocketIoClient::connect(peer.good()).await.expect("connect");
    let big = format!("42[\"unhandled\",\"{}\"]", "x".repeat(2 << 20));
    client.send_text(big).await.expect("the frame goes out (our cap is on reading only)");
    let how = client.wait_disconnect(T).await.expect("the server rejects an oversize frame");
    assert!(matches!(how, Disconnection::Closed { .. }), "{how:?}");
    if peer.name == "node" {
        // Node says why: 1009, message too big (FACTS.md); socketioxide closes without a status code.
        assert_eq!(how, Disconnection::Closed { code: 1009, reason: String::new() });
    }
}

macro_rules! against_both_peers {
    ($($case:ident),* $(,)?) => {
        mod node {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::node_peer().await).await;
                }
            )*
        }
        mod socketioxide {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::socketioxide_peer().await).await;
                }
            )*
        }
    };
}

against_both_peers!(
    accepted_handshake,
    refused_handshake,
    named_namespace,
    ack_round_trip,
    binary_round_trip,
    room_isolation,
    server_disconnect,
    ping_timeout,
    query_token_is_not_auth,
    bounded_buffer_and_flood,
    malformed_packet_is_not_fatal_to_others,
    oversize_frame_from_us,
);

// -----------------------------------------------------------------------------------------------------------------
// A misbehaving server: every bad answer must give a typed error within the configured timeout
// -----------------------------------------------------------------------------------------------------------------

mod misbehaving {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::{WebSocketStream, accept_async};

    /// The bound the client is configured with in these tests.
    const BOUND: Duration = Duration::from_millis(600);
    /// Slack on top of BOUND for a slow machine.
    const SLACK: Duration = Duration::from_millis(1500);

    const OPEN: &str =
        r#"0{"sid":"eio-1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

    /// Serves every connection with `script`; the server stops with the returned guard.
    async fn serve<F, Fut>(script: F) -> (String, AbortOnDrop)
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(script(tcp));
            }
        });
        (format!("http://127.0.0.1:{port}"), AbortOnDrop(task))
    }

    async fn read_request(tcp: &mut TcpStream) {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    async fn upgrade(tcp: TcpStream) -> Option<WebSocketStream<TcpStream>> {
        accept_async(tcp).await.ok()
    }

    /// Upgrade, send the open packet, then wait for the client's CONNECT.
    async fn until_connect(tcp: TcpStream) -> Option<WebSocketStream<TcpStream>> {
        let mut ws = upgrade(tcp).await?;
        ws.send(WsMessage::text(OPEN)).await.ok()?;
        while let Some(Ok(m)) = ws.next().await {
            if m.to_text().is_ok_and(|t| t.starts_with("40")) {
                return Some(ws);
            }
        }
        None
    }

    async fn hold<T>(x: T) {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(x);
    }

    fn config(base: &str) -> ClientConfig {
        ClientConfig::new(base)
            .timeouts(Timeouts::uniform(BOUND))
            .auth(json!({"token": "good"}))
            .max_message_size(64 * 1024)
    }

    /// Runs `connect` against the script and checks the error arrives within BOUND + SLACK.
    async fn connect_error<F, Fut>(script: F) -> SocketIoError
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (base, _server) = serve(script).await;
        let started = Instant::now();
        let result = tokio::time::timeout(BOUND * 4, SocketIoClient::connect(config(&base)))
            .await
            .expect("the client's own bound held");
        let elapsed = started.elapsed();
        assert!(elapsed < BOUND + SLACK, "took {elapsed:?}");
        match result {
            Ok(_) => panic!("connect succeeded against a misbehaving server"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn garbage_instead_of_http() {
        let e = connect_error(|mut tcp: TcpStream| async move {
            read_request(&mut tcp).await;
            tcp.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n\x00\x01\x02garbage").await.ok();
            hold(tcp).await;
        })
        .await;
        assert!(matches!(e, SocketIoError::Transport(_) | SocketIoError::Protocol { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn http_error_instead_of_upgrade() {
        let e = connect_error(|mut tcp: TcpStream| async move {
            read_request(&mut tcp).await;
            tcp.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 40\r\n\r\n{\"code\":3,\"message\":\"Bad request\"}     ",
            )
            .await
            .ok();
            hold(tcp).await;
        })
        .await;
        assert!(matches!(e, SocketIoError::HandshakeRejected { status: 400, .. }), "{e:?}");
    }

    #[tokio::test]
    async fn close_mid_upgrade() {
        let e = connect_error(|mut tcp: TcpStream| async move {
            read_request(&mut tcp).await;
            tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgr").await.ok();
            drop(tcp);
        })
        .await;
        assert!(matches!(e, SocketIoError::Closed { code: 1006, .. }), "{e:?}");
        let e = connect_error(|mut tcp: TcpStream| async move {
            read_request(&mut tcp).await;
            drop(tcp);
        })
        .await;
        assert!(matches!(e, SocketIoError::Closed { code: 1006, .. } | SocketIoError::Transport(_)), "{e:?}");
    }

    #[tokio::test]
    async fn never_answers_the_upgrade() {
        let e = connect_error(|mut tcp: TcpStream| async move {
            read_request(&mut tcp).await;
            hold(tcp).await;
        })
        .await;
        assert!(matches!(e, SocketIoError::Timeout { ref what, after } if what.contains("upgrade") && after == BOUND));
    }

    #[tokio::test]
    async fn never_sends_the_open_packet() {
        let e = connect_error(|tcp| async move { hold(upgrade(tcp).await).await }).await;
        assert!(matches!(e, SocketIoError::Timeout { ref what, .. } if what.contains("open packet")), "{e:?}");
    }

    #[tokio::test]
    async fn garbage_instead_of_the_open_packet() {
        for garbage in ["hello", "0not json", "0{\"sid\":42}", "4{}", ""] {
            let e = connect_error(move |tcp| async move {
                if let Some(mut ws) = upgrade(tcp).await {
                    ws.send(WsMessage::text(garbage)).await.ok();
                    hold(ws).await;
                }
            })
            .await;
            assert!(matches!(e, SocketIoError::Protocol { .. }), "{garbage:?}: {e:?}");
        }
        let e = connect_error(|tcp| async move {
            if let Some(mut ws) = upgrade(tcp).await {
                ws.send(WsMessage::binary(vec![0u8, 1, 2])).await.ok();
                hold(ws).await;
            }
        })
        .await;
        assert!(matches!(e, SocketIoError::Protocol { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn closes_right_after_the_upgrade() {
        // Close frame without status code: reported as 1005, as Node does on its side.
        let e = connect_error(|tcp| async move {
            if let Some(mut ws) = upgrade(tcp).await {
                ws.close(None).await.ok();
            }
        })
        .await;
        assert_eq!(e, SocketIoError::Closed { code: 1005, reason: String::new() });
        // TCP dropped without a close frame: 1006.
        let e = connect_error(|tcp| async move { drop(upgrade(tcp).await) }).await;
        assert!(matches!(e, SocketIoError::Closed { code: 1006, .. }), "{e:?}");
    }

    #[tokio::test]
    async fn oversize_frame_instead_of_the_open_packet() {
        let e = connect_error(|tcp| async move {
            if let Some(mut ws) = upgrade(tcp).await {
                ws.send(WsMessage::text(format!("0{}", "x".repeat(256 * 1024)))).await.ok();
                hold(ws).await;
            }
        })
        .await;
        assert!(matches!(e, SocketIoError::FrameTooLarge { max: 65536, .. }), "{e:?}");
    }

    #[tokio::test]
    async fn never_answers_connect() {
        let e = connect_error(|tcp| async move { hold(until_connect(tcp).await).await }).await;
        assert!(matches!(e, SocketIoError::Timeout { ref what, .. } if what.contains("CONNECT")), "{e:?}");
    }

    #[tokio::test]
    async fn garbage_answer_to_connect() {
        for garbage in ["4garbage", "40[1,2]", "4", "44", "7"] {
            let e = connect_error(move |tcp| async move {
                if let Some(mut ws) = until_connect(tcp).await {
                    ws.send(WsMessage::text(garbage)).await.ok();
                    hold(ws).await;
                }
            })
            .await;
            assert!(matches!(e, SocketIoError::Protocol { .. }), "{garbage:?}: {e:?}");
        }
    }

    #[tokio::test]
    async fn connect_error_shapes() {
        // {"message"} alone (socketioxide), {"message","data"} (socket.io with err.data), a bare string (v2).
        for (answer, message, data) in [
            (r#"44{"message":"unauthorized"}"#, "unauthorized", None),
            (
                r#"44{"message":"expired","data":{"code":"token_expired"}}"#,
                "expired",
                Some(json!({"code": "token_expired"})),
            ),
            (r#"44"legacy""#, "legacy", None),
        ] {
            let e = connect_error(move |tcp| async move {
                if let Some(mut ws) = until_connect(tcp).await {
                    ws.send(WsMessage::text(answer)).await.ok();
                    hold(ws).await;
                }
            })
            .await;
            assert_eq!(e, SocketIoError::ConnectRefused { message: message.into(), data }, "{answer}");
        }
    }

    #[tokio::test]
    async fn closes_on_connect_with_1009() {
        let e = connect_error(|tcp| async move {
            if let Some(mut ws) = until_connect(tcp).await {
                let frame = CloseFrame { code: CloseCode::Size, reason: "too big".into() };
                ws.close(Some(frame)).await.ok();
                hold(ws).await;
            }
        })
        .await;
        assert_eq!(e, SocketIoError::Closed { code: 1009, reason: "too big".into() });
    }

    /// Accepts CONNECT, then runs `after` on the socket.
    async fn connected_client<F, Fut>(after: F) -> (SocketIoClient, AbortOnDrop)
    where
        F: Fn(WebSocketStream<TcpStream>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (base, server) = serve(move |tcp| {
            let after = after.clone();
            async move {
                if let Some(mut ws) = until_connect(tcp).await
                    && ws.send(WsMessage::text(r#"40{"sid":"sio-1"}"#)).await.is_ok()
                {
                    after(ws).await;
                }
            }
        })
        .await;
        let client = SocketIoClient::connect(config(&base)).await.expect("connect to the scripted server");
        assert_eq!(client.sid().as_deref(), Some("sio-1"));
        (client, server)
    }

    #[tokio::test]
    async fn never_acks_nor_emits() {
        let (client, _server) = connected_client(|ws| async move { hold(ws).await }).await;
        let started = Instant::now();
        let ack = client.emit_with_ack("echo", json!(1)).await;
        assert!(
            matches!(ack, Err(SocketIoError::Timeout { ref what, after }) if what.contains("ack 0") && after == BOUND)
        );
        let event = client.next_event().await;
        assert!(matches!(event, Err(SocketIoError::Timeout { .. })), "{event:?}");
        let named = client.wait_event("x", ms(200)).await;
        assert!(matches!(named, Err(SocketIoError::Timeout { .. })), "{named:?}");
        assert!(started.elapsed() < BOUND * 2 + ms(200) + SLACK);
    }

    #[tokio::test]
    async fn oversize_event_after_connect() {
        let (client, _server) = connected_client(|mut ws| async move {
            ws.send(WsMessage::text(format!("42[\"big\",\"{}\"]", "x".repeat(100 * 1024)))).await.ok();
            hold(ws).await;
        })
        .await;
        let started = Instant::now();
        let e = client.next_event().await;
        assert!(matches!(e, Err(SocketIoError::FrameTooLarge { .. })), "{e:?}");
        assert!(matches!(client.wait_closed(BOUND).await, Err(SocketIoError::FrameTooLarge { .. })));
        assert!(started.elapsed() < BOUND + SLACK);
        // Writing afterwards reports how the connection ended.
        assert!(client.emit("x", ()).await.is_err());
    }

    #[tokio::test]
    async fn garbage_events_are_reported_and_the_connection_carries_on() {
        let (client, _server) = connected_client(|mut ws| async move {
            for frame in ["42[", "9", "42{}", "43[]", "451-[\"b\",{\"_placeholder\":true,\"num\":0}]", "42[\"ok\",1]"] {
                ws.send(WsMessage::text(frame)).await.ok();
            }
            ws.send(WsMessage::binary(vec![1u8, 2])).await.ok();
            ws.send(WsMessage::text("2")).await.ok();
            ws.send(WsMessage::text("41")).await.ok();
            ws.send(WsMessage::text("1")).await.ok();
            ws.close(None).await.ok();
            hold(ws).await;
        })
        .await;
        let mut violations = 0;
        let mut saw = Vec::new();
        loop {
            match client.next_event().await {
                Ok(ServerEvent::ProtocolViolation { .. }) => violations += 1,
                Ok(ServerEvent::Event(ev)) => saw.push(ev.name),
                Ok(ServerEvent::Disconnect { nsp }) => saw.push(format!("disconnect {nsp}")),
                Ok(ServerEvent::EngineClose) => saw.push("engine close".into()),
                Err(SocketIoError::Closed { code, .. }) => {
                    assert_eq!(code, 1005);
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        // "42[", "9", "42{}", "43[]" are malformed; the BINARY_EVENT is cut short by the next packet; the binary
        // frame after it belongs to nothing.
        assert_eq!(violations, 6, "{saw:?}");
        assert_eq!(saw, vec!["ok".to_owned(), "disconnect /".into(), "engine close".into()]);
        let stats = client.stats();
        assert_eq!((stats.pings_received, stats.pongs_sent, stats.engine_closed), (1, 1, true));
    }

    #[tokio::test]
    async fn raw_frames_go_out_as_is() {
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<WsMessage>();
        let (client, _server) = connected_client(move |mut ws| {
            let seen_tx = seen_tx.clone();
            async move {
                while let Some(Ok(m)) = ws.next().await {
                    seen_tx.send(m).ok();
                }
            }
        })
        .await;
        client.send_text("42[\"forged\"").await.expect("malformed text");
        client.send_text("40/admin,{\"token\":\"forged\"}").await.expect("forged CONNECT");
        client.send_binary(vec![0xff, 0x00]).await.expect("stray binary");
        client.emit("bin", Payload::new().arg(json!("a")).binary(vec![7u8])).await.expect("binary event");
        let id = client.emit_ack_id("x", ()).await.expect("event with ack");
        let mut frames = Vec::new();
        while frames.len() < 6 {
            let m = tokio::time::timeout(T, seen_rx.recv()).await.expect("frame reached the server").expect("open");
            frames.push(m);
        }
        let texts: Vec<String> = frames.iter().map(|m| m.to_text().map(str::to_owned).unwrap_or_default()).collect();
        assert_eq!(texts[0], "42[\"forged\"");
        assert_eq!(texts[1], "40/admin,{\"token\":\"forged\"}");
        assert_eq!(frames[2], WsMessage::binary(vec![0xff, 0x00]));
        assert_eq!(texts[3], "451-[\"bin\",\"a\",{\"_placeholder\":true,\"num\":0}]");
        assert_eq!(frames[4], WsMessage::binary(vec![7u8]));
        assert_eq!(texts[5], format!("42{id}[\"x\"]"));
    }
}

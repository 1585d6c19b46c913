//! The connection: WebSocket transport, Engine.IO session, namespaces, acks, the event buffer and the heartbeat.
//!
//! After the Engine.IO open packet, a reader task owns the WebSocket's read half. It answers pings (unless
//! [`SocketIoClient::set_auto_pong`] says otherwise), reassembles binary packets and files everything it receives
//! in a shared inbox; every wait on the client looks at that inbox under a deadline, so no wait can hang.

use super::codec::{self, EioPacket, OpenPacket, Packet, PacketKind, Payload, Reassembler};
use super::error::SocketIoError;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket frame, for raw sends ([`SocketIoClient::send_raw`]).
pub use tokio_tungstenite::tungstenite::Message as WsMessage;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, WsMessage>;

/// Unclaimed acks kept at most; further acks are counted as dropped.
const MAX_UNCLAIMED_ACKS: usize = 4096;

/// Bounds on every wait. Each wait that takes no explicit timeout uses one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus WebSocket upgrade.
    pub connect: Duration,
    /// The Engine.IO open packet after the upgrade.
    pub open: Duration,
    /// The server's answer to a CONNECT.
    pub namespace: Duration,
    /// An ack for an emitted event.
    pub ack: Duration,
    /// The next server event.
    pub event: Duration,
    /// One write (or one batch of writes) to the socket.
    pub send: Duration,
}

impl Timeouts {
    /// The same bound for every wait.
    pub fn uniform(d: Duration) -> Self {
        Self { connect: d, open: d, namespace: d, ack: d, event: d, send: d }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::uniform(Duration::from_secs(5))
    }
}

/// How to reach a Socket.IO server and how the client behaves. Built with [`ClientConfig::new`] and the
/// builder methods.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `http://host:port`, `ws://host:port` (https/wss need a TLS feature, not compiled in).
    pub base_url: String,
    /// Engine.IO path, default `/socket.io/`.
    pub path: String,
    /// Extra query parameters after `EIO=4&transport=websocket` (e.g. a token, to check that it is ignored).
    pub query: Vec<(String, String)>,
    /// Extra HTTP headers on the upgrade request (Origin, Cookie, Authorization …).
    pub headers: Vec<(String, String)>,
    /// Namespace that [`SocketIoClient::connect`] joins and that `emit*` and `wait_*` use. Default `/`.
    pub namespace: String,
    /// CONNECT auth payload; `None` sends a CONNECT without payload.
    pub auth: Option<Value>,
    /// Bounds on every wait.
    pub timeouts: Timeouts,
    /// Largest WebSocket frame and message accepted from the server, in bytes (default 1 MiB). Bigger gives
    /// [`SocketIoError::FrameTooLarge`].
    pub max_message_size: usize,
    /// Capacity of the server-event buffer (default 1024). When full, the oldest event is dropped and counted.
    pub event_buffer: usize,
    /// Answer server pings automatically (default true). Can be switched at run time.
    pub auto_pong: bool,
}

impl ClientConfig {
    /// Defaults for a server at `base_url` (`http://127.0.0.1:3000`).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            path: "/socket.io/".into(),
            query: Vec::new(),
            headers: Vec::new(),
            namespace: "/".into(),
            auth: None,
            timeouts: Timeouts::default(),
            max_message_size: 1 << 20,
            event_buffer: 1024,
            auto_pong: true,
        }
    }

    /// Engine.IO path.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Adds a query parameter (percent-encoded on the wire).
    #[must_use]
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header to the upgrade request.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Namespace, `/` or `/name`.
    #[must_use]
    pub fn namespace(mut self, nsp: impl Into<String>) -> Self {
        self.namespace = nsp.into();
        self
    }

    /// CONNECT auth payload, e.g. `json!({"token": "…"})`.
    #[must_use]
    pub fn auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// All bounds.
    #[must_use]
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The same bound for every wait.
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeouts = Timeouts::uniform(d);
        self
    }

    /// Largest frame/message accepted, in bytes.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Capacity of the server-event buffer.
    #[must_use]
    pub fn event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity;
        self
    }

    /// Whether to answer pings at start.
    #[must_use]
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }

    /// The WebSocket URL: `ws://host/socket.io/?EIO=4&transport=websocket[&extra…]`.
    pub fn url(&self) -> Result<String, SocketIoError> {
        let base = self.base_url.trim_end_matches('/');
        let (scheme, rest) =
            base.split_once("://").ok_or_else(|| SocketIoError::Config(format!("no scheme in {base:?}")))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => "ws",
            "https" | "wss" => "wss",
            other => return Err(SocketIoError::Config(format!("unsupported scheme {other:?}"))),
        };
        let path = if self.path.starts_with('/') { self.path.clone() } else { format!("/{}", self.path) };
        let mut url = format!("{scheme}://{rest}{path}?EIO=4&transport=websocket");
        for (k, v) in &self.query {
            url.push('&');
            url.push_str(&codec::encode_query_component(k));
            url.push('=');
            url.push_str(&codec::encode_query_component(v));
        }
        Ok(url)
    }
}

/// One event the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Namespace.
    pub nsp: String,
    /// Event name.
    pub name: String,
    /// Arguments and binary attachments.
    pub payload: Payload,
    /// Set when the server wants an ack ([`SocketIoClient::send_ack`]).
    pub ack_id: Option<u64>,
}

/// What arrives in the server-event buffer, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// EVENT or BINARY_EVENT.
    Event(Event),
    /// Socket.IO DISCONNECT (`41`): the server removed us from a namespace.
    Disconnect {
        /// Namespace.
        nsp: String,
    },
    /// Engine.IO close (`1`): the server ends the session.
    EngineClose,
    /// A frame that is not a well-formed packet (the connection carries on).
    ProtocolViolation {
        /// What was wrong.
        detail: String,
        /// Start of the frame.
        excerpt: String,
    },
}

/// The server's answer to a CONNECT.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectAnswer {
    /// `0{"sid"…}`.
    Accepted {
        /// Socket.IO session id, if the server sent one (v5 servers do).
        sid: Option<String>,
        /// The whole answer payload.
        data: Value,
    },
    /// CONNECT_ERROR: `4{"message"[, "data"]}` (or a bare string from old servers).
    Refused {
        /// Error message.
        message: String,
        /// Extra data, if the server sent any.
        data: Option<Value>,
    },
}

/// How the server ended our presence, see [`SocketIoClient::wait_disconnect`].
#[derive(Debug, Clone, PartialEq)]
pub enum Disconnection {
    /// Socket.IO DISCONNECT for our namespace.
    Namespace {
        /// Namespace.
        nsp: String,
    },
    /// Engine.IO close packet.
    EngineClose,
    /// The WebSocket closed; `code` 1005 means a close frame without status, 1006 no close frame at all.
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The connection failed otherwise (oversize frame, transport error).
    Failed(SocketIoError),
}

/// A WebSocket close as seen by [`SocketIoClient::wait_closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// Close code; 1005 = close frame without status code, 1006 = no close frame.
    pub code: u16,
    /// Close reason.
    pub reason: String,
}

/// Counters, for reports and assertions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// Engine.IO pings received.
    pub pings_received: u64,
    /// Pongs the client sent automatically.
    pub pongs_sent: u64,
    /// Server events dropped because the buffer was full.
    pub events_dropped: u64,
    /// Acks dropped because too many were unclaimed.
    pub acks_dropped: u64,
    /// Frames that were not well-formed packets.
    pub protocol_violations: u64,
    /// Whether the server sent an Engine.IO close.
    pub engine_closed: bool,
    /// How the connection ended, if it has.
    pub ended: Option<SocketIoError>,
}

#[derive(Debug)]
struct Inbox {
    events: VecDeque<ServerEvent>,
    capacity: usize,
    acks: HashMap<(String, u64), Payload>,
    connects: HashMap<String, ConnectAnswer>,
    disconnected: HashSet<String>,
    last_violation: Option<codec::DecodeError>,
    stats: Stats,
}

impl Inbox {
    fn push(&mut self, event: ServerEvent) {
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    fn violation(&mut self, e: codec::DecodeError) {
        self.stats.protocol_violations += 1;
        self.push(ServerEvent::ProtocolViolation { detail: e.detail.clone(), excerpt: e.excerpt.clone() });
        self.last_violation = Some(e);
    }

    /// Why a wait on namespace `nsp` cannot succeed any more, if it cannot.
    fn gone(&self, nsp: &str) -> Option<SocketIoError> {
        if self.disconnected.contains(nsp) {
            return Some(SocketIoError::Disconnected { nsp: nsp.to_owned(), reason: "server DISCONNECT".into() });
        }
        if self.stats.engine_closed {
            return Some(SocketIoError::Disconnected { nsp: nsp.to_owned(), reason: "Engine.IO close".into() });
        }
        self.stats.ended.clone()
    }
}

#[derive(Debug)]
struct Shared {
    inbox: Mutex<Inbox>,
    notify: Notify,
    auto_pong: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Inbox)) {
        f(&mut self.lock());
        self.notify.notify_waiters();
    }
}

/// A Socket.IO v5 client over a direct WebSocket (Engine.IO v4), with raw frame access.
///
/// Dropping it stops the reader task and drops the connection without a close frame; [`Self::close`] closes
/// cleanly.
#[derive(Debug)]
pub struct SocketIoClient {
    config: ClientConfig,
    open: OpenPacket,
    shared: Arc<Shared>,
    sink: Arc<tokio::sync::Mutex<Sink>>,
    reader: JoinHandle<()>,
    next_ack: AtomicU64,
}

impl Drop for SocketIoClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SocketIoClient {
    /// Opens the Engine.IO session (WebSocket upgrade, then the open packet) without joining a namespace.
    pub async fn open(config: ClientConfig) -> Result<Self, SocketIoError> {
        let url = config.url()?;
        let mut request =
            url.as_str().into_client_request().map_err(|e| SocketIoError::Config(format!("bad URL {url:?}: {e}")))?;
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| SocketIoError::Config(format!("bad header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| SocketIoError::Config(format!("bad header value {value:?}: {e}")))?;
            request.headers_mut().append(name, value);
        }
        let max = config.max_message_size.max(1);
        let ws_config = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
        let t = config.timeouts;

        let (mut ws, _response) = match tokio::time::timeout(
            t.connect,
            tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true),
        )
        .await
        {
            Err(_) => {
                return Err(SocketIoError::Timeout { what: format!("WebSocket upgrade at {url}"), after: t.connect });
            }
            Ok(Err(e)) => return Err(map_ws_error(e)),
            Ok(Ok(pair)) => pair,
        };

        let open = match tokio::time::timeout(t.open, read_open(&mut ws)).await {
            Err(_) => {
                return Err(SocketIoError::Timeout { what: "the Engine.IO open packet".into(), after: t.open });
            }
            Ok(result) => result?,
        };

        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox {
                events: VecDeque::new(),
                capacity: config.event_buffer.max(1),
                acks: HashMap::new(),
                connects: HashMap::new(),
                disconnected: HashSet::new(),
                last_violation: None,
                stats: Stats::default(),
            }),
            notify: Notify::new(),
            auto_pong: AtomicBool::new(config.auto_pong),
        });
        let (sink, stream) = ws.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let reader = tokio::spawn(read_loop(stream, shared.clone(), sink.clone(), t.send));
        Ok(Self { config, open, shared, sink, reader, next_ack: AtomicU64::new(0) })
    }

    /// Opens the session and CONNECTs to the configured namespace with the configured auth payload. A refusal is
    /// [`SocketIoError::ConnectRefused`].
    pub async fn connect(config: ClientConfig) -> Result<Self, SocketIoError> {
        let client = Self::open(config).await?;
        let nsp = client.config.namespace.clone();
        let auth = client.config.auth.clone();
        client.connect_namespace(&nsp, auth).await?;
        Ok(client)
    }

    /// CONNECTs to `nsp` with `auth` and waits (namespace timeout) for the answer; returns the Socket.IO sid.
    pub async fn connect_namespace(&self, nsp: &str, auth: Option<Value>) -> Result<String, SocketIoError> {
        let violations_before = {
            let mut inbox = self.shared.lock();
            inbox.connects.remove(nsp);
            inbox.disconnected.remove(nsp);
            inbox.stats.protocol_violations
        };
        let mut packet = Packet::new(PacketKind::Connect, nsp);
        packet.data = auth;
        self.send_packet(&packet, &[]).await?;
        let timeout = self.config.timeouts.namespace;
        let answer = self
            .wait_for(
                || format!("the answer to CONNECT {nsp}"),
                timeout,
                |inbox| {
                    if let Some(answer) = inbox.connects.get(nsp) {
                        return Some(Ok(answer.clone()));
                    }
                    if inbox.stats.protocol_violations > violations_before {
                        let e = inbox.last_violation.clone()?;
                        return Some(Err(SocketIoError::Protocol { detail: e.detail, excerpt: e.excerpt }));
                    }
                    inbox.gone(nsp).map(Err)
                },
            )
            .await?;
        match answer {
            ConnectAnswer::Accepted { sid: Some(sid), .. } => Ok(sid),
            ConnectAnswer::Accepted { sid: None, data } => Err(SocketIoError::Protocol {
                detail: "CONNECT answer without a string \"sid\"".into(),
                excerpt: codec::excerpt(&data.to_string()),
            }),
            ConnectAnswer::Refused { message, data } => Err(SocketIoError::ConnectRefused { message, data }),
        }
    }

    /// Waits for the latest answer to a CONNECT for `nsp` (e.g. after a forged CONNECT sent raw).
    pub async fn wait_connect_answer(&self, nsp: &str, timeout: Duration) -> Result<ConnectAnswer, SocketIoError> {
        self.wait_for(
            || format!("the answer to CONNECT {nsp}"),
            timeout,
            |inbox| inbox.connects.get(nsp).cloned().map(Ok).or_else(|| inbox.stats.ended.clone().map(Err)),
        )
        .await
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The Engine.IO open packet.
    pub fn open_packet(&self) -> &OpenPacket {
        &self.open
    }

    /// The Socket.IO sid of namespace `nsp`, once accepted.
    pub fn sid_of(&self, nsp: &str) -> Option<String> {
        match self.shared.lock().connects.get(nsp) {
            Some(ConnectAnswer::Accepted { sid, .. }) => sid.clone(),
            _ => None,
        }
    }

    /// The Socket.IO sid of the configured namespace.
    pub fn sid(&self) -> Option<String> {
        self.sid_of(&self.config.namespace)
    }

    /// Counters and the end state.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Whether the WebSocket has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().stats.ended.is_some()
    }

    // -----------------------------------------------------------------------------------------------------------
    // Heartbeat
    // -----------------------------------------------------------------------------------------------------------

    /// Switches automatic pongs on or off. Off, the server's ping timeout should close the session.
    pub fn set_auto_pong(&self, on: bool) {
        self.shared.auto_pong.store(on, Ordering::SeqCst);
    }

    /// Whether pongs are sent automatically.
    pub fn auto_pong(&self) -> bool {
        self.shared.auto_pong.load(Ordering::SeqCst)
    }

    /// Sends one Engine.IO pong by hand.
    pub async fn send_pong(&self) -> Result<(), SocketIoError> {
        self.send_text(codec::encode_pong("")).await
    }

    // -----------------------------------------------------------------------------------------------------------
    // Emitting
    // -----------------------------------------------------------------------------------------------------------

    /// Emits `event` without ack in the configured namespace.
    pub async fn emit(&self, event: &str, payload: impl Into<Payload>) -> Result<(), SocketIoError> {
        let nsp = self.config.namespace.clone();
        self.emit_in(&nsp, None, event, &payload.into()).await
    }

    /// Emits `event` with the next ack id and waits (ack timeout) for the ack.
    pub async fn emit_with_ack(&self, event: &str, payload: impl Into<Payload>) -> Result<Payload, SocketIoError> {
        self.emit_with_ack_timeout(event, payload, self.config.timeouts.ack).await
    }

    /// Emits `event` with the next ack id and waits up to `timeout` for the ack.
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Payload, SocketIoError> {
        let id = self.emit_ack_id(event, payload).await?;
        self.wait_ack(id, timeout).await
    }

    /// Emits `event` with the next ack id and returns the id at once; collect the ack with [`Self::wait_ack`].
    pub async fn emit_ack_id(&self, event: &str, payload: impl Into<Payload>) -> Result<u64, SocketIoError> {
        let id = self.next_ack_id();
        let nsp = self.config.namespace.clone();
        self.emit_in(&nsp, Some(id), event, &payload.into()).await?;
        Ok(id)
    }

    /// Reserves the next ack id (ids increase from 0) without sending anything.
    pub fn next_ack_id(&self) -> u64 {
        self.next_ack.fetch_add(1, Ordering::SeqCst)
    }

    /// Emits `event` in namespace `nsp` with an optional ack id (EVENT, or BINARY_EVENT when the payload has
    /// attachments).
    pub async fn emit_in(
        &self,
        nsp: &str,
        id: Option<u64>,
        event: &str,
        payload: &Payload,
    ) -> Result<(), SocketIoError> {
        let packet = codec::event_packet(nsp, id, event, payload);
        self.send_packet(&packet, &payload.attachments).await
    }

    /// Waits up to `timeout` for the ack with id `id` in the configured namespace. Fails early when the
    /// namespace or the connection is gone.
    pub async fn wait_ack(&self, id: u64, timeout: Duration) -> Result<Payload, SocketIoError> {
        let nsp = self.config.namespace.clone();
        self.wait_ack_in(&nsp, id, timeout).await
    }

    /// [`Self::wait_ack`] in namespace `nsp`.
    pub async fn wait_ack_in(&self, nsp: &str, id: u64, timeout: Duration) -> Result<Payload, SocketIoError> {
        let key = (nsp.to_owned(), id);
        self.wait_for(
            || format!("ack {id} in {nsp}"),
            timeout,
            |inbox| inbox.acks.remove(&key).map(Ok).or_else(|| inbox.gone(nsp).map(Err)),
        )
        .await
    }

    /// Answers a server event that asked for an ack.
    pub async fn send_ack(&self, nsp: &str, id: u64, payload: impl Into<Payload>) -> Result<(), SocketIoError> {
        let payload = payload.into();
        let packet = codec::ack_packet(nsp, id, &payload);
        self.send_packet(&packet, &payload.attachments).await
    }

    /// Emits `count` copies of `event` back to back in one batch (abuse tests), each with its own ack id when
    /// `with_acks`; returns the ids used.
    pub async fn flood(
        &self,
        event: &str,
        payload: impl Into<Payload>,
        count: usize,
        with_acks: bool,
    ) -> Result<Vec<u64>, SocketIoError> {
        let payload = payload.into();
        let nsp = self.config.namespace.clone();
        let mut ids = Vec::new();
        let mut frames = Vec::with_capacity(count * (1 + payload.attachments.len()));
        for _ in 0..count {
            let id = with_acks.then(|| self.next_ack_id());
            ids.extend(id);
            let packet = codec::event_packet(&nsp, id, event, &payload);
            frames.push(WsMessage::text(codec::encode_message(&packet)));
            frames.extend(payload.attachments.iter().map(|a| WsMessage::binary(a.clone())));
        }
        self.send_many(frames).await?;
        Ok(ids)
    }

    // -----------------------------------------------------------------------------------------------------------
    // Raw access
    // -----------------------------------------------------------------------------------------------------------

    /// Sends a Socket.IO packet as an Engine.IO message, followed by its attachments as binary frames. The packet
    /// is sent as built: nothing checks that it makes sense.
    pub async fn send_packet(&self, packet: &Packet, attachments: &[Vec<u8>]) -> Result<(), SocketIoError> {
        let mut frames = vec![WsMessage::text(codec::encode_message(packet))];
        frames.extend(attachments.iter().map(|a| WsMessage::binary(a.clone())));
        self.send_many(frames).await.map(|_| ())
    }

    /// Sends one text frame as-is (e.g. `"42[\"x\""` or a forged `"40{…}"`).
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), SocketIoError> {
        self.send_raw(WsMessage::text(text.into())).await
    }

    /// Sends one binary frame as-is.
    pub async fn send_binary(&self, bytes: impl Into<Vec<u8>>) -> Result<(), SocketIoError> {
        self.send_raw(WsMessage::binary(bytes.into())).await
    }

    /// Sends any WebSocket frame as-is (text, binary, ping, close …).
    pub async fn send_raw(&self, message: WsMessage) -> Result<(), SocketIoError> {
        self.send_many([message]).await.map(|_| ())
    }

    /// Sends frames back to back and flushes once (send timeout for the whole batch); returns how many were sent.
    pub async fn send_many(&self, messages: impl IntoIterator<Item = WsMessage>) -> Result<usize, SocketIoError> {
        let timeout = self.config.timeouts.send;
        let result = tokio::time::timeout(timeout, async {
            let mut sink = self.sink.lock().await;
            let mut sent = 0;
            for m in messages {
                sink.feed(m).await?;
                sent += 1;
            }
            sink.flush().await?;
            Ok::<_, tokio_tungstenite::tungstenite::Error>(sent)
        })
        .await;
        match result {
            Err(_) => Err(SocketIoError::Timeout { what: "a write to the socket".into(), after: timeout }),
            Ok(Ok(n)) => Ok(n),
            // Writing to a connection that ended: report how it ended, which says more than the write error.
            Ok(Err(e)) => Err(self.shared.lock().stats.ended.clone().unwrap_or_else(|| map_ws_error(e))),
        }
    }

    /// Closes the WebSocket with a normal close frame and waits briefly for the server's close.
    pub async fn close(self) -> Result<(), SocketIoError> {
        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let sent = self.send_raw(WsMessage::Close(Some(frame))).await;
        let _ = self.wait_closed(Duration::from_secs(1).min(self.config.timeouts.send)).await;
        sent
    }

    // -----------------------------------------------------------------------------------------------------------
    // Receiving
    // -----------------------------------------------------------------------------------------------------------

    /// The next item in the server-event buffer (event timeout). When the buffer is empty and the connection has
    /// ended, the way it ended is the error.
    pub async fn next_event(&self) -> Result<ServerEvent, SocketIoError> {
        self.next_event_within(self.config.timeouts.event).await
    }

    /// [`Self::next_event`] with an explicit bound.
    pub async fn next_event_within(&self, timeout: Duration) -> Result<ServerEvent, SocketIoError> {
        self.wait_for(
            || "the next server event".into(),
            timeout,
            |inbox| inbox.events.pop_front().map(Ok).or_else(|| inbox.stats.ended.clone().map(Err)),
        )
        .await
    }

    /// The first buffered or arriving event named `name` in the configured namespace (other items stay in the
    /// buffer). Fails early when the namespace or connection is gone.
    pub async fn wait_event(&self, name: &str, timeout: Duration) -> Result<Event, SocketIoError> {
        let nsp = self.config.namespace.clone();
        self.wait_for(
            || format!("event {name:?} in {nsp}"),
            timeout,
            |inbox| {
                let at = inbox
                    .events
                    .iter()
                    .position(|e| matches!(e, ServerEvent::Event(ev) if ev.name == name && ev.nsp == nsp));
                if let Some(ServerEvent::Event(ev)) = at.and_then(|i| inbox.events.remove(i)) {
                    return Some(Ok(ev));
                }
                inbox.gone(&nsp).map(Err)
            },
        )
        .await
    }

    /// Everything that arrives within `window` (plus what is already buffered); returns early when the connection
    /// ends. For "receives nothing" checks.
    pub async fn events_for(&self, window: Duration) -> Vec<ServerEvent> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ended = {
                let mut inbox = self.shared.lock();
                out.extend(inbox.events.drain(..));
                inbox.stats.ended.is_some()
            };
            if ended || tokio::time::timeout_at(deadline, notified).await.is_err() {
                out.extend(self.shared.lock().events.drain(..));
                return out;
            }
        }
    }

    /// Waits until the server ends our presence in the configured namespace in any way: DISCONNECT, Engine.IO
    /// close, or the WebSocket ending. Looks at state, not at the buffer, so consumed events do not hide it.
    pub async fn wait_disconnect(&self, timeout: Duration) -> Result<Disconnection, SocketIoError> {
        let nsp = self.config.namespace.clone();
        self.wait_for(
            || format!("the server to disconnect {nsp}"),
            timeout,
            |inbox| {
                if inbox.disconnected.contains(&nsp) {
                    return Some(Ok(Disconnection::Namespace { nsp: nsp.clone() }));
                }
                if inbox.stats.engine_closed {
                    return Some(Ok(Disconnection::EngineClose));
                }
                inbox.stats.ended.clone().map(|e| {
                    Ok(match e {
                        SocketIoError::Closed { code, reason } => Disconnection::Closed { code, reason },
                        other => Disconnection::Failed(other),
                    })
                })
            },
        )
        .await
    }

    /// Waits until the WebSocket has closed. A close (frame or dropped TCP) is `Ok`; any other end (oversize
    /// frame, transport error) is that error.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<CloseInfo, SocketIoError> {
        self.wait_for(
            || "the WebSocket to close".into(),
            timeout,
            |inbox| {
                inbox.stats.ended.clone().map(|e| match e {
                    SocketIoError::Closed { code, reason } => Ok(CloseInfo { code, reason }),
                    other => Err(other),
                })
            },
        )
        .await
    }

    async fn wait_for<T>(
        &self,
        what: impl FnOnce() -> String,
        timeout: Duration,
        mut check: impl FnMut(&mut Inbox) -> Option<Result<T, SocketIoError>>,
    ) -> Result<T, SocketIoError> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ready = {
                let mut inbox = self.shared.lock();
                check(&mut inbox)
            };
            if let Some(result) = ready {
                return result;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let ready = {
                    let mut inbox = self.shared.lock();
                    check(&mut inbox)
                };
                return ready.unwrap_or_else(|| Err(SocketIoError::Timeout { what: what(), after: timeout }));
            }
        }
    }
}

async fn read_open(ws: &mut Ws) -> Result<OpenPacket, SocketIoError> {
    loop {
        let message = match ws.next().await {
            None => return Err(SocketIoError::Closed { code: 1006, reason: "closed before the open packet".into() }),
            Some(Err(e)) => return Err(map_ws_error(e)),
            Some(Ok(m)) => m,
        };
        match message {
            WsMessage::Text(text) => {
                return match codec::decode_eio(text.as_str()) {
                    Ok(EioPacket::Open(open)) => Ok(open),
                    Ok(other) => Err(SocketIoError::Protocol {
                        detail: format!("expected the Engine.IO open packet, got {}", eio_name(&other)),
                        excerpt: codec::excerpt(text.as_str()),
                    }),
                    Err(e) => Err(SocketIoError::Protocol {
                        detail: format!("expected the Engine.IO open packet: {}", e.detail),
                        excerpt: e.excerpt,
                    }),
                };
            }
            WsMessage::Binary(bytes) => {
                return Err(SocketIoError::Protocol {
                    detail: "expected the Engine.IO open packet, got a binary frame".into(),
                    excerpt: codec::excerpt_bytes(&bytes),
                });
            }
            WsMessage::Close(frame) => return Err(closed_by(frame.as_ref())),
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
        }
    }
}

fn eio_name(p: &EioPacket) -> &'static str {
    match p {
        EioPacket::Open(_) => "open",
        EioPacket::Close => "close",
        EioPacket::Ping(_) => "ping",
        EioPacket::Pong(_) => "pong",
        EioPacket::Message(_) => "message",
        EioPacket::Upgrade => "upgrade",
        EioPacket::Noop => "noop",
    }
}

fn closed_by(frame: Option<&CloseFrame>) -> SocketIoError {
    match frame {
        Some(f) => SocketIoError::Closed { code: u16::from(f.code), reason: f.reason.as_str().to_owned() },
        None => SocketIoError::Closed { code: 1005, reason: String::new() },
    }
}

/// Maps a tungstenite error to ours.
fn map_ws_error(e: tokio_tungstenite::tungstenite::Error) -> SocketIoError {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error, ProtocolError};
    match e {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            SocketIoError::FrameTooLarge { size, max: max_size }
        }
        Error::ConnectionClosed | Error::AlreadyClosed => {
            SocketIoError::Closed { code: 1006, reason: "connection already closed".into() }
        }
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            SocketIoError::Closed { code: 1006, reason: "connection reset without closing handshake".into() }
        }
        Error::Protocol(ProtocolError::HandshakeIncomplete) => {
            SocketIoError::Closed { code: 1006, reason: "connection closed during the WebSocket upgrade".into() }
        }
        Error::Protocol(p) => SocketIoError::Protocol { detail: format!("WebSocket: {p}"), excerpt: String::new() },
        Error::Utf8(detail) => SocketIoError::Protocol {
            detail: format!("invalid UTF-8 in a text frame: {detail}"),
            excerpt: String::new(),
        },
        Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            ) =>
        {
            SocketIoError::Closed { code: 1006, reason: format!("connection dropped: {io}") }
        }
        Error::Http(response) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            SocketIoError::HandshakeRejected { status: response.status().as_u16(), body: codec::excerpt(&body) }
        }
        Error::Url(u) => SocketIoError::Config(format!("URL: {u}")),
        other => SocketIoError::Transport(other.to_string()),
    }
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    shared: Arc<Shared>,
    sink: Arc<tokio::sync::Mutex<Sink>>,
    send_timeout: Duration,
) {
    let mut reassembler = Reassembler::new();
    let ended = loop {
        let message = match stream.next().await {
            None => {
                break SocketIoError::Closed { code: 1006, reason: "connection ended without a close frame".into() };
            }
            Some(Err(e)) => break map_ws_error(e),
            Some(Ok(m)) => m,
        };
        match message {
            WsMessage::Text(text) => {
                let pong = handle_text(text.as_str(), &shared, &mut reassembler);
                if let Some(data) = pong {
                    let frame = WsMessage::text(codec::encode_pong(&data));
                    let sent = tokio::time::timeout(send_timeout, async { sink.lock().await.send(frame).await }).await;
                    if matches!(sent, Ok(Ok(()))) {
                        shared.update(|inbox| inbox.stats.pongs_sent += 1);
                    }
                }
            }
            WsMessage::Binary(bytes) => {
                let done = reassembler.push_binary(bytes.to_vec());
                shared.update(|inbox| match done {
                    Err(e) => inbox.violation(e),
                    Ok(Some((packet, attachments))) => dispatch(inbox, packet, attachments),
                    Ok(None) => {}
                });
            }
            WsMessage::Close(frame) => {
                let ended = closed_by(frame.as_ref());
                set_ended(&shared, ended.clone());
                // Let tungstenite send its close reply: it goes out while the stream is polled.
                let _ = tokio::time::timeout(Duration::from_secs(1), async { while stream.next().await.is_some() {} })
                    .await;
                break ended;
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
        }
    };
    // We end an oversize or broken connection ourselves: say why, so the server does not wait on a dead socket.
    let code = match ended {
        SocketIoError::FrameTooLarge { .. } => Some(CloseCode::Size),
        SocketIoError::Protocol { .. } => Some(CloseCode::Protocol),
        _ => None,
    };
    set_ended(&shared, ended);
    if let Some(code) = code {
        let frame = WsMessage::Close(Some(CloseFrame { code, reason: "".into() }));
        let _ = tokio::time::timeout(send_timeout, async { sink.lock().await.send(frame).await }).await;
    }
}

/// Records how the connection ended (the first report wins) and wakes every waiter.
fn set_ended(shared: &Shared, ended: SocketIoError) {
    shared.update(|inbox| {
        if inbox.stats.ended.is_none() {
            inbox.stats.ended = Some(ended);
        }
    });
}

/// Handles one text frame; returns the data to pong with when a ping must be answered.
fn handle_text(text: &str, shared: &Shared, reassembler: &mut Reassembler) -> Option<String> {
    let mut pong = None;
    let decoded = codec::decode_eio(text);
    shared.update(|inbox| match decoded {
        Err(e) => inbox.violation(e),
        Ok(EioPacket::Ping(data)) => {
            inbox.stats.pings_received += 1;
            if shared.auto_pong.load(Ordering::SeqCst) {
                pong = Some(data);
            }
        }
        Ok(EioPacket::Pong(_) | EioPacket::Noop) => {}
        Ok(EioPacket::Close) => {
            inbox.stats.engine_closed = true;
            inbox.push(ServerEvent::EngineClose);
        }
        Ok(EioPacket::Open(_)) => inbox.violation(codec::DecodeError {
            detail: "second Engine.IO open packet".into(),
            excerpt: codec::excerpt(text),
        }),
        Ok(EioPacket::Upgrade) => inbox.violation(codec::DecodeError {
            detail: "Engine.IO upgrade packet on a direct WebSocket connection".into(),
            excerpt: codec::excerpt(text),
        }),
        Ok(EioPacket::Message(data)) => match codec::decode_packet(&data) {
            Err(e) => inbox.violation(e),
            Ok(packet) => {
                let (violation, done) = reassembler.push_packet(packet);
                if let Some(v) = violation {
                    inbox.violation(v);
                }
                if let Some((packet, attachments)) = done {
                    dispatch(inbox, packet, attachments);
                }
            }
        },
    });
    pong
}

/// Files one complete Socket.IO packet.
fn dispatch(inbox: &mut Inbox, packet: Packet, attachments: Vec<Vec<u8>>) {
    match packet.kind {
        PacketKind::Connect => {
            let data = packet.data.unwrap_or(Value::Null);
            let sid = data.get("sid").and_then(Value::as_str).map(str::to_owned);
            inbox.disconnected.remove(&packet.nsp);
            inbox.connects.insert(packet.nsp, ConnectAnswer::Accepted { sid, data });
        }
        PacketKind::ConnectError => {
            let (message, data) = match packet.data {
                Some(Value::String(s)) => (s, None),
                Some(Value::Object(mut obj)) => {
                    let message = match obj.remove("message") {
                        Some(Value::String(s)) => s,
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    (message, obj.remove("data"))
                }
                other => (other.map(|v| v.to_string()).unwrap_or_default(), None),
            };
            inbox.connects.insert(packet.nsp, ConnectAnswer::Refused { message, data });
        }
        PacketKind::Disconnect => {
            inbox.disconnected.insert(packet.nsp.clone());
            inbox.push(ServerEvent::Disconnect { nsp: packet.nsp });
        }
        PacketKind::Event | PacketKind::BinaryEvent | PacketKind::Ack | PacketKind::BinaryAck => {
            match codec::split_event(&packet, attachments) {
                Err(detail) => inbox
                    .violation(codec::DecodeError { detail, excerpt: codec::excerpt(&codec::encode_packet(&packet)) }),
                Ok((Some(name), payload)) => {
                    inbox.push(ServerEvent::Event(Event { nsp: packet.nsp, name, payload, ack_id: packet.id }))
                }
                Ok((None, payload)) => match packet.id {
                    Some(id) if inbox.acks.len() < MAX_UNCLAIMED_ACKS => {
                        inbox.acks.insert((packet.nsp, id), payload);
                    }
                    _ => inbox.stats.acks_dropped += 1,
                },
            }
        }
    }
}

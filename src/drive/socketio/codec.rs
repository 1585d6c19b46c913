//! Pure Engine.IO v4 / Socket.IO v5 encoding and decoding: no I/O, no clock, and no panic on any input.
//!
//! On a WebSocket each frame holds one Engine.IO packet. A text frame is `<eio type><data>`; a binary frame is a
//! raw binary message (in Engine.IO v4 it carries no type byte). A Socket.IO packet rides in an Engine.IO
//! message (`4`) as `<type>[<attachments>-][<nsp>,][<ack id>][JSON]`, and a BINARY_EVENT / BINARY_ACK is followed
//! by its attachments, one binary frame each, which replace the placeholders `{"_placeholder":true,"num":N}`.
//!
//! The decoders return a [`DecodeError`] (what was wrong, plus an excerpt of the frame) for anything that is not a
//! well-formed packet; they are fuzzed by a proptest over arbitrary strings and bytes.

use serde_json::{Map, Value};
use std::fmt;

/// Most attachments one BINARY_EVENT / BINARY_ACK may announce; more is treated as a protocol violation, so a
/// server cannot make us wait for (and buffer) an unbounded number of binary frames.
pub const MAX_ATTACHMENTS: usize = 1024;

/// Longest excerpt of a frame kept in errors and reports, in characters (text) or bytes (binary).
pub const EXCERPT_LEN: usize = 120;

/// A frame (or part of one) that is not a well-formed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub detail: String,
    /// The start of the offending frame, for reports (see [`excerpt`]).
    pub excerpt: String,
}

impl DecodeError {
    fn new(detail: impl Into<String>, frame: &str) -> Self {
        Self { detail: detail.into(), excerpt: excerpt(frame) }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (frame: {:?})", self.detail, self.excerpt)
    }
}

impl std::error::Error for DecodeError {}

/// The first [`EXCERPT_LEN`] characters of a text frame, with `…` when cut.
pub fn excerpt(frame: &str) -> String {
    let mut out: String = frame.chars().take(EXCERPT_LEN).collect();
    if frame.chars().nth(EXCERPT_LEN).is_some() {
        out.push('…');
    }
    out
}

/// The first bytes of a binary frame as hex, with its length.
pub fn excerpt_bytes(frame: &[u8]) -> String {
    let shown = &frame[..frame.len().min(EXCERPT_LEN / 2)];
    let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    let more = if frame.len() > shown.len() { "…" } else { "" };
    format!("<{} bytes: {hex}{more}>", frame.len())
}

// ---------------------------------------------------------------------------------------------------------------
// Engine.IO
// ---------------------------------------------------------------------------------------------------------------

/// The Engine.IO open packet's payload: `0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPacket {
    /// Engine.IO session id.
    pub sid: String,
    /// Transports the server offers to upgrade to (empty over WebSocket).
    pub upgrades: Vec<String>,
    /// How often the server pings, in milliseconds.
    pub ping_interval_ms: u64,
    /// How long the server waits for a pong, in milliseconds.
    pub ping_timeout_ms: u64,
    /// Largest payload the server accepts, in bytes (a polling-transport limit; absent on some servers).
    pub max_payload: Option<u64>,
}

/// One Engine.IO packet from a text frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    /// `0{…}`: the session opened.
    Open(OpenPacket),
    /// `1`: the server closes the session.
    Close,
    /// `2[data]`: heartbeat request (the server pings in v4); answer with a pong carrying the same data.
    Ping(String),
    /// `3[data]`: heartbeat answer.
    Pong(String),
    /// `4<data>`: a message, in Socket.IO a [`Packet`].
    Message(String),
    /// `5`: transport upgrade (not expected over a direct WebSocket connection).
    Upgrade,
    /// `6`: no-op.
    Noop,
}

/// Decodes one Engine.IO packet from a text frame.
pub fn decode_eio(frame: &str) -> Result<EioPacket, DecodeError> {
    let mut chars = frame.chars();
    let Some(kind) = chars.next() else {
        return Err(DecodeError::new("empty Engine.IO packet", frame));
    };
    let rest = chars.as_str();
    match kind {
        '0' => decode_open(rest).map(EioPacket::Open).map_err(|detail| DecodeError::new(detail, frame)),
        '1' => Ok(EioPacket::Close),
        '2' => Ok(EioPacket::Ping(rest.to_owned())),
        '3' => Ok(EioPacket::Pong(rest.to_owned())),
        '4' => Ok(EioPacket::Message(rest.to_owned())),
        '5' => Ok(EioPacket::Upgrade),
        '6' => Ok(EioPacket::Noop),
        other => Err(DecodeError::new(format!("unknown Engine.IO packet type {other:?}"), frame)),
    }
}

fn decode_open(json: &str) -> Result<OpenPacket, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("open packet is not JSON: {e}"))?;
    let obj = value.as_object().ok_or("open packet payload is not a JSON object")?;
    let sid = obj.get("sid").and_then(Value::as_str).ok_or("open packet has no string \"sid\"")?.to_owned();
    let upgrades = match obj.get("upgrades") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(_) => return Err("open packet \"upgrades\" is not an array".into()),
    };
    let ping_interval_ms =
        obj.get("pingInterval").and_then(Value::as_u64).ok_or("open packet has no integer \"pingInterval\"")?;
    let ping_timeout_ms =
        obj.get("pingTimeout").and_then(Value::as_u64).ok_or("open packet has no integer \"pingTimeout\"")?;
    let max_payload = obj.get("maxPayload").and_then(Value::as_u64);
    Ok(OpenPacket { sid, upgrades, ping_interval_ms, ping_timeout_ms, max_payload })
}

/// Engine.IO pong answering a ping that carried `data` (usually empty).
pub fn encode_pong(data: &str) -> String {
    format!("3{data}")
}

// ---------------------------------------------------------------------------------------------------------------
// Socket.IO
// ---------------------------------------------------------------------------------------------------------------

/// Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// 0: connect to a namespace (client: auth payload; server: `{"sid"}`).
    Connect,
    /// 1: leave / be removed from a namespace.
    Disconnect,
    /// 2: an event `[name, ...args]`.
    Event,
    /// 3: acknowledgement `[...args]` of an event with an ack id.
    Ack,
    /// 4: namespace connection refused, `{"message"[, "data"]}`.
    ConnectError,
    /// 5: an event with binary attachments.
    BinaryEvent,
    /// 6: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketKind {
    /// The digit on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Connect => 0,
            Self::Disconnect => 1,
            Self::Event => 2,
            Self::Ack => 3,
            Self::ConnectError => 4,
            Self::BinaryEvent => 5,
            Self::BinaryAck => 6,
        }
    }

    /// The packet type for a wire digit.
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            '0' => Self::Connect,
            '1' => Self::Disconnect,
            '2' => Self::Event,
            '3' => Self::Ack,
            '4' => Self::ConnectError,
            '5' => Self::BinaryEvent,
            '6' => Self::BinaryAck,
            _ => return None,
        })
    }

    /// BINARY_EVENT and BINARY_ACK, which carry an attachment count.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// One Socket.IO packet. With attachments, `data` holds placeholders and the binaries travel separately.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Packet type.
    pub kind: PacketKind,
    /// Namespace, `/` by default (omitted on the wire).
    pub nsp: String,
    /// Ack id, if the sender wants an acknowledgement (or this is one).
    pub id: Option<u64>,
    /// Number of binary attachments that follow (binary kinds only).
    pub attachments: usize,
    /// JSON payload, if any.
    pub data: Option<Value>,
}

impl Packet {
    /// A packet of `kind` in namespace `nsp`, without id or data.
    pub fn new(kind: PacketKind, nsp: impl Into<String>) -> Self {
        Self { kind, nsp: nsp.into(), id: None, attachments: 0, data: None }
    }
}

/// Encodes a Socket.IO packet (without the Engine.IO `4` prefix). Encoding is literal: it does not check that the
/// packet makes sense, so the harness can forge packets.
pub fn encode_packet(packet: &Packet) -> String {
    let mut out = String::new();
    out.push(char::from(b'0' + packet.kind.code()));
    if packet.kind.is_binary() {
        out.push_str(&packet.attachments.to_string());
        out.push('-');
    }
    if !packet.nsp.is_empty() && packet.nsp != "/" {
        out.push_str(&packet.nsp);
        out.push(',');
    }
    if let Some(id) = packet.id {
        out.push_str(&id.to_string());
    }
    if let Some(data) = &packet.data {
        out.push_str(&data.to_string());
    }
    out
}

/// Encodes a Socket.IO packet as the text of an Engine.IO message frame (`4…`).
pub fn encode_message(packet: &Packet) -> String {
    format!("4{}", encode_packet(packet))
}

/// Decodes a Socket.IO packet (the data of an Engine.IO message) and checks its payload against its type the way
/// the reference parser (socket.io-parser) does.
pub fn decode_packet(text: &str) -> Result<Packet, DecodeError> {
    let err = |detail: String| DecodeError::new(detail, text);
    let mut chars = text.char_indices().peekable();
    let kind = match chars.next() {
        None => return Err(err("empty Socket.IO packet".into())),
        Some((_, c)) => PacketKind::from_char(c).ok_or_else(|| err(format!("unknown Socket.IO packet type {c:?}")))?,
    };
    let mut pos = 1; // byte offset of the unread rest (the type digit is ASCII)

    let mut attachments = 0;
    if kind.is_binary() {
        let rest = &text[pos..];
        let dash = rest.find('-').ok_or_else(|| err("binary packet without attachment count".into()))?;
        let count = &rest[..dash];
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("illegal attachment count {:?}", excerpt(count))));
        }
        attachments = count
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_ATTACHMENTS)
            .ok_or_else(|| err(format!("attachment count {} over the limit {MAX_ATTACHMENTS}", excerpt(count))))?;
        pos += dash + 1;
    }

    let mut nsp = String::from("/");
    if text[pos..].starts_with('/') {
        let rest = &text[pos..];
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = rest[..end].to_owned();
        pos += end;
        if pos < text.len() {
            pos += 1; // the comma
        }
    }

    let rest = &text[pos..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        let id = rest[..digits]
            .parse::<u64>()
            .map_err(|_| err(format!("ack id {} does not fit in 64 bits", excerpt(&rest[..digits]))))?;
        pos += digits;
        Some(id)
    } else {
        None
    };

    let rest = &text[pos..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|e| err(format!("payload is not JSON: {e}")))?)
    };

    let packet = Packet { kind, nsp, id, attachments, data };
    check_payload(&packet).map_err(err)?;
    Ok(packet)
}

fn check_payload(packet: &Packet) -> Result<(), String> {
    let data = packet.data.as_ref();
    match packet.kind {
        PacketKind::Connect => match data {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err("CONNECT payload is not an object".into()),
        },
        PacketKind::Disconnect => match data {
            None => Ok(()),
            Some(_) => Err("DISCONNECT carries a payload".into()),
        },
        PacketKind::ConnectError => match data {
            Some(Value::Object(_) | Value::String(_)) => Ok(()),
            _ => Err("CONNECT_ERROR payload is neither an object nor a string".into()),
        },
        PacketKind::Event | PacketKind::BinaryEvent => match data {
            Some(Value::Array(items)) if matches!(items.first(), Some(Value::String(_) | Value::Number(_))) => Ok(()),
            Some(Value::Array(items)) if items.is_empty() => Err("EVENT payload is an empty array".into()),
            Some(Value::Array(_)) => Err("EVENT name is neither a string nor a number".into()),
            _ => Err("EVENT payload is not an array".into()),
        },
        PacketKind::Ack | PacketKind::BinaryAck => match (packet.id, data) {
            (None, _) => Err("ACK without an ack id".into()),
            (Some(_), Some(Value::Array(_))) => Ok(()),
            (Some(_), _) => Err("ACK payload is not an array".into()),
        },
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Payloads with binary attachments
// ---------------------------------------------------------------------------------------------------------------

/// The placeholder that stands for attachment `num` in a binary packet's JSON.
pub fn placeholder(num: usize) -> Value {
    let mut map = Map::new();
    map.insert("_placeholder".into(), Value::Bool(true));
    map.insert("num".into(), Value::from(num));
    Value::Object(map)
}

/// The attachment index if `value` is a placeholder `{"_placeholder":true,"num":N}`.
pub fn placeholder_num(value: &Value) -> Option<usize> {
    let obj = value.as_object()?;
    if obj.get("_placeholder")? != &Value::Bool(true) {
        return None;
    }
    usize::try_from(obj.get("num")?.as_u64()?).ok()
}

/// The arguments of an event or an ack, with their binary attachments. Binary arguments appear in `args` as
/// placeholders; [`Payload::binary`] and [`Payload::binary_arg`] resolve them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// JSON arguments, placeholders included.
    pub args: Vec<Value>,
    /// Binary attachments, in placeholder order.
    pub attachments: Vec<Vec<u8>>,
}

impl Payload {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// JSON arguments only.
    pub fn json(args: impl IntoIterator<Item = Value>) -> Self {
        Self { args: args.into_iter().collect(), attachments: Vec::new() }
    }

    /// Appends a JSON argument.
    #[must_use]
    pub fn arg(mut self, value: Value) -> Self {
        self.args.push(value);
        self
    }

    /// Appends a binary argument (a placeholder in `args` plus an attachment).
    #[must_use]
    pub fn binary(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.args.push(placeholder(self.attachments.len()));
        self.attachments.push(bytes.into());
        self
    }

    /// Argument `index`, if present.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.args.get(index)
    }

    /// The bytes a placeholder anywhere in the payload stands for.
    pub fn binary_of(&self, value: &Value) -> Option<&[u8]> {
        self.attachments.get(placeholder_num(value)?).map(Vec::as_slice)
    }

    /// The bytes of argument `index`, if it is a binary placeholder.
    pub fn binary_arg(&self, index: usize) -> Option<&[u8]> {
        self.binary_of(self.args.get(index)?)
    }

    /// Whether the payload has binary attachments.
    pub fn is_binary(&self) -> bool {
        !self.attachments.is_empty()
    }
}

impl From<Value> for Payload {
    /// One JSON argument (an array is one argument, not several).
    fn from(value: Value) -> Self {
        Self::json([value])
    }
}

impl From<Vec<Value>> for Payload {
    /// Several JSON arguments.
    fn from(args: Vec<Value>) -> Self {
        Self::json(args)
    }
}

impl From<()> for Payload {
    /// No arguments.
    fn from((): ()) -> Self {
        Self::new()
    }
}

/// The EVENT (or BINARY_EVENT when the payload has attachments) packet for `name` with `payload`.
pub fn event_packet(nsp: &str, id: Option<u64>, name: &str, payload: &Payload) -> Packet {
    let mut data = Vec::with_capacity(payload.args.len() + 1);
    data.push(Value::String(name.to_owned()));
    data.extend(payload.args.iter().cloned());
    let kind = if payload.is_binary() { PacketKind::BinaryEvent } else { PacketKind::Event };
    Packet { kind, nsp: nsp.to_owned(), id, attachments: payload.attachments.len(), data: Some(Value::Array(data)) }
}

/// The ACK (or BINARY_ACK) packet answering ack id `id` with `payload`.
pub fn ack_packet(nsp: &str, id: u64, payload: &Payload) -> Packet {
    let kind = if payload.is_binary() { PacketKind::BinaryAck } else { PacketKind::Ack };
    Packet {
        kind,
        nsp: nsp.to_owned(),
        id: Some(id),
        attachments: payload.attachments.len(),
        data: Some(Value::Array(payload.args.clone())),
    }
}

/// What a received event or ack carries, split from its packet: `(name, payload)` for events (name is `None` for
/// acks). The packet must already have passed [`decode_packet`]'s checks; anything else is an error, not a panic.
pub fn split_event(packet: &Packet, attachments: Vec<Vec<u8>>) -> Result<(Option<String>, Payload), String> {
    let Some(Value::Array(items)) = &packet.data else {
        return Err("payload is not an array".into());
    };
    match packet.kind {
        PacketKind::Event | PacketKind::BinaryEvent => {
            let (first, rest) = items.split_first().ok_or("event payload is empty")?;
            let name = match first {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok((Some(name), Payload { args: rest.to_vec(), attachments }))
        }
        PacketKind::Ack | PacketKind::BinaryAck => Ok((None, Payload { args: items.clone(), attachments })),
        other => Err(format!("{other:?} is neither an event nor an ack")),
    }
}

/// A complete packet with its attachments, in order.
pub type Complete = (Packet, Vec<Vec<u8>>);

/// Collects the binary frames that follow a BINARY_EVENT / BINARY_ACK. Feed it every Socket.IO packet and every
/// binary frame in arrival order; it returns each packet once it is complete, with its attachments.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: Option<(Packet, Vec<Vec<u8>>)>,
}

impl Reassembler {
    /// A reassembler with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A decoded Socket.IO packet. A new packet while attachments are still expected is a protocol violation: the
    /// unfinished packet is dropped and the error reported, and the new packet is processed anyway.
    pub fn push_packet(&mut self, packet: Packet) -> (Option<DecodeError>, Option<Complete>) {
        let violation = self.pending.take().map(|(old, got)| DecodeError {
            detail: format!(
                "packet arrived while {} of {} attachments were still expected",
                old.attachments.saturating_sub(got.len()),
                old.attachments
            ),
            excerpt: excerpt(&encode_packet(&packet)),
        });
        if packet.kind.is_binary() && packet.attachments > 0 {
            let cap = packet.attachments.min(16);
            self.pending = Some((packet, Vec::with_capacity(cap)));
            (violation, None)
        } else {
            (violation, Some((packet, Vec::new())))
        }
    }

    /// A binary frame: the next attachment of the pending packet, or a protocol violation when none is pending.
    pub fn push_binary(&mut self, bytes: Vec<u8>) -> Result<Option<Complete>, DecodeError> {
        let Some((packet, mut got)) = self.pending.take() else {
            return Err(DecodeError {
                detail: "binary frame without a pending binary packet".into(),
                excerpt: excerpt_bytes(&bytes),
            });
        };
        got.push(bytes);
        if got.len() >= packet.attachments {
            Ok(Some((packet, got)))
        } else {
            self.pending = Some((packet, got));
            Ok(None)
        }
    }
}

/// Percent-encodes a query-string component (everything but RFC 3986 unreserved characters).
pub fn encode_query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn decodes_open_packet() {
        let p =
            decode_eio(r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#)
                .unwrap();
        assert_eq!(
            p,
            EioPacket::Open(OpenPacket {
                sid: "abc".into(),
                upgrades: vec![],
                ping_interval_ms: 25000,
                ping_timeout_ms: 20000,
                max_payload: Some(1_000_000)
            })
        );
        assert!(decode_eio(r#"0{"sid":1}"#).is_err());
        assert!(decode_eio("0").is_err());
        assert!(decode_eio("").is_err());
        assert!(decode_eio("9").is_err());
        assert_eq!(decode_eio("2").unwrap(), EioPacket::Ping(String::new()));
        assert_eq!(decode_eio("2probe").unwrap(), EioPacket::Ping("probe".into()));
        assert_eq!(decode_eio("1").unwrap(), EioPacket::Close);
        assert_eq!(decode_eio("6").unwrap(), EioPacket::Noop);
        assert_eq!(encode_pong("probe"), "3probe");
    }

    #[test]
    fn encodes_the_wire_forms_of_the_protocol_doc() {
        let mut connect = Packet::new(PacketKind::Connect, "/");
        connect.data = Some(json!({"token": "t"}));
        assert_eq!(encode_message(&connect), r#"40{"token":"t"}"#);
        connect.nsp = "/admin".into();
        assert_eq!(encode_message(&connect), r#"40/admin,{"token":"t"}"#);

        let p = event_packet("/", Some(1), "escrow:subscribe", &Payload::json([json!({"escrow_id": "e"})]));
        assert_eq!(encode_message(&p), r#"421["escrow:subscribe",{"escrow_id":"e"}]"#);
        let p = event_packet("/admin", Some(12), "x", &Payload::new().binary(vec![1, 2]));
        assert_eq!(encode_packet(&p), r#"51-/admin,12["x",{"_placeholder":true,"num":0}]"#);
        assert_eq!(encode_packet(&ack_packet("/", 3, &Payload::json([json!("ok")]))), r#"33["ok"]"#);
        assert_eq!(encode_packet(&Packet::new(PacketKind::Disconnect, "/")), "1");
    }

    #[test]
    fn decodes_server_packets() {
        let p = decode_packet(r#"0{"sid":"s1"}"#).unwrap();
        assert_eq!((p.kind, p.nsp.as_str(), p.data), (PacketKind::Connect, "/", Some(json!({"sid": "s1"}))));
        let p = decode_packet(r#"4/admin,{"message":"unauthorized","data":{"code":7}}"#).unwrap();
        assert_eq!((p.kind, p.nsp.as_str()), (PacketKind::ConnectError, "/admin"));
        let p = decode_packet(r#"31[{"ok":true}]"#).unwrap();
        assert_eq!((p.kind, p.id), (PacketKind::Ack, Some(1)));
        let p = decode_packet(r#"2["escrow:updated",{"v":1}]"#).unwrap();
        assert_eq!((p.kind, p.id), (PacketKind::Event, None));
        let p = decode_packet("1/admin,").unwrap();
        assert_eq!((p.kind, p.nsp.as_str()), (PacketKind::Disconnect, "/admin"));
        let p = decode_packet("1").unwrap();
        assert_eq!((p.kind, p.nsp.as_str(), p.data), (PacketKind::Disconnect, "/", None));
        let p = decode_packet(r#"61-/admin,5[{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!((p.kind, p.nsp.as_str(), p.id, p.attachments), (PacketKind::BinaryAck, "/admin", Some(5), 1));
    }

    #[test]
    fn rejects_malformed_packets() {
        for bad in [
            "",
            "7",
            "2",
            "2[]",
            "2{}",
            r#"2[{}]"#,
            "3[]",
            "31{}",
            "2[\"a\"",
            "5[\"a\"]",
            "5x-[\"a\"]",
            "599999999999999999999999-[\"a\"]",
            "299999999999999999999999[\"a\"]",
            "4",
            "0[1]",
            "1{}",
        ] {
            let e = decode_packet(bad).expect_err(bad);
            assert!(!e.detail.is_empty());
        }
    }

    #[test]
    fn reassembles_binary_packets() {
        let mut r = Reassembler::new();
        let p = decode_packet(r#"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#).unwrap();
        assert_eq!(r.push_packet(p), (None, None));
        assert_eq!(r.push_binary(vec![1]).unwrap(), None);
        let (p, att) = r.push_binary(vec![2, 3]).unwrap().unwrap();
        let (name, payload) = split_event(&p, att).unwrap();
        assert_eq!(name.as_deref(), Some("e"));
        assert_eq!(payload.binary_arg(0), Some(&[1u8][..]));
        assert_eq!(payload.binary_arg(1), Some(&[2u8, 3][..]));
        assert!(r.push_binary(vec![9]).is_err());
        // A new packet while attachments are pending is reported, and the new packet still goes through.
        let p = decode_packet(r#"51-["e",{"_placeholder":true,"num":0}]"#).unwrap();
        let _ = r.push_packet(p);
        let (violation, done) = r.push_packet(decode_packet(r#"2["f"]"#).unwrap());
        assert!(violation.is_some());
        assert!(done.is_some());
    }

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(encode_query_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(excerpt_bytes(&[0xde, 0xad]), "<2 bytes: dead>");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[^\"\\\\]{0,8}".prop_map(Value::String),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn eio_decoder_never_panics(s in any::<String>()) {
            let _ = decode_eio(&s);
        }

        #[test]
        fn sio_decoder_never_panics(s in any::<String>()) {
            let _ = decode_packet(&s);
        }

        #[test]
        fn sio_decoder_never_panics_on_near_misses(
            prefix in "[0-9]{1,3}(-)?(/[a-z,]{0,4})?[0-9]{0,22}",
            body in ".{0,40}",
        ) {
            let _ = decode_packet(&format!("{prefix}{body}"));
            let _ = decode_eio(&format!("4{prefix}{body}"));
            let _ = decode_eio(&format!("0{body}"));
        }

        #[test]
        fn reassembler_never_panics(frames in prop::collection::vec(
            prop_oneof![
                any::<String>().prop_map(Ok),
                "5[0-9]{1,2}-\\[\"e\"\\]".prop_map(Ok),
                "6[0-9]{1,2}-[0-9]\\[\\]".prop_map(Ok),
                prop::collection::vec(any::<u8>(), 0..16).prop_map(Err),
            ],
            0..20,
        )) {
            let mut r = Reassembler::new();
            for f in frames {
                match f {
                    Ok(text) => {
                        if let Ok(p) = decode_packet(&text) {
                            let (_, done) = r.push_packet(p);
                            if let Some((p, att)) = done {
                                let _ = split_event(&p, att);
                            }
                        }
                    }
                    Err(bytes) => {
                        if let Ok(Some((p, att))) = r.push_binary(bytes) {
                            let _ = split_event(&p, att);
                        }
                    }
                }
            }
        }

        #[test]
        fn excerpts_never_panic(s in any::<String>(), b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = excerpt(&s);
            let _ = excerpt_bytes(&b);
        }

        #[test]
        fn events_round_trip(
            nsp in prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"],
            id in prop::option::of(any::<u64>()),
            name in ".{0,12}",
            args in prop::collection::vec(arb_json(), 0..4),
            bins in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..3),
        ) {
            let mut payload = Payload::json(args);
            for b in bins {
                payload = payload.binary(b);
            }
            let packet = event_packet(&nsp, id, &name, &payload);
            let text = encode_packet(&packet);
            let decoded = decode_packet(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&decoded, &packet);
            let mut r = Reassembler::new();
            let (violation, mut done) = r.push_packet(decoded);
            prop_assert!(violation.is_none());
            for a in &payload.attachments {
                prop_assert!(done.is_none());
                done = r.push_binary(a.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let (p, att) = done.ok_or_else(|| TestCaseError::fail("not complete"))?;
            let (got_name, got) = split_event(&p, att).map_err(TestCaseError::fail)?;
            prop_assert_eq!(got_name, Some(name));
            prop_assert_eq!(got, payload);
        }
    }
}

//! Socket.IO v5 over Engine.IO v4, spoken on a direct WebSocket, with our own codec on tokio-tungstenite.
//!
//! # Why our own codec
//! The harness must talk to a backend exactly as real clients do (`40{"token":…}`, `421["escrow:subscribe",…]`,
//! binary attachments, heartbeats) and also as abusive ones do: forged CONNECT packets, malformed packets, floods
//! of events, withheld pongs, tokens in the query string (SPEC section 4, RT-1..RT-9). The only Rust client,
//! `rust_socketio` (0.6.0, unreleased since 2024-04), is a callback client with no raw frame access: it cannot
//! send forged, malformed or flooding traffic (see `shared/FACTS.md`). So the protocol is encoded here, and every
//! frame can also be sent as-is.
//!
//! # Layout
//! - [`codec`]: pure encode/decode of Engine.IO and Socket.IO packets and binary reassembly; no I/O, never panics
//!   (proptest over arbitrary input).
//! - [`client`]: [`SocketIoClient`], the connection: WebSocket-only connect
//!   (`GET {base}{path}?EIO=4&transport=websocket[&extra]`), CONNECT with auth to `/` or a named namespace, emits
//!   with and without acks (ids increase from 0), a bounded buffer of server events, automatic pongs with a run-time
//!   switch, detection of DISCONNECT / Engine.IO close / WebSocket close, and raw sends.
//! - [`error`]: [`SocketIoError`]. Every wait is bounded by a [`Timeouts`] entry or an explicit duration and ends
//!   in a typed error, never a hang; frames over [`ClientConfig::max_message_size`] end the connection with
//!   [`SocketIoError::FrameTooLarge`].
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), conform::drive::socketio::SocketIoError> {
//! use conform::drive::socketio::{ClientConfig, SocketIoClient};
//! use serde_json::json;
//! let config = ClientConfig::new("http://127.0.0.1:3000").auth(json!({"token": "…"}));
//! let client = SocketIoClient::connect(config).await?;
//! let ack = client.emit_with_ack("escrow:subscribe", json!({"escrow_id": "e1"})).await?;
//! let update = client.wait_event("escrow:updated", std::time::Duration::from_secs(2)).await?;
//! # let _ = (ack, update); Ok(()) }
//! ```
//!
//! Servers differ in details (FACTS.md): socketioxide pings right after the open packet, sends only `{"message"}`
//! in CONNECT_ERROR and an Engine.IO close before closing; Node closes with 1005 (no status) except 1009 for an
//! oversize frame. Callers should assert meaning (refused, disconnected, closed), not bytes.

pub mod client;
pub mod codec;
pub mod error;

pub use client::{
    ClientConfig, CloseInfo, ConnectAnswer, Disconnection, Event, ServerEvent, SocketIoClient, Stats, Timeouts,
    WsMessage,
};
pub use codec::{OpenPacket, Packet, PacketKind, Payload};
pub use error::SocketIoError;

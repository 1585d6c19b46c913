//! The one error type of the Socket.IO driver.

use serde_json::Value;
use std::time::Duration;

/// Everything that can go wrong talking to a Socket.IO server. Every wait ends in a value of this type or a
/// success; none hangs and none panics. Cloneable, because one end of a connection is reported to every waiter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SocketIoError {
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        after: Duration,
    },
    /// The server answered CONNECT with CONNECT_ERROR.
    #[error("namespace connection refused: {message:?}")]
    ConnectRefused {
        /// The error's `message` (a bare string payload counts as the message).
        message: String,
        /// The error's `data`, when the server sent one (socket.io does on request, socketioxide never).
        data: Option<Value>,
    },
    /// The WebSocket closed. Code 1005: a close frame without status code; 1006: no close frame at all.
    #[error("WebSocket closed with code {code} {reason:?}")]
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The server removed us from the namespace (DISCONNECT) or closed the Engine.IO session.
    #[error("namespace {nsp} disconnected by the server ({reason})")]
    Disconnected {
        /// Namespace.
        nsp: String,
        /// `server DISCONNECT` or `Engine.IO close`.
        reason: String,
    },
    /// The server sent something that is not the protocol.
    #[error("protocol violation: {detail} (frame: {excerpt:?})")]
    Protocol {
        /// What was wrong.
        detail: String,
        /// Start of the offending frame.
        excerpt: String,
    },
    /// The server sent a frame or message over the configured size cap.
    #[error("frame of {size} bytes over the cap of {max} bytes")]
    FrameTooLarge {
        /// Announced size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The server answered the WebSocket upgrade with an HTTP status other than 101.
    #[error("WebSocket upgrade refused with HTTP {status} ({body:?})")]
    HandshakeRejected {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Any other I/O or WebSocket failure (connection refused, garbage instead of HTTP …).
    #[error("transport error: {0}")]
    Transport(String),
    /// The client configuration is unusable (bad URL, header …).
    #[error("invalid configuration: {0}")]
    Config(String),
}

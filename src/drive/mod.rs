//! Drivers: how conform speaks to a target exactly as its real clients and providers do.

pub mod http;
pub mod passkey;
pub mod socketio;
pub mod webhooks;

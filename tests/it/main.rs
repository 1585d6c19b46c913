//! conform's integration tests, in one binary so that they link once.

mod cli;
mod contracts;
mod differential;
mod embedded_realtime;
mod http;
mod passkey;
mod peers;
mod profile;
mod simulate;
mod socketio;

//! conform's integration tests, in one binary so that they link once.

mod cli;
mod contracts;
mod http;
mod passkey;
mod simulate;
mod socketio;
mod embedded_realtime;
mod profile;
mod differential;

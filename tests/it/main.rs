//! conform's integration tests, in one binary so that they link once.

mod cli;
mod contracts;
mod differential;
mod drills;
mod embedded_realtime;
mod features;
mod http;
mod passkey;
mod peers;
mod profile;
mod simulate;
mod socketio;

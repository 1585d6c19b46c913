//! conform's integration tests, in one binary so that they link once.

mod cli;
mod contracts;
mod differential;
mod drills;
mod embedded_realtime;
mod express;
mod features;
mod gate;
mod http;
mod passkey;
mod passkeys;
mod peers;
mod profile;
mod races;
mod realtime;
mod report;
mod secrets;
mod selftest;
mod sessions;
mod simulate;
mod socketio;
mod webhooks;

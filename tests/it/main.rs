//! conform's integration tests, in one binary so that they link once.
mod socketio;
mod contracts;
mod cli;

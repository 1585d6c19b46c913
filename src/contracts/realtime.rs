//! `contracts/realtime.toml`: the Socket.IO contract (SPEC §4), which the realtime driver and suite follow.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The realtime contract.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Realtime {
    /// The Socket.IO namespace the driver connects to.
    pub namespace: String,
    /// The HTTP path of the Engine.IO endpoint.
    pub path: String,
    /// The Engine.IO protocol version the driver speaks.
    pub engine_io_version: u8,
    /// The transports a conforming server must offer; the driver uses only these.
    pub transports: Vec<String>,
    /// How a socket authenticates.
    pub handshake: Handshake,
    /// The `[[room]]` tables: which rooms exist and who is in them.
    pub room: Vec<Room>,
    /// The `[[event]]` tables: every event either side may send.
    pub event: Vec<Event>,
    /// Fields that must never appear in any event payload (RT-9); the driver checks every frame it receives.
    pub forbidden_payload_fields: Vec<String>,
    /// The `[[delivery]]` tables: who receives `escrow:updated`, one per principal class.
    pub delivery: Vec<Delivery>,
    /// The `[[limit]]` tables: rate limits and deadlines the suite measures.
    pub limit: Vec<Limit>,
}

/// How a socket authenticates (RT-1, RT-2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    /// The keys of the CONNECT packet's auth payload, with a description of each value.
    pub auth_payload: BTreeMap<String, String>,
    /// The situations in which the server must answer `CONNECT_ERROR`; the suite tries each.
    pub connect_error_when: Vec<String>,
    /// Whether a token in the query string is accepted (it must not be: query strings end up in logs).
    pub query_token_accepted: bool,
    /// Whether a socket without a session is accepted.
    pub anonymous_sockets: bool,
    /// The rules the handshake carries.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

/// A room the server manages; clients never name rooms (RT-3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Room {
    /// The room's name pattern, e.g. `escrow:{escrow_id}`.
    pub name: String,
    /// When the server puts a socket in it.
    pub joined: String,
    /// Who is in it, so the suite knows who must and must not receive its messages.
    pub members: String,
    /// The rules the room carries.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

/// Who sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The client sends it and the server acknowledges it.
    Client,
    /// The server sends it, without an ack.
    Server,
}

/// One event of the protocol.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The event name on the wire, e.g. `escrow:subscribe`.
    pub name: String,
    /// Who sends it.
    pub direction: Direction,
    /// The abstract operation the event binds, if any, so the matrix row of that operation applies to it.
    pub operation: Option<String>,
    /// The fields of the event's single argument.
    pub payload: Vec<String>,
    /// The ack of a successful client event, e.g. `{ok = true}`; a JSON value because the ack arrives as JSON.
    pub ack_ok: Option<BTreeMap<String, serde_json::Value>>,
    /// The refusal codes a client event may be acknowledged with (`{error: code}`).
    #[serde(default)]
    pub ack_errors: Vec<String>,
    /// Whether a conforming server must send or accept it; an optional event's absence is no finding.
    pub required: bool,
    /// What the event means.
    pub description: String,
    /// The rules the event carries.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

/// Which sockets of a principal receive `escrow:updated` for an escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reception {
    /// Every socket of the principal, subscribed or not.
    Always,
    /// Only sockets that subscribed to the escrow.
    WhenSubscribed,
    /// None: the principal must learn nothing about the escrow.
    Never,
}

/// Who receives `escrow:updated`, for one principal class of the matrix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The principal class (`PrincipalClass::name`).
    pub principal: String,
    /// Which of its sockets receive the event.
    pub escrow_updated: Reception,
    /// What a reader of a failure needs to know.
    pub note: Option<String>,
    /// The rules the row carries.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

/// A rate limit or deadline. Which fields are set depends on the limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// The limit's id, e.g. `rate` or `revocation`.
    pub id: String,
    /// What is limited, for reports.
    pub description: String,
    /// Events per second a socket may send before being refused.
    pub events_per_second: Option<u32>,
    /// How long abuse must last before `action` is taken.
    pub sustained_seconds: Option<u32>,
    /// The deadline within which the server must act.
    pub within_seconds: Option<u32>,
    /// The refusal code acks carry once the limit is hit.
    pub ack_error: Option<String>,
    /// What the server does (e.g. `disconnect`).
    pub action: Option<String>,
    /// The rules the limit carries.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

super::contract_file!(Realtime, "realtime.toml", parse_toml, include_str!("../../contracts/realtime.toml"));

impl Realtime {
    /// The event with this wire name, if any.
    pub fn event(&self, name: &str) -> Option<&Event> {
        self.event.iter().find(|event| event.name == name)
    }

    /// The limit with this id, if any.
    pub fn limit(&self, id: &str) -> Option<&Limit> {
        self.limit.iter().find(|limit| limit.id == id)
    }

    /// The delivery row of a principal class (`PrincipalClass::name`), if any.
    pub fn delivery(&self, principal: &str) -> Option<&Delivery> {
        self.delivery.iter().find(|delivery| delivery.principal == principal)
    }
}

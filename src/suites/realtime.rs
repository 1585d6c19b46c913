//! The realtime suite (SPEC §4, `contracts/realtime.toml`): Socket.IO observers connected as the buyer, the seller,
//! a stranger, support and nobody watch what the target emits while one escrow is driven through the model and the
//! target side by side, and the handshake, the subscription acks, the deliveries, the disconnects and the rate limit
//! are held against the contract and the model.
//!
//! Everything goes through the profile's `[socketio]` dialect (path, namespace, auth payload, subscribe event and
//! payload, ack pointers, updated event and its pointers), so the same checks run against the embedded target
//! (`escrow:subscribe` / `escrow:updated` on `/`) and the TypeScript one (`deal:watch` / `deal:changed` on `/live`).
//!
//! One scenario carries every check, in this order:
//! 1. the cast signs in and the buyer creates an escrow (model and target side by side);
//! 2. handshakes: no token, a malformed token, a live token only in the query string (RT-1, RT-2); then eight
//!    observers connect with live tokens in the auth payload;
//! 3. a burst of [`BURST`] subscriptions from one socket (RT-5); another socket of the same user must stay
//!    unaffected; the flood then goes on in the background at [`FLOOD_BATCH`] events every [`FLOOD_PERIOD`] until the
//!    target disconnects that socket (sustained abuse, RT-5);
//! 4. subscriptions: the buyer and support (allowed), a stranger (refused `not_found`), an escrow that does not exist
//!    (refused `not_found`) and a payload that names its own room (refused, and nothing may arrive on it) (RT-3);
//!    malformed events must get `validation_failed` or be dropped, and another socket must still be answered (RT-8);
//! 5. the escrow is paid and delivered: every participant socket and subscribed support must receive each change
//!    once with the model's id, state and version; the others nothing (RT-4);
//! 6. support is demoted to user; after the 2 s the contract allows, a dispute is opened: the demoted socket must
//!    hear nothing of it (RT-7);
//! 7. the buyer logs out and an admin revokes the seller's sessions: their sockets must be disconnected within 2 s,
//!    and their tokens must not connect again (RT-6);
//! 8. the background flood must have ended with a disconnect of that socket only (RT-5), and no payload received
//!    by any observer may carry a token, a secret or a contact field (RT-9).
//!
//! Every wait is bounded: [`ANSWER_WAIT`] for an answer that must come (CONNECT, ack, an expected update), [`QUIET`]
//! for "receives nothing" (the server emits an update to all its rooms at once, so a leaked copy arrives with the
//! rightful ones; the quiet window starts only once every rightful receiver has its copies), the contract's 2 s plus
//! [`SLACK`] for disconnects, and the contract's 5 s plus [`SUSTAIN_SLACK`] for the sustained flood.
//!
//! [`subscribe_cell`] is the subscription probe of one authorization-matrix cell (`subscribe_escrow` × a principal),
//! which the matrix suite calls.
//!
//! No token appears in a check's name, message or reproduction: every text is passed through [`Redactor`] with
//! every token and secret the suite handled.

use std::time::{Duration, Instant};

use conform_reference::authz::{Parties, Principal, PrincipalClass, Role};
use conform_reference::escrow::EscrowState;
use conform_reference::generate::{EscrowAct, Portion, Step, Who};
use conform_reference::ids::{EscrowId, UserId};
use conform_reference::ledger::Provider;
use conform_reference::ops::OperationKind;
use conform_reference::realtime::{
    DISCONNECT_DEADLINE_SECONDS, EVENTS_PER_SECOND_LIMIT, SUSTAINED_ABUSE_SECONDS, may_subscribe,
};
use conform_reference::refusal::Refusal;
use conform_reference::sessions::AccessToken;
use conform_reference::world::{EscrowUpdate, World};
use serde_json::Value;

use super::{CheckResult, Reporter, Session, reproduction};
use crate::contracts::Cell;
use crate::contracts::realtime::{Realtime, Reception};
use crate::drive::socketio::{ClientConfig, Event, Payload, ServerEvent, SocketIoClient, SocketIoError};
use crate::error::Error;
use crate::oracle::Observed;
use crate::oracle::differential::Differential;
use crate::profile::{OperationBinding, Vars, template};
use crate::report::CheckOutcome;
use crate::report::event::{Failure, ReproStep};

/// The suite's name in reports.
pub const SUITE: &str = "realtime";

/// Bound on a wait for an answer that must come: a CONNECT answer, an ack, an expected update.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// How long sockets that must receive nothing are watched once every rightful receiver has its copies.
pub const QUIET: Duration = Duration::from_millis(400);
/// Added to the contract's disconnect deadline (RT-6, RT-7) for the network and the HTTP answer that caused it.
pub const SLACK: Duration = Duration::from_millis(500);
/// Added to the contract's 5 s of sustained abuse (RT-5): the server's windows need not align with ours.
pub const SUSTAIN_SLACK: Duration = Duration::from_secs(3);
/// How long an ack to a malformed event is awaited: the contract lets the server drop such events, so silence for
/// this long counts as dropped.
pub const DROP_WAIT: Duration = Duration::from_secs(1);
/// Events of the burst: sent within milliseconds, so even a burst that straddles two one-second windows has at
/// least `BURST - 2 × 20` events over the limit.
pub const BURST: usize = 60;
/// Events of each batch of the sustained flood …
pub const FLOOD_BATCH: usize = 25;
/// … one batch per period: 100 events a second, five times the limit.
pub const FLOOD_PERIOD: Duration = Duration::from_millis(250);

/// The cast, by index (`conform_reference::generate::CAST`): the setup creates the cast first, so a cast index is
/// also the model's user id.
const BUYER: u8 = 0;
const SELLER: u8 = 1;
const STRANGER: u8 = 2;
const SUPPORT: u8 = 3;
/// The first admin changes roles.
const ADMIN: u8 = 4;
const SECOND_ADMIN: u8 = 5;
/// The second admin floods: nobody else's deliveries are watched on its sockets, and its staff role plays no part
/// in the rate limit.
const FLOODER: u8 = SECOND_ADMIN;

fn cast_user(actor: u8) -> UserId {
    UserId(u32::from(actor))
}

/// An escrow id no target has given (the adapter uses the same form for unknown references).
const MISSING_ESCROW: &str = "00000000-0000-4000-8000-000000000000";

const ANONYMOUS: &str = "RT-1 a socket without a token is refused with CONNECT_ERROR";
const MALFORMED: &str = "RT-1 a socket with a malformed token is refused with CONNECT_ERROR";
const VALID: &str = "RT-1 sockets with a live access token in the auth payload connect";
const QUERY: &str = "RT-2 an access token in the query string alone does not authenticate";
const MAY_SUBSCRIBE: &str = "RT-3 the buyer and subscribed support may subscribe to the escrow";
const STRANGER_SUBSCRIBE: &str = "RT-3 a stranger's subscription to the escrow is refused with not_found";
const MISSING_SUBSCRIBE: &str = "RT-3 a subscription to an escrow that does not exist is refused with not_found";
const NAMED_ROOM: &str = "RT-3 a room the client names is not joined";
const DELIVERED: &str =
    "RT-4 every change reaches the buyer, the seller and subscribed support once, as the model has it";
const NOT_DELIVERED: &str = "RT-4 a stranger and unsubscribed support receive nothing about the escrow";
const DEMOTED: &str = "RT-7 support demoted to user hears nothing more of the escrow after 2 s";
const LOGOUT: &str = "RT-6 logout disconnects the session's socket within 2 s";
const ADMIN_REVOKE: &str = "RT-6 an admin's revocation disconnects the user's socket within 2 s";
const RECONNECT: &str = "RT-6 a revoked session's token cannot connect again";
const BURST_LIMITED: &str = "RT-5 a burst over 20 events a second gets rate_limited acks";
const OTHER_SOCKET: &str = "RT-5 another socket of the same user is not limited by a burst";
const SUSTAINED: &str = "RT-5 a flood sustained for 5 s disconnects that socket only";
const MALFORMED_EVENTS: &str = "RT-8 malformed events get validation_failed or are dropped, and other sockets carry on";
const NO_SECRETS: &str = "RT-9 events carry no tokens, secrets or contact fields";

/// Every check of the suite, with its rules, in report order.
const CHECKS: &[(&str, &[&str])] = &[
    (ANONYMOUS, &["RT-1"]),
    (MALFORMED, &["RT-1"]),
    (VALID, &["RT-1"]),
    (QUERY, &["RT-2"]),
    (BURST_LIMITED, &["RT-5"]),
    (OTHER_SOCKET, &["RT-5"]),
    (MAY_SUBSCRIBE, &["RT-3", "AZ-2"]),
    (STRANGER_SUBSCRIBE, &["RT-3", "AZ-2", "ESC-20"]),
    (MISSING_SUBSCRIBE, &["RT-3"]),
    (NAMED_ROOM, &["RT-3"]),
    (MALFORMED_EVENTS, &["RT-8"]),
    (DELIVERED, &["RT-4", "ESC-21"]),
    (NOT_DELIVERED, &["RT-4"]),
    (DEMOTED, &["RT-7", "SES-7"]),
    (LOGOUT, &["RT-6", "SES-4"]),
    (ADMIN_REVOKE, &["RT-6"]),
    (RECONNECT, &["RT-6", "RT-1"]),
    (SUSTAINED, &["RT-5"]),
    (NO_SECRETS, &["RT-9"]),
];

/// Runs the suite against the session's target.
pub fn run(session: &mut Session, reporter: &mut Reporter<'_>) -> Result<(), Error> {
    let mut suite = reporter.suite(SUITE, Some(CHECKS.len() as u64))?;
    if CHECKS.iter().any(|(_, rules)| suite.selected(rules, &[SUITE])) {
        for check in observe(session) {
            if suite.selected(&check.rules, &[SUITE]) {
                suite.check(check)?;
            }
        }
    }
    suite.finish()
}

// ---------------------------------------------------------------------------------------------------------------
// The profile's dialect
// ---------------------------------------------------------------------------------------------------------------

/// How the target speaks Socket.IO, from its profile's `[socketio]` section.
pub(crate) struct Dialect {
    url: String,
    path: String,
    namespace: String,
    /// The CONNECT auth payload template (`{access_token}`).
    auth: Option<Value>,
    /// The session cookie's name, when sockets send it on the upgrade.
    cookie: Option<String>,
    /// The `subscribe_escrow` binding (event name in `path`, payload template in `body`).
    subscribe: Result<OperationBinding, String>,
    ack_ok_pointer: String,
    ack_error_pointer: String,
    updated_event: Option<String>,
    updated_id_pointer: String,
    updated_state_pointer: String,
    updated_version_pointer: String,
}

/// A JSON pointer field of `[socketio]`, or its default.
fn pointer_or(field: Option<&toml::Spanned<String>>, default: &str) -> String {
    field.map_or_else(|| default.to_owned(), |p| p.get_ref().clone())
}

impl Dialect {
    /// The dialect, or why no socket can be opened as a user.
    pub(crate) fn of(session: &Session) -> Result<Dialect, String> {
        let profile = session.profile();
        let section = profile.raw().socketio.as_ref().ok_or("the profile has no [socketio] section")?;
        let auth = profile.socketio_auth();
        let cookie = match section.send_cookie {
            false => None,
            true => Some(
                profile
                    .auth()
                    .cookie
                    .as_ref()
                    .map(|c| c.get_ref().clone())
                    .ok_or("[socketio].send_cookie without a session cookie name in [auth]")?,
            ),
        };
        if auth.is_none() && cookie.is_none() {
            return Err("[socketio] says neither how a socket authenticates (auth) nor that it sends the session \
                        cookie (send_cookie)"
                .to_owned());
        }
        let subscribe = profile.operation(OperationKind::SubscribeEscrow).cloned().ok_or_else(|| {
            profile.unsupported_reason(OperationKind::SubscribeEscrow).map_or_else(
                || "the profile binds no subscribe_escrow ([socketio].subscribe_event)".to_owned(),
                |why| format!("the profile declares subscribe_escrow unsupported: {why}"),
            )
        });
        Ok(Dialect {
            url: session.launched.socketio_url.clone(),
            path: section.path.clone().unwrap_or_else(|| "/socket.io/".to_owned()),
            namespace: section.namespace.clone().unwrap_or_else(|| "/".to_owned()),
            auth,
            cookie,
            subscribe,
            ack_ok_pointer: pointer_or(section.ack_ok_pointer.as_ref(), "/ok"),
            ack_error_pointer: pointer_or(section.ack_error_pointer.as_ref(), "/error"),
            updated_event: section.updated_event.clone(),
            updated_id_pointer: pointer_or(section.updated_escrow_id_pointer.as_ref(), "/escrow_id"),
            updated_state_pointer: pointer_or(section.updated_state_pointer.as_ref(), "/state"),
            updated_version_pointer: pointer_or(section.updated_version_pointer.as_ref(), "/version"),
        })
    }

    fn base(&self) -> ClientConfig {
        ClientConfig::new(&self.url).path(&self.path).namespace(&self.namespace).timeout(ANSWER_WAIT)
    }

    /// A socket authenticated as the profile says (auth payload and/or cookie); `None` is a socket with neither.
    pub(crate) fn config(&self, token: Option<&str>) -> ClientConfig {
        let mut config = self.base();
        let Some(token) = token else { return config };
        if let Some(auth) = &self.auth
            && let Ok(Some(payload)) = template::render_json(auth, &Vars::new().with("access_token", token))
        {
            config = config.auth(payload);
        }
        if let Some(cookie) = &self.cookie {
            config = config.header("Cookie", format!("{cookie}={token}"));
        }
        config
    }

    /// A socket that carries the token only in the query string: under `token`, and under every key of the auth
    /// payload that carries it (`accessToken` …), with no auth payload and no cookie (RT-2).
    fn query_only(&self, token: &str) -> ClientConfig {
        let mut keys = vec!["token".to_owned()];
        if let Some(Value::Object(fields)) = &self.auth {
            keys.extend(fields.iter().filter(|(_, v)| v.as_str() == Some("{access_token}")).map(|(k, _)| k.clone()));
        }
        keys.dedup();
        keys.into_iter().fold(self.base(), |config, key| config.query(key, token))
    }

    fn subscribe(&self) -> Result<&OperationBinding, String> {
        self.subscribe.as_ref().map_err(Clone::clone)
    }

    /// The subscribe event's name and payload for a target escrow id.
    fn subscription(&self, escrow_id: &str) -> Result<(String, Value), String> {
        let binding = self.subscribe()?;
        let rendered = binding.render(&Vars::new().with("escrow_id", escrow_id)).map_err(|e| e.to_string())?;
        Ok((binding.path.clone(), rendered.body.unwrap_or(Value::Null)))
    }

    /// What an ack says, in the target's words.
    fn ack(&self, ack: &Payload) -> Ack {
        let Some(value) = ack.args.first() else { return Ack::Unclear("an ack without arguments".to_owned()) };
        if value.pointer(&self.ack_ok_pointer) == Some(&Value::Bool(true)) {
            return Ack::Ok;
        }
        match value.pointer(&self.ack_error_pointer) {
            Some(Value::String(code)) => Ack::Error(code.clone()),
            _ => Ack::Unclear(format!("an ack that is neither ok nor an error: {}", excerpt(value))),
        }
    }

    /// The escrow update an event reports, when it is the updated event.
    fn update(&self, event: &Event) -> Option<Update> {
        if Some(&event.name) != self.updated_event.as_ref() {
            return None;
        }
        let payload = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let text = |pointer: &str| match payload.pointer(pointer) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Some(Update {
            escrow_id: text(&self.updated_id_pointer),
            state: text(&self.updated_state_pointer),
            version: text(&self.updated_version_pointer).and_then(|v| v.parse().ok()),
        })
    }
}

/// An ack in the target's words.
#[derive(Debug, Clone, PartialEq)]
enum Ack {
    Ok,
    Error(String),
    Unclear(String),
}

/// An update event as the target sent it.
#[derive(Debug, Clone, PartialEq)]
struct Update {
    escrow_id: Option<String>,
    /// The target's state name.
    state: Option<String>,
    version: Option<u64>,
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// An ack as a matrix cell, through the profile's error codes; `Err` when it says neither.
fn ack_cell(session: &Session, ack: &Ack) -> Result<Cell, String> {
    match ack {
        Ack::Ok => Ok(Cell::Allow),
        Ack::Error(code) => session
            .profile()
            .canonical_error_code(code)
            .map(Cell::Refuse)
            .ok_or_else(|| format!("an ack with the error code {code:?}, which [errors.codes] does not map")),
        Ack::Unclear(why) => Err(why.clone()),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------------------------

/// The end of a CONNECT.
pub(crate) enum Connect {
    Accepted(Box<SocketIoClient>),
    /// CONNECT_ERROR, with its message.
    Refused(String),
    /// Refused otherwise (upgrade refused, closed), or no answer.
    Failed(SocketIoError),
}

pub(crate) async fn connect(config: ClientConfig) -> Connect {
    match SocketIoClient::connect(config).await {
        Ok(client) => Connect::Accepted(Box::new(client)),
        Err(SocketIoError::ConnectRefused { message, .. }) => Connect::Refused(message),
        Err(e) => Connect::Failed(e),
    }
}

/// Whether an error means the server refused (rather than did not answer).
pub(crate) fn is_refusal(e: &SocketIoError) -> bool {
    matches!(
        e,
        SocketIoError::ConnectRefused { .. }
            | SocketIoError::HandshakeRejected { .. }
            | SocketIoError::Closed { .. }
            | SocketIoError::Disconnected { .. }
    )
}

/// A connected socket and what it received, by phase of the scenario.
struct Observer {
    label: &'static str,
    client: SocketIoClient,
    events: Vec<(usize, Event)>,
}

impl Observer {
    /// Moves what arrived into the log, as received during `phase`.
    async fn drain(&mut self, phase: usize) {
        for item in self.client.events_for(Duration::ZERO).await {
            if let ServerEvent::Event(event) = item {
                self.events.push((phase, event));
            }
        }
    }

    /// Updates received during `phase`.
    fn updates(&self, dialect: &Dialect, phase: usize) -> Vec<Update> {
        self.events.iter().filter(|(p, _)| *p == phase).filter_map(|(_, e)| dialect.update(e)).collect()
    }

    /// Every update received.
    fn all_updates(&self, dialect: &Dialect) -> Vec<Update> {
        self.events.iter().filter_map(|(_, e)| dialect.update(e)).collect()
    }

    /// Waits until `count` updates arrived during `phase`, or `deadline`, or the socket ends.
    async fn await_updates(&mut self, dialect: &Dialect, phase: usize, count: usize, deadline: Instant) {
        while self.updates(dialect, phase).len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.client.next_event_within(left).await {
                Ok(ServerEvent::Event(event)) => self.events.push((phase, event)),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Subscribes to `escrow_id`, with extra payload fields; the ack in the target's words.
    async fn subscribe(&self, dialect: &Dialect, escrow_id: &str, extra: &[(&str, Value)]) -> Result<Ack, String> {
        let (event, mut payload) = dialect.subscription(escrow_id)?;
        if let Value::Object(fields) = &mut payload {
            fields.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        }
        match self.client.emit_with_ack_timeout(&event, payload, ANSWER_WAIT).await {
            Ok(ack) => Ok(dialect.ack(&ack)),
            Err(e) => Err(format!("no ack from the {}'s socket: {e}", self.label)),
        }
    }
}

/// Floods `client` with `event` until the server disconnects it or `bound` passes; the time it took.
async fn sustain_flood(
    client: SocketIoClient,
    event: String,
    payload: Value,
    bound: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if client.flood(&event, payload.clone(), FLOOD_BATCH, false).await.is_err() {
            // The socket is gone: the wait below says how.
        }
        match client.wait_disconnect(FLOOD_PERIOD).await {
            Ok(_) => return Ok(started.elapsed()),
            Err(SocketIoError::Timeout { .. }) => {}
            Err(e) => return Err(format!("the flooding socket failed otherwise: {e}")),
        }
    }
    Err(format!("still connected after {} ms of {} events a second", bound.as_millis(), per_second()))
}

fn per_second() -> u128 {
    FLOOD_BATCH as u128 * 1000 / FLOOD_PERIOD.as_millis()
}

// ---------------------------------------------------------------------------------------------------------------
// Verdicts and redaction
// ---------------------------------------------------------------------------------------------------------------

/// A check's result before it becomes a [`CheckResult`].
enum Verdict {
    Pass,
    Fail { message: String, expected: String, observed: String },
    Unverified(String),
}

fn fail(message: impl Into<String>, expected: impl Into<String>, observed: impl Into<String>) -> Verdict {
    Verdict::Fail { message: message.into(), expected: expected.into(), observed: observed.into() }
}

/// Replaces every token and secret the suite handled by `<token>` in a text meant for a report.
#[derive(Default)]
struct Redactor(Vec<String>);

impl Redactor {
    fn add(&mut self, secret: &str) {
        // Short strings would blank ordinary words; no real token or key is this short.
        if secret.len() >= 8 && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_owned());
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    fn apply(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "<token>"))
    }

    /// Whether `text` holds one of the secrets.
    fn leaks(&self, text: &str) -> bool {
        self.0.iter().any(|s| text.contains(s.as_str()))
    }
}

/// The checks as they are decided, with the steps that led to each.
struct Recorder {
    redact: Redactor,
    journal: Vec<ReproStep>,
    checks: Vec<CheckResult>,
    started: Instant,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder { redact: Redactor::default(), journal: Vec::new(), checks: Vec::new(), started: Instant::now() }
    }

    /// A socket action in the reproduction.
    fn note(&mut self, request: impl Into<String>, expected: impl Into<String>, observed: impl Into<String>) {
        let step = ReproStep {
            request: self.redact.apply(&request.into()),
            expected: self.redact.apply(&expected.into()),
            observed: self.redact.apply(&observed.into()),
        };
        self.journal.push(step);
    }

    /// A verdict as a report's outcome, redacted, with the journal so far as its reproduction.
    fn outcome(&self, verdict: Verdict) -> CheckOutcome {
        match verdict {
            Verdict::Pass => CheckOutcome::Passed,
            Verdict::Unverified(reason) => CheckOutcome::Unverified { reason: self.redact.apply(&reason) },
            Verdict::Fail { message, expected, observed } => CheckOutcome::Failed(Failure {
                message: self.redact.apply(&message),
                expected: self.redact.apply(&expected),
                observed: self.redact.apply(&observed),
                seed: None,
                reproduction: self.journal.clone(),
                file: None,
                replay: None,
            }),
        }
    }

    fn record(&mut self, name: &'static str, verdict: Verdict) {
        let rules = CHECKS.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, rules)| *rules);
        let outcome = self.outcome(verdict);
        let mut check = CheckResult::new(name, rules.iter().copied(), outcome);
        check.extra_tags = vec![SUITE];
        check.duration_ms = self.started.elapsed().as_millis() as u64;
        self.checks.push(check);
        self.started = Instant::now();
    }

    /// Every check not decided yet, unverified for `reason`.
    fn rest_unverified(&mut self, reason: &str) {
        for (name, _) in CHECKS {
            if !self.checks.iter().any(|c| c.name == *name) {
                self.record(name, Verdict::Unverified(reason.to_owned()));
            }
        }
    }

    /// The checks in report order.
    fn finish(mut self) -> Vec<CheckResult> {
        self.checks.sort_by_key(|c| CHECKS.iter().position(|(n, _)| *n == c.name));
        self.checks
    }
}

/// Runs one step side by side on the model and the target; the escrow updates the model announced. `Err` when
/// the step could not be taken as the model has it (a difference is the REST suites' finding; here it only means
/// the realtime claims cannot be judged).
fn drive(
    session: &mut Session,
    d: &mut Differential,
    step: &Step,
    recorder: &mut Recorder,
) -> Result<Vec<EscrowUpdate>, String> {
    let before = d.run().trace.len();
    session.step(d, step);
    let mut updates = Vec::new();
    for exchange in &d.run().trace[before..] {
        if let Observed::Unknown { reason } = &exchange.observed {
            return Err(format!("the target could not take the step {step:?}: {reason}"));
        }
    }
    recorder.journal.extend(reproduction(&d.run().trace[before..]));
    if let Some(finding) = &d.run().finding {
        return Err(format!(
            "the target parted from the model at {step:?} ({}), which the REST suites report",
            finding.difference.rules.join(", ")
        ));
    }
    // The model's announcements of the step's own call (a preparation, such as a sign-in, changes no escrow).
    updates.extend_from_slice(d.model().last_updates());
    Ok(updates)
}

/// The model's subscription decision for the holder of `token` (anonymous without one) on `escrow`.
fn model_decision(model: &World, token: Option<AccessToken>, escrow: Option<EscrowId>) -> Cell {
    let principal = token
        .and_then(|t| model.sessions().authenticate(t, model.now()).ok())
        .and_then(|a| {
            let role = model.user(a.user)?.role;
            Some(Principal::Signed { user: a.user, role, step_up_at: a.step_up_at })
        })
        .unwrap_or(Principal::Anonymous);
    let parties = escrow.and_then(|e| model.escrow(e)).map(|e| Parties { buyer: e.buyer, seller: e.seller });
    match may_subscribe(&principal, parties, model.now()) {
        Ok(()) => Cell::Allow,
        Err(refusal) => Cell::Refuse(refusal),
    }
}

/// The model's updates as the target must send them.
fn describe_updates(updates: &[(String, EscrowState, u64)]) -> String {
    if updates.is_empty() {
        return "nothing".to_owned();
    }
    updates.iter().map(|(id, state, version)| format!("{id} {state} v{version}")).collect::<Vec<_>>().join(", ")
}

fn describe_received(updates: &[Update]) -> String {
    if updates.is_empty() {
        return "nothing".to_owned();
    }
    let part = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    updates
        .iter()
        .map(|u| {
            format!(
                "{} {} v{}",
                part(&u.escrow_id),
                part(&u.state),
                u.version.map_or("?".to_owned(), |v| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------------------------------

fn observe(session: &mut Session) -> Vec<CheckResult> {
    let mut recorder = Recorder::new();
    recorder.redact.add(&session.simulators.shkeeper.config().api_key.clone());
    match Dialect::of(session) {
        Err(reason) => recorder.rest_unverified(&reason),
        Ok(dialect) => {
            if let Err(reason) = scenario(session, &dialect, &mut recorder) {
                recorder.rest_unverified(&reason);
            }
        }
    }
    recorder.finish()
}

/// Who must receive the escrow's updates, per the contract's `[[delivery]]` table.
fn reception(contract: &Realtime, class: PrincipalClass) -> Reception {
    contract.delivery.iter().find(|d| d.principal == class.name()).map_or(Reception::Never, |d| d.escrow_updated)
}

#[allow(clippy::too_many_lines)]
fn scenario(session: &mut Session, dialect: &Dialect, rec: &mut Recorder) -> Result<(), String> {
    let contract = Realtime::embedded().map_err(|e| format!("the realtime contract does not load: {e}"))?;
    let mut d = session.begin();
    for actor in [BUYER, SELLER, STRANGER, SUPPORT, FLOODER] {
        drive(session, &mut d, &Step::SignIn { actor, password_ok: true }, rec)?;
    }
    let create = Step::Create {
        buyer: BUYER,
        seller: SELLER,
        major: 100,
        currency: 0,
        provider: Provider::Shkeeper,
        extra: None,
    };
    let created = drive(session, &mut d, &create, rec)?;
    let escrow = created.first().map(|u| u.escrow).ok_or("the model created no escrow")?;
    let escrow_id =
        session.adapter.target_escrow_id(escrow).ok_or("the target's id of the escrow is unknown")?.to_owned();
    let mut tokens = Vec::new();
    for actor in [BUYER, SELLER, STRANGER, SUPPORT, FLOODER] {
        let token = session
            .adapter
            .live_access_token(d.model(), cast_user(actor))
            .ok_or_else(|| format!("cast member {actor} has no live session"))?;
        rec.redact.add(&token.1);
        tokens.push(token);
    }
    let [buyer, seller, stranger, support, flooder] =
        <[(AccessToken, String); 5]>::try_from(tokens).map_err(|_| "five tokens were collected".to_owned())?;

    // Handshakes (RT-1, RT-2).
    for (name, token, what) in [
        (ANONYMOUS, None, "a socket without a token"),
        (MALFORMED, Some("not-a-valid-access-token"), "a socket with a malformed token"),
    ] {
        let answer = session.block_on(connect(dialect.config(token)));
        let verdict = match answer {
            Connect::Refused(message) => {
                rec.note(format!("connect {what}"), "CONNECT_ERROR", format!("CONNECT_ERROR {message:?}"));
                Verdict::Pass
            }
            Connect::Accepted(_) => {
                rec.note(format!("connect {what}"), "CONNECT_ERROR", "accepted");
                fail(format!("{what} was accepted"), "CONNECT_ERROR", "the CONNECT was accepted")
            }
            Connect::Failed(e) if is_refusal(&e) => {
                rec.note(format!("connect {what}"), "CONNECT_ERROR", e.to_string());
                fail(format!("{what} was refused without CONNECT_ERROR"), "CONNECT_ERROR", e.to_string())
            }
            Connect::Failed(e) => Verdict::Unverified(format!("no answer to the CONNECT: {e}")),
        };
        rec.record(name, verdict);
    }
    let answer = session.block_on(connect(dialect.query_only(&stranger.1)));
    let verdict = match answer {
        Connect::Refused(_) => Verdict::Pass,
        Connect::Failed(e) if is_refusal(&e) => Verdict::Pass,
        Connect::Accepted(_) => {
            rec.note("connect with the stranger's live token in the query string only", "refused", "accepted");
            fail("a socket authenticated by a token in its query string", "CONNECT_ERROR", "the CONNECT was accepted")
        }
        Connect::Failed(e) => Verdict::Unverified(format!("no answer to the CONNECT: {e}")),
    };
    rec.record(QUERY, verdict);

    // The observers.
    let mut observers = Vec::new();
    for (label, token) in [
        ("buyer", &buyer),
        ("seller", &seller),
        ("stranger", &stranger),
        ("stranger naming a room", &stranger),
        ("subscribed support", &support),
        ("unsubscribed support", &support),
        ("flooding admin", &flooder),
        ("other socket of the flooding admin", &flooder),
    ] {
        match session.block_on(connect(dialect.config(Some(&token.1)))) {
            Connect::Accepted(client) => observers.push(Observer { label, client: *client, events: Vec::new() }),
            Connect::Refused(message) => {
                rec.note(
                    format!("connect as the {label} with a live token"),
                    "accepted",
                    format!("CONNECT_ERROR {message:?}"),
                );
                rec.record(
                    VALID,
                    fail(
                        format!("the {label}'s live token was refused"),
                        "accepted",
                        format!("CONNECT_ERROR {message:?}"),
                    ),
                );
                return Err(format!("the {label}'s socket was refused"));
            }
            Connect::Failed(e) => return Err(format!("the {label}'s socket did not connect: {e}")),
        }
        rec.note(format!("connect as the {label} with a live token in the auth payload"), "accepted", "accepted");
    }
    rec.record(VALID, Verdict::Pass);
    let flooding = observers.pop().map(|o| o.client).ok_or("no flooding socket")?;
    let mut calm = observers.pop().ok_or("no calm socket")?;
    let mut observers = observers;
    let [o_buyer, o_seller, o_stranger, o_named, o_support, o_unsub] = [0, 1, 2, 3, 4, 5];

    // RT-5: a burst, and another socket of the same user.
    let (sub_event, missing_payload) = dialect.subscription(MISSING_ESCROW)?;
    let burst = session.block_on(async {
        let ids = flooding.flood(&sub_event, missing_payload.clone(), BURST, true).await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + ANSWER_WAIT;
        let mut acks = Vec::new();
        for id in ids {
            let left = deadline.saturating_duration_since(Instant::now());
            acks.push(flooding.wait_ack(id, left).await.ok().map(|a| dialect.ack(&a)));
        }
        let other = calm.subscribe(dialect, MISSING_ESCROW, &[]).await;
        Ok::<_, String>((acks, other))
    });
    let (acks, other) = burst?;
    let limited =
        acks.iter().flatten().filter(|a| ack_cell(session, a) == Ok(Cell::Refuse(Refusal::RateLimited))).count();
    let unanswered = acks.iter().filter(|a| a.is_none()).count();
    let least = BURST - 2 * EVENTS_PER_SECOND_LIMIT as usize;
    rec.note(
        format!("emit {BURST} subscriptions from one socket within milliseconds"),
        format!("at least {least} acks rate_limited"),
        format!("{limited} rate_limited, {unanswered} unanswered"),
    );
    rec.record(
        BURST_LIMITED,
        if limited >= least {
            Verdict::Pass
        } else {
            fail(
                format!("{limited} of {BURST} events sent at once were rate-limited"),
                format!("at least {least} acks {{error: rate_limited}}"),
                format!("{limited} rate_limited, {unanswered} without an ack"),
            )
        },
    );
    let verdict = match other.map(|a| ack_cell(session, &a)) {
        Ok(Ok(Cell::Refuse(Refusal::RateLimited))) => {
            fail("another socket of the same user was rate-limited by the burst", "not_found", "rate_limited")
        }
        Ok(Ok(_)) => Verdict::Pass,
        Ok(Err(why)) | Err(why) => Verdict::Unverified(why),
    };
    rec.note("subscribe from another socket of the same user right after", "not rate_limited", "see the check");
    rec.record(OTHER_SOCKET, verdict);
    let sustained_bound = Duration::from_secs(u64::from(SUSTAINED_ABUSE_SECONDS)) + SUSTAIN_SLACK;
    // Spawned on the session's runtime, so the flood goes on while the other checks run; joined at the end.
    #[allow(clippy::async_yields_async)]
    let sustained = session.block_on(async {
        tokio::spawn(sustain_flood(flooding, sub_event.clone(), missing_payload.clone(), sustained_bound))
    });

    // RT-3: subscriptions.
    let room = Value::String(format!("escrow:{escrow_id}"));
    let mut answers = Vec::new();
    for (observer, target, extra, token) in [
        (o_buyer, escrow_id.as_str(), None, Some(buyer.0)),
        (o_support, escrow_id.as_str(), None, Some(support.0)),
        (o_stranger, escrow_id.as_str(), None, Some(stranger.0)),
        (o_stranger, MISSING_ESCROW, None, Some(stranger.0)),
        (o_named, escrow_id.as_str(), Some(room.clone()), Some(stranger.0)),
    ] {
        let extra: Vec<(&str, Value)> = extra.into_iter().map(|r| ("room", r)).collect();
        let ack = session.block_on(observers[observer].subscribe(dialect, target, &extra));
        let observed = ack.and_then(|a| ack_cell(session, &a));
        let known = (target != MISSING_ESCROW).then_some(escrow);
        let expected = model_decision(d.model(), token, known);
        let what = if target == MISSING_ESCROW { "an escrow that does not exist" } else { "the escrow" };
        let with = if extra.is_empty() { String::new() } else { " naming the room escrow:<id>".to_owned() };
        rec.note(
            format!("the {} subscribes to {what}{with}", observers[observer].label),
            expected.to_string(),
            observed.as_ref().map_or_else(Clone::clone, ToString::to_string),
        );
        answers.push((observers[observer].label, expected, observed));
    }
    let judge = |answers: &[(&str, Cell, Result<Cell, String>)], also: &[Cell]| {
        for (label, expected, observed) in answers {
            match observed {
                Err(why) => return Verdict::Unverified(why.clone()),
                Ok(cell) if cell == expected || also.contains(cell) => {}
                Ok(cell) => {
                    return fail(
                        format!("the {label}'s subscription was answered {cell}"),
                        expected.to_string(),
                        cell.to_string(),
                    );
                }
            }
        }
        Verdict::Pass
    };
    rec.record(MAY_SUBSCRIBE, judge(&answers[0..2], &[]));
    rec.record(STRANGER_SUBSCRIBE, judge(&answers[2..3], &[]));
    rec.record(MISSING_SUBSCRIBE, judge(&answers[3..4], &[]));
    // A payload with a field the dialect does not have may also be refused as invalid.
    let named_ack = judge(&answers[4..5], &[Cell::Refuse(Refusal::ValidationFailed)]);

    // RT-8: malformed events from the stranger's socket, then another socket must still be answered.
    let mut malformed = Verdict::Pass;
    for (event, payload, what) in [
        (sub_event.as_str(), Value::from(42), "a subscription whose payload is a number"),
        ("conform:no-such-event", Value::Null, "an event the protocol does not have"),
    ] {
        let client = &observers[o_stranger].client;
        let answer = session.block_on(client.emit_with_ack_timeout(event, payload, DROP_WAIT));
        let observed = match &answer {
            Ok(ack) => ack_cell(session, &dialect.ack(ack)).map_or_else(|why| why, |cell| cell.to_string()),
            Err(e) => e.to_string(),
        };
        rec.note(format!("the stranger emits {what}, with an ack id"), "validation_failed, or dropped", &observed);
        let verdict = match answer {
            // Dropped (or the socket closed: the server may close the offender only).
            Err(SocketIoError::Timeout { .. } | SocketIoError::Disconnected { .. } | SocketIoError::Closed { .. }) => {
                Verdict::Pass
            }
            Err(e) => Verdict::Unverified(format!("{what}: {e}")),
            Ok(ack) => match ack_cell(session, &dialect.ack(&ack)) {
                Ok(Cell::Refuse(Refusal::ValidationFailed)) => Verdict::Pass,
                Ok(cell) => {
                    fail(format!("{what} was answered {cell}"), "validation_failed, or dropped", cell.to_string())
                }
                Err(why) => Verdict::Unverified(why),
            },
        };
        if matches!(malformed, Verdict::Pass) {
            malformed = verdict;
        }
    }
    let carries_on = session.block_on(calm.subscribe(dialect, MISSING_ESCROW, &[])).and_then(|a| ack_cell(session, &a));
    rec.note(
        "another socket subscribes to an escrow that does not exist",
        "not_found",
        carries_on.as_ref().map_or_else(Clone::clone, ToString::to_string),
    );
    if let (Verdict::Pass, Err(why)) = (&malformed, &carries_on) {
        malformed = fail("after malformed events from one socket, another socket got no answer", "not_found", why);
    }
    rec.record(MALFORMED_EVENTS, malformed);

    // RT-4: the escrow is paid and delivered.
    let mut expected_phase1 = Vec::new();
    for step in [
        Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::StartPayment },
        Step::Pay { escrow: 0, portion: Portion::Due, wrong_currency: false, event: 0, authentic: true },
        Step::Act { escrow: 0, who: Who::Seller, act: EscrowAct::MarkDelivered },
    ] {
        expected_phase1.extend(drive(session, &mut d, &step, rec)?);
    }
    let as_target = |updates: &[EscrowUpdate]| -> Vec<(String, EscrowState, u64)> {
        updates.iter().filter(|u| u.escrow == escrow).map(|u| (escrow_id.clone(), u.state, u.version)).collect()
    };
    let phase1 = as_target(&expected_phase1);
    let must = |class| reception(&contract, class);
    // Who must receive, per observer: participants always, support when subscribed, strangers never.
    let receives = |observer: usize| match observer {
        o if o == o_buyer => must(PrincipalClass::Buyer) != Reception::Never,
        o if o == o_seller => must(PrincipalClass::Seller) != Reception::Never,
        o if o == o_support => must(PrincipalClass::Support) != Reception::Never,
        o if o == o_unsub => must(PrincipalClass::Support) == Reception::Always,
        _ => must(PrincipalClass::Stranger) == Reception::Always,
    };
    session.block_on(settle(&mut observers, dialect, 1, phase1.len(), &receives));

    // RT-7: support is demoted; after the contract's 2 s, a change must no longer reach its subscribed socket.
    let deadline = Duration::from_secs(DISCONNECT_DEADLINE_SECONDS as u64);
    // A role change needs an admin who stepped up (AZ-6); the first admin does.
    let demoted = drive(session, &mut d, &Step::StepUp { actor: ADMIN, ok: true }, rec)
        .and_then(|_| drive(session, &mut d, &Step::ChangeRole { target: SUPPORT, role: Role::User }, rec))
        .map(|_| d.model().user(cast_user(SUPPORT)).map(|u| u.role) == Some(Role::User));
    std::thread::sleep(deadline);
    rec.note("wait 2 s", "", "");
    let dispute = Step::Act { escrow: 0, who: Who::Buyer, act: EscrowAct::OpenDispute };
    let phase2 = as_target(&drive(session, &mut d, &dispute, rec)?);
    let receives_after_demotion = |observer: usize| observer != o_support && receives(observer);
    session.block_on(settle(&mut observers, dialect, 2, phase2.len(), &receives_after_demotion));

    // RT-4 verdicts.
    let canonical = |u: &Update| -> (Option<String>, Option<EscrowState>, Option<u64>) {
        (u.escrow_id.clone(), u.state.as_deref().and_then(|s| session.profile().canonical_state(s)), u.version)
    };
    let same = |got: &[Update], want: &[(String, EscrowState, u64)]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, (id, state, version))| canonical(g) == (Some(id.clone()), Some(*state), Some(*version)))
    };
    let mut delivered = Verdict::Pass;
    let mut not_delivered = Verdict::Pass;
    for (index, observer) in observers.iter().enumerate() {
        for (phase, want) in [(1, &phase1), (2, &phase2)] {
            let got = observer.updates(dialect, phase);
            let must_receive = if phase == 1 { receives(index) } else { receives_after_demotion(index) };
            if index == o_support && phase == 2 {
                continue; // RT-7, below
            }
            if must_receive && !same(&got, want) && matches!(delivered, Verdict::Pass) {
                rec.note(format!("the {} watches", observer.label), describe_updates(want), describe_received(&got));
                delivered = fail(
                    format!("the {}'s socket did not receive each change once as the model has it", observer.label),
                    describe_updates(want),
                    describe_received(&got),
                );
            }
            if !must_receive && !got.is_empty() && matches!(not_delivered, Verdict::Pass) {
                rec.note(format!("the {} watches", observer.label), "nothing", describe_received(&got));
                not_delivered = fail(
                    format!("the {}'s socket received updates of an escrow it may not see", observer.label),
                    "nothing",
                    describe_received(&got),
                );
            }
        }
    }
    rec.record(DELIVERED, delivered);
    rec.record(NOT_DELIVERED, not_delivered);
    let named_got = observers[o_named].all_updates(dialect);
    rec.record(
        NAMED_ROOM,
        match named_ack {
            Verdict::Pass if !named_got.is_empty() => fail(
                "a socket that named its own room received the escrow's updates",
                "nothing",
                describe_received(&named_got),
            ),
            other => other,
        },
    );
    let support_after = observers[o_support].updates(dialect, 2);
    let verdict = match demoted {
        Err(why) => Verdict::Unverified(why),
        Ok(false) => Verdict::Unverified("the model did not demote support (the change was held)".to_owned()),
        Ok(true) if support_after.is_empty() => Verdict::Pass,
        Ok(true) => {
            rec.note("the demoted support's socket watches", "nothing", describe_received(&support_after));
            fail(
                "a socket of support demoted to user still received the escrow's updates 2 s after the change",
                "nothing",
                describe_received(&support_after),
            )
        }
    };
    rec.record(DEMOTED, verdict);

    // RT-6: logout and an admin's revocation.
    let bound = deadline + SLACK;
    for (name, step, observer, token, what) in [
        (LOGOUT, Step::Logout { actor: BUYER }, o_buyer, &buyer, "the buyer logs out"),
        (
            ADMIN_REVOKE,
            Step::RevokeSessions { target: SELLER },
            o_seller,
            &seller,
            "an admin revokes the seller's sessions",
        ),
    ] {
        // A revocation of another user's sessions is the second admin's, stepped up (AZ-6).
        let prepared = match step {
            Step::RevokeSessions { .. } => drive(session, &mut d, &Step::StepUp { actor: SECOND_ADMIN, ok: true }, rec),
            _ => Ok(Vec::new()),
        };
        let verdict = match prepared.and_then(|_| drive(session, &mut d, &step, rec)) {
            Err(why) => Verdict::Unverified(why),
            Ok(_)
                if model_decision(d.model(), Some(token.0), Some(escrow)) != Cell::Refuse(Refusal::Unauthenticated) =>
            {
                Verdict::Unverified(format!("the model did not revoke the session when {what}"))
            }
            Ok(_) => {
                let started = Instant::now();
                let ended = session.block_on(observers[observer].client.wait_disconnect(bound));
                let after = started.elapsed().as_millis();
                match ended {
                    Ok(how) => {
                        rec.note(
                            format!("{what}; their socket"),
                            "disconnected within 2 s",
                            format!("{how:?} after {after} ms"),
                        );
                        Verdict::Pass
                    }
                    Err(e) => {
                        rec.note(format!("{what}; their socket"), "disconnected within 2 s", e.to_string());
                        fail(
                            format!("the socket stayed connected after {what}"),
                            "a disconnect within 2 s",
                            format!("still connected after {} ms", bound.as_millis()),
                        )
                    }
                }
            }
        };
        rec.record(name, verdict);
    }
    let mut reconnect = Verdict::Pass;
    for (token, label) in [(&buyer, "the buyer"), (&seller, "the seller")] {
        if model_decision(d.model(), Some(token.0), Some(escrow)) != Cell::Refuse(Refusal::Unauthenticated) {
            reconnect = Verdict::Unverified(format!("the model did not revoke {label}'s session"));
            break;
        }
        let answer = session.block_on(connect(dialect.config(Some(&token.1))));
        if let Connect::Accepted(_) = answer {
            rec.note(format!("connect with {label}'s revoked token"), "CONNECT_ERROR", "accepted");
            reconnect = fail(format!("{label}'s revoked token connected again"), "CONNECT_ERROR", "accepted");
            break;
        }
        if let Connect::Failed(e) = &answer
            && !is_refusal(e)
        {
            reconnect = Verdict::Unverified(format!("no answer to the CONNECT: {e}"));
        }
    }
    rec.record(RECONNECT, reconnect);

    // RT-5: the sustained flood.
    let flood = session.block_on(sustained).map_err(|e| format!("the flooding task failed: {e}"))?;
    let still = session.block_on(calm.subscribe(dialect, MISSING_ESCROW, &[])).and_then(|a| ack_cell(session, &a));
    rec.note(
        format!("flood {} events a second from one socket", per_second()),
        "disconnected after 5 s, the same user's other socket carries on",
        format!(
            "{:?}; other socket: {}",
            flood.as_ref().map(|t| t.as_millis()),
            still.as_ref().map_or_else(Clone::clone, ToString::to_string)
        ),
    );
    rec.record(
        SUSTAINED,
        match (flood, still) {
            (Err(why), _) => {
                fail("a socket flooding without pause was not disconnected", "a disconnect after 5 s", why)
            }
            (Ok(_), Ok(Cell::Refuse(Refusal::RateLimited))) | (Ok(_), Err(_)) if calm.client.is_closed() => fail(
                "the flooding user's other socket was disconnected too",
                "only the flooding socket disconnected",
                "the other socket is closed",
            ),
            (Ok(_), Ok(Cell::Refuse(Refusal::RateLimited))) => fail(
                "the flooding user's other socket is rate-limited",
                "only the flooding socket limited",
                "rate_limited",
            ),
            (Ok(_), Err(why)) => Verdict::Unverified(why),
            (Ok(_), Ok(_)) => Verdict::Pass,
        },
    );

    // RT-9: every payload received.
    for observer in observers.iter_mut().chain(std::iter::once(&mut calm)) {
        session.block_on(observer.drain(3));
    }
    let forbidden: Vec<String> = contract.forbidden_payload_fields.iter().map(|f| normalize(f)).collect();
    let mut leak = Verdict::Pass;
    'scan: for observer in observers.iter().chain(std::iter::once(&calm)) {
        for (_, event) in &observer.events {
            let text = Value::Array(event.payload.args.clone()).to_string();
            if rec.redact.leaks(&text) {
                leak = fail(
                    format!("the event {:?} to the {} carries a token or secret", event.name, observer.label),
                    "ids, states and versions only",
                    format!("a payload holding <token>: {}", rec.redact.apply(&excerpt(&Value::String(text)))),
                );
                break 'scan;
            }
            if let Some(field) = event.payload.args.iter().find_map(|v| forbidden_field(v, &forbidden)) {
                leak = fail(
                    format!("the event {:?} to the {} carries the field {field:?}", event.name, observer.label),
                    "ids, states and versions only",
                    format!("a payload with {field:?}"),
                );
                break 'scan;
            }
        }
    }
    let received: usize = observers.iter().map(|o| o.events.len()).sum();
    rec.record(
        NO_SECRETS,
        match leak {
            Verdict::Pass if received == 0 => Verdict::Unverified("no event was received to scan".to_owned()),
            other => other,
        },
    );
    Ok(())
}

/// Waits until every observer that must receive has `count` updates of `phase` (or [`ANSWER_WAIT`] passed), then
/// [`QUIET`] more, and files everything that arrived under `phase`.
async fn settle(
    observers: &mut [Observer],
    dialect: &Dialect,
    phase: usize,
    count: usize,
    receives: &dyn Fn(usize) -> bool,
) {
    let deadline = Instant::now() + ANSWER_WAIT;
    for (index, observer) in observers.iter_mut().enumerate() {
        if receives(index) {
            observer.await_updates(dialect, phase, count, deadline).await;
        }
    }
    tokio::time::sleep(QUIET).await;
    for observer in observers.iter_mut() {
        observer.drain(phase).await;
    }
}

/// A field name compared across dialects: `accessToken`, `access_token` and `ACCESS-TOKEN` are one.
fn normalize(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The first key anywhere in `value` that the contract forbids in payloads (RT-9).
fn forbidden_field(value: &Value, forbidden: &[String]) -> Option<String> {
    match value {
        Value::Object(fields) => fields.iter().find_map(|(key, v)| {
            if forbidden.contains(&normalize(key)) { Some(key.clone()) } else { forbidden_field(v, forbidden) }
        }),
        Value::Array(items) => items.iter().find_map(|v| forbidden_field(v, forbidden)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The matrix probe
// ---------------------------------------------------------------------------------------------------------------

/// One cell of the authorization matrix's `subscribe_escrow` row: an escrow awaiting payment, the principal's
/// socket (none for anonymous: no anonymous sockets, RT-1), its subscription, and the ack held against the model
/// and the matrix. `setup` reaches the escrow, `prepare` readies the principal (both from the matrix suite).
pub fn subscribe_cell(
    session: &mut Session,
    class: PrincipalClass,
    who: Who,
    setup: &[Step],
    prepare: &[Step],
    expected: Cell,
) -> CheckOutcome {
    let mut rec = Recorder::new();
    let verdict = match probe_cell(session, class, who, setup, prepare, expected, &mut rec) {
        Ok(verdict) => verdict,
        Err(reason) => Verdict::Unverified(reason),
    };
    rec.outcome(verdict)
}

fn probe_cell(
    session: &mut Session,
    class: PrincipalClass,
    who: Who,
    setup: &[Step],
    prepare: &[Step],
    expected: Cell,
    rec: &mut Recorder,
) -> Result<Verdict, String> {
    let dialect = Dialect::of(session)?;
    dialect.subscribe()?;
    let actor = match who {
        Who::Buyer => Some(BUYER),
        Who::Seller => Some(SELLER),
        Who::Stranger => Some(STRANGER),
        Who::Support => Some(SUPPORT),
        Who::AdminA => Some(ADMIN),
        Who::AdminB => Some(SECOND_ADMIN),
        Who::Anonymous => None,
        Who::Rightful => return Err("the matrix names a rightful caller, not a principal".to_owned()),
    };
    let mut d = session.begin();
    let mut escrow = None;
    for step in setup {
        if let Some(update) = drive(session, &mut d, step, rec)?.first() {
            escrow = Some(update.escrow);
        }
    }
    let escrow = escrow.or_else(|| d.model().escrows().last().map(|e| e.id)).ok_or("the setup created no escrow")?;
    // A fresh session for the principal unless its preparation opens one (a step-up signs in first).
    if let Some(actor) = actor
        && prepare.is_empty()
    {
        drive(session, &mut d, &Step::SignIn { actor, password_ok: true }, rec)?;
    }
    for step in prepare {
        drive(session, &mut d, step, rec)?;
    }
    let escrow_id =
        session.adapter.target_escrow_id(escrow).ok_or("the target's id of the escrow is unknown")?.to_owned();
    let token = match actor {
        None => None,
        Some(actor) => Some(
            session
                .adapter
                .live_access_token(d.model(), cast_user(actor))
                .ok_or_else(|| format!("the {} has no live session", class.name()))?,
        ),
    };
    if let Some((_, secret)) = &token {
        rec.redact.add(secret);
    }
    let model = model_decision(d.model(), token.as_ref().map(|t| t.0), Some(escrow));
    if model != expected {
        return Ok(fail(
            format!("the model answers {model} where the matrix says {expected}"),
            expected.to_string(),
            format!("model: {model}"),
        ));
    }
    let observed = match session.block_on(connect(dialect.config(token.as_ref().map(|t| t.1.as_str())))) {
        Connect::Refused(_) => Cell::Refuse(Refusal::Unauthenticated),
        Connect::Failed(e) if is_refusal(&e) => Cell::Refuse(Refusal::Unauthenticated),
        Connect::Failed(e) => return Err(format!("no answer to the CONNECT: {e}")),
        Connect::Accepted(client) => {
            let observer = Observer { label: class.name(), client: *client, events: Vec::new() };
            let ack = session.block_on(observer.subscribe(&dialect, &escrow_id, &[]))?;
            ack_cell(session, &ack)?
        }
    };
    rec.note(
        format!("the {} connects and subscribes to the escrow", class.name()),
        model.to_string(),
        observed.to_string(),
    );
    Ok(if observed == model {
        Verdict::Pass
    } else {
        fail(
            format!("the {}'s subscription was answered {observed}", class.name()),
            model.to_string(),
            observed.to_string(),
        )
    })
}

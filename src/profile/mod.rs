//! Profiles: how one target is reached. A profile binds every abstract operation (`OperationKind::ALL`) to the
//! target's routes, field names, state names, error codes, events and auth flow, declares its capabilities and says
//! how to start it. The format is documented, field by field, in `docs/profiles.md`; the profile of the embedded
//! target is `contracts/profiles/embedded.toml`.
//!
//! Loading is strict: every table refuses unknown fields, and the checks after parsing (every operation bound or
//! declared unsupported, only known template variables, every canonical state mapped, only canonical refusal codes,
//! capabilities backed by bindings) report the file, the line and the field, like the parser's own errors.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use conform_reference::escrow::EscrowState;
use conform_reference::ops::OperationKind;
use conform_reference::refusal::Refusal;
use serde_json::Value;
use toml::Spanned;

pub mod check;
pub mod model;
pub mod template;

pub use model::{Environment, LaunchMode, TokenTransport, WebhookScheme};
pub use template::Vars;

use model::{OperationSection, ProfileFile};

/// A profile that cannot be read, does not parse, or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{file}: cannot read {}: {error}", path.display())]
    Read {
        /// The file as named to the user.
        file: String,
        /// Where it was looked for.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// The TOML does not parse, or does not fit the format (unknown, missing or mistyped field). The parser's
    /// message names the line, the column and the field.
    #[error("{file}:{}: {error}", line.map_or_else(|| "?".to_owned(), |l| l.to_string()))]
    Toml {
        /// The file.
        file: String,
        /// The line, when the parser knows it.
        line: Option<usize>,
        /// The parser's error. Boxed to keep results small.
        error: Box<toml::de::Error>,
    },
    /// The file parses but a value is wrong.
    #[error("{file}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The line of the offending value (1-based).
        line: usize,
        /// The dotted path of the field, e.g. `operations.create_escrow.body`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A request could not be rendered from its template (a variable the caller did not give).
    #[error("operation {operation}: {message}")]
    Render {
        /// The operation.
        operation: String,
        /// What is missing.
        message: String,
    },
    /// A secret is to be read from an environment variable that is not set.
    #[error("webhooks.{provider}: environment variable {var} (secret_env) is not set")]
    MissingSecret {
        /// The webhook table.
        provider: String,
        /// The variable.
        var: String,
    },
}

impl ProfileError {
    /// The line the error is on, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ProfileError::Toml { line, .. } => *line,
            ProfileError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The field at fault, for semantic errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            ProfileError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A secret read from a profile: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for signing; never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&Secret> for conform_reference::webhooks::Secret {
    fn from(secret: &Secret) -> Self {
        conform_reference::webhooks::Secret::from(secret.expose())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// JSON pointers into an operation's success response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsePointers {
    /// The object's id.
    pub id: Option<String>,
    /// The escrow state (a target state name, see [`Profile::canonical_state`]).
    pub state: Option<String>,
    /// The escrow version.
    pub version: Option<String>,
    /// The amount received.
    pub amount_received: Option<String>,
    /// The items of a list.
    pub items: Option<String>,
    /// The pending approval's id, for two-person operations.
    pub pending_approval: Option<String>,
}

/// How a bound operation travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An HTTP request.
    Http,
    /// A Socket.IO event with an ack (`subscribe_escrow`): `method` is `EMIT`, `path` the event name.
    SocketIo,
}

/// One operation bound to the target.
#[derive(Debug, Clone)]
pub struct OperationBinding {
    /// The abstract operation.
    pub operation: OperationKind,
    /// HTTP or Socket.IO.
    pub transport: Transport,
    /// Upper-case HTTP method (`EMIT` for Socket.IO).
    pub method: String,
    /// Path template (the event name for Socket.IO).
    pub path: String,
    /// Query parameter templates.
    pub query: Vec<(String, String)>,
    /// Header templates.
    pub headers: Vec<(String, String)>,
    /// Body template.
    pub body: Option<Value>,
    /// Success statuses.
    pub expect: Vec<u16>,
    /// Where to read the response.
    pub pointers: ResponsePointers,
    /// The status that means "pending approval", when the operation can answer with one.
    pub pending_status: Option<u16>,
}

/// A request rendered from a binding and variables.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedRequest {
    /// HTTP method (`EMIT` for a Socket.IO event).
    pub method: String,
    /// Path with its variables filled and percent-encoded (the event name for Socket.IO), without the query.
    pub path: String,
    /// Query parameters (those whose single variable was not given are left out).
    pub query: Vec<(String, String)>,
    /// Headers (those whose single variable was not given are left out).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
}

impl RenderedRequest {
    /// The path with its query string.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let mut url = url::Url::parse("http://x/").expect("static URL");
        url.query_pairs_mut().extend_pairs(&self.query);
        format!("{}?{}", self.path, url.query().unwrap_or_default())
    }
}

impl OperationBinding {
    /// Fills the templates with `vars`. A path variable that is not given is an error; a header, query parameter
    /// or body field that is exactly one variable that is not given is left out.
    pub fn render(&self, vars: &Vars) -> Result<RenderedRequest, ProfileError> {
        let fail = |message: String| ProfileError::Render { operation: self.operation.name().to_owned(), message };
        let path = match self.transport {
            Transport::Http => template::render_str(&self.path, vars, true).map_err(fail)?,
            Transport::SocketIo => self.path.clone(),
        };
        let mut query = Vec::new();
        for (name, value) in &self.query {
            if let Some(value) = template::render_optional_str(value, vars).map_err(fail)? {
                query.push((name.clone(), value));
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            if let Some(value) = template::render_optional_str(value, vars).map_err(fail)? {
                headers.push((name.clone(), value));
            }
        }
        let body = match &self.body {
            Some(body) => template::render_json(body, vars).map_err(fail)?,
            None => None,
        };
        Ok(RenderedRequest { method: self.method.clone(), path, query, headers, body })
    }

    /// Whether `status` is one of the success statuses.
    pub fn is_success(&self, status: u16) -> bool {
        self.expect.contains(&status)
    }
}

/// What the target exposes for testing (`[capabilities]`); `false` turns the rules that need it `unverified`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// A staff read of the ledger.
    pub ledger_read: bool,
    /// The dead-letter list.
    pub dead_letters: bool,
    /// The audit log.
    pub audit_log: bool,
    /// A test clock.
    pub test_clock: bool,
    /// Passkeys.
    pub passkeys: bool,
    /// User fixtures.
    pub fixtures: bool,
}

impl Capabilities {
    /// Every capability's name and value, in the documented order.
    pub fn iter(&self) -> [(&'static str, bool); 6] {
        [
            ("ledger_read", self.ledger_read),
            ("dead_letters", self.dead_letters),
            ("audit_log", self.audit_log),
            ("test_clock", self.test_clock),
            ("passkeys", self.passkeys),
            ("fixtures", self.fixtures),
        ]
    }
}

/// Where a webhook secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Written in the profile.
    Inline(Secret),
    /// Read from this environment variable when needed.
    Env(String),
}

/// `[webhooks.<provider>]`, validated.
#[derive(Debug, Clone)]
pub struct WebhookBinding {
    /// The table's name (the provider id, e.g. `shkeeper`).
    pub provider: String,
    /// The endpoint path (variables filled: `{provider}`).
    pub path: String,
    /// The signature scheme.
    pub scheme: WebhookScheme,
    /// Where the secret comes from.
    pub secret: SecretSource,
    /// The status of an accepted delivery.
    pub success_status: u16,
}

impl WebhookBinding {
    /// The secret, read from the environment if the profile names a variable.
    pub fn secret(&self) -> Result<Secret, ProfileError> {
        match &self.secret {
            SecretSource::Inline(secret) => Ok(secret.clone()),
            SecretSource::Env(var) => std::env::var(var)
                .map(Secret)
                .map_err(|_| ProfileError::MissingSecret { provider: self.provider.clone(), var: var.clone() }),
        }
    }
}

/// A loaded, validated profile.
#[derive(Debug)]
pub struct Profile {
    file_name: String,
    dir: Option<PathBuf>,
    raw: ProfileFile,
    operations: BTreeMap<OperationKind, OperationBinding>,
    unsupported: BTreeMap<OperationKind, String>,
    states: BTreeMap<String, EscrowState>,
    error_pointer: String,
    error_codes: BTreeMap<String, Refusal>,
    status_errors: BTreeMap<u16, Refusal>,
    capabilities: Capabilities,
    webhooks: BTreeMap<String, WebhookBinding>,
}

impl Profile {
    /// Reads and validates the profile at `path`; errors name the path as given.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ProfileError::Read {
            file: file.clone(),
            path: path.to_owned(),
            error,
        })?;
        let mut profile = Profile::parse(&file, &text)?;
        profile.dir = path.parent().map(Path::to_owned);
        Ok(profile)
    }

    /// Parses and validates a profile's text; `file_name` only names the file in errors.
    pub fn parse(file_name: &str, text: &str) -> Result<Profile, ProfileError> {
        let raw: ProfileFile = toml::from_str(text).map_err(|error| ProfileError::Toml {
            file: file_name.to_owned(),
            line: error.span().map(|span| line_of(text, span.start)),
            error: Box::new(error),
        })?;
        Validator { file: file_name, text }.validate(raw)
    }

    /// The file name errors and reports use.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The directory of the profile file (for `cwd` and fixture commands), when loaded from disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file as written, section by section.
    pub fn raw(&self) -> &ProfileFile {
        &self.raw
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.raw.target.name
    }

    /// The deployment environment.
    pub fn environment(&self) -> Environment {
        self.raw.target.environment
    }

    /// How the target is started.
    pub fn launch_mode(&self) -> LaunchMode {
        *self.raw.launch.mode.get_ref()
    }

    /// Base URL of the REST API.
    pub fn http_url(&self) -> &str {
        self.raw.target.http.get_ref()
    }

    /// Base URL of the Socket.IO server.
    pub fn socketio_url(&self) -> &str {
        self.raw.target.socketio.as_ref().unwrap_or(&self.raw.target.http).get_ref()
    }

    /// `[socketio].auth` as a JSON template (variable `{access_token}`); `None` without one.
    pub fn socketio_auth(&self) -> Option<Value> {
        self.raw.socketio.as_ref()?.auth.as_ref().map(|auth| body_json(auth.get_ref()))
    }

    /// The binding of `op`; `None` when the profile declares it unsupported (see [`Profile::unsupported_reason`]).
    pub fn operation(&self, op: OperationKind) -> Option<&OperationBinding> {
        self.operations.get(&op)
    }

    /// Why `op` is unsupported, when it is.
    pub fn unsupported_reason(&self, op: OperationKind) -> Option<&str> {
        self.unsupported.get(&op).map(String::as_str)
    }

    /// The canonical state of a target state name.
    pub fn canonical_state(&self, name: &str) -> Option<EscrowState> {
        self.states.get(name).copied()
    }

    /// The refusal an error response means: its code (at `[errors].error_pointer`) through `[errors.codes]`, else
    /// its status through `[errors.status]`. `None` for non-error statuses and unknown errors.
    pub fn canonical_error(&self, status: u16, body: &Value) -> Option<Refusal> {
        if status < 400 {
            return None;
        }
        let code = body.pointer(&self.error_pointer).and_then(|code| match code {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        code.and_then(|code| self.error_codes.get(&code).copied()).or_else(|| self.status_errors.get(&status).copied())
    }

    /// The refusal an error code means (e.g. in a Socket.IO ack), without a status.
    pub fn canonical_error_code(&self, code: &str) -> Option<Refusal> {
        self.error_codes.get(code).copied()
    }

    /// The declared capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The webhook endpoint of a provider.
    pub fn webhook(&self, provider: &str) -> Option<&WebhookBinding> {
        self.webhooks.get(provider)
    }

    /// Every webhook endpoint, by provider.
    pub fn webhooks(&self) -> impl Iterator<Item = &WebhookBinding> {
        self.webhooks.values()
    }

    /// `[auth]` as written.
    pub fn auth(&self) -> &model::AuthSection {
        &self.raw.auth
    }

    /// The CSRF configuration for the HTTP driver, when the target wants one.
    pub fn csrf(&self) -> Option<crate::drive::http::Csrf> {
        use crate::drive::http::{Csrf, CsrfSource};
        let csrf = self.raw.auth.csrf.as_ref()?.get_ref();
        let source = if let Some(cookie) = &csrf.cookie {
            CsrfSource::Cookie(cookie.clone())
        } else if let Some(header) = &csrf.response_header {
            CsrfSource::ResponseHeader(header.clone())
        } else {
            CsrfSource::JsonField(csrf.json_field.clone().unwrap_or_default())
        };
        Some(Csrf { header: csrf.header.clone(), source })
    }

    /// The target's role name for a canonical role (`user`, `support`, `admin`).
    pub fn role_name<'a>(&'a self, canonical: &'a str) -> &'a str {
        self.raw
            .fixtures
            .as_ref()
            .and_then(|f| f.roles.iter().find(|(k, _)| k.get_ref() == canonical).map(|(_, v)| v.as_str()))
            .unwrap_or(canonical)
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |before| before.matches('\n').count() + 1)
}

/// Converts a TOML value to JSON (datetimes become strings).
fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// A body template as JSON (already validated): a string is a whole variable or JSON text.
fn body_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(text) if template::is_whole_variable(text) => Value::String(text.clone()),
        toml::Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => toml_to_json(other),
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Operations bound outside `[operations]`, and by which section.
const BOUND_ELSEWHERE: &[(OperationKind, &str)] = &[
    (OperationKind::SignIn, "auth.sign_in"),
    (OperationKind::Refresh, "auth.refresh"),
    (OperationKind::Logout, "auth.logout"),
    (OperationKind::StepUp, "auth.step_up"),
    (OperationKind::SubscribeEscrow, "socketio.subscribe_event"),
    (OperationKind::DeliverWebhook, "webhooks"),
];

/// A `[launch]` field's name, where it is written (if it is), and the modes that use it.
type LaunchField<'a> = (&'a str, Option<Range<usize>>, &'a [LaunchMode]);

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            file: self.file.to_owned(),
            line: line_of(self.text, span.start),
            field: field.into(),
            message: message.into(),
        }
    }

    fn template(&self, value: &Spanned<String>, field: &str, allowed: &[&str]) -> Result<String, ProfileError> {
        template::check_str(value.get_ref(), allowed).map_err(|m| self.err(value.span(), field, m))?;
        Ok(value.get_ref().clone())
    }

    fn path(&self, value: &Spanned<String>, field: &str, allowed: &[&str]) -> Result<String, ProfileError> {
        if !value.get_ref().starts_with('/') {
            return Err(self.err(value.span(), field, format!("{:?} must start with `/`", value.get_ref())));
        }
        self.template(value, field, allowed)
    }

    fn pointer(&self, value: &Option<Spanned<String>>, field: &str) -> Result<Option<String>, ProfileError> {
        let Some(value) = value else { return Ok(None) };
        let pointer = value.get_ref();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(self.err(
                value.span(),
                field,
                format!("{pointer:?} is not a JSON pointer (RFC 6901): write \"/{pointer}\""),
            ));
        }
        Ok(Some(pointer.clone()))
    }

    fn method(&self, value: &Spanned<String>, field: &str) -> Result<String, ProfileError> {
        let method = value.get_ref().to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(self.err(
                value.span(),
                field,
                format!("unknown method {:?} (one of {})", value.get_ref(), METHODS.join(", ")),
            ));
        }
        Ok(method)
    }

    fn body(&self, value: &Spanned<toml::Value>, field: &str, allowed: &[&str]) -> Result<Value, ProfileError> {
        let json = match value.get_ref() {
            toml::Value::String(text) if template::is_whole_variable(text) => Value::String(text.clone()),
            toml::Value::String(text) => serde_json::from_str(text)
                .map_err(|e| self.err(value.span(), field, format!("a string body must be JSON text: {e}")))?,
            other => toml_to_json(other),
        };
        template::check_json(&json, allowed).map_err(|m| self.err(value.span(), field, m))?;
        Ok(json)
    }

    /// A base URL; `{port}` (the port conform picks for a target it starts) stands for a port number.
    fn url(&self, value: &Spanned<String>, field: &str) -> Result<(), ProfileError> {
        match url::Url::parse(&value.get_ref().replace("{port}", "1")) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
            Ok(_) => Err(self.err(value.span(), field, "must be an http:// or https:// URL")),
            Err(e) => Err(self.err(value.span(), field, format!("{:?} is not a URL: {e}", value.get_ref()))),
        }
    }

    fn binding(
        &self,
        op: OperationKind,
        section: &Spanned<OperationSection>,
        field: &str,
    ) -> Result<Option<OperationBinding>, ProfileError> {
        let s = section.get_ref();
        if let Some(reason) = &s.unsupported {
            let extra = s.method.is_some() || s.path.is_some() || s.body.is_some() || s.expect.is_some();
            if extra {
                return Err(self.err(
                    reason.span(),
                    format!("{field}.unsupported"),
                    "an unsupported operation has no route: remove `unsupported` or the route fields",
                ));
            }
            if reason.get_ref().trim().is_empty() {
                return Err(self.err(
                    reason.span(),
                    format!("{field}.unsupported"),
                    "give the reason the target lacks this operation",
                ));
            }
            return Ok(None);
        }
        let method = s.method.as_ref().ok_or_else(|| {
            self.err(
                section.span(),
                format!("{field}.method"),
                "missing `method` (or declare `unsupported = \"reason\"`)",
            )
        })?;
        let path = s.path.as_ref().ok_or_else(|| {
            self.err(section.span(), format!("{field}.path"), "missing `path` (or declare `unsupported = \"reason\"`)")
        })?;
        let allowed = template::OPERATION_VARIABLES;
        let mut query = Vec::new();
        for (name, value) in &s.query {
            query.push((name.clone(), self.template(value, &format!("{field}.query.{name}"), allowed)?));
        }
        let mut headers = Vec::new();
        for (name, value) in &s.headers {
            headers.push((name.clone(), self.template(value, &format!("{field}.headers.{name}"), allowed)?));
        }
        let body = s.body.as_ref().map(|b| self.body(b, &format!("{field}.body"), allowed)).transpose()?;
        let expect = match &s.expect {
            Some(expect)
                if expect.get_ref().is_empty() || expect.get_ref().iter().any(|s| !(100..=599).contains(s)) =>
            {
                return Err(self.err(
                    expect.span(),
                    format!("{field}.expect"),
                    "list one or more HTTP statuses (100-599)",
                ));
            }
            Some(expect) => expect.get_ref().clone(),
            None => vec![200],
        };
        let pointers = ResponsePointers {
            id: self.pointer(&s.id, &format!("{field}.id"))?,
            state: self.pointer(&s.state, &format!("{field}.state"))?,
            version: self.pointer(&s.version, &format!("{field}.version"))?,
            amount_received: self.pointer(&s.amount_received, &format!("{field}.amount_received"))?,
            items: self.pointer(&s.items, &format!("{field}.items"))?,
            pending_approval: self
                .pointer(&s.pending_approval_pointer, &format!("{field}.pending_approval_pointer"))?,
        };
        let pending_status = pointers.pending_approval.as_ref().map(|_| s.pending_status.unwrap_or(202));
        Ok(Some(OperationBinding {
            operation: op,
            transport: Transport::Http,
            method: self.method(method, &format!("{field}.method"))?,
            path: self.path(path, &format!("{field}.path"), allowed)?,
            query,
            headers,
            body,
            expect,
            pointers,
            pending_status,
        }))
    }

    fn validate(&self, raw: ProfileFile) -> Result<Profile, ProfileError> {
        // [target]
        self.url(&raw.target.http, "target.http")?;
        if let Some(socketio) = &raw.target.socketio {
            self.url(socketio, "target.socketio")?;
        }
        self.launch(&raw)?;

        // Operations: [auth], [socketio], [webhooks] and [operations].
        let mut operations = BTreeMap::new();
        let mut unsupported = BTreeMap::new();
        let record = |operations: &mut BTreeMap<OperationKind, OperationBinding>,
                      unsupported: &mut BTreeMap<OperationKind, String>,
                      op: OperationKind,
                      binding: Option<OperationBinding>,
                      reason: &str| match binding {
            Some(binding) => {
                operations.insert(op, binding);
            }
            None => {
                unsupported.insert(op, reason.to_owned());
            }
        };
        let auth = &raw.auth;
        let auth_routes = [
            (OperationKind::SignIn, Some(&auth.sign_in), "auth.sign_in"),
            (OperationKind::Refresh, auth.refresh.as_ref(), "auth.refresh"),
            (OperationKind::Logout, auth.logout.as_ref(), "auth.logout"),
            (OperationKind::StepUp, auth.step_up.as_ref(), "auth.step_up"),
        ];
        for (op, section, field) in auth_routes {
            if let Some(section) = section {
                let binding = self.binding(op, section, field)?;
                let reason = section.get_ref().unsupported.as_ref().map(|r| r.get_ref().clone()).unwrap_or_default();
                record(&mut operations, &mut unsupported, op, binding, &reason);
            }
        }
        if unsupported.contains_key(&OperationKind::SignIn) {
            return Err(self.err(
                auth.sign_in.span(),
                "auth.sign_in",
                "sign-in is required: conform must be able to sign in",
            ));
        }
        self.auth(&raw)?;
        if let Some(socketio) = &raw.socketio
            && let Some(binding) = self.socketio(socketio)?
        {
            record(&mut operations, &mut unsupported, OperationKind::SubscribeEscrow, Some(binding), "");
        }
        let mut webhooks = BTreeMap::new();
        for (name, section) in &raw.webhooks {
            let binding = self.webhook(name, section)?;
            if !operations.contains_key(&OperationKind::DeliverWebhook) {
                record(
                    &mut operations,
                    &mut unsupported,
                    OperationKind::DeliverWebhook,
                    Some(OperationBinding {
                        operation: OperationKind::DeliverWebhook,
                        transport: Transport::Http,
                        method: "POST".to_owned(),
                        path: binding.path.clone(),
                        query: Vec::new(),
                        headers: Vec::new(),
                        body: None,
                        expect: vec![binding.success_status],
                        pointers: ResponsePointers::default(),
                        pending_status: None,
                    }),
                    "",
                );
            }
            webhooks.insert(name.get_ref().clone(), binding);
        }
        let elsewhere: BTreeMap<OperationKind, ()> =
            operations.keys().chain(unsupported.keys()).map(|op| (*op, ())).collect();
        for (name, section) in &raw.operations {
            let field = format!("operations.{}", name.get_ref());
            let op = OperationKind::parse(name.get_ref()).map_err(|_| {
                self.err(
                    name.span(),
                    &field,
                    format!("unknown operation {:?}; the operations are: {}", name.get_ref(), all_operation_names()),
                )
            })?;
            if elsewhere.contains_key(&op) {
                let by = BOUND_ELSEWHERE.iter().find(|(o, _)| *o == op).map_or("another section", |(_, s)| s);
                return Err(self.err(
                    name.span(),
                    &field,
                    format!("{} is already bound by [{by}]; bind it in one place", op.name()),
                ));
            }
            let binding = self.binding(op, section, &field)?;
            let reason = section.get_ref().unsupported.as_ref().map(|r| r.get_ref().clone()).unwrap_or_default();
            record(&mut operations, &mut unsupported, op, binding, &reason);
        }
        let missing: Vec<OperationKind> = OperationKind::ALL
            .iter()
            .copied()
            .filter(|op| !operations.contains_key(op) && !unsupported.contains_key(op))
            .collect();
        if let Some(first) = missing.first() {
            let names: Vec<String> = missing
                .iter()
                .map(|op| match BOUND_ELSEWHERE.iter().find(|(o, _)| o == op) {
                    Some((_, section)) => format!("{} (in [{section}] or [operations.{}])", op.name(), op.name()),
                    None => op.name().to_owned(),
                })
                .collect();
            let line_at = raw.operations.keys().map(|k| k.span().start).min().unwrap_or(self.text.len());
            return Err(self.err(
                line_at..line_at,
                format!("operations.{}", first.name()),
                format!(
                    "missing operation{} {}: bind each, or declare it `unsupported = \"reason\"`",
                    if missing.len() == 1 { "" } else { "s" },
                    names.join(", ")
                ),
            ));
        }

        // [states]
        let mut states = BTreeMap::new();
        for (name, canonical) in raw.states.get_ref() {
            let field = format!("states.{}", name.get_ref());
            let state = EscrowState::parse(canonical.get_ref()).ok_or_else(|| {
                let names: Vec<&str> = EscrowState::ALL.iter().map(|s| s.name()).collect();
                self.err(
                    canonical.span(),
                    &field,
                    format!("unknown canonical state {:?} (one of {})", canonical.get_ref(), names.join(", ")),
                )
            })?;
            states.insert(name.get_ref().clone(), state);
        }
        let unmapped: Vec<&str> =
            EscrowState::ALL.iter().filter(|s| !states.values().any(|v| v == *s)).map(|s| s.name()).collect();
        if !unmapped.is_empty() {
            return Err(self.err(
                raw.states.span(),
                "states",
                format!(
                    "canonical state{} not mapped: {} (map the target's name for each)",
                    if unmapped.len() == 1 { "" } else { "s" },
                    unmapped.join(", ")
                ),
            ));
        }

        // [errors]
        let error_pointer =
            self.pointer(&raw.errors.error_pointer, "errors.error_pointer")?.unwrap_or_else(|| "/error".to_owned());
        let refusal = |value: &Spanned<String>, field: &str| {
            Refusal::from_code(value.get_ref()).ok_or_else(|| {
                let codes: Vec<&str> = Refusal::ALL.iter().map(|r| r.code()).collect();
                self.err(
                    value.span(),
                    field,
                    format!("unknown refusal code {:?} (one of {})", value.get_ref(), codes.join(", ")),
                )
            })
        };
        let mut error_codes = BTreeMap::new();
        for (code, canonical) in &raw.errors.codes {
            error_codes.insert(code.clone(), refusal(canonical, &format!("errors.codes.{code}"))?);
        }
        let mut status_errors = BTreeMap::new();
        for (status, canonical) in &raw.errors.status {
            let field = format!("errors.status.{}", status.get_ref());
            let code = status.get_ref().parse::<u16>().ok().filter(|s| (400..=599).contains(s)).ok_or_else(|| {
                self.err(status.span(), &field, "the key must be an HTTP error status (400-599), e.g. \"401\"")
            })?;
            status_errors.insert(code, refusal(canonical, &field)?);
        }

        // [capabilities]: each claim needs what it claims.
        let caps = &raw.capabilities;
        let claim =
            |value: &Option<Spanned<bool>>, field: &str, backed: bool, needs: &str| -> Result<bool, ProfileError> {
                match value {
                    Some(v) if *v.get_ref() && !backed => {
                        Err(self.err(v.span(), format!("capabilities.{field}"), format!("declared true but {needs}")))
                    }
                    Some(v) => Ok(*v.get_ref()),
                    None => Ok(false),
                }
            };
        let bound = |op: OperationKind| operations.contains_key(&op);
        let capabilities = Capabilities {
            ledger_read: claim(
                &caps.ledger_read,
                "ledger_read",
                bound(OperationKind::ReadLedger),
                "the operation read_ledger is unsupported",
            )?,
            dead_letters: claim(
                &caps.dead_letters,
                "dead_letters",
                bound(OperationKind::ListDeadLetters),
                "the operation list_dead_letters is unsupported",
            )?,
            audit_log: claim(
                &caps.audit_log,
                "audit_log",
                bound(OperationKind::ReadAuditLog),
                "the operation read_audit_log is unsupported",
            )?,
            test_clock: claim(&caps.test_clock, "test_clock", raw.clock.is_some(), "there is no [clock] table")?,
            passkeys: claim(
                &caps.passkeys,
                "passkeys",
                [
                    OperationKind::PasskeyRegisterOptions,
                    OperationKind::PasskeyRegister,
                    OperationKind::PasskeySignInOptions,
                    OperationKind::PasskeySignIn,
                ]
                .into_iter()
                .all(bound),
                "a passkey operation is unsupported",
            )?,
            fixtures: claim(&caps.fixtures, "fixtures", raw.fixtures.is_some(), "there is no [fixtures] table")?,
        };
        self.fixtures(&raw)?;

        Ok(Profile {
            file_name: self.file.to_owned(),
            dir: None,
            raw,
            operations,
            unsupported,
            states,
            error_pointer,
            error_codes,
            status_errors,
            capabilities,
            webhooks,
        })
    }

    fn launch(&self, raw: &ProfileFile) -> Result<(), ProfileError> {
        let l = &raw.launch;
        let mode = *l.mode.get_ref();
        // Each field with where it is (the mode's line when it has no span of its own) and the modes that use it.
        let at = |span: Option<Range<usize>>| span.unwrap_or_else(|| l.mode.span());
        let fields: [LaunchField<'_>; 7] = [
            ("program", l.program.as_ref().map(|v| at(Some(v.span()))), &[LaunchMode::Command]),
            ("args", l.args.first().map(|v| at(Some(v.span()))), &[LaunchMode::Command]),
            ("cwd", l.cwd.as_ref().map(|v| at(Some(v.span()))), &[LaunchMode::Command]),
            (
                "env",
                (!l.env.0.is_empty()).then(|| at(l.env.0.values().next().map(Spanned::span))),
                &[LaunchMode::Command, LaunchMode::Container],
            ),
            ("image", l.image.as_ref().map(|v| at(Some(v.span()))), &[LaunchMode::Container]),
            ("ports", (!l.ports.is_empty()).then(|| at(None)), &[LaunchMode::Container]),
            (
                "readiness",
                l.readiness.as_ref().map(|v| at(Some(v.span()))),
                &[LaunchMode::Running, LaunchMode::Command, LaunchMode::Container],
            ),
        ];
        for (name, span, modes) in fields {
            if let Some(span) = span
                && !modes.contains(&mode)
            {
                let used: Vec<String> = modes.iter().map(|m| format!("\"{}\"", m.name())).collect();
                return Err(self.err(
                    span,
                    format!("launch.{name}"),
                    format!("`{name}` is not used with mode = \"{}\" (only with {})", mode.name(), used.join(", ")),
                ));
            }
        }
        match mode {
            LaunchMode::Command if l.program.is_none() => {
                return Err(self.err(l.mode.span(), "launch.program", "mode = \"command\" needs `program`"));
            }
            LaunchMode::Command if l.readiness.is_none() => {
                return Err(self.err(
                    l.mode.span(),
                    "launch.readiness",
                    "mode = \"command\" needs `readiness = { path, status, timeout_seconds }` to know when the target is up",
                ));
            }
            LaunchMode::Container if l.image.is_none() => {
                return Err(self.err(l.mode.span(), "launch.image", "mode = \"container\" needs `image`"));
            }
            _ => {}
        }
        for (i, arg) in l.args.iter().enumerate() {
            self.template(arg, &format!("launch.args[{i}]"), template::LAUNCH_VARIABLES)?;
        }
        for (name, value) in &l.env.0 {
            self.template(value, &format!("launch.env.{name}"), template::LAUNCH_VARIABLES)?;
        }
        if let Some(readiness) = &l.readiness {
            self.path(&readiness.get_ref().path, "launch.readiness.path", &[])?;
        }
        Ok(())
    }

    fn auth(&self, raw: &ProfileFile) -> Result<(), ProfileError> {
        let a = &raw.auth;
        match a.send.get_ref() {
            TokenTransport::Bearer if a.token_pointer.is_none() => {
                return Err(self.err(
                    a.send.span(),
                    "auth.token_pointer",
                    "send = \"bearer\" needs `token_pointer` (where the access token is in the sign-in response)",
                ));
            }
            TokenTransport::Cookie if a.cookie.is_none() => {
                return Err(self.err(
                    a.send.span(),
                    "auth.cookie",
                    "send = \"cookie\" needs `cookie` (the session cookie's name)",
                ));
            }
            _ => {}
        }
        for (value, field) in [
            (&a.token_pointer, "auth.token_pointer"),
            (&a.refresh_token_pointer, "auth.refresh_token_pointer"),
            (&a.session_id_pointer, "auth.session_id_pointer"),
            (&a.user_id_pointer, "auth.user_id_pointer"),
        ] {
            self.pointer(value, field)?;
        }
        if let Some(refresh) = &a.refresh
            && let Some(body) = &refresh.get_ref().body
            && a.refresh_token_pointer.is_none()
            && a.refresh_cookie.is_none()
            && toml_to_json(body.get_ref()).to_string().contains("{refresh_token}")
        {
            return Err(self.err(body.span(), "auth.refresh.body", "names {refresh_token} but neither `refresh_token_pointer` nor `refresh_cookie` says where it comes from"));
        }
        if let Some(csrf) = &a.csrf {
            let c = csrf.get_ref();
            let sources = [c.cookie.is_some(), c.response_header.is_some(), c.json_field.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(self.err(
                    csrf.span(),
                    "auth.csrf",
                    "give exactly one source: `cookie`, `response_header` or `json_field`",
                ));
            }
            if let Some(fetch) = &c.fetch_path {
                self.path(fetch, "auth.csrf.fetch_path", &[])?;
            }
        }
        Ok(())
    }

    fn socketio(&self, s: &model::SocketIoSection) -> Result<Option<OperationBinding>, ProfileError> {
        if let Some(auth) = &s.auth {
            self.body(auth, "socketio.auth", template::SOCKETIO_AUTH_VARIABLES)?;
        }
        for (value, field) in [
            (&s.ack_ok_pointer, "socketio.ack_ok_pointer"),
            (&s.ack_error_pointer, "socketio.ack_error_pointer"),
            (&s.updated_escrow_id_pointer, "socketio.updated_escrow_id_pointer"),
            (&s.updated_state_pointer, "socketio.updated_state_pointer"),
            (&s.updated_version_pointer, "socketio.updated_version_pointer"),
        ] {
            self.pointer(value, field)?;
        }
        let Some(event) = &s.subscribe_event else { return Ok(None) };
        let body = s
            .subscribe_payload
            .as_ref()
            .map(|p| self.body(p, "socketio.subscribe_payload", template::SOCKETIO_SUBSCRIBE_VARIABLES))
            .transpose()?
            .or_else(|| Some(serde_json::json!({ "escrow_id": "{escrow_id}" })));
        Ok(Some(OperationBinding {
            operation: OperationKind::SubscribeEscrow,
            transport: Transport::SocketIo,
            method: "EMIT".to_owned(),
            path: event.get_ref().clone(),
            query: Vec::new(),
            headers: Vec::new(),
            body,
            expect: Vec::new(),
            pointers: ResponsePointers::default(),
            pending_status: None,
        }))
    }

    fn webhook(
        &self,
        name: &Spanned<String>,
        section: &Spanned<model::WebhookSection>,
    ) -> Result<WebhookBinding, ProfileError> {
        let field = format!("webhooks.{}", name.get_ref());
        let w = section.get_ref();
        self.path(&w.path, &format!("{field}.path"), &["provider"])?;
        let path = template::render_str(w.path.get_ref(), &Vars::new().with("provider", name.get_ref().as_str()), true)
            .map_err(|m| self.err(w.path.span(), format!("{field}.path"), m))?;
        let secret = match (&w.secret, &w.secret_env) {
            (Some(secret), None) => SecretSource::Inline(secret.clone()),
            (None, Some(var)) => SecretSource::Env(var.clone()),
            _ => {
                return Err(self.err(
                    section.span(),
                    format!("{field}.secret"),
                    "give exactly one of `secret` and `secret_env`",
                ));
            }
        };
        Ok(WebhookBinding {
            provider: name.get_ref().clone(),
            path,
            scheme: w.scheme,
            secret,
            success_status: w.success_status.unwrap_or(w.scheme.default_success_status()),
        })
    }

    fn fixtures(&self, raw: &ProfileFile) -> Result<(), ProfileError> {
        if let Some(clock) = &raw.clock {
            let c = clock.get_ref();
            self.method(&c.method, "clock.method")?;
            self.path(&c.path, "clock.path", template::CLOCK_VARIABLES)?;
            if let Some(body) = &c.body {
                self.body(body, "clock.body", template::CLOCK_VARIABLES)?;
            }
        }
        let Some(fixtures) = &raw.fixtures else { return Ok(()) };
        if let Some(configure) = &fixtures.configure {
            let c = configure.get_ref();
            self.method(&c.method, "fixtures.configure.method")?;
            self.path(&c.path, "fixtures.configure.path", template::CONFIGURE_VARIABLES)?;
            let body = c.body.as_ref().ok_or_else(|| {
                self.err(
                    configure.span(),
                    "fixtures.configure.body",
                    "the configuration fixture needs a body naming {passkeys_enabled}, {provider} and {enabled}",
                )
            })?;
            let json = self.body(body, "fixtures.configure.body", template::CONFIGURE_VARIABLES)?;
            let text = json.to_string();
            for variable in template::CONFIGURE_VARIABLES {
                if !text.contains(&format!("{{{variable}}}")) {
                    return Err(self.err(
                        body.span(),
                        "fixtures.configure.body",
                        format!("the body never names {{{variable}}}: the switch it carries could not be sent"),
                    ));
                }
            }
        }
        let cu = fixtures.create_user.get_ref();
        let allowed = template::FIXTURE_VARIABLES;
        match (&cu.command, &cu.path) {
            (Some(command), None) => {
                if cu.method.is_some() || cu.body.is_some() || cu.expect.is_some() {
                    return Err(self.err(
                        command.span(),
                        "fixtures.create_user.command",
                        "a command fixture has no `method`, `body` or `expect`",
                    ));
                }
                if command.get_ref().is_empty() {
                    return Err(self.err(
                        command.span(),
                        "fixtures.create_user.command",
                        "give the program and its arguments",
                    ));
                }
                for arg in command.get_ref() {
                    template::check_str(arg, allowed)
                        .map_err(|m| self.err(command.span(), "fixtures.create_user.command", m))?;
                }
            }
            (None, Some(path)) => {
                let method = cu.method.as_ref().ok_or_else(|| {
                    self.err(
                        fixtures.create_user.span(),
                        "fixtures.create_user.method",
                        "a route fixture needs `method`",
                    )
                })?;
                self.method(method, "fixtures.create_user.method")?;
                self.path(path, "fixtures.create_user.path", allowed)?;
                if let Some(body) = &cu.body {
                    self.body(body, "fixtures.create_user.body", allowed)?;
                }
            }
            _ => {
                return Err(self.err(
                    fixtures.create_user.span(),
                    "fixtures.create_user",
                    "give either a route (`method`, `path`, `body`) or a `command`, not both",
                ));
            }
        }
        self.pointer(&Some(cu.id_pointer.clone()), "fixtures.create_user.id_pointer")?;
        for role in fixtures.roles.keys() {
            if !["user", "support", "admin"].contains(&role.get_ref().as_str()) {
                return Err(self.err(
                    role.span(),
                    format!("fixtures.roles.{}", role.get_ref()),
                    "the canonical roles are user, support and admin",
                ));
            }
        }
        Ok(())
    }
}

fn all_operation_names() -> String {
    OperationKind::ALL.iter().map(|op| op.name()).collect::<Vec<_>>().join(", ")
}

/// A fixture route (`[fixtures.create_user]` as a route, `[clock]`): not an abstract operation, but rendered the
/// same way.
#[derive(Debug, Clone)]
pub struct FixtureRoute {
    /// `fixtures.create_user` or `clock`, for errors.
    pub name: &'static str,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template.
    pub path: String,
    /// Body template.
    pub body: Option<Value>,
    /// Success statuses.
    pub expect: Vec<u16>,
    /// Where the created object's id is in the response, if anywhere.
    pub id_pointer: Option<String>,
}

impl FixtureRoute {
    /// Fills the templates, with the rules of [`OperationBinding::render`].
    pub fn render(&self, vars: &Vars) -> Result<RenderedRequest, ProfileError> {
        let fail = |message: String| ProfileError::Render { operation: self.name.to_owned(), message };
        let path = template::render_str(&self.path, vars, true).map_err(fail)?;
        let body = match &self.body {
            Some(body) => template::render_json(body, vars).map_err(fail)?,
            None => None,
        };
        Ok(RenderedRequest { method: self.method.clone(), path, query: Vec::new(), headers: Vec::new(), body })
    }
}

/// `[fixtures.create_user]` as a command.
#[derive(Debug, Clone)]
pub struct FixtureCommand {
    /// Program and arguments (templates).
    pub argv: Vec<String>,
    /// Where the new user's id is in the command's JSON output.
    pub id_pointer: String,
}

impl FixtureCommand {
    /// The program and arguments with the variables filled.
    pub fn render(&self, vars: &Vars) -> Result<Vec<String>, ProfileError> {
        self.argv
            .iter()
            .map(|arg| {
                template::render_str(arg, vars, false)
                    .map_err(|message| ProfileError::Render { operation: "fixtures.create_user".to_owned(), message })
            })
            .collect()
    }
}

impl Profile {
    /// `[fixtures.create_user]` when it is a route.
    pub fn create_user_route(&self) -> Option<FixtureRoute> {
        let cu = self.raw.fixtures.as_ref()?.create_user.get_ref();
        let path = cu.path.as_ref()?;
        Some(FixtureRoute {
            name: "fixtures.create_user",
            method: cu.method.as_ref().map_or_else(|| "POST".to_owned(), |m| m.get_ref().to_ascii_uppercase()),
            path: path.get_ref().clone(),
            body: cu.body.as_ref().map(|b| body_json(b.get_ref())),
            expect: cu.expect.clone().unwrap_or_else(|| vec![200, 201]),
            id_pointer: Some(cu.id_pointer.get_ref().clone()),
        })
    }

    /// `[fixtures.create_user]` when it is a command.
    pub fn create_user_command(&self) -> Option<FixtureCommand> {
        let cu = self.raw.fixtures.as_ref()?.create_user.get_ref();
        let argv = cu.command.as_ref()?.get_ref().clone();
        Some(FixtureCommand { argv, id_pointer: cu.id_pointer.get_ref().clone() })
    }

    /// `[fixtures.configure]`, the route that switches passkeys or a provider on a running target (variables
    /// `{passkeys_enabled}`, `{provider}`, `{enabled}`).
    pub fn configure_route(&self) -> Option<FixtureRoute> {
        let c = self.raw.fixtures.as_ref()?.configure.as_ref()?.get_ref();
        Some(FixtureRoute {
            name: "fixtures.configure",
            method: c.method.get_ref().to_ascii_uppercase(),
            path: c.path.get_ref().clone(),
            body: c.body.as_ref().map(|b| body_json(b.get_ref())),
            expect: c.expect.clone().unwrap_or_else(|| vec![200]),
            id_pointer: None,
        })
    }

    /// `[clock]`, the test clock's route (variable `{seconds}`).
    pub fn clock_route(&self) -> Option<FixtureRoute> {
        let c = self.raw.clock.as_ref()?.get_ref();
        Some(FixtureRoute {
            name: "clock",
            method: c.method.get_ref().to_ascii_uppercase(),
            path: c.path.get_ref().clone(),
            body: c.body.as_ref().map(|b| body_json(b.get_ref())),
            expect: c.expect.clone().unwrap_or_else(|| vec![200]),
            id_pointer: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EMBEDDED: &str = include_str!("../../contracts/profiles/embedded.toml");

    #[test]
    fn string_bodies_are_json_text_and_numeric_error_codes_compare_as_text() {
        let text = EMBEDDED
            .replacen(
                "body = { reason = \"{reason}\" }\nid = \"/id\"",
                "body = '{\"reason\": \"{reason}\", \"gift\": null, \"tags\": [\"{note}\"]}'\nid = \"/id\"",
                1,
            )
            .replacen("error_pointer = \"/error\"", "error_pointer = \"/err/code\"", 1)
            .replacen("forbidden = \"forbidden\"", "forbidden = \"forbidden\"\n4031 = \"same_approver\"", 1);
        let profile = Profile::parse("t.toml", &text).unwrap();
        let dispute = profile.operation(OperationKind::OpenDispute).unwrap();
        let body = dispute.render(&Vars::new().with("escrow_id", "e").with("reason", "late")).unwrap().body;
        assert_eq!(body, Some(json!({"reason": "late", "gift": null, "tags": []})));
        assert_eq!(profile.canonical_error(403, &json!({"err": {"code": 4031}})), Some(Refusal::SameApprover));
        assert_eq!(profile.canonical_error(403, &json!({"err": {"code": "other"}})), Some(Refusal::Forbidden));
    }

    #[test]
    fn launch_fields_of_another_mode_are_refused_at_their_line() {
        let text = EMBEDDED.replacen("mode = \"embedded\"\n", "mode = \"running\"\nprogram = \"node\"\n", 1);
        let error = Profile::parse("t.toml", &text).unwrap_err();
        let line = text.lines().position(|l| l.starts_with("program")).unwrap() + 1;
        assert_eq!((error.line(), error.field()), (Some(line), Some("launch.program")), "{error}");
        assert!(error.to_string().contains("only with \"command\""), "{error}");
    }

    #[test]
    fn a_string_body_that_is_not_json_names_its_line() {
        let text = EMBEDDED.replacen("body = { reason = \"{reason}\" }\nid", "body = '{reason: 1}'\nid", 1);
        let error = Profile::parse("t.toml", &text).unwrap_err();
        let line = text.lines().position(|l| l.contains("{reason: 1}")).unwrap() + 1;
        assert_eq!(error.line(), Some(line), "{error}");
        assert_eq!(error.field(), Some("operations.open_dispute.body"));
    }
}

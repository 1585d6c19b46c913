//! The profile file as written: one struct per section, each refusing unknown fields. `docs/profiles.md` is the
//! reference of every field; the doc comments here are short on purpose.
//!
//! Fields that are checked after parsing (templates, names, pointers, capability claims) are `Spanned`, so that the
//! error can still give the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// `[target]`.
    pub target: TargetSection,
    /// `[launch]`.
    pub launch: LaunchSection,
    /// `[auth]`.
    pub auth: AuthSection,
    /// `[fixtures]`.
    #[serde(default)]
    pub fixtures: Option<FixturesSection>,
    /// `[clock]`.
    #[serde(default)]
    pub clock: Option<Spanned<RouteSection>>,
    /// `[operations.<name>]`.
    #[serde(default)]
    pub operations: BTreeMap<Spanned<String>, Spanned<OperationSection>>,
    /// `[states]`: target state name → canonical state name.
    pub states: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    /// `[errors]`.
    #[serde(default)]
    pub errors: ErrorsSection,
    /// `[socketio]`.
    #[serde(default)]
    pub socketio: Option<SocketIoSection>,
    /// `[webhooks.<name>]`.
    #[serde(default)]
    pub webhooks: BTreeMap<Spanned<String>, Spanned<WebhookSection>>,
    /// `[providers]`.
    #[serde(default)]
    pub providers: ProvidersSection,
    /// `[capabilities]`.
    #[serde(default)]
    pub capabilities: CapabilitiesSection,
}

/// Where the target is deployed; drills and fault injection refuse anything but `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// A disposable test deployment: everything may run.
    Test,
    /// A shared pre-production deployment: no drills, no faults.
    Staging,
    /// Production: read-only checks only.
    Production,
}

impl Environment {
    /// Its name in the file.
    pub const fn name(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Whether drills and fault injection may run against it.
    pub const fn allows_drills(self) -> bool {
        matches!(self, Environment::Test)
    }
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// A name for reports.
    pub name: String,
    /// `test`, `staging` or `production`.
    pub environment: Environment,
    /// Base URL of the REST API; operation paths are appended to it.
    pub http: Spanned<String>,
    /// Base URL of the Socket.IO server; defaults to `http`.
    #[serde(default)]
    pub socketio: Option<Spanned<String>>,
}

/// How the target is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchMode {
    /// Already running at `[target].http`.
    Running,
    /// Started by conform as a child process.
    Command,
    /// conform's own embedded target, in-process.
    Embedded,
    /// A container image, through a Docker engine.
    Container,
}

impl LaunchMode {
    /// Its name in the file.
    pub const fn name(self) -> &'static str {
        match self {
            LaunchMode::Running => "running",
            LaunchMode::Command => "command",
            LaunchMode::Embedded => "embedded",
            LaunchMode::Container => "container",
        }
    }
}

/// `[launch]`: one table for every mode; the fields a mode does not use are refused for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchSection {
    /// `running`, `command`, `embedded` or `container`.
    pub mode: Spanned<LaunchMode>,
    /// `command`: the program.
    #[serde(default)]
    pub program: Option<Spanned<String>>,
    /// `command`: its arguments (templates over the launch variables).
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
    /// `command`: its working directory, relative to the profile's directory.
    #[serde(default)]
    pub cwd: Option<Spanned<String>>,
    /// `command` and `container`: environment variables (templates over the launch variables).
    #[serde(default)]
    pub env: LaunchEnv,
    /// `container`: the image.
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// `container`: container ports to publish.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// `running` and `command` (and `container`): when the target is ready.
    #[serde(default)]
    pub readiness: Option<Spanned<Readiness>>,
}

/// `[launch.readiness]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// A GET path answered when the target is ready.
    pub path: Spanned<String>,
    /// The status it answers then.
    #[serde(default = "default_ready_status")]
    pub status: u16,
    /// How long to wait for it, in seconds.
    #[serde(default = "default_ready_timeout")]
    pub timeout_seconds: u64,
}

/// `[launch].env`. Its `Debug` hides the values of variables whose names suggest a secret (`KEY`, `SECRET`,
/// `TOKEN`, `PASSWORD`, `PASS`, `CREDENTIAL`), since a profile for a test deployment may carry them.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct LaunchEnv(pub BTreeMap<String, Spanned<String>>);

impl LaunchEnv {
    /// Whether a variable's name suggests that its value is a secret.
    pub fn is_secret_name(name: &str) -> bool {
        let upper = name.to_ascii_uppercase();
        ["KEY", "SECRET", "TOKEN", "PASS", "CREDENTIAL"].iter().any(|word| upper.contains(word))
    }
}

impl std::fmt::Debug for LaunchEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if LaunchEnv::is_secret_name(name) { "[redacted]" } else { value.get_ref().as_str() };
                (name, shown)
            }))
            .finish()
    }
}

fn default_ready_status() -> u16 {
    200
}

fn default_ready_timeout() -> u64 {
    30
}

/// How the session travels on each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTransport {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A session cookie set by the target.
    Cookie,
}

/// `[auth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `bearer` or `cookie`.
    pub send: Spanned<TokenTransport>,
    /// JSON pointer to the access token in the sign-in and refresh responses (bearer).
    #[serde(default)]
    pub token_pointer: Option<Spanned<String>>,
    /// Name of the session cookie (cookie).
    #[serde(default)]
    pub cookie: Option<Spanned<String>>,
    /// JSON pointer to the refresh token in the sign-in and refresh responses.
    #[serde(default)]
    pub refresh_token_pointer: Option<Spanned<String>>,
    /// Name of the cookie holding the refresh token, when it is a cookie.
    #[serde(default)]
    pub refresh_cookie: Option<Spanned<String>>,
    /// JSON pointer to the session id in the sign-in response.
    #[serde(default)]
    pub session_id_pointer: Option<Spanned<String>>,
    /// JSON pointer to the signed-in user's id in the sign-in response.
    #[serde(default)]
    pub user_id_pointer: Option<Spanned<String>>,
    /// `[auth.csrf]`.
    #[serde(default)]
    pub csrf: Option<Spanned<CsrfSection>>,
    /// `[auth.sign_in]`: binds the operation `sign_in`.
    pub sign_in: Spanned<OperationSection>,
    /// `[auth.refresh]`: binds `refresh`.
    #[serde(default)]
    pub refresh: Option<Spanned<OperationSection>>,
    /// `[auth.logout]`: binds `logout`.
    #[serde(default)]
    pub logout: Option<Spanned<OperationSection>>,
    /// `[auth.step_up]`: binds `step_up`.
    #[serde(default)]
    pub step_up: Option<Spanned<OperationSection>>,
}

/// `[auth.csrf]`: an anti-CSRF header on every state-changing request; exactly one source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfSection {
    /// The header to send, e.g. `X-CSRF-Token`.
    pub header: String,
    /// The value is this cookie's (double-submit).
    #[serde(default)]
    pub cookie: Option<String>,
    /// The value is the latest value of this response header.
    #[serde(default)]
    pub response_header: Option<String>,
    /// The value is this top-level field of a JSON response (e.g. the sign-in response).
    #[serde(default)]
    pub json_field: Option<String>,
    /// A GET path to call once before the first state-changing request, to obtain the token.
    #[serde(default)]
    pub fetch_path: Option<Spanned<String>>,
}

/// `[fixtures]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturesSection {
    /// `[fixtures.create_user]`.
    pub create_user: Spanned<CreateUserSection>,
    /// `[fixtures.roles]`: canonical role (`user`, `support`, `admin`) → the target's role name.
    #[serde(default)]
    pub roles: BTreeMap<Spanned<String>, String>,
    /// `[fixtures.configure]`: switches the running target's configuration (passkeys, a provider).
    #[serde(default)]
    pub configure: Option<Spanned<RouteSection>>,
}

/// `[fixtures.create_user]`: a route or a command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserSection {
    /// Route: the method.
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// Route: the path.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Route: the JSON body template.
    #[serde(default)]
    pub body: Option<Spanned<toml::Value>>,
    /// Route: success statuses.
    #[serde(default)]
    pub expect: Option<Vec<u16>>,
    /// Command: program and arguments (templates), run from the profile's directory.
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    /// JSON pointer to the new user's id in the response (route) or in the command's standard output (command).
    pub id_pointer: Spanned<String>,
}

/// A plain route (`[clock]`, `[fixtures.configure]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// HTTP method.
    pub method: Spanned<String>,
    /// Path template.
    pub path: Spanned<String>,
    /// JSON body template.
    #[serde(default)]
    pub body: Option<Spanned<toml::Value>>,
    /// Success statuses (default `[200]`).
    #[serde(default)]
    pub expect: Option<Vec<u16>>,
}

/// `[operations.<name>]` (and the route tables of `[auth]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSection {
    /// Declares the operation absent from this target, with the reason.
    #[serde(default)]
    pub unsupported: Option<Spanned<String>>,
    /// HTTP method.
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// Path template.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Query parameter templates.
    #[serde(default)]
    pub query: BTreeMap<String, Spanned<String>>,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// JSON body template: an inline table, a sub-table, or a string of JSON text.
    #[serde(default)]
    pub body: Option<Spanned<toml::Value>>,
    /// Success statuses (default `[200]`).
    #[serde(default)]
    pub expect: Option<Spanned<Vec<u16>>>,
    /// JSON pointer to the object's id in the response.
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// JSON pointer to the escrow state in the response.
    #[serde(default)]
    pub state: Option<Spanned<String>>,
    /// JSON pointer to the escrow version in the response.
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// JSON pointer to the amount received in the response.
    #[serde(default)]
    pub amount_received: Option<Spanned<String>>,
    /// JSON pointer to the array of items in a list response.
    #[serde(default)]
    pub items: Option<Spanned<String>>,
    /// JSON pointer to the pending approval's id when the target answers a two-person operation with one.
    #[serde(default)]
    pub pending_approval_pointer: Option<Spanned<String>>,
    /// Status that means "pending approval" (default 202) when `pending_approval_pointer` is given.
    #[serde(default)]
    pub pending_status: Option<u16>,
}

/// `[errors]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsSection {
    /// JSON pointer to the error code in an error body (default `/error`).
    #[serde(default)]
    pub error_pointer: Option<Spanned<String>>,
    /// `[errors.codes]`: target error code → canonical refusal code.
    #[serde(default)]
    pub codes: BTreeMap<String, Spanned<String>>,
    /// `[errors.status]`: HTTP status → canonical refusal code, when the code is absent or not in `codes`.
    #[serde(default)]
    pub status: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// `[socketio]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketIoSection {
    /// Engine.IO path (default `/socket.io/`).
    #[serde(default)]
    pub path: Option<String>,
    /// Namespace (default `/`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// CONNECT auth payload template (variable `{access_token}`); absent when the socket is authenticated by cookie.
    #[serde(default)]
    pub auth: Option<Spanned<toml::Value>>,
    /// Whether the session cookie is sent on the WebSocket upgrade.
    #[serde(default)]
    pub send_cookie: bool,
    /// Event that subscribes to one escrow; binds the operation `subscribe_escrow`.
    #[serde(default)]
    pub subscribe_event: Option<Spanned<String>>,
    /// Its payload template (variable `{escrow_id}`).
    #[serde(default)]
    pub subscribe_payload: Option<Spanned<toml::Value>>,
    /// JSON pointer in the ack that is `true` on success (default `/ok`).
    #[serde(default)]
    pub ack_ok_pointer: Option<Spanned<String>>,
    /// JSON pointer in the ack to the error code, mapped through `[errors.codes]` (default `/error`).
    #[serde(default)]
    pub ack_error_pointer: Option<Spanned<String>>,
    /// Event the server emits on every escrow change.
    #[serde(default)]
    pub updated_event: Option<String>,
    /// JSON pointer to the escrow id in the updated event's payload (default `/escrow_id`).
    #[serde(default)]
    pub updated_escrow_id_pointer: Option<Spanned<String>>,
    /// JSON pointer to the state in the updated event's payload (default `/state`).
    #[serde(default)]
    pub updated_state_pointer: Option<Spanned<String>>,
    /// JSON pointer to the version in the updated event's payload (default `/version`).
    #[serde(default)]
    pub updated_version_pointer: Option<Spanned<String>>,
}

/// How a provider's webhook deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookScheme {
    /// SHKeeper: hex HMAC-SHA256 over `"{timestamp}." + body`.
    Shkeeper,
    /// Request Network: hex HMAC-SHA256 over the body.
    RequestNetwork,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
}

impl WebhookScheme {
    /// The status a conforming receiver answers an accepted delivery with.
    pub const fn default_success_status(self) -> u16 {
        match self {
            WebhookScheme::Shkeeper => 202,
            WebhookScheme::RequestNetwork | WebhookScheme::StandardWebhooks => 200,
        }
    }
}

/// `[webhooks.<provider>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Path template of the endpoint (variable `{provider}`).
    pub path: Spanned<String>,
    /// Signature scheme.
    pub scheme: WebhookScheme,
    /// The shared secret, written in the file (test deployments only).
    #[serde(default)]
    pub secret: Option<super::Secret>,
    /// The environment variable that holds the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The status of an accepted delivery (default: the scheme's).
    #[serde(default)]
    pub success_status: Option<u16>,
}

/// `[providers]`: the environment variables through which the target learns the simulators' base URLs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSection {
    /// Variable for the SHKeeper simulator's URL.
    #[serde(default)]
    pub shkeeper: Option<String>,
    /// Variable for the Request Network simulator's URL.
    #[serde(default)]
    pub request_network: Option<String>,
}

/// `[capabilities]`: what the target exposes for testing; undeclared means `false`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesSection {
    /// A staff read of the ledger (`read_ledger`).
    #[serde(default)]
    pub ledger_read: Option<Spanned<bool>>,
    /// The dead-letter list (`list_dead_letters`).
    #[serde(default)]
    pub dead_letters: Option<Spanned<bool>>,
    /// The audit log (`read_audit_log`).
    #[serde(default)]
    pub audit_log: Option<Spanned<bool>>,
    /// A test clock (`[clock]`).
    #[serde(default)]
    pub test_clock: Option<Spanned<bool>>,
    /// Passkeys switched on.
    #[serde(default)]
    pub passkeys: Option<Spanned<bool>>,
    /// User fixtures (`[fixtures]`).
    #[serde(default)]
    pub fixtures: Option<Spanned<bool>>,
}

//! A target reached over HTTP through its profile: the adapter that turns the model's requests (its ids, its
//! tokens) into the target's routes, bodies and webhooks, learns the target's ids from its answers, and reduces
//! each answer to an [`Observed`] in canonical terms.
//!
//! Providers are the simulators: the adapter learns the invoice and payout ids the target sent them, and delivers
//! provider callbacks signed exactly as the provider signs them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use conform_reference::authz::Role;
use conform_reference::ids::SessionId;
use conform_reference::ids::{ApprovalId, EntryId, EscrowId, Timestamp, UserId};
use conform_reference::invariants::EscrowFacts;
use conform_reference::ledger::{Account, Cause, Entry, EntryKind, Posting, Provider};
use conform_reference::money::{Currency, Money};
use conform_reference::sessions::{AccessToken, RefreshToken, SignInName};
use conform_reference::world::{Accepted, NoticeKind, Op, Outcome, Request, World};
use reqwest::Method;
use serde_json::{Value, json};

mod passkeys;

use super::Observed;
use super::differential::{LedgerView, Target};
use crate::drive::http::{HttpDriver, Request as HttpRequest, Response};
use crate::drive::webhooks::{Damage, Delivery, ShkeeperPayment, ShkeeperSender, ShkeeperTransaction};
use crate::profile::{OperationBinding, Profile, Vars};
use crate::simulate::request_network::RequestNetworkSim;
use crate::simulate::shkeeper::ShkeeperSim;

/// Credentials of a cast member on the target.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    username: String,
    password: String,
    totp_seed: Vec<u8>,
}

/// The model's ids and tokens, and the target's.
#[derive(Debug, Default)]
struct Ids {
    users: HashMap<UserId, Member>,
    access: HashMap<AccessToken, String>,
    refresh: HashMap<RefreshToken, String>,
    sessions: HashMap<SessionId, String>,
    escrows: HashMap<EscrowId, String>,
    proofs: HashMap<EscrowId, String>,
    approvals: HashMap<ApprovalId, String>,
    dead_letters: Vec<String>,
    invoices: HashMap<String, String>,
    payouts: HashMap<EscrowId, (String, String)>,
    /// Escrows the target created where the model refused the creation for a protected field: AZ-8 lets a
    /// target ignore the field instead, so these exist on the target only, and are nobody else's.
    created_ignoring_fields: Vec<String>,
}

/// How the adapter puts the model's inauthentic deliveries (`authentic: false`) on the wire, for the byte-level
/// webhook suite. Without one it signs with a wrong key; with one it builds the genuine delivery and breaks it in
/// this one way, so that the model still predicts the outcome of every probe.
#[derive(Debug, Clone)]
pub enum Forgery {
    /// The genuine delivery with this damage (re-serialized body, a changed byte, an old secret…; WH-1, WH-8).
    Damaged(Damage),
    /// Signed correctly, at a timestamp this many seconds away from the target's clock (WH-2).
    SkewedTimestamp(i64),
    /// SHKeeper's legacy mode: the API-key header alone, no signature (WH-10).
    LegacyApiKeyOnly,
}

/// A delivery the adapter sent, and the target's answer to it.
#[derive(Debug, Clone)]
pub struct SentDelivery {
    /// What went on the wire.
    pub delivery: Delivery,
    /// The answer's status.
    pub status: u16,
    /// The answer's body.
    pub body: Vec<u8>,
}

/// A target behind a profile, with the SHKeeper simulator standing in for the provider.
pub struct HttpTarget {
    profile: Profile,
    http: HttpDriver,
    shkeeper: Arc<ShkeeperSim>,
    shkeeper_key: String,
    ids: Ids,
    /// Seconds the test clock was moved forward.
    clock_offset: i64,
    /// Makes usernames unique across runs against one long-lived target.
    run_tag: String,
    /// The target's ledger as read so far, page by page (the cursor that fetched each page, and its entries):
    /// the ledger is append-only, so each read fetches only the last page again and what follows it.
    ledger_pages: Vec<(Option<String>, Vec<Value>)>,
    /// How many ledger entries there were when this scenario began (`None` until its first read).
    ledger_start: Option<usize>,
    /// The dead-letter list as read so far, and its length when this scenario began.
    dead_letter_pages: Vec<(Option<String>, Vec<Value>)>,
    dead_letter_start: Option<usize>,
    /// How many invoices and payout tasks the simulator had when this scenario began: earlier ones belong to
    /// earlier scenarios.
    provider_marks: (usize, usize),
    /// Scenarios begun, for unique usernames.
    scenarios: u32,
    /// A support member of the adapter's own, for staff reads (ledger, dead letters), and its current token.
    observer_member: Option<Member>,
    observer: Option<String>,
    /// How inauthentic deliveries are forged (`None`: signed with a wrong key).
    forgery: Option<Forgery>,
    /// The provider (profile name) and secret the next webhook secret rotations name instead of the model's.
    rotation: Option<(String, String)>,
    /// The latest webhook delivery and its answer.
    last_delivery: Option<SentDelivery>,
    /// The escrow the next SHKeeper payment callback names in its metadata ([`HttpTarget::name_escrow_in_next_payment`]).
    payment_metadata: Option<EscrowId>,
    /// This scenario's passkey exchanges.
    passkey: passkeys::PasskeyState,
    /// What conform switched on the target through `[fixtures.configure]`, until it is put back.
    switches: passkeys::Switches,
    /// The Request Network simulator (the target's payment requests) and the secret its webhooks are signed with,
    /// once [`HttpTarget::with_request_network`] gave them: Request Network escrows can then be driven.
    request_network: Option<(Arc<RequestNetworkSim>, String)>,
    /// Request Network deliveries sent, for unique delivery ids.
    rn_deliveries: u128,
}

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl HttpTarget {
    /// An adapter for the target at the profile's base URL (`http`, which the caller may have set to the bound
    /// address of a target it started).
    pub fn new(
        profile: Profile,
        http: HttpDriver,
        shkeeper: Arc<ShkeeperSim>,
        shkeeper_key: String,
        run_tag: String,
    ) -> HttpTarget {
        HttpTarget {
            http,
            shkeeper,
            shkeeper_key,
            ids: Ids::default(),
            clock_offset: 0,
            run_tag,
            scenarios: 0,
            ledger_pages: Vec::new(),
            ledger_start: None,
            dead_letter_pages: Vec::new(),
            dead_letter_start: None,
            provider_marks: (0, 0),
            observer_member: None,
            observer: None,
            forgery: None,
            rotation: None,
            last_delivery: None,
            payment_metadata: None,
            passkey: passkeys::PasskeyState::default(),
            switches: passkeys::Switches::unknown(&profile),
            request_network: None,
            rn_deliveries: 0,
            profile,
        }
    }

    /// Lets the adapter drive Request Network escrows: it learns the target's payment requests from `simulator`
    /// and signs Request Network webhooks with the profile's secret for them (the simulator's when the profile's
    /// cannot be read), then with whatever a rotation sets.
    pub fn with_request_network(mut self, simulator: Arc<RequestNetworkSim>) -> HttpTarget {
        let profile_secret = self.profile.webhook("request_network").and_then(|h| h.secret().ok());
        let secret = profile_secret.map_or_else(|| simulator.webhook_secret(), |s| s.expose().to_owned());
        self.request_network = Some((simulator, secret));
        self
    }

    /// Makes the model's inauthentic deliveries take this form on the wire, until changed (`None`: signed with a
    /// wrong key).
    pub fn forge_as(&mut self, forgery: Option<Forgery>) {
        self.forgery = forgery;
    }

    /// Makes the model's webhook secret rotations rotate `provider` (its profile name) to `secret` with no
    /// overlap, until changed (`None`: the model's provider and a secret of the scenario's own).
    pub fn rotate_as(&mut self, rotation: Option<(String, String)>) {
        self.rotation = rotation;
    }

    /// The key SHKeeper deliveries are signed with.
    pub fn shkeeper_key(&self) -> &str {
        &self.shkeeper_key
    }

    /// Signs later SHKeeper deliveries with `key` (the target's secret after a rotation).
    pub fn set_shkeeper_key(&mut self, key: String) {
        self.shkeeper_key = key;
    }

    /// The latest webhook delivery the adapter sent, with the target's answer.
    pub fn last_delivery(&self) -> Option<&SentDelivery> {
        self.last_delivery.as_ref()
    }

    /// The dead letters the target has listed since the current scenario began, as it lists them.
    pub fn dead_letter_items(&self) -> Vec<Value> {
        let all: Vec<&Value> = self.dead_letter_pages.iter().flat_map(|(_, items)| items.iter()).collect();
        let start = self.dead_letter_start.unwrap_or(all.len());
        all.get(start..).unwrap_or_default().iter().map(|v| (*v).clone()).collect()
    }

    /// The target's profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The dead letters the target has listed since the current scenario began (read after every refused or
    /// dead-lettered delivery, where the profile declares the dead-letter list).
    pub fn dead_letters_seen(&self) -> usize {
        self.ids.dead_letters.len()
    }

    /// The newest access token of `user` that the model still accepts, with its target-side counterpart: how a
    /// caller outside HTTP (a Socket.IO handshake) authenticates as a cast member of the current scenario.
    pub fn live_access_token(&self, model: &World, user: UserId) -> Option<(AccessToken, String)> {
        self.ids
            .access
            .iter()
            .filter(|(token, _)| model.sessions().authenticate(**token, model.now()).is_ok_and(|a| a.user == user))
            .max_by_key(|(token, _)| **token)
            .map(|(token, target)| (*token, target.clone()))
    }

    /// The target's id of a model escrow of the current scenario.
    pub fn target_escrow_id(&self, escrow: EscrowId) -> Option<&str> {
        self.ids.escrows.get(&escrow).map(String::as_str)
    }

    /// An id of the model's (an event, an unknown reference) made unique to this scenario: the target remembers
    /// earlier scenarios' events, the model does not.
    fn scoped(&self, id: &str) -> String {
        format!("{id}-{}-s{}", self.run_tag, self.scenarios)
    }

    fn target_now(&self) -> i64 {
        now_seconds() + self.clock_offset
    }

    fn auth_headers(&self, token: Option<&String>) -> Vec<(String, String)> {
        let Some(token) = token else { return Vec::new() };
        let auth = self.profile.auth();
        match auth.cookie.as_ref() {
            Some(cookie) => vec![("Cookie".to_owned(), format!("{}={token}", cookie.get_ref()))],
            None => vec![("Authorization".to_owned(), format!("Bearer {token}"))],
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: Option<Value>,
    ) -> Result<Response, String> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("bad method {method}: {e}"))?;
        let mut request = HttpRequest::new(method, path).anonymous();
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.http.send(request).await.map_err(|e| e.to_string())
    }

    async fn call(&self, binding: &OperationBinding, vars: &Vars, token: Option<&String>) -> Result<Response, String> {
        let rendered = binding.render(vars).map_err(|e| e.to_string())?;
        let mut headers = self.auth_headers(token);
        headers.extend(rendered.headers.clone());
        self.send(&rendered.method, &rendered.path_and_query(), headers, rendered.body).await
    }

    fn observe(&self, binding: Option<&OperationBinding>, response: &Response) -> Observed {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let success = binding.map_or((200..300).contains(&response.status), |b| {
            b.is_success(response.status) || b.pending_status == Some(response.status)
        });
        if success {
            let state = binding
                .and_then(|b| b.pointers.state.as_deref())
                .and_then(|p| body.pointer(p))
                .and_then(Value::as_str)
                .and_then(|name| self.profile.canonical_state(name));
            // A two-person hold is reported with the canonical 202, whatever status the target uses for it.
            let pending = binding.is_some_and(|b| b.pending_status == Some(response.status));
            Observed::Accepted { status: if pending { 202 } else { response.status }, state }
        } else {
            Observed::Refused { status: response.status, refusal: self.profile.canonical_error(response.status, &body) }
        }
    }

    fn pointer(response: &Response, pointer: Option<&str>) -> Option<String> {
        let body: Value = serde_json::from_slice(&response.body).ok()?;
        match body.pointer(pointer?)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    async fn create_user(&mut self, user: UserId, role: Role) -> Observed {
        let Some(route) = self.profile.create_user_route() else {
            return Observed::Unknown { reason: "the profile has no fixture route to create users".into() };
        };
        let username = format!("{}-s{}-u{}@conform.test", self.run_tag, self.scenarios, user.0);
        let password = format!("pw-{}-{}", self.run_tag, user.0);
        let totp_seed_text = "JBSWY3DPEHPK3PXP".to_owned();
        let vars = Vars::new()
            .with("username", username.clone())
            .with("password", password.clone())
            .with("role", self.profile.role_name(role.name()).to_owned())
            .with("totp_seed", totp_seed_text.clone());
        let rendered = match route.render(&vars) {
            Ok(r) => r,
            Err(e) => return Observed::Unknown { reason: e.to_string() },
        };
        match self.send(&rendered.method, &rendered.path, Vec::new(), rendered.body).await {
            Err(reason) => Observed::Unknown { reason },
            Ok(response) if route.expect.contains(&response.status) => {
                let Some(id) = Self::pointer(&response, route.id_pointer.as_deref()) else {
                    return Observed::Unknown { reason: "the created user's id is not in the answer".into() };
                };
                let totp_seed = conform_embedded::decode_base32(&totp_seed_text).unwrap_or_default();
                self.ids.users.insert(user, Member { id, username, password, totp_seed });
                Observed::Accepted { status: response.status, state: None }
            }
            Ok(response) => self.observe(None, &response),
        }
    }

    async fn sign_in(&mut self, name: &SignInName, password_ok: bool, client: u32, predicted: &Outcome) -> Observed {
        let Some(binding) = self.profile.operation(conform_reference::ops::OperationKind::SignIn).cloned() else {
            return Observed::Unknown { reason: "the profile binds no sign-in".into() };
        };
        let (username, password) = match name.user().and_then(|u| self.ids.users.get(&u)) {
            Some(member) => (member.username.clone(), member.password.clone()),
            None => (format!("nobody-{}-{client}@conform.test", self.run_tag), "wrong".to_owned()),
        };
        let password = if password_ok { password } else { format!("{password}-wrong") };
        let vars = Vars::new().with("username", username).with("password", password);
        let rendered = match binding.render(&vars) {
            Ok(r) => r,
            Err(e) => return Observed::Unknown { reason: e.to_string() },
        };
        // Each cast member signs in from its own client address (SES-10 limits per client).
        // The model starts every scenario with fresh limits; the target remembers earlier scenarios' attempts, so
        // each scenario's clients get addresses of their own.
        let headers = vec![("X-Forwarded-For".to_owned(), self.client_address(client))];
        match self.send(&rendered.method, &rendered.path, headers, rendered.body).await {
            Err(reason) => Observed::Unknown { reason },
            Ok(response) => {
                let observed = self.observe(Some(&binding), &response);
                self.learn_tokens(&response, predicted);
                observed
            }
        }
    }

    /// The address cast member `client` signs in from in this scenario.
    fn client_address(&self, client: u32) -> String {
        let scenario = self.scenarios;
        format!("10.{}.{}.{}", (scenario / 250) % 250, scenario % 250, client % 250 + 1)
    }

    fn learn_tokens(&mut self, response: &Response, predicted: &Outcome) {
        let auth = self.profile.auth();
        let access = Self::pointer(response, auth.token_pointer.as_ref().map(|p| p.get_ref().as_str()));
        let refresh = Self::pointer(response, auth.refresh_token_pointer.as_ref().map(|p| p.get_ref().as_str()));
        let session = Self::pointer(response, auth.session_id_pointer.as_ref().map(|p| p.get_ref().as_str()));
        if let (Ok(Accepted::Tokens(tokens)), Some(access)) = (predicted, access) {
            self.ids.access.insert(tokens.access, access);
            if let Some(session) = session {
                self.ids.sessions.insert(tokens.session, session);
            }
            if let Some(refresh) = refresh {
                self.ids.refresh.insert(tokens.refresh, refresh);
            }
        }
    }

    fn member_of_token(&self, model: &World, token: Option<AccessToken>) -> Option<&Member> {
        let session = model.sessions().session_of_access(token?)?;
        let user = model.sessions().user_of(session)?;
        self.ids.users.get(&user)
    }

    /// Variables every operation may use, from the model's request.
    fn vars_for(&self, request: &Request, model: &World) -> Result<Vars, String> {
        let mut vars = Vars::new();
        if let Some(version) = request.if_match {
            vars.set("version", version.to_string());
        }
        if let Some(escrow) = request.op.escrow() {
            // An escrow the target never created (it refused the creation) cannot be named on the target.
            let id =
                self.ids.escrows.get(&escrow).ok_or_else(|| format!("the target has no counterpart of {escrow}"))?;
            vars.set("escrow_id", id.clone());
            // With no proof under review the route is still called, so that authorization and state are judged as
            // the model judges them; the id is one no target has given.
            let proof = self.ids.proofs.get(&escrow).map_or("00000000-0000-4000-8000-000000000000", String::as_str);
            vars.set("proof_id", proof.to_owned());
        }
        let member = self.member_of_token(model, request.auth);
        match &request.op {
            Op::StepUp { password_ok, totp_ok } => {
                // A caller the run does not know (anonymous, a dead token) still sends the route's fields.
                let (password, code) = match member {
                    Some(member) => {
                        (member.password.clone(), conform_embedded::totp(&member.totp_seed, self.target_now()))
                    }
                    None => ("unknown".to_owned(), "000000".to_owned()),
                };
                let password = if *password_ok { password } else { format!("{password}-wrong") };
                let code = if *totp_ok { code } else { "000000".to_owned() };
                vars.set("password", password).set("totp", code);
            }
            Op::CreateEscrow { seller, amount, provider, extra } => {
                let seller = self.ids.users.get(seller).ok_or("unknown seller")?;
                vars.set("seller_id", seller.id.clone())
                    .set("amount", amount.to_decimal_string())
                    .set("currency", amount.currency.code())
                    .set("provider", provider.name())
                    .set("description", "conform");
                if let Some(field) = extra {
                    vars.set("field", field_name(*field)).set("value", "completed");
                }
            }
            Op::UpdateEscrow { field, .. } => {
                vars.set("field", field_name(*field)).set("value", "released").set("description", "changed by conform");
            }
            Op::StartPayment { extra: Some(field), .. } => {
                vars.set("field", field_name(*field)).set("value", smuggled_value(*field));
            }
            Op::SubmitPaymentProof { proof, extra, .. } => {
                if let Some(field) = extra {
                    vars.set("field", field_name(*field)).set("value", smuggled_value(*field));
                }
                // Transaction hashes are unique to the scenario: the target remembers earlier scenarios' hashes (PRV-6
                // flags reuse on any escrow), the model does not.
                vars.set("tx_hash", format!("{}-{}-s{}", proof.tx_hash, self.run_tag, self.scenarios))
                    .set("amount", proof.amount.to_decimal_string())
                    .set("currency", proof.amount.currency.code())
                    .set("destination", proof.destination.clone());
            }
            Op::ResolveDispute { resolution, .. } => {
                let outcome = match resolution {
                    conform_reference::world::Resolution::Release => "release",
                    conform_reference::world::Resolution::Refund => "refund",
                };
                vars.set("resolution", outcome).set("reason", "conform");
            }
            Op::ApprovePending { approval } => {
                vars.set("approval_id", self.ids.approvals.get(approval).ok_or("unknown approval")?.clone());
            }
            Op::ChangeRole { user, role } => {
                vars.set("user_id", self.ids.users.get(user).ok_or("unknown user")?.id.clone())
                    .set("role", self.profile.role_name(role.name()).to_owned());
            }
            Op::RevokeUserSessions { user } | Op::DeleteAccount { user } => {
                vars.set("user_id", self.ids.users.get(user).ok_or("unknown user")?.id.clone());
            }
            Op::ReplayDeadLetter { dead_letter } => {
                let id = self.ids.dead_letters.get(dead_letter.0 as usize).ok_or("unknown dead letter")?;
                vars.set("dead_letter_id", id.clone());
            }
            Op::RotateWebhookSecret { provider } => match &self.rotation {
                Some((name, secret)) => {
                    vars.set("provider_name", name.clone()).set("secret", secret.clone()).set("overlap_seconds", 0);
                }
                // A new secret of this scenario's own; the generated scenarios never deliver this provider's webhooks.
                None => {
                    vars.set("provider_name", provider.name())
                        .set("secret", format!("conform-rotated-{}-s{}", self.run_tag, self.scenarios));
                }
            },
            Op::RevokeOwnSession { session } => {
                // A session the target never reported (no session id in its answers) gets an id no target has given.
                let id = self.ids.sessions.get(session).map_or("00000000-0000-4000-8000-000000000000", String::as_str);
                vars.set("session_id", id.to_owned());
            }
            Op::ChangePassword => {
                let password = member.map_or("unknown", |m| m.password.as_str());
                vars.set("password", password.to_owned()).set("new_password", format!("{password}-new"));
            }
            Op::ListEscrows => {
                vars.set("limit", 500);
            }
            Op::Refresh { token } => {
                vars.set("refresh_token", self.ids.refresh.get(token).cloned().unwrap_or_else(|| "unknown".into()));
            }
            _ => {}
        }
        vars.set("reason", "conform");
        Ok(vars)
    }

    /// What calling an operation of the profile takes: its binding, the variables of `request` and the caller's
    /// token on the target.
    fn bound_call(&self, request: &Request, model: &World) -> Result<(OperationBinding, Vars, Option<String>), String> {
        let kind = request.op.kind().ok_or("no operation")?;
        let binding =
            self.profile.operation(kind).cloned().ok_or_else(|| format!("the profile does not bind {kind}"))?;
        let vars = self.vars_for(request, model)?;
        let token =
            request.auth.map(|t| self.ids.access.get(&t).cloned().unwrap_or_else(|| "revoked-or-unknown".into()));
        Ok((binding, vars, token))
    }

    /// Sends `requests` to the target all at once and reduces each answer as [`Target::execute`] does, in the
    /// order given. For race checks: `execute` takes the adapter mutably (it learns ids from each answer), so it
    /// cannot have two requests in flight. Operations on escrows and SHKeeper deliveries only: nothing is learnt
    /// from the answers (a race creates no ids), and what the model predicts is the suite's to judge, over every
    /// sequential order.
    pub async fn send_concurrently(&self, requests: &[Request], model: &World) -> Vec<Observed> {
        let sends = requests.iter().map(|request| async move {
            if let Op::DeliverWebhook { notice, authentic, .. } = &request.op {
                let (delivery, _, _) = match self.shkeeper_delivery(notice, *authentic, model, None) {
                    Ok(rendered) => rendered,
                    Err(observed) => return observed,
                };
                return match self.http.send(delivery).await {
                    Err(e) => Observed::Unknown { reason: e.to_string() },
                    Ok(response) => self.observe(None, &response),
                };
            }
            let (binding, vars, token) = match self.bound_call(request, model) {
                Ok(call) => call,
                Err(reason) => return Observed::Unknown { reason },
            };
            match self.call(&binding, &vars, token.as_ref()).await {
                Err(reason) => Observed::Unknown { reason },
                Ok(response) => self.observe(Some(&binding), &response),
            }
        });
        futures_util::future::join_all(sends).await
    }

    /// Makes the next SHKeeper payment callback name `escrow` (the model's id) in a `metadata.escrow_id` field of
    /// its signed body, as a provider that echoes merchant metadata would. The model ignores metadata (LED-10:
    /// funds follow the server's invoice binding), so its prediction stands; only the wire form changes.
    pub fn name_escrow_in_next_payment(&mut self, escrow: EscrowId) {
        self.payment_metadata = Some(escrow);
    }

    /// The audit records the target lists for a cast member as actor (AZ-9), read with `reader`'s session (the
    /// audit log is for admins only); `None` when the profile declares no audit log. One page: the member is new to
    /// this scenario, so its records are few.
    pub async fn audit_records_of(&self, reader: AccessToken, actor: UserId) -> Option<Result<Vec<Value>, String>> {
        if !self.profile.capabilities().audit_log {
            return None;
        }
        let kind = conform_reference::ops::OperationKind::ReadAuditLog;
        let Some(binding) = self.profile.operation(kind) else {
            return Some(Err(format!("the profile does not bind {kind}")));
        };
        let read = async {
            let actor_id = self.ids.users.get(&actor).ok_or("the actor has no account on the target")?.id.clone();
            let token = self.ids.access.get(&reader).ok_or("the reader has no session on the target")?;
            let vars = Vars::new().with("actor_id", actor_id.clone()).with("limit", 500);
            let response = self.call(binding, &vars, Some(token)).await?;
            if !binding.is_success(response.status) {
                return Err(format!("{kind} answered {}", response.status));
            }
            let body: Value = serde_json::from_slice(&response.body).map_err(|e| format!("{kind}: {e}"))?;
            let items = binding.pointers.items.as_deref().and_then(|p| body.pointer(p)).unwrap_or(&body);
            let items = items.as_array().ok_or_else(|| format!("the {kind} answer has no item list"))?;
            // Kept only when a field names the actor: a target that ignores the filter lists everyone's records.
            let names_actor = |record: &Value| {
                record.as_object().is_some_and(|o| o.values().any(|v| v.as_str() == Some(actor_id.as_str())))
            };
            Ok(items.iter().filter(|r| names_actor(r)).cloned().collect())
        };
        Some(read.await)
    }

    /// After an accepted request: learn the ids the target gave (escrows, proofs, approvals, invoices, payouts).
    fn learn(
        &mut self,
        request: &Request,
        predicted: &Outcome,
        binding: &OperationBinding,
        response: &Response,
        model: &World,
    ) {
        match (&request.op, predicted) {
            (Op::CreateEscrow { .. }, Ok(Accepted::Escrow(id))) => {
                if let Some(target_id) = Self::pointer(response, binding.pointers.id.as_deref()) {
                    self.ids.escrows.insert(*id, target_id);
                }
            }
            (Op::SubmitPaymentProof { escrow, .. }, Ok(_)) => {
                if let Some(proof) = Self::pointer(response, binding.pointers.id.as_deref()) {
                    self.ids.proofs.insert(*escrow, proof);
                }
            }
            (Op::RotateWebhookSecret { provider }, Ok(_)) => {
                // Later Request Network deliveries are signed with the secret the target now holds.
                let rotated = match &self.rotation {
                    Some((name, secret)) if name == "request_network" => Some(secret.clone()),
                    Some(_) => None,
                    None if *provider == Provider::RequestNetwork => {
                        Some(format!("conform-rotated-{}-s{}", self.run_tag, self.scenarios))
                    }
                    None => None,
                };
                if let (Some(secret), Some((_, held))) = (rotated, self.request_network.as_mut()) {
                    *held = secret;
                }
            }
            (Op::ChangePassword, Ok(_)) => {
                let user = request
                    .auth
                    .and_then(|t| model.sessions().session_of_access(t))
                    .and_then(|session| model.sessions().user_of(session));
                if let Some(member) = user.and_then(|u| self.ids.users.get_mut(&u)) {
                    member.password = format!("{}-new", member.password);
                }
            }
            (Op::StartPayment { escrow, .. }, Ok(_))
                if model.escrow(*escrow).is_some_and(|e| e.provider == Provider::RequestNetwork) =>
            {
                // Request Network's webhooks name the payment request the target created for the escrow.
                let model_ref = model.escrow(*escrow).and_then(|e| e.invoice.clone());
                let known: Vec<&String> = self.ids.invoices.values().collect();
                let requests = self.request_network.as_ref().map(|(sim, _)| sim.requests()).unwrap_or_default();
                let newest = requests.iter().rev().find(|r| !known.contains(&&r.request_id)).cloned();
                if let (Some(model_ref), Some(request)) = (model_ref, newest) {
                    self.ids.invoices.entry(model_ref).or_insert(request.request_id);
                }
            }
            (Op::StartPayment { escrow, .. }, Ok(_)) => {
                let model_ref = model.escrow(*escrow).and_then(|e| e.invoice.clone());
                let known: Vec<&String> = self.ids.invoices.values().collect();
                let invoices = self.shkeeper.invoices();
                let this_scenario = invoices.get(self.provider_marks.0..).unwrap_or_default();
                let newest = this_scenario.iter().rev().find(|i| !known.contains(&&i.external_id)).cloned();
                if let (Some(model_ref), Some(invoice)) = (model_ref, newest) {
                    self.ids.invoices.entry(model_ref).or_insert(invoice.external_id);
                }
            }
            _ => {}
        }
        if let Ok(Accepted::PendingApproval(approval)) = predicted
            && let Some(id) = Self::pointer(response, binding.pointers.pending_approval.as_deref())
        {
            self.ids.approvals.insert(*approval, id);
        }
    }

    /// A list of escrows in the model's ids; escrows the run does not know count as others' unless the caller is
    /// staff (staff see every escrow, earlier scenarios' too).
    fn listed(
        &self,
        status: u16,
        binding: &OperationBinding,
        response: &Response,
        request: &Request,
        model: &World,
    ) -> Observed {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let items = binding.pointers.items.as_deref().and_then(|p| body.pointer(p)).unwrap_or(&body);
        let id_pointer = binding.pointers.id.clone().unwrap_or_else(|| "/id".to_owned());
        let staff = request
            .auth
            .and_then(|t| model.sessions().session_of_access(t))
            .and_then(|s| model.sessions().user_of(s))
            .and_then(|u| model.user(u))
            .is_some_and(|u| u.role.is_staff());
        if staff {
            // Staff see every escrow, earlier scenarios' too, over many pages: their lists are not compared yet.
            return Observed::Accepted { status, state: None };
        }
        let mut escrows = Vec::new();
        let mut foreign = 0;
        for item in items.as_array().into_iter().flatten() {
            let id = item.pointer(&id_pointer).and_then(Value::as_str).unwrap_or_default();
            match self.ids.escrows.iter().find(|(_, t)| t.as_str() == id) {
                Some((model_id, _)) => escrows.push(*model_id),
                None if self.ids.created_ignoring_fields.iter().any(|c| c == id) => {}
                None => foreign += 1,
            }
        }
        Observed::Listed { status, escrows, foreign }
    }

    /// The stuck-payout list in the model's ids (DRL-3). Staff see every stuck payout, earlier scenarios' too:
    /// only this scenario's escrows are compared, so escrows the run does not know are not counted.
    fn stuck_listed(&self, status: u16, binding: &OperationBinding, response: &Response) -> Observed {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let items = binding.pointers.items.as_deref().and_then(|p| body.pointer(p)).unwrap_or(&body);
        // The canonical API names the escrow of a stuck payout `escrow_id`.
        let id_pointer = binding.pointers.id.clone().unwrap_or_else(|| "/escrow_id".to_owned());
        let escrows = items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.pointer(&id_pointer).and_then(Value::as_str))
            .filter_map(|id| self.ids.escrows.iter().find(|(_, t)| t.as_str() == id).map(|(m, _)| *m))
            .collect();
        Observed::Listed { status, escrows, foreign: 0 }
    }

    /// Learns the payout the target asked the provider for, for each escrow the model has one for.
    fn learn_payouts(&mut self, model: &World) {
        let all = self.shkeeper.payouts();
        let tasks = all.get(self.provider_marks.1..).unwrap_or_default();
        for request in model.payout_requests() {
            if self.ids.payouts.contains_key(&request.escrow) {
                continue;
            }
            let taken: Vec<&String> = self.ids.payouts.values().map(|(task, _)| task).collect();
            if let Some(task) = tasks.iter().find(|t| !taken.contains(&&t.task_id)) {
                let external = task.external_id.clone().unwrap_or_else(|| task.task_id.clone());
                self.ids.payouts.insert(request.escrow, (task.task_id.clone(), external));
            }
        }
    }

    async fn deliver(
        &mut self,
        provider: Provider,
        notice: &conform_reference::world::Notice,
        authentic: bool,
        model: &World,
    ) -> Observed {
        let metadata = self.payment_metadata.take();
        let rendered = match provider {
            Provider::RequestNetwork => self.request_network_delivery(notice, authentic, model),
            _ => self.shkeeper_delivery(notice, authentic, model, metadata),
        };
        let (request, delivery, success_status) = match rendered {
            Ok(rendered) => rendered,
            Err(observed) => return observed,
        };
        match self.http.send(request).await {
            Err(e) => Observed::Unknown { reason: e.to_string() },
            Ok(response) => {
                let observed = self.observe(None, &response);
                self.last_delivery =
                    Some(SentDelivery { delivery, status: response.status, body: response.body.clone() });
                if matches!(observed, Observed::Refused { .. }) || response.status == success_status {
                    self.refresh_dead_letters().await;
                }
                observed
            }
        }
    }

    /// A delivery's answer carries no escrow, so the state it left is read back (by the adapter's staff member)
    /// when the model says the delivery moved a known escrow: the comparison then judges the transition at the
    /// delivery that made it (ESC-3/4/16/17), instead of at some later request that the wrong state lets through.
    async fn escrow_after_delivery(&mut self, observed: Observed, predicted: &Outcome) -> Observed {
        let (Observed::Accepted { status, state: None }, Ok(Accepted::Escrow(escrow))) = (&observed, predicted) else {
            return observed;
        };
        let Some(id) = self.ids.escrows.get(escrow).cloned() else { return observed };
        let kind = conform_reference::ops::OperationKind::GetEscrow;
        let pointer = self.profile.operation(kind).and_then(|b| b.pointers.state.clone());
        let vars = Vars::new().with("escrow_id", id);
        let state = match (self.staff_read(kind, &vars).await, pointer) {
            (Some(body), Some(pointer)) => {
                body.pointer(&pointer).and_then(Value::as_str).and_then(|name| self.profile.canonical_state(name))
            }
            _ => None,
        };
        Observed::Accepted { status: *status, state }
    }

    /// The Request Network webhook for a model notice (`shared/FACTS.md`): `payment.confirmed` once the escrow's
    /// cumulative payment reaches what is due, else `payment.partial`; `payment.processing` for a pending payment;
    /// `payment.refunded` for a refund confirmation, all naming the payment request the target created. Signed with
    /// hex HMAC-SHA256 over the raw body (a wrong secret when not `authentic`), with a delivery id of its own.
    /// Request Network has no payout callback: a payout's confirmation or failure has no wire form.
    fn request_network_delivery(
        &mut self,
        notice: &conform_reference::world::Notice,
        authentic: bool,
        model: &World,
    ) -> Result<(HttpRequest, Delivery, u16), Observed> {
        use crate::drive::webhooks::{RequestNetworkEvent, RequestNetworkSender, ulid_like};
        let unknown = |reason: &str| Observed::Unknown { reason: reason.to_owned() };
        let Some((_, held)) = &self.request_network else {
            return Err(unknown("the adapter was given no Request Network simulator"));
        };
        let Some(hook) = self.profile.webhook("request_network") else {
            return Err(unknown("the profile binds no Request Network webhook"));
        };
        let secret = held.clone();
        let escrow = match &notice.kind {
            NoticeKind::Payment(_) | NoticeKind::Pending => {
                model.escrows().iter().find(|e| e.invoice.as_deref() == Some(notice.reference.as_str()))
            }
            NoticeKind::RefundConfirmed => model
                .escrows()
                .iter()
                .find(|e| conform_reference::providers::payout_idempotency_key(e.id) == notice.reference),
            NoticeKind::PayoutConfirmed | NoticeKind::PayoutFailed => {
                return Err(unknown("Request Network sends no payout callback"));
            }
        };
        let invoice = escrow.and_then(|e| e.invoice.as_ref()).and_then(|i| self.ids.invoices.get(i)).cloned();
        let request_id = invoice.unwrap_or_else(|| self.scoped(&format!("unknown-{}", notice.reference)));
        let due = escrow.map_or(Money::zero(Currency::Usd), |e| e.amount);
        let received = escrow.map_or(0, |e| e.received);
        let (event, amount) = match &notice.kind {
            NoticeKind::Payment(paid) if paid.currency == due.currency && received >= due.minor => {
                ("payment.confirmed", *paid)
            }
            NoticeKind::Payment(paid) => ("payment.partial", *paid),
            NoticeKind::Pending => ("payment.processing", due),
            _ => {
                let refund = escrow.and_then(|e| model.payout_requests().iter().rev().find(|r| r.escrow == e.id));
                ("payment.refunded", refund.map_or(due, |r| r.amount))
            }
        };
        let body = RequestNetworkEvent {
            event: event.to_owned(),
            request_id: request_id.clone(),
            payment_reference: format!("0x{request_id}"),
            amount: amount.to_decimal_string(),
            total_amount_paid: Money::from_minor(received, due.currency).to_decimal_string(),
            expected_amount: due.to_decimal_string(),
            timestamp: "2026-01-01T00:00:00.000Z".to_owned(),
            tx_hash: self.scoped(&notice.event),
            payer_address: "0x00000000000000000000000000000000000000aa".to_owned(),
            network: "sepolia".to_owned(),
            currency: amount.currency.code().to_owned(),
            payment_currency: "USDC".to_owned(),
            sub_status: matches!(notice.kind, NoticeKind::Pending).then(|| "confirming".to_owned()),
            fees: Vec::new(),
        }
        .to_body();
        let key = if authentic { secret.clone() } else { format!("{secret}-forged") };
        self.rn_deliveries += 1;
        let delivery_id = ulid_like(now_seconds() as u64 * 1000, self.rn_deliveries);
        let path = hook.path.replace("{provider}", "request_network");
        let delivery = RequestNetworkSender::new(key.as_str()).deliver(&path, &body, &delivery_id, 0);
        let mut request =
            HttpRequest::new(Method::POST, path).anonymous().raw(delivery.body.clone(), "application/json");
        for (name, value) in delivery.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("content-type")) {
            request = request.header(name.clone(), value.clone());
        }
        Ok((request, delivery, hook.success_status))
    }

    /// The SHKeeper callback for a model notice, signed as SHKeeper signs it (with a wrong key when not
    /// `authentic`), and the status that means "delivered"; `metadata` names an escrow (the model's id) in an extra
    /// `metadata.escrow_id` field of a payment's body.
    fn shkeeper_delivery(
        &self,
        notice: &conform_reference::world::Notice,
        authentic: bool,
        model: &World,
        metadata: Option<EscrowId>,
    ) -> Result<(HttpRequest, Delivery, u16), Observed> {
        let Some(hook) = self.profile.webhook("shkeeper") else {
            return Err(Observed::Unknown { reason: "the profile binds no SHKeeper webhook".into() });
        };
        let forgery = if authentic { None } else { self.forgery.clone() };
        let key = if authentic || forgery.is_some() {
            self.shkeeper_key.clone()
        } else {
            format!("{}-forged", self.shkeeper_key)
        };
        let timestamp = self.target_now();
        let body = match &notice.kind {
            NoticeKind::Payment(paid) => {
                let external_id = self
                    .ids
                    .invoices
                    .get(&notice.reference)
                    .cloned()
                    .unwrap_or_else(|| self.scoped(&format!("unknown-{}", notice.reference)));
                let amount = paid.to_decimal_string();
                let tx = ShkeeperTransaction {
                    txid: self.scoped(&notice.event),
                    date: "2026-01-01 00:00:00".into(),
                    amount_crypto: amount.clone(),
                    amount_fiat: amount.clone(),
                    amount_fiat_without_fee: amount.clone(),
                    fee_fiat: "0".into(),
                    trigger: true,
                    crypto: "USDT".into(),
                };
                let payment = ShkeeperPayment {
                    external_id,
                    crypto: "USDT".into(),
                    addr: "conform-deposit-address".into(),
                    fiat: paid.currency.code().into(),
                    balance_fiat: amount.clone(),
                    balance_crypto: amount,
                    paid: true,
                    status: "PAID".into(),
                    transactions: vec![tx],
                    fee_percent: "0".into(),
                    fee_fixed: "0".into(),
                    fee_policy: "PERCENT_FEE".into(),
                    overpaid_fiat: "0".into(),
                };
                match metadata.and_then(|escrow| self.ids.escrows.get(&escrow)) {
                    None => payment.to_body(),
                    Some(named) => {
                        let mut value = serde_json::to_value(&payment).unwrap_or(Value::Null);
                        value["metadata"] = json!({ "escrow_id": named });
                        crate::drive::webhooks::canonical_json(&value)
                    }
                }
            }
            NoticeKind::Pending => {
                return Err(Observed::Unknown { reason: "SHKeeper sends no pending callback".into() });
            }
            kind => {
                let escrow = model
                    .escrows()
                    .iter()
                    .find(|e| conform_reference::providers::payout_idempotency_key(e.id) == notice.reference);
                let (task, external) = escrow.and_then(|e| self.ids.payouts.get(&e.id).cloned()).unwrap_or_else(|| {
                    let unknown = self.scoped(&format!("unknown-{}", notice.reference));
                    (unknown.clone(), unknown)
                });
                let amount = escrow
                    .and_then(|e| model.payout_requests().iter().rev().find(|r| r.escrow == e.id))
                    .map(|r| r.amount);
                let amount = amount.unwrap_or(Money::zero(Currency::Usd));
                let status = if matches!(kind, NoticeKind::PayoutFailed) { "FAIL" } else { "SUCCESS" };
                let value = json!({
                    "payout_id": task, "external_id": external, "tx_hash": self.scoped(&notice.event), "status": status,
                    "amount": amount.to_decimal_string(), "crypto": "USDT", "amount_fiat": amount.to_decimal_string(),
                    "currency_fiat": amount.currency.code(), "timestamp": timestamp,
                });
                crate::drive::webhooks::canonical_json(&value)
            }
        };
        let path = hook.path.replace("{provider}", "shkeeper");
        let delivery = match forgery {
            None => ShkeeperSender::new(key.as_str()).deliver(&path, &body, timestamp),
            Some(Forgery::SkewedTimestamp(seconds)) => {
                ShkeeperSender::new(key.as_str()).deliver(&path, &body, timestamp + seconds)
            }
            Some(Forgery::LegacyApiKeyOnly) => ShkeeperSender::legacy(key.as_str()).deliver(&path, &body, timestamp),
            Some(Forgery::Damaged(damage)) => {
                match ShkeeperSender::new(key.as_str()).deliver(&path, &body, timestamp).damaged(&damage) {
                    Ok(damaged) => damaged,
                    Err(e) => return Err(Observed::Unknown { reason: format!("cannot forge the delivery: {e}") }),
                }
            }
        };
        let mut request =
            HttpRequest::new(Method::POST, path).anonymous().raw(delivery.body.clone(), "application/json");
        for (name, value) in delivery.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("content-type")) {
            request = request.header(name.clone(), value.clone());
        }
        Ok((request, delivery, hook.success_status))
    }

    async fn observer_token(&mut self) -> Option<String> {
        if self.observer.is_some() {
            return self.observer.clone();
        }
        if self.observer_member.is_none() {
            // The adapter's own support member: staff reads without touching the cast's sessions.
            let user = UserId(u32::MAX);
            if !matches!(self.create_user(user, Role::Support).await, Observed::Accepted { .. }) {
                return None;
            }
            self.observer_member = self.ids.users.remove(&user);
        }
        let member = self.observer_member.clone()?;
        let binding = self.profile.operation(conform_reference::ops::OperationKind::SignIn)?.clone();
        let vars = Vars::new().with("username", member.username).with("password", member.password);
        let rendered = binding.render(&vars).ok()?;
        let headers = vec![("X-Forwarded-For".to_owned(), "10.251.0.1".to_owned())];
        let response = self.send(&rendered.method, &rendered.path, headers, rendered.body).await.ok()?;
        let pointer = self.profile.auth().token_pointer.as_ref().map(|p| p.get_ref().clone());
        self.observer = Self::pointer(&response, pointer.as_deref());
        self.observer.clone()
    }

    async fn staff_read(&mut self, op: conform_reference::ops::OperationKind, vars: &Vars) -> Option<Value> {
        let binding = self.profile.operation(op)?.clone();
        let mut response = None;
        // Twice at most: the observer's session may have expired when the test clock moved.
        for _ in 0..2 {
            let token = self.observer_token().await?;
            let answer = self.call(&binding, vars, Some(&token)).await.ok()?;
            if answer.status != 401 {
                response = Some(answer);
                break;
            }
            self.observer = None;
        }
        let response = response?;
        let body: Value = serde_json::from_slice(&response.body).ok()?;
        binding.is_success(response.status).then_some(body)
    }

    async fn refresh_dead_letters(&mut self) {
        if !self.profile.capabilities().dead_letters {
            return;
        }
        let pages = std::mem::take(&mut self.dead_letter_pages);
        let Ok(pages) = self.fetch_pages(conform_reference::ops::OperationKind::ListDeadLetters, pages).await else {
            return;
        };
        self.dead_letter_pages = pages;
        // The list is in arrival order; the ones after this scenario's start are this scenario's, in order.
        let ids: Vec<String> = self
            .dead_letter_pages
            .iter()
            .flat_map(|(_, items)| items.iter())
            .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let start = *self.dead_letter_start.get_or_insert(ids.len());
        self.ids.dead_letters = ids.get(start..).unwrap_or_default().to_vec();
    }

    /// Brings a cached staff list (ledger, dead letters) up to date: the last page again (it may have grown), then
    /// every page after it. Both lists are append-only, so the earlier pages never change.
    async fn fetch_pages(
        &mut self,
        op: conform_reference::ops::OperationKind,
        mut pages: Vec<(Option<String>, Vec<Value>)>,
    ) -> Result<Vec<(Option<String>, Vec<Value>)>, String> {
        let items_pointer = self.profile.operation(op).and_then(|b| b.pointers.items.clone());
        let mut cursor = pages.pop().and_then(|(cursor, _)| cursor);
        // A bound on pages, so a target whose cursor never ends cannot hang the run.
        for _ in 0..1000 {
            // Small pages: the last page is read again after every request, so its size is the cost of each read.
            let mut vars = Vars::new().with("limit", 100);
            if let Some(cursor) = &cursor {
                vars.set("cursor", cursor.clone());
            }
            let body = self.staff_read(op, &vars).await.ok_or_else(|| format!("{op} could not be read"))?;
            let items = items_pointer.as_deref().and_then(|p| body.pointer(p)).unwrap_or(&body);
            let items = items.as_array().cloned().ok_or_else(|| format!("the {op} answer has no item list"))?;
            // The canonical API's cursor field; a target that pages otherwise is read from its first page only.
            let next = body.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
            pages.push((cursor.clone(), items));
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(pages),
            }
        }
        Err(format!("{op} has more than 1000 pages"))
    }

    fn parse_account(&self, text: &str) -> Option<Account> {
        let reverse = |target: &str| self.ids.escrows.iter().find(|(_, t)| t.as_str() == target).map(|(m, _)| *m);
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        Some(match kind {
            "provider" => Account::Provider(Provider::ALL.into_iter().find(|p| p.name() == rest)?),
            "escrow" => Account::Escrow(reverse(rest)?),
            "payout" => Account::Payout(reverse(rest)?),
            "refund" => Account::Refund(reverse(rest)?),
            "buyer_credit" => Account::BuyerCredit(
                self.ids.users.iter().find(|(_, m)| m.id == rest).map(|(u, _)| *u).unwrap_or(UserId(u32::MAX)),
            ),
            "suspense" => Account::Suspense,
            "fees" => Account::Fees,
            _ => return None,
        })
    }

    fn parse_entries(&self, items: &[Value]) -> Result<Vec<Entry>, String> {
        let mut entries = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let text = |field: &str| item.get(field).and_then(Value::as_str).unwrap_or("");
            let escrow_target = text("escrow_id");
            let escrow = self.ids.escrows.iter().find(|(_, t)| t.as_str() == escrow_target).map(|(m, _)| *m);
            if !escrow_target.is_empty() && escrow.is_none() {
                // An escrow of another run on the same target: not this run's business.
                continue;
            }
            let kind = match text("kind") {
                "payment" => EntryKind::Payment,
                "suspense" | "unmatched" => EntryKind::Unmatched,
                "release" => EntryKind::Release,
                "refund" => EntryKind::Refund,
                "payout_confirmed" => EntryKind::PayoutConfirmed,
                "refund_confirmed" => EntryKind::RefundConfirmed,
                other => return Err(format!("entry {index}: unknown kind {other:?}")),
            };
            let mut postings = Vec::new();
            for posting in item.get("postings").and_then(Value::as_array).into_iter().flatten() {
                let field = |f: &str| posting.get(f).and_then(Value::as_str).unwrap_or("");
                let Some(account) = self.parse_account(field("account")) else { continue };
                let currency = Currency::parse(field("currency")).map_err(|e| format!("entry {index}: {e}"))?;
                let amount = field("amount");
                let (negative, digits) = amount.strip_prefix('-').map_or((false, amount), |d| (true, d));
                let minor = Money::parse(digits, currency).map_err(|e| format!("entry {index}: {e}"))?.minor;
                postings.push(Posting { account, currency, amount: if negative { -minor } else { minor } });
            }
            entries.push(Entry {
                id: EntryId(entries.len() as u32),
                cause: Cause::Action(text("cause").to_owned()),
                escrow,
                time: Timestamp(0),
                kind,
                invoice: None,
                postings,
            });
        }
        Ok(entries)
    }
}

/// The value a mass-assignment probe sends for `field` (those of `contracts/authorization-matrix.toml`): one that
/// would help the caller if it were applied.
fn smuggled_value(field: conform_reference::world::EscrowField) -> Value {
    use conform_reference::world::EscrowField as F;
    match field {
        F::Flagged => Value::Bool(false),
        F::Status => Value::from("approved"),
        F::Amount => Value::from("0.01"),
        F::State => Value::from("funded"),
        _ => Value::from("completed"),
    }
}

fn field_name(field: conform_reference::world::EscrowField) -> &'static str {
    use conform_reference::world::EscrowField as F;
    match field {
        F::Description => "description",
        F::State => "state",
        F::BuyerId => "buyer_id",
        F::SellerId => "seller_id",
        F::Amount => "amount",
        F::AmountReceived => "amount_received",
        F::Id => "id",
        F::Status => "status",
        F::Currency => "currency",
        F::Version => "version",
        F::Role => "role",
        F::Flagged => "flagged",
    }
}

impl Target for HttpTarget {
    fn begin_scenario(&mut self) {
        self.scenarios += 1;
        self.payment_metadata = None;
        self.ledger_start = None;
        self.dead_letter_start = None;
        self.provider_marks = (self.shkeeper.invoices().len(), self.shkeeper.payouts().len());
        // The model starts with every provider up.
        self.shkeeper.set_outage(crate::simulate::Outage::None);
        // A suite's forgeries and rotations belong to its scenario; the key stays, as the target's secret does.
        self.forgery = None;
        self.rotation = None;
        self.last_delivery = None;
        self.ids = Ids::default();
        self.passkey = passkeys::PasskeyState::default();
        // The target's clock keeps its offset: the model's clock starts again, but the target's cannot go back.
    }

    async fn execute(&mut self, request: &Request, predicted: &Outcome, model: &World) -> Observed {
        if self.dead_letter_start.is_none() {
            // The model starts with passkeys as launched and every provider on: so must the target. A switch that
            // cannot be put back shows as differences in this scenario.
            let _ = self.restore_configuration().await;
            // Where this scenario's dead letters begin, before any of them can exist.
            self.refresh_dead_letters().await;
        }
        let observed = match &request.op {
            Op::CreateUser { role } => match predicted {
                Ok(Accepted::User(user)) => self.create_user(*user, *role).await,
                _ => Observed::Unknown { reason: "the model refused a fixture".into() },
            },
            Op::SignIn { name, password_ok, client } => self.sign_in(name, *password_ok, client.0, predicted).await,
            Op::DeliverWebhook { provider, notice, authentic } => {
                let observed = self.deliver(*provider, notice, *authentic, model).await;
                self.escrow_after_delivery(observed, predicted).await
            }
            Op::SetProviderStatus { provider, status } => {
                // Only the SHKeeper simulator stands in for a provider here; the others' escrows are not generated
                // for this target (see its abilities), so their availability changes nothing observable.
                if *provider == Provider::Shkeeper {
                    use crate::simulate::Outage;
                    self.shkeeper.set_outage(if status.available { Outage::None } else { Outage::Unavailable });
                }
                // Switching a provider off or on is the target's configuration (PRV-3).
                self.switch_provider(*provider, status.enabled).await
            }
            Op::SetPasskeys { enabled } => self.switch_passkeys(*enabled).await,
            Op::PasskeyRegisterOptions
            | Op::PasskeyRegister { .. }
            | Op::PasskeySignInOptions
            | Op::PasskeySignIn { .. } => self.passkey_call(request, predicted, model).await,
            Op::AdvanceClock { seconds } => match self.profile.clock_route() {
                None => Observed::Unknown { reason: "the profile has no test clock".into() },
                Some(route) => match route.render(&Vars::new().with("seconds", *seconds)) {
                    Err(e) => Observed::Unknown { reason: e.to_string() },
                    Ok(rendered) => {
                        match self.send(&rendered.method, &rendered.path, Vec::new(), rendered.body).await {
                            Err(reason) => Observed::Unknown { reason },
                            Ok(response) => {
                                self.clock_offset += seconds;
                                self.observe(None, &response)
                            }
                        }
                    }
                },
            },
            op => {
                let (binding, vars, token) = match self.bound_call(request, model) {
                    Ok(call) => call,
                    Err(reason) => return Observed::Unknown { reason },
                };
                match self.call(&binding, &vars, token.as_ref()).await {
                    Err(reason) => Observed::Unknown { reason },
                    Ok(response) => {
                        let mut observed = self.observe(Some(&binding), &response);
                        if let (Op::CreateEscrow { extra: Some(_), .. }, Err(_), Observed::Accepted { .. }) =
                            (op, predicted, &observed)
                            && let Some(id) = Self::pointer(&response, binding.pointers.id.as_deref())
                        {
                            self.ids.created_ignoring_fields.push(id);
                        }
                        if let (Op::ListEscrows, Observed::Accepted { status, .. }) = (op, &observed) {
                            observed = self.listed(*status, &binding, &response, request, model);
                        }
                        if let (Op::ListStuckPayouts, Observed::Accepted { status, .. }) = (op, &observed) {
                            observed = self.stuck_listed(*status, &binding, &response);
                        }
                        if matches!(observed, Observed::Accepted { .. } | Observed::Listed { .. }) {
                            if matches!(op, Op::Refresh { .. }) {
                                self.learn_tokens(&response, predicted);
                            }
                            self.learn(request, predicted, &binding, &response, model);
                        }
                        observed
                    }
                }
            }
        };
        self.learn_payouts(model);
        observed
    }

    async fn ledger(&mut self, model: &World) -> Option<Result<LedgerView, String>> {
        if !self.profile.capabilities().ledger_read {
            return None;
        }
        let pages = std::mem::take(&mut self.ledger_pages);
        match self.fetch_pages(conform_reference::ops::OperationKind::ReadLedger, pages).await {
            Ok(pages) => self.ledger_pages = pages,
            Err(reason) => return Some(Err(reason)),
        }
        let all: Vec<Value> = self.ledger_pages.iter().flat_map(|(_, items)| items.iter().cloned()).collect();
        let start = *self.ledger_start.get_or_insert(all.len());
        let escrows: Vec<EscrowFacts> = model
            .escrow_facts()
            .into_iter()
            .filter(|f| self.ids.escrows.contains_key(&f.id))
            .map(|f| EscrowFacts { received: None, invoice: None, ..f })
            .collect();
        Some(self.parse_entries(all.get(start..).unwrap_or_default()).map(|entries| LedgerView { entries, escrows }))
    }
}

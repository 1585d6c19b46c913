//! The REST API of `contracts/openapi.yaml`: routes, request parsing and the handlers. Each handler does its
//! checks and writes in one critical section of the state; provider calls happen outside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State as AxState};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use conform_reference::authz::Role;
use conform_reference::escrow::{EscrowEvent, EscrowState, Proof, transition};
use conform_reference::ids::EscrowId;
use conform_reference::ledger::Provider;
use conform_reference::money::{Currency, Money};
use conform_reference::ops::OperationKind as Op;
use conform_reference::providers::invoice_external_id;
use conform_reference::refusal::Refusal;
use conform_reference::world::{PendingAction, Resolution};
use serde_json::{Map, Value, json};

use crate::faults::Fault;
use crate::outbound;
use crate::state::{Caller, PayoutJob, Route, Shared, State};
use crate::util::{ApiError, decode_base32, json_response, parse_rfc3339, rfc3339, system_now};

pub(crate) type App = Arc<Shared>;
type Res = Result<Response, ApiError>;
/// An answer with the payouts to send before it goes out.
type Finished = (Res, Vec<PayoutJob>);

/// The whole REST router.
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/v1/auth/sign-in", post(sign_in))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{session_id}", delete(revoke_own_session))
        .route("/v1/auth/step-up", post(step_up))
        .route("/v1/auth/password", post(change_password))
        .route("/v1/auth/passkeys/registration/options", post(passkey_register_options))
        .route("/v1/auth/passkeys/registration", post(passkey_register))
        .route("/v1/auth/passkeys/authentication/options", post(passkey_sign_in_options))
        .route("/v1/auth/passkeys/authentication", post(passkey_sign_in))
        .route("/v1/escrows", post(create_escrow).get(list_escrows))
        .route("/v1/escrows/{escrow_id}", get(get_escrow).patch(update_escrow))
        .route("/v1/escrows/{escrow_id}/start-payment", post(start_payment))
        .route("/v1/escrows/{escrow_id}/payment-proofs", post(submit_proof))
        .route("/v1/escrows/{escrow_id}/cancel", post(cancel))
        .route("/v1/escrows/{escrow_id}/mark-delivered", post(mark_delivered))
        .route("/v1/escrows/{escrow_id}/confirm-receipt", post(confirm_receipt))
        .route("/v1/escrows/{escrow_id}/disputes", post(open_dispute))
        .route("/v1/escrows/{escrow_id}/refund", post(refund_voluntarily))
        .route("/v1/admin/escrows/{escrow_id}/resolve", post(resolve))
        .route("/v1/admin/escrows/{escrow_id}/proofs/{proof_id}/approve", post(approve_proof))
        .route("/v1/admin/escrows/{escrow_id}/proofs/{proof_id}/reject", post(reject_proof))
        .route("/v1/admin/approvals/{approval_id}/approve", post(approve_pending))
        .route("/v1/admin/escrows/{escrow_id}/retry-payout", post(retry_payout))
        .route("/v1/admin/payouts/stuck", get(stuck_payouts))
        .route("/v1/admin/dead-letters", get(list_dead_letters))
        .route("/v1/admin/dead-letters/{dead_letter_id}/replay", post(replay_dead_letter))
        .route("/v1/admin/webhook-secrets/{provider}/rotate", post(rotate_secret))
        .route("/v1/admin/users/{user_id}/role", put(change_role))
        .route("/v1/admin/users/{user_id}", delete(delete_account))
        .route("/v1/admin/users/{user_id}/sessions", delete(revoke_user_sessions))
        .route("/v1/admin/audit-log", get(audit_log))
        .route("/v1/admin/ledger", get(ledger))
        .route("/v1/webhooks/shkeeper", post(webhook_shkeeper))
        .route("/v1/webhooks/request-network", post(webhook_request_network))
        .route("/v1/webhooks/standard/{provider}", post(webhook_standard))
        .route("/v1/test/users", post(test_users))
        .route("/v1/test/clock", post(test_clock))
        .route("/v1/test/config", post(test_config))
        .fallback(fallback)
        .with_state(app)
        .layer(axum::middleware::from_fn(access_log))
}

/// With `CONFORM_EMBEDDED_LOG` set, one line per request on stderr: method, path and query, status, time.
async fn access_log(req: Request, next: axum::middleware::Next) -> Response {
    if std::env::var_os("CONFORM_EMBEDDED_LOG").is_none() {
        return next.run(req).await;
    }
    let line = format!("{} {}", req.method(), req.uri());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    eprintln!("conform-embedded: {line} -> {} ({} ms)", resp.status().as_u16(), started.elapsed().as_millis());
    resp
}

async fn fallback() -> Response {
    ApiError::from(Refusal::NotFound).into_response()
}

fn done(r: Res) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

// -------------------------------------------------------------------------------------------------------------
// Request parsing

struct Req {
    headers: HeaderMap,
    body: Bytes,
    query: Vec<(String, String)>,
    peer: Option<SocketAddr>,
}

async fn read(app: &Shared, req: Request) -> Result<Req, ApiError> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let query = req.uri().query().map(parse_query).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, app.cfg.body_limit)
        .await
        .map_err(|_| ApiError::new(413, "validation_failed", "the request body is too large"))?;
    Ok(Req { headers: parts.headers, body, query, peer })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

impl Req {
    /// A query parameter; an empty one counts as absent (`?cursor=` is the first page).
    fn q(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn bearer(&self) -> Option<&str> {
        let value = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }

    fn if_match(&self) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.headers.get(header::IF_MATCH) else { return Ok(None) };
        let text = value.to_str().map_err(|_| ApiError::validation("If-Match must be a version number"))?;
        let text = text.trim().trim_start_matches("W/").trim_matches('"');
        text.parse().map(Some).map_err(|_| ApiError::validation("If-Match must be a version number"))
    }

    fn client(&self, trust_forwarded: bool) -> String {
        if trust_forwarded
            && let Some(first) = self
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        {
            return first.to_owned();
        }
        self.peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".to_owned())
    }

    /// The body as a JSON object with only `allowed` fields and every `required` one. An empty body is `{}`.
    fn object(&self, allowed: &[&str], required: &[&str]) -> Result<Map<String, Value>, ApiError> {
        let object = if self.body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&self.body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(ApiError::validation("the body must be a JSON object")),
                Err(_) => return Err(ApiError::validation("the body is not valid JSON")),
            }
        };
        if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::validation(format!("field {unknown:?} may not be set")));
        }
        if let Some(missing) = required.iter().find(|r| !object.contains_key(**r)) {
            return Err(ApiError::validation(format!("field {missing:?} is required")));
        }
        Ok(object)
    }
}

fn opt_str<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(format!("field {name:?} must be a string"))),
    }
}

fn req_str<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    opt_str(object, name)?.ok_or_else(|| ApiError::validation(format!("field {name:?} is required")))
}

fn text_field(object: &Map<String, Value>, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    let value = opt_str(object, name)?;
    if value.is_some_and(|v| v.chars().count() > max) {
        return Err(ApiError::validation(format!("field {name:?} is longer than {max} characters")));
    }
    Ok(value.map(str::to_owned))
}

fn parse_money(amount: &str, currency: &str) -> Result<Money, ApiError> {
    let currency = Currency::parse(currency).map_err(|e| ApiError::validation(e.to_string()))?;
    Money::parse(amount, currency).map_err(|e| ApiError::validation(e.to_string()))
}

fn parse_provider(name: &str) -> Result<Provider, ApiError> {
    Provider::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| ApiError::validation("provider must be shkeeper, request_network or manual_wallet"))
}

fn page(req: &Req) -> Result<(usize, usize), ApiError> {
    let limit = match req.q("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| ApiError::validation("limit must be an integer from 1 to 500"))?,
    };
    let offset = match req.q("cursor") {
        None | Some("") => 0,
        Some(c) => c.parse::<usize>().map_err(|_| ApiError::validation("unknown cursor"))?,
    };
    Ok((limit, offset))
}

fn paged(items: Vec<Value>, limit: usize, offset: usize, key: &str) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + limit < total).then(|| (offset + limit).to_string());
    json!({key: page, "next_cursor": next})
}

fn ok(status: u16, body: Value) -> Res {
    Ok(json_response(status, &body))
}

/// Sends the realtime events and provider payout calls a critical section queued, after the lock is gone.
fn dispatch(app: &App, st: &mut State) {
    let jobs = std::mem::take(&mut st.outbox);
    for job in jobs {
        spawn_payout(app.clone(), job);
    }
}

/// The payouts a critical section queued, to send with [`send_jobs`] once the lock is let go.
fn take_jobs(st: &mut State) -> Vec<PayoutJob> {
    std::mem::take(&mut st.outbox)
}

/// Asks the provider for each payout before the answer goes out, so a client (or the harness) that reads the
/// provider next sees it. Called with the lock let go.
async fn send_jobs(app: &App, jobs: Vec<PayoutJob>) {
    for job in jobs {
        let result = outbound::send_payout(app, &job).await;
        app.lock().payout_result(job.escrow, result.err());
    }
}

fn spawn_payout(app: App, job: PayoutJob) {
    tokio::spawn(async move {
        let result = outbound::send_payout(&app, &job).await;
        app.lock().payout_result(job.escrow, result.err());
    });
}

/// Fires the deadlines that are due (ESC-9, ESC-12) without waiting for a request, so their realtime events and
/// payouts go out on time.
pub(crate) fn tick(app: &App) {
    let mut st = locked(app);
    dispatch(app, &mut st);
}

fn locked(app: &App) -> std::sync::MutexGuard<'_, State> {
    let mut st = app.lock();
    st.fire_deadlines();
    st
}

// -------------------------------------------------------------------------------------------------------------
// Sessions

async fn sign_in(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let o = req.object(&["email", "password"], &["email", "password"])?;
            let (email, password) = (req_str(&o, "email")?, req_str(&o, "password")?);
            let client = req.client(app.cfg.trust_forwarded_for);
            let agent = req.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mut st = locked(&app);
            let body = st.sign_in(email, password, &client, agent)?;
            ok(200, body)
        }
        .await,
    )
}

async fn refresh(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let o = req.object(&["refresh_token"], &["refresh_token"])?;
            let token = req_str(&o, "refresh_token")?;
            let mut st = locked(&app);
            let body = st.refresh(token)?;
            ok(200, body)
        }
        .await,
    )
}

async fn logout(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::Logout, None)?;
            st.logout(&caller);
            Ok(axum::http::StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn list_sessions(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::ListSessions, None)?;
            ok(200, st.list_sessions(&caller))
        }
        .await,
    )
}

async fn revoke_own_session(AxState(app): AxState<App>, Path(id): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::RevokeOwnSession, None)?;
            st.revoke_own(&caller, &id)?;
            Ok(axum::http::StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn step_up(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::StepUp, None)?;
            let o = req.object(&["password", "totp", "passkey"], &[])?;
            if let Some(passkey) = o.get("passkey") {
                passkeys_on(&st)?;
                let Value::Object(credential) = passkey else {
                    return Err(ApiError::validation("passkey must be a credential object"));
                };
                return ok(200, st.passkey_step_up(&caller, credential)?);
            }
            let password = req_str(&o, "password")?;
            let code = req_str(&o, "totp")?;
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::validation("totp must be 6 digits"));
            }
            ok(200, st.step_up(&caller, password, code)?)
        }
        .await,
    )
}

async fn change_password(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::ChangePassword, None)?;
            let o = req.object(&["current_password", "new_password"], &["current_password", "new_password"])?;
            st.change_password(&caller, req_str(&o, "current_password")?, req_str(&o, "new_password")?)?;
            Ok(axum::http::StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// The switch as it is now: `/v1/test/config` can turn it at run time, so it lives in the state, not the launch
/// configuration.
fn passkeys_on(st: &State) -> Result<(), ApiError> {
    if st.cfg.passkeys_enabled { Ok(()) } else { Err(Refusal::PasskeysDisabled.into()) }
}

const CREDENTIAL_FIELDS: &[&str] =
    &["id", "rawId", "type", "response", "clientExtensionResults", "authenticatorAttachment"];

async fn passkey_register_options(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            passkeys_on(&st)?;
            st.authorize(Some(&caller), Op::PasskeyRegisterOptions, None)?;
            ok(200, st.passkey_register_options(&caller)?)
        }
        .await,
    )
}

async fn passkey_register(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            passkeys_on(&st)?;
            st.authorize(Some(&caller), Op::PasskeyRegister, None)?;
            let o = req.object(CREDENTIAL_FIELDS, &["response"])?;
            ok(201, st.passkey_register(&caller, &o)?)
        }
        .await,
    )
}

async fn passkey_sign_in_options(AxState(app): AxState<App>) -> Response {
    done(
        async {
            let mut st = locked(&app);
            passkeys_on(&st)?;
            ok(200, st.passkey_sign_in_options()?)
        }
        .await,
    )
}

async fn passkey_sign_in(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            passkeys_on(&locked(&app))?;
            let req = read(&app, req).await?;
            let o = req.object(CREDENTIAL_FIELDS, &["response"])?;
            let client = req.client(app.cfg.trust_forwarded_for);
            let agent = req.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mut st = locked(&app);
            ok(200, st.passkey_sign_in(&o, &client, agent)?)
        }
        .await,
    )
}

// -------------------------------------------------------------------------------------------------------------
// Escrows

async fn create_escrow(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::CreateEscrow, None)?;
            let allowed = ["seller_id", "amount", "currency", "provider", "description"];
            let o = req.object(&allowed, &["seller_id", "amount", "currency", "provider"])?;
            let amount = parse_money(req_str(&o, "amount")?, req_str(&o, "currency")?)?;
            let provider = parse_provider(req_str(&o, "provider")?)?;
            let description = text_field(&o, "description", 2000)?.unwrap_or_default();
            let id = st.create_escrow(caller.user, req_str(&o, "seller_id")?, amount, provider, description)?;
            ok(201, st.escrow_json(id))
        }
        .await,
    )
}

async fn list_escrows(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            st.authorize(Some(&caller), Op::ListEscrows, None)?;
            let state = match req.q("state") {
                None => None,
                Some(s) => Some(EscrowState::parse(s).ok_or_else(|| ApiError::validation("unknown state"))?),
            };
            let (limit, offset) = page(&req)?;
            let everyone = caller.role.is_staff() || st.on(Fault::UnfilteredEscrowList);
            let items: Vec<Value> = st
                .escrows
                .iter()
                .rev()
                .filter(|e| everyone || e.m.buyer == caller.user || e.m.seller == caller.user)
                .filter(|e| state.is_none_or(|s| e.m.state == s))
                .map(|e| st.escrow_json(e.m.id))
                .collect();
            ok(200, paged(items, limit, offset, "items"))
        }
        .await,
    )
}

fn escrow_response(st: &State, status: u16, id: EscrowId) -> Res {
    let body = st.escrow_json(id);
    let mut resp = json_response(status, &body);
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("\"{}\"", st.escrows[id.0 as usize].m.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn get_escrow(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            let id = st.escrow_for(&caller, Op::GetEscrow, &eid, None)?;
            escrow_response(&st, 200, id)
        }
        .await,
    )
}

async fn update_escrow(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            let id = st.escrow_for(&caller, Op::UpdateEscrow, &eid, req.if_match()?)?;
            let mass = st.on(Fault::MassAssignedStatus);
            let allowed: &[&str] = if mass { &["description", "state", "amount_received"] } else { &["description"] };
            let o = req.object(allowed, &[])?;
            if st.escrows[id.0 as usize].m.state.is_terminal() {
                // A closed escrow never changes again, its description included (ESC-22).
                return Err(Refusal::InvalidTransition.into());
            }
            let description = text_field(&o, "description", 2000)?;
            let new_state = match opt_str(&o, "state")? {
                Some(s) => Some(EscrowState::parse(s).ok_or_else(|| ApiError::validation("unknown state"))?),
                None => None,
            };
            let received = match opt_str(&o, "amount_received")? {
                Some(a) => Some(
                    Money::parse(a, st.escrows[id.0 as usize].m.amount.currency)
                        .map_err(|e| ApiError::validation(e.to_string()))?,
                ),
                None => None,
            };
            if description.is_none() && new_state.is_none() && received.is_none() {
                return Err(ApiError::validation("field \"description\" is required"));
            }
            let now = st.now();
            let e = &mut st.escrows[id.0 as usize];
            if let Some(d) = description {
                e.description = d;
                e.updated_at = now;
            }
            // Fault `mass-assigned-status`: protected fields from the body are applied.
            if let Some(r) = received {
                e.m.received = r.minor;
            }
            if let Some(s) = new_state {
                st.set_state(id, s);
            }
            escrow_response(&st, 200, id)
        }
        .await,
    )
}

async fn start_payment(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let (id, provider, amount, external) = {
                let mut st = locked(&app);
                let caller = st.authenticate_header(req.bearer())?;
                let id = st.escrow_for(&caller, Op::StartPayment, &eid, req.if_match()?)?;
                let e = &st.escrows[id.0 as usize];
                transition(e.m.state, EscrowEvent::StartPayment).ok_or(Refusal::InvalidTransition)?;
                if !st.provider_enabled(e.m.provider) {
                    return Err(Refusal::ProviderDisabled.into());
                }
                if let Some(instructions) = &e.instructions {
                    // PRV-1: a retried start_payment returns the invoice it already has.
                    return ok(200, json!({"escrow": st.escrow_json(id), "payment": instructions}));
                }
                (id, e.m.provider, e.m.amount, invoice_external_id(id))
            };
            let invoice = outbound::create_invoice(&app, provider, &external, amount)
                .await
                .map_err(|reason| ApiError::new(503, "provider_unavailable", reason))?;
            let mut st = locked(&app);
            let e = &mut st.escrows[id.0 as usize];
            if e.instructions.is_none() && provider != Provider::ManualWallet {
                e.m.invoice = Some(invoice.binding.clone());
                e.m.invoices_created += 1;
                e.instructions = Some(invoice.instructions.clone());
                st.invoices.insert(invoice.binding, id);
            }
            let payment = st.escrows[id.0 as usize].instructions.clone().unwrap_or(invoice.instructions);
            ok(200, json!({"escrow": st.escrow_json(id), "payment": payment}))
        }
        .await,
    )
}

async fn submit_proof(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let caller = st.authenticate_header(req.bearer())?;
            let id = st.escrow_for(&caller, Op::SubmitPaymentProof, &eid, req.if_match()?)?;
            let fields_from_body = st.on(Fault::ProofFieldsFromBody);
            let allowed: &[&str] = if fields_from_body {
                &["tx_hash", "amount", "currency", "destination", "note", "flagged", "status"]
            } else {
                &["tx_hash", "amount", "currency", "destination", "note"]
            };
            let o = req.object(allowed, &["tx_hash", "amount", "currency", "destination"])?;
            let tx_hash = req_str(&o, "tx_hash")?.to_owned();
            if tx_hash.is_empty() || tx_hash.len() > 200 {
                return Err(ApiError::validation("tx_hash must be 1 to 200 characters"));
            }
            let amount = parse_money(req_str(&o, "amount")?, req_str(&o, "currency")?)?;
            let destination = req_str(&o, "destination")?.to_owned();
            text_field(&o, "note", 2000)?;
            let index = st.submit_proof(id, Proof { tx_hash, amount, destination })?;
            if fields_from_body {
                // The defect: the body's word is taken for what only the server and its admins decide.
                if o.get("flagged") == Some(&Value::Bool(false)) {
                    st.clear_proof_flags(id);
                }
                if o.get("status").and_then(Value::as_str) == Some("approved") {
                    st.approve_proof(id)?;
                }
            }
            ok(201, json!({"proof": st.proof_json(id, index), "escrow": st.escrow_json(id)}))
        }
        .await,
    )
}

/// A participant action that is one step of the table.
async fn simple_action(app: App, eid: String, req: Request, op: Op) -> Res {
    let req = read(&app, req).await?;
    let (resp, jobs) = {
        let mut st = locked(&app);
        let resp = simple_action_locked(&mut st, &req, &eid, op);
        (resp, take_jobs(&mut st))
    };
    send_jobs(&app, jobs).await;
    resp
}

fn simple_action_locked(st: &mut State, req: &Req, eid: &str, op: Op) -> Res {
    let caller = st.authenticate_header(req.bearer())?;
    let id = st.escrow_for(&caller, op, eid, req.if_match()?)?;
    if op == Op::OpenDispute {
        let o = req.object(&["reason"], &[])?;
        text_field(&o, "reason", 2000)?;
    }
    let now = st.now();
    match op {
        Op::CancelEscrow => {
            if st.escrows[id.0 as usize].m.received != 0 {
                return Err(Refusal::InvalidTransition.into());
            }
            st.change_state(id, EscrowEvent::Cancel)?;
        }
        Op::MarkDelivered => {
            st.change_state(id, EscrowEvent::MarkDelivered)?;
            st.escrows[id.0 as usize].m.delivered_at = Some(conform_reference::ids::Timestamp(now));
        }
        Op::OpenDispute => st.change_state(id, EscrowEvent::OpenDispute)?,
        Op::RefundVoluntarily => {
            let cause = st.request_cause();
            st.refund(id, EscrowEvent::RefundVoluntarily, cause)?;
        }
        _ => return Err(Refusal::NotFound.into()),
    }
    escrow_response(st, 200, id)
}

async fn cancel(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(simple_action(app, eid, req, Op::CancelEscrow).await)
}

async fn mark_delivered(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(simple_action(app, eid, req, Op::MarkDelivered).await)
}

async fn open_dispute(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(simple_action(app, eid, req, Op::OpenDispute).await)
}

async fn refund_voluntarily(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(simple_action(app, eid, req, Op::RefundVoluntarily).await)
}

async fn confirm_receipt(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let checked: Result<(EscrowId, Option<Finished>), ApiError> = {
                let mut st = locked(&app);
                (|| {
                    let caller = st.authenticate_header(req.bearer())?;
                    let id = st.escrow_for(&caller, Op::ConfirmReceipt, &eid, req.if_match()?)?;
                    if !st.on(Fault::ReleaseRace) {
                        let cause = st.request_cause();
                        st.release(id, EscrowEvent::ConfirmReceipt, cause)?;
                        let resp = escrow_response(&st, 200, id);
                        return Ok((id, Some((resp, take_jobs(&mut st)))));
                    }
                    // Fault `release-race`: the state is checked here, the money moved after the lock was let go.
                    let state = st.escrows[id.0 as usize].m.state;
                    let refund_ok = state == EscrowState::RefundPending && st.on(Fault::ReleaseAfterRefund);
                    if !refund_ok {
                        transition(state, EscrowEvent::ConfirmReceipt).ok_or(Refusal::InvalidTransition)?;
                    }
                    Ok((id, None))
                })()
            };
            let id = match checked? {
                (_, Some((resp, jobs))) => {
                    send_jobs(&app, jobs).await;
                    return resp;
                }
                (id, None) => id,
            };
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (resp, jobs) = {
                let mut st = locked(&app);
                let cause = st.request_cause();
                st.write_release(id, cause);
                (escrow_response(&st, 200, id), take_jobs(&mut st))
            };
            send_jobs(&app, jobs).await;
            resp
        }
        .await,
    )
}

// -------------------------------------------------------------------------------------------------------------
// Admin

/// An admin call: authenticated, run, and audited whatever the outcome (AZ-9).
fn audited(
    st: &mut State,
    req: &Req,
    op: Op,
    target: String,
    run: impl FnOnce(&mut State, &Caller) -> Result<(u16, Value, Option<String>), ApiError>,
) -> Res {
    let caller = st.authenticate_header(req.bearer());
    let result = match &caller {
        Ok(c) => run(st, c),
        Err(r) => Err(ApiError::from(*r)),
    };
    let approval = result.as_ref().ok().and_then(|r| r.2.clone());
    st.audit(caller.as_ref().ok(), op, target, result.as_ref().map(|r| r.0), approval);
    let (status, body, _) = result?;
    ok(status, body)
}

async fn resolve(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let (r, jobs) = {
                let mut st = locked(&app);
                let r = audited(&mut st, &req, Op::ResolveDispute, format!("escrow:{eid}"), |st, caller| {
                    let id = st.escrow_for(caller, Op::ResolveDispute, &eid, req.if_match()?)?;
                    let o = req.object(&["outcome", "reason"], &["outcome"])?;
                    text_field(&o, "reason", 2000)?;
                    let (resolution, event, name) = match req_str(&o, "outcome")? {
                        "release" => (Resolution::Release, EscrowEvent::ResolveRelease, "release"),
                        "refund" => (Resolution::Refund, EscrowEvent::ResolveRefund, "refund"),
                        _ => return Err(ApiError::validation("outcome must be release or refund")),
                    };
                    transition(st.escrows[id.0 as usize].m.state, event).ok_or(Refusal::InvalidTransition)?;
                    if st.high_risk(id) {
                        let action = PendingAction::Resolve { escrow: id, resolution };
                        let index = st.request_approval(caller.user, action, eid.clone(), json!({"outcome": name}));
                        return Ok((202, st.approval_json(index), Some(st.approvals[index].public.clone())));
                    }
                    let cause = st.request_cause();
                    match resolution {
                        Resolution::Release => st.release(id, event, cause)?,
                        Resolution::Refund => st.refund(id, event, cause)?,
                    }
                    Ok((200, st.escrow_json(id), None))
                });
                (r, take_jobs(&mut st))
            };
            send_jobs(&app, jobs).await;
            r
        }
        .await,
    )
}

async fn approve_proof(AxState(app): AxState<App>, Path((eid, pid)): Path<(String, String)>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let (r, jobs) = {
                let mut st = locked(&app);
                let r = audited(&mut st, &req, Op::ApproveProof, format!("escrow:{eid}"), |st, caller| {
                    let id = st.escrow_for(caller, Op::ApproveProof, &eid, req.if_match()?)?;
                    transition(st.escrows[id.0 as usize].m.state, EscrowEvent::ApproveProofPartial)
                        .ok_or(Refusal::InvalidTransition)?;
                    st.current_proof(id, &pid).ok_or(Refusal::NotFound)?;
                    if st.proof_flagged(id) || st.high_risk(id) {
                        let action = PendingAction::ApproveProof { escrow: id };
                        let a = st.request_approval(caller.user, action, eid.clone(), json!({"proof_id": pid}));
                        return Ok((202, st.approval_json(a), Some(st.approvals[a].public.clone())));
                    }
                    st.approve_proof(id)?;
                    Ok((200, st.escrow_json(id), None))
                });
                (r, take_jobs(&mut st))
            };
            send_jobs(&app, jobs).await;
            r
        }
        .await,
    )
}

async fn reject_proof(AxState(app): AxState<App>, Path((eid, pid)): Path<(String, String)>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            audited(&mut st, &req, Op::RejectProof, format!("escrow:{eid}"), |st, caller| {
                let id = st.escrow_for(caller, Op::RejectProof, &eid, req.if_match()?)?;
                transition(st.escrows[id.0 as usize].m.state, EscrowEvent::RejectProof)
                    .ok_or(Refusal::InvalidTransition)?;
                st.current_proof(id, &pid).ok_or(Refusal::NotFound)?;
                let o = req.object(&["reason"], &[])?;
                text_field(&o, "reason", 2000)?;
                st.reject_proof(id)?;
                Ok((200, st.escrow_json(id), None))
            })
        }
        .await,
    )
}

async fn approve_pending(AxState(app): AxState<App>, Path(aid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let (r, jobs) = {
                let mut st = locked(&app);
                let r = audited(&mut st, &req, Op::ApprovePending, format!("approval:{aid}"), |st, caller| {
                    st.authorize(Some(caller), Op::ApprovePending, None)?;
                    let body = st.approve_pending(caller.user, &aid)?;
                    Ok((200, body, Some(aid.clone())))
                });
                (r, take_jobs(&mut st))
            };
            send_jobs(&app, jobs).await;
            r
        }
        .await,
    )
}

async fn retry_payout(AxState(app): AxState<App>, Path(eid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let caller_kept;
            let job = {
                let mut st = locked(&app);
                let caller = st.authenticate_header(req.bearer());
                let job = match &caller {
                    Ok(c) => (|| -> Result<PayoutJob, ApiError> {
                        let id = st.escrow_for(c, Op::RetryPayout, &eid, req.if_match()?)?;
                        Ok(st.retry_payout(id)?)
                    })(),
                    Err(r) => Err(ApiError::from(*r)),
                };
                match job {
                    Ok(job) => {
                        caller_kept = caller.ok();
                        job
                    }
                    Err(e) => {
                        st.audit(caller.as_ref().ok(), Op::RetryPayout, format!("escrow:{eid}"), Err(&e), None);
                        return Err(e);
                    }
                }
            };
            let sent = outbound::send_payout(&app, &job).await;
            let mut st = locked(&app);
            // The retry is accepted whatever the provider answers, as the reference model decides (ESC-18): a
            // failure shows in the payout's status and last_error, and the escrow stays listed as stuck.
            st.payout_result(job.escrow, sent.err());
            let body = json!({"escrow": st.escrow_json(job.escrow), "payout": st.payout_json(job.escrow)});
            st.audit(caller_kept.as_ref(), Op::RetryPayout, format!("escrow:{eid}"), Ok(200), None);
            ok(200, body)
        }
        .await,
    )
}

fn staff_read(st: &mut State, req: &Req, op: Op) -> Result<Caller, ApiError> {
    let caller = st.authenticate_header(req.bearer())?;
    st.authorize(Some(&caller), op, None)?;
    Ok(caller)
}

async fn stuck_payouts(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            staff_read(&mut st, &req, Op::ListStuckPayouts)?;
            let older = match req.q("older_than_seconds") {
                None => st.cfg.stuck_payout_seconds,
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| ApiError::validation("older_than_seconds must be a non-negative integer"))?,
            };
            ok(200, st.stuck(older))
        }
        .await,
    )
}

async fn list_dead_letters(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            staff_read(&mut st, &req, Op::ListDeadLetters)?;
            let (limit, offset) = page(&req)?;
            let provider = req.q("provider");
            let items: Vec<Value> = st
                .dead_letters
                .iter()
                .filter(|d| provider.is_none_or(|p| d.route.name() == p))
                .map(|d| st.dead_letter_json(d))
                .collect();
            ok(200, paged(items, limit, offset, "items"))
        }
        .await,
    )
}

async fn replay_dead_letter(AxState(app): AxState<App>, Path(did): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let (r, jobs) = {
                let mut st = locked(&app);
                let r = audited(&mut st, &req, Op::ReplayDeadLetter, format!("dead_letter:{did}"), |st, caller| {
                    st.authorize(Some(caller), Op::ReplayDeadLetter, None)?;
                    Ok((200, st.replay(&did)?, None))
                });
                (r, take_jobs(&mut st))
            };
            send_jobs(&app, jobs).await;
            r
        }
        .await,
    )
}

async fn rotate_secret(AxState(app): AxState<App>, Path(provider): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            audited(&mut st, &req, Op::RotateWebhookSecret, format!("webhook_secret:{provider}"), |st, caller| {
                st.authorize(Some(caller), Op::RotateWebhookSecret, None)?;
                let route = st.route_named(&provider).ok_or(Refusal::NotFound)?;
                let o = req.object(&["secret", "overlap_seconds"], &[])?;
                let overlap = match o.get("overlap_seconds") {
                    None | Some(Value::Null) => st.cfg.secret_overlap_seconds,
                    Some(v) => v
                        .as_u64()
                        .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| ApiError::validation("overlap_seconds must be a non-negative integer"))?,
                };
                let (secret, generated) = match opt_str(&o, "secret")? {
                    Some("") => return Err(ApiError::validation("secret must not be empty")),
                    Some(s) => {
                        if matches!(route, Route::Standard(_))
                            && st.rings.contains_key(&route)
                            && conform_reference::webhooks::standard_webhooks_key(s).is_err()
                        {
                            return Err(ApiError::validation("a Standard Webhooks secret is whsec_ plus base64"));
                        }
                        (s.to_owned(), false)
                    }
                    None => {
                        use base64::Engine as _;
                        let raw = crate::util::random_bytes::<24>();
                        let s = match route {
                            Route::Standard(_) => {
                                format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(raw))
                            }
                            _ => hex::encode(raw),
                        };
                        (s, true)
                    }
                };
                let mut body = st.rotate(&route, secret.clone(), overlap);
                if generated {
                    body["secret"] = Value::String(secret);
                }
                Ok((200, body, None))
            })
        }
        .await,
    )
}

fn user_of(st: &State, public: &str) -> Result<conform_reference::ids::UserId, Refusal> {
    // A deleted account is still an account to the admin operations, as in the reference model.
    st.user_by_public.get(public).copied().ok_or(Refusal::NotFound)
}

async fn change_role(AxState(app): AxState<App>, Path(uid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            audited(&mut st, &req, Op::ChangeRole, format!("user:{uid}"), |st, caller| {
                st.authorize(Some(caller), Op::ChangeRole, None)?;
                let user = user_of(st, &uid)?;
                let o = req.object(&["role"], &["role"])?;
                let role = match req_str(&o, "role")? {
                    "user" => Role::User,
                    "support" => Role::Support,
                    "admin" => Role::Admin,
                    _ => return Err(ApiError::validation("role must be user, support or admin")),
                };
                if role == Role::Admin && st.users[user.0 as usize].role != Role::Admin {
                    let index = st.request_approval(
                        caller.user,
                        PendingAction::GrantAdmin { user },
                        uid.clone(),
                        json!({"role": "admin"}),
                    );
                    return Ok((202, st.approval_json(index), Some(st.approvals[index].public.clone())));
                }
                st.set_role(user, role);
                Ok((200, st.user_json(user), None))
            })
        }
        .await,
    )
}

async fn delete_account(AxState(app): AxState<App>, Path(uid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            let r = audited(&mut st, &req, Op::DeleteAccount, format!("user:{uid}"), |st, caller| {
                st.authorize(Some(caller), Op::DeleteAccount, None)?;
                let user = user_of(st, &uid)?;
                // An account with money in an open escrow cannot go: its funds would lose their owner.
                if st.escrows.iter().any(|e| (e.m.buyer == user || e.m.seller == user) && !e.m.state.is_terminal()) {
                    return Err(Refusal::InvalidTransition.into());
                }
                st.users[user.0 as usize].deleted = true;
                st.revoke_all(user);
                st.void_approvals_of(user);
                Ok((204, Value::Null, None))
            });
            match r {
                Ok(_) => Ok(axum::http::StatusCode::NO_CONTENT.into_response()),
                Err(e) => Err(e),
            }
        }
        .await,
    )
}

async fn revoke_user_sessions(AxState(app): AxState<App>, Path(uid): Path<String>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            audited(&mut st, &req, Op::RevokeUserSessions, format!("user:{uid}"), |st, caller| {
                st.authorize(Some(caller), Op::RevokeUserSessions, None)?;
                let user = st.user_by_public.get(&uid).copied().ok_or(Refusal::NotFound)?;
                let revoked = st.revoke_all(user);
                let voided = st.void_approvals_of(user);
                Ok((200, json!({"revoked_sessions": revoked, "voided_approvals": voided}), None))
            })
        }
        .await,
    )
}

async fn audit_log(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            staff_read(&mut st, &req, Op::ReadAuditLog)?;
            let (limit, offset) = page(&req)?;
            let actor = req.q("actor_id").map(|a| st.user_by_public.get(a).copied());
            let items: Vec<Value> = st
                .audit
                .iter()
                .filter(|r| match actor {
                    None => true,
                    Some(a) => a.is_some() && r.actor == a,
                })
                .map(|r| st.audit_json(r))
                .collect();
            ok(200, paged(items, limit, offset, "items"))
        }
        .await,
    )
}

async fn ledger(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            let req = read(&app, req).await?;
            let mut st = locked(&app);
            staff_read(&mut st, &req, Op::ReadLedger)?;
            let (limit, offset) = page(&req)?;
            let escrow = req.q("escrow_id").map(|e| st.escrow_id(e));
            let items: Vec<Value> = st
                .ledger
                .entries()
                .iter()
                .filter(|entry| match escrow {
                    None => true,
                    Some(e) => e.is_some() && entry.escrow == e,
                })
                .map(|entry| st.entry_json(entry))
                .collect();
            ok(200, paged(items, limit, offset, "entries"))
        }
        .await,
    )
}

// -------------------------------------------------------------------------------------------------------------
// Webhooks

async fn webhook(app: App, route: Route, req: Request) -> Res {
    let req = read(&app, req).await?;
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let success = route.scheme().success_status();
    let checked = {
        let mut st = locked(&app);
        let checked = st.webhook_check(&route, &headers, &req.body)?;
        if st.seen(&checked.keys) {
            return ok(success, json!({"status": "duplicate"}));
        }
        if !st.on(Fault::RacyWebhookDedup) {
            let status = st.webhook_apply(&route, &checked, &headers, &req.body);
            dispatch(&app, &mut st);
            return ok(success, json!({"status": status}));
        }
        checked
    };
    // Fault `racy-webhook-dedup`: checked above, inserted below, with a gap between.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut st = locked(&app);
    let status = st.webhook_apply(&route, &checked, &headers, &req.body);
    dispatch(&app, &mut st);
    ok(success, json!({"status": status}))
}

async fn webhook_shkeeper(AxState(app): AxState<App>, req: Request) -> Response {
    done(webhook(app, Route::Shkeeper, req).await)
}

async fn webhook_request_network(AxState(app): AxState<App>, req: Request) -> Response {
    done(webhook(app, Route::RequestNetwork, req).await)
}

async fn webhook_standard(AxState(app): AxState<App>, Path(provider): Path<String>, req: Request) -> Response {
    let route = Route::Standard(provider);
    if !app.lock().rings.contains_key(&route) {
        return ApiError::from(Refusal::NotFound).into_response();
    }
    done(webhook(app, route, req).await)
}

// -------------------------------------------------------------------------------------------------------------
// Test fixtures

async fn test_users(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            if !app.cfg.test_mode {
                return Err(Refusal::NotFound.into());
            }
            let req = read(&app, req).await?;
            let o = req.object(&["email", "password", "role", "totp_seed"], &["email", "password", "role"])?;
            let email = req_str(&o, "email")?;
            if !email.contains('@') || email.len() > 320 {
                return Err(ApiError::validation("email must be an address"));
            }
            let password = req_str(&o, "password")?;
            let role = match req_str(&o, "role")? {
                "user" => Role::User,
                "support" => Role::Support,
                "admin" => Role::Admin,
                _ => return Err(ApiError::validation("role must be user, support or admin")),
            };
            let totp = match opt_str(&o, "totp_seed")?.filter(|seed| !seed.is_empty()) {
                Some(seed) => {
                    Some(decode_base32(seed).ok_or_else(|| ApiError::validation("totp_seed must be base32"))?)
                }
                None => None,
            };
            let mut st = locked(&app);
            let id = st.create_user(email, password, role, totp)?;
            ok(201, st.user_json(id))
        }
        .await,
    )
}

/// 10000-01-01T00:00:00Z: the test clock stays below it, so no deadline arithmetic can overflow.
const LATEST_CLOCK: i64 = 253_402_300_800;

async fn test_clock(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            if !app.cfg.test_mode {
                return Err(Refusal::NotFound.into());
            }
            let req = read(&app, req).await?;
            let o = req.object(&["set", "advance_seconds"], &[])?;
            let (now, jobs) = {
                let mut st = app.lock();
                match (o.get("set"), o.get("advance_seconds")) {
                    (Some(Value::String(s)), None) => {
                        let at =
                            parse_rfc3339(s).ok_or_else(|| ApiError::validation("set must be an RFC 3339 time"))?;
                        if !(0..LATEST_CLOCK).contains(&at) {
                            return Err(ApiError::validation("set must be between 1970 and 9999"));
                        }
                        st.clock_offset = at - system_now();
                    }
                    (None, Some(v)) => {
                        let n = v
                            .as_i64()
                            .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| ApiError::validation("advance_seconds must be a non-negative integer"))?;
                        if st.now().checked_add(n).is_none_or(|t| t >= LATEST_CLOCK) {
                            return Err(ApiError::validation(
                                "advance_seconds would move the clock past the year 9999",
                            ));
                        }
                        st.clock_offset += n;
                    }
                    _ => return Err(ApiError::validation("give exactly one of set and advance_seconds")),
                }
                st.fire_deadlines();
                let now = st.now();
                (now, take_jobs(&mut st))
            };
            send_jobs(&app, jobs).await;
            ok(200, json!({"now": rfc3339(now)}))
        }
        .await,
    )
}

/// Switches the deployment's configuration at run time (SPEC §11 test fixture, 404 outside test mode): passkeys on
/// or off (`{"passkeys_enabled": bool}`, SES-8) and a provider on or off (`{"provider": name, "enabled": bool}`,
/// PRV-3), each alone or together. Answers the configuration as it now is.
async fn test_config(AxState(app): AxState<App>, req: Request) -> Response {
    done(
        async {
            if !app.cfg.test_mode {
                return Err(Refusal::NotFound.into());
            }
            let req = read(&app, req).await?;
            let o = req.object(&["passkeys_enabled", "provider", "enabled"], &[])?;
            let flag = |name: &str| match o.get(name) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(ApiError::validation(format!("{name} must be true or false"))),
            };
            let passkeys = flag("passkeys_enabled")?;
            let provider = match (opt_str(&o, "provider")?, flag("enabled")?) {
                (Some(name), Some(enabled)) => Some((parse_provider(name)?, enabled)),
                (None, None) => None,
                _ => return Err(ApiError::validation("give provider and enabled together")),
            };
            if passkeys.is_none() && provider.is_none() {
                return Err(ApiError::validation("give passkeys_enabled, or provider and enabled"));
            }
            let mut st = locked(&app);
            // With the fault the passkey module keeps the switch it read at start.
            if let Some(enabled) = passkeys.filter(|_| !st.on(Fault::PasskeysSwitchIgnored)) {
                st.cfg.passkeys_enabled = enabled;
                st.passkeys.set_enabled(enabled);
            }
            if let Some((provider, enabled)) = provider {
                st.cfg.disabled_providers.retain(|p| *p != provider);
                if !enabled {
                    st.cfg.disabled_providers.push(provider);
                }
            }
            let disabled: Vec<&str> = st.cfg.disabled_providers.iter().map(|p| p.name()).collect();
            ok(200, json!({"passkeys_enabled": st.cfg.passkeys_enabled, "disabled_providers": disabled}))
        }
        .await,
    )
}

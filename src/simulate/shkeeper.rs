//! A SHKeeper simulator (`shared/FACTS.md`, "SHKeeper").
//!
//! Merchant API under `/api/v1`:
//! - `POST /api/v1/{crypto}/payment_request` with `X-Shkeeper-Api-Key`: an upsert keyed by (`external_id`,
//!   `callback_url`, `fiat`); a retry updates the same invoice and answers the same `id`;
//! - `GET /api/v1/invoices/{external_id}`;
//! - `POST /api/v1/{crypto}/payout` with HTTP Basic → `{task_id, external_id}`; `GET /api/v1/{crypto}/task/{id}`
//!   → `PENDING` | `SUCCESS` | `FAILURE`; `GET /api/v1/{crypto}/payout/status?external_id=` → `SUCCESS` |
//!   `IN_PROGRESS` | `FAIL`.
//!
//! Every error of the merchant API, a bad key included, is HTTP 200 with `{"status":"error","message":…}`, as
//! SHKeeper does. Bad Basic credentials on the payout API are 401 (assumed: Flask's HTTP auth).
//!
//! Payments are simulated with [`ShkeeperSim::pay`] (or `POST /_conform/pay`): one callback per transaction to the
//! invoice's `callback_url`, listing every transaction of the invoice with `trigger: true` on the new one, signed
//! as SHKeeper signs (HMAC over `"{timestamp}." + body` keyed with the API key, each attempt at its own time), or
//! in legacy mode with only the API-key header. Only HTTP 202 counts as delivered; anything else is retried on the
//! configured [`RetryPolicy`] (SHKeeper: every 60 s, forever).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::core::{
    CallRecord, CallbackAttempt, Confirmations, Core, Decimal, Handler, Job, Outage, RetryPolicy, Server, SimError,
    json_response, lock, outage_response, unix_now,
};
use crate::drive::webhooks::{ShkeeperPayment, ShkeeperPayout, ShkeeperSender, ShkeeperTransaction};

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct ShkeeperConfig {
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The merchant API key: checked on `X-Shkeeper-Api-Key`, and the HMAC key of the callbacks.
    pub api_key: String,
    /// HTTP Basic user of the payout API.
    pub payout_user: String,
    /// HTTP Basic password of the payout API.
    pub payout_password: String,
    /// Callbacks with only `X-Shkeeper-Api-Key` (SHKeeper before 2026-05) instead of the HMAC headers.
    pub legacy_callbacks: bool,
    /// Payment callbacks.
    pub retry: RetryPolicy,
    /// Payout callbacks.
    pub payout_retry: RetryPolicy,
    /// Fiat per unit of crypto, a decimal string.
    pub exchange_rate: String,
}

impl Default for ShkeeperConfig {
    fn default() -> Self {
        ShkeeperConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "conform-shkeeper-key".to_owned(),
            payout_user: "shkeeper".to_owned(),
            payout_password: "shkeeper".to_owned(),
            legacy_callbacks: false,
            retry: RetryPolicy::shkeeper(),
            payout_retry: RetryPolicy::shkeeper_payout(),
            exchange_rate: "1".to_owned(),
        }
    }
}

/// One transaction on an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShkeeperTx {
    /// Transaction id.
    pub txid: String,
    /// Fiat amount.
    pub amount_fiat: String,
    /// Crypto amount.
    pub amount_crypto: String,
}

/// An invoice as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShkeeperInvoice {
    /// SHKeeper's id, the same across upserts.
    pub id: u64,
    /// The crypto of the path.
    pub crypto: String,
    /// The caller's id.
    pub external_id: String,
    /// Fiat currency.
    pub fiat: String,
    /// Fiat amount, as last given.
    pub amount: String,
    /// Where callbacks go.
    pub callback_url: String,
    /// Deposit address.
    pub wallet: String,
    /// How many times it was created or updated.
    pub writes: u32,
    /// Transactions received.
    pub txs: Vec<ShkeeperTx>,
}

/// A payout task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShkeeperPayoutTask {
    /// The task id answered.
    pub task_id: String,
    /// The crypto of the path.
    pub crypto: String,
    /// The body as received.
    pub request: Value,
    /// `external_id` of the request, if any.
    pub external_id: Option<String>,
    /// `PENDING`, `SUCCESS` or `FAILURE`.
    pub status: String,
}

#[derive(Default)]
struct State {
    invoices: Vec<ShkeeperInvoice>,
    payouts: Vec<ShkeeperPayoutTask>,
    next_tx: u64,
}

struct Inner {
    config: ShkeeperConfig,
    core: Arc<Core>,
    state: Mutex<State>,
}

/// A running SHKeeper simulator. Dropping it stops the server and its callbacks.
pub struct ShkeeperSim {
    inner: Arc<Inner>,
    server: Server,
}

impl ShkeeperSim {
    /// Starts listening (on a tokio runtime).
    pub async fn start(config: ShkeeperConfig) -> Result<ShkeeperSim, SimError> {
        let (core, rx) = Core::new()?;
        let core = Arc::new(core);
        let inner = Arc::new(Inner { config: config.clone(), core: core.clone(), state: Mutex::default() });
        let handler_inner = inner.clone();
        let handler: Handler = Arc::new(move |request: &Request| handle(&handler_inner, request));
        let server = Server::start(config.bind, handler, core, rx).await?;
        Ok(ShkeeperSim { inner, server })
    }

    /// `http://host:port`: what a backend's SHKeeper URL setting takes.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The configuration.
    pub fn config(&self) -> &ShkeeperConfig {
        &self.inner.config
    }

    /// Every call received, in order, secrets redacted (admin calls under `/_conform/` excluded).
    pub fn calls(&self) -> Vec<CallRecord> {
        self.inner.core.calls()
    }

    /// Waits until `done` holds for the calls received, at most `timeout`.
    pub async fn wait_calls(
        &self,
        timeout: Duration,
        done: impl Fn(&[CallRecord]) -> bool,
    ) -> Result<Vec<CallRecord>, SimError> {
        self.inner.core.wait_calls(timeout, done).await
    }

    /// Every callback attempt so far.
    pub fn attempts(&self) -> Vec<CallbackAttempt> {
        self.inner.core.attempts()
    }

    /// Waits until `done` holds for the callback attempts, at most `timeout`.
    pub async fn wait_attempts(
        &self,
        timeout: Duration,
        done: impl Fn(&[CallbackAttempt]) -> bool,
    ) -> Result<Vec<CallbackAttempt>, SimError> {
        self.inner.core.wait_attempts(timeout, done).await
    }

    /// Switches how the API answers.
    pub fn set_outage(&self, outage: Outage) {
        self.inner.core.set_outage(outage);
    }

    /// Switches when callbacks go out.
    pub fn set_confirmations(&self, confirmations: Confirmations) {
        self.inner.core.set_confirmations(confirmations);
    }

    /// Sends each callback `extra_copies` more times, concurrently (a duplicate burst).
    pub fn set_duplicates(&self, extra_copies: u32) {
        self.inner.core.set_duplicates(extra_copies);
    }

    /// Sends the withheld callbacks; returns how many.
    pub fn release_withheld(&self) -> usize {
        self.inner.core.release_withheld()
    }

    /// Stops listening: connections are refused until [`ShkeeperSim::restart`].
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// Listens again on the same address.
    pub async fn restart(&mut self) -> Result<(), SimError> {
        self.server.restart().await
    }

    /// The invoices.
    pub fn invoices(&self) -> Vec<ShkeeperInvoice> {
        lock(&self.inner.state).invoices.clone()
    }

    /// The payout tasks.
    pub fn payouts(&self) -> Vec<ShkeeperPayoutTask> {
        lock(&self.inner.state).payouts.clone()
    }

    /// A payment of `amount_fiat` to the (latest) invoice `external_id`: records a transaction and sends its
    /// callback. Returns the callback body.
    pub fn pay(&self, external_id: &str, amount_fiat: &str) -> Result<ShkeeperPayment, SimError> {
        pay(&self.inner, external_id, amount_fiat)
    }

    /// Settles payout task `task_id` as `SUCCESS` or `FAILURE`; on success, sends the payout callback when the
    /// request named a `callback_url`.
    pub fn complete_payout(&self, task_id: &str, success: bool) -> Result<(), SimError> {
        complete_payout(&self.inner, task_id, success)
    }
}

fn error(message: &str) -> ResponseTemplate {
    json_response(200, &json!({"status": "error", "message": message}))
}

fn handle(inner: &Arc<Inner>, request: &Request) -> ResponseTemplate {
    let path = request.url.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&"_conform") {
        return admin(inner, request, &segments[1..]);
    }
    inner.core.record(request);
    if let Some(response) = outage_response(inner.core.outage(), || error("gateway unavailable")) {
        return response;
    }
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("POST", ["api", "v1", crypto, "payment_request"]) => {
            refuse_api_key(inner, request).unwrap_or_else(|| create_invoice(inner, crypto, &request.body))
        }
        ("GET", ["api", "v1", "invoices", external_id]) => {
            refuse_api_key(inner, request).unwrap_or_else(|| invoice_status(inner, external_id))
        }
        ("POST", ["api", "v1", crypto, "payout"]) => {
            refuse_basic(inner, request).unwrap_or_else(|| create_payout(inner, crypto, &request.body))
        }
        ("GET", ["api", "v1", _crypto, "task", id]) => refuse_basic(inner, request).unwrap_or_else(|| task(inner, id)),
        ("GET", ["api", "v1", _crypto, "payout", "status"]) => {
            let external_id = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "external_id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            refuse_basic(inner, request).unwrap_or_else(|| payout_status(inner, &external_id))
        }
        _ => json_response(404, &json!({"status": "error", "message": "Not Found"})),
    }
}

/// The refusal of a call without the right API key, if it lacks it.
fn refuse_api_key(inner: &Inner, request: &Request) -> Option<ResponseTemplate> {
    let given = request.headers.get("x-shkeeper-api-key").map(|v| v.as_bytes());
    if given == Some(inner.config.api_key.as_bytes()) { None } else { Some(error("Bad API key")) }
}

/// The refusal of a call without the right Basic credentials, if it lacks them.
fn refuse_basic(inner: &Inner, request: &Request) -> Option<ResponseTemplate> {
    use base64::Engine as _;
    let credentials = format!("{}:{}", inner.config.payout_user, inner.config.payout_password);
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
    let given = request.headers.get("authorization").map(|v| v.as_bytes());
    if given == Some(expected.as_bytes()) {
        None
    } else {
        Some(ResponseTemplate::new(401).set_body_raw("Unauthorized Access", "text/plain"))
    }
}

fn text_field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A deterministic deposit address for an invoice id.
fn wallet(crypto: &str, id: u64) -> String {
    format!("sim-{}-{id:08x}", crypto.to_ascii_lowercase())
}

fn create_invoice(inner: &Inner, crypto: &str, body: &[u8]) -> ResponseTemplate {
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return error("Bad request: body is not JSON") };
    let (Some(external_id), Some(fiat), Some(amount), Some(callback_url)) = (
        text_field(&body, "external_id"),
        text_field(&body, "fiat"),
        text_field(&body, "amount"),
        text_field(&body, "callback_url"),
    ) else {
        return error("Bad request: external_id, fiat, amount and callback_url are required");
    };
    let Ok(fiat_amount) = Decimal::parse(amount) else { return error("Bad request: amount is not a decimal string") };
    let Ok(rate) = Decimal::parse(&inner.config.exchange_rate) else { return error("exchange rate unavailable") };
    let mut state = lock(&inner.state);
    let key = |i: &ShkeeperInvoice| i.external_id == external_id && i.callback_url == callback_url && i.fiat == fiat;
    let next_id = state.invoices.len() as u64 + 1;
    let invoice = match state.invoices.iter_mut().position(|i| key(i)) {
        Some(index) => {
            let invoice = &mut state.invoices[index];
            invoice.amount = amount.to_owned();
            invoice.crypto = crypto.to_owned();
            invoice.writes += 1;
            invoice.clone()
        }
        None => {
            let invoice = ShkeeperInvoice {
                id: next_id,
                crypto: crypto.to_owned(),
                external_id: external_id.to_owned(),
                fiat: fiat.to_owned(),
                amount: amount.to_owned(),
                callback_url: callback_url.to_owned(),
                wallet: wallet(crypto, next_id),
                writes: 1,
                txs: Vec::new(),
            };
            state.invoices.push(invoice.clone());
            invoice
        }
    };
    json_response(
        200,
        &json!({
            "status": "success",
            "id": invoice.id,
            "amount": fiat_amount.div(rate).format(0),
            "exchange_rate": rate.format(0),
            "display_name": crypto,
            "wallet": invoice.wallet,
            "recalculate_after": 0,
        }),
    )
}

/// (balance, status) of an invoice: `UNPAID` before any payment (the status API's word; callbacks never say it).
fn balance(invoice: &ShkeeperInvoice) -> (Decimal, &'static str) {
    let balance = invoice
        .txs
        .iter()
        .filter_map(|t| Decimal::parse(&t.amount_fiat).ok())
        .fold(Decimal(0), |a, b| Decimal(a.0.saturating_add(b.0)));
    let due = Decimal::parse(&invoice.amount).unwrap_or_default();
    let status = match (invoice.txs.is_empty(), balance.cmp(&due)) {
        (true, _) => "UNPAID",
        (false, std::cmp::Ordering::Less) => "PARTIAL",
        (false, std::cmp::Ordering::Equal) => "PAID",
        (false, std::cmp::Ordering::Greater) => "OVERPAID",
    };
    (balance, status)
}

fn invoice_status(inner: &Inner, external_id: &str) -> ResponseTemplate {
    let state = lock(&inner.state);
    let invoices: Vec<Value> = state
        .invoices
        .iter()
        .filter(|i| i.external_id == external_id)
        .map(|i| {
            let (balance, status) = balance(i);
            json!({
                "external_id": i.external_id,
                "fiat": i.fiat,
                "amount_fiat": i.amount,
                "balance_fiat": balance.format(2),
                "status": status,
                "txs": i.txs.iter().map(|t| json!({
                    "txid": t.txid, "amount": t.amount_crypto, "crypto": i.crypto, "addr": i.wallet, "status": "CONFIRMED",
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if invoices.is_empty() {
        return error("Invoice not found");
    }
    json_response(200, &json!({"status": "success", "invoices": invoices}))
}

fn pay(inner: &Inner, external_id: &str, amount_fiat: &str) -> Result<ShkeeperPayment, SimError> {
    let amount = Decimal::parse(amount_fiat)?;
    let rate = Decimal::parse(&inner.config.exchange_rate)?;
    let mut state = lock(&inner.state);
    state.next_tx += 1;
    let txid = format!("sim-tx-{:06}", state.next_tx);
    let invoice = state
        .invoices
        .iter_mut()
        .rev()
        .find(|i| i.external_id == external_id)
        .ok_or_else(|| SimError::Unknown { what: "invoice", id: external_id.to_owned() })?;
    invoice.txs.push(ShkeeperTx {
        txid: txid.clone(),
        amount_fiat: amount.format(2),
        amount_crypto: amount.div(rate).format(0),
    });
    let invoice = invoice.clone();
    drop(state);
    let (balance, status) = balance(&invoice);
    let due = Decimal::parse(&invoice.amount).unwrap_or_default();
    let date = "2026-01-01 00:00:00".to_owned();
    let payment = ShkeeperPayment {
        external_id: invoice.external_id.clone(),
        crypto: invoice.crypto.clone(),
        addr: invoice.wallet.clone(),
        fiat: invoice.fiat.clone(),
        balance_fiat: balance.format(2),
        balance_crypto: balance.div(rate).format(0),
        paid: status != "PARTIAL",
        status: status.to_owned(),
        transactions: invoice
            .txs
            .iter()
            .map(|t| ShkeeperTransaction {
                txid: t.txid.clone(),
                date: date.clone(),
                amount_crypto: t.amount_crypto.clone(),
                amount_fiat: t.amount_fiat.clone(),
                amount_fiat_without_fee: t.amount_fiat.clone(),
                fee_fiat: "0".to_owned(),
                trigger: t.txid == txid,
                crypto: invoice.crypto.clone(),
            })
            .collect(),
        fee_percent: "0".to_owned(),
        fee_fixed: "0".to_owned(),
        fee_policy: "PERCENT_FEE".to_owned(),
        overpaid_fiat: Decimal((balance.0 - due.0).max(0)).format(2),
    };
    let sender = if inner.config.legacy_callbacks {
        ShkeeperSender::legacy(inner.config.api_key.as_str())
    } else {
        ShkeeperSender::new(inner.config.api_key.as_str()).with_api_key_header(true)
    };
    submit(inner, sender, invoice.callback_url, payment.to_body(), inner.config.retry.clone());
    Ok(payment)
}

fn submit(inner: &Inner, sender: ShkeeperSender, url: String, body: Vec<u8>, policy: RetryPolicy) {
    let make = Arc::new(move |_attempt: u32| sender.deliver(&url, &body, unix_now()));
    inner.core.submit(Job { make, policy });
}

fn create_payout(inner: &Inner, crypto: &str, body: &[u8]) -> ResponseTemplate {
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return error("Bad request: body is not JSON") };
    if text_field(&body, "amount").is_none() || text_field(&body, "destination").is_none() {
        return error("Bad request: amount and destination are required");
    }
    let external_id = text_field(&body, "external_id").map(str::to_owned);
    let mut state = lock(&inner.state);
    let n = state.payouts.len() + 1;
    let task_id = format!("00000000-0000-4000-8000-{n:012x}");
    state.payouts.push(ShkeeperPayoutTask {
        task_id: task_id.clone(),
        crypto: crypto.to_owned(),
        request: body,
        external_id: external_id.clone(),
        status: "PENDING".to_owned(),
    });
    json_response(200, &json!({"task_id": task_id, "external_id": external_id}))
}

fn task(inner: &Inner, id: &str) -> ResponseTemplate {
    let state = lock(&inner.state);
    match state.payouts.iter().find(|p| p.task_id == id) {
        Some(p) => json_response(200, &json!({"status": p.status, "result": Value::Null})),
        None => json_response(200, &json!({"status": "PENDING", "result": Value::Null})),
    }
}

fn payout_status(inner: &Inner, external_id: &str) -> ResponseTemplate {
    let state = lock(&inner.state);
    match state.payouts.iter().rev().find(|p| p.external_id.as_deref() == Some(external_id)) {
        Some(p) => {
            let status = match p.status.as_str() {
                "SUCCESS" => "SUCCESS",
                "FAILURE" => "FAIL",
                _ => "IN_PROGRESS",
            };
            json_response(200, &json!({"status": status, "external_id": external_id}))
        }
        None => error("Payout not found"),
    }
}

fn complete_payout(inner: &Inner, task_id: &str, success: bool) -> Result<(), SimError> {
    let mut state = lock(&inner.state);
    let payout = state
        .payouts
        .iter_mut()
        .find(|p| p.task_id == task_id)
        .ok_or_else(|| SimError::Unknown { what: "payout task", id: task_id.to_owned() })?;
    payout.status = if success { "SUCCESS" } else { "FAILURE" }.to_owned();
    let payout = payout.clone();
    drop(state);
    let Some(url) = text_field(&payout.request, "callback_url").filter(|_| success) else { return Ok(()) };
    let amount = text_field(&payout.request, "amount").unwrap_or("0");
    let body = ShkeeperPayout {
        payout_id: payout.task_id.clone(),
        external_id: payout.external_id.clone().unwrap_or_default(),
        tx_hash: format!("sim-payout-{}", payout.task_id),
        status: "SUCCESS".to_owned(),
        amount: amount.to_owned(),
        crypto: payout.crypto.clone(),
        amount_fiat: amount.to_owned(),
        currency_fiat: text_field(&payout.request, "currency_fiat").unwrap_or("USD").to_owned(),
        timestamp: unix_now(),
    };
    // Payout callbacks carry the HMAC headers only, never the API key.
    let sender = ShkeeperSender::new(inner.config.api_key.as_str());
    submit(inner, sender, url.to_owned(), body.to_body(), inner.config.payout_retry.clone());
    Ok(())
}

/// `/_conform/…`: the controls, for a backend engineer driving the simulator by hand (not part of SHKeeper).
fn admin(inner: &Inner, request: &Request, rest: &[&str]) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let result = match (request.method.as_str(), rest) {
        ("POST", ["pay"]) => {
            let external_id = text_field(&body, "external_id").unwrap_or_default().to_owned();
            let amount = text_field(&body, "amount").map(str::to_owned).or_else(|| {
                // Default: what is still due.
                let state = lock(&inner.state);
                state.invoices.iter().rev().find(|i| i.external_id == external_id).map(|i| {
                    let (paid, _) = balance(i);
                    Decimal((Decimal::parse(&i.amount).unwrap_or_default().0 - paid.0).max(0)).format(2)
                })
            });
            match amount {
                Some(amount) => pay(inner, &external_id, &amount).map(|p| json!(p)),
                None => Err(SimError::Unknown { what: "invoice", id: external_id }),
            }
        }
        ("POST", ["payout", task_id, "complete"]) => {
            let success = body.get("success").and_then(Value::as_bool).unwrap_or(true);
            complete_payout(inner, task_id, success).map(|()| json!({"task_id": task_id}))
        }
        _ => {
            let state = {
                let s = lock(&inner.state);
                json!({"invoices": s.invoices, "payouts": s.payouts})
            };
            return super::admin_common(&inner.core, request, rest, &state);
        }
    };
    match result {
        Ok(value) => json_response(200, &value),
        Err(e) => json_response(400, &json!({"error": e.to_string()})),
    }
}

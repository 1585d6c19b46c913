//! A Request Network API v2 simulator (`shared/FACTS.md`, "Request Network API v2").
//!
//! - `POST /v2/request` with `x-api-key` `{payee, amount, invoiceCurrency, paymentCurrency, reference?…}` → 201
//!   `{requestId, paymentReference}`. Every call creates a new request (no upsert is documented), so a backend
//!   that retries start_payment without its own idempotency shows up as two requests.
//! - `GET /v2/request/{id}` → `{requestId, paymentReference, hasBeenPaid, status, txHash, payments[]…}`.
//! - `POST /v2/payouts` → 201 `{requestId, paymentReference}` (the body is recorded as received).
//! - A bad or missing key is 401 `{"message"}`, a malformed body 400 (assumed).
//!
//! Payments are simulated with [`RequestNetworkSim::pay`] (or `POST /_conform/pay`): a `payment.confirmed` (or
//! `payment.partial`) webhook to the configured webhook URL, plus on demand the `.client_id` / `.checkout`
//! variants of the same payment as separate deliveries. Each delivery has its own ULID
//! `x-request-network-delivery`, kept across its retries, and `x-request-network-retry-count` 0–3; the body is
//! signed with the webhook secret (`x-request-network-signature`, hex HMAC-SHA256 of the raw body). Retries after
//! 1 s, 5 s, 15 s on any non-2xx (scale them with [`RetryPolicy::scaled`]), then the delivery is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::core::{
    CallRecord, CallbackAttempt, Confirmations, Core, Decimal, Handler, Job, Outage, RetryPolicy, Server, SimError,
    json_response, lock, outage_response, unix_millis,
};
use crate::drive::webhooks::{RequestNetworkEvent, RequestNetworkSender, ulid_like};

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct RequestNetworkConfig {
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The API key checked on `x-api-key`.
    pub api_key: String,
    /// The webhook signing secret.
    pub webhook_secret: String,
    /// Where webhooks go (Request Network's dashboard setting). Without one, [`RequestNetworkSim::pay`] fails.
    pub webhook_url: Option<String>,
    /// Mark deliveries with `x-request-network-test: true`.
    pub test_deliveries: bool,
    /// Webhook retries.
    pub retry: RetryPolicy,
}

impl Default for RequestNetworkConfig {
    fn default() -> Self {
        RequestNetworkConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "conform-rn-key".to_owned(),
            webhook_secret: "conform-rn-webhook-secret".to_owned(),
            webhook_url: None,
            test_deliveries: false,
            retry: RetryPolicy::request_network(),
        }
    }
}

/// A payment request as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RnRequest {
    /// The id answered.
    pub request_id: String,
    /// The payment reference answered.
    pub payment_reference: String,
    /// The body as received.
    pub request: Value,
    /// Amount due.
    pub amount: String,
    /// Invoice currency.
    pub currency: String,
    /// Payments so far: (txHash, amount).
    pub payments: Vec<(String, String)>,
}

/// Which extra events accompany a payment (sent in addition to the base event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct Variants {
    /// Also send `<event>.client_id`.
    pub client_id: bool,
    /// Also send `<event>.checkout`.
    pub checkout: bool,
}

#[derive(Default)]
struct State {
    requests: Vec<RnRequest>,
    payouts: Vec<Value>,
    next_tx: u64,
    next_delivery: u128,
}

struct Inner {
    config: Mutex<RequestNetworkConfig>,
    core: Arc<Core>,
    state: Mutex<State>,
}

/// A running Request Network simulator. Dropping it stops the server and its webhooks.
pub struct RequestNetworkSim {
    inner: Arc<Inner>,
    server: Server,
}

impl RequestNetworkSim {
    /// Starts listening (on a tokio runtime).
    pub async fn start(config: RequestNetworkConfig) -> Result<RequestNetworkSim, SimError> {
        let (core, rx) = Core::new()?;
        let core = Arc::new(core);
        let bind = config.bind;
        let inner = Arc::new(Inner { config: Mutex::new(config), core: core.clone(), state: Mutex::default() });
        let handler_inner = inner.clone();
        let handler: Handler = Arc::new(move |request: &Request| handle(&handler_inner, request));
        let server = Server::start(bind, handler, core, rx).await?;
        Ok(RequestNetworkSim { inner, server })
    }

    /// The secret its webhooks are signed with (what a harness signs its own deliveries with).
    pub fn webhook_secret(&self) -> String {
        lock(&self.inner.config).webhook_secret.clone()
    }

    /// `http://host:port`: the backend's Request Network API base URL (requests go to `{base}/v2/…`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Sets where webhooks go.
    pub fn set_webhook_url(&self, url: impl Into<String>) {
        lock(&self.inner.config).webhook_url = Some(url.into());
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

    /// Every webhook attempt so far.
    pub fn attempts(&self) -> Vec<CallbackAttempt> {
        self.inner.core.attempts()
    }

    /// Waits until `done` holds for the webhook attempts, at most `timeout`.
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

    /// Switches when webhooks go out.
    pub fn set_confirmations(&self, confirmations: Confirmations) {
        self.inner.core.set_confirmations(confirmations);
    }

    /// Sends each webhook `extra_copies` more times, concurrently, with the same delivery id (a duplicate burst).
    pub fn set_duplicates(&self, extra_copies: u32) {
        self.inner.core.set_duplicates(extra_copies);
    }

    /// Sends the withheld webhooks; returns how many.
    pub fn release_withheld(&self) -> usize {
        self.inner.core.release_withheld()
    }

    /// Stops listening: connections are refused until [`RequestNetworkSim::restart`].
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// Listens again on the same address.
    pub async fn restart(&mut self) -> Result<(), SimError> {
        self.server.restart().await
    }

    /// The payment requests.
    pub fn requests(&self) -> Vec<RnRequest> {
        lock(&self.inner.state).requests.clone()
    }

    /// The payout bodies received.
    pub fn payouts(&self) -> Vec<Value> {
        lock(&self.inner.state).payouts.clone()
    }

    /// A payment of `amount` (default: what is still due) to request `request_id`: sends `payment.confirmed`
    /// (or `payment.partial` while less than due is paid) and the chosen variants. Returns the base event.
    pub fn pay(
        &self,
        request_id: &str,
        amount: Option<&str>,
        variants: Variants,
    ) -> Result<RequestNetworkEvent, SimError> {
        pay(&self.inner, request_id, amount, variants)
    }
}

fn message(status: u16, text: &str) -> ResponseTemplate {
    json_response(status, &json!({"statusCode": status, "message": text}))
}

fn handle(inner: &Arc<Inner>, request: &Request) -> ResponseTemplate {
    let path = request.url.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&"_conform") {
        return admin(inner, request, &segments[1..]);
    }
    inner.core.record(request);
    if let Some(response) = outage_response(inner.core.outage(), || message(503, "Service Unavailable")) {
        return response;
    }
    let api_key = lock(&inner.config).api_key.clone();
    if request.headers.get("x-api-key").map(|v| v.as_bytes()) != Some(api_key.as_bytes()) {
        return message(401, "Unauthorized");
    }
    let body: Option<Value> = serde_json::from_slice(&request.body).ok();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["v2", "request"]) => match body {
            Some(body) => create_request(inner, body),
            None => message(400, "body is not JSON"),
        },
        ("GET", ["v2", "request", id]) => request_status(inner, id),
        ("POST", ["v2", "payouts"]) => match body {
            Some(body) => {
                let mut state = lock(&inner.state);
                state.payouts.push(body);
                let n = state.payouts.len();
                json_response(
                    201,
                    &json!({"requestId": format!("sim-payout-{n:04}"), "paymentReference": format!("0xp{n:015x}")}),
                )
            }
            None => message(400, "body is not JSON"),
        },
        _ => message(404, "Not Found"),
    }
}

fn create_request(inner: &Inner, body: Value) -> ResponseTemplate {
    let text = |name: &str| body.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let (Some(_payee), Some(amount), Some(currency), Some(_payment_currency)) =
        (text("payee"), text("amount"), text("invoiceCurrency"), text("paymentCurrency"))
    else {
        return message(400, "payee, amount, invoiceCurrency and paymentCurrency are required");
    };
    if Decimal::parse(&amount).is_err() {
        return message(400, "amount must be a decimal string");
    }
    let mut state = lock(&inner.state);
    let n = state.requests.len() + 1;
    let request_id = format!("01{n:064x}");
    let payment_reference = format!("0x{n:016x}");
    state.requests.push(RnRequest {
        request_id: request_id.clone(),
        payment_reference: payment_reference.clone(),
        request: body,
        amount,
        currency,
        payments: Vec::new(),
    });
    json_response(201, &json!({"requestId": request_id, "paymentReference": payment_reference}))
}

fn paid(request: &RnRequest) -> Decimal {
    request
        .payments
        .iter()
        .filter_map(|(_, a)| Decimal::parse(a).ok())
        .fold(Decimal(0), |a, b| Decimal(a.0.saturating_add(b.0)))
}

fn request_status(inner: &Inner, id: &str) -> ResponseTemplate {
    let state = lock(&inner.state);
    let Some(r) = state.requests.iter().find(|r| r.request_id == id) else { return message(404, "Request not found") };
    let total = paid(r);
    let due = Decimal::parse(&r.amount).unwrap_or_default();
    let has_been_paid = total >= due;
    let status = if has_been_paid {
        "paid"
    } else if r.payments.is_empty() {
        "pending"
    } else {
        "partially_paid"
    };
    json_response(
        200,
        &json!({
            "requestId": r.request_id,
            "paymentReference": r.payment_reference,
            "hasBeenPaid": has_been_paid,
            "status": status,
            "txHash": r.payments.last().map(|(tx, _)| tx.clone()),
            "payments": r.payments.iter().map(|(tx, amount)| json!({"txHash": tx, "amount": amount})).collect::<Vec<_>>(),
        }),
    )
}

fn pay(
    inner: &Inner,
    request_id: &str,
    amount: Option<&str>,
    variants: Variants,
) -> Result<RequestNetworkEvent, SimError> {
    let config = lock(&inner.config).clone();
    let url = config.webhook_url.clone().ok_or(SimError::NoWebhookUrl)?;
    let mut state = lock(&inner.state);
    state.next_tx += 1;
    let tx_hash = format!("0x{:064x}", state.next_tx);
    let r = state
        .requests
        .iter_mut()
        .find(|r| r.request_id == request_id)
        .ok_or_else(|| SimError::Unknown { what: "request", id: request_id.to_owned() })?;
    let due = Decimal::parse(&r.amount)?;
    let amount = match amount {
        Some(a) => Decimal::parse(a)?,
        None => Decimal((due.0 - paid(r).0).max(0)),
    };
    r.payments.push((tx_hash.clone(), amount.format(2)));
    let total = paid(r);
    let payment_currency = r.request.get("paymentCurrency").and_then(Value::as_str).unwrap_or("").to_owned();
    let event = RequestNetworkEvent {
        event: if total >= due { "payment.confirmed" } else { "payment.partial" }.to_owned(),
        request_id: r.request_id.clone(),
        payment_reference: r.payment_reference.clone(),
        amount: amount.format(2),
        total_amount_paid: total.format(2),
        expected_amount: due.format(2),
        timestamp: "2026-01-01T00:00:00.000Z".to_owned(),
        tx_hash,
        payer_address: "0x00000000000000000000000000000000000000aa".to_owned(),
        network: "sepolia".to_owned(),
        currency: r.currency.clone(),
        payment_currency,
        sub_status: None,
        fees: Vec::new(),
    };
    let mut events = vec![event.clone()];
    for (wanted, suffix) in [(variants.client_id, ".client_id"), (variants.checkout, ".checkout")] {
        if wanted {
            events.push(RequestNetworkEvent { event: format!("{}{suffix}", event.event), ..event.clone() });
        }
    }
    let sender = RequestNetworkSender::new(config.webhook_secret.as_str()).test_deliveries(config.test_deliveries);
    for e in events {
        state.next_delivery += 1;
        let delivery_id = ulid_like(unix_millis(), state.next_delivery);
        let (url, body, sender) = (url.clone(), e.to_body(), sender.clone());
        let make = Arc::new(move |attempt: u32| sender.deliver(&url, &body, &delivery_id, attempt));
        inner.core.submit(Job { make, policy: config.retry.clone() });
    }
    Ok(event)
}

/// `/_conform/…`: the controls, for a backend engineer driving the simulator by hand (not part of Request
/// Network).
fn admin(inner: &Inner, request: &Request, rest: &[&str]) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    match (request.method.as_str(), rest) {
        ("POST", ["pay"]) => {
            let request_id = body.get("request_id").and_then(Value::as_str).unwrap_or_default();
            let amount = body.get("amount").and_then(Value::as_str);
            let flag = |name: &str| {
                body.get("variants")
                    .and_then(Value::as_array)
                    .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(name)))
            };
            let variants = Variants { client_id: flag("client_id"), checkout: flag("checkout") };
            match pay(inner, request_id, amount, variants) {
                Ok(event) => json_response(200, &json!(event)),
                Err(e) => json_response(400, &json!({"error": e.to_string()})),
            }
        }
        _ => {
            let state = {
                let s = lock(&inner.state);
                json!({"requests": s.requests, "payouts": s.payouts})
            };
            super::admin_common(&inner.core, request, rest, &state)
        }
    }
}

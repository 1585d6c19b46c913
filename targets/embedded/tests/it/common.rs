//! Fixtures for the embedded target's integration tests: a started target, a tiny SHKeeper stub, users, tokens,
//! signed webhooks. Real HTTP over loopback throughout.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use conform_embedded::faults::{Fault, FaultSet};
use conform_embedded::{RunningTarget, TargetConfig, start, totp};
use conform_reference::webhooks::shkeeper_signature;
use serde_json::{Value, json};

pub const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub const SEED: &[u8] = b"12345678901234567890";
pub const PASSWORD: &str = "correct horse battery";
pub const SHK_KEY: &str = "conform-shkeeper-key";

/// How the SHKeeper stub answers invoice requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubMode {
    Ok,
    ServerError,
    ErrorStatus,
}

#[derive(Default)]
pub struct StubLog {
    pub invoices: Vec<Value>,
    pub payouts: Vec<Value>,
}

/// A tiny SHKeeper merchant API.
pub struct Stub {
    pub url: String,
    pub mode: Arc<Mutex<StubMode>>,
    pub log: Arc<Mutex<StubLog>>,
}

type StubState = (Arc<Mutex<StubMode>>, Arc<Mutex<StubLog>>);

async fn stub_invoice(
    State((mode, log)): State<StubState>,
    Path(_crypto): Path<String>,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mode = *mode.lock().unwrap();
    match mode {
        StubMode::ServerError => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        StubMode::ErrorStatus => {
            (axum::http::StatusCode::OK, json!({"status": "error", "message": "gateway unavailable"}).to_string())
                .into_response()
        }
        StubMode::Ok => {
            log.lock().unwrap().invoices.push(body.clone());
            let answer = json!({"status": "success", "id": 7, "amount": body["amount"], "exchange_rate": "1",
                "display_name": "Bitcoin", "wallet": "bc1qstub", "recalculate_after": 0});
            (axum::http::StatusCode::OK, answer.to_string()).into_response()
        }
    }
}

async fn stub_payout(
    State((mode, log)): State<StubState>,
    Path(_crypto): Path<String>,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if *mode.lock().unwrap() == StubMode::ServerError {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    log.lock().unwrap().payouts.push(body.clone());
    (axum::http::StatusCode::OK, json!({"task_id": 1, "external_id": body["external_id"]}).to_string()).into_response()
}

async fn stub_rn_request(State((_mode, log)): State<StubState>, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = {
        let mut log = log.lock().unwrap();
        log.invoices.push(body);
        log.invoices.len()
    };
    let answer = json!({"requestId": format!("rn-req-{n}"), "paymentReference": format!("0xref{n}")});
    (axum::http::StatusCode::CREATED, answer.to_string()).into_response()
}

impl Stub {
    pub async fn start() -> Stub {
        let mode = Arc::new(Mutex::new(StubMode::Ok));
        let log = Arc::new(Mutex::new(StubLog::default()));
        let app = Router::new()
            .route("/api/v1/{crypto}/payment_request", post(stub_invoice))
            .route("/api/v1/{crypto}/payout", post(stub_payout))
            .route("/v2/request", post(stub_rn_request))
            .with_state((mode.clone(), log.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub { url, mode, log }
    }

    pub fn set(&self, mode: StubMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn payout_keys(&self) -> Vec<String> {
        self.log.lock().unwrap().payouts.iter().map(|p| p["external_id"].as_str().unwrap_or("").to_owned()).collect()
    }
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Who {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh: String,
    pub session: String,
}

/// A started target with its stub.
pub struct T {
    pub target: RunningTarget,
    pub base: String,
    pub http: reqwest::Client,
    pub stub: Stub,
    n: Mutex<u32>,
}

pub async fn target(faults: &[Fault]) -> T {
    target_with(faults, |_| {}).await
}

pub async fn target_with(faults: &[Fault], tweak: impl FnOnce(&mut TargetConfig)) -> T {
    let stub = Stub::start().await;
    let mut config = TargetConfig {
        faults: FaultSet::of(faults.iter().copied()),
        test_mode: true,
        shkeeper_url: Some(stub.url.clone()),
        request_network_url: Some(stub.url.clone()),
        ..TargetConfig::default()
    };
    tweak(&mut config);
    let target = start(config).await.expect("the target starts");
    let base = target.base_url();
    T { target, base, http: reqwest::Client::new(), stub, n: Mutex::new(0) }
}

impl T {
    /// A fixture around an already started target (its stub is a fresh one nobody configured it with).
    pub fn around(target: RunningTarget, base: String, http: reqwest::Client) -> T {
        let stub = Stub { url: String::new(), mode: Arc::new(Mutex::new(StubMode::Ok)), log: Arc::default() };
        T { target, base, http, stub, n: Mutex::new(0) }
    }

    pub async fn req(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b.to_string());
        }
        let resp = rb.send().await.expect("the target answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.req("GET", path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.req("POST", path, token, Some(body), &[]).await
    }

    pub async fn raw_post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut rb = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json");
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        let resp = rb.body(body).send().await.expect("the target answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The server's clock now.
    pub async fn now(&self) -> i64 {
        let (_, v) = self.post("/v1/test/clock", None, json!({"advance_seconds": 0})).await;
        let text = v["now"].as_str().unwrap().to_owned();
        parse_time(&text)
    }

    pub async fn advance(&self, seconds: i64) {
        let (s, _) = self.post("/v1/test/clock", None, json!({"advance_seconds": seconds})).await;
        assert_eq!(s, 200);
    }

    /// Creates an account with `role` and signs it in.
    pub async fn user(&self, role: &str) -> Who {
        let n = {
            let mut n = self.n.lock().unwrap();
            *n += 1;
            *n
        };
        let email = format!("{role}{n}@example.test");
        let (s, u) = self
            .post(
                "/v1/test/users",
                None,
                json!({"email": email, "password": PASSWORD, "role": role, "totp_seed": SEED_B32}),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        self.sign_in(&email, u["id"].as_str().unwrap()).await
    }

    pub async fn sign_in(&self, email: &str, id: &str) -> Who {
        // Each sign-in from its own client address, so the per-client limit (SES-10) does not bite the fixtures.
        let n = {
            let mut n = self.n.lock().unwrap();
            *n += 1;
            *n
        };
        let client = format!("10.0.{}.{}", n / 250, n % 250);
        let body = json!({"email": email, "password": PASSWORD});
        let (s, t) = self.req("POST", "/v1/auth/sign-in", None, Some(body), &[("X-Forwarded-For", client)]).await;
        assert_eq!(s, 200, "{t}");
        Who {
            id: id.to_owned(),
            email: email.to_owned(),
            token: t["access_token"].as_str().unwrap().to_owned(),
            refresh: t["refresh_token"].as_str().unwrap().to_owned(),
            session: t["session_id"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn step_up(&self, who: &Who) {
        let code = totp(SEED, self.now().await);
        let (s, v) = self.post("/v1/auth/step-up", Some(&who.token), json!({"password": PASSWORD, "totp": code})).await;
        assert_eq!(s, 200, "{v}");
    }

    pub async fn admin(&self) -> Who {
        let a = self.user("admin").await;
        self.step_up(&a).await;
        a
    }

    pub async fn create(&self, buyer: &Who, seller: &Who, amount: &str, provider: &str) -> String {
        let (s, e) = self
            .post(
                "/v1/escrows",
                Some(&buyer.token),
                json!({"seller_id": seller.id, "amount": amount, "currency": "USD", "provider": provider}),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        e["id"].as_str().unwrap().to_owned()
    }

    /// Creates an SHKeeper escrow and starts its payment; returns (escrow id, invoice external id).
    pub async fn invoiced(&self, buyer: &Who, seller: &Who, amount: &str) -> (String, String) {
        let id = self.create(buyer, seller, amount, "shkeeper").await;
        let (s, v) = self.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await;
        assert_eq!(s, 200, "{v}");
        let ext = self.stub.log.lock().unwrap().invoices.last().unwrap()["external_id"].as_str().unwrap().to_owned();
        (id, ext)
    }

    /// A signed SHKeeper payment callback.
    pub async fn pay(&self, ext: &str, amount: &str, txid: &str) -> (u16, Value) {
        self.pay_in(ext, amount, txid, "USD", None).await
    }

    pub async fn pay_in(
        &self,
        ext: &str,
        amount: &str,
        txid: &str,
        fiat: &str,
        metadata: Option<Value>,
    ) -> (u16, Value) {
        let mut body = json!({
            "external_id": ext, "crypto": "BTC", "addr": "bc1qstub", "fiat": fiat, "balance_fiat": amount,
            "balance_crypto": "0.001", "paid": true, "status": "PAID",
            "transactions": [{"txid": txid, "date": "2026-01-01", "amount_crypto": "0.001", "amount_fiat": amount,
                "amount_fiat_without_fee": amount, "fee_fiat": "0", "trigger": true, "crypto": "BTC"}],
        });
        if let Some(m) = metadata {
            body["metadata"] = m;
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        self.shkeeper(bytes, SHK_KEY, 0).await
    }

    /// Delivers `body` to the SHKeeper endpoint signed with `key`, timestamped `skew` seconds before now.
    pub async fn shkeeper(&self, body: Vec<u8>, key: &str, skew: i64) -> (u16, Value) {
        let ts = (self.now().await - skew).to_string();
        let sig = shkeeper_signature(key.as_bytes(), &ts, &body);
        self.raw_post(
            "/v1/webhooks/shkeeper",
            &[("X-Shkeeper-Timestamp", ts), ("X-Shkeeper-Signature", sig), ("X-Shkeeper-Api-Key", key.to_owned())],
            body,
        )
        .await
    }

    pub async fn payout_confirmed(&self, key: &str, amount: &str) -> (u16, Value) {
        let body = json!({"payout_id": 1, "external_id": key, "tx_hash": "0xpaid", "status": "SUCCESS",
            "amount": "0.001", "crypto": "BTC", "amount_fiat": amount, "currency_fiat": "USD", "timestamp": 0});
        self.shkeeper(serde_json::to_vec(&body).unwrap(), SHK_KEY, 0).await
    }

    /// buyer, seller and a funded SHKeeper escrow of `amount`.
    pub async fn funded(&self, amount: &str) -> (Who, Who, String, String) {
        let buyer = self.user("user").await;
        let seller = self.user("user").await;
        let (id, ext) = self.invoiced(&buyer, &seller, amount).await;
        let (s, v) = self.pay(&ext, amount, "tx-fund").await;
        assert_eq!((s, v["status"].as_str()), (202, Some("accepted")), "{v}");
        (buyer, seller, id, ext)
    }

    pub async fn delivered(&self, amount: &str) -> (Who, Who, String, String) {
        let (buyer, seller, id, ext) = self.funded(amount).await;
        let (s, _) = self.post(&format!("/v1/escrows/{id}/mark-delivered"), Some(&seller.token), json!({})).await;
        assert_eq!(s, 200);
        (buyer, seller, id, ext)
    }

    pub async fn escrow(&self, id: &str, who: &Who) -> Value {
        self.get(&format!("/v1/escrows/{id}"), &who.token).await.1
    }

    /// The ledger entries of an escrow, read by a fresh admin.
    pub async fn entries(&self, admin: &Who, escrow: Option<&str>) -> Vec<Value> {
        let path = match escrow {
            Some(e) => format!("/v1/admin/ledger?escrow_id={e}&limit=500"),
            None => "/v1/admin/ledger?limit=500".to_owned(),
        };
        let (s, v) = self.get(&path, &admin.token).await;
        assert_eq!(s, 200, "{v}");
        v["entries"].as_array().cloned().unwrap_or_default()
    }

    pub async fn count_kind(&self, admin: &Who, escrow: &str, kind: &str) -> usize {
        self.entries(admin, Some(escrow)).await.iter().filter(|e| e["kind"] == kind).count()
    }
}

fn parse_time(s: &str) -> i64 {
    // YYYY-MM-DDTHH:MM:SSZ
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

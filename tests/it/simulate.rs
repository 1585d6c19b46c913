//! The provider simulators (`conform::simulate`): SHKeeper and Request Network as a backend meets them: the API
//! with its quirks, the faults, the signed callbacks with their retry behaviour, received by a small local
//! receiver on axum, and checked by an independent verifier in Python.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use conform::drive::webhooks::{StandardWebhooksSender, ulid_like};
use conform::simulate::{
    AttemptOutcome, CallbackAttempt, Confirmations, Outage, RequestNetworkConfig, RequestNetworkSim, RetryPolicy,
    ShkeeperConfig, ShkeeperSim, Variants,
};
use conform_reference::ids::Timestamp;
use conform_reference::webhooks::{
    Headers, SecretRing, VerifyOptions, parse_request_network, parse_shkeeper_callback, verify_request_network,
    verify_shkeeper,
};
use serde_json::{Value, json};

/// Bound for every wait.
const T: Duration = Duration::from_secs(5);
/// Retries run at 1 s = 5 ms (Request Network's 1/5/15 s take 5/25/75 ms); SHKeeper's 60 s interval is set to
/// 20 ms. Attempt timeouts stay at `T`, so a loaded machine does not turn a slow answer into a retry.
const FAST: Duration = Duration::from_millis(5);

const SHK_KEY: &str = "sim-shkeeper-key";
const RN_KEY: &str = "sim-rn-key";
const RN_SECRET: &str = "sim-rn-webhook-secret";

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(T).build().expect("client")
}

async fn shkeeper() -> ShkeeperSim {
    let config = ShkeeperConfig {
        api_key: SHK_KEY.into(),
        retry: RetryPolicy { delays: vec![Duration::from_millis(20)], timeout: T, ..RetryPolicy::shkeeper() },
        payout_retry: RetryPolicy { timeout: T, ..RetryPolicy::shkeeper_payout().scaled(FAST) },
        ..ShkeeperConfig::default()
    };
    ShkeeperSim::start(config).await.expect("start SHKeeper simulator")
}

async fn request_network(webhook_url: Option<String>) -> RequestNetworkSim {
    let config = RequestNetworkConfig {
        api_key: RN_KEY.into(),
        webhook_secret: RN_SECRET.into(),
        webhook_url,
        retry: RetryPolicy { timeout: T, ..RetryPolicy::request_network().scaled(FAST) },
        ..RequestNetworkConfig::default()
    };
    RequestNetworkSim::start(config).await.expect("start Request Network simulator")
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A local webhook receiver that answers with scripted statuses (the last one repeated) and keeps what it got.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Vec<u16>>);

async fn receive(State((got, script)): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let pairs = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut got = got.lock().expect("receiver lock");
    got.push(Received { headers: pairs, body: body.to_vec() });
    let status = script.get(got.len() - 1).or(script.last()).copied().unwrap_or(202);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn receiver(script: &[u16]) -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let state: ReceiverState = (got.clone(), Arc::new(script.to_vec()));
    let app = axum::Router::new().fallback(receive).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url: format!("http://{addr}/hooks/payment"), got, task }
}

impl Receiver {
    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("receiver lock").clone()
    }
}

fn headers_of(pairs: &[(String, String)]) -> Headers<'_> {
    Headers::from_owned(pairs)
}

fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64)
}

async fn create_invoice(sim: &ShkeeperSim, key: &str, external_id: &str, amount: &str, callback_url: &str) -> Value {
    client()
        .post(format!("{}/api/v1/BTC/payment_request", sim.base_url()))
        .header("X-Shkeeper-Api-Key", key)
        .json(&json!({"external_id": external_id, "fiat": "USD", "amount": amount, "callback_url": callback_url}))
        .send()
        .await
        .expect("payment_request")
        .json()
        .await
        .expect("payment_request JSON")
}

#[tokio::test]
async fn shkeeper_invoice_creation_is_an_upsert() {
    let sim = shkeeper().await;
    let first = create_invoice(&sim, SHK_KEY, "inv-1", "10.00", "http://backend/cb").await;
    assert_eq!(first["status"], "success", "{first}");
    for field in ["id", "amount", "exchange_rate", "display_name", "wallet", "recalculate_after"] {
        assert!(first.get(field).is_some(), "{field} missing in {first}");
    }
    let retry = create_invoice(&sim, SHK_KEY, "inv-1", "12.50", "http://backend/cb").await;
    assert_eq!(retry["id"], first["id"], "a retry must update the same invoice");
    assert_eq!(retry["amount"], "12.5");
    let other_url = create_invoice(&sim, SHK_KEY, "inv-1", "12.50", "http://backend/other").await;
    assert_ne!(other_url["id"], first["id"], "the upsert key includes callback_url");
    let invoices = sim.invoices();
    assert_eq!(invoices.len(), 2);
    assert_eq!((invoices[0].amount.as_str(), invoices[0].writes), ("12.50", 2));

    let status: Value = client()
        .get(format!("{}/api/v1/invoices/inv-1", sim.base_url()))
        .header("X-Shkeeper-Api-Key", SHK_KEY)
        .send()
        .await
        .expect("invoices")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["status"], "success");
    assert_eq!(status["invoices"][0]["status"], "UNPAID");
    assert_eq!(status["invoices"][0]["amount_fiat"], "12.50");
}

#[tokio::test]
async fn shkeeper_errors_are_http_200_and_the_key_is_redacted() {
    let sim = shkeeper().await;
    let response = client()
        .post(format!("{}/api/v1/BTC/payment_request", sim.base_url()))
        .header("X-Shkeeper-Api-Key", "wrong-key")
        .json(&json!({"external_id": "inv-1", "fiat": "USD", "amount": "1", "callback_url": "http://x/cb"}))
        .send()
        .await
        .expect("payment_request");
    assert_eq!(response.status().as_u16(), 200, "SHKeeper reports errors with HTTP 200");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], "error");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(sim.invoices().is_empty());
    let missing = create_invoice(&sim, SHK_KEY, "", "1", "http://x/cb").await;
    assert_eq!(missing["status"], "error", "{missing}");

    let calls = sim.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].header("x-shkeeper-api-key"), Some("[redacted]"));
    assert!(!format!("{calls:?}").contains("wrong-key") && !format!("{calls:?}").contains(SHK_KEY));
    assert_eq!(calls[0].json().expect("body")["external_id"], "inv-1");
}

#[tokio::test]
async fn shkeeper_payout_records_the_idempotency_key_of_each_retry() {
    let sim = shkeeper().await;
    let receiver = receiver(&[202]).await;
    let url = format!("{}/api/v1/BTC/payout", sim.base_url());
    let body = json!({"amount": "5.00", "destination": "bc1qdest", "fee": "1", "external_id": "esc-7-release",
        "callback_url": receiver.url});
    let unauthorized =
        client().post(&url).basic_auth("shkeeper", Some("nope")).json(&body).send().await.expect("payout");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let mut task_ids = Vec::new();
    for _ in 0..2 {
        let answer: Value = client()
            .post(&url)
            .basic_auth("shkeeper", Some("shkeeper"))
            .json(&body)
            .send()
            .await
            .expect("payout")
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer["external_id"], "esc-7-release", "{answer}");
        task_ids.push(answer["task_id"].as_str().expect("task_id").to_owned());
    }
    let payouts: Vec<_> = sim.calls().into_iter().filter(|c| c.path == "/api/v1/BTC/payout").collect();
    assert_eq!(payouts.len(), 3);
    assert!(payouts.iter().all(|c| c.header("authorization") == Some("[redacted]")));
    let keys: Vec<_> = payouts.iter().map(|c| c.json().expect("body")["external_id"].clone()).collect();
    assert!(keys.iter().all(|k| k == "esc-7-release"), "the retry reused the idempotency key: {keys:?}");

    let task_url = format!("{}/api/v1/BTC/task/{}", sim.base_url(), task_ids[0]);
    let get = |url: String| async move {
        client()
            .get(url)
            .basic_auth("shkeeper", Some("shkeeper"))
            .send()
            .await
            .expect("GET")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    assert_eq!(get(task_url.clone()).await["status"], "PENDING");
    sim.complete_payout(&task_ids[0], true).expect("complete");
    assert_eq!(get(task_url).await["status"], "SUCCESS");
    let status = get(format!("{}/api/v1/BTC/payout/status?external_id=esc-7-release", sim.base_url())).await;
    assert_eq!(status["status"], "IN_PROGRESS", "the latest task of that external_id is still pending: {status}");

    // The payout callback: HMAC headers only, no API key.
    let attempts = sim.wait_attempts(T, |a| a.iter().any(|a| a.delivered)).await.expect("payout callback");
    let got = &receiver.got()[0];
    assert!(got.headers.iter().all(|(n, _)| n != "x-shkeeper-api-key"), "{:?}", got.headers);
    let ring = SecretRing::new(SHK_KEY);
    verify_shkeeper(&headers_of(&got.headers), &got.body, &ring, &VerifyOptions::default(), now()).expect("verifies");
    let notice = parse_shkeeper_callback(&attempts[0].body).expect("payout callback parses");
    assert_eq!(notice.invoice, "esc-7-release");
}

#[tokio::test]
async fn outages_503_no_answer_error_in_body_and_refused() {
    let mut sim = shkeeper().await;
    let url = format!("{}/api/v1/invoices/inv-1", sim.base_url());
    let get = |timeout: Duration| client().get(&url).header("X-Shkeeper-Api-Key", SHK_KEY).timeout(timeout).send();

    sim.set_outage(Outage::Unavailable);
    assert_eq!(get(T).await.expect("503").status().as_u16(), 503);

    sim.set_outage(Outage::ErrorInBody);
    let answer = get(T).await.expect("200");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.json::<Value>().await.expect("JSON")["status"], "error");

    sim.set_outage(Outage::Hang);
    let hung = get(Duration::from_millis(300)).await.expect_err("no answer");
    assert!(hung.is_timeout(), "{hung}");

    sim.set_outage(Outage::None);
    sim.stop().await;
    let refused = get(T).await.expect_err("refused");
    assert!(refused.is_connect(), "{refused}");
    sim.restart().await.expect("restart on the same port");
    let back: Value = get(T).await.expect("answers again").json().await.expect("JSON");
    assert_eq!(back["status"], "error", "no invoice yet: {back}");
    assert_eq!(sim.calls().len(), 4, "every call that arrived is recorded, the refused one is not");
}

#[tokio::test]
async fn shkeeper_callbacks_are_signed_and_retried_until_202() {
    let sim = shkeeper().await;
    let receiver = receiver(&[500, 200, 202]).await;
    create_invoice(&sim, SHK_KEY, "inv-9", "10.00", &receiver.url).await;
    let payment = sim.pay("inv-9", "4.00").expect("pay");
    assert_eq!(payment.status, "PARTIAL");

    let attempts = sim.wait_attempts(T, |a| a.iter().any(|a| a.delivered)).await.expect("delivered");
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(outcomes, [500, 200, 202].map(AttemptOutcome::Status), "only 202 counts as delivered");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.attempts().len(), 3, "no retry after the 202");

    let got = receiver.got();
    assert_eq!(got.len(), 3);
    let ring = SecretRing::new(SHK_KEY);
    for r in &got {
        let verified = verify_shkeeper(&headers_of(&r.headers), &r.body, &ring, &VerifyOptions::default(), now());
        assert!(verified.is_ok(), "{verified:?}");
        assert_eq!(r.body, got[0].body, "every retry carries the same body");
    }
    let notice = parse_shkeeper_callback(&got[0].body).expect("parses");
    assert_eq!(notice.transaction.as_deref(), Some(payment.transactions[0].txid.as_str()));

    // A second payment: one callback per transaction, all transactions listed, the trigger on the new one.
    let second = sim.pay("inv-9", "6.00").expect("pay");
    assert_eq!((second.status.as_str(), second.paid, second.balance_fiat.as_str()), ("PAID", true, "10.00"));
    let triggers: Vec<bool> = second.transactions.iter().map(|t| t.trigger).collect();
    assert_eq!(triggers, [false, true]);
    sim.wait_attempts(T, |a| a.iter().filter(|a| a.delivered).count() == 2).await.expect("second callback");
}

#[tokio::test]
async fn withheld_and_duplicated_callbacks() {
    let sim = shkeeper().await;
    let receiver = receiver(&[202]).await;
    create_invoice(&sim, SHK_KEY, "inv-3", "1.00", &receiver.url).await;
    sim.set_confirmations(Confirmations::Withheld);
    sim.pay("inv-3", "1.00").expect("pay");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.got().is_empty(), "withheld");
    sim.set_confirmations(Confirmations::Immediate);
    assert_eq!(sim.release_withheld(), 1);
    sim.wait_attempts(T, |a| a.len() == 1).await.expect("released");

    sim.set_duplicates(2);
    sim.pay("inv-3", "0.50").expect("overpay");
    let attempts = sim.wait_attempts(T, |a| a.len() == 4).await.expect("burst of three");
    let burst: Vec<&CallbackAttempt> = attempts[1..].iter().collect();
    assert!(burst.iter().all(|a| a.body == burst[0].body), "a burst repeats the same callback");
    let body: Value = serde_json::from_slice(&burst[0].body).expect("JSON");
    assert_eq!((body["status"].as_str(), body["overpaid_fiat"].as_str()), (Some("OVERPAID"), Some("0.50")));
}

async fn create_request(sim: &RequestNetworkSim, key: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v2/request", sim.base_url()))
        .header("x-api-key", key)
        .json(&json!({"payee": "0xpayee", "amount": "25.00", "invoiceCurrency": "USD", "paymentCurrency": "ETH-sepolia-sepolia"}))
        .send()
        .await
        .expect("POST /v2/request")
}

#[tokio::test]
async fn request_network_api_and_signed_webhooks_with_variants_and_retries() {
    let receiver = receiver(&[401, 200]).await;
    let sim = request_network(Some(receiver.url.clone())).await;
    assert_eq!(create_request(&sim, "bad").await.status().as_u16(), 401);
    let created = create_request(&sim, RN_KEY).await;
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.expect("JSON");
    let request_id = created["requestId"].as_str().expect("requestId").to_owned();
    assert!(created["paymentReference"].is_string());
    assert_eq!(sim.calls()[0].header("x-api-key"), Some("[redacted]"));

    let event = sim.pay(&request_id, None, Variants { client_id: true, checkout: false }).expect("pay");
    assert_eq!(event.event, "payment.confirmed");
    let attempts = sim.wait_attempts(T, |a| a.iter().filter(|a| a.delivered).count() == 2).await.expect("delivered");
    // The first delivery was refused once (401 is retried like any non-2xx) and retried with the same id.
    let first_id = attempts[0].header("x-request-network-delivery").expect("delivery id").to_owned();
    let same: Vec<_> = attempts.iter().filter(|a| a.header("x-request-network-delivery") == Some(&first_id)).collect();
    assert_eq!(same.len(), 2, "{attempts:#?}");
    assert_eq!(
        same.iter().map(|a| a.header("x-request-network-retry-count")).collect::<Vec<_>>(),
        [Some("0"), Some("1")]
    );
    let ids: std::collections::BTreeSet<_> =
        attempts.iter().filter_map(|a| a.header("x-request-network-delivery")).collect();
    assert_eq!(ids.len(), 2, "the variant is a separate delivery");

    let ring = SecretRing::new(RN_SECRET);
    let mut keys = Vec::new();
    for r in receiver.got() {
        let headers = headers_of(&r.headers);
        verify_request_network(&headers, &r.body, &ring, now()).expect("verifies");
        let notice = parse_request_network(&headers, &r.body).expect("parses");
        keys.push((notice.event_key.clone(), notice.variant));
    }
    assert!(keys.iter().all(|(k, _)| *k == keys[0].0), "base event and variant are one payment: {keys:?}");
    assert!(keys.iter().any(|(_, variant)| *variant));

    let status: Value = client()
        .get(format!("{}/v2/request/{request_id}", sim.base_url()))
        .header("x-api-key", RN_KEY)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["hasBeenPaid"], true);
    assert_eq!(status["txHash"], event.tx_hash);

    let payout = client()
        .post(format!("{}/v2/payouts", sim.base_url()))
        .header("x-api-key", RN_KEY)
        .json(
            &json!({"payee": "0xseller", "amount": "25.00", "invoiceCurrency": "USD", "paymentCurrency": "USDC-base"}),
        )
        .send()
        .await
        .expect("POST /v2/payouts");
    assert_eq!(payout.status().as_u16(), 201);
    assert_eq!(sim.payouts().len(), 1);
}

#[tokio::test]
async fn request_network_gives_up_after_four_attempts() {
    let receiver = receiver(&[500]).await;
    let sim = request_network(Some(receiver.url.clone())).await;
    let created: Value = create_request(&sim, RN_KEY).await.json().await.expect("JSON");
    sim.pay(created["requestId"].as_str().expect("id"), Some("10.00"), Variants::default()).expect("pay");
    let attempts = sim.wait_attempts(T, |a| a.len() == 4).await.expect("four attempts");
    let counts: Vec<_> = attempts.iter().map(|a| a.header("x-request-network-retry-count").unwrap_or("?")).collect();
    assert_eq!(counts, ["0", "1", "2", "3"]);
    let body: Value = serde_json::from_slice(&attempts[0].body).expect("JSON");
    assert_eq!(body["event"], "payment.partial");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.attempts().len(), 4, "dropped after the fourth attempt");
    sim.set_outage(Outage::RateLimited);
    assert_eq!(create_request(&sim, RN_KEY).await.status().as_u16(), 429);
}

/// An independent receiver: Python's `hmac` and `hashlib` verify what the simulators and the Standard Webhooks
/// sender put on the wire.
const PY_VERIFY: &str = r#"
import base64, hashlib, hmac, json, sys
case = json.loads(sys.stdin.read())
body = bytes.fromhex(case["body_hex"])
h = {k.lower(): v for k, v in case["headers"]}
secret = case["secret"]
scheme = case["scheme"]
if scheme == "shkeeper":
    signed = h["x-shkeeper-timestamp"].encode() + b"." + body
    ok = hmac.compare_digest(hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest(), h["x-shkeeper-signature"])
    ok = ok and body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
elif scheme == "request_network":
    ok = hmac.compare_digest(hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), h["x-request-network-signature"])
elif scheme == "standard_webhooks":
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = (h["webhook-id"] + "." + h["webhook-timestamp"] + ".").encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    ok = any(hmac.compare_digest(expected, s) for s in h["webhook-signature"].split(" "))
else:
    ok = False
print("ok" if ok else "bad")
sys.exit(0 if ok else 1)
"#;

fn python_verifies(scheme: &str, secret: &str, headers: &[(String, String)], body: &[u8]) -> bool {
    use std::io::Write as _;
    let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
    let case = json!({"scheme": scheme, "secret": secret, "headers": headers, "body_hex": hex});
    let child = std::process::Command::new("python3")
        .args(["-c", PY_VERIFY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!("python3 is needed for the independent webhook verifier and could not be started: {e}"),
    };
    child.stdin.take().expect("stdin").write_all(case.to_string().as_bytes()).expect("write to python3");
    let out = child.wait_with_output().expect("python3 output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "python3 failed: {stderr}");
    out.status.success()
}

#[tokio::test]
async fn python_verifies_what_the_simulators_send() {
    let receiver = receiver(&[202]).await;
    let shk = shkeeper().await;
    create_invoice(&shk, SHK_KEY, "inv-py", "3.00", &receiver.url).await;
    shk.pay("inv-py", "3.00").expect("pay");
    shk.wait_attempts(T, |a| a.len() == 1).await.expect("SHKeeper callback");
    let rn = request_network(Some(receiver.url.clone())).await;
    let created: Value = create_request(&rn, RN_KEY).await.json().await.expect("JSON");
    rn.pay(created["requestId"].as_str().expect("id"), None, Variants::default()).expect("pay");
    rn.wait_attempts(T, |a| a.len() == 1).await.expect("Request Network webhook");

    let got = receiver.got();
    assert_eq!(got.len(), 2);
    assert!(python_verifies("shkeeper", SHK_KEY, &got[0].headers, &got[0].body), "SHKeeper callback refused by Python");
    assert!(
        python_verifies("request_network", RN_SECRET, &got[1].headers, &got[1].body),
        "RN webhook refused by Python"
    );
    // The verifier does refuse: a wrong secret and a changed byte.
    assert!(!python_verifies("shkeeper", "other", &got[0].headers, &got[0].body));
    let mut changed = got[1].body.clone();
    changed[2] ^= 1;
    assert!(!python_verifies("request_network", RN_SECRET, &got[1].headers, &changed));

    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let sw = StandardWebhooksSender::new(secret).expect("secret").deliver(
        &receiver.url,
        br#"{"type":"x"}"#,
        "msg_1",
        1_700_000_000,
    );
    assert!(python_verifies("standard_webhooks", secret, &sw.headers, &sw.body), "Standard Webhooks refused by Python");
    assert_eq!(ulid_like(0, 0).len(), 26);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn cli_runs_a_simulator_and_explains_how_to_use_it() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["simulate", "shkeeper", "--help"])
        .output()
        .expect("conform simulate shkeeper --help");
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["--port", "X-Shkeeper-Signature", "API key", "callback_url", "202"] {
        assert!(text.contains(needle), "{needle} missing from --help:\n{text}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["simulate", "request-network", "--help"])
        .output()
        .expect("conform simulate request-network --help");
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["--webhook-url", "x-request-network-signature", "x-api-key", "--webhook-secret"] {
        assert!(text.contains(needle), "{needle} missing from --help:\n{text}");
    }

    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["simulate", "shkeeper", "--port", &port.to_string(), "--api-key", "cli-key"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("conform simulate shkeeper");
    let _guard = KillOnDrop(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + T;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the simulator did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer: Value = client()
        .post(format!("http://{addr}/api/v1/BTC/payment_request"))
        .header("X-Shkeeper-Api-Key", "cli-key")
        .json(
            &json!({"external_id": "cli-1", "fiat": "USD", "amount": "1.00", "callback_url": "http://127.0.0.1:9/cb"}),
        )
        .send()
        .await
        .expect("payment_request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["status"], "success", "{answer}");
    let state: Value =
        client().get(format!("http://{addr}/_conform/state")).send().await.expect("state").json().await.expect("JSON");
    assert_eq!(state["invoices"][0]["external_id"], "cli-1");
}

#[tokio::test]
async fn controls_over_http_for_a_backend_engineer() {
    let hook = receiver(&[200]).await;
    let sim = request_network(Some(hook.url.clone())).await;
    let control =
        |path: &str, body: Value| client().post(format!("{}/_conform/{path}", sim.base_url())).json(&body).send();
    assert_eq!(control("faults", json!({"outage": "unavailable"})).await.expect("faults").status().as_u16(), 200);
    assert_eq!(create_request(&sim, RN_KEY).await.status().as_u16(), 503);
    assert_eq!(control("faults", json!({"outage": "sideways"})).await.expect("faults").status().as_u16(), 400);
    let withheld = json!({"outage": "none", "confirmations": "withheld", "duplicates": 1});
    assert_eq!(control("faults", withheld).await.expect("faults").status().as_u16(), 200);
    let created: Value = create_request(&sim, RN_KEY).await.json().await.expect("JSON");
    let pay = json!({"request_id": created["requestId"], "variants": ["checkout"]});
    let event: Value = control("pay", pay).await.expect("pay").json().await.expect("JSON");
    assert_eq!(event["event"], "payment.confirmed");
    let released: Value = control("release", json!({})).await.expect("release").json().await.expect("JSON");
    assert_eq!(released["released"], 4, "two events, each sent twice");
    let attempts = sim.wait_attempts(T, |a| a.len() == 4).await.expect("four deliveries");
    let events: std::collections::BTreeSet<String> = attempts
        .iter()
        .map(|a| serde_json::from_slice::<Value>(&a.body).expect("JSON")["event"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(events.into_iter().collect::<Vec<_>>(), ["payment.confirmed", "payment.confirmed.checkout"]);
    let calls: Value = client()
        .get(format!("{}/_conform/calls", sim.base_url()))
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("JSON");
    assert_eq!(calls.as_array().map(Vec::len), Some(2), "controls are not recorded as provider calls: {calls}");
    assert!(!calls.to_string().contains(RN_KEY), "the API key is redacted");
    let unknown = client().get(format!("{}/_conform/nope", sim.base_url())).send().await.expect("unknown");
    assert_eq!(unknown.status().as_u16(), 404);

    let shk = shkeeper().await;
    let shk_receiver = receiver(&[202]).await;
    create_invoice(&shk, SHK_KEY, "inv-http", "7.25", &shk_receiver.url).await;
    let paid: Value = client()
        .post(format!("{}/_conform/pay", shk.base_url()))
        .json(&json!({"external_id": "inv-http"}))
        .send()
        .await
        .expect("pay")
        .json()
        .await
        .expect("JSON");
    assert_eq!((paid["status"].as_str(), paid["balance_fiat"].as_str()), (Some("PAID"), Some("7.25")), "{paid}");
    shk.wait_attempts(T, |a| a.iter().any(|a| a.delivered)).await.expect("callback");
}

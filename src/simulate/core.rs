//! What both simulators share: the wiremock server that can be stopped and restarted on its port, the record of
//! calls, the fault switches, and the callback sender with its retry policy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use conform_reference::webhooks::{Headers, redact_headers};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::drive::webhooks::Delivery;

/// Locks a mutex, taking over the data of a holder that panicked (the data here stays consistent per call).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Unix milliseconds now.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Why a simulator call failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No invoice, request or payout with this id.
    #[error("unknown {what} {id:?}")]
    Unknown {
        /// What was looked up.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// An amount is not a plain decimal string.
    #[error("{0:?} is not a decimal amount")]
    BadAmount(String),
    /// A call that needs a webhook URL, without one configured.
    #[error("no webhook URL is configured (set --webhook-url, or the `webhook_url` of the config)")]
    NoWebhookUrl,
    /// A bounded wait ended.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// One call the simulator received, as it arrived except for secrets: the API key, the Basic credentials and
/// every other secret-bearing header read `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// Order of arrival, from 0.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Header (name, value) pairs, names lower case, secrets redacted.
    pub headers: Vec<(String, String)>,
    /// The raw body, as text (lossy).
    pub body: String,
}

impl CallRecord {
    /// The first value of header `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// How the provider's API behaves, switched at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// Answers normally.
    #[default]
    None,
    /// HTTP 503.
    Unavailable,
    /// Accepts the connection and never answers (an hour), so the caller's timeout fires.
    Hang,
    /// HTTP 429 (Request Network's rate limit).
    RateLimited,
    /// SHKeeper's way: HTTP 200 with `{"status":"error","message":"gateway unavailable"}`. Request Network
    /// answers 503 instead.
    ErrorInBody,
}

/// When payment and payout callbacks go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmations {
    /// At once.
    #[default]
    Immediate,
    /// After a delay, in milliseconds.
    DelayedMs(u64),
    /// Held back until released (`release_withheld`).
    Withheld,
}

/// When and how often a callback is retried, and what counts as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The waits before the 2nd, 3rd, … attempts; the last is repeated while attempts remain.
    pub delays: Vec<Duration>,
    /// Total attempts, the first included; `None`: no cap (SHKeeper's payment callbacks).
    pub max_attempts: Option<u32>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Only HTTP 202 counts as delivered (SHKeeper); otherwise any 2xx does.
    pub only_202: bool,
}

impl RetryPolicy {
    /// SHKeeper's payment callbacks: every 60 s, no cap, 30 s timeout, only 202 counts.
    pub fn shkeeper() -> RetryPolicy {
        RetryPolicy {
            delays: vec![Duration::from_secs(60)],
            max_attempts: None,
            timeout: Duration::from_secs(30),
            only_202: true,
        }
    }

    /// SHKeeper's payout callbacks: up to 7 retries (8 attempts), then dropped. The interval is not documented;
    /// 60 s as for payments (assumed).
    pub fn shkeeper_payout() -> RetryPolicy {
        RetryPolicy { max_attempts: Some(8), ..RetryPolicy::shkeeper() }
    }

    /// Request Network: retries after 1 s, 5 s, 15 s (4 attempts), 5 s timeout, any 2xx counts.
    pub fn request_network() -> RetryPolicy {
        RetryPolicy {
            delays: [1, 5, 15].map(Duration::from_secs).to_vec(),
            max_attempts: Some(4),
            timeout: Duration::from_secs(5),
            only_202: false,
        }
    }

    /// The same policy with every delay and the timeout scaled so that one second becomes `one_second`
    /// (`Duration::from_millis(10)` runs SHKeeper's 60 s interval in 600 ms). The timeout is kept at least 200 ms.
    pub fn scaled(mut self, one_second: Duration) -> RetryPolicy {
        let scale = |d: Duration| {
            let millis = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
            one_second.saturating_mul(millis) / 1000
        };
        self.delays = self.delays.into_iter().map(scale).collect();
        self.timeout = scale(self.timeout).max(Duration::from_millis(200));
        self
    }

    /// Whether `status` counts as delivered.
    pub fn delivered(&self, status: u16) -> bool {
        if self.only_202 { status == 202 } else { (200..300).contains(&status) }
    }

    fn delay_before(&self, attempt: u32) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.delays.get(index).or(self.delays.last()).copied().unwrap_or(Duration::from_secs(1))
    }
}

/// What one callback attempt got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The receiver answered with this status.
    Status(u16),
    /// No answer: refused, timed out, reset.
    Error(String),
}

/// One attempt to deliver a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackAttempt {
    /// Which callback (the same across its retries); duplicates of a burst have their own.
    pub callback: u64,
    /// Attempt number, from 0.
    pub attempt: u32,
    /// Where it went.
    pub url: String,
    /// The headers sent (not redacted: this is what the provider sends; a legacy SHKeeper callback carries the
    /// API key).
    pub headers: Vec<(String, String)>,
    /// The raw body sent.
    #[serde(serialize_with = "lossy")]
    pub body: Vec<u8>,
    /// What came back.
    pub outcome: AttemptOutcome,
    /// Whether this attempt counted as delivered.
    pub delivered: bool,
}

fn lossy<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(bytes))
}

impl CallbackAttempt {
    /// The first value of header `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Builds the delivery of attempt `n` (from 0): SHKeeper signs each attempt at its own time, Request Network
/// counts attempts in a header.
pub(crate) type MakeDelivery = Arc<dyn Fn(u32) -> Delivery + Send + Sync>;

/// A queued callback: its id, the job, and the delay before its first attempt.
pub(crate) type Queued = (u64, Job, Duration);

/// A callback to deliver.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) make: MakeDelivery,
    pub(crate) policy: RetryPolicy,
}

#[derive(Default)]
struct FaultState {
    outage: Outage,
    confirmations: Confirmations,
    duplicates: u32,
}

/// The state every simulator has.
pub(crate) struct Core {
    records: Mutex<Vec<CallRecord>>,
    attempts: Mutex<Vec<CallbackAttempt>>,
    faults: Mutex<FaultState>,
    withheld: Mutex<Vec<Job>>,
    next_callback: Mutex<u64>,
    jobs: mpsc::UnboundedSender<Queued>,
    changed: Notify,
    client: reqwest::Client,
}

impl Core {
    /// A core and the receiving end of its job queue, for [`Core::dispatch`].
    pub(crate) fn new() -> Result<(Core, mpsc::UnboundedReceiver<Queued>), SimError> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SimError::Client(e.to_string()))?;
        let core = Core {
            records: Mutex::default(),
            attempts: Mutex::default(),
            faults: Mutex::default(),
            withheld: Mutex::default(),
            next_callback: Mutex::new(0),
            jobs,
            changed: Notify::new(),
            client,
        };
        Ok((core, rx))
    }

    /// Runs queued callbacks, each in its own task, until the queue closes; dropping (aborting) this task aborts
    /// them all.
    pub(crate) async fn dispatch(core: Arc<Core>, mut rx: mpsc::UnboundedReceiver<Queued>) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                job = rx.recv() => match job {
                    Some((id, job, delay)) => { tasks.spawn(deliver(core.clone(), id, job, delay)); }
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }

    pub(crate) fn record(&self, request: &Request) -> CallRecord {
        let pairs: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let headers = redact_headers(&Headers::from_owned(&pairs));
        let mut records = lock(&self.records);
        let record = CallRecord {
            seq: records.len() as u64,
            method: request.method.as_str().to_owned(),
            path: request.url.path().to_owned(),
            query: request.url.query().map(str::to_owned),
            headers,
            body: String::from_utf8_lossy(&request.body).into_owned(),
        };
        records.push(record.clone());
        drop(records);
        self.changed.notify_waiters();
        record
    }

    pub(crate) fn calls(&self) -> Vec<CallRecord> {
        lock(&self.records).clone()
    }

    pub(crate) fn attempts(&self) -> Vec<CallbackAttempt> {
        lock(&self.attempts).clone()
    }

    pub(crate) fn outage(&self) -> Outage {
        lock(&self.faults).outage
    }

    pub(crate) fn set_outage(&self, outage: Outage) {
        lock(&self.faults).outage = outage;
    }

    pub(crate) fn set_confirmations(&self, confirmations: Confirmations) {
        lock(&self.faults).confirmations = confirmations;
    }

    pub(crate) fn set_duplicates(&self, extra_copies: u32) {
        lock(&self.faults).duplicates = extra_copies;
    }

    /// Queues a callback as the fault switches say: at once, delayed or withheld, and with the extra copies of
    /// a duplicate burst (the same bytes, sent concurrently).
    pub(crate) fn submit(&self, job: Job) {
        let (confirmations, duplicates) = {
            let faults = lock(&self.faults);
            (faults.confirmations, faults.duplicates)
        };
        let delay = match confirmations {
            Confirmations::Immediate => Duration::ZERO,
            Confirmations::DelayedMs(ms) => Duration::from_millis(ms),
            Confirmations::Withheld => {
                lock(&self.withheld).extend(std::iter::repeat_n(job, duplicates as usize + 1));
                return;
            }
        };
        for _ in 0..=duplicates {
            self.enqueue(job.clone(), delay);
        }
    }

    fn enqueue(&self, job: Job, delay: Duration) {
        let id = {
            let mut next = lock(&self.next_callback);
            *next += 1;
            *next - 1
        };
        // The receiver lives as long as the simulator; after that there is nobody to deliver for.
        let _ = self.jobs.send((id, job, delay));
    }

    /// Sends every withheld callback now; returns how many.
    pub(crate) fn release_withheld(&self) -> usize {
        let jobs = std::mem::take(&mut *lock(&self.withheld));
        let count = jobs.len();
        for job in jobs {
            self.enqueue(job, Duration::ZERO);
        }
        count
    }

    /// Waits until `done` holds for the callback attempts so far, at most `timeout`.
    pub(crate) async fn wait_attempts(
        &self,
        timeout: Duration,
        done: impl Fn(&[CallbackAttempt]) -> bool,
    ) -> Result<Vec<CallbackAttempt>, SimError> {
        self.wait(timeout, "callback attempts", || {
            let attempts = lock(&self.attempts);
            done(&attempts).then(|| attempts.clone())
        })
        .await
    }

    /// Waits until `done` holds for the calls received so far, at most `timeout`.
    pub(crate) async fn wait_calls(
        &self,
        timeout: Duration,
        done: impl Fn(&[CallRecord]) -> bool,
    ) -> Result<Vec<CallRecord>, SimError> {
        self.wait(timeout, "calls", || {
            let records = lock(&self.records);
            done(&records).then(|| records.clone())
        })
        .await
    }

    async fn wait<T>(
        &self,
        timeout: Duration,
        what: &'static str,
        check: impl Fn() -> Option<T>,
    ) -> Result<T, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(value) = check() {
                return Ok(value);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check().ok_or(SimError::Timeout(timeout, what));
            }
        }
    }
}

/// Delivers one callback with retries, recording every attempt.
async fn deliver(core: Arc<Core>, id: u64, job: Job, delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut attempt = 0u32;
    loop {
        let delivery = (job.make)(attempt);
        let mut request = core.client.post(&delivery.url).timeout(job.policy.timeout).body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            request = request.header(name, value);
        }
        let outcome = match request.send().await {
            Ok(response) => AttemptOutcome::Status(response.status().as_u16()),
            Err(error) => AttemptOutcome::Error(error_text(&error)),
        };
        let delivered = matches!(outcome, AttemptOutcome::Status(s) if job.policy.delivered(s));
        lock(&core.attempts).push(CallbackAttempt {
            callback: id,
            attempt,
            url: delivery.url,
            headers: delivery.headers,
            body: delivery.body,
            outcome,
            delivered,
        });
        core.changed.notify_waiters();
        attempt += 1;
        if delivered || job.policy.max_attempts.is_some_and(|max| attempt >= max) {
            return;
        }
        tokio::time::sleep(job.policy.delay_before(attempt)).await;
    }
}

fn error_text(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_builder() {
        "bad request (URL?)"
    } else {
        "request"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The responder all calls go through.
pub(crate) type Handler = Arc<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>;

struct Dispatch(Handler);

impl Respond for Dispatch {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        (self.0)(request)
    }
}

/// The wiremock server of a simulator, which can be stopped (connections refused) and started again on the same
/// address, and the dispatcher task of its callbacks.
pub(crate) struct Server {
    mock: Option<MockServer>,
    addr: SocketAddr,
    handler: Handler,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(
        addr: SocketAddr,
        handler: Handler,
        core: Arc<Core>,
        rx: mpsc::UnboundedReceiver<Queued>,
    ) -> Result<Server, SimError> {
        let (mock, addr) = serve(addr, &handler).await?;
        let dispatcher = tokio::spawn(Core::dispatch(core, rx));
        Ok(Server { mock: Some(mock), addr, handler, dispatcher })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening: new connections are refused once this returns (the server's thread closes its
    /// listener asynchronously, so this waits, at most 2 s, until a connection attempt is refused).
    pub(crate) async fn stop(&mut self) {
        if self.mock.take().is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), tokio::net::TcpStream::connect(self.addr)).await {
                Ok(Err(_)) => return,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Listens again on the same address (no-op when running).
    pub(crate) async fn restart(&mut self) -> Result<(), SimError> {
        if self.mock.is_none() {
            let (mock, _) = serve(self.addr, &self.handler).await?;
            self.mock = Some(mock);
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

async fn serve(addr: SocketAddr, handler: &Handler) -> Result<(MockServer, SocketAddr), SimError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind { addr, source })?;
    let mock = MockServer::builder()
        .listener(listener)
        .body_print_limit(wiremock::BodyPrintLimit::Limited(1024))
        .start()
        .await;
    Mock::given(wiremock::matchers::any()).respond_with(Dispatch(handler.clone())).mount(&mock).await;
    Ok((mock, addr))
}

/// The answer for an outage, or `None` to answer normally.
pub(crate) fn outage_response(
    outage: Outage,
    error_in_body: impl FnOnce() -> ResponseTemplate,
) -> Option<ResponseTemplate> {
    match outage {
        Outage::None => None,
        Outage::Unavailable => Some(json_response(503, &serde_json::json!({"message": "Service Unavailable"}))),
        Outage::Hang => Some(ResponseTemplate::new(503).set_delay(Duration::from_secs(3600))),
        Outage::RateLimited => Some(json_response(429, &serde_json::json!({"message": "Too Many Requests"}))),
        Outage::ErrorInBody => Some(error_in_body()),
    }
}

/// A JSON response with this status.
pub(crate) fn json_response(status: u16, body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(serde_json::to_vec(body).unwrap_or_default(), "application/json")
}

/// A fixed-point decimal with 8 places, for amounts given as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Decimal(pub(crate) i128);

impl Decimal {
    const SCALE: i128 = 100_000_000;

    /// Parses `12`, `12.5`, `0.00000001`; refuses signs, exponents and more than 8 places.
    pub(crate) fn parse(text: &str) -> Result<Decimal, SimError> {
        let bad = || SimError::BadAmount(text.to_owned());
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 20 || !digits(whole) || !digits(fraction) || fraction.len() > 8 {
            return Err(bad());
        }
        let whole: i128 = whole.parse().map_err(|_| bad())?;
        let padded = format!("{fraction:0<8}");
        let fraction: i128 = padded.parse().map_err(|_| bad())?;
        Ok(Decimal(whole * Decimal::SCALE + fraction))
    }

    /// Written with at least `min_places` decimals, trailing zeros beyond them trimmed.
    pub(crate) fn format(self, min_places: usize) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = Decimal::SCALE.unsigned_abs();
        let mut fraction = format!("{:08}", abs % scale);
        while fraction.len() > min_places && fraction.ends_with('0') {
            fraction.pop();
        }
        if fraction.is_empty() { format!("{sign}{}", abs / scale) } else { format!("{sign}{}.{fraction}", abs / scale) }
    }

    /// `self / divisor`, rounded toward zero to 8 places; zero for a zero divisor (or an overflow).
    pub(crate) fn div(self, divisor: Decimal) -> Decimal {
        Decimal(self.0.checked_mul(Decimal::SCALE).and_then(|n| n.checked_div(divisor.0)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip() {
        assert_eq!(Decimal::parse("12.5").unwrap().format(2), "12.50");
        assert_eq!(Decimal::parse("0.00000001").unwrap().format(0), "0.00000001");
        assert_eq!(Decimal::parse("3").unwrap().format(0), "3");
        assert!(Decimal::parse("-1").is_err() && Decimal::parse("1e3").is_err() && Decimal::parse(".5").is_err());
        let third = Decimal::parse("10").unwrap().div(Decimal::parse("3").unwrap());
        assert_eq!(third.format(2), "3.33333333");
    }

    #[test]
    fn retry_policies_scale() {
        let p = RetryPolicy::request_network().scaled(Duration::from_millis(10));
        assert_eq!(p.delays, vec![Duration::from_millis(10), Duration::from_millis(50), Duration::from_millis(150)]);
        assert_eq!(p.delay_before(1), Duration::from_millis(10));
        assert_eq!(p.delay_before(9), Duration::from_millis(150));
        assert!(RetryPolicy::shkeeper().delivered(202) && !RetryPolicy::shkeeper().delivered(200));
        assert!(RetryPolicy::request_network().delivered(204) && !RetryPolicy::request_network().delivered(401));
    }
}

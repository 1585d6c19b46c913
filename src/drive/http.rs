//! The HTTP driver: how conform calls a target's REST API, as its web and mobile clients do.
//!
//! An [`HttpDriver`] holds a base URL, a session (a bearer token, cookies, or both), an optional CSRF header and
//! the timeouts. Every request has a total timeout (default 10 s) and a connect timeout (default 3 s), so a target
//! that hangs can never hang a run. Redirects are not followed: a suite sees the `3xx` the target sent.
//!
//! Every exchange (method, URL, status, headers, body, elapsed time, or the failure) is captured in an exchange
//! log for reports. Secrets are redacted when captured, so the log can be printed, serialized or attached to a
//! report as is: the values of `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` (cookie names and
//! attributes are kept), `X-Shkeeper-Api-Key`, `x-api-key` and the configured CSRF header (and its JSON field, when the token
//! comes in a body), and any JSON body field (at any depth) or query/form parameter named `password`, `token`, `access_token`, `refresh_token`, `secret`,
//! `totp` or `totp_seed` (case-insensitive) become `[redacted]`. The [`Response`] handed to the caller keeps the
//! real values (a suite needs the token a login returns); its `Debug` output is redacted too.
//!
//! Failures are [`HttpError`]s naming the request (method and URL) and what failed; a refused connection says
//! that the target is unreachable.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What replaces a secret in the exchange log and in `Debug` output.
pub const REDACTED: &str = "[redacted]";

/// Header names whose values are always secret (lower case).
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "x-shkeeper-api-key", "x-api-key"];

/// JSON fields, query and form parameters whose values are secret (compared case-insensitively).
const SECRET_FIELDS: &[&str] = &["password", "token", "access_token", "refresh_token", "secret", "totp", "totp_seed"];

/// Bodies longer than this are cut in the exchange log (the [`Response`] keeps them whole).
const LOG_BODY_LIMIT: usize = 64 * 1024;

/// Where the CSRF token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrfSource {
    /// A cookie the target set (double-submit cookie pattern), read from the cookie jar before each request.
    Cookie(String),
    /// A response header; the latest value seen is kept.
    ResponseHeader(String),
    /// A top-level field of a JSON response body (e.g. `csrf_token` in the login response); latest value kept.
    JsonField(String),
}

/// An anti-CSRF header sent on every state-changing request (any method but GET, HEAD, OPTIONS and TRACE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csrf {
    /// The header to send, e.g. `X-CSRF-Token`.
    pub header: String,
    /// Where its value comes from.
    pub source: CsrfSource,
}

/// How to reach a target.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Base URL; request paths are appended to it (`http://127.0.0.1:8080/api` + `/escrows`).
    pub base_url: String,
    /// Total time allowed for one request, from connecting to the last body byte.
    pub timeout: Duration,
    /// Time allowed to establish the connection.
    pub connect_timeout: Duration,
    /// The anti-CSRF header, if the target wants one.
    pub csrf: Option<Csrf>,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl HttpConfig {
    /// The defaults (timeout 10 s, connect timeout 3 s, no CSRF) for `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            csrf: None,
            user_agent: concat!("conform/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Sets the total timeout of each request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sends `header` on state-changing requests, with its value taken from `source`.
    pub fn csrf(mut self, header: impl Into<String>, source: CsrfSource) -> Self {
        self.csrf = Some(Csrf { header: header.into(), source });
        self
    }
}

/// A failed HTTP exchange, naming the request and what failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The configuration cannot work.
    #[error("invalid HTTP driver configuration: {0}")]
    Config(String),
    /// The request URL is not a URL.
    #[error("{method} {url}: not a valid URL: {detail}")]
    BadUrl {
        /// The method.
        method: String,
        /// The URL as built.
        url: String,
        /// Why it does not parse.
        detail: String,
    },
    /// A header name or value cannot be sent.
    #[error("{method} {url}: invalid header {name:?}")]
    BadHeader {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The header name.
        name: String,
    },
    /// No connection could be made: the target is down or the address is wrong.
    #[error("{method} {url}: target unreachable: {detail} (is the target running, and is the base URL right?)")]
    Unreachable {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// `connection refused`, a DNS failure, …
        detail: String,
    },
    /// Connecting took longer than the connect timeout.
    #[error("{method} {url}: target unreachable: no connection within {after:?} (connect timeout)")]
    ConnectTimeout {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The target accepted the request but did not answer in time.
    #[error("{method} {url}: timed out after {after:?} without a complete response")]
    Timeout {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The request timeout.
        after: Duration,
    },
    /// The response body is not the JSON expected.
    #[error("{method} {url}: the response (status {status}) is not valid JSON of the expected shape: {source}")]
    InvalidJson {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The request body could not be encoded.
    #[error("{method} {url}: cannot encode the request body as JSON: {source}")]
    Encode {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The serialization error.
        source: serde_json::Error,
    },
    /// The status is not the one required.
    #[error("{method} {url}: status {status}, expected {expected}; body: {body}")]
    UnexpectedStatus {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What came back.
        status: u16,
        /// What was required.
        expected: String,
        /// The body (redacted, cut to 512 characters).
        body: String,
    },
    /// Anything else the transport reported (connection reset, malformed HTTP, …).
    #[error("{method} {url}: {detail}")]
    Transport {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What failed, with its causes.
        detail: String,
    },
}

/// A request to send: method, path (or absolute URL), extra headers and body.
#[derive(Clone)]
pub struct Request {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    anonymous: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                headers.append(n, v);
            }
        }
        let body = match &self.body {
            None => None,
            Some(Body::Json(v)) => {
                let mut v = v.clone();
                redact_json(&mut v);
                Some(v.to_string())
            }
            Some(Body::Raw { bytes, content_type }) => Some(redact_body(bytes, Some(content_type))),
        };
        f.debug_struct("Request")
            .field("method", &self.method.as_str())
            .field("path", &redact_url(&self.path))
            .field("headers", &redact_headers(&headers, None))
            .field("body", &body)
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

#[derive(Clone)]
enum Body {
    Json(Value),
    Raw { bytes: Vec<u8>, content_type: String },
}

impl Request {
    /// A request with any method.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), headers: Vec::new(), body: None, anonymous: false }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// `PUT path`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    /// `PATCH path`.
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Adds a header (sent after the session's own headers; the same name twice sends both).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }

    /// A JSON body from any serializable value.
    pub fn json_of<T: Serialize + ?Sized>(self, body: &T) -> Result<Self, HttpError> {
        match serde_json::to_value(body) {
            Ok(v) => Ok(self.json(v)),
            Err(source) => Err(HttpError::Encode { method: self.method.to_string(), url: self.path, source }),
        }
    }

    /// Raw body bytes sent exactly as given, with this content type.
    pub fn raw(mut self, bytes: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Self {
        self.body = Some(Body::Raw { bytes: bytes.into(), content_type: content_type.into() });
        self
    }

    /// Sends no bearer token and no CSRF header (cookies in the jar still go): an anonymous caller.
    pub fn anonymous(mut self) -> Self {
        self.anonymous = true;
        self
    }
}

/// A response, whole and unredacted (its `Debug` output is redacted).
#[derive(Clone)]
pub struct Response {
    /// The request method.
    pub method: String,
    /// The request URL.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
    /// From sending to the last body byte.
    pub elapsed: Duration,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("status", &self.status)
            .field("headers", &redact_headers(&self.headers, None))
            .field("body", &redact_body(&self.body, content_type(&self.headers)))
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl Response {
    /// The body parsed as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|source| HttpError::InvalidJson {
            method: self.method.clone(),
            url: self.url.clone(),
            status: self.status,
            source,
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of a header, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Ok(self)` when the status is one of `expected`, else [`HttpError::UnexpectedStatus`].
    pub fn expect_status(self, expected: &[u16]) -> Result<Self, HttpError> {
        if expected.contains(&self.status) {
            return Ok(self);
        }
        let mut body = redact_body(&self.body, content_type(&self.headers));
        if body.chars().count() > 512 {
            body = body.chars().take(512).collect::<String>() + "…";
        }
        Err(HttpError::UnexpectedStatus {
            method: self.method,
            url: self.url,
            status: self.status,
            expected: expected.iter().map(u16::to_string).collect::<Vec<_>>().join(" or "),
            body,
        })
    }
}

/// One captured exchange, secrets already redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// The method.
    pub method: String,
    /// The URL (secret query parameters redacted).
    pub url: String,
    /// Request headers as sent (names in lower case).
    pub request_headers: Vec<(String, String)>,
    /// The request body, if any.
    pub request_body: Option<String>,
    /// The status, unless the exchange failed.
    pub status: Option<u16>,
    /// Response headers (names in lower case).
    pub response_headers: Vec<(String, String)>,
    /// The response body, if a response came.
    pub response_body: Option<String>,
    /// Milliseconds from sending to the end (response or failure).
    pub elapsed_ms: u64,
    /// The failure, if the exchange failed.
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    bearer: Option<String>,
    csrf_token: Option<String>,
    log: Vec<Exchange>,
}

/// The HTTP driver. Cloning shares the session, the cookie jar and the exchange log.
#[derive(Clone)]
pub struct HttpDriver {
    client: reqwest::Client,
    jar: Arc<Jar>,
    config: Arc<HttpConfig>,
    base: Url,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for HttpDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("HttpDriver")
            .field("base_url", &self.config.base_url)
            .field("bearer", &state.bearer.as_ref().map(|_| REDACTED))
            .field("csrf", &self.config.csrf)
            .field("exchanges", &state.log.len())
            .finish()
    }
}

impl HttpDriver {
    /// A driver with an empty session.
    pub fn new(config: HttpConfig) -> Result<Self, HttpError> {
        let base = Url::parse(&config.base_url)
            .map_err(|e| HttpError::Config(format!("base URL {:?} is not a URL: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(HttpError::Config(format!("base URL {:?} is not http or https", config.base_url)));
        }
        if config.timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(HttpError::Config("timeouts must be greater than zero".into()));
        }
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| HttpError::Config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Self { client, jar, config: Arc::new(config), base, state: Arc::new(Mutex::new(State::default())) })
    }

    /// A driver with default settings for `base_url`.
    pub fn with_base_url(base_url: impl Into<String>) -> Result<Self, HttpError> {
        Self::new(HttpConfig::new(base_url))
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `Authorization: Bearer <token>` from now on.
    pub fn set_bearer(&self, token: impl Into<String>) {
        self.state().bearer = Some(token.into());
    }

    /// Stops sending a bearer token.
    pub fn clear_bearer(&self) {
        self.state().bearer = None;
    }

    /// The current bearer token.
    pub fn bearer(&self) -> Option<String> {
        self.state().bearer.clone()
    }

    /// Sets the CSRF token by hand (for targets that hand it out some other way).
    pub fn set_csrf_token(&self, token: impl Into<String>) {
        self.state().csrf_token = Some(token.into());
    }

    /// The CSRF token that the next state-changing request would carry.
    pub fn csrf_token(&self) -> Option<String> {
        match self.config.csrf.as_ref().map(|c| &c.source) {
            Some(CsrfSource::Cookie(name)) => self.cookie(name).or_else(|| self.state().csrf_token.clone()),
            _ => self.state().csrf_token.clone(),
        }
    }

    /// Adds a cookie to the jar, as if the target at the base URL had set it (`"name=value"`, attributes allowed).
    pub fn add_cookie(&self, cookie: &str) {
        self.jar.add_cookie_str(cookie, &self.base);
    }

    /// The value of a cookie the jar would send to the base URL.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.jar.cookies(&self.base)?;
        let text = header.to_str().ok()?;
        text.split(';').find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
    }

    /// All exchanges captured so far (redacted).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state().log.clone()
    }

    /// Takes the exchanges captured so far, leaving the log empty.
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut self.state().log)
    }

    /// The URL a path resolves to: an absolute `http(s)://` URL is kept, anything else is appended to the base.
    pub fn url_for(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_owned();
        }
        let base = self.config.base_url.trim_end_matches('/');
        if path.is_empty() { base.to_owned() } else { format!("{base}/{}", path.trim_start_matches('/')) }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Response, HttpError> {
        self.send(Request::get(path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: Value) -> Result<Response, HttpError> {
        self.send(Request::post(path).json(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: Value) -> Result<Response, HttpError> {
        self.send(Request::put(path).json(body)).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch_json(&self, path: &str, body: Value) -> Result<Response, HttpError> {
        self.send(Request::patch(path).json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Response, HttpError> {
        self.send(Request::delete(path)).await
    }

    /// Sends a request with the session's bearer token and CSRF header, captures the exchange, and returns the
    /// whole response whatever its status. Only transport failures are errors.
    pub async fn send(&self, request: Request) -> Result<Response, HttpError> {
        let method = request.method.to_string();
        let url_text = self.url_for(&request.path);
        let url = Url::parse(&url_text).map_err(|e| HttpError::BadUrl {
            method: method.clone(),
            url: url_text.clone(),
            detail: e.to_string(),
        })?;

        // Headers: session first, then the caller's.
        let mut headers: Vec<(String, String)> = Vec::new();
        if !request.anonymous {
            if let Some(token) = self.bearer() {
                headers.push(("authorization".into(), format!("Bearer {token}")));
            }
            let safe = matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
            if let (Some(csrf), false) = (&self.config.csrf, safe)
                && let Some(token) = self.csrf_token()
            {
                headers.push((csrf.header.clone(), token));
            }
        }
        let body = match &request.body {
            None => None,
            Some(Body::Json(v)) => {
                headers.push(("content-type".into(), "application/json".into()));
                Some(serde_json::to_vec(v).map_err(|source| HttpError::Encode {
                    method: method.clone(),
                    url: url_text.clone(),
                    source,
                })?)
            }
            Some(Body::Raw { bytes, content_type }) => {
                headers.push(("content-type".into(), content_type.clone()));
                Some(bytes.clone())
            }
        };
        headers.extend(request.headers.iter().cloned());

        let mut header_map = HeaderMap::new();
        for (name, value) in &headers {
            let bad = || HttpError::BadHeader { method: method.clone(), url: url_text.clone(), name: name.clone() };
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let v = HeaderValue::from_str(value).map_err(|_| bad())?;
            header_map.append(n, v);
        }
        // What the log shows as sent: ours plus the cookies the jar adds.
        let mut logged_request_headers = header_map.clone();
        if let Some(cookies) = self.jar.cookies(&url) {
            logged_request_headers.append(reqwest::header::COOKIE, cookies);
        }

        let mut builder = self.client.request(request.method.clone(), url.clone()).headers(header_map);
        if let Some(bytes) = &body {
            builder = builder.body(bytes.clone());
        }
        let started = Instant::now();
        let outcome = async {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes.to_vec()))
        }
        .await;
        let elapsed = started.elapsed();

        let request_ct = logged_request_headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let csrf_header = self.config.csrf.as_ref().map(|c| c.header.as_str());
        let csrf_field = match self.config.csrf.as_ref().map(|c| &c.source) {
            Some(CsrfSource::JsonField(f)) => Some(f.as_str()),
            _ => None,
        };
        let mut exchange = Exchange {
            method: method.clone(),
            url: redact_url(&url_text),
            request_headers: redact_headers(&logged_request_headers, csrf_header),
            request_body: body.as_deref().map(|b| redact_body_with(b, request_ct, csrf_field)),
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            error: None,
        };

        match outcome {
            Ok((status, response_headers, bytes)) => {
                exchange.status = Some(status);
                exchange.response_headers = redact_headers(&response_headers, csrf_header);
                exchange.response_body = Some(redact_body_with(&bytes, content_type(&response_headers), csrf_field));
                self.learn_csrf(&response_headers, &bytes);
                self.state().log.push(exchange);
                Ok(Response { method, url: url_text, status, headers: response_headers, body: bytes, elapsed })
            }
            Err(e) => {
                let error = self.classify(&method, &url_text, &e);
                exchange.error = Some(error.to_string());
                self.state().log.push(exchange);
                Err(error)
            }
        }
    }

    fn learn_csrf(&self, headers: &HeaderMap, body: &[u8]) {
        let Some(csrf) = &self.config.csrf else { return };
        let found = match &csrf.source {
            CsrfSource::Cookie(_) => None,
            CsrfSource::ResponseHeader(name) => {
                headers.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned)
            }
            CsrfSource::JsonField(field) => serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get(field.as_str()).and_then(Value::as_str).map(str::to_owned)),
        };
        if let Some(token) = found {
            self.state().csrf_token = Some(token);
        }
    }

    fn classify(&self, method: &str, url: &str, e: &reqwest::Error) -> HttpError {
        let (method, url) = (method.to_owned(), url.to_owned());
        let detail = chain(e);
        if e.is_connect() {
            if e.is_timeout() || detail.contains("timed out") {
                return HttpError::ConnectTimeout { method, url, after: self.config.connect_timeout };
            }
            let refused = io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused);
            let detail = if refused { "connection refused".to_owned() } else { detail };
            return HttpError::Unreachable { method, url, detail };
        }
        if e.is_timeout() {
            return HttpError::Timeout { method, url, after: self.config.timeout };
        }
        HttpError::Transport { method, url, detail }
    }
}

/// The error and its causes, joined.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The kind of the first I/O error among the causes.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

fn is_secret_field(name: &str, extra: Option<&str>) -> bool {
    SECRET_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) || extra.is_some_and(|x| x.eq_ignore_ascii_case(name))
}

/// Headers as (lower-case name, value) pairs with secret values redacted. `extra` is one more secret header
/// (the CSRF header).
pub fn redact_headers(headers: &HeaderMap, extra: Option<&str>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let n = name.as_str().to_ascii_lowercase();
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let redacted = if n == "authorization" || n == "proxy-authorization" {
                // Keep the scheme: `Bearer [redacted]`.
                match v.split_once(' ') {
                    Some((scheme, _)) => format!("{scheme} {REDACTED}"),
                    None => REDACTED.to_owned(),
                }
            } else if SECRET_HEADERS.contains(&n.as_str()) || extra.is_some_and(|x| x.eq_ignore_ascii_case(&n)) {
                REDACTED.to_owned()
            } else if n == "cookie" {
                v.split(';')
                    .map(|pair| match pair.trim().split_once('=') {
                        Some((k, _)) => format!("{k}={REDACTED}"),
                        None => REDACTED.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            } else if n == "set-cookie" {
                // `name=value; Path=/; HttpOnly` → `name=[redacted]; Path=/; HttpOnly`.
                let (first, rest) = v.split_once(';').map_or((v.as_str(), None), |(a, b)| (a, Some(b)));
                let first = match first.split_once('=') {
                    Some((k, _)) => format!("{}={REDACTED}", k.trim()),
                    None => REDACTED.to_owned(),
                };
                match rest {
                    Some(rest) => format!("{first};{rest}"),
                    None => first,
                }
            } else {
                v
            };
            (n, redacted)
        })
        .collect()
}

/// A JSON value with every secret field (at any depth) replaced by `[redacted]`.
pub fn redact_json(value: &mut Value) {
    redact_json_with(value, None);
}

/// [`redact_json`], with one more secret field name (the CSRF token's, when it comes in a JSON body).
fn redact_json_with(value: &mut Value, extra: Option<&str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_field(k, extra) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_json_with(v, extra);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json_with(v, extra)),
        _ => {}
    }
}

/// `a=1&password=x` with secret parameters' values redacted.
fn redact_pairs(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_field(&url_decode_name(k), None) => format!("{k}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Enough decoding to recognise a parameter name (`+` and `%5F` style escapes).
fn url_decode_name(name: &str) -> String {
    url::form_urlencoded::parse(format!("{name}=").as_bytes())
        .next()
        .map_or_else(|| name.to_owned(), |(k, _)| k.into_owned())
}

/// The URL with secret query parameters redacted.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((path, rest)) => {
            let (query, fragment) = rest.split_once('#').map_or((rest, None), |(q, f)| (q, Some(f)));
            let mut out = format!("{path}?{}", redact_pairs(query));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
            out
        }
        None => url.to_owned(),
    }
}

/// A body as log text: JSON with secret fields redacted, form bodies with secret parameters redacted, other text
/// as is, binary as a byte count; cut at 64 KiB.
pub fn redact_body(body: &[u8], content_type: Option<&str>) -> String {
    redact_body_with(body, content_type, None)
}

/// [`redact_body`], with one more secret JSON field name.
fn redact_body_with(body: &[u8], content_type: Option<&str>, extra: Option<&str>) -> String {
    if body.is_empty() {
        return String::new();
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        redact_json_with(&mut v, extra);
        return cut(v.to_string());
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return format!("[{} bytes, not UTF-8]", body.len());
    };
    if content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded")) {
        return cut(redact_pairs(text));
    }
    cut(text.to_owned())
}

fn cut(mut text: String) -> String {
    if text.len() > LOG_BODY_LIMIT {
        let mut end = LOG_BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!("… [{total} bytes in all]"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_redacted_at_any_depth_case_insensitively() {
        let body =
            br#"{"user":"a","Password":"hunter2","nested":{"ACCESS_TOKEN":"t1","list":[{"totp_seed":"S"}]},"ok":1}"#;
        let text = redact_body(body, Some("application/json"));
        for secret in ["hunter2", "t1", "\"S\""] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("\"user\":\"a\"") && text.contains("\"ok\":1"), "{text}");
    }

    #[test]
    fn headers_keep_names_and_schemes_but_not_values() {
        let mut h = HeaderMap::new();
        h.append("authorization", HeaderValue::from_static("Bearer abc.def"));
        h.append("cookie", HeaderValue::from_static("sid=s3cr3t; theme=dark"));
        h.append("set-cookie", HeaderValue::from_static("sid=s3cr3t; Path=/; HttpOnly"));
        h.append("x-shkeeper-api-key", HeaderValue::from_static("k1"));
        h.append("x-api-key", HeaderValue::from_static("k2"));
        h.append("x-csrf-token", HeaderValue::from_static("c1"));
        h.append("content-type", HeaderValue::from_static("application/json"));
        let out = redact_headers(&h, Some("X-CSRF-Token"));
        let text = format!("{out:?}");
        for secret in ["abc.def", "s3cr3t", "dark", "k1", "k2", "c1"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("Bearer [redacted]"), "{text}");
        assert!(text.contains("sid=[redacted]; Path=/; HttpOnly"), "{text}");
        assert!(text.contains("application/json"), "{text}");
    }

    #[test]
    fn query_and_form_parameters_are_redacted() {
        assert_eq!(redact_url("http://h/x?a=1&token=abc#f"), "http://h/x?a=1&token=[redacted]#f");
        let form = redact_body(b"user=a&password=pw", Some("application/x-www-form-urlencoded"));
        assert_eq!(form, "user=a&password=[redacted]");
    }

    #[test]
    fn request_debug_is_redacted() {
        let r = Request::post("/login?token=q1")
            .header("Authorization", "Bearer b1")
            .json(serde_json::json!({"password": "p1"}));
        let text = format!("{r:?}");
        for secret in ["q1", "b1", "p1"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("/login?token=[redacted]"), "{text}");
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let long = "é".repeat(LOG_BODY_LIMIT);
        let text = redact_body(long.as_bytes(), Some("text/plain"));
        assert!(text.len() < long.len() && text.ends_with("bytes in all]"));
    }
}

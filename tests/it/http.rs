//! The HTTP driver (`conform::drive::http`) against a local axum server: bearer and cookie sessions, the CSRF
//! header from a cookie, a response header or a JSON field, bounded timeouts, a clear error for a target that is
//! down, and secrets redacted in the exchange log.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use conform::drive::http::{CsrfSource, HttpConfig, HttpDriver, HttpError, Request};
use serde_json::{Value, json};

const PASSWORD: &str = "hunter2-PLANTED-password";
const ACCESS: &str = "tok-PLANTED-access";
const REFRESH: &str = "rt-PLANTED-refresh";
const SESSION: &str = "sess-PLANTED-cookie";
const CSRF: &str = "csrf-PLANTED-token";
const API_KEY: &str = "apikey-PLANTED";
const SHK_KEY: &str = "shkeeper-PLANTED";
const TOTP_SEED: &str = "JBSWY3DPEHPK3PXP-PLANTED";

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n == name).then_some(v)
    })
}

async fn login(body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "bad json"}));
    };
    if req["password"] != PASSWORD {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_credentials"}));
    }
    let mut response = json_response(
        StatusCode::OK,
        json!({"access_token": ACCESS, "refresh_token": REFRESH, "csrf_token": CSRF, "user": {"name": "alice"}}),
    );
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, format!("sid={SESSION}; Path=/; HttpOnly").parse().expect("header"));
    h.append(header::SET_COOKIE, format!("csrf={CSRF}; Path=/").parse().expect("header"));
    h.insert("x-csrf-token", CSRF.parse().expect("header"));
    response
}

async fn me(headers: HeaderMap) -> Response {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if bearer == Some(&format!("Bearer {ACCESS}")) {
        return json_response(StatusCode::OK, json!({"via": "bearer"}));
    }
    if cookie(&headers, "sid") == Some(SESSION) {
        return json_response(StatusCode::OK, json!({"via": "cookie"}));
    }
    json_response(StatusCode::UNAUTHORIZED, json!({"error": "unauthenticated"}))
}

/// A state-changing call: needs the session cookie and the CSRF header.
async fn transfer(headers: HeaderMap) -> Response {
    if cookie(&headers, "sid") != Some(SESSION) {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "unauthenticated"}));
    }
    match headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        Some(CSRF) => json_response(StatusCode::OK, json!({"ok": true})),
        _ => json_response(StatusCode::FORBIDDEN, json!({"error": "csrf"})),
    }
}

/// Echoes the request headers it got (so a test can see what the driver sent).
async fn headers_seen(headers: HeaderMap) -> Response {
    let seen: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
    json_response(StatusCode::OK, json!({ "headers": seen }))
}

async fn serve() -> String {
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .route("/api/transfer", post(transfer))
        .route("/api/headers", get(headers_seen).post(headers_seen))
        .route("/api/not-json", get(|| async { "<html>oops</html>" }))
        .route("/api/hang", get(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/api")
}

async fn logged_in(driver: &HttpDriver) -> Value {
    let response = driver
        .post_json("/login", json!({"username": "alice", "password": PASSWORD}))
        .await
        .expect("login exchange")
        .expect_status(&[200])
        .expect("login accepted");
    response.json().expect("login JSON")
}

#[tokio::test]
async fn bearer_session() {
    let base = serve().await;
    let driver = HttpDriver::with_base_url(&base).expect("driver");
    let anon = driver.get("/me").await.expect("exchange");
    assert_eq!(anon.status, 401);

    let login = logged_in(&driver).await;
    let token = login["access_token"].as_str().expect("token");
    // A driver that only carries the bearer token (no cookies) proves the header alone authenticates.
    let bearer_only = HttpDriver::with_base_url(&base).expect("driver");
    bearer_only.set_bearer(token);
    let me: Value = bearer_only.get("/me").await.expect("exchange").json().expect("json");
    assert_eq!(me["via"], "bearer");
    let sent = &bearer_only.exchanges()[0].request_headers;
    assert!(sent.contains(&("authorization".into(), "Bearer [redacted]".into())), "{sent:?}");

    // `anonymous()` leaves the token out.
    let r = bearer_only.send(Request::get("/me").anonymous()).await.expect("exchange");
    assert_eq!(r.status, 401);
    bearer_only.clear_bearer();
    assert_eq!(bearer_only.get("/me").await.expect("exchange").status, 401);
}

#[tokio::test]
async fn cookie_session() {
    let base = serve().await;
    let driver = HttpDriver::with_base_url(&base).expect("driver");
    logged_in(&driver).await;
    assert_eq!(driver.cookie("sid").as_deref(), Some(SESSION));
    let me: Value = driver.get("/me").await.expect("exchange").json().expect("json");
    assert_eq!(me["via"], "cookie");
    // A clone shares the jar.
    let clone = driver.clone();
    assert_eq!(clone.get("/me").await.expect("exchange").status, 200);
    // A fresh driver has no session.
    let other = HttpDriver::with_base_url(&base).expect("driver");
    assert_eq!(other.get("/me").await.expect("exchange").status, 401);
    // A cookie can be planted by hand (a stolen session, say).
    other.add_cookie(&format!("sid={SESSION}; Path=/"));
    assert_eq!(other.get("/me").await.expect("exchange").status, 200);
}

#[tokio::test]
async fn csrf_header_from_cookie_header_or_json() {
    let base = serve().await;
    let sources = [
        CsrfSource::Cookie("csrf".into()),
        CsrfSource::ResponseHeader("x-csrf-token".into()),
        CsrfSource::JsonField("csrf_token".into()),
    ];
    for source in sources {
        let driver = HttpDriver::new(HttpConfig::new(&base).csrf("X-CSRF-Token", source.clone())).expect("driver");
        assert_eq!(driver.csrf_token(), None);
        logged_in(&driver).await;
        assert_eq!(driver.csrf_token().as_deref(), Some(CSRF), "{source:?}");
        let r = driver.send(Request::post("/transfer").json(json!({"amount": "10.00"}))).await.expect("exchange");
        assert_eq!(r.status, 200, "{source:?}: {}", r.text());
        // Safe methods do not carry it.
        let seen: Value = driver.get("/headers").await.expect("exchange").json().expect("json");
        assert!(!seen["headers"].as_array().expect("list").contains(&json!("x-csrf-token")), "{seen}");
        let seen: Value = driver.send(Request::post("/headers")).await.expect("exchange").json().expect("json");
        assert!(seen["headers"].as_array().expect("list").contains(&json!("x-csrf-token")), "{seen}");
    }
    // Without the CSRF header the same session is refused.
    let plain = HttpDriver::with_base_url(&base).expect("driver");
    logged_in(&plain).await;
    let r = plain.send(Request::post("/transfer").json(json!({"amount": "10.00"}))).await.expect("exchange");
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_quickly() {
    let base = serve().await;
    let driver = HttpDriver::new(HttpConfig::new(&base).timeout(Duration::from_millis(500))).expect("driver");
    let started = Instant::now();
    let err = driver.get("/hang").await.expect_err("must time out");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("GET") && text.contains("/api/hang") && text.contains("timed out"), "{text}");
    let log = driver.exchanges();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, None);
    assert!(log[0].error.as_deref().is_some_and(|e| e.contains("timed out")), "{log:?}");
}

#[tokio::test]
async fn a_target_that_is_down_is_reported_unreachable() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let driver = HttpDriver::with_base_url(format!("http://127.0.0.1:{port}")).expect("driver");
    let started = Instant::now();
    let err = driver.post_json("/login", json!({"password": PASSWORD})).await.expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(matches!(err, HttpError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("unreachable") && text.contains("connection refused"), "{text}");
    assert!(text.contains("POST") && text.contains(&format!("127.0.0.1:{port}/login")), "{text}");
    // The failed exchange is logged, redacted.
    let log = serde_json::to_string(&driver.exchanges()).expect("serialize");
    assert!(log.contains("unreachable") && !log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn invalid_json_names_the_request() {
    let base = serve().await;
    let driver = HttpDriver::with_base_url(&base).expect("driver");
    let response = driver.get("/not-json").await.expect("exchange");
    let err = response.json::<Value>().expect_err("not JSON");
    assert!(matches!(err, HttpError::InvalidJson { status: 200, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("GET") && text.contains("/api/not-json") && text.contains("not valid JSON"), "{text}");
    // And a wrong status is an error that says what was expected.
    let err = driver.get("/me").await.expect("exchange").expect_status(&[200, 204]).expect_err("401");
    assert!(err.to_string().contains("status 401, expected 200 or 204"), "{err}");
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    assert!(matches!(HttpDriver::with_base_url("not a url"), Err(HttpError::Config(_))));
    assert!(matches!(HttpDriver::with_base_url("ftp://example.invalid"), Err(HttpError::Config(_))));
    let zero = HttpConfig::new("http://127.0.0.1:1").timeout(Duration::ZERO);
    assert!(matches!(HttpDriver::new(zero), Err(HttpError::Config(_))));
}

#[tokio::test]
async fn secrets_never_reach_the_exchange_log() {
    let base = serve().await;
    // The CSRF token comes in the login body, so that field is redacted as well.
    let driver =
        HttpDriver::new(HttpConfig::new(&base).csrf("X-CSRF-Token", CsrfSource::JsonField("csrf_token".into())))
            .expect("driver");
    let login = logged_in(&driver).await;
    driver.set_bearer(login["access_token"].as_str().expect("token"));
    let body = json!({
        "amount": "10.00",
        "Secret": "s3cret-PLANTED",
        "nested": [{"TOTP": "123456-PLANTED", "totp_seed": TOTP_SEED, "token": "nested-PLANTED"}],
    });
    let request = Request::post("/transfer?token=query-PLANTED&page=2")
        .header("x-api-key", API_KEY)
        .header("X-Shkeeper-Api-Key", SHK_KEY)
        .json(body);
    let response = driver.send(request).await.expect("exchange");
    assert_eq!(response.status, 200);
    driver
        .send(Request::post("/headers").raw(format!("user=a&password={PASSWORD}"), "application/x-www-form-urlencoded"))
        .await
        .expect("exchange");

    let log = driver.exchanges();
    assert_eq!(log.len(), 3);
    let serialized = serde_json::to_string(&log).expect("serialize");
    let debugged = format!("{log:?} {driver:?} {response:?}");
    let planted = [
        PASSWORD,
        ACCESS,
        REFRESH,
        SESSION,
        CSRF,
        API_KEY,
        SHK_KEY,
        TOTP_SEED,
        "s3cret-PLANTED",
        "123456-PLANTED",
        "nested-PLANTED",
        "query-PLANTED",
    ];
    for secret in planted {
        assert!(!serialized.contains(secret), "{secret} leaked into the serialized log: {serialized}");
        assert!(!debugged.contains(secret), "{secret} leaked into Debug output: {debugged}");
    }
    // Still useful: names, non-secret values, statuses and timings stay.
    let login_exchange = &log[0];
    assert_eq!(login_exchange.method, "POST");
    assert!(login_exchange.url.ends_with("/api/login"));
    assert_eq!(login_exchange.status, Some(200));
    assert!(login_exchange.request_body.as_deref().is_some_and(|b| b.contains("\"username\":\"alice\"")));
    assert!(
        login_exchange.response_headers.contains(&("set-cookie".into(), "sid=[redacted]; Path=/; HttpOnly".into()))
    );
    assert!(log[1].url.ends_with("/api/transfer?token=[redacted]&page=2"), "{}", log[1].url);
    // The jar's cookie order is not fixed.
    let cookie_header = log[1].request_headers.iter().find(|(n, _)| n == "cookie").map(|(_, v)| v.as_str());
    let mut cookies: Vec<&str> = cookie_header.unwrap_or_default().split("; ").collect();
    cookies.sort_unstable();
    assert_eq!(cookies, ["csrf=[redacted]", "sid=[redacted]"], "{:?}", log[1]);
    assert!(log[1].request_body.as_deref().is_some_and(|b| b.contains(r#""amount":"10.00""#)), "{:?}", log[1]);
    assert!(log[2].request_body.as_deref() == Some("user=a&password=[redacted]"), "{:?}", log[2]);
    // The response handed to the caller keeps real values.
    assert_eq!(login["refresh_token"], REFRESH);
}

//! Payment provider simulators (SPEC §6–§7), on wiremock, faithful to `shared/FACTS.md`:
//! [`ShkeeperSim`] and [`RequestNetworkSim`].
//!
//! Each one answers the provider's API as the provider does (SHKeeper's HTTP-200 errors, its invoice upsert,
//! Request Network's 201), sends the provider's signed callbacks with its retry behaviour (SHKeeper: only 202
//! counts, retried forever; Request Network: 1 s, 5 s, 15 s, then dropped; both scalable with
//! [`RetryPolicy::scaled`]), and keeps a record of every call received ([`CallRecord`], API keys redacted) and
//! every callback attempt ([`CallbackAttempt`]), so a check can ask "did the retry reuse the idempotency key?".
//!
//! Faults are switched at run time: [`Outage`] (503, no answer, 429, SHKeeper's HTTP-200 error), a refused
//! connection (`stop()` / `restart()` on the same port), [`Confirmations`] delayed or withheld, duplicate bursts
//! (`set_duplicates`).
//!
//! Run by hand with `conform simulate shkeeper|request-network`; the same controls are then under
//! `/_conform/`: `GET calls`, `GET attempts`, `GET state`, `POST faults`, `POST release`, `POST pay`, and for
//! SHKeeper `POST payout/{task_id}/complete` (the `--help` of each subcommand shows curl lines).

mod core;
pub mod request_network;
pub mod shkeeper;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

pub use self::core::{AttemptOutcome, CallRecord, CallbackAttempt, Confirmations, Outage, RetryPolicy, SimError};
pub use request_network::{RequestNetworkConfig, RequestNetworkSim, RnRequest, Variants};
pub use shkeeper::{ShkeeperConfig, ShkeeperInvoice, ShkeeperPayoutTask, ShkeeperSim, ShkeeperTx};

use self::core::{Core, json_response};
use crate::exit::Exit;

/// The controls both simulators share, under `/_conform/`:
/// - `GET /_conform/calls`: the calls received (secrets redacted);
/// - `GET /_conform/attempts`: the callback attempts and what each got;
/// - `GET /_conform/state`: invoices / requests and payouts;
/// - `POST /_conform/faults` `{"outage": "none|unavailable|hang|rate_limited|error_in_body",
///   "confirmations": "immediate" | "withheld" | {"delayed_ms": 2000}, "duplicates": 2}` (each optional);
/// - `POST /_conform/release`: sends withheld callbacks.
fn admin_common(core: &Core, request: &Request, rest: &[&str], state: &Value) -> ResponseTemplate {
    match (request.method.as_str(), rest) {
        ("GET", ["calls"]) => json_response(200, &json!(core.calls())),
        ("GET", ["attempts"]) => json_response(200, &json!(core.attempts())),
        ("GET", ["state"]) => json_response(200, state),
        ("POST", ["release"]) => json_response(200, &json!({"released": core.release_withheld()})),
        ("POST", ["faults"]) => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let outage = body.get("outage").map(|v| serde_json::from_value::<Outage>(v.clone()));
            let confirmations = body.get("confirmations").map(|v| serde_json::from_value::<Confirmations>(v.clone()));
            let duplicates = body.get("duplicates").map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()));
            match (outage.transpose(), confirmations.transpose(), duplicates) {
                (Ok(outage), Ok(confirmations), None | Some(Some(_))) => {
                    if let Some(outage) = outage {
                        core.set_outage(outage);
                    }
                    if let Some(confirmations) = confirmations {
                        core.set_confirmations(confirmations);
                    }
                    if let Some(Some(n)) = duplicates {
                        core.set_duplicates(n);
                    }
                    json_response(200, &json!({"ok": true}))
                }
                _ => json_response(400, &json!({"error": "see GET /_conform/ for the fault fields"})),
            }
        }
        _ => json_response(
            404,
            &json!({"error": "unknown control", "controls": [
                "GET /_conform/calls", "GET /_conform/attempts", "GET /_conform/state", "POST /_conform/pay",
                "POST /_conform/faults", "POST /_conform/release", "POST /_conform/payout/{task_id}/complete (SHKeeper)",
            ]}),
        ),
    }
}

/// `conform simulate …`: which provider to run.
#[derive(Debug, clap::Subcommand)]
pub enum SimulateCommand {
    /// Run a SHKeeper simulator until Ctrl-C.
    #[command(after_help = SHKEEPER_HELP)]
    Shkeeper(ShkeeperArgs),
    /// Run a Request Network API v2 simulator until Ctrl-C.
    #[command(after_help = REQUEST_NETWORK_HELP)]
    RequestNetwork(RequestNetworkArgs),
}

const SHKEEPER_HELP: &str = "\
Point your backend at it:
  SHKeeper base URL   http://HOST:PORT        (your SHKeeper URL setting, e.g. SHKEEPER_URL;
                                               the API is under /api/v1)
  API key             the --api-key value     (e.g. SHKEEPER_API_KEY; sent as X-Shkeeper-Api-Key)
  Payout credentials  --payout-user / --payout-password (HTTP Basic on /api/v1/{crypto}/payout)

Callbacks go to the callback_url your backend gives when it creates the invoice. They are signed as SHKeeper
signs them: X-Shkeeper-Timestamp (unix seconds) and X-Shkeeper-Signature = lowercase hex HMAC-SHA256 keyed with
the API key over \"{timestamp}.\" + raw body; the body is compact JSON with sorted keys. With --legacy-callbacks
only X-Shkeeper-Api-Key is sent (SHKeeper before 2026-05). Only HTTP 202 counts as delivered; anything else is
retried every --retry-seconds, forever.

Drive it with curl:
  curl -X POST http://HOST:PORT/_conform/pay -d '{\"external_id\":\"inv-1\",\"amount\":\"10.00\"}'
  curl -X POST http://HOST:PORT/_conform/faults -d '{\"outage\":\"error_in_body\"}'   (none|unavailable|hang|rate_limited)
  curl -X POST http://HOST:PORT/_conform/payout/TASK_ID/complete -d '{\"success\":true}'
  curl http://HOST:PORT/_conform/calls      curl http://HOST:PORT/_conform/attempts";

const REQUEST_NETWORK_HELP: &str = "\
Point your backend at it:
  API base URL     http://HOST:PORT          (your Request Network API URL setting; requests go to /v2/...)
  API key          the --api-key value       (e.g. REQUEST_NETWORK_API_KEY; sent as x-api-key)
  Webhook secret   the --webhook-secret value (your webhook secret setting, e.g. REQUEST_NETWORK_WEBHOOK_SECRET)
  Webhook URL      --webhook-url: your backend's webhook endpoint (Request Network's dashboard setting)

Webhooks are signed as Request Network signs them: x-request-network-signature = hex HMAC-SHA256 of the raw body
keyed with the webhook secret (nothing else is signed); x-request-network-delivery is a ULID kept across retries;
x-request-network-retry-count counts attempts 0-3. Any non-2xx is retried after 1 s, 5 s, 15 s, then dropped.

Drive it with curl:
  curl -X POST http://HOST:PORT/_conform/pay -d '{\"request_id\":\"ID\",\"variants\":[\"client_id\",\"checkout\"]}'
  curl -X POST http://HOST:PORT/_conform/faults -d '{\"outage\":\"unavailable\",\"duplicates\":1}'
  curl http://HOST:PORT/_conform/calls      curl http://HOST:PORT/_conform/attempts";

/// Options of `conform simulate shkeeper`.
#[derive(Debug, clap::Args)]
pub struct ShkeeperArgs {
    /// Port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The merchant API key your backend sends, and the HMAC key of the callbacks.
    #[arg(long, default_value = "conform-shkeeper-key")]
    pub api_key: String,
    /// HTTP Basic user of the payout API.
    #[arg(long, default_value = "shkeeper")]
    pub payout_user: String,
    /// HTTP Basic password of the payout API.
    #[arg(long, default_value = "shkeeper")]
    pub payout_password: String,
    /// Send legacy callbacks (only X-Shkeeper-Api-Key, no signature).
    #[arg(long)]
    pub legacy_callbacks: bool,
    /// Seconds between callback retries (SHKeeper: 60).
    #[arg(long, default_value_t = 60)]
    pub retry_seconds: u64,
}

/// Options of `conform simulate request-network`.
#[derive(Debug, clap::Args)]
pub struct RequestNetworkArgs {
    /// Port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The API key your backend sends as x-api-key.
    #[arg(long, default_value = "conform-rn-key")]
    pub api_key: String,
    /// The webhook signing secret.
    #[arg(long, default_value = "conform-rn-webhook-secret")]
    pub webhook_secret: String,
    /// Your backend's webhook endpoint.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Mark webhooks as test deliveries (x-request-network-test: true).
    #[arg(long)]
    pub test_deliveries: bool,
}

/// Runs `conform simulate …` until Ctrl-C (which ends the process).
pub fn run(command: SimulateCommand) -> Exit {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("conform simulate: cannot start the async runtime: {e}");
            return Exit::Usage;
        }
    };
    runtime.block_on(async move {
        let result = match command {
            SimulateCommand::Shkeeper(args) => {
                let config = ShkeeperConfig {
                    bind: SocketAddr::new(args.host, args.port),
                    api_key: args.api_key.clone(),
                    payout_user: args.payout_user,
                    payout_password: args.payout_password,
                    legacy_callbacks: args.legacy_callbacks,
                    retry: RetryPolicy {
                        delays: vec![Duration::from_secs(args.retry_seconds)],
                        ..RetryPolicy::shkeeper()
                    },
                    ..ShkeeperConfig::default()
                };
                ShkeeperSim::start(config).await.map(|sim| {
                    let mode =
                        if args.legacy_callbacks { "legacy X-Shkeeper-Api-Key" } else { "HMAC X-Shkeeper-Signature" };
                    println!("SHKeeper simulator on {}  (API {}/api/v1)", sim.base_url(), sim.base_url());
                    println!("API key: {}  callbacks: {mode}, keyed with the API key", args.api_key);
                    println!("controls: {}/_conform/  (see --help); Ctrl-C stops", sim.base_url());
                    Box::new(sim) as Box<dyn std::any::Any>
                })
            }
            SimulateCommand::RequestNetwork(args) => {
                let config = RequestNetworkConfig {
                    bind: SocketAddr::new(args.host, args.port),
                    api_key: args.api_key.clone(),
                    webhook_secret: args.webhook_secret,
                    webhook_url: args.webhook_url.clone(),
                    test_deliveries: args.test_deliveries,
                    ..RequestNetworkConfig::default()
                };
                RequestNetworkSim::start(config).await.map(|sim| {
                    println!("Request Network simulator on {}  (API {}/v2)", sim.base_url(), sim.base_url());
                    println!(
                        "x-api-key: {}  webhooks to: {}",
                        args.api_key,
                        args.webhook_url.as_deref().unwrap_or("(none: set --webhook-url)")
                    );
                    println!("controls: {}/_conform/  (see --help); Ctrl-C stops", sim.base_url());
                    Box::new(sim) as Box<dyn std::any::Any>
                })
            }
        };
        match result {
            Ok(_running) => std::future::pending::<Exit>().await,
            Err(e) => {
                eprintln!("conform simulate: {e}");
                Exit::Usage
            }
        }
    })
}

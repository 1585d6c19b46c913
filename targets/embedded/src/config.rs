//! The target's configuration.

use std::time::Duration;

use conform_reference::ledger::Provider;

use crate::faults::FaultSet;

/// How the embedded target runs. [`TargetConfig::default`] is SPEC's defaults, no faults, test mode off, and the
/// provider credentials the harness's simulators use by default.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The named defects switched on.
    pub faults: FaultSet,
    /// Whether the `/v1/test/` routes exist (SPEC §11).
    pub test_mode: bool,
    /// Whether the passkey routes are on (SES-8). Off: they answer 404 `passkeys_disabled`.
    pub passkeys_enabled: bool,
    /// The WebAuthn relying party id; client origins must be on this host (e.g. `http://localhost:8000`).
    pub passkey_rp_id: String,
    /// The SHKeeper merchant API base URL (a simulator); `None` makes every call to it fail (503).
    pub shkeeper_url: Option<String>,
    /// The SHKeeper API key: sent on `X-Shkeeper-Api-Key` and the HMAC key of its callbacks (WH-10).
    pub shkeeper_api_key: String,
    /// HTTP Basic user of SHKeeper's payout API.
    pub shkeeper_payout_user: String,
    /// HTTP Basic password of SHKeeper's payout API.
    pub shkeeper_payout_password: String,
    /// The Request Network API base URL; `None` makes every call to it fail (503).
    pub request_network_url: Option<String>,
    /// Request Network's `x-api-key`.
    pub request_network_api_key: String,
    /// Request Network's webhook secret.
    pub request_network_webhook_secret: String,
    /// Standard Webhooks providers served at `/v1/webhooks/standard/{name}`, with their `whsec_…` secrets.
    pub standard_webhook_secrets: Vec<(String, String)>,
    /// The overlap of a rotation that does not name one (WH-8; SPEC default 0).
    pub secret_overlap_seconds: u32,
    /// Platform fee in basis points.
    pub fee_bps: u32,
    /// High-risk threshold in major units.
    pub high_risk_threshold_major: i128,
    /// ESC-9 deadline.
    pub payment_deadline_seconds: i64,
    /// ESC-12 window.
    pub auto_release_seconds: i64,
    /// DRL-3 threshold.
    pub stuck_payout_seconds: i64,
    /// The platform's own wallet address (manual wallet, PRV-6).
    pub platform_address: String,
    /// Providers switched off (PRV-3).
    pub disabled_providers: Vec<Provider>,
    /// Timeout of every call to a provider.
    pub provider_timeout: Duration,
    /// The URL providers call back; `None`: the bound base URL.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes (413 above).
    pub body_limit: usize,
    /// Whether the per-client sign-in limit keys on the first `X-Forwarded-For` address when present (a target
    /// behind a proxy, or a harness that simulates several clients from one host).
    pub trust_forwarded_for: bool,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            port: 0,
            faults: FaultSet::none(),
            test_mode: false,
            passkeys_enabled: false,
            passkey_rp_id: "localhost".to_owned(),
            shkeeper_url: None,
            shkeeper_api_key: "conform-shkeeper-key".to_owned(),
            shkeeper_payout_user: "shkeeper".to_owned(),
            shkeeper_payout_password: "shkeeper".to_owned(),
            request_network_url: None,
            request_network_api_key: "conform-rn-key".to_owned(),
            request_network_webhook_secret: "conform-rn-webhook-secret".to_owned(),
            standard_webhook_secrets: vec![(
                "standard".to_owned(),
                // base64("conform-standard-webhook-secret")
                "whsec_Y29uZm9ybS1zdGFuZGFyZC13ZWJob29rLXNlY3JldA==".to_owned(),
            )],
            secret_overlap_seconds: 0,
            fee_bps: 250,
            high_risk_threshold_major: 10_000,
            payment_deadline_seconds: 72 * 3600,
            auto_release_seconds: 14 * 24 * 3600,
            stuck_payout_seconds: 3600,
            platform_address: "platform-wallet".to_owned(),
            disabled_providers: Vec::new(),
            provider_timeout: Duration::from_secs(5),
            public_url: None,
            body_limit: 64 * 1024,
            trust_forwarded_for: true,
        }
    }
}

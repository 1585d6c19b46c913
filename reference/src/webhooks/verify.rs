//! Verification of each scheme on the exact bytes received (WH-1, WH-2, WH-8, WH-10).
//!
//! Common rules, each against a bug seen in the wild (FACTS.md):
//! - signatures are compared in constant time (`subtle`), after a length and shape check, so a short or garbled
//!   signature is a clean 401, never a panic or a 500 (inkbox#178);
//! - the timestamp, where the scheme has one, is required, signed, and checked against `now` both ways
//!   (OwnPay#296);
//! - the body is never parsed before it verified (stripe-node#1254).

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::Provider;
use super::dead_letter::DeadLetterReason;
use super::headers::{Headers, header_names as h};
use super::secrets::{KeyUsed, Secret, SecretRing};
use super::sign::{hmac_sha256, standard_webhooks_digest, standard_webhooks_key};
use crate::ids::Timestamp;
use crate::refusal::Refusal;

/// The SPEC's timestamp tolerance, both into the past and into the future (WH-2), as the reference libraries.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;

/// Length of a hex HMAC-SHA256.
const HEX_SIGNATURE_LEN: usize = 64;

/// What a receiver is configured to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOptions {
    /// How far a signed timestamp may be from `now`, either way. A delivery exactly this far off is accepted; one
    /// second more is refused.
    pub tolerance_seconds: u32,
    /// Whether SHKeeper callbacks carrying only the API key (no signature) are accepted. Off by default (WH-10);
    /// a target that accepts them is reported as weaker (T03).
    pub allow_legacy_api_key: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { tolerance_seconds: DEFAULT_TOLERANCE_SECONDS, allow_legacy_api_key: false }
    }
}

/// How a delivery was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// An HMAC over the body (and, where the scheme has one, a timestamp).
    Signature,
    /// SHKeeper's legacy mode: the API key itself in a header. The body is not authenticated at all and a
    /// captured delivery replays forever, so this is the weaker mode (WH-10, T03).
    LegacyApiKey,
}

/// A delivery that authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// Whose scheme it passed.
    pub provider: Provider,
    /// Signature or legacy API key.
    pub mode: AuthMode,
    /// Which secret of the ring matched (WH-8).
    pub key: KeyUsed,
    /// The signed timestamp, for schemes that have one; `None` for Request Network and legacy SHKeeper.
    pub signed_at: Option<Timestamp>,
}

impl Verified {
    /// Whether the delivery came through the weaker legacy API-key mode (WH-10, T03).
    pub fn is_weaker(&self) -> bool {
        self.mode == AuthMode::LegacyApiKey
    }

    /// Whether a signed, checked timestamp limits how long a captured copy can be replayed. Without one,
    /// deduplication is the only replay protection.
    pub fn replay_window_limited(&self) -> bool {
        self.signed_at.is_some()
    }
}

/// What is wrong with the shape of a signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum SignatureProblem {
    /// Not the length of a hex HMAC-SHA256.
    #[error("{found} characters where {expected} are expected")]
    WrongLength {
        /// The length the scheme requires.
        expected: usize,
        /// The length received, in bytes.
        found: usize,
    },
    /// Not hexadecimal.
    #[error("not hexadecimal")]
    NotHex,
    /// A Standard Webhooks header with no `v1,` signature at all (unknown versions are ignored).
    #[error("no v1 signature")]
    NoSupportedVersion,
}

/// Why a delivery did not authenticate. Messages name headers and problems but never quote a secret, a
/// signature or a header value (WH-7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme requires is absent.
    #[error("missing header {name}")]
    MissingHeader {
        /// The header's name.
        name: &'static str,
    },
    /// A security header appears more than once, so which copy counts would be ambiguous.
    #[error("header {name} appears more than once")]
    DuplicateHeader {
        /// The header's name.
        name: &'static str,
    },
    /// The signature header is not of the scheme's shape.
    #[error("malformed signature in {header}: {problem}")]
    MalformedSignature {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        problem: SignatureProblem,
    },
    /// A well-formed signature that no valid secret produces over these bytes: a changed or re-serialized body
    /// (WH-1), a wrong or expired secret (WH-8), upper-case hex where the scheme sends lower case.
    #[error("signature does not match")]
    SignatureMismatch,
    /// A legacy SHKeeper API key that is not the configured key.
    #[error("API key does not match")]
    ApiKeyMismatch,
    /// The timestamp header is not unix seconds written plainly (digits, no sign, no leading zero).
    #[error("timestamp in {header} is not a number of seconds")]
    TimestampNotANumber {
        /// The header's name.
        header: &'static str,
    },
    /// The signed timestamp is too far from `now` (WH-2).
    #[error("timestamp is {skew_seconds} s away from now (negative: in the future), beyond {tolerance_seconds} s")]
    TimestampOutsideTolerance {
        /// `now` minus the timestamp: positive when the delivery is old, negative when it claims the future.
        skew_seconds: i64,
        /// The configured tolerance.
        tolerance_seconds: u32,
    },
    /// A SHKeeper callback with only the API-key header while the legacy mode is off (WH-10).
    #[error("legacy API-key callbacks are disabled; a signed callback is required")]
    LegacyApiKeyDisabled,
    /// A configured secret cannot be used (empty, or a Standard Webhooks secret that is not base64). A server
    /// configuration error, refused like any failed authentication so the provider retries after it is fixed.
    #[error("the configured webhook secret is unusable: {reason}")]
    SecretUnusable {
        /// What is wrong, without the secret.
        reason: &'static str,
    },
}

impl VerifyError {
    /// A stable snake_case name for reports.
    pub const fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader { .. } => "missing_header",
            VerifyError::DuplicateHeader { .. } => "duplicate_header",
            VerifyError::MalformedSignature { .. } => "malformed_signature",
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::ApiKeyMismatch => "api_key_mismatch",
            VerifyError::TimestampNotANumber { .. } => "timestamp_not_a_number",
            VerifyError::TimestampOutsideTolerance { .. } => "timestamp_outside_tolerance",
            VerifyError::LegacyApiKeyDisabled => "legacy_api_key_disabled",
            VerifyError::SecretUnusable { .. } => "secret_unusable",
        }
    }

    /// Always 401 `invalid_signature`: a delivery that cannot be authenticated is an authentication failure
    /// whatever the cause, malformed signature headers included (their 500 is inkbox#178's bug). 400 is kept for
    /// authenticated bodies that do not parse.
    pub const fn refusal(&self) -> Refusal {
        Refusal::WebhookUnauthenticated
    }

    /// The dead-letter reason, carrying this error's message (which holds no secret).
    pub fn dead_letter_reason(&self) -> DeadLetterReason {
        DeadLetterReason::AuthenticationFailed(self.to_string())
    }
}

fn unique<'a>(headers: &Headers<'a>, name: &'static str) -> Result<Option<&'a str>, VerifyError> {
    headers.get_unique(name).map_err(|()| VerifyError::DuplicateHeader { name })
}

fn required<'a>(headers: &Headers<'a>, name: &'static str) -> Result<&'a str, VerifyError> {
    unique(headers, name)?.ok_or(VerifyError::MissingHeader { name })
}

/// Unix seconds written plainly: ASCII digits, no sign, no leading zero, at most 18 digits (so it fits an i64).
/// The signed content uses the header text, so accepting `+1700000000` or `01700000000` would let two texts stand
/// for one time; refusing them keeps text and number one-to-one.
fn parse_unix_seconds(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= 18
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn check_timestamp(header: &'static str, text: &str, tolerance: u32, now: Timestamp) -> Result<Timestamp, VerifyError> {
    let at = parse_unix_seconds(text).ok_or(VerifyError::TimestampNotANumber { header })?;
    // i128: `now` is the caller's and may be anywhere in i64; the difference must not overflow.
    let skew = i128::from(now.0) - i128::from(at);
    if skew.unsigned_abs() > u128::from(tolerance) {
        let skew_seconds = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
        return Err(VerifyError::TimestampOutsideTolerance { skew_seconds, tolerance_seconds: tolerance });
    }
    Ok(Timestamp(at))
}

/// Length first, then hex digits of either case. Upper case passes this check but then fails the comparison
/// with the lowercase expected value: SHKeeper's reference verifier compares hex strings, and so do we.
fn check_hex_signature(header: &'static str, signature: &str) -> Result<(), VerifyError> {
    if signature.len() != HEX_SIGNATURE_LEN {
        let problem = SignatureProblem::WrongLength { expected: HEX_SIGNATURE_LEN, found: signature.len() };
        return Err(VerifyError::MalformedSignature { header, problem });
    }
    if !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::MalformedSignature { header, problem: SignatureProblem::NotHex });
    }
    Ok(())
}

fn usable(secret: &Secret) -> Result<&[u8], VerifyError> {
    if secret.is_empty() { Err(VerifyError::SecretUnusable { reason: "empty" }) } else { Ok(secret.expose()) }
}

/// Constant-time equality. `subtle` returns "not equal" at once for different lengths, which reveals only the
/// length, and the callers have already checked that.
fn same(expected: &[u8], received: &[u8]) -> bool {
    bool::from(expected.ct_eq(received))
}

/// Whether the hex HMAC of `parts` under `key` is `received`. An HMAC that could not be computed matches nothing.
fn hex_hmac_matches(key: &[u8], parts: &[&[u8]], received: &str) -> bool {
    hmac_sha256(key, parts).is_some_and(|digest| same(hex::encode(digest).as_bytes(), received.as_bytes()))
}

/// Verifies a SHKeeper callback (payment or payout).
///
/// When either `X-Shkeeper-Signature` or `X-Shkeeper-Timestamp` is present the delivery is in signature mode:
/// both are required, the timestamp must be within `options.tolerance_seconds` of `now`, the signature must be 64
/// lowercase hex characters equal to [`super::shkeeper_signature`] under a key of the ring valid at `now`. A bad
/// signature never falls back to the API-key header, which would be a downgrade.
///
/// With neither header, the legacy `X-Shkeeper-Api-Key` is accepted only if `options.allow_legacy_api_key`,
/// compared in constant time with the ring's keys, and the result says [`AuthMode::LegacyApiKey`].
pub fn verify_shkeeper(
    headers: &Headers<'_>,
    body: &[u8],
    ring: &SecretRing,
    options: &VerifyOptions,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    let signature = unique(headers, h::SHKEEPER_SIGNATURE)?;
    let timestamp = unique(headers, h::SHKEEPER_TIMESTAMP)?;
    let (signature, timestamp) = match (signature, timestamp) {
        (None, None) => return verify_shkeeper_legacy(headers, ring, options, now),
        (Some(_), None) => return Err(VerifyError::MissingHeader { name: h::SHKEEPER_TIMESTAMP }),
        (None, Some(_)) => return Err(VerifyError::MissingHeader { name: h::SHKEEPER_SIGNATURE }),
        (Some(s), Some(t)) => (s, t),
    };
    let signed_at = check_timestamp(h::SHKEEPER_TIMESTAMP, timestamp, options.tolerance_seconds, now)?;
    check_hex_signature(h::SHKEEPER_SIGNATURE, signature)?;
    for (key_used, secret) in ring.keys_valid_at(now) {
        if hex_hmac_matches(usable(secret)?, &[timestamp.as_bytes(), b".", body], signature) {
            let mode = AuthMode::Signature;
            return Ok(Verified { provider: Provider::Shkeeper, mode, key: key_used, signed_at: Some(signed_at) });
        }
    }
    Err(VerifyError::SignatureMismatch)
}

fn verify_shkeeper_legacy(
    headers: &Headers<'_>,
    ring: &SecretRing,
    options: &VerifyOptions,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    let Some(api_key) = unique(headers, h::SHKEEPER_API_KEY)? else {
        // The signature is what a current SHKeeper sends, so that is the header to name.
        return Err(VerifyError::MissingHeader { name: h::SHKEEPER_SIGNATURE });
    };
    if !options.allow_legacy_api_key {
        return Err(VerifyError::LegacyApiKeyDisabled);
    }
    for (key_used, secret) in ring.keys_valid_at(now) {
        if same(usable(secret)?, api_key.as_bytes()) {
            let mode = AuthMode::LegacyApiKey;
            return Ok(Verified { provider: Provider::Shkeeper, mode, key: key_used, signed_at: None });
        }
    }
    Err(VerifyError::ApiKeyMismatch)
}

/// Verifies a Request Network delivery: `x-request-network-signature` must be 64 lowercase hex characters equal
/// to [`super::request_network_signature`] of the raw body under a key of the ring valid at `now`. There is no
/// timestamp to check; `now` only selects the keys.
pub fn verify_request_network(
    headers: &Headers<'_>,
    body: &[u8],
    ring: &SecretRing,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    let signature = required(headers, h::REQUEST_NETWORK_SIGNATURE)?;
    check_hex_signature(h::REQUEST_NETWORK_SIGNATURE, signature)?;
    for (key_used, secret) in ring.keys_valid_at(now) {
        if hex_hmac_matches(usable(secret)?, &[body], signature) {
            let (provider, mode) = (Provider::RequestNetwork, AuthMode::Signature);
            return Ok(Verified { provider, mode, key: key_used, signed_at: None });
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// Verifies a Standard Webhooks delivery: `webhook-id`, `webhook-timestamp` (within the tolerance of `now`, both
/// ways) and `webhook-signature`, a space-separated list of `version,signature` entries of which any one `v1`
/// entry matching under a key valid at `now` suffices. Entries of other versions are ignored; a header with no
/// `v1` entry is malformed. The ring's secrets are `whsec_…` strings.
pub fn verify_standard_webhooks(
    headers: &Headers<'_>,
    body: &[u8],
    ring: &SecretRing,
    options: &VerifyOptions,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    let id = required(headers, h::WEBHOOK_ID)?;
    let timestamp = required(headers, h::WEBHOOK_TIMESTAMP)?;
    let signatures = required(headers, h::WEBHOOK_SIGNATURE)?;
    let signed_at = check_timestamp(h::WEBHOOK_TIMESTAMP, timestamp, options.tolerance_seconds, now)?;
    let candidates: Vec<&str> = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, signature)| *version == "v1" && !signature.is_empty())
        .map(|(_, signature)| signature)
        .collect();
    if candidates.is_empty() {
        let problem = SignatureProblem::NoSupportedVersion;
        return Err(VerifyError::MalformedSignature { header: h::WEBHOOK_SIGNATURE, problem });
    }
    for (key_used, secret) in ring.keys_valid_at(now) {
        let key = std::str::from_utf8(usable(secret)?)
            .ok()
            .and_then(|s| standard_webhooks_key(s).ok())
            .ok_or(VerifyError::SecretUnusable { reason: "not a whsec_ base64 secret" })?;
        let Some(expected) = standard_webhooks_digest(&key, id, timestamp, body) else { continue };
        // Every candidate is compared, without stopping at the first match, so timing does not tell which matched.
        let matched = candidates.iter().fold(false, |acc, c| acc | same(expected.as_bytes(), c.as_bytes()));
        if matched {
            let (provider, mode) = (Provider::StandardWebhooks, AuthMode::Signature);
            return Ok(Verified { provider, mode, key: key_used, signed_at: Some(signed_at) });
        }
    }
    Err(VerifyError::SignatureMismatch)
}

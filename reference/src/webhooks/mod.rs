//! Webhooks (SPEC §6, WH-1…WH-10): the signature schemes, their verification, the provider payloads, the
//! deduplication keys and the dead-letter reasons.
//!
//! A delivery goes through three steps, in this order, and the order is part of the rule:
//!
//! 1. [`verify`] authenticates the **raw bytes** with the provider's scheme (WH-1, WH-2, WH-8, WH-10). Nothing is
//!    parsed before this: parsing first and checking a re-serialized body is the bug of stripe-node#1254.
//! 2. [`parse_notice`] turns the authenticated bytes into a provider-neutral [`PaymentNotice`].
//! 3. The notice's [`PaymentNotice::dedup_keys`] decide whether it was seen before (WH-3, WH-4); its
//!    [`PaymentNotice::event_key`] is what a ledger entry names as its cause.
//!
//! [`receive`] does steps 1 and 2. A failure of either is a [`WebhookError`], which gives the refusal (401 or 400,
//! WH-7) and the [`DeadLetterReason`] (WH-5); [`DeadLetterCapture`] keeps the delivery with its secret-bearing
//! headers redacted.
//!
//! Signing functions ([`shkeeper_signature`] and friends) are byte-exact with the providers, so the harness's
//! webhook senders and simulators use them too. Secrets live in [`Secret`], whose `Debug` never shows them, and
//! in a [`SecretRing`] that knows which of them is valid at a given time.

mod dead_letter;
mod headers;
mod notice;
mod secrets;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;
use crate::refusal::Refusal;

pub use dead_letter::{DeadLetterCapture, DeadLetterReason};
pub use headers::{Headers, REDACTED, header_names, is_secret_header, redact_headers};
pub use notice::{
    DedupKey, DedupScope, InvoiceStatus, NoticeKind, ParseError, PaymentNotice, parse_request_network,
    parse_shkeeper_callback, parse_shkeeper_payment, parse_shkeeper_payout, parse_standard_webhooks,
};
pub use secrets::{KeyUsed, RetiredSecret, Secret, SecretRing};
pub use sign::{
    SecretFormatError, github_signature, request_network_signature, shkeeper_signature, standard_webhooks_key,
    standard_webhooks_signature, stripe_signature_header,
};
pub use verify::{
    AuthMode, DEFAULT_TOLERANCE_SECONDS, SignatureProblem, Verified, VerifyError, VerifyOptions,
    verify_request_network, verify_shkeeper, verify_standard_webhooks,
};

/// A webhook sender the backend accepts deliveries from. Each has its own scheme (WH-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// SHKeeper: HMAC over `"{timestamp}." + body`, or the legacy API-key header when allowed.
    Shkeeper,
    /// Request Network: HMAC over the body only; no timestamp, so replay protection is deduplication.
    RequestNetwork,
    /// Standard Webhooks: the scheme for any further provider, carrying our own neutral body.
    StandardWebhooks,
}

impl Provider {
    /// Every provider, in a fixed order.
    pub const ALL: [Provider; 3] = [Provider::Shkeeper, Provider::RequestNetwork, Provider::StandardWebhooks];

    /// The provider's name in dedup keys, dead letters and reports.
    pub const fn code(self) -> &'static str {
        match self {
            Provider::Shkeeper => "shkeeper",
            Provider::RequestNetwork => "request_network",
            Provider::StandardWebhooks => "standard_webhooks",
        }
    }

    /// The status to answer an accepted delivery with, replays included (WH-3). SHKeeper counts only 202 as
    /// delivered and retries anything else, 200 included, forever; the others take any 2xx.
    pub const fn success_status(self) -> u16 {
        match self {
            Provider::Shkeeper => 202,
            Provider::RequestNetwork | Provider::StandardWebhooks => 200,
        }
    }

    /// Whether the scheme signs a timestamp, so stale deliveries can be refused (WH-2). Without one, a captured
    /// delivery verifies forever and only deduplication stops its replay.
    pub const fn signs_timestamp(self) -> bool {
        match self {
            Provider::Shkeeper | Provider::StandardWebhooks => true,
            Provider::RequestNetwork => false,
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a delivery was not accepted: it did not authenticate, or it authenticated but could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Authentication failed: 401 (WH-1, WH-2, WH-8, WH-10).
    #[error(transparent)]
    Unauthenticated(#[from] VerifyError),
    /// The authenticated body is not a payload we understand: 400.
    #[error(transparent)]
    Malformed(#[from] ParseError),
}

impl WebhookError {
    /// The refusal to answer with (WH-7).
    pub fn refusal(&self) -> Refusal {
        match self {
            WebhookError::Unauthenticated(e) => e.refusal(),
            WebhookError::Malformed(e) => e.refusal(),
        }
    }

    /// Why the delivery goes to the dead-letter queue (WH-5).
    pub fn dead_letter_reason(&self) -> DeadLetterReason {
        match self {
            WebhookError::Unauthenticated(e) => e.dead_letter_reason(),
            WebhookError::Malformed(e) => e.dead_letter_reason(),
        }
    }
}

/// Authenticates a delivery with `provider`'s scheme, on the exact bytes received. SHKeeper callbacks and payout
/// callbacks share the scheme, so one function serves both.
pub fn verify(
    provider: Provider,
    headers: &Headers<'_>,
    body: &[u8],
    ring: &SecretRing,
    options: &VerifyOptions,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    match provider {
        Provider::Shkeeper => verify_shkeeper(headers, body, ring, options, now),
        Provider::RequestNetwork => verify_request_network(headers, body, ring, now),
        Provider::StandardWebhooks => verify_standard_webhooks(headers, body, ring, options, now),
    }
}

/// Parses an (already authenticated) body of `provider` into a notice. For SHKeeper, a body with a `payout_id`
/// is a payout callback and any other a payment callback (see [`parse_shkeeper_callback`]).
pub fn parse_notice(provider: Provider, headers: &Headers<'_>, body: &[u8]) -> Result<PaymentNotice, ParseError> {
    match provider {
        Provider::Shkeeper => parse_shkeeper_callback(body),
        Provider::RequestNetwork => parse_request_network(headers, body),
        Provider::StandardWebhooks => parse_standard_webhooks(headers, body),
    }
}

/// Verifies, then parses: what a conforming receiver does with each delivery before deduplication. The body is
/// never looked at unless it authenticated.
pub fn receive(
    provider: Provider,
    headers: &Headers<'_>,
    body: &[u8],
    ring: &SecretRing,
    options: &VerifyOptions,
    now: Timestamp,
) -> Result<(Verified, PaymentNotice), WebhookError> {
    let verified = verify(provider, headers, body, ring, options, now)?;
    let notice = parse_notice(provider, headers, body)?;
    Ok((verified, notice))
}

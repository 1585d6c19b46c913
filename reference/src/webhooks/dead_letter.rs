//! Dead letters (WH-5): why a delivery was not applied, and the delivery kept with its secrets redacted.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Provider;
use super::headers::{Headers, redact_headers};
use crate::ids::Timestamp;

/// Why a delivery went to the dead-letter queue instead of taking effect (WH-5, PRV-3, LED-10).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// It did not authenticate; the detail is the [`super::VerifyError`] message, which holds no secret.
    AuthenticationFailed(String),
    /// It authenticated but its body is not a payload we understand; the detail is the [`super::ParseError`]
    /// message.
    Malformed(String),
    /// It names an invoice or payout the backend does not know.
    UnknownInvoice,
    /// Its provider is switched off (PRV-3).
    ProviderDisabled,
    /// Its currency is not the escrow's (LED-10, PRV-5).
    CurrencyMismatch,
    /// Applying it failed for another reason (say, the escrow is already closed).
    ProcessingFailed,
}

impl DeadLetterReason {
    /// A stable snake_case code, for admin views and reports.
    pub const fn code(&self) -> &'static str {
        match self {
            DeadLetterReason::AuthenticationFailed(_) => "authentication_failed",
            DeadLetterReason::Malformed(_) => "malformed",
            DeadLetterReason::UnknownInvoice => "unknown_invoice",
            DeadLetterReason::ProviderDisabled => "provider_disabled",
            DeadLetterReason::CurrencyMismatch => "currency_mismatch",
            DeadLetterReason::ProcessingFailed => "processing_failed",
        }
    }

    /// The detail message, for the two reasons that carry one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            DeadLetterReason::AuthenticationFailed(detail) | DeadLetterReason::Malformed(detail) => Some(detail),
            _ => None,
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(detail) => write!(f, "{}: {detail}", self.code()),
            None => f.write_str(self.code()),
        }
    }
}

/// A delivery as a dead letter keeps it: reason, headers with secrets redacted, the raw body byte for byte (so a
/// replay verifies the same bytes, WH-6), and when it arrived. The only constructor redacts, so an unredacted
/// capture cannot be built by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterCapture {
    /// The endpoint's provider.
    pub provider: Provider,
    /// Why it was not applied.
    pub reason: DeadLetterReason,
    /// The headers in arrival order, secret-bearing values replaced by [`super::REDACTED`].
    pub headers: Vec<(String, String)>,
    /// The body exactly as received.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
}

impl DeadLetterCapture {
    /// Captures a delivery, redacting its secret-bearing headers.
    pub fn new(
        provider: Provider,
        reason: DeadLetterReason,
        headers: &Headers<'_>,
        body: &[u8],
        received_at: Timestamp,
    ) -> DeadLetterCapture {
        DeadLetterCapture { provider, reason, headers: redact_headers(headers), body: body.to_vec(), received_at }
    }
}

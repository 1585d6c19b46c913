//! The refusals a conforming backend gives, with the SPEC's error names and HTTP statuses.

use serde::{Deserialize, Serialize};

/// Why an operation was refused. The wire form is `{"error": code, "message": text}` with [`Refusal::code`] and
/// [`Refusal::http_status`]; a refused operation changes nothing (no state, no version, no ledger entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// 401: no valid session (missing, malformed, expired or revoked token). AZ-1, SES-4, SES-6.
    Unauthenticated,
    /// 401: the refresh token was already used or revoked; its family is now revoked. SES-2, SES-3.
    InvalidGrant,
    /// 401: wrong credentials, without saying whether the account exists. SES-1.
    InvalidCredentials,
    /// 401: an admin operation needs a step-up younger than 5 minutes in this session. AZ-6, SES-9.
    StepUpRequired,
    /// 403: the caller may see the object but not do this. AZ-3, AZ-5.
    Forbidden,
    /// 403: the admin who asked for a two-person approval tried to give the second approval too. AZ-7.
    SameApprover,
    /// 404: no such object, or the caller may not know it exists. AZ-2, ESC-20.
    NotFound,
    /// 404 (or 403): passkey endpoints while passkeys are switched off. SES-8.
    PasskeysDisabled,
    /// 409: the escrow's state does not allow this. ESC-19.
    InvalidTransition,
    /// 412: the `If-Match` version is stale. ESC-21.
    VersionMismatch,
    /// 422: a field is missing, malformed, or may not be set by the caller. AZ-8.
    ValidationFailed,
    /// 422: the provider is switched off. PRV-3.
    ProviderDisabled,
    /// 429: too many attempts. SES-10, RT-5.
    RateLimited,
    /// 503: the provider failed (5xx, timeout, refused connection, an error body). PRV-2.
    ProviderUnavailable,
    /// 401: a webhook whose signature, key or timestamp does not verify. WH-1, WH-2, WH-7.
    WebhookUnauthenticated,
    /// 400: a webhook body that cannot be parsed. WH-7.
    WebhookMalformed,
}

impl Refusal {
    /// Every refusal, in a fixed order.
    pub const ALL: [Refusal; 16] = [
        Refusal::Unauthenticated,
        Refusal::InvalidGrant,
        Refusal::InvalidCredentials,
        Refusal::StepUpRequired,
        Refusal::Forbidden,
        Refusal::SameApprover,
        Refusal::NotFound,
        Refusal::PasskeysDisabled,
        Refusal::InvalidTransition,
        Refusal::VersionMismatch,
        Refusal::ValidationFailed,
        Refusal::ProviderDisabled,
        Refusal::RateLimited,
        Refusal::ProviderUnavailable,
        Refusal::WebhookUnauthenticated,
        Refusal::WebhookMalformed,
    ];

    /// The `error` field of the canonical error body.
    pub const fn code(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::InvalidGrant => "invalid_grant",
            Refusal::InvalidCredentials => "invalid_credentials",
            Refusal::StepUpRequired => "step_up_required",
            Refusal::Forbidden => "forbidden",
            Refusal::SameApprover => "same_approver",
            Refusal::NotFound => "not_found",
            Refusal::PasskeysDisabled => "passkeys_disabled",
            Refusal::InvalidTransition => "invalid_transition",
            Refusal::VersionMismatch => "version_mismatch",
            Refusal::ValidationFailed => "validation_failed",
            Refusal::ProviderDisabled => "provider_disabled",
            Refusal::RateLimited => "rate_limited",
            Refusal::ProviderUnavailable => "provider_unavailable",
            Refusal::WebhookUnauthenticated => "invalid_signature",
            Refusal::WebhookMalformed => "malformed",
        }
    }

    /// The HTTP status of the canonical API.
    pub const fn http_status(self) -> u16 {
        match self {
            Refusal::Unauthenticated
            | Refusal::InvalidGrant
            | Refusal::InvalidCredentials
            | Refusal::StepUpRequired
            | Refusal::WebhookUnauthenticated => 401,
            Refusal::Forbidden | Refusal::SameApprover => 403,
            Refusal::NotFound | Refusal::PasskeysDisabled => 404,
            Refusal::InvalidTransition => 409,
            Refusal::VersionMismatch => 412,
            Refusal::ValidationFailed | Refusal::ProviderDisabled => 422,
            Refusal::RateLimited => 429,
            Refusal::ProviderUnavailable => 503,
            Refusal::WebhookMalformed => 400,
        }
    }

    /// The refusal with this wire code, if any.
    pub fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.http_status(), self.code())
    }
}

//! The signing side of each scheme, byte-exact with the providers: the verifiers compute the expected signature
//! with these, and the harness's webhook senders and provider simulators sign with them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of the concatenation of `parts`.
///
/// `None` only if the HMAC crate refused the key, which HMAC never does (a key of any length is valid; longer
/// ones are hashed first). Callers turn `None` into a signature no verifier accepts, so even that impossible path
/// fails closed rather than panicking.
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

fn hex_or_empty(digest: Option<[u8; 32]>) -> String {
    digest.map(hex::encode).unwrap_or_default()
}

/// SHKeeper's `X-Shkeeper-Signature`: lowercase hex HMAC-SHA256, keyed with the API key, over
/// `"{timestamp}." + body`. `timestamp` is the exact `X-Shkeeper-Timestamp` header text.
pub fn shkeeper_signature(api_key: &[u8], timestamp: &str, body: &[u8]) -> String {
    hex_or_empty(hmac_sha256(api_key, &[timestamp.as_bytes(), b".", body]))
}

/// Request Network's `x-request-network-signature`: lowercase hex HMAC-SHA256 over the raw body, nothing else.
pub fn request_network_signature(secret: &[u8], body: &[u8]) -> String {
    hex_or_empty(hmac_sha256(secret, &[body]))
}

/// GitHub's `X-Hub-Signature-256`: `sha256=` and lowercase hex HMAC-SHA256 over the body, keyed with the secret
/// as given. Not a provider of ours; kept because its published vector checks our HMAC plumbing independently.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex_or_empty(hmac_sha256(secret, &[body])))
}

/// Stripe's `Stripe-Signature` header with one signature: `t={timestamp},v1={hex}`, the HMAC over
/// `"{timestamp}." + body` keyed with the `whsec_…` string as is (Stripe does not decode it). The signed content
/// is SHKeeper's, which the tests use to cross-check both.
pub fn stripe_signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    format!("t={t},v1={}", hex_or_empty(hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", body])))
}

/// Why a Standard Webhooks secret cannot be used. Never quotes the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SecretFormatError {
    /// The part after `whsec_` is not standard base64 with padding.
    #[error("the Standard Webhooks secret is not base64 after its whsec_ prefix")]
    NotBase64,
    /// The decoded key is empty, which would let anyone sign.
    #[error("the Standard Webhooks secret decodes to an empty key")]
    Empty,
}

/// The HMAC key of a Standard Webhooks secret: the base64-decoded part after `whsec_`. Like the reference
/// libraries, a secret given without the prefix is decoded whole.
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, SecretFormatError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64.decode(encoded).map_err(|_| SecretFormatError::NotBase64)?;
    if key.is_empty() { Err(SecretFormatError::Empty) } else { Ok(key) }
}

/// The base64 HMAC of Standard Webhooks' signed content `"{id}.{timestamp}.{body}"`, without the `v1,` prefix.
/// `None` as in [`hmac_sha256`]; the verifier treats it as no match.
pub(super) fn standard_webhooks_digest(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    hmac_sha256(key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]).map(|d| BASE64.encode(d))
}

/// One Standard Webhooks signature, `v1,<base64>`, for the `webhook-signature` header. Several may be sent
/// space-separated while secrets rotate.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SecretFormatError> {
    let key = standard_webhooks_key(secret)?;
    let digest = standard_webhooks_digest(&key, id, &timestamp.to_string(), body).unwrap_or_default();
    Ok(format!("v1,{digest}"))
}

//! Header access with case-insensitive names, and the redaction of secret-bearing headers for dead letters.

use std::fmt;

/// The header names the schemes use, spelled as their providers document them. Lookups ignore case, so the
/// spelling only matters to senders.
pub mod header_names {
    /// SHKeeper: unix seconds, part of the signed content.
    pub const SHKEEPER_TIMESTAMP: &str = "X-Shkeeper-Timestamp";
    /// SHKeeper: lowercase hex HMAC-SHA256 over `"{timestamp}." + body`.
    pub const SHKEEPER_SIGNATURE: &str = "X-Shkeeper-Signature";
    /// SHKeeper: the merchant API key itself, sent by older deployments instead of a signature. A secret.
    pub const SHKEEPER_API_KEY: &str = "X-Shkeeper-Api-Key";
    /// Request Network: hex HMAC-SHA256 over the raw body.
    pub const REQUEST_NETWORK_SIGNATURE: &str = "x-request-network-signature";
    /// Request Network: a ULID per delivery, documented as the idempotency key. Not signed.
    pub const REQUEST_NETWORK_DELIVERY: &str = "x-request-network-delivery";
    /// Request Network: 0–3, the attempt number. Not signed.
    pub const REQUEST_NETWORK_RETRY_COUNT: &str = "x-request-network-retry-count";
    /// Request Network: `true` on test deliveries. Not signed.
    pub const REQUEST_NETWORK_TEST: &str = "x-request-network-test";
    /// Standard Webhooks: the message id, signed, the same on every retry of one message.
    pub const WEBHOOK_ID: &str = "webhook-id";
    /// Standard Webhooks: unix seconds, signed.
    pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
    /// Standard Webhooks: space-separated `v1,<base64>` signatures.
    pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
    /// GitHub: `sha256=<hex>` over the body.
    pub const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
    /// Stripe: `t=<unix>,v1=<hex>[,v1=<hex>]`.
    pub const STRIPE_SIGNATURE: &str = "Stripe-Signature";
}

/// The value that replaces a secret header's value in a dead letter.
pub const REDACTED: &str = "[redacted]";

/// The headers of one delivery: (name, value) pairs in arrival order, looked up without regard to the case of the
/// name, because HTTP names are case-insensitive and proxies and frameworks change their case freely.
///
/// Values are returned without surrounding spaces and tabs: HTTP's optional whitespace is not part of a value.
/// `Debug` redacts secret-bearing headers (see [`is_secret_header`]), so logging a `Headers` leaks no key.
#[derive(Clone, Default)]
pub struct Headers<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Headers<'a> {
    /// Headers from borrowed pairs.
    pub fn new(pairs: &[(&'a str, &'a str)]) -> Headers<'a> {
        Headers { pairs: pairs.to_vec() }
    }

    /// Headers borrowed from owned pairs, as a server or a recorded dead letter holds them.
    pub fn from_owned(pairs: &'a [(String, String)]) -> Headers<'a> {
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    /// The first value of header `name` (any case), trimmed.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.get_all(name).next()
    }

    /// Every value of header `name` (any case), trimmed, in arrival order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.pairs.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, v)| trim_ows(v))
    }

    /// The value of header `name` when it appears at most once; `Err(())` when it appears more than once. Security
    /// headers must be unambiguous: a proxy and the verifier could otherwise pick different copies.
    pub(crate) fn get_unique(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut values = self.get_all(name);
        let first = values.next();
        if values.next().is_some() { Err(()) } else { Ok(first) }
    }

    /// The pairs in arrival order, as given (names in their original case, values untrimmed).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs.iter().copied()
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers<'a> {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        Headers { pairs: iter.into_iter().collect() }
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(redact_headers(self)).finish()
    }
}

fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// Whether a header carries a secret and must be redacted before a delivery is stored or logged (WH-5, WH-7).
///
/// Redacted: credentials (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`), API keys
/// (`X-Shkeeper-Api-Key`, `x-api-key`), and any name containing `secret`, `token`, `password`, `api-key`,
/// `api_key` or `apikey`. Kept: signature headers (`X-Shkeeper-Signature`, `webhook-signature`, …). A signature
/// is an HMAC output, not a key; it reveals nothing usable without the secret, and keeping it lets a replayed dead
/// letter be verified again (WH-6).
pub fn is_secret_header(name: &str) -> bool {
    const EXACT: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];
    const PARTS: [&str; 6] = ["secret", "token", "password", "api-key", "api_key", "apikey"];
    let lower = name.to_ascii_lowercase();
    EXACT.contains(&lower.as_str()) || PARTS.iter().any(|p| lower.contains(p))
}

/// The headers as owned pairs, with the values of secret-bearing headers replaced by [`REDACTED`]. Names keep
/// their case and order, so an admin sees what arrived.
pub fn redact_headers(headers: &Headers<'_>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if is_secret_header(name) { REDACTED } else { value };
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

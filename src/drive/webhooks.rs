//! Webhook senders: deliveries signed exactly as SHKeeper, Request Network and Standard Webhooks sign them, and
//! deliberate damage to them (SPEC §6, WH-1, WH-2, WH-8, WH-10).
//!
//! A [`Delivery`] is what goes on the wire: method `POST`, the URL, the headers in sending order and the raw body
//! bytes. The senders never pick a clock or a random id themselves: the caller chooses the timestamp, the
//! Standard Webhooks message id and the Request Network delivery id, so every delivery is reproducible and the
//! published vectors can be checked (`shared/FACTS.md`).
//!
//! Signing reuses the model's byte-exact functions ([`shkeeper_signature`], [`request_network_signature`],
//! [`standard_webhooks_signature`]); nothing here computes an HMAC of its own.
//!
//! [`Damage`] turns a good delivery into one a conforming receiver must refuse: a signature of the wrong length
//! or in upper case, the signed body re-serialized (other key order, extra whitespace) under the original
//! signature, a signature made with another secret, several signatures in one header, one changed byte.
//!
//! SHKeeper's callback bodies are compact JSON with sorted keys; [`canonical_json`] writes them so, and
//! [`ShkeeperPayment`] / [`ShkeeperPayout`] / [`RequestNetworkEvent`] / [`NeutralEvent`] give the payload
//! shapes.

use conform_reference::webhooks::{
    Headers, SecretFormatError, header_names as h, request_network_signature, shkeeper_signature,
    standard_webhooks_signature,
};
use serde::Serialize;
use serde_json::Value;

pub use conform_reference::webhooks::Secret;

/// One webhook delivery as it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Always `POST` for the schemes here.
    pub method: &'static str,
    /// Where it is sent.
    pub url: String,
    /// Header (name, value) pairs, in sending order, names spelled as the provider spells them.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes.
    pub body: Vec<u8>,
    /// How it was signed (no secret), so that [`Damage`] can re-sign or locate the signature.
    pub signing: Signing,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Redacts the legacy API-key header (the reference `Headers` does that in its Debug).
        f.debug_struct("Delivery")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &Headers::from_owned(&self.headers))
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("signing", &self.signing)
            .finish()
    }
}

impl Delivery {
    /// The headers as the model's verifiers take them.
    pub fn header_view(&self) -> Headers<'_> {
        Headers::from_owned(&self.headers)
    }

    /// The first value of header `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sets header `name` (any case) to `value`, replacing every existing value, or appends it.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name) || n == name);
        match self.headers.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value,
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    /// The body as text, lossily, for messages.
    pub fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// This delivery with `damage` applied; see [`Damage::apply`].
    pub fn damaged(&self, damage: &Damage) -> Result<Delivery, DamageError> {
        damage.apply(self)
    }
}

/// How a delivery was signed: the scheme and its non-secret inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// SHKeeper HMAC mode: `X-Shkeeper-Timestamp` and `X-Shkeeper-Signature` over `"{timestamp}." + body`.
    Shkeeper {
        /// The exact `X-Shkeeper-Timestamp` text.
        timestamp: String,
    },
    /// SHKeeper legacy mode: only `X-Shkeeper-Api-Key`; the body is not authenticated.
    ShkeeperLegacy,
    /// Request Network: `x-request-network-signature` over the body only.
    RequestNetwork,
    /// Standard Webhooks: `webhook-signature` over `"{id}.{timestamp}.{body}"`.
    StandardWebhooks {
        /// The `webhook-id`.
        id: String,
        /// The `webhook-timestamp`, unix seconds.
        timestamp: i64,
    },
}

impl Signing {
    /// The header carrying the signature (or, in legacy mode, the API key).
    pub const fn signature_header(&self) -> &'static str {
        match self {
            Signing::Shkeeper { .. } => h::SHKEEPER_SIGNATURE,
            Signing::ShkeeperLegacy => h::SHKEEPER_API_KEY,
            Signing::RequestNetwork => h::REQUEST_NETWORK_SIGNATURE,
            Signing::StandardWebhooks { .. } => h::WEBHOOK_SIGNATURE,
        }
    }

    /// The signature header's value for `body` under `secret`.
    fn sign(&self, secret: &Secret, body: &[u8]) -> Result<String, DamageError> {
        Ok(match self {
            Signing::Shkeeper { timestamp } => shkeeper_signature(secret.expose(), timestamp, body),
            Signing::ShkeeperLegacy => {
                String::from_utf8(secret.expose().to_vec()).map_err(|_| DamageError::SecretNotText)?
            }
            Signing::RequestNetwork => request_network_signature(secret.expose(), body),
            Signing::StandardWebhooks { id, timestamp } => {
                let secret = std::str::from_utf8(secret.expose()).map_err(|_| DamageError::SecretNotText)?;
                standard_webhooks_signature(secret, id, *timestamp, body)?
            }
        })
    }
}

/// Content type of every delivery here.
const JSON: &str = "application/json";

/// Sends SHKeeper callbacks (payment and payout), in HMAC mode or in the legacy API-key mode.
#[derive(Debug, Clone)]
pub struct ShkeeperSender {
    api_key: Secret,
    legacy: bool,
    also_api_key: bool,
}

impl ShkeeperSender {
    /// A sender in HMAC mode (SHKeeper since 2026-05): `X-Shkeeper-Timestamp` and `X-Shkeeper-Signature`, keyed
    /// with the API key.
    pub fn new(api_key: impl Into<Secret>) -> ShkeeperSender {
        ShkeeperSender { api_key: api_key.into(), legacy: false, also_api_key: false }
    }

    /// A sender in legacy mode: only `X-Shkeeper-Api-Key`, as older deployments send.
    pub fn legacy(api_key: impl Into<Secret>) -> ShkeeperSender {
        ShkeeperSender { api_key: api_key.into(), legacy: true, also_api_key: false }
    }

    /// In HMAC mode, also send the legacy `X-Shkeeper-Api-Key` header, as a payment callback of a current
    /// SHKeeper does (its payout callbacks do not).
    pub fn with_api_key_header(mut self, yes: bool) -> ShkeeperSender {
        self.also_api_key = yes;
        self
    }

    /// A delivery of `body` (sent as is) to `url`, signed at `timestamp` (unix seconds; ignored in legacy mode).
    pub fn deliver(&self, url: &str, body: &[u8], timestamp: i64) -> Delivery {
        let mut headers = vec![("Content-Type".to_owned(), JSON.to_owned())];
        let api_key = || String::from_utf8_lossy(self.api_key.expose()).into_owned();
        let signing = if self.legacy {
            headers.push((h::SHKEEPER_API_KEY.to_owned(), api_key()));
            Signing::ShkeeperLegacy
        } else {
            let timestamp = timestamp.to_string();
            if self.also_api_key {
                headers.push((h::SHKEEPER_API_KEY.to_owned(), api_key()));
            }
            headers.push((h::SHKEEPER_TIMESTAMP.to_owned(), timestamp.clone()));
            headers
                .push((h::SHKEEPER_SIGNATURE.to_owned(), shkeeper_signature(self.api_key.expose(), &timestamp, body)));
            Signing::Shkeeper { timestamp }
        };
        Delivery { method: "POST", url: url.to_owned(), headers, body: body.to_vec(), signing }
    }

    /// A delivery of `value` written as SHKeeper writes it: compact JSON with sorted keys.
    pub fn deliver_json(&self, url: &str, value: &Value, timestamp: i64) -> Delivery {
        self.deliver(url, &canonical_json(value), timestamp)
    }
}

/// Sends Request Network webhooks.
#[derive(Debug, Clone)]
pub struct RequestNetworkSender {
    secret: Secret,
    test: bool,
}

impl RequestNetworkSender {
    /// A sender signing with the webhook secret of the Request Network dashboard.
    pub fn new(secret: impl Into<Secret>) -> RequestNetworkSender {
        RequestNetworkSender { secret: secret.into(), test: false }
    }

    /// Marks deliveries as test deliveries (`x-request-network-test: true`).
    pub fn test_deliveries(mut self, yes: bool) -> RequestNetworkSender {
        self.test = yes;
        self
    }

    /// A delivery of `body` (sent as is) with delivery id `delivery_id` (a ULID, see [`ulid_like`]) and attempt
    /// number `retry_count` (0 for the first attempt, up to 3).
    pub fn deliver(&self, url: &str, body: &[u8], delivery_id: &str, retry_count: u32) -> Delivery {
        let mut headers = vec![
            ("Content-Type".to_owned(), JSON.to_owned()),
            (h::REQUEST_NETWORK_SIGNATURE.to_owned(), request_network_signature(self.secret.expose(), body)),
            (h::REQUEST_NETWORK_DELIVERY.to_owned(), delivery_id.to_owned()),
            (h::REQUEST_NETWORK_RETRY_COUNT.to_owned(), retry_count.to_string()),
        ];
        if self.test {
            headers.push((h::REQUEST_NETWORK_TEST.to_owned(), "true".to_owned()));
        }
        Delivery { method: "POST", url: url.to_owned(), headers, body: body.to_vec(), signing: Signing::RequestNetwork }
    }

    /// A delivery of `event`, serialized in its field order (Request Network is a JavaScript service).
    pub fn deliver_event(
        &self,
        url: &str,
        event: &RequestNetworkEvent,
        delivery_id: &str,
        retry_count: u32,
    ) -> Delivery {
        self.deliver(url, &event.to_body(), delivery_id, retry_count)
    }
}

/// Sends Standard Webhooks deliveries, with one or several secrets (several while secrets rotate: one
/// signature per secret in `webhook-signature`, space-separated).
#[derive(Debug, Clone)]
pub struct StandardWebhooksSender {
    secrets: Vec<String>,
}

impl StandardWebhooksSender {
    /// A sender with one `whsec_…` secret; refused if it does not decode.
    pub fn new(secret: &str) -> Result<StandardWebhooksSender, SecretFormatError> {
        conform_reference::webhooks::standard_webhooks_key(secret)?;
        Ok(StandardWebhooksSender { secrets: vec![secret.to_owned()] })
    }

    /// Also signs with `secret` (rotation): its signature follows the others in the header.
    pub fn with_secret(mut self, secret: &str) -> Result<StandardWebhooksSender, SecretFormatError> {
        conform_reference::webhooks::standard_webhooks_key(secret)?;
        self.secrets.push(secret.to_owned());
        Ok(self)
    }

    /// A delivery of `body` (sent as is) with message id `id` at `timestamp` (unix seconds).
    pub fn deliver(&self, url: &str, body: &[u8], id: &str, timestamp: i64) -> Delivery {
        let signatures: Vec<String> = self
            .secrets
            .iter()
            // Every secret was checked when it was added, so this never drops one.
            .filter_map(|s| standard_webhooks_signature(s, id, timestamp, body).ok())
            .collect();
        let headers = vec![
            ("Content-Type".to_owned(), JSON.to_owned()),
            (h::WEBHOOK_ID.to_owned(), id.to_owned()),
            (h::WEBHOOK_TIMESTAMP.to_owned(), timestamp.to_string()),
            (h::WEBHOOK_SIGNATURE.to_owned(), signatures.join(" ")),
        ];
        let signing = Signing::StandardWebhooks { id: id.to_owned(), timestamp };
        Delivery { method: "POST", url: url.to_owned(), headers, body: body.to_vec(), signing }
    }
}

/// Deliberate damage to a delivery. Every kind must make a conforming receiver refuse the delivery with 401
/// (WH-1, WH-7, WH-8), and each stands for a receiver bug seen in the wild (`shared/FACTS.md`).
#[derive(Debug, Clone)]
pub enum Damage {
    /// The signature one character short: a receiver using `timingSafeEqual` without a length check throws and
    /// answers 500 instead of 401 (inkbox#178).
    WrongLengthSignature,
    /// The signature in upper case: the hex schemes send lower case, and the reference verifiers compare strings.
    /// (For Standard Webhooks the base64 letters change case, which changes the value.)
    UpperCaseSignature,
    /// The body re-serialized with the keys of every object in reverse order, under the original signature: a
    /// receiver that parses first and verifies a re-serialization accepts it (stripe-node#1254).
    ReorderedKeys,
    /// The body pretty-printed (extra whitespace), under the original signature: same bug.
    ExtraWhitespace,
    /// Re-signed with another secret: an old one after a rotation (WH-8), or a wrong one. In legacy SHKeeper mode
    /// the other key replaces the API-key header.
    OtherSecret(Secret),
    /// Several signatures in one header, none of them a valid one of the scheme: for Standard Webhooks
    /// `v1,<signature under another key> v2,<the correct digest>` (a receiver that ignores the version label
    /// accepts); for the hex schemes `<wrong>,<correct>` (a receiver that splits on commas accepts).
    SeveralSignatures,
    /// One byte of the body changed (the last ASCII letter or digit, so the JSON stays valid), same signature.
    ChangedByte,
}

impl Damage {
    /// The kinds that need no argument, for sweeping.
    pub fn simple() -> [Damage; 6] {
        [
            Damage::WrongLengthSignature,
            Damage::UpperCaseSignature,
            Damage::ReorderedKeys,
            Damage::ExtraWhitespace,
            Damage::SeveralSignatures,
            Damage::ChangedByte,
        ]
    }

    /// A stable snake_case name for reports.
    pub fn code(&self) -> &'static str {
        match self {
            Damage::WrongLengthSignature => "wrong_length_signature",
            Damage::UpperCaseSignature => "upper_case_signature",
            Damage::ReorderedKeys => "reordered_keys",
            Damage::ExtraWhitespace => "extra_whitespace",
            Damage::OtherSecret(_) => "other_secret",
            Damage::SeveralSignatures => "several_signatures",
            Damage::ChangedByte => "changed_byte",
        }
    }

    /// `delivery` with this damage. Fails when the damage would not change the delivery (a one-key body cannot be
    /// reordered, a body of only upper-case-proof characters…) or does not apply to the scheme (signature damage
    /// to a legacy SHKeeper delivery, which has none). Body damage to a legacy SHKeeper delivery is applied: that
    /// mode authenticates no body, which is why it is the weaker one (WH-10, T03).
    pub fn apply(&self, delivery: &Delivery) -> Result<Delivery, DamageError> {
        let mut out = delivery.clone();
        let header = delivery.signing.signature_header();
        let signature = delivery.header(header).ok_or(DamageError::NoSignatureHeader { header })?.to_owned();
        let legacy = delivery.signing == Signing::ShkeeperLegacy;
        match self {
            Damage::WrongLengthSignature | Damage::UpperCaseSignature | Damage::SeveralSignatures if legacy => {
                return Err(DamageError::NotApplicable { damage: self.code(), reason: "legacy mode has no signature" });
            }
            Damage::WrongLengthSignature => {
                let mut shorter = signature;
                shorter.pop();
                out.set_header(header, shorter);
            }
            Damage::UpperCaseSignature => {
                // Keep a Standard Webhooks version label as it is, so only the signature itself changes.
                let swapped = match signature.strip_prefix("v1,") {
                    Some(rest) => format!("v1,{}", swap_case(rest)),
                    None => swap_case(&signature),
                };
                out.set_header(header, swapped);
            }
            Damage::ReorderedKeys => {
                let value = parse_body(delivery)?;
                out.body = reversed_json(&value);
            }
            Damage::ExtraWhitespace => {
                let value = parse_body(delivery)?;
                out.body = serde_json::to_vec_pretty(&value).map_err(|_| DamageError::BodyNotJson)?;
            }
            Damage::OtherSecret(secret) => {
                let signed = delivery.signing.sign(secret, &delivery.body)?;
                out.set_header(header, signed);
            }
            Damage::SeveralSignatures => {
                let wrong = delivery.signing.sign(&Secret::from("conform-wrong-secret"), &delivery.body);
                let several = match &delivery.signing {
                    Signing::StandardWebhooks { id, timestamp } => {
                        let wrong =
                            standard_webhooks_signature("whsec_Y29uZm9ybS13cm9uZw==", id, *timestamp, &delivery.body)?;
                        let correct =
                            signature.split(' ').next().and_then(|s| s.strip_prefix("v1,")).unwrap_or_default();
                        format!("{wrong} v2,{correct}")
                    }
                    _ => format!("{},{signature}", wrong?),
                };
                out.set_header(header, several);
            }
            Damage::ChangedByte => {
                let at = out.body.iter().rposition(u8::is_ascii_alphanumeric).ok_or(DamageError::NotApplicable {
                    damage: self.code(),
                    reason: "the body has no ASCII letter or digit",
                })?;
                let byte = out.body[at];
                out.body[at] = match byte {
                    b'9' => b'8',
                    b'z' | b'Z' => byte - 1,
                    _ => byte + 1,
                };
            }
        }
        if out == *delivery {
            return Err(DamageError::NotApplicable { damage: self.code(), reason: "it would not change the delivery" });
        }
        Ok(out)
    }
}

/// Why a damage could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DamageError {
    /// The delivery lacks the header the damage works on.
    #[error("the delivery has no {header} header")]
    NoSignatureHeader {
        /// The header's name.
        header: &'static str,
    },
    /// The damage needs a JSON body.
    #[error("the body is not JSON")]
    BodyNotJson,
    /// The damage does not change this delivery, or does not fit its scheme.
    #[error("{damage} does not apply: {reason}")]
    NotApplicable {
        /// The damage's code.
        damage: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The other secret must be text (an API key or a `whsec_…` string).
    #[error("the secret is not UTF-8 text")]
    SecretNotText,
    /// The other Standard Webhooks secret does not decode.
    #[error(transparent)]
    SecretFormat(#[from] SecretFormatError),
}

fn parse_body(delivery: &Delivery) -> Result<Value, DamageError> {
    serde_json::from_slice(&delivery.body).map_err(|_| DamageError::BodyNotJson)
}

fn swap_case(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
}

/// `value` as compact JSON with the keys of every object sorted (by code point, as Python's `sort_keys`), the
/// form of SHKeeper's callback bodies (`json.dumps(…, sort_keys=True, separators=(",", ":"))`), UTF-8 unescaped.
/// Independent of whether serde_json keeps insertion order.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(value, &mut out, false);
    out
}

/// Compact JSON with the keys of every object in reverse sorted order.
fn reversed_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(value, &mut out, true);
    out
}

fn write_json(value: &Value, out: &mut Vec<u8>, reverse: bool) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out, reverse);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            if reverse {
                entries.reverse();
            }
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                out.push(b':');
                write_json(item, out, reverse);
            }
            out.push(b'}');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// A ULID-shaped id (26 Crockford base32 characters: 48 bits of milliseconds, then 80 bits from `entropy`), as
/// Request Network's `x-request-network-delivery`. Deterministic in its inputs; callers pass a counter or a random
/// number as `entropy`.
pub fn ulid_like(unix_millis: u64, entropy: u128) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let value: u128 = (u128::from(unix_millis & 0xFFFF_FFFF_FFFF) << 80) | (entropy & ((1u128 << 80) - 1));
    (0..26).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

/// One transaction in a SHKeeper payment callback. All amounts are decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ShkeeperTransaction {
    /// Blockchain transaction id.
    pub txid: String,
    /// When it was seen, as SHKeeper writes it (`YYYY-MM-DD HH:MM:SS`).
    pub date: String,
    /// Amount in crypto.
    pub amount_crypto: String,
    /// Amount in fiat.
    pub amount_fiat: String,
    /// Amount in fiat before the fee.
    pub amount_fiat_without_fee: String,
    /// The fee in fiat.
    pub fee_fiat: String,
    /// Whether this transaction caused the callback.
    pub trigger: bool,
    /// The crypto's code.
    pub crypto: String,
}

/// A SHKeeper payment callback body (one per transaction; all transactions of the invoice are listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ShkeeperPayment {
    /// Our invoice id.
    pub external_id: String,
    /// The crypto's code.
    pub crypto: String,
    /// The deposit address.
    pub addr: String,
    /// The fiat currency.
    pub fiat: String,
    /// Total received, in fiat.
    pub balance_fiat: String,
    /// Total received, in crypto.
    pub balance_crypto: String,
    /// Whether the invoice is paid (PAID or OVERPAID).
    pub paid: bool,
    /// PARTIAL | PAID | OVERPAID.
    pub status: String,
    /// Every transaction so far; exactly one has `trigger: true`.
    pub transactions: Vec<ShkeeperTransaction>,
    /// Fee percent.
    pub fee_percent: String,
    /// Fixed fee.
    pub fee_fixed: String,
    /// Fee policy name.
    pub fee_policy: String,
    /// Overpaid amount in fiat.
    pub overpaid_fiat: String,
}

impl ShkeeperPayment {
    /// The body bytes: compact JSON, sorted keys.
    pub fn to_body(&self) -> Vec<u8> {
        to_canonical(self)
    }
}

/// A SHKeeper payout callback body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ShkeeperPayout {
    /// SHKeeper's payout (task) id.
    pub payout_id: String,
    /// Our id of the payout, as given when it was requested.
    pub external_id: String,
    /// Blockchain transaction id.
    pub tx_hash: String,
    /// `SUCCESS` (the only status documented for the callback).
    pub status: String,
    /// Amount in crypto.
    pub amount: String,
    /// The crypto's code.
    pub crypto: String,
    /// Amount in fiat.
    pub amount_fiat: String,
    /// The fiat currency.
    pub currency_fiat: String,
    /// Unix seconds.
    pub timestamp: i64,
}

impl ShkeeperPayout {
    /// The body bytes: compact JSON, sorted keys.
    pub fn to_body(&self) -> Vec<u8> {
        to_canonical(self)
    }
}

/// A Request Network webhook body (`payment.confirmed` and its relatives), fields in Request Network's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestNetworkEvent {
    /// `payment.confirmed`, `payment.partial`, … optionally suffixed `.client_id` or `.checkout`.
    pub event: String,
    /// The request.
    pub request_id: String,
    /// The payment reference.
    pub payment_reference: String,
    /// This payment's amount.
    pub amount: String,
    /// Total paid so far.
    pub total_amount_paid: String,
    /// The request's amount.
    pub expected_amount: String,
    /// ISO 8601.
    pub timestamp: String,
    /// Blockchain transaction hash.
    pub tx_hash: String,
    /// The payer.
    pub payer_address: String,
    /// The chain.
    pub network: String,
    /// The invoice currency.
    pub currency: String,
    /// The currency paid in.
    pub payment_currency: String,
    /// Sub-status, for `payment.processing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<String>,
    /// Fees, as Request Network lists them.
    pub fees: Vec<Value>,
}

impl RequestNetworkEvent {
    /// The body bytes: compact JSON in field order.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Our provider-neutral body, carried by Standard Webhooks (see `conform_reference::webhooks::parse_standard_webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NeutralEvent {
    /// `payment.received`, `payment.pending`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The provider's event id, the same on every delivery of the event.
    pub event_id: String,
    /// The invoice, payout or refund.
    pub invoice: String,
    /// Transaction id, when money moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Decimal string, when money moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Currency code, when money moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `partial` | `paid` | `overpaid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl NeutralEvent {
    /// The body bytes: compact JSON, sorted keys.
    pub fn to_body(&self) -> Vec<u8> {
        to_canonical(self)
    }
}

fn to_canonical(value: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs to a Value cannot fail (string keys, no non-finite floats).
    serde_json::to_value(value).map(|v| canonical_json(&v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conform_reference::ids::Timestamp;
    use conform_reference::webhooks::{
        AuthMode, SecretRing, VerifyError, VerifyOptions, parse_request_network, parse_shkeeper_callback,
        parse_standard_webhooks, verify_request_network, verify_shkeeper, verify_standard_webhooks,
    };
    use serde_json::json;

    const URL: &str = "http://127.0.0.1:1/hook";
    const SHK_KEY: &str = "test-api-key";
    const SHK_VECTOR: &str = "4bb210136fbf30d46eb3ffe6741b001ae479414b583d91c9a74a10ca3677ccdf";
    const RN_SECRET: &str = "s3cret";
    const RN_VECTOR: &str = "5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d";
    const SW1: (&str, &str, i64, &str, &str) = (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        r#"{"email":"test@example.com","username":"test_user"}"#,
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    );
    const SW2: (&str, &str, i64, &str, &str) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        r#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
    const OTHER_WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn options() -> VerifyOptions {
        VerifyOptions::default()
    }

    fn verify(d: &Delivery, ring: &SecretRing, now: i64) -> Result<AuthMode, VerifyError> {
        let now = Timestamp(now);
        let headers = d.header_view();
        let legacy = VerifyOptions { allow_legacy_api_key: true, ..options() };
        match &d.signing {
            Signing::Shkeeper { .. } => verify_shkeeper(&headers, &d.body, ring, &options(), now),
            Signing::ShkeeperLegacy => verify_shkeeper(&headers, &d.body, ring, &legacy, now),
            Signing::RequestNetwork => verify_request_network(&headers, &d.body, ring, now),
            Signing::StandardWebhooks { .. } => verify_standard_webhooks(&headers, &d.body, ring, &options(), now),
        }
        .map(|v| v.mode)
    }

    #[test]
    fn shkeeper_reproduces_the_vector() {
        let d = ShkeeperSender::new(SHK_KEY).deliver(URL, br#"{"a":1}"#, 1_700_000_000);
        assert_eq!(d.method, "POST");
        assert_eq!(d.url, URL);
        assert_eq!(d.body, br#"{"a":1}"#);
        assert_eq!(d.header("X-Shkeeper-Timestamp"), Some("1700000000"));
        assert_eq!(d.header("x-shkeeper-signature"), Some(SHK_VECTOR));
        assert_eq!(d.header(h::SHKEEPER_API_KEY), None);
        assert_eq!(verify(&d, &SecretRing::new(SHK_KEY), 1_700_000_000), Ok(AuthMode::Signature));
        let json = ShkeeperSender::new(SHK_KEY).deliver_json(URL, &json!({"a": 1}), 1_700_000_000);
        assert_eq!(json, d);
        let with_key = ShkeeperSender::new(SHK_KEY).with_api_key_header(true).deliver(URL, b"{}", 1);
        assert_eq!(with_key.header(h::SHKEEPER_API_KEY), Some(SHK_KEY));
    }

    #[test]
    fn shkeeper_legacy_sends_only_the_api_key() {
        let d = ShkeeperSender::legacy(SHK_KEY).deliver(URL, br#"{"a":1}"#, 1_700_000_000);
        assert_eq!(d.header(h::SHKEEPER_API_KEY), Some(SHK_KEY));
        assert_eq!(d.header(h::SHKEEPER_SIGNATURE), None);
        assert_eq!(d.header(h::SHKEEPER_TIMESTAMP), None);
        let ring = SecretRing::new(SHK_KEY);
        assert_eq!(verify(&d, &ring, 0), Ok(AuthMode::LegacyApiKey));
        let strict = verify_shkeeper(&d.header_view(), &d.body, &ring, &options(), Timestamp(0));
        assert_eq!(strict, Err(VerifyError::LegacyApiKeyDisabled));
        assert!(!format!("{d:?}").contains(SHK_KEY), "Debug leaks the API key");
        // The weakness of the mode: a changed body still passes; only the key is checked.
        assert_eq!(verify(&Damage::ChangedByte.apply(&d).unwrap(), &ring, 0), Ok(AuthMode::LegacyApiKey));
        let other = Damage::OtherSecret(Secret::from("other-key")).apply(&d).unwrap();
        assert_eq!(verify(&other, &ring, 0), Err(VerifyError::ApiKeyMismatch));
        assert!(matches!(Damage::UpperCaseSignature.apply(&d), Err(DamageError::NotApplicable { .. })));
    }

    #[test]
    fn request_network_reproduces_the_vector() {
        let id = ulid_like(1_700_000_000_000, 42);
        let d = RequestNetworkSender::new(RN_SECRET).deliver(URL, br#"{"a":1}"#, &id, 2);
        assert_eq!(d.header(h::REQUEST_NETWORK_SIGNATURE), Some(RN_VECTOR));
        assert_eq!(d.header(h::REQUEST_NETWORK_DELIVERY), Some(id.as_str()));
        assert_eq!(d.header(h::REQUEST_NETWORK_RETRY_COUNT), Some("2"));
        assert_eq!(d.header(h::REQUEST_NETWORK_TEST), None);
        assert_eq!(verify(&d, &SecretRing::new(RN_SECRET), 0), Ok(AuthMode::Signature));
        let test = RequestNetworkSender::new(RN_SECRET).test_deliveries(true).deliver(URL, b"{}", &id, 0);
        assert_eq!(test.header(h::REQUEST_NETWORK_TEST), Some("true"));
    }

    #[test]
    fn standard_webhooks_reproduces_both_published_vectors() {
        for (secret, id, ts, body, expected) in [SW1, SW2] {
            let d = StandardWebhooksSender::new(secret).unwrap().deliver(URL, body.as_bytes(), id, ts);
            assert_eq!(d.header(h::WEBHOOK_SIGNATURE), Some(expected));
            assert_eq!(d.header(h::WEBHOOK_ID), Some(id));
            assert_eq!(d.header(h::WEBHOOK_TIMESTAMP), Some(ts.to_string().as_str()));
            assert_eq!(verify(&d, &SecretRing::new(secret), ts), Ok(AuthMode::Signature));
        }
    }

    #[test]
    fn standard_webhooks_rotation_sends_one_signature_per_secret() {
        let (secret, id, ts, body, expected) = SW1;
        let sender = StandardWebhooksSender::new(OTHER_WHSEC).unwrap().with_secret(secret).unwrap();
        let d = sender.deliver(URL, body.as_bytes(), id, ts);
        let header = d.header(h::WEBHOOK_SIGNATURE).unwrap();
        assert_eq!(header.split(' ').nth(1), Some(expected));
        assert_eq!(verify(&d, &SecretRing::new(secret), ts), Ok(AuthMode::Signature));
        assert!(StandardWebhooksSender::new("whsec_!!").is_err());
    }

    #[test]
    fn ulid_like_is_26_crockford_characters_ordered_by_time() {
        let a = ulid_like(1_700_000_000_000, u128::MAX);
        let b = ulid_like(1_700_000_000_001, 0);
        assert_eq!(a.len(), 26);
        assert!(a.bytes().all(|c| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&c)));
        assert!(a < b);
        assert_ne!(ulid_like(1, 1), ulid_like(1, 2));
    }

    #[test]
    fn canonical_json_sorts_keys_compactly() {
        let value = json!({"b": [1, {"z": "é", "a": null}], "a": true, "c": "x\"y"});
        assert_eq!(canonical_json(&value), r#"{"a":true,"b":[1,{"a":null,"z":"é"}],"c":"x\"y"}"#.as_bytes());
        assert_eq!(reversed_json(&value), r#"{"c":"x\"y","b":[1,{"z":"é","a":null}],"a":true}"#.as_bytes());
    }

    fn payment() -> ShkeeperPayment {
        ShkeeperPayment {
            external_id: "inv-1".into(),
            crypto: "BTC".into(),
            addr: "bc1qaddr".into(),
            fiat: "USD".into(),
            balance_fiat: "12.50".into(),
            balance_crypto: "0.0002".into(),
            paid: true,
            status: "PAID".into(),
            transactions: vec![ShkeeperTransaction {
                txid: "tx-1".into(),
                date: "2026-12-04 10:00:00".into(),
                amount_crypto: "0.0002".into(),
                amount_fiat: "12.50".into(),
                amount_fiat_without_fee: "12.50".into(),
                fee_fiat: "0".into(),
                trigger: true,
                crypto: "BTC".into(),
            }],
            fee_percent: "0".into(),
            fee_fixed: "0".into(),
            fee_policy: "PERCENT_FEE".into(),
            overpaid_fiat: "0.00".into(),
        }
    }

    fn rn_event() -> RequestNetworkEvent {
        RequestNetworkEvent {
            event: "payment.confirmed".into(),
            request_id: "req-1".into(),
            payment_reference: "0xref".into(),
            amount: "12.50".into(),
            total_amount_paid: "12.50".into(),
            expected_amount: "12.50".into(),
            timestamp: "2026-12-04T10:00:00Z".into(),
            tx_hash: "0xtx".into(),
            payer_address: "0xpayer".into(),
            network: "sepolia".into(),
            currency: "USD".into(),
            payment_currency: "ETH-sepolia-sepolia".into(),
            sub_status: None,
            fees: vec![],
        }
    }

    #[test]
    fn payload_bodies_parse_with_the_model() {
        let body = payment().to_body();
        assert!(
            body.starts_with(br#"{"addr":"bc1qaddr","balance_crypto":"0.0002","#),
            "{}",
            String::from_utf8_lossy(&body)
        );
        let notice = parse_shkeeper_callback(&body).unwrap();
        assert_eq!(notice.event_key.to_string(), "shkeeper:event:payment_received:inv-1:tx-1");
        let payout = ShkeeperPayout {
            payout_id: "7".into(),
            external_id: "esc-1-release".into(),
            tx_hash: "0xpay".into(),
            status: "SUCCESS".into(),
            amount: "0.0002".into(),
            crypto: "BTC".into(),
            amount_fiat: "12.50".into(),
            currency_fiat: "USD".into(),
            timestamp: 1_700_000_000,
        };
        assert!(parse_shkeeper_callback(&payout.to_body()).is_ok());
        let d = RequestNetworkSender::new(RN_SECRET).deliver_event(URL, &rn_event(), "01J", 0);
        assert!(d.body.starts_with(br#"{"event":"payment.confirmed","requestId":"req-1""#));
        assert!(parse_request_network(&d.header_view(), &d.body).is_ok());
        let neutral = NeutralEvent {
            kind: "payment.received".into(),
            event_id: "evt-1".into(),
            invoice: "inv-1".into(),
            transaction: Some("0xabc".into()),
            amount: Some("12.50".into()),
            currency: Some("USD".into()),
            status: Some("paid".into()),
        };
        let sw = StandardWebhooksSender::new(SW1.0).unwrap().deliver(URL, &neutral.to_body(), "msg_1", 1);
        assert!(parse_standard_webhooks(&sw.header_view(), &sw.body).is_ok());
    }

    /// Every damage makes the model's verifier refuse what it accepted undamaged, for every scheme.
    #[test]
    fn every_damage_is_refused_and_the_undamaged_delivery_verifies() {
        let ts = 1_700_000_000;
        let shk_body = payment().to_body();
        let rn_body = rn_event().to_body();
        let (sw_secret, sw_id, _, sw_body, _) = SW1;
        let cases: Vec<(Delivery, SecretRing, Secret)> = vec![
            (
                ShkeeperSender::new(SHK_KEY).deliver(URL, &shk_body, ts),
                SecretRing::new(SHK_KEY),
                Secret::from("old-key"),
            ),
            (
                RequestNetworkSender::new(RN_SECRET).deliver(URL, &rn_body, &ulid_like(1, 1), 0),
                SecretRing::new(RN_SECRET),
                Secret::from("old-secret"),
            ),
            (
                StandardWebhooksSender::new(sw_secret).unwrap().deliver(URL, sw_body.as_bytes(), sw_id, ts),
                SecretRing::new(sw_secret),
                Secret::from(OTHER_WHSEC),
            ),
        ];
        for (good, ring, other) in cases {
            assert_eq!(verify(&good, &ring, ts), Ok(AuthMode::Signature), "{good:?}");
            let mut damages = Damage::simple().to_vec();
            damages.push(Damage::OtherSecret(other));
            for damage in damages {
                let bad =
                    damage.apply(&good).unwrap_or_else(|e| panic!("{} on {:?}: {e}", damage.code(), good.signing));
                assert_ne!(bad, good);
                let result = verify(&bad, &ring, ts);
                assert!(result.is_err(), "{} accepted on {:?}: {bad:?}", damage.code(), good.signing);
            }
        }
    }

    #[test]
    fn damage_refuses_to_be_a_no_op() {
        let d = ShkeeperSender::new(SHK_KEY).deliver(URL, br#"{"a":1}"#, 1);
        assert!(matches!(Damage::ReorderedKeys.apply(&d), Err(DamageError::NotApplicable { .. })));
        let not_json = ShkeeperSender::new(SHK_KEY).deliver(URL, b"hello", 1);
        assert_eq!(Damage::ExtraWhitespace.apply(&not_json), Err(DamageError::BodyNotJson));
        let sw = StandardWebhooksSender::new(SW1.0).unwrap().deliver(URL, b"{}", "m", 1);
        let bad_secret = Damage::OtherSecret(Secret::from("whsec_!!"));
        assert!(matches!(bad_secret.apply(&sw), Err(DamageError::SecretFormat(_))));
    }

    #[test]
    fn several_signatures_carry_the_correct_digest_under_another_label() {
        let (secret, id, ts, body, expected) = SW1;
        let d = StandardWebhooksSender::new(secret).unwrap().deliver(URL, body.as_bytes(), id, ts);
        let bad = Damage::SeveralSignatures.apply(&d).unwrap();
        let header = bad.header(h::WEBHOOK_SIGNATURE).unwrap();
        assert!(header.ends_with(&format!(" v2,{}", &expected[3..])), "{header}");
        let shk = ShkeeperSender::new(SHK_KEY).deliver(URL, br#"{"a":1}"#, 1_700_000_000);
        let bad = Damage::SeveralSignatures.apply(&shk).unwrap();
        assert!(bad.header(h::SHKEEPER_SIGNATURE).unwrap().ends_with(&format!(",{SHK_VECTOR}")));
    }
}

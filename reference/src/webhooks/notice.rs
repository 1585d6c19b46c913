//! Provider payloads, parsed from the raw bytes into one provider-neutral [`PaymentNotice`], and the
//! deduplication keys that make each provider event take effect once (WH-3, WH-4).
//!
//! Parsing is strict where money is concerned (amounts must be decimal strings, as every provider here sends
//! them; a JSON number could have passed through a float) and lenient elsewhere: fields the model does not use
//! are not required, so a provider adding or dropping one does not dead-letter real payments.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Provider;
use super::dead_letter::DeadLetterReason;
use super::headers::{Headers, header_names as h};
use crate::money::{Currency, Money, MoneyError};
use crate::refusal::Refusal;

/// What a notice says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Money arrived for an invoice (SHKeeper payment callback, RN `payment.confirmed` / `payment.partial`).
    PaymentReceived,
    /// A payment is seen but not final (RN `payment.processing`). Never moves an escrow forward or back (WH-9).
    PaymentPending,
    /// A payment attempt failed (RN `payment.failed`).
    PaymentFailed,
    /// A payout to a seller or buyer went out (SHKeeper payout callback `SUCCESS`).
    PayoutConfirmed,
    /// A payout failed.
    PayoutFailed,
    /// A refund went out (RN `payment.refunded`).
    RefundConfirmed,
}

impl NoticeKind {
    /// Every kind, in a fixed order.
    pub const ALL: [NoticeKind; 6] = [
        NoticeKind::PaymentReceived,
        NoticeKind::PaymentPending,
        NoticeKind::PaymentFailed,
        NoticeKind::PayoutConfirmed,
        NoticeKind::PayoutFailed,
        NoticeKind::RefundConfirmed,
    ];

    /// The kind's name in dedup keys and reports.
    pub const fn code(self) -> &'static str {
        match self {
            NoticeKind::PaymentReceived => "payment_received",
            NoticeKind::PaymentPending => "payment_pending",
            NoticeKind::PaymentFailed => "payment_failed",
            NoticeKind::PayoutConfirmed => "payout_confirmed",
            NoticeKind::PayoutFailed => "payout_failed",
            NoticeKind::RefundConfirmed => "refund_confirmed",
        }
    }

    /// Whether the notice reports money that moved, and so must carry an amount, a currency and a transaction.
    pub const fn moves_money(self) -> bool {
        matches!(self, NoticeKind::PaymentReceived | NoticeKind::PayoutConfirmed | NoticeKind::RefundConfirmed)
    }
}

/// The provider's view of the invoice after this notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Less than the invoice amount received so far.
    Partial,
    /// The invoice amount received.
    Paid,
    /// More than the invoice amount received.
    Overpaid,
}

/// Whether a dedup key names one delivery or one provider event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupScope {
    /// One delivery, the same across the provider's retries of it (RN `x-request-network-delivery`, Standard
    /// Webhooks `webhook-id`). Stops replays of a delivery (WH-3).
    Delivery,
    /// One provider event, however many deliveries carry it. Stops a re-sent event with a new delivery id and
    /// signature (WH-4), and is what a ledger entry names as its cause.
    Event,
}

/// A deduplication key. A delivery is a duplicate when any of its notice's keys was seen before; a receiver
/// records all of them in the same transaction as the effect (the check-then-insert race of StellarBank#39).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DedupKey {
    /// Whose key: keys of different providers never collide.
    pub provider: Provider,
    /// Delivery or event.
    pub scope: DedupScope,
    /// The key's components joined by `:`, each with `%` and `:` percent-escaped so that no two component lists
    /// give the same text (`a:b` + `c` differs from `a` + `b:c`).
    pub value: String,
}

impl DedupKey {
    /// An event key from its components.
    pub fn event(provider: Provider, parts: &[&str]) -> DedupKey {
        DedupKey { provider, scope: DedupScope::Event, value: join_escaped(parts) }
    }

    /// A delivery key from the provider's delivery id.
    pub fn delivery(provider: Provider, id: &str) -> DedupKey {
        DedupKey { provider, scope: DedupScope::Delivery, value: join_escaped(&[id]) }
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            DedupScope::Delivery => "delivery",
            DedupScope::Event => "event",
        };
        write!(f, "{}:{scope}:{}", self.provider, self.value)
    }
}

fn join_escaped(parts: &[&str]) -> String {
    parts.iter().map(|p| p.replace('%', "%25").replace(':', "%3A")).collect::<Vec<_>>().join(":")
}

/// A provider's webhook, provider-neutral: what happened, to which invoice, for how much, and how to recognise it
/// when it comes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentNotice {
    /// Who sent it.
    pub provider: Provider,
    /// What happened.
    pub kind: NoticeKind,
    /// The invoice or payout it is about, as the provider names it: SHKeeper's `external_id` (our own id, for
    /// payments and payouts), Request Network's `requestId`, our neutral body's `invoice`.
    pub invoice: String,
    /// The blockchain transaction or provider payment id, when there is one (always, when money moved).
    pub transaction: Option<String>,
    /// The amount, exact, when its currency is one the model supports. `None` with `currency` set means a
    /// currency we do not hold: a currency mismatch for the receiver (LED-10, PRV-5), not a parse error.
    pub amount: Option<Money>,
    /// The amount as the provider wrote it (a plain decimal), kept for dead letters and suspense.
    pub amount_text: Option<String>,
    /// The currency code as the provider wrote it.
    pub currency: Option<String>,
    /// What the invoice has received in total, when the provider says (SHKeeper `balance_fiat`, RN
    /// `totalAmountPaid`).
    pub total_paid: Option<Money>,
    /// The provider's view of the invoice, when it gives one.
    pub invoice_status: Option<InvoiceStatus>,
    /// A Request Network `.client_id` / `.checkout` event: the same payment as its base event, sent in addition.
    pub variant: bool,
    /// A delivery marked as a test (`x-request-network-test: true`). That header is not signed, so a receiver
    /// must not trust its absence more than its presence.
    pub test: bool,
    /// The key of the provider event (see [`DedupScope::Event`]).
    pub event_key: DedupKey,
    /// The key of this delivery, when the provider gives one.
    pub delivery_key: Option<DedupKey>,
}

impl PaymentNotice {
    /// Every dedup key of the notice, the event key first. Apply the notice only if none was seen before.
    pub fn dedup_keys(&self) -> Vec<DedupKey> {
        std::iter::once(self.event_key.clone()).chain(self.delivery_key.clone()).collect()
    }
}

/// Why an authenticated body is not a payload we understand. Each variant names the field, with its path for
/// nested ones (`transactions[2].amount_fiat`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not UTF-8 JSON.
    #[error("body is not JSON: {detail}")]
    NotJson {
        /// The JSON parser's message (position and problem; it quotes no input).
        detail: String,
    },
    /// The body, or a field, is not a JSON object.
    #[error("{field} is not a JSON object")]
    NotAnObject {
        /// The field, or `body`.
        field: String,
    },
    /// A required field is absent or null.
    #[error("missing field {field}")]
    MissingField {
        /// The field.
        field: String,
    },
    /// A field of the wrong JSON type.
    #[error("field {field} must be {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A required string that is empty.
    #[error("field {field} is empty")]
    EmptyField {
        /// The field.
        field: String,
    },
    /// An amount that is not an exact decimal of its currency.
    #[error("field {field}: {error}")]
    InvalidAmount {
        /// The field.
        field: String,
        /// What is wrong with it.
        error: MoneyError,
    },
    /// A status, event or type we do not know.
    #[error("field {field} has unknown value {value:?}")]
    UnknownValue {
        /// The field.
        field: String,
        /// The value received, cut to 40 characters.
        value: String,
    },
    /// A SHKeeper payment callback with no transaction marked `trigger: true`.
    #[error("no transaction has trigger: true")]
    NoTriggerTransaction,
    /// A SHKeeper payment callback with several transactions marked `trigger: true`: which one caused the
    /// callback, and so which one to credit, would be a guess.
    #[error("{count} transactions have trigger: true")]
    SeveralTriggerTransactions {
        /// How many.
        count: usize,
    },
}

impl ParseError {
    /// A stable snake_case name for reports.
    pub const fn code(&self) -> &'static str {
        match self {
            ParseError::NotJson { .. } => "not_json",
            ParseError::NotAnObject { .. } => "not_an_object",
            ParseError::MissingField { .. } => "missing_field",
            ParseError::WrongType { .. } => "wrong_type",
            ParseError::EmptyField { .. } => "empty_field",
            ParseError::InvalidAmount { .. } => "invalid_amount",
            ParseError::UnknownValue { .. } => "unknown_value",
            ParseError::NoTriggerTransaction => "no_trigger_transaction",
            ParseError::SeveralTriggerTransactions { .. } => "several_trigger_transactions",
        }
    }

    /// Always 400 `malformed` (WH-7).
    pub const fn refusal(&self) -> Refusal {
        Refusal::WebhookMalformed
    }

    /// The dead-letter reason, carrying this error's message.
    pub fn dead_letter_reason(&self) -> DeadLetterReason {
        DeadLetterReason::Malformed(self.to_string())
    }
}

type Object = Map<String, Value>;

fn parse_object(body: &[u8]) -> Result<Object, ParseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ParseError::NotAnObject { field: "body".into() }),
        Err(e) => Err(ParseError::NotJson { detail: e.to_string() }),
    }
}

fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// Typed access to one JSON object's fields, naming each by its path in errors.
struct Fields<'a> {
    object: &'a Object,
    path: String,
}

impl<'a> Fields<'a> {
    fn root(object: &'a Object) -> Fields<'a> {
        Fields { object, path: String::new() }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.path)
    }

    fn missing(&self, field: &str) -> ParseError {
        ParseError::MissingField { field: self.name(field) }
    }

    fn unknown(&self, field: &str, value: &str) -> ParseError {
        ParseError::UnknownValue { field: self.name(field), value: shown(value) }
    }

    /// A string, or `None` when absent or null.
    fn opt_str(&self, field: &str) -> Result<Option<&'a str>, ParseError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ParseError::WrongType { field: self.name(field), expected: "a string" }),
        }
    }

    /// A non-empty string, or `None` when absent, null or empty.
    fn opt_text(&self, field: &str) -> Result<Option<&'a str>, ParseError> {
        Ok(self.opt_str(field)?.filter(|s| !s.is_empty()))
    }

    /// A required non-empty string.
    fn text(&self, field: &str) -> Result<&'a str, ParseError> {
        let value = self.opt_str(field)?.ok_or_else(|| self.missing(field))?;
        if value.is_empty() { Err(ParseError::EmptyField { field: self.name(field) }) } else { Ok(value) }
    }

    /// A required id written as a non-empty string or a non-negative integer (providers differ, and an id is
    /// only ever compared, never computed with).
    fn id(&self, field: &str) -> Result<String, ParseError> {
        match self.object.get(field) {
            Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
            _ => self.text(field).map(str::to_owned),
        }
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, ParseError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ParseError::WrongType { field: self.name(field), expected: "true or false" }),
        }
    }

    fn array(&self, field: &str) -> Result<&'a [Value], ParseError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Err(self.missing(field)),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(ParseError::WrongType { field: self.name(field), expected: "an array" }),
        }
    }

    /// The amount in field `field`, in the currency `code`. `Ok(None)` when the currency is not one the model
    /// supports, after checking the text is still a plain decimal, so the notice can go to currency mismatch
    /// handling rather than be refused as malformed.
    fn amount_in(&self, field: &str, text: &str, code: &str) -> Result<Option<Money>, ParseError> {
        let invalid = |error| ParseError::InvalidAmount { field: self.name(field), error };
        match Currency::parse(code) {
            Ok(currency) => Money::parse(text, currency).map(Some).map_err(invalid),
            Err(_) if is_plain_decimal(text) => Ok(None),
            Err(_) => Err(invalid(MoneyError::Malformed { input: shown(text) })),
        }
    }
}

/// Digits, optionally `.` and digits: the wire shape of an amount, whatever its currency.
fn is_plain_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(text),
    }
}

/// The amount fields of a notice: (amount, its text, its currency code).
type AmountParts = (Option<Money>, Option<String>, Option<String>);

/// Reads an amount and its currency; both required when `required`, otherwise read only when present.
fn amount_parts(
    fields: &Fields<'_>,
    amount_field: &str,
    currency_field: &str,
    required: bool,
) -> Result<AmountParts, ParseError> {
    let (text, code) = if required {
        (Some(fields.text(amount_field)?), Some(fields.text(currency_field)?))
    } else {
        (fields.opt_text(amount_field)?, fields.opt_text(currency_field)?)
    };
    let amount = match (text, code) {
        (Some(text), Some(code)) => fields.amount_in(amount_field, text, code)?,
        // An amount without a currency cannot be read exactly.
        (Some(_), None) => return Err(fields.missing(currency_field)),
        (None, _) => None,
    };
    Ok((amount, text.map(str::to_owned), code.map(str::to_owned)))
}

/// Parses a SHKeeper callback, telling payment and payout callbacks apart by the presence of `payout_id` (only
/// payout callbacks have it). Use this when both arrive at one URL.
pub fn parse_shkeeper_callback(body: &[u8]) -> Result<PaymentNotice, ParseError> {
    let object = parse_object(body)?;
    if object.contains_key("payout_id") { shkeeper_payout(&object) } else { shkeeper_payment(&object) }
}

/// Parses a SHKeeper payment callback.
///
/// Required: `external_id`, `fiat`, `status` (`PARTIAL` | `PAID` | `OVERPAID`) and `transactions`, of which
/// exactly one has `trigger: true` with a `txid` and an `amount_fiat`. The notice credits that transaction's
/// `amount_fiat` in currency `fiat` (not the invoice balance: SHKeeper sends one callback per transaction, also
/// after PAID). `balance_fiat`, when present, becomes `total_paid`. The event key is (`external_id`, trigger
/// `txid`), never `external_id` alone, which would drop every payment after the first.
pub fn parse_shkeeper_payment(body: &[u8]) -> Result<PaymentNotice, ParseError> {
    shkeeper_payment(&parse_object(body)?)
}

fn shkeeper_payment(object: &Object) -> Result<PaymentNotice, ParseError> {
    let f = Fields::root(object);
    let external_id = f.text("external_id")?;
    let fiat = f.text("fiat")?;
    let invoice_status = match f.text("status")? {
        "PARTIAL" => InvoiceStatus::Partial,
        "PAID" => InvoiceStatus::Paid,
        "OVERPAID" => InvoiceStatus::Overpaid,
        other => return Err(f.unknown("status", other)),
    };
    let total_paid = match f.opt_text("balance_fiat")? {
        Some(text) => f.amount_in("balance_fiat", text, fiat)?,
        None => None,
    };
    let mut triggers = Vec::new();
    for (i, tx) in f.array("transactions")?.iter().enumerate() {
        let Value::Object(tx) = tx else {
            return Err(ParseError::NotAnObject { field: format!("transactions[{i}]") });
        };
        let tx = Fields { object: tx, path: format!("transactions[{i}].") };
        if tx.opt_bool("trigger")? == Some(true) {
            triggers.push(tx);
        }
    }
    let count = triggers.len();
    let trigger = match triggers.pop() {
        None => return Err(ParseError::NoTriggerTransaction),
        Some(trigger) if count == 1 => trigger,
        Some(_) => return Err(ParseError::SeveralTriggerTransactions { count }),
    };
    let txid = trigger.text("txid")?;
    let amount_text = trigger.text("amount_fiat")?;
    let amount = trigger.amount_in("amount_fiat", amount_text, fiat)?;
    let kind = NoticeKind::PaymentReceived;
    Ok(PaymentNotice {
        provider: Provider::Shkeeper,
        kind,
        invoice: external_id.to_owned(),
        transaction: Some(txid.to_owned()),
        amount,
        amount_text: Some(amount_text.to_owned()),
        currency: Some(fiat.to_owned()),
        total_paid,
        invoice_status: Some(invoice_status),
        variant: false,
        test: false,
        event_key: DedupKey::event(Provider::Shkeeper, &[kind.code(), external_id, txid]),
        delivery_key: None,
    })
}

/// Parses a SHKeeper payout callback `{payout_id, external_id, tx_hash, status, amount, crypto, amount_fiat,
/// currency_fiat, timestamp}`.
///
/// `status` `SUCCESS` is a confirmed payout and needs `tx_hash`, `amount_fiat` and `currency_fiat`; `FAIL` or
/// `FAILURE` (the words of SHKeeper's payout status APIs; the callback itself is documented only for success)
/// is a failed payout. The amount is the fiat one, the currency our escrows and payment callbacks use.
/// `payout_id` may be a string or an integer. Event key: (kind, `external_id`, `payout_id`).
pub fn parse_shkeeper_payout(body: &[u8]) -> Result<PaymentNotice, ParseError> {
    shkeeper_payout(&parse_object(body)?)
}

fn shkeeper_payout(object: &Object) -> Result<PaymentNotice, ParseError> {
    let f = Fields::root(object);
    let payout_id = f.id("payout_id")?;
    let external_id = f.text("external_id")?;
    let kind = match f.text("status")? {
        "SUCCESS" => NoticeKind::PayoutConfirmed,
        "FAIL" | "FAILURE" => NoticeKind::PayoutFailed,
        other => return Err(f.unknown("status", other)),
    };
    let moved = kind.moves_money();
    let transaction = if moved { Some(f.text("tx_hash")?) } else { f.opt_text("tx_hash")? };
    let (amount, amount_text, currency) = amount_parts(&f, "amount_fiat", "currency_fiat", moved)?;
    Ok(PaymentNotice {
        provider: Provider::Shkeeper,
        kind,
        invoice: external_id.to_owned(),
        transaction: transaction.map(str::to_owned),
        amount,
        amount_text,
        currency,
        total_paid: None,
        invoice_status: None,
        variant: false,
        test: false,
        event_key: DedupKey::event(Provider::Shkeeper, &[kind.code(), external_id, &payout_id]),
        delivery_key: None,
    })
}

/// The suffixes of Request Network's extra events, sent in addition to the base event for the same payment.
const REQUEST_NETWORK_VARIANTS: [&str; 2] = [".client_id", ".checkout"];

/// Parses a Request Network event.
///
/// `event` is one of `payment.confirmed` (received, invoice paid), `payment.partial` (received, partial),
/// `payment.processing` (pending), `payment.failed`, `payment.refunded`, optionally suffixed `.client_id` or
/// `.checkout` (then `variant` is set: the same payment again). `requestId` is required; `txHash`, `amount` and
/// `currency` are required when money moved (confirmed, partial, refunded) and read when present otherwise;
/// `totalAmountPaid` becomes `total_paid`.
///
/// Event key: (kind, `requestId`, `txHash`), the same for a base event and its variant and for any re-delivery;
/// the kind is in it so a `processing` event does not swallow the `confirmed` one of the same transaction, and it
/// is the kind rather than the event name so a `partial` and a `confirmed` for one transaction credit once.
/// Delivery key: the `x-request-network-delivery` header, when present.
pub fn parse_request_network(headers: &Headers<'_>, body: &[u8]) -> Result<PaymentNotice, ParseError> {
    let object = parse_object(body)?;
    let f = Fields::root(&object);
    let event = f.text("event")?;
    let (base, variant) = match REQUEST_NETWORK_VARIANTS.iter().find_map(|s| event.strip_suffix(s)) {
        Some(base) => (base, true),
        None => (event, false),
    };
    let (kind, invoice_status) = match base {
        "payment.confirmed" => (NoticeKind::PaymentReceived, Some(InvoiceStatus::Paid)),
        "payment.partial" => (NoticeKind::PaymentReceived, Some(InvoiceStatus::Partial)),
        "payment.processing" => (NoticeKind::PaymentPending, None),
        "payment.failed" => (NoticeKind::PaymentFailed, None),
        "payment.refunded" => (NoticeKind::RefundConfirmed, None),
        _ => return Err(f.unknown("event", event)),
    };
    let request_id = f.text("requestId")?;
    let moved = kind.moves_money();
    let tx_hash = if moved { Some(f.text("txHash")?) } else { f.opt_text("txHash")? };
    let (amount, amount_text, currency) = amount_parts(&f, "amount", "currency", moved)?;
    let total_paid = match (f.opt_text("totalAmountPaid")?, currency.as_deref()) {
        (Some(text), Some(code)) => f.amount_in("totalAmountPaid", text, code)?,
        _ => None,
    };
    let test = headers.get(h::REQUEST_NETWORK_TEST).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let delivery_key = headers
        .get(h::REQUEST_NETWORK_DELIVERY)
        .filter(|id| !id.is_empty())
        .map(|id| DedupKey::delivery(Provider::RequestNetwork, id));
    Ok(PaymentNotice {
        provider: Provider::RequestNetwork,
        kind,
        invoice: request_id.to_owned(),
        transaction: tx_hash.map(str::to_owned),
        amount,
        amount_text,
        currency,
        total_paid,
        invoice_status,
        variant,
        test,
        event_key: DedupKey::event(Provider::RequestNetwork, &[kind.code(), request_id, tx_hash.unwrap_or("")]),
        delivery_key,
    })
}

/// Parses our neutral body, the payload for any provider reached through Standard Webhooks:
///
/// ```json
/// {"type":"payment.received","event_id":"evt_01","invoice":"inv_01","transaction":"0xabc",
///  "amount":"12.50","currency":"USD","status":"paid"}
/// ```
///
/// - `type`: `payment.received` | `payment.pending` | `payment.failed` | `payout.confirmed` | `payout.failed` |
///   `refund.confirmed`;
/// - `event_id`: the provider's id of the event, the same on every delivery of it (required);
/// - `invoice`: the invoice, payout or refund it is about (required);
/// - `transaction`, `amount` (decimal string), `currency`: required when money moved (received, payout
///   confirmed, refund confirmed), optional otherwise;
/// - `status`: optional, `partial` | `paid` | `overpaid`.
///
/// Event key: `event_id`. Delivery key: the `webhook-id` header, which Standard Webhooks keeps across retries.
pub fn parse_standard_webhooks(headers: &Headers<'_>, body: &[u8]) -> Result<PaymentNotice, ParseError> {
    let object = parse_object(body)?;
    let f = Fields::root(&object);
    let kind = match f.text("type")? {
        "payment.received" => NoticeKind::PaymentReceived,
        "payment.pending" => NoticeKind::PaymentPending,
        "payment.failed" => NoticeKind::PaymentFailed,
        "payout.confirmed" => NoticeKind::PayoutConfirmed,
        "payout.failed" => NoticeKind::PayoutFailed,
        "refund.confirmed" => NoticeKind::RefundConfirmed,
        other => return Err(f.unknown("type", other)),
    };
    let event_id = f.text("event_id")?;
    let invoice = f.text("invoice")?;
    let moved = kind.moves_money();
    let transaction = if moved { Some(f.text("transaction")?) } else { f.opt_text("transaction")? };
    let (amount, amount_text, currency) = amount_parts(&f, "amount", "currency", moved)?;
    let invoice_status = match f.opt_text("status")? {
        None => None,
        Some("partial") => Some(InvoiceStatus::Partial),
        Some("paid") => Some(InvoiceStatus::Paid),
        Some("overpaid") => Some(InvoiceStatus::Overpaid),
        Some(other) => return Err(f.unknown("status", other)),
    };
    let delivery_key = headers
        .get(h::WEBHOOK_ID)
        .filter(|id| !id.is_empty())
        .map(|id| DedupKey::delivery(Provider::StandardWebhooks, id));
    Ok(PaymentNotice {
        provider: Provider::StandardWebhooks,
        kind,
        invoice: invoice.to_owned(),
        transaction: transaction.map(str::to_owned),
        amount,
        amount_text,
        currency,
        total_paid: None,
        invoice_status,
        variant: false,
        test: false,
        event_key: DedupKey::event(Provider::StandardWebhooks, &[event_id]),
        delivery_key,
    })
}

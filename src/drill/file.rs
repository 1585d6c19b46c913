//! A drill file (`drills/*.toml`): read, checked, and turned into a [`Drill`]. Every mistake is reported with the
//! file, the line and the field, since the people who write runbooks are not the people who wrote this parser.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use conform_reference::escrow::EscrowState;

/// A mistake in a drill file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillFileError {
    /// The file, as named to the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// `section.key`, or the section alone.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for DrillFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.field, self.message)
    }
}

impl std::error::Error for DrillFileError {}

/// What goes wrong during the drill. Fault words, never money words (`release` and `hold` are the escrow's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `drop payout-confirmations`: the provider accepted a payout and goes silent.
    DropPayoutConfirmations,
    /// `outage provider-api`: the provider's API fails, in each of the drill's [`OutageMode`]s.
    ProviderOutage,
    /// `leak webhook-secret`: SHKeeper's webhook secret is known to an attacker, who can sign deliveries.
    LeakedWebhookSecret,
    /// `compromise payment-proofs`: a buyer hands in manual-wallet proofs that do not hold up.
    CompromisedPaymentProofs,
    /// `compromise admin-session`: an attacker holds the first admin's session (and its socket).
    CompromisedAdminSession,
}

/// The fault words of a drill file: `(kind, what, fault)`.
const FAULTS: &[(&str, &str, Fault)] = &[
    ("drop", "payout-confirmations", Fault::DropPayoutConfirmations),
    ("outage", "provider-api", Fault::ProviderOutage),
    ("leak", "webhook-secret", Fault::LeakedWebhookSecret),
    ("compromise", "payment-proofs", Fault::CompromisedPaymentProofs),
    ("compromise", "admin-session", Fault::CompromisedAdminSession),
];

/// The kinds of fault a drill may name (SPEC §8 speaks of faults, never of money).
const FAULT_KINDS: &[&str] = &["outage", "delay", "drop", "leak", "compromise"];

impl Fault {
    /// In words, for the timeline.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::DropPayoutConfirmations => "the provider drops its payout confirmations",
            Fault::ProviderOutage => "the provider's API is down",
            Fault::LeakedWebhookSecret => "SHKeeper's webhook secret leaks: an attacker can sign deliveries with it",
            Fault::CompromisedPaymentProofs => {
                "a buyer hands in payment proofs that do not hold up (a reused hash, a wrong amount, a wrong currency)"
            }
            Fault::CompromisedAdminSession => "an attacker holds the first admin's session and its socket",
        }
    }
}

/// How the provider's API fails during an `outage provider-api` (PRV-2 names each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageMode {
    /// `http-503`: HTTP 503.
    Http503,
    /// `http-200-status-error`: SHKeeper's HTTP 200 carrying `{"status":"error"}`.
    Http200StatusError,
    /// `no-answer`: the connection is accepted and nothing comes back (the adapter's timeout bounds it).
    NoAnswer,
}

/// Words of the vocabulary, each with its name in drill files.
pub trait Word: Copy + 'static {
    /// Every word of the kind, with its name.
    const ALL: &'static [(&'static str, Self)];

    /// The word's name in drill files.
    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::ALL.iter().find(|(_, w)| *w == self).map_or("?", |(n, _)| n)
    }
}

impl Word for OutageMode {
    const ALL: &'static [(&'static str, Self)] = &[
        ("http-503", OutageMode::Http503),
        ("http-200-status-error", OutageMode::Http200StatusError),
        ("no-answer", OutageMode::NoAnswer),
    ];
}

/// What the responders (or the provider) do in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `start-payment`: the buyer starts the payment, once per outage mode.
    StartPayment,
    /// `rotate-webhook-secret`: the first admin steps up and rotates SHKeeper's secret (no overlap).
    RotateWebhookSecret,
    /// `deliver-with-leaked-secret`: a payment delivery signed with the leaked secret reaches the target.
    DeliverWithLeakedSecret,
    /// `approve-as-one-admin`: the first admin (stepped up) approves each escrow's payment proof.
    ApproveAsOneAdmin,
    /// `approve-again-as-same-admin`: the same admin gives the second approval of each pending one.
    ApproveAgainAsSameAdmin,
    /// `reject-proofs`: the first admin rejects each escrow's payment proof.
    RejectProofs,
    /// `attacker-moves-funds`: with the stolen session, the attacker resolves the dispute for the seller, first
    /// without a step-up, then stepped up, then approves its own pending approval.
    AttackerMovesFunds,
    /// `revoke-admin-sessions`: the second admin steps up and revokes every session of the first.
    RevokeAdminSessions,
    /// `second-admin-approves-pending`: the second admin approves what the first left pending.
    SecondAdminApprovesPending,
    /// `retry-payout`: an admin (stepped up) retries the payout.
    RetryPayout,
    /// `provider-recovers`: the provider's API answers again and the buyer starts the payment.
    ProviderRecovers,
    /// `provider-confirms`: the provider comes back and confirms the payout once.
    ProviderConfirms,
    /// `burst-deliveries`: the provider's queued payment delivery arrives at once with duplicates (each copy
    /// newly signed).
    BurstDeliveries,
    /// `provider-pays`: the provider delivers the payment, signed as the target now expects.
    ProviderPays,
}

impl Word for Action {
    const ALL: &'static [(&'static str, Self)] = &[
        ("start-payment", Action::StartPayment),
        ("rotate-webhook-secret", Action::RotateWebhookSecret),
        ("deliver-with-leaked-secret", Action::DeliverWithLeakedSecret),
        ("approve-as-one-admin", Action::ApproveAsOneAdmin),
        ("approve-again-as-same-admin", Action::ApproveAgainAsSameAdmin),
        ("reject-proofs", Action::RejectProofs),
        ("attacker-moves-funds", Action::AttackerMovesFunds),
        ("revoke-admin-sessions", Action::RevokeAdminSessions),
        ("second-admin-approves-pending", Action::SecondAdminApprovesPending),
        ("retry-payout", Action::RetryPayout),
        ("provider-recovers", Action::ProviderRecovers),
        ("provider-confirms", Action::ProviderConfirms),
        ("burst-deliveries", Action::BurstDeliveries),
        ("provider-pays", Action::ProviderPays),
    ];
}

/// What must be seen after a phase's action (every answer is compared with the model's besides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `listed-as-stuck`: an admin's stuck-payout list shows the escrow (polled until the deadline).
    ListedAsStuck,
    /// `same-idempotency-key`: every payout request the provider holds for the escrow carries one key (PRV-4).
    SameIdempotencyKey,
    /// `provider-unavailable`: each start answered 503 `provider_unavailable`; no ledger entry and no invoice
    /// (PRV-2).
    ProviderUnavailable,
    /// `one-invoice`: the payment started, and the provider holds one invoice for the escrow (PRV-1).
    OneInvoice,
    /// `rotation-accepted`: the rotation was accepted; deliveries are signed with the new secret from now on.
    RotationAccepted,
    /// `refused-and-dead-lettered`: the delivery was refused (401 or 400, naming no secret), kept as a dead letter,
    /// and booked nothing (WH-5, WH-7, WH-8).
    RefusedAndDeadLettered,
    /// `pending-second-admin`: each approval only recorded a pending two-person approval (202), the proof was
    /// flagged as the fault made it, and nothing was funded (PRV-6, AZ-7).
    PendingSecondAdmin,
    /// `same-approver-refused`: each second approval by the same admin answered 403 `same_approver` (AZ-7).
    SameApproverRefused,
    /// `needs-step-up-and-second-admin`: without a step-up the attacker got 401 `step_up_required`, with one only a
    /// pending approval, and its own second approval 403 (AZ-6, AZ-7).
    NeedsStepUpAndSecondAdmin,
    /// `cut-off`: the revoked admin's sockets are disconnected within the deadline, its access and refresh tokens
    /// are refused and its token opens no new socket (SES-5, RT-6).
    CutOff,
    /// `approvals-void`: the revoked admin's pending approvals were refused (void), nothing executed (DRL-5).
    ApprovalsVoid,
    /// `ledger-matches-provider`: the target's ledger holds, for the drill's escrows, exactly the entries the
    /// provider's payments and payouts call for: one per event (WH-3, WH-4, LED-6).
    LedgerMatchesProvider,
    /// `one-payout-confirmed`: the target booked exactly one payout confirmation for the escrow.
    OnePayoutConfirmed,
}

impl Word for Expect {
    const ALL: &'static [(&'static str, Self)] = &[
        ("listed-as-stuck", Expect::ListedAsStuck),
        ("same-idempotency-key", Expect::SameIdempotencyKey),
        ("provider-unavailable", Expect::ProviderUnavailable),
        ("one-invoice", Expect::OneInvoice),
        ("rotation-accepted", Expect::RotationAccepted),
        ("refused-and-dead-lettered", Expect::RefusedAndDeadLettered),
        ("pending-second-admin", Expect::PendingSecondAdmin),
        ("same-approver-refused", Expect::SameApproverRefused),
        ("needs-step-up-and-second-admin", Expect::NeedsStepUpAndSecondAdmin),
        ("cut-off", Expect::CutOff),
        ("approvals-void", Expect::ApprovalsVoid),
        ("ledger-matches-provider", Expect::LedgerMatchesProvider),
        ("one-payout-confirmed", Expect::OnePayoutConfirmed),
    ];
}

/// Whose admin calls the audit log must list in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOf {
    /// `admin-a`: the first admin of the cast.
    AdminA,
    /// `admin-b`: the second.
    AdminB,
}

impl Word for AuditOf {
    const ALL: &'static [(&'static str, Self)] = &[("admin-a", AuditOf::AdminA), ("admin-b", AuditOf::AdminB)];
}

/// The provider of the drill's escrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillProvider {
    /// `shkeeper`.
    Shkeeper,
    /// `manual-wallet`.
    ManualWallet,
}

impl Word for DrillProvider {
    const ALL: &'static [(&'static str, Self)] =
        &[("shkeeper", DrillProvider::Shkeeper), ("manual-wallet", DrillProvider::ManualWallet)];
}

/// One phase after the fault: what is done, what must be seen, and by when (from the fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// What is done first, if anything.
    pub action: Option<Action>,
    /// What must be seen, in order.
    pub expect: Vec<Expect>,
    /// From the fault, how long the phase may take.
    pub deadline_ms: u64,
}

/// A runbook drill, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    /// Its name (`conform drill NAME`); its check in the suite `drills` has this name, so launch criteria name it
    /// as `drills/NAME`.
    pub name: String,
    /// One line: the situation.
    pub title: String,
    /// SPEC rules it is evidence for.
    pub rules: Vec<String>,
    /// The state an escrow is brought to before the fault.
    pub precondition: EscrowState,
    /// Its price in major units of USD (10,000 and more is high-risk).
    pub major: i128,
    /// Whose escrow it is: the provider the precondition's escrow uses, when the state allows a choice.
    pub provider: Option<DrillProvider>,
    /// Whether the buyer has started the payment (the provider's invoice exists).
    pub payment_started: bool,
    /// The fault injected.
    pub fault: Fault,
    /// For a provider outage: the ways its API fails, one after the other.
    pub outage_modes: Vec<OutageMode>,
    /// Test-clock seconds to advance before detection.
    pub advance_clock_seconds: i64,
    /// Detection.
    pub detect: Phase,
    /// Containment.
    pub contain: Phase,
    /// Recovery.
    pub recover: Phase,
    /// The state the drill's escrows must end in.
    pub recovered_state: EscrowState,
    /// The most money that may be lost, in minor units of the escrow's currency.
    pub max_funds_lost_minor: i128,
    /// Whose admin calls the audit log must list, each with its outcome.
    pub audit_of: Option<AuditOf>,
}

/// A string or a list of strings (an expectation or several).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMore {
    One(String),
    More(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    title: String,
    rules: Vec<String>,
    precondition: RawPrecondition,
    fault: RawFault,
    detect: RawPhase,
    contain: RawPhase,
    recover: RawPhase,
    evidence: RawEvidence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrecondition {
    state: Spanned<String>,
    major: Option<Spanned<i64>>,
    provider: Option<Spanned<String>>,
    payment_started: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: Spanned<String>,
    what: Spanned<String>,
    modes: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    advance_clock_seconds: Option<Spanned<i64>>,
    action: Option<Spanned<String>>,
    expect: Option<Spanned<OneOrMore>>,
    expect_state: Option<Spanned<String>>,
    deadline_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    max_funds_lost: Spanned<String>,
    audit: Option<Spanned<String>>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `section.key` at a byte offset: the key of that line, under the nearest table header above it.
fn field_at(text: &str, offset: usize) -> String {
    let line = line_of(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.get(line - 1).and_then(|l| l.split_once('=')).map(|(k, _)| k.trim().to_owned());
    let section = lines[..line.min(lines.len())]
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')).map(str::to_owned));
    match (section, key) {
        (Some(section), Some(key)) => format!("{section}.{key}"),
        (None, Some(key)) => key,
        (Some(section), None) => section,
        (None, None) => "(top level)".to_owned(),
    }
}

/// A state name of SPEC §1.
fn state(name: &str) -> Option<EscrowState> {
    EscrowState::ALL.into_iter().find(|s| s.to_string() == name)
}

/// The states a drill's precondition can bring an escrow to (the shared setups of the matrix suite).
const PRECONDITIONS: &[&str] =
    &["awaiting_payment", "funded", "delivered", "disputed", "release_pending", "payment_review"];

impl Drill {
    /// Reads a drill from its text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Drill, DrillFileError> {
        let error = |span: Range<usize>, field: &str, message: String| DrillFileError {
            file: file.to_owned(),
            line: line_of(text, span.start),
            field: field.to_owned(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().to_owned();
            // A missing field is reported at its table: name it from the message.
            let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                Some(missing) => format!("{}.{missing}", field_at(text, start)),
                None => field_at(text, start),
            };
            DrillFileError { file: file.to_owned(), line: line_of(text, start), field, message }
        })?;
        fn word<W: Word>(
            spanned: &Spanned<String>,
            field: &str,
            error: &dyn Fn(Range<usize>, &str, String) -> DrillFileError,
        ) -> Result<W, DrillFileError> {
            W::ALL.iter().find(|(n, _)| *n == spanned.get_ref()).map(|(_, w)| *w).ok_or_else(|| {
                let names: Vec<&str> = W::ALL.iter().map(|(n, _)| *n).collect();
                error(spanned.span(), field, format!("`{}` is not one of: {}", spanned.get_ref(), names.join(", ")))
            })
        }
        let named_state = |spanned: &Spanned<String>, field: &str| {
            state(spanned.get_ref()).ok_or_else(|| {
                let names: Vec<String> = EscrowState::ALL.iter().map(ToString::to_string).collect();
                error(
                    spanned.span(),
                    field,
                    format!("`{}` is not an escrow state ({})", spanned.get_ref(), names.join(", ")),
                )
            })
        };
        let precondition = named_state(&raw.precondition.state, "precondition.state")?;
        if !PRECONDITIONS.contains(&raw.precondition.state.get_ref().as_str()) {
            return Err(error(
                raw.precondition.state.span(),
                "precondition.state",
                format!("this drill engine brings escrows to {} only", PRECONDITIONS.join(", ")),
            ));
        }
        let major = match &raw.precondition.major {
            None => 100,
            Some(major) if *major.get_ref() > 0 => i128::from(*major.get_ref()),
            Some(major) => {
                return Err(error(major.span(), "precondition.major", "a price is a positive number".to_owned()));
            }
        };
        let provider =
            raw.precondition.provider.as_ref().map(|p| word(p, "precondition.provider", &error)).transpose()?;
        let kind = raw.fault.kind.get_ref().as_str();
        let what = raw.fault.what.get_ref().as_str();
        let fault = match FAULTS.iter().find(|(k, w, _)| *k == kind && *w == what) {
            Some((.., fault)) => *fault,
            None if matches!(kind, "release" | "hold") => {
                return Err(error(
                    raw.fault.kind.span(),
                    "fault.kind",
                    format!("`release` and `hold` are money words; faults are {}", FAULT_KINDS.join(", ")),
                ));
            }
            None if FAULT_KINDS.contains(&kind) => {
                let known: Vec<String> = FAULTS.iter().map(|(k, w, _)| format!("{k} {w}")).collect();
                return Err(error(
                    raw.fault.what.span(),
                    "fault.what",
                    format!("`{kind} {what}` is not a fault this engine injects ({})", known.join(", ")),
                ));
            }
            None => {
                return Err(error(
                    raw.fault.kind.span(),
                    "fault.kind",
                    format!("`{kind}` is not a fault word ({})", FAULT_KINDS.join(", ")),
                ));
            }
        };
        let outage_modes = match (&raw.fault.modes, fault) {
            (None, Fault::ProviderOutage) => vec![OutageMode::Http503],
            (None, _) => Vec::new(),
            (Some(modes), Fault::ProviderOutage) => {
                if modes.get_ref().is_empty() {
                    return Err(error(modes.span(), "fault.modes", "name at least one way of failing".to_owned()));
                }
                modes.get_ref().iter().map(|m| word(m, "fault.modes", &error)).collect::<Result<_, _>>()?
            }
            (Some(modes), _) => {
                return Err(error(modes.span(), "fault.modes", "only `outage provider-api` has modes".to_owned()));
            }
        };
        let phase = |raw: &RawPhase, section: &str| -> Result<Phase, DrillFileError> {
            let action = raw.action.as_ref().map(|a| word(a, &format!("{section}.action"), &error)).transpose()?;
            let field = format!("{section}.expect");
            let expect = match &raw.expect {
                None => Vec::new(),
                Some(expect) => {
                    let words = match expect.get_ref() {
                        OneOrMore::One(one) => vec![one.clone()],
                        OneOrMore::More(more) => more.clone(),
                    };
                    words.into_iter().map(|w| word(&Spanned::new(expect.span(), w), &field, &error)).collect::<Result<
                        Vec<Expect>,
                        _,
                    >>(
                    )?
                }
            };
            if action.is_none() && expect.is_empty() {
                return Err(error(
                    0..0,
                    section,
                    "a phase needs an action or an expectation (`action = …`, `expect = …`)".to_owned(),
                ));
            }
            Ok(Phase { action, expect, deadline_ms: raw.deadline_ms })
        };
        for (raw, section) in [(&raw.detect, "detect"), (&raw.contain, "contain")] {
            if let Some(state) = &raw.expect_state {
                return Err(error(
                    state.span(),
                    &format!("{section}.expect_state"),
                    "only [recover] names the state \
                    the escrows end in"
                        .to_owned(),
                ));
            }
        }
        for (raw, section) in [(&raw.contain, "contain"), (&raw.recover, "recover")] {
            if let Some(seconds) = &raw.advance_clock_seconds {
                return Err(error(
                    seconds.span(),
                    &format!("{section}.advance_clock_seconds"),
                    "only [detect] moves the test clock".to_owned(),
                ));
            }
        }
        let advance_clock_seconds = match &raw.detect.advance_clock_seconds {
            None => 0,
            Some(seconds) if *seconds.get_ref() < 0 => {
                return Err(error(
                    seconds.span(),
                    "detect.advance_clock_seconds",
                    "time only moves forward".to_owned(),
                ));
            }
            Some(seconds) => *seconds.get_ref(),
        };
        let detect = phase(&raw.detect, "detect")?;
        let contain = phase(&raw.contain, "contain")?;
        let recover = phase(&raw.recover, "recover")?;
        let recovered_state = match &raw.recover.expect_state {
            Some(state) => named_state(state, "recover.expect_state")?,
            None => {
                let at = text.find("[recover]").unwrap_or(0);
                return Err(error(
                    at..at,
                    "recover.expect_state",
                    "missing field `expect_state`: the state the escrows end in".to_owned(),
                ));
            }
        };
        let lost = raw.evidence.max_funds_lost.get_ref();
        let max_funds_lost_minor = lost.parse::<i128>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            error(
                raw.evidence.max_funds_lost.span(),
                "evidence.max_funds_lost",
                format!("`{lost}` is not a whole, non-negative amount of minor units"),
            )
        })?;
        let audit_of = raw.evidence.audit.as_ref().map(|a| word(a, "evidence.audit", &error)).transpose()?;
        if raw.name.get_ref().is_empty() {
            return Err(error(raw.name.span(), "name", "a drill needs a name".to_owned()));
        }
        Ok(Drill {
            name: raw.name.into_inner(),
            title: raw.title,
            rules: raw.rules,
            precondition,
            major,
            provider,
            payment_started: raw.precondition.payment_started.unwrap_or(false),
            fault,
            outage_modes,
            advance_clock_seconds,
            detect,
            contain,
            recover,
            recovered_state,
            max_funds_lost_minor,
            audit_of,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUCK: &str = include_str!("../../drills/stuck-release.toml");

    #[test]
    fn the_shipped_drill_reads() {
        let drill = Drill::parse("drills/stuck-release.toml", STUCK).expect("valid");
        assert_eq!(drill.fault, Fault::DropPayoutConfirmations);
        assert_eq!(drill.recovered_state, EscrowState::Released);
    }

    #[test]
    fn a_wrong_word_names_file_line_and_field() {
        let text = STUCK.replace("kind = \"drop\"", "kind = \"release\"");
        let error = Drill::parse("drills/x.toml", &text).expect_err("money word");
        let line = text.lines().position(|l| l.starts_with("kind = ")).expect("line") + 1;
        assert_eq!((error.line, error.field.as_str()), (line, "fault.kind"), "{error}");
        assert!(error.to_string().starts_with(&format!("drills/x.toml:{line}: fault.kind: ")), "{error}");
    }

    #[test]
    fn every_shipped_drill_reads() {
        for (name, text) in crate::drill::DRILLS {
            let drill = Drill::parse(&format!("drills/{name}.toml"), text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(drill.name, *name);
            assert!(drill.rules.iter().any(|r| r.starts_with("DRL-")), "{name}");
            assert_eq!(drill.max_funds_lost_minor, 0, "{name}");
        }
    }

    /// The line of the first line of `text` that starts with `prefix`.
    fn line(text: &str, prefix: &str) -> usize {
        text.lines().position(|l| l.starts_with(prefix)).expect("line") + 1
    }

    #[test]
    fn unknown_words_name_file_line_and_field() {
        let outage = crate::drill::DRILLS.iter().find(|(n, _)| *n == "provider-outage").expect("shipped").1;
        let cases = [
            (
                STUCK.replace("action = \"retry-payout\"", "action = \"retry-harder\""),
                "action = \"retry-harder\"",
                "contain.action",
            ),
            (
                STUCK.replace("expect = \"listed-as-stuck\"", "expect = [\"listed-as-stuck\", \"paged\"]"),
                "expect = [",
                "detect.expect",
            ),
            (STUCK.replace("what = \"payout-confirmations\"", "what = \"everything\""), "what = ", "fault.what"),
            (STUCK.replace("kind = \"drop\"", "kind = \"meltdown\""), "kind = ", "fault.kind"),
            (
                STUCK.replace("max_funds_lost = \"0\"", "max_funds_lost = \"0\"\naudit = \"everyone\""),
                "audit = ",
                "evidence.audit",
            ),
            (
                STUCK.replace("state = \"release_pending\"", "state = \"release_pending\"\nprovider = \"paypal\""),
                "provider = ",
                "precondition.provider",
            ),
            (outage.replace("\"no-answer\"", "\"slow\""), "modes = ", "fault.modes"),
            (
                STUCK.replace(
                    "what = \"payout-confirmations\"",
                    "what = \"payout-confirmations\"\nmodes = [\"http-503\"]",
                ),
                "modes = ",
                "fault.modes",
            ),
            (
                STUCK.replace(
                    "action = \"provider-confirms\"",
                    "action = \"provider-confirms\"\nadvance_clock_seconds = 5",
                ),
                "advance_clock_seconds = 5",
                "recover.advance_clock_seconds",
            ),
        ];
        for (text, at, field) in cases {
            let error = Drill::parse("drills/x.toml", &text).expect_err(field);
            assert_eq!((error.line, error.field.as_str()), (line(&text, at), field), "{error}");
            assert!(error.to_string().starts_with(&format!("drills/x.toml:{}: {field}: ", error.line)), "{error}");
        }
    }

    #[test]
    fn a_wrong_type_and_a_missing_field_are_located() {
        let text = STUCK.replace("deadline_ms = 5000\n\n[contain]", "deadline_ms = \"soon\"\n\n[contain]");
        let error = Drill::parse("d.toml", &text).expect_err("type");
        assert_eq!(error.field, "detect.deadline_ms", "{error}");
        let text = STUCK.replace("expect_state = \"released\"\n", "");
        let error = Drill::parse("d.toml", &text).expect_err("missing");
        assert_eq!(error.field, "recover.expect_state", "{error}");
    }
}

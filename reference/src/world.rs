//! The whole backend as one deterministic state machine: accounts, sessions, escrows, the ledger, two-person
//! approvals, the audit log, dead letters and provider calls. It is the oracle: given the same requests, a
//! conforming target must decide the same way, reach the same states and write the same postings.
//!
//! [`World::apply`] checks a request completely before it changes anything, so a refusal leaves no trace but the
//! two that SPEC requires: an audit record for every admin call (AZ-9) and a dead letter for every webhook that
//! fails (WH-5). [`World::next_state`] is the stateright-style view: `None` for a refusal.
//!
//! Choices where SPEC is silent (also in `contracts/`):
//! - The version (ESC-21) changes only with the state; a partial payment or a new invoice keeps it.
//! - A payment on a closed escrow, an unknown invoice or in the wrong currency is booked to suspense, answered with
//!   success (so the provider stops retrying) and dead-lettered for review; a disabled provider's delivery is
//!   refused with `provider_disabled` and dead-lettered without any entry.
//! - A provider outage refuses start_payment (PRV-2); a release or refund still happens and its payout waits, to be
//!   retried (ESC-18, DRL-3).
//! - A partially paid escrow does not expire (ESC-9 needs "nothing paid").
//! - Protected fields in a create or update body are refused with 422 (AZ-8 allows ignoring them too; the oracle
//!   accepts either).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::authz::{Parties, Principal, Role, authorize};
use crate::escrow::{Escrow, EscrowEvent, EscrowState, PayoutProgress, Proof, Transition, transition};
use crate::ids::{ApprovalId, DeadLetterId, EscrowId, SessionId, Timestamp, UserId};
use crate::invariants::{EscrowFacts, Observation};
use crate::ledger::{Account, Cause, EntryKind, Ledger, Posting, Provider, release_postings};
use crate::money::{BasisPoints, Money};
use crate::ops::{OperationClass, OperationKind};
use crate::providers::{
    ProviderStatus, allocate_payment, invoice_external_id, is_high_risk, payout_idempotency_key, proof_flags,
};
use crate::refusal::Refusal;
use crate::sessions::{
    AccessToken, Assertion, Challenge, ChallengePurpose, ClientId, CredentialId, PasskeyRegistry, RefreshToken,
    SessionConfig, SessionStore, SessionSummary, SignInName, Tokens,
};

/// The backend's parameters; [`Config::default`] is SPEC's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Platform fee in basis points (SPEC §0: 250).
    pub fee_bps: BasisPoints,
    /// An escrow of at least this many major units is high-risk (SPEC §0: 10,000).
    pub high_risk_threshold_major: i128,
    /// ESC-9: seconds an unpaid escrow waits before it expires (72 h).
    pub payment_deadline_seconds: i64,
    /// ESC-12: seconds after delivery before the automatic release (14 days).
    pub auto_release_seconds: i64,
    /// DRL-3: seconds after which a payout with no confirmation is listed as stuck.
    pub stuck_payout_seconds: i64,
    /// The platform's own wallet address for manual payments (PRV-6).
    pub platform_address: String,
    /// Session parameters.
    pub sessions: SessionConfig,
    /// Whether the passkey routes are on (SES-8); a deployment opts in, so they start off.
    #[serde(default)]
    pub passkeys_enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fee_bps: 250,
            high_risk_threshold_major: 10_000,
            payment_deadline_seconds: 72 * 3600,
            auto_release_seconds: 14 * 24 * 3600,
            stuck_payout_seconds: 3600,
            platform_address: "platform-wallet".to_owned(),
            sessions: SessionConfig::default(),
            passkeys_enabled: false,
        }
    }
}

/// A field of an escrow as a request body might name it (AZ-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscrowField {
    /// Free text: the only field a participant may change.
    Description,
    /// Protected.
    State,
    /// Protected.
    BuyerId,
    /// Protected.
    SellerId,
    /// Protected after creation.
    Amount,
    /// Protected: only verified payments change it.
    AmountReceived,
    /// Protected.
    Id,
    /// Protected: another name a client might try for the state.
    Status,
    /// Protected after creation.
    Currency,
    /// Protected: only the server bumps it (ESC-21).
    Version,
    /// Protected: not an escrow field at all, a privilege a client might try to smuggle (AZ-8).
    Role,
    /// Protected: a proof's flag is the server's verdict (PRV-6).
    Flagged,
}

impl EscrowField {
    /// Whether a request may set it.
    pub const fn is_protected(self) -> bool {
        !matches!(self, EscrowField::Description)
    }
}

/// How an admin resolves a dispute (ESC-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Pay the seller.
    Release,
    /// Give the buyer back what was held.
    Refund,
}

/// What a provider's verified notice says happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Money arrived (the provider-confirmed amount).
    Payment(Money),
    /// A payment is seen but not final: never changes anything (WH-9).
    Pending,
    /// The seller's payout was sent (ESC-16).
    PayoutConfirmed,
    /// The buyer's refund was sent (ESC-17).
    RefundConfirmed,
    /// The payout or refund failed (ESC-18).
    PayoutFailed,
}

/// A provider's webhook delivery, reduced to what the server decides on. Byte-level verification is
/// [`crate::webhooks`]'s; here `authentic` is its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notice {
    /// The provider's event key (its deduplication key, WH-4); the entry it causes carries it.
    pub event: String,
    /// The server's own id echoed by the provider: the invoice external id for payments, the payout idempotency key
    /// for payouts and refunds.
    pub reference: String,
    /// What happened.
    pub kind: NoticeKind,
}

/// A request to the backend: who asks (their access token, if any), an optional `If-Match` version, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The caller's access token; `None` for anonymous calls.
    pub auth: Option<AccessToken>,
    /// `If-Match: <version>` (ESC-21).
    pub if_match: Option<u64>,
    /// The operation.
    pub op: Op,
}

impl Request {
    /// A request by the holder of `auth`.
    pub fn by(auth: AccessToken, op: Op) -> Request {
        Request { auth: Some(auth), if_match: None, op }
    }

    /// A request with no session.
    pub fn anonymous(op: Op) -> Request {
        Request { auth: None, if_match: None, op }
    }
}

/// The operations of the model, with their arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Test fixture: create an account with a role (SPEC §11). Needs no session.
    CreateUser {
        /// Its role.
        role: Role,
    },
    /// SES-1.
    SignIn {
        /// The name typed.
        name: SignInName,
        /// Whether the password is right.
        password_ok: bool,
        /// The client signing in (for SES-10's per-client limit).
        client: ClientId,
    },
    /// SES-2, SES-3.
    Refresh {
        /// The refresh token presented.
        token: RefreshToken,
    },
    /// SES-4.
    Logout,
    /// SES-5.
    ListSessions,
    /// SES-5.
    RevokeOwnSession {
        /// The session to end.
        session: SessionId,
    },
    /// SES-9.
    StepUp {
        /// Whether the password is right.
        password_ok: bool,
        /// Whether the TOTP code is right.
        totp_ok: bool,
    },
    /// SES-7.
    ChangePassword,
    /// SES-8: a registration challenge for the caller's account.
    PasskeyRegisterOptions,
    /// SES-8: the caller registers a new credential against a registration challenge.
    PasskeyRegister {
        /// The challenge the authenticator signed.
        challenge: Challenge,
        /// The new credential.
        credential: CredentialId,
        /// Whether the authenticator keeps a signature counter (as hardware keys do; synced passkeys send 0). Its
        /// first count is 0 either way, so the model decides nothing by it: it tells a target adapter which kind of
        /// authenticator to play.
        counter: bool,
    },
    /// SES-8: a sign-in challenge (public).
    PasskeySignInOptions,
    /// SES-8: a sign-in with a passkey assertion (public: the assertion authenticates).
    PasskeySignIn {
        /// What the assertion says, and whether its signature verifies.
        assertion: Assertion,
        /// The client signing in (SES-10 counts passkey sign-ins too).
        client: ClientId,
    },
    /// ESC-1.
    CreateEscrow {
        /// The seller.
        seller: UserId,
        /// The price.
        amount: Money,
        /// Who moves the money.
        provider: Provider,
        /// A field the caller tries to set as well (AZ-8).
        extra: Option<EscrowField>,
    },
    /// AZ-2.
    GetEscrow {
        /// The escrow.
        escrow: EscrowId,
    },
    /// AZ-4.
    ListEscrows,
    /// AZ-8.
    UpdateEscrow {
        /// The escrow.
        escrow: EscrowId,
        /// The field the caller tries to change.
        field: EscrowField,
    },
    /// ESC-2, PRV-1, PRV-2, PRV-3.
    StartPayment {
        /// The escrow.
        escrow: EscrowId,
        /// A protected field the caller smuggles into the body (AZ-8).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extra: Option<EscrowField>,
    },
    /// ESC-5, PRV-6.
    SubmitPaymentProof {
        /// The escrow.
        escrow: EscrowId,
        /// The proof.
        proof: Proof,
        /// A protected field the caller smuggles into the body (AZ-8).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extra: Option<EscrowField>,
    },
    /// ESC-8.
    CancelEscrow {
        /// The escrow.
        escrow: EscrowId,
    },
    /// ESC-10.
    MarkDelivered {
        /// The escrow.
        escrow: EscrowId,
    },
    /// ESC-11.
    ConfirmReceipt {
        /// The escrow.
        escrow: EscrowId,
    },
    /// ESC-13.
    OpenDispute {
        /// The escrow.
        escrow: EscrowId,
    },
    /// ESC-15.
    RefundVoluntarily {
        /// The escrow.
        escrow: EscrowId,
    },
    /// ESC-14.
    ResolveDispute {
        /// The escrow.
        escrow: EscrowId,
        /// Release or refund.
        resolution: Resolution,
    },
    /// ESC-6.
    ApproveProof {
        /// The escrow.
        escrow: EscrowId,
    },
    /// ESC-7.
    RejectProof {
        /// The escrow.
        escrow: EscrowId,
    },
    /// AZ-7: the second admin's approval.
    ApprovePending {
        /// The pending approval.
        approval: ApprovalId,
    },
    /// ESC-18, PRV-4.
    RetryPayout {
        /// The escrow.
        escrow: EscrowId,
    },
    /// WH-6.
    ReplayDeadLetter {
        /// The dead letter.
        dead_letter: DeadLetterId,
    },
    /// WH-8 (the secrets themselves are [`crate::webhooks`]'s).
    RotateWebhookSecret {
        /// Whose secret.
        provider: Provider,
    },
    /// SES-7, AZ-7.
    ChangeRole {
        /// The account.
        user: UserId,
        /// Its new role.
        role: Role,
    },
    /// AZ-6.
    DeleteAccount {
        /// The account.
        user: UserId,
    },
    /// SES-5, DRL-5.
    RevokeUserSessions {
        /// The account.
        user: UserId,
    },
    /// DRL-3.
    ListStuckPayouts,
    /// WH-5.
    ListDeadLetters,
    /// AZ-9.
    ReadAuditLog,
    /// LED: a staff read of the ledger (SPEC §11's ledger-read capability).
    ReadLedger,
    /// A provider's webhook delivery (WH, ESC-3/4/16/17/18).
    DeliverWebhook {
        /// The provider.
        provider: Provider,
        /// What it says.
        notice: Notice,
        /// Whether its signature verified.
        authentic: bool,
    },
    /// Environment: a provider goes down or comes back, or is switched off or on.
    SetProviderStatus {
        /// The provider.
        provider: Provider,
        /// Its new status.
        status: ProviderStatus,
    },
    /// Environment: time passes; deadlines fire (ESC-9, ESC-12).
    AdvanceClock {
        /// Seconds.
        seconds: i64,
    },
    /// Environment: the deployment switches passkeys on or off (SES-8); registered credentials are kept.
    SetPasskeys {
        /// On or off.
        enabled: bool,
    },
}

impl Op {
    /// The abstract operation this is, or `None` for test fixtures and environment changes.
    pub fn kind(&self) -> Option<OperationKind> {
        use OperationKind as K;
        Some(match self {
            Op::CreateUser { .. } | Op::SetProviderStatus { .. } | Op::AdvanceClock { .. } | Op::SetPasskeys { .. } => {
                return None;
            }
            Op::SignIn { .. } => K::SignIn,
            Op::Refresh { .. } => K::Refresh,
            Op::Logout => K::Logout,
            Op::ListSessions => K::ListSessions,
            Op::RevokeOwnSession { .. } => K::RevokeOwnSession,
            Op::StepUp { .. } => K::StepUp,
            Op::ChangePassword => K::ChangePassword,
            Op::PasskeyRegisterOptions => K::PasskeyRegisterOptions,
            Op::PasskeyRegister { .. } => K::PasskeyRegister,
            Op::PasskeySignInOptions => K::PasskeySignInOptions,
            Op::PasskeySignIn { .. } => K::PasskeySignIn,
            Op::CreateEscrow { .. } => K::CreateEscrow,
            Op::GetEscrow { .. } => K::GetEscrow,
            Op::ListEscrows => K::ListEscrows,
            Op::UpdateEscrow { .. } => K::UpdateEscrow,
            Op::StartPayment { .. } => K::StartPayment,
            Op::SubmitPaymentProof { .. } => K::SubmitPaymentProof,
            Op::CancelEscrow { .. } => K::CancelEscrow,
            Op::MarkDelivered { .. } => K::MarkDelivered,
            Op::ConfirmReceipt { .. } => K::ConfirmReceipt,
            Op::OpenDispute { .. } => K::OpenDispute,
            Op::RefundVoluntarily { .. } => K::RefundVoluntarily,
            Op::ResolveDispute { .. } => K::ResolveDispute,
            Op::ApproveProof { .. } => K::ApproveProof,
            Op::RejectProof { .. } => K::RejectProof,
            Op::ApprovePending { .. } => K::ApprovePending,
            Op::RetryPayout { .. } => K::RetryPayout,
            Op::ReplayDeadLetter { .. } => K::ReplayDeadLetter,
            Op::RotateWebhookSecret { .. } => K::RotateWebhookSecret,
            Op::ChangeRole { .. } => K::ChangeRole,
            Op::DeleteAccount { .. } => K::DeleteAccount,
            Op::RevokeUserSessions { .. } => K::RevokeUserSessions,
            Op::ListStuckPayouts => K::ListStuckPayouts,
            Op::ListDeadLetters => K::ListDeadLetters,
            Op::ReadAuditLog => K::ReadAuditLog,
            Op::ReadLedger => K::ReadLedger,
            Op::DeliverWebhook { .. } => K::DeliverWebhook,
        })
    }

    /// The escrow the operation names, if it names one.
    pub fn escrow(&self) -> Option<EscrowId> {
        match self {
            Op::GetEscrow { escrow }
            | Op::UpdateEscrow { escrow, .. }
            | Op::StartPayment { escrow, .. }
            | Op::SubmitPaymentProof { escrow, .. }
            | Op::CancelEscrow { escrow }
            | Op::MarkDelivered { escrow }
            | Op::ConfirmReceipt { escrow }
            | Op::OpenDispute { escrow }
            | Op::RefundVoluntarily { escrow }
            | Op::ResolveDispute { escrow, .. }
            | Op::ApproveProof { escrow }
            | Op::RejectProof { escrow }
            | Op::RetryPayout { escrow } => Some(*escrow),
            _ => None,
        }
    }
}

/// What an accepted request returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accepted {
    /// A new account.
    User(UserId),
    /// New tokens (sign-in, refresh).
    Tokens(Tokens),
    /// A passkey ceremony's challenge (SES-8).
    Challenge(Challenge),
    /// An escrow (created, read or changed).
    Escrow(EscrowId),
    /// A filtered list of escrows.
    Escrows(Vec<EscrowId>),
    /// The caller's sessions.
    Sessions(Vec<SessionSummary>),
    /// 202: the first half of a two-person action (AZ-7).
    PendingApproval(ApprovalId),
    /// Done, nothing to return.
    Done,
    /// A webhook already applied: success, no second effect (WH-3, WH-4).
    Duplicate,
    /// A webhook answered with success but kept for review (unknown invoice, wrong currency, closed escrow).
    DeadLettered(DeadLetterId),
    /// Escrows whose payout waits longer than the threshold.
    StuckPayouts(Vec<EscrowId>),
    /// The dead letters.
    DeadLetters(Vec<DeadLetterId>),
    /// The number of audit records.
    AuditLog(usize),
}

/// What the world says to a request.
pub type Outcome = Result<Accepted, Refusal>;

/// An account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord {
    /// Its role now.
    pub role: Role,
    /// Deleted accounts cannot authenticate.
    pub deleted: bool,
}

/// What a pending two-person approval will do (AZ-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingAction {
    /// Resolve a high-risk dispute.
    Resolve {
        /// The escrow.
        escrow: EscrowId,
        /// How.
        resolution: Resolution,
    },
    /// Approve a flagged proof, or any proof of a high-risk escrow.
    ApproveProof {
        /// The escrow.
        escrow: EscrowId,
    },
    /// Grant the admin role.
    GrantAdmin {
        /// The account.
        user: UserId,
    },
}

/// Where a two-person approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a second admin.
    Pending,
    /// Carried out.
    Executed,
    /// Voided: its requester's sessions were revoked (DRL-5), or its escrow moved on.
    Void,
}

/// A two-person approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    /// Its id.
    pub id: ApprovalId,
    /// What it does.
    pub action: PendingAction,
    /// The first admin.
    pub requested_by: UserId,
    /// Where it stands.
    pub status: ApprovalStatus,
}

/// One audit record (AZ-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The request's id, in arrival order.
    pub request: u64,
    /// Who called, if authenticated.
    pub actor: Option<UserId>,
    /// With which session.
    pub session: Option<SessionId>,
    /// What they called.
    pub action: OperationKind,
    /// The escrow it concerned.
    pub escrow: Option<EscrowId>,
    /// Accepted, pending, or refused and why.
    pub outcome: Result<(), Refusal>,
    /// Whether the session had a valid step-up.
    pub stepped_up: bool,
    /// When.
    pub time: Timestamp,
}

/// A webhook kept for review (WH-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id.
    pub id: DeadLetterId,
    /// The provider.
    pub provider: Provider,
    /// The delivery.
    pub notice: Notice,
    /// Whether it verified.
    pub authentic: bool,
    /// Why it is here.
    pub reason: crate::webhooks::DeadLetterReason,
    /// When it arrived.
    pub time: Timestamp,
    /// The deduplication key's resolution when the delivery got past deduplication and was booked (to suspense,
    /// or not at all): a replay is then the same event, a duplicate, even if its invoice exists by now.
    pub booked_as: Option<Option<EscrowId>>,
}

/// A payout (or refund) the server asked a provider for (PRV-4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRequest {
    /// For which escrow.
    pub escrow: EscrowId,
    /// Its idempotency key.
    pub key: String,
    /// How much.
    pub amount: Money,
    /// A refund to the buyer rather than a payout to the seller.
    pub refund: bool,
    /// When.
    pub time: Timestamp,
}

/// A change of an escrow that realtime must announce (RT-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowUpdate {
    /// The escrow.
    pub escrow: EscrowId,
    /// Its new state.
    pub state: EscrowState,
    /// Its new version.
    pub version: u64,
}

/// The backend.
#[derive(Debug, Clone)]
pub struct World {
    config: Config,
    now: Timestamp,
    requests: u64,
    users: Vec<UserRecord>,
    sessions: SessionStore,
    passkeys: PasskeyRegistry,
    escrows: Vec<Escrow>,
    ledger: Ledger,
    approvals: Vec<Approval>,
    audit: Vec<AuditRecord>,
    dead_letters: Vec<DeadLetter>,
    /// Provider events applied, keyed as the provider's own deduplication key is: the event and the server object
    /// it names (SHKeeper's external id and txid). An event that named no known invoice or payout is a different
    /// event from one that does: on the wire they carry different external ids.
    processed_events: HashSet<(Provider, String, Option<EscrowId>)>,
    used_tx_hashes: HashSet<String>,
    invoices: HashMap<String, EscrowId>,
    providers: [ProviderStatus; 3],
    payout_requests: Vec<PayoutRequest>,
    updates: Vec<EscrowUpdate>,
    fired: Vec<(EscrowId, &'static Transition)>,
}

fn provider_index(provider: Provider) -> usize {
    match provider {
        Provider::Shkeeper => 0,
        Provider::RequestNetwork => 1,
        Provider::ManualWallet => 2,
    }
}

/// How the caller authenticated, for the request at hand.
#[derive(Debug, Clone, Copy)]
struct Caller {
    principal: Principal,
    session: Option<SessionId>,
}

impl World {
    /// A backend with no accounts, at time `now`.
    pub fn new(config: Config, now: Timestamp) -> World {
        World {
            sessions: SessionStore::new(config.sessions),
            passkeys: PasskeyRegistry::new(config.passkeys_enabled),
            config,
            now,
            requests: 0,
            users: Vec::new(),
            escrows: Vec::new(),
            ledger: Ledger::new(),
            approvals: Vec::new(),
            audit: Vec::new(),
            dead_letters: Vec::new(),
            processed_events: HashSet::new(),
            used_tx_hashes: HashSet::new(),
            invoices: HashMap::new(),
            providers: [ProviderStatus::default(); 3],
            payout_requests: Vec::new(),
            updates: Vec::new(),
            fired: Vec::new(),
        }
    }

    /// The stateright-style transition: the world after `request`, or `None` when it is refused.
    pub fn next_state(&self, request: &Request) -> Option<World> {
        let mut next = self.clone();
        next.apply(request).ok().map(|_| next)
    }

    /// Applies a request. A refusal changes nothing but the audit log and the dead letters (see the module docs).
    pub fn apply(&mut self, request: &Request) -> Outcome {
        self.requests += 1;
        self.updates.clear();
        self.fired.clear();
        // Deadlines hold whenever their condition does, not only when the clock moves: an escrow returned to
        // awaiting_payment after its deadline expires before the next request is judged.
        self.fire_deadlines();
        let caller = self.authenticate(request.auth);
        let outcome = match caller {
            Ok(caller) => self.dispatch(caller, request),
            // A token was presented but is not valid: public operations ignore it, others are refused (AZ-1).
            Err(refusal) => match request.op.kind().map(OperationKind::class) {
                Some(OperationClass::Public) | None => {
                    self.dispatch(Caller { principal: Principal::Anonymous, session: None }, request)
                }
                Some(_) => Err(refusal),
            },
        };
        if let Some(kind) = request.op.kind()
            && kind.class() == OperationClass::AdminStepUp
        {
            let caller = caller.ok();
            let (actor, stepped_up) = match caller.map(|c| c.principal) {
                Some(Principal::Signed { user, step_up_at, .. }) => {
                    (Some(user), crate::authz::step_up_valid(step_up_at, self.now))
                }
                _ => (None, false),
            };
            self.audit.push(AuditRecord {
                request: self.requests,
                actor,
                session: caller.and_then(|c| c.session),
                action: kind,
                escrow: request.op.escrow(),
                outcome: outcome.as_ref().map(|_| ()).map_err(|r| *r),
                stepped_up,
                time: self.now,
            });
        }
        outcome
    }

    fn authenticate(&self, auth: Option<AccessToken>) -> Result<Caller, Refusal> {
        let Some(token) = auth else { return Ok(Caller { principal: Principal::Anonymous, session: None }) };
        let who = self.sessions.authenticate(token, self.now)?;
        let record = self.users.get(who.user.0 as usize).ok_or(Refusal::Unauthenticated)?;
        if record.deleted {
            return Err(Refusal::Unauthenticated);
        }
        Ok(Caller { principal: who.principal(record.role), session: Some(who.session) })
    }

    fn parties(&self, escrow: EscrowId) -> Option<Parties> {
        self.escrows.get(escrow.0 as usize).map(|e| Parties { buyer: e.buyer, seller: e.seller })
    }

    fn dispatch(&mut self, caller: Caller, request: &Request) -> Outcome {
        let now = self.now;
        if let Some(kind) = request.op.kind() {
            // Switched off, the passkey routes do not exist for anyone, signed in or not (SES-8): the switch is
            // checked before who may call them.
            if kind.is_passkey() && !self.passkeys.is_enabled() {
                return Err(Refusal::PasskeysDisabled);
            }
            let parties = request.op.escrow().and_then(|id| self.parties(id));
            authorize(&caller.principal, kind, parties, now)?;
        }
        if let Some(id) = request.op.escrow()
            && let Some(expected) = request.if_match
            && self.escrows[id.0 as usize].version != expected
        {
            return Err(Refusal::VersionMismatch);
        }
        let user = match caller.principal {
            Principal::Signed { user, .. } => Some(user),
            Principal::Anonymous => None,
        };
        // Authorization passed: operations that need a session have one.
        let me = || user.ok_or(Refusal::Unauthenticated);
        let session = || caller.session.ok_or(Refusal::Unauthenticated);
        match &request.op {
            Op::CreateUser { role } => {
                self.users.push(UserRecord { role: *role, deleted: false });
                Ok(Accepted::User(UserId(self.users.len() as u32 - 1)))
            }
            Op::SignIn { name, password_ok, client } => {
                // A deleted or missing account is a name without an account: limited per name like any other.
                let name = match (name, name.user().map(|u| self.users.get(u.0 as usize))) {
                    (SignInName::Account(user), Some(None | Some(UserRecord { deleted: true, .. }))) => {
                        SignInName::Unknown(user.0)
                    }
                    _ => *name,
                };
                self.sessions.sign_in(name, *password_ok, *client, now).map(Accepted::Tokens)
            }
            Op::Refresh { token } => self.sessions.refresh(*token, now).map(Accepted::Tokens),
            Op::Logout => {
                self.sessions.logout(session()?, now);
                Ok(Accepted::Done)
            }
            Op::ListSessions => Ok(Accepted::Sessions(self.sessions.sessions_of(me()?, now))),
            Op::RevokeOwnSession { session } => self.sessions.revoke_own(me()?, *session, now).map(|()| Accepted::Done),
            Op::StepUp { password_ok, totp_ok } => {
                self.sessions.step_up(session()?, *password_ok, *totp_ok, now).map(|()| Accepted::Done)
            }
            Op::ChangePassword => {
                self.sessions.on_password_change(me()?, Some(session()?), now);
                Ok(Accepted::Done)
            }
            Op::PasskeyRegisterOptions => {
                let purpose = ChallengePurpose::Registration { user: me()? };
                Ok(Accepted::Challenge(self.passkeys.issue_challenge(purpose, now)?))
            }
            Op::PasskeyRegister { challenge, credential, .. } => {
                // The registration is checked against the challenge's account after it is made, as the targets do:
                // a challenge of another account never gives the caller a credential.
                let owner = self.passkeys.register(*challenge, *credential, 0, now)?;
                if owner != me()? {
                    return Err(Refusal::InvalidCredentials);
                }
                Ok(Accepted::Done)
            }
            Op::PasskeySignInOptions => {
                Ok(Accepted::Challenge(self.passkeys.issue_challenge(ChallengePurpose::SignIn, now)?))
            }
            Op::PasskeySignIn { assertion, client } => {
                let user = self.passkeys.verify_assertion(*assertion, now)?;
                if self.users.get(user.0 as usize).is_none_or(|u| u.deleted) {
                    return Err(Refusal::InvalidCredentials);
                }
                self.sessions.sign_in_with_passkey(user, *client, now).map(Accepted::Tokens)
            }
            Op::SetPasskeys { enabled } => {
                self.passkeys.set_enabled(*enabled);
                Ok(Accepted::Done)
            }
            Op::CreateEscrow { seller, amount, provider, extra } => {
                self.create_escrow(me()?, *seller, *amount, *provider, *extra)
            }
            Op::GetEscrow { escrow } => Ok(Accepted::Escrow(*escrow)),
            Op::ListEscrows => {
                let (user, staff) = match caller.principal {
                    Principal::Signed { user, role, .. } => (user, role.is_staff()),
                    Principal::Anonymous => return Err(Refusal::Unauthenticated),
                };
                let ids = self.escrows.iter().filter(|e| staff || e.buyer == user || e.seller == user).map(|e| e.id);
                Ok(Accepted::Escrows(ids.collect()))
            }
            Op::UpdateEscrow { escrow, field } => {
                if field.is_protected() {
                    Err(Refusal::ValidationFailed)
                } else if self.escrows[escrow.0 as usize].state.is_terminal() {
                    // A closed escrow never changes again, its description included (ESC-22).
                    Err(Refusal::InvalidTransition)
                } else {
                    Ok(Accepted::Escrow(*escrow))
                }
            }
            // A protected field in the body is refused whole (AZ-8), before the action is looked at.
            Op::StartPayment { extra: Some(field), .. } | Op::SubmitPaymentProof { extra: Some(field), .. }
                if field.is_protected() =>
            {
                Err(Refusal::ValidationFailed)
            }
            Op::StartPayment { escrow, .. } => self.start_payment(*escrow),
            Op::SubmitPaymentProof { escrow, proof, .. } => self.submit_proof(*escrow, proof),
            Op::CancelEscrow { escrow } => {
                let e = &self.escrows[escrow.0 as usize];
                if e.received != 0 {
                    return Err(Refusal::InvalidTransition);
                }
                self.change_state(*escrow, EscrowEvent::Cancel)?;
                Ok(Accepted::Escrow(*escrow))
            }
            Op::MarkDelivered { escrow } => {
                self.change_state(*escrow, EscrowEvent::MarkDelivered)?;
                self.escrows[escrow.0 as usize].delivered_at = Some(now);
                Ok(Accepted::Escrow(*escrow))
            }
            Op::ConfirmReceipt { escrow } => self.release(*escrow, EscrowEvent::ConfirmReceipt),
            Op::OpenDispute { escrow } => {
                self.change_state(*escrow, EscrowEvent::OpenDispute)?;
                Ok(Accepted::Escrow(*escrow))
            }
            Op::RefundVoluntarily { escrow } => self.refund(*escrow, EscrowEvent::RefundVoluntarily),
            Op::ResolveDispute { escrow, resolution } => {
                let event = match resolution {
                    Resolution::Release => EscrowEvent::ResolveRelease,
                    Resolution::Refund => EscrowEvent::ResolveRefund,
                };
                let e = &self.escrows[escrow.0 as usize];
                transition(e.state, event).ok_or(Refusal::InvalidTransition)?;
                if is_high_risk(e.amount, self.config.high_risk_threshold_major) {
                    return Ok(self
                        .request_approval(me()?, PendingAction::Resolve { escrow: *escrow, resolution: *resolution }));
                }
                self.resolve(*escrow, *resolution)
            }
            Op::ApproveProof { escrow } => {
                let e = &self.escrows[escrow.0 as usize];
                transition(e.state, EscrowEvent::ApproveProofPartial).ok_or(Refusal::InvalidTransition)?;
                let flagged = e.proof.as_ref().is_some_and(|(_, flags)| !flags.is_empty());
                if flagged || is_high_risk(e.amount, self.config.high_risk_threshold_major) {
                    return Ok(self.request_approval(me()?, PendingAction::ApproveProof { escrow: *escrow }));
                }
                self.approve_proof(*escrow)
            }
            Op::RejectProof { escrow } => {
                self.change_state(*escrow, EscrowEvent::RejectProof)?;
                self.escrows[escrow.0 as usize].proof = None;
                Ok(Accepted::Escrow(*escrow))
            }
            Op::ApprovePending { approval } => self.approve_pending(me()?, *approval),
            Op::RetryPayout { escrow } => self.retry_payout(*escrow),
            Op::ReplayDeadLetter { dead_letter } => {
                let letter = self.dead_letters.get(dead_letter.0 as usize).ok_or(Refusal::NotFound)?.clone();
                self.deliver(letter.provider, &letter.notice, letter.authentic, Some(letter.id))
            }
            Op::RotateWebhookSecret { .. } => Ok(Accepted::Done),
            Op::ChangeRole { user, role } => {
                let record = self.users.get(user.0 as usize).ok_or(Refusal::NotFound)?;
                if *role == Role::Admin && record.role != Role::Admin {
                    return Ok(self.request_approval(me()?, PendingAction::GrantAdmin { user: *user }));
                }
                self.users[user.0 as usize].role = *role;
                Ok(Accepted::Done)
            }
            Op::DeleteAccount { user } => {
                self.users.get(user.0 as usize).ok_or(Refusal::NotFound)?;
                // An account with money in an open escrow cannot go: its funds would lose their owner.
                if self.escrows.iter().any(|e| (e.buyer == *user || e.seller == *user) && !e.state.is_terminal()) {
                    return Err(Refusal::InvalidTransition);
                }
                self.users[user.0 as usize].deleted = true;
                self.sessions.revoke_all(*user, now);
                self.void_approvals_of(*user);
                Ok(Accepted::Done)
            }
            Op::RevokeUserSessions { user } => {
                if self.users.get(user.0 as usize).is_none() {
                    return Err(Refusal::NotFound);
                }
                self.sessions.revoke_all(*user, now);
                self.void_approvals_of(*user);
                Ok(Accepted::Done)
            }
            Op::ListStuckPayouts => Ok(Accepted::StuckPayouts(self.stuck_payouts())),
            Op::ListDeadLetters => Ok(Accepted::DeadLetters(self.dead_letters.iter().map(|d| d.id).collect())),
            Op::ReadAuditLog => Ok(Accepted::AuditLog(self.audit.len())),
            Op::ReadLedger => Ok(Accepted::Done),
            Op::DeliverWebhook { provider, notice, authentic } => self.deliver(*provider, notice, *authentic, None),
            Op::SetProviderStatus { provider, status } => {
                self.providers[provider_index(*provider)] = *status;
                Ok(Accepted::Done)
            }
            Op::AdvanceClock { seconds } => {
                self.now = now.plus((*seconds).max(0));
                self.fire_deadlines();
                Ok(Accepted::Done)
            }
        }
    }

    fn create_escrow(
        &mut self,
        buyer: UserId,
        seller: UserId,
        amount: Money,
        provider: Provider,
        extra: Option<EscrowField>,
    ) -> Outcome {
        let seller_ok = self.users.get(seller.0 as usize).is_some_and(|u| !u.deleted);
        let amount_ok = amount.minor > 0 && amount.minor <= amount.currency.max_minor();
        if seller == buyer || !seller_ok || !amount_ok || extra.is_some_and(EscrowField::is_protected) {
            return Err(Refusal::ValidationFailed);
        }
        if !self.providers[provider_index(provider)].enabled {
            return Err(Refusal::ProviderDisabled);
        }
        let id = EscrowId(self.escrows.len() as u32);
        self.escrows.push(Escrow {
            id,
            buyer,
            seller,
            amount,
            provider,
            state: EscrowState::AwaitingPayment,
            version: 1,
            received: 0,
            created_at: self.now,
            delivered_at: None,
            invoice: None,
            invoices_created: 0,
            proof: None,
            payout: None,
        });
        self.updates.push(EscrowUpdate { escrow: id, state: EscrowState::AwaitingPayment, version: 1 });
        self.fired.push((id, &crate::escrow::TRANSITIONS[0]));
        Ok(Accepted::Escrow(id))
    }

    fn start_payment(&mut self, id: EscrowId) -> Outcome {
        let e = &self.escrows[id.0 as usize];
        transition(e.state, EscrowEvent::StartPayment).ok_or(Refusal::InvalidTransition)?;
        let status = self.providers[provider_index(e.provider)];
        if !status.enabled {
            return Err(Refusal::ProviderDisabled);
        }
        if e.provider == Provider::ManualWallet {
            // Instructions only: pay to the platform's address and submit a proof.
            return Ok(Accepted::Escrow(id));
        }
        // A retry with an invoice already bound answers it again without asking the provider (PRV-1), so an outage
        // cannot fail it.
        if !status.available && e.invoice.is_none() {
            return Err(Refusal::ProviderUnavailable);
        }
        let e = &mut self.escrows[id.0 as usize];
        if e.invoice.is_none() {
            let invoice = invoice_external_id(id);
            self.invoices.insert(invoice.clone(), id);
            e.invoice = Some(invoice);
            e.invoices_created += 1;
        }
        self.change_state(id, EscrowEvent::StartPayment)?;
        Ok(Accepted::Escrow(id))
    }

    fn submit_proof(&mut self, id: EscrowId, proof: &Proof) -> Outcome {
        let e = &self.escrows[id.0 as usize];
        if e.provider != Provider::ManualWallet {
            return Err(Refusal::InvalidTransition);
        }
        transition(e.state, EscrowEvent::SubmitProof).ok_or(Refusal::InvalidTransition)?;
        if proof.amount.minor <= 0 {
            return Err(Refusal::ValidationFailed);
        }
        let due = Money::from_minor(e.amount.minor - e.received, e.amount.currency);
        let seen = self.used_tx_hashes.contains(&proof.tx_hash);
        let flags = proof_flags(proof.amount, &proof.destination, due, seen, &self.config.platform_address);
        self.used_tx_hashes.insert(proof.tx_hash.clone());
        self.change_state(id, EscrowEvent::SubmitProof)?;
        self.escrows[id.0 as usize].proof = Some((proof.clone(), flags));
        Ok(Accepted::Escrow(id))
    }

    fn approve_proof(&mut self, id: EscrowId) -> Outcome {
        let e = &self.escrows[id.0 as usize];
        let Some((proof, _)) = e.proof.clone() else { return Err(Refusal::InvalidTransition) };
        transition(e.state, EscrowEvent::ApproveProofPartial).ok_or(Refusal::InvalidTransition)?;
        let cause = Cause::Action(format!("approve-proof:{}:{}", id.0, proof.tx_hash));
        self.book_payment(Provider::ManualWallet, id, proof.amount, cause, None);
        let e = &mut self.escrows[id.0 as usize];
        e.proof = None;
        let event = if e.received >= e.amount.minor {
            EscrowEvent::ApproveProofCompletes
        } else {
            EscrowEvent::ApproveProofPartial
        };
        self.change_state(id, event)?;
        Ok(Accepted::Escrow(id))
    }

    /// Books a payment on an open escrow (allocation of SPEC §2); a wrong currency goes to suspense (LED-10).
    /// Returns whether it went to suspense.
    fn book_payment(
        &mut self,
        provider: Provider,
        id: EscrowId,
        paid: Money,
        cause: Cause,
        invoice: Option<String>,
    ) -> bool {
        let e = &self.escrows[id.0 as usize];
        let allocation = allocate_payment(e.amount, e.received, paid, !e.state.is_terminal());
        let mut postings = vec![Posting::debit(Account::Provider(provider), paid)];
        let credit = |account, minor| Posting::credit(account, Money::from_minor(minor, paid.currency));
        if allocation.to_escrow > 0 {
            postings.push(credit(Account::Escrow(id), allocation.to_escrow));
        }
        if allocation.to_buyer_credit > 0 {
            postings.push(credit(Account::BuyerCredit(e.buyer), allocation.to_buyer_credit));
        }
        if allocation.to_suspense > 0 {
            postings.push(credit(Account::Suspense, allocation.to_suspense));
        }
        // Suspense money belongs to no escrow: a closed escrow never gets another entry (ESC-22); the invoice
        // keeps the trail for review.
        let (kind, escrow) =
            if allocation.to_suspense > 0 { (EntryKind::Unmatched, None) } else { (EntryKind::Payment, Some(id)) };
        self.ledger.append(cause, escrow, self.now, kind, invoice, postings);
        self.escrows[id.0 as usize].received += allocation.to_escrow;
        allocation.to_suspense > 0
    }

    /// Moves an escrow along the table, bumping its version and announcing it (ESC-21, RT-4).
    fn change_state(&mut self, id: EscrowId, event: EscrowEvent) -> Result<(), Refusal> {
        let e = &mut self.escrows[id.0 as usize];
        let row = transition(e.state, event).ok_or(Refusal::InvalidTransition)?;
        self.fired.push((id, row));
        if let Some(to) = row.to
            && to != e.state
        {
            e.state = to;
            e.version += 1;
            self.updates.push(EscrowUpdate { escrow: id, state: to, version: e.version });
        }
        Ok(())
    }

    fn release(&mut self, id: EscrowId, event: EscrowEvent) -> Outcome {
        let e = &self.escrows[id.0 as usize];
        transition(e.state, event).ok_or(Refusal::InvalidTransition)?;
        let postings = release_postings(id, e.amount, self.config.fee_bps);
        let payout = Money::from_minor(-postings[1].amount, e.amount.currency);
        let cause = Cause::Action(format!("request-{}", self.requests));
        self.ledger.append(cause, Some(id), self.now, EntryKind::Release, None, postings);
        self.change_state(id, event)?;
        self.request_payout(id, payout, false);
        Ok(Accepted::Escrow(id))
    }

    fn refund(&mut self, id: EscrowId, event: EscrowEvent) -> Outcome {
        let e = &self.escrows[id.0 as usize];
        transition(e.state, event).ok_or(Refusal::InvalidTransition)?;
        let held = Money::from_minor(e.received, e.amount.currency);
        let postings = vec![Posting::debit(Account::Escrow(id), held), Posting::credit(Account::Refund(id), held)];
        let cause = Cause::Action(format!("request-{}", self.requests));
        self.ledger.append(cause, Some(id), self.now, EntryKind::Refund, None, postings);
        self.change_state(id, event)?;
        self.request_payout(id, held, true);
        Ok(Accepted::Escrow(id))
    }

    fn request_payout(&mut self, id: EscrowId, amount: Money, refund: bool) {
        self.escrows[id.0 as usize].payout = Some(PayoutProgress { requested_at: self.now, attempts: 1, failures: 0 });
        self.payout_requests.push(PayoutRequest {
            escrow: id,
            key: payout_idempotency_key(id),
            amount,
            refund,
            time: self.now,
        });
    }

    fn resolve(&mut self, id: EscrowId, resolution: Resolution) -> Outcome {
        match resolution {
            Resolution::Release => self.release(id, EscrowEvent::ResolveRelease),
            Resolution::Refund => self.refund(id, EscrowEvent::ResolveRefund),
        }
    }

    fn retry_payout(&mut self, id: EscrowId) -> Outcome {
        let e = &mut self.escrows[id.0 as usize];
        transition(e.state, EscrowEvent::PayoutFailed).ok_or(Refusal::InvalidTransition)?;
        let Some(progress) = e.payout.as_mut() else { return Err(Refusal::InvalidTransition) };
        progress.attempts += 1;
        let previous = self.payout_requests.iter().rev().find(|r| r.escrow == id).cloned();
        if let Some(mut request) = previous {
            request.time = self.now;
            self.payout_requests.push(request);
        }
        Ok(Accepted::Escrow(id))
    }

    fn request_approval(&mut self, requester: UserId, action: PendingAction) -> Accepted {
        let id = ApprovalId(self.approvals.len() as u32);
        self.approvals.push(Approval { id, action, requested_by: requester, status: ApprovalStatus::Pending });
        Accepted::PendingApproval(id)
    }

    fn approve_pending(&mut self, approver: UserId, id: ApprovalId) -> Outcome {
        let approval = *self.approvals.get(id.0 as usize).ok_or(Refusal::NotFound)?;
        if approval.status != ApprovalStatus::Pending {
            return Err(Refusal::InvalidTransition);
        }
        if approval.requested_by == approver {
            return Err(Refusal::SameApprover);
        }
        let outcome = match approval.action {
            PendingAction::Resolve { escrow, resolution } => self.resolve(escrow, resolution),
            PendingAction::ApproveProof { escrow } => self.approve_proof(escrow),
            PendingAction::GrantAdmin { user } => {
                self.users[user.0 as usize].role = Role::Admin;
                Ok(Accepted::Done)
            }
        };
        // Executed, or its escrow has moved on and it can never execute.
        self.approvals[id.0 as usize].status =
            if outcome.is_ok() { ApprovalStatus::Executed } else { ApprovalStatus::Void };
        outcome
    }

    fn void_approvals_of(&mut self, user: UserId) {
        for approval in
            self.approvals.iter_mut().filter(|a| a.requested_by == user && a.status == ApprovalStatus::Pending)
        {
            approval.status = ApprovalStatus::Void;
        }
    }

    /// Keeps a failed delivery (WH-5). A replay that fails again stays the one dead letter it already is.
    fn dead_letter(
        &mut self,
        provider: Provider,
        notice: &Notice,
        authentic: bool,
        reason: crate::webhooks::DeadLetterReason,
        replay_of: Option<DeadLetterId>,
        booked_as: Option<Option<EscrowId>>,
    ) -> DeadLetterId {
        if let Some(id) = replay_of {
            return id;
        }
        let id = DeadLetterId(self.dead_letters.len() as u32);
        let time = self.now;
        self.dead_letters.push(DeadLetter { id, provider, notice: notice.clone(), authentic, reason, time, booked_as });
        id
    }

    fn escrow_of_payout_key(&self, key: &str) -> Option<EscrowId> {
        let id: u32 = key.strip_prefix("payout-")?.parse().ok()?;
        (id < self.escrows.len() as u32).then_some(EscrowId(id))
    }

    /// A provider's delivery (WH-3…WH-5, WH-9, ESC-3/4/16/17/18, LED-10).
    fn deliver(
        &mut self,
        provider: Provider,
        notice: &Notice,
        authentic: bool,
        replay_of: Option<DeadLetterId>,
    ) -> Outcome {
        use crate::webhooks::DeadLetterReason as Reason;
        if !self.providers[provider_index(provider)].enabled {
            self.dead_letter(provider, notice, authentic, Reason::ProviderDisabled, replay_of, None);
            return Err(Refusal::ProviderDisabled);
        }
        if !authentic {
            self.dead_letter(
                provider,
                notice,
                authentic,
                Reason::AuthenticationFailed("signature".to_owned()),
                replay_of,
                None,
            );
            return Err(Refusal::WebhookUnauthenticated);
        }
        let booked = replay_of.and_then(|id| self.dead_letters.get(id.0 as usize)).and_then(|d| d.booked_as);
        let resolved = booked.unwrap_or_else(|| match notice.kind {
            NoticeKind::Payment(_) | NoticeKind::Pending => self.invoices.get(&notice.reference).copied(),
            NoticeKind::PayoutConfirmed | NoticeKind::RefundConfirmed | NoticeKind::PayoutFailed => {
                self.escrow_of_payout_key(&notice.reference).filter(|id| self.escrows[id.0 as usize].payout.is_some())
            }
        });
        if !self.processed_events.insert((provider, notice.event.clone(), resolved)) {
            return Ok(Accepted::Duplicate);
        }
        let cause = Cause::ProviderEvent { provider, event: notice.event.clone() };
        match &notice.kind {
            NoticeKind::Pending => Ok(Accepted::Done),
            NoticeKind::Payment(paid) => {
                let Some(id) = self.invoices.get(&notice.reference).copied() else {
                    let postings = vec![
                        Posting::debit(Account::Provider(provider), *paid),
                        Posting::credit(Account::Suspense, *paid),
                    ];
                    self.ledger.append(
                        cause,
                        None,
                        self.now,
                        EntryKind::Unmatched,
                        Some(notice.reference.clone()),
                        postings,
                    );
                    return Ok(Accepted::DeadLettered(self.dead_letter(
                        provider,
                        notice,
                        authentic,
                        Reason::UnknownInvoice,
                        replay_of,
                        Some(resolved),
                    )));
                };
                let state = self.escrows[id.0 as usize].state;
                let to_suspense = self.book_payment(provider, id, *paid, cause, Some(notice.reference.clone()));
                if to_suspense {
                    let reason = if state.is_terminal() { Reason::ProcessingFailed } else { Reason::CurrencyMismatch };
                    return Ok(Accepted::DeadLettered(self.dead_letter(
                        provider,
                        notice,
                        authentic,
                        reason,
                        replay_of,
                        Some(resolved),
                    )));
                }
                let e = &self.escrows[id.0 as usize];
                if state == EscrowState::AwaitingPayment {
                    let event = if e.received >= e.amount.minor {
                        EscrowEvent::PaymentCompletes
                    } else {
                        EscrowEvent::PaymentPartial
                    };
                    self.change_state(id, event)?;
                }
                Ok(Accepted::Escrow(id))
            }
            NoticeKind::PayoutConfirmed | NoticeKind::RefundConfirmed | NoticeKind::PayoutFailed => {
                let escrow = self.escrow_of_payout_key(&notice.reference);
                let applied = escrow.and_then(|id| self.apply_payout_notice(id, &notice.kind, cause));
                match applied {
                    Some(id) => Ok(Accepted::Escrow(id)),
                    None => Ok(Accepted::DeadLettered(self.dead_letter(
                        provider,
                        notice,
                        authentic,
                        Reason::ProcessingFailed,
                        replay_of,
                        Some(resolved),
                    ))),
                }
            }
        }
    }

    fn apply_payout_notice(&mut self, id: EscrowId, kind: &NoticeKind, cause: Cause) -> Option<EscrowId> {
        let e = &self.escrows[id.0 as usize];
        let request = self.payout_requests.iter().rev().find(|r| r.escrow == id)?.clone();
        let (event, account, entry_kind) = match kind {
            NoticeKind::PayoutConfirmed => {
                (EscrowEvent::PayoutConfirmed, Account::Payout(id), EntryKind::PayoutConfirmed)
            }
            NoticeKind::RefundConfirmed => {
                (EscrowEvent::RefundConfirmed, Account::Refund(id), EntryKind::RefundConfirmed)
            }
            _ => {
                self.change_state(id, EscrowEvent::PayoutFailed).ok()?;
                if let Some(progress) = self.escrows[id.0 as usize].payout.as_mut() {
                    progress.failures += 1;
                }
                return Some(id);
            }
        };
        transition(e.state, event)?;
        let postings = vec![
            Posting::debit(account, request.amount),
            Posting::credit(Account::Provider(e.provider), request.amount),
        ];
        self.ledger.append(cause, Some(id), self.now, entry_kind, None, postings);
        self.change_state(id, event).ok()?;
        Some(id)
    }

    fn fire_deadlines(&mut self) {
        let now = self.now;
        for i in 0..self.escrows.len() {
            let e = &self.escrows[i];
            let id = e.id;
            if e.state == EscrowState::AwaitingPayment
                && e.received == 0
                && now.seconds_since(e.created_at) >= self.config.payment_deadline_seconds
            {
                // The table allows it from here; a refusal cannot happen.
                let _ = self.change_state(id, EscrowEvent::Expire);
            } else if e.state == EscrowState::Delivered
                && e.delivered_at.is_some_and(|at| now.seconds_since(at) >= self.config.auto_release_seconds)
            {
                let _ = self.release(id, EscrowEvent::AutoRelease);
            }
        }
    }

    fn stuck_payouts(&self) -> Vec<EscrowId> {
        self.escrows
            .iter()
            .filter(|e| matches!(e.state, EscrowState::ReleasePending | EscrowState::RefundPending))
            .filter(|e| {
                e.payout.is_some_and(|p| self.now.seconds_since(p.requested_at) >= self.config.stuck_payout_seconds)
            })
            .map(|e| e.id)
            .collect()
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Every escrow, by id.
    pub fn escrows(&self) -> &[Escrow] {
        &self.escrows
    }

    /// One escrow.
    pub fn escrow(&self, id: EscrowId) -> Option<&Escrow> {
        self.escrows.get(id.0 as usize)
    }

    /// One account.
    pub fn user(&self, id: UserId) -> Option<&UserRecord> {
        self.users.get(id.0 as usize)
    }

    /// The session store.
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// Every two-person approval.
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// The audit log.
    pub fn audit_log(&self) -> &[AuditRecord] {
        &self.audit
    }

    /// The dead letters.
    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.dead_letters
    }

    /// Every payout and refund request sent to providers, retries included.
    pub fn payout_requests(&self) -> &[PayoutRequest] {
        &self.payout_requests
    }

    /// The escrow updates the last request caused, in order (RT-4).
    pub fn last_updates(&self) -> &[EscrowUpdate] {
        &self.updates
    }

    /// The rows of the transition table the last request fired, in order (for coverage).
    pub fn last_transitions(&self) -> &[(EscrowId, &'static Transition)] {
        &self.fired
    }

    /// A provider's status.
    pub fn provider_status(&self, provider: Provider) -> ProviderStatus {
        self.providers[provider_index(provider)]
    }

    /// The facts of every escrow, for the invariants.
    pub fn escrow_facts(&self) -> Vec<EscrowFacts> {
        self.escrows
            .iter()
            .map(|e| EscrowFacts {
                id: e.id,
                state: e.state,
                version: e.version,
                amount: e.amount,
                fee_bps: self.config.fee_bps,
                received: Some(e.received),
                invoice: e.invoice.clone(),
            })
            .collect()
    }

    /// Runs `f` on an observation of the ledger as it is now.
    pub fn observe<R>(&self, f: impl FnOnce(&Observation<'_>) -> R) -> R {
        let facts = self.escrow_facts();
        let balances = self.ledger.raw_balances();
        f(&Observation { entries: self.ledger.entries(), balances: &balances, escrows: &facts })
    }
}

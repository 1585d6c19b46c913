//! The backend's whole state behind one mutex, built from the reference model's parts: a change of state and its
//! ledger entry happen in one critical section (LED-8), and webhook deduplication is decided in the same critical
//! section as the effect (WH-4, LED-6). Everything here is synchronous; provider calls happen outside the lock.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use conform_reference::authz::{Parties, Principal, Role, authorize};
use conform_reference::escrow::{Escrow, EscrowEvent, EscrowState, PayoutProgress, Proof, transition};
use conform_reference::ids::{EscrowId, SessionId, Timestamp, UserId};
use conform_reference::ledger::{Account, Cause, Entry, EntryKind, Ledger, Posting, Provider, release_postings};
use conform_reference::money::Money;
use conform_reference::ops::{OperationClass, OperationKind};
use conform_reference::providers::{ProofFlag, allocate_payment, is_high_risk, payout_idempotency_key, proof_flags};
use conform_reference::refusal::Refusal;
use conform_reference::sessions::{
    AccessToken, Challenge, ClientId, CredentialId, PasskeyRegistry, RefreshToken, SessionConfig, SessionStore,
    SignInName, Tokens,
};
use conform_reference::webhooks::{
    self, DeadLetterCapture, DeadLetterReason, DedupKey, Headers, NoticeKind, PaymentNotice, SecretRing, VerifyError,
    VerifyOptions,
};
use conform_reference::world::{ApprovalStatus, PendingAction, Resolution};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::config::TargetConfig;
use crate::faults::{Fault, FaultSet};
use crate::realtime_api::{Identity, RealtimeAuthority, RealtimeEvent};
use crate::util::{ApiError, ct_eq, hash_password, opaque_token, random_bytes, rfc3339, system_now, totp, uuid_v4};

/// What every handler shares.
pub(crate) struct Shared {
    pub cfg: TargetConfig,
    pub faults: FaultSet,
    pub state: Mutex<State>,
    pub http: reqwest::Client,
    pub callback_base: String,
}

impl Shared {
    /// The state, even after a panic elsewhere poisoned the lock (the state is still consistent: every
    /// critical section checks completely before it writes).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An account.
pub(crate) struct UserRec {
    pub public: String,
    pub email: String,
    pub salt: [u8; 16],
    pub pw_hash: [u8; 32],
    pub totp: Option<Vec<u8>>,
    pub role: Role,
    pub deleted: bool,
    pub created_at: i64,
}

/// What the store does not keep about a session.
pub(crate) struct SessionMeta {
    pub public: String,
    pub user: UserId,
    pub role_at_sign_in: Role,
    pub created_at: i64,
    pub last_used_at: i64,
    pub user_agent: Option<String>,
    pub current_refresh: RefreshToken,
    /// Fault `logout-keeps-access-token`: the refresh token was switched off instead of the session revoked.
    pub refresh_disabled: bool,
}

/// A payment proof (ESC-5, PRV-6).
#[derive(Clone)]
pub(crate) struct ProofRec {
    pub public: String,
    pub tx_hash: String,
    pub amount: Money,
    pub destination: String,
    pub flags: Vec<ProofFlag>,
    pub status: &'static str,
    pub submitted_at: i64,
}

/// The payout or refund under way (PRV-4, ESC-18).
#[derive(Clone)]
pub(crate) struct PayoutRec {
    pub refund: bool,
    pub amount: Money,
    pub key: String,
    pub attempts: u32,
    pub status: &'static str,
    pub requested_at: i64,
    pub last_error: Option<String>,
}

/// An escrow with what the wire shows besides the model's record.
pub(crate) struct EscrowRec {
    pub m: Escrow,
    pub public: String,
    pub description: String,
    pub updated_at: i64,
    pub fee: Option<i128>,
    pub proofs: Vec<ProofRec>,
    pub instructions: Option<Value>,
    pub payout: Option<PayoutRec>,
}

/// A two-person approval (AZ-7).
pub(crate) struct ApprovalRec {
    pub public: String,
    pub action: PendingAction,
    pub params: Value,
    pub target: String,
    pub requested_by: UserId,
    pub requested_at: i64,
    pub status: ApprovalStatus,
}

/// An audit record (AZ-9).
pub(crate) struct AuditRec {
    pub id: u64,
    pub time: i64,
    pub actor: Option<UserId>,
    pub session: Option<SessionId>,
    pub action: OperationKind,
    pub target: String,
    pub outcome: &'static str,
    pub refusal: Option<&'static str>,
    pub step_up_at: Option<i64>,
    pub approval: Option<String>,
    pub request_id: String,
}

/// Which endpoint a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Shkeeper,
    RequestNetwork,
    Standard(String),
}

impl Route {
    pub fn scheme(&self) -> webhooks::Provider {
        match self {
            Route::Shkeeper => webhooks::Provider::Shkeeper,
            Route::RequestNetwork => webhooks::Provider::RequestNetwork,
            Route::Standard(_) => webhooks::Provider::StandardWebhooks,
        }
    }

    /// The provider whose account the money is booked on, when the endpoint names one.
    pub fn provider(&self) -> Option<Provider> {
        match self {
            Route::Shkeeper => Some(Provider::Shkeeper),
            Route::RequestNetwork => Some(Provider::RequestNetwork),
            Route::Standard(name) => Provider::ALL.into_iter().find(|p| p.name() == name),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Route::Shkeeper => "shkeeper",
            Route::RequestNetwork => "request_network",
            Route::Standard(name) => name,
        }
    }
}

/// A dead letter (WH-5).
pub(crate) struct DeadLetterRec {
    pub public: String,
    pub route: Route,
    pub capture: DeadLetterCapture,
    pub reason_code: &'static str,
    pub authentic: bool,
    pub replayed_at: Option<i64>,
}

/// A payout or refund to ask a provider for, outside the lock.
#[derive(Debug, Clone)]
pub(crate) struct PayoutJob {
    pub escrow: EscrowId,
    pub provider: Provider,
    pub key: String,
    pub amount: Money,
    pub destination: String,
}

/// The signed-in caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub user: UserId,
    pub session: SessionId,
    pub role: Role,
    pub step_up_at: Option<Timestamp>,
}

impl Caller {
    pub fn principal(&self) -> Principal {
        Principal::Signed { user: self.user, role: self.role, step_up_at: self.step_up_at }
    }
}

/// Outcome of a webhook's checks.
pub(crate) struct Checked {
    pub notice: PaymentNotice,
    pub keys: Vec<DedupKey>,
}

/// The backend.
pub(crate) struct State {
    pub cfg: TargetConfig,
    pub faults: FaultSet,
    pub events: broadcast::Sender<RealtimeEvent>,
    pub clock_offset: i64,
    pub requests: u64,
    pub users: Vec<UserRec>,
    pub user_by_public: HashMap<String, UserId>,
    pub user_by_email: HashMap<String, UserId>,
    pub sessions: SessionStore,
    pub session_meta: Vec<SessionMeta>,
    pub session_by_public: HashMap<String, SessionId>,
    pub access: HashMap<String, (AccessToken, i64)>,
    pub refresh: HashMap<String, RefreshToken>,
    pub unknown_names: HashMap<String, u32>,
    pub clients: HashMap<String, u32>,
    pub account_step_up: HashMap<UserId, i64>,
    pub escrows: Vec<EscrowRec>,
    pub escrow_by_public: HashMap<String, EscrowId>,
    pub ledger: Ledger,
    pub invoices: HashMap<String, EscrowId>,
    pub used_tx_hashes: HashSet<String>,
    pub processed: HashSet<DedupKey>,
    pub approvals: Vec<ApprovalRec>,
    pub approval_by_public: HashMap<String, usize>,
    pub audit: Vec<AuditRec>,
    pub dead_letters: Vec<DeadLetterRec>,
    pub rings: HashMap<Route, SecretRing>,
    pub outbox: Vec<PayoutJob>,
    pub passkeys: PasskeyRegistry,
    pub passkey_challenges: HashMap<String, Challenge>,
    pub passkey_credentials: HashMap<Vec<u8>, (CredentialId, Vec<u8>)>,
}

fn wire_flag(flag: ProofFlag) -> &'static str {
    match flag {
        ProofFlag::TxHashReused => "reused_tx_hash",
        other => other.name(),
    }
}

fn dead_letter_code(reason: &DeadLetterReason, error: Option<&VerifyError>) -> &'static str {
    match reason {
        DeadLetterReason::AuthenticationFailed(_) => match error {
            Some(VerifyError::TimestampOutsideTolerance { .. }) => "stale_timestamp",
            _ => "invalid_signature",
        },
        DeadLetterReason::Malformed(_) => "malformed",
        DeadLetterReason::UnknownInvoice => "unknown_invoice",
        DeadLetterReason::ProviderDisabled => "provider_disabled",
        DeadLetterReason::CurrencyMismatch => "currency_mismatch",
        DeadLetterReason::ProcessingFailed => "processing_error",
    }
}

impl State {
    pub fn new(cfg: TargetConfig, events: broadcast::Sender<RealtimeEvent>) -> State {
        let faults = cfg.faults.clone();
        let mut sessions = SessionConfig::default();
        if faults.is_on(Fault::NoSignInRateLimit) {
            sessions.sign_in_limit = u32::MAX;
        }
        let mut rings = HashMap::new();
        rings.insert(Route::Shkeeper, SecretRing::new(cfg.shkeeper_api_key.as_str()));
        rings.insert(Route::RequestNetwork, SecretRing::new(cfg.request_network_webhook_secret.as_str()));
        for (name, secret) in &cfg.standard_webhook_secrets {
            rings.insert(Route::Standard(name.clone()), SecretRing::new(secret.as_str()));
        }
        State {
            faults,
            events,
            clock_offset: 0,
            requests: 0,
            users: Vec::new(),
            user_by_public: HashMap::new(),
            user_by_email: HashMap::new(),
            sessions: SessionStore::new(sessions),
            session_meta: Vec::new(),
            session_by_public: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            unknown_names: HashMap::new(),
            clients: HashMap::new(),
            account_step_up: HashMap::new(),
            escrows: Vec::new(),
            escrow_by_public: HashMap::new(),
            ledger: Ledger::new(),
            invoices: HashMap::new(),
            used_tx_hashes: HashSet::new(),
            processed: HashSet::new(),
            approvals: Vec::new(),
            approval_by_public: HashMap::new(),
            audit: Vec::new(),
            dead_letters: Vec::new(),
            rings,
            outbox: Vec::new(),
            passkeys: PasskeyRegistry::new(cfg.passkeys_enabled),
            passkey_challenges: HashMap::new(),
            passkey_credentials: HashMap::new(),
            cfg,
        }
    }

    pub fn on(&self, fault: Fault) -> bool {
        self.faults.is_on(fault)
    }

    pub fn now(&self) -> i64 {
        system_now().saturating_add(self.clock_offset)
    }

    pub fn ts(&self) -> Timestamp {
        Timestamp(self.now())
    }

    fn emit(&self, event: RealtimeEvent) {
        // No receiver is not an error: nobody listens yet.
        let _ = self.events.send(event);
    }

    pub fn provider_enabled(&self, provider: Provider) -> bool {
        !self.cfg.disabled_providers.contains(&provider) || self.on(Fault::DisabledProviderAccepts)
    }

    // ---------------------------------------------------------------------------------------------------------
    // Users and sessions

    pub fn create_user(
        &mut self,
        email: &str,
        password: &str,
        role: Role,
        totp: Option<Vec<u8>>,
    ) -> Result<UserId, ApiError> {
        let key = email.to_ascii_lowercase();
        if self.user_by_email.contains_key(&key) {
            return Err(ApiError::validation("an account with this email exists"));
        }
        let id = UserId(self.users.len() as u32);
        let salt = random_bytes::<16>();
        let public = uuid_v4();
        self.users.push(UserRec {
            public: public.clone(),
            email: email.to_owned(),
            salt,
            pw_hash: hash_password(&salt, password),
            totp,
            role,
            deleted: false,
            created_at: self.now(),
        });
        self.user_by_public.insert(public, id);
        self.user_by_email.insert(key, id);
        Ok(id)
    }

    pub fn user_json(&self, id: UserId) -> Value {
        match self.users.get(id.0 as usize) {
            Some(u) => {
                json!({"id": u.public, "email": u.email, "role": u.role.name(), "created_at": rfc3339(u.created_at)})
            }
            None => Value::Null,
        }
    }

    fn password_ok(&self, user: UserId, password: &str) -> bool {
        self.users.get(user.0 as usize).is_some_and(|u| ct_eq(&hash_password(&u.salt, password), &u.pw_hash))
    }

    fn totp_ok(&self, user: UserId, code: &str, now: i64) -> bool {
        let Some(seed) = self.users.get(user.0 as usize).and_then(|u| u.totp.as_ref()) else { return false };
        [-30, 0, 30].iter().any(|d| ct_eq(totp(seed, now + d).as_bytes(), code.as_bytes()))
    }

    fn issue_wire(&mut self, tokens: Tokens, keep_refresh: Option<String>) -> Value {
        let now = self.now();
        let access = opaque_token();
        self.access.insert(access.clone(), (tokens.access, now));
        let refresh = match keep_refresh {
            Some(old) => old,
            None => opaque_token(),
        };
        self.refresh.insert(refresh.clone(), tokens.refresh);
        let meta = &mut self.session_meta[tokens.session.0 as usize];
        meta.current_refresh = tokens.refresh;
        meta.last_used_at = now;
        let user = meta.user;
        let session_public = meta.public.clone();
        json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": tokens.access_expires_at.0 - now,
            "session_id": session_public,
            "user": self.user_json(user),
        })
    }

    pub fn sign_in(
        &mut self,
        email: &str,
        password: &str,
        client: &str,
        user_agent: Option<String>,
    ) -> Result<Value, ApiError> {
        let now = self.ts();
        let key = email.to_ascii_lowercase();
        let user = self.user_by_email.get(&key).copied().filter(|u| !self.users[u.0 as usize].deleted);
        let name = match user {
            Some(u) => SignInName::Account(u),
            None => {
                let next = self.unknown_names.len() as u32;
                SignInName::Unknown(*self.unknown_names.entry(key).or_insert(next))
            }
        };
        let password_ok = match user {
            Some(u) => self.password_ok(u, password),
            None => {
                // The same work as for a real account (SES-1: comparable timing).
                let _ = hash_password(&[0u8; 16], password);
                false
            }
        };
        let client = self.client_id(client);
        let tokens = self.sessions.sign_in(name, password_ok, client, now)?;
        let user = user.ok_or(ApiError::from(Refusal::InvalidCredentials))?;
        self.open_wire_session(tokens, user, user_agent)
    }

    /// The client number of a client address, for the per-client sign-in limit (SES-10).
    pub fn client_id(&mut self, client: &str) -> ClientId {
        let next = self.clients.len() as u32;
        ClientId(*self.clients.entry(client.to_owned()).or_insert(next))
    }

    /// Records a session the store just opened and answers its tokens.
    pub fn open_wire_session(
        &mut self,
        tokens: Tokens,
        user: UserId,
        user_agent: Option<String>,
    ) -> Result<Value, ApiError> {
        let now = self.ts();
        if tokens.session.0 as usize != self.session_meta.len() {
            return Err(ApiError::new(500, "internal", "session numbering out of step"));
        }
        let public = uuid_v4();
        self.session_by_public.insert(public.clone(), tokens.session);
        self.session_meta.push(SessionMeta {
            public,
            user,
            role_at_sign_in: self.users[user.0 as usize].role,
            created_at: now.0,
            last_used_at: now.0,
            user_agent,
            current_refresh: tokens.refresh,
            refresh_disabled: false,
        });
        Ok(self.issue_wire(tokens, None))
    }

    pub fn refresh(&mut self, token: &str) -> Result<Value, ApiError> {
        let now = self.ts();
        let Some(&rt) = self.refresh.get(token) else { return Err(Refusal::InvalidGrant.into()) };
        let Some(session) = self.sessions.session_of_refresh(rt) else { return Err(Refusal::InvalidGrant.into()) };
        let meta = &self.session_meta[session.0 as usize];
        if meta.refresh_disabled {
            return Err(Refusal::InvalidGrant.into());
        }
        if self.on(Fault::RefreshReuseUndetected) && meta.current_refresh != rt {
            return Err(Refusal::InvalidGrant.into());
        }
        let was_revoked = self.sessions.is_revoked(session);
        let result = self.sessions.refresh(rt, now);
        if !was_revoked && self.sessions.is_revoked(session) {
            self.emit(RealtimeEvent::SessionRevoked { session: self.session_meta[session.0 as usize].public.clone() });
        }
        let tokens = result?;
        let keep = self.on(Fault::RefreshNotRotated).then(|| token.to_owned());
        Ok(self.issue_wire(tokens, keep))
    }

    /// The caller behind a bearer token.
    pub fn authenticate_token(&self, token: &str) -> Result<Caller, Refusal> {
        let now = self.ts();
        let &(access, issued_at) = self.access.get(token).ok_or(Refusal::Unauthenticated)?;
        // Fault `expired-access-token-accepted`: the expiry is judged at issue time, so only revocation counts.
        let at = if self.on(Fault::ExpiredAccessTokenAccepted) { Timestamp(issued_at) } else { now };
        let who = self.sessions.authenticate(access, at)?;
        let user = self.users.get(who.user.0 as usize).ok_or(Refusal::Unauthenticated)?;
        if user.deleted {
            return Err(Refusal::Unauthenticated);
        }
        let meta = &self.session_meta[who.session.0 as usize];
        let role = if self.on(Fault::StaleRoleInSession) { meta.role_at_sign_in } else { user.role };
        let mut step_up_at = who.step_up_at;
        if self.on(Fault::StepUpNotSessionBound)
            && let Some(&account) = self.account_step_up.get(&who.user)
        {
            step_up_at = Some(Timestamp(step_up_at.map_or(account, |s| s.0.max(account))));
        }
        Ok(Caller { user: who.user, session: who.session, role, step_up_at })
    }

    pub fn authenticate_header(&mut self, bearer: Option<&str>) -> Result<Caller, Refusal> {
        let token = bearer.ok_or(Refusal::Unauthenticated)?;
        let caller = self.authenticate_token(token)?;
        let now = self.now();
        self.session_meta[caller.session.0 as usize].last_used_at = now;
        Ok(caller)
    }

    /// Authorization (AZ-1…AZ-6) with the faults that bend it.
    pub fn authorize(
        &self,
        caller: Option<&Caller>,
        op: OperationKind,
        parties: Option<Parties>,
    ) -> Result<(), Refusal> {
        let now = self.ts();
        let mut principal = caller.map_or(Principal::Anonymous, Caller::principal);
        if let Principal::Signed { role, step_up_at, .. } = &mut principal {
            if op == OperationKind::GetEscrow && parties.is_some() && self.on(Fault::IdorGetEscrow) {
                return Ok(());
            }
            if op.class() == OperationClass::AdminStepUp && self.on(Fault::StepUpNotChecked) {
                *step_up_at = Some(now);
            }
            if op == OperationKind::ResolveDispute && *role == Role::Support && self.on(Fault::SupportCanResolve) {
                *role = Role::Admin;
            }
        }
        authorize(&principal, op, parties, now)
    }

    fn revoked_event(&self, session: SessionId) {
        if let Some(meta) = self.session_meta.get(session.0 as usize) {
            self.emit(RealtimeEvent::SessionRevoked { session: meta.public.clone() });
        }
    }

    pub fn logout(&mut self, caller: &Caller) {
        if self.on(Fault::LogoutKeepsAccessToken) {
            self.session_meta[caller.session.0 as usize].refresh_disabled = true;
            return;
        }
        let now = self.ts();
        if self.sessions.logout(caller.session, now) {
            self.revoked_event(caller.session);
        }
    }

    pub fn list_sessions(&self, caller: &Caller) -> Value {
        let now = self.ts();
        let items: Vec<Value> = self
            .sessions
            .sessions_of(caller.user, now)
            .into_iter()
            .filter_map(|s| {
                let meta = self.session_meta.get(s.session.0 as usize)?;
                Some(json!({
                    "id": meta.public,
                    "created_at": rfc3339(meta.created_at),
                    "last_used_at": rfc3339(meta.last_used_at),
                    "current": s.session == caller.session,
                    "user_agent": meta.user_agent,
                    "step_up_expires_at": s.step_up_at.map(|t| rfc3339(t.0 + 300)),
                }))
            })
            .collect();
        json!({"sessions": items})
    }

    pub fn revoke_own(&mut self, caller: &Caller, public: &str) -> Result<(), Refusal> {
        let session = self.session_by_public.get(public).copied().ok_or(Refusal::NotFound)?;
        let now = self.ts();
        let was = self.sessions.is_revoked(session);
        self.sessions.revoke_own(caller.user, session, now)?;
        if !was && self.sessions.is_revoked(session) {
            self.revoked_event(session);
        }
        Ok(())
    }

    pub fn step_up(&mut self, caller: &Caller, password: &str, code: &str) -> Result<Value, Refusal> {
        let now = self.now();
        let password_ok = self.password_ok(caller.user, password);
        let totp_ok = self.totp_ok(caller.user, code, now);
        self.sessions.step_up(caller.session, password_ok, totp_ok, Timestamp(now))?;
        if self.on(Fault::StepUpNotSessionBound) {
            self.account_step_up.insert(caller.user, now);
        }
        Ok(json!({
            "session_id": self.session_meta[caller.session.0 as usize].public,
            "stepped_up_at": rfc3339(now),
            "expires_at": rfc3339(now + 300),
        }))
    }

    pub fn change_password(&mut self, caller: &Caller, current: &str, new: &str) -> Result<(), ApiError> {
        if !self.password_ok(caller.user, current) {
            return Err(Refusal::InvalidCredentials.into());
        }
        if new.chars().count() < 12 {
            return Err(ApiError::validation("new_password must have at least 12 characters"));
        }
        let salt = random_bytes::<16>();
        let user = &mut self.users[caller.user.0 as usize];
        user.salt = salt;
        user.pw_hash = hash_password(&salt, new);
        let now = self.ts();
        for s in self.sessions.on_password_change(caller.user, Some(caller.session), now) {
            self.revoked_event(s);
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------------------
    // Escrows

    pub fn escrow_id(&self, public: &str) -> Option<EscrowId> {
        self.escrow_by_public.get(public).copied()
    }

    pub fn parties(&self, id: Option<EscrowId>) -> Option<Parties> {
        id.and_then(|id| self.escrows.get(id.0 as usize)).map(|e| Parties { buyer: e.m.buyer, seller: e.m.seller })
    }

    pub fn user_public(&self, id: UserId) -> String {
        self.users.get(id.0 as usize).map(|u| u.public.clone()).unwrap_or_default()
    }

    pub fn escrow_json(&self, id: EscrowId) -> Value {
        let Some(e) = self.escrows.get(id.0 as usize) else { return Value::Null };
        let m = &e.m;
        let cur = m.amount.currency;
        let deadline = (m.state == EscrowState::AwaitingPayment && m.received == 0)
            .then(|| rfc3339(m.created_at.0 + self.cfg.payment_deadline_seconds));
        let auto_release = (m.state == EscrowState::Delivered)
            .then(|| m.delivered_at.map(|t| rfc3339(t.0 + self.cfg.auto_release_seconds)))
            .flatten();
        json!({
            "id": e.public,
            "buyer_id": self.user_public(m.buyer),
            "seller_id": self.user_public(m.seller),
            "amount": m.amount.to_decimal_string(),
            "currency": cur.code(),
            "provider": m.provider.name(),
            "state": m.state.name(),
            "version": m.version,
            "amount_received": Money::from_minor(m.received, cur).to_decimal_string(),
            "description": e.description,
            "high_risk": is_high_risk(m.amount, self.cfg.high_risk_threshold_major),
            "fee": e.fee.map(|f| Money::from_minor(f, cur).to_decimal_string()),
            "payment_deadline_at": deadline,
            "auto_release_at": auto_release,
            "created_at": rfc3339(m.created_at.0),
            "updated_at": rfc3339(e.updated_at),
        })
    }

    pub fn create_escrow(
        &mut self,
        buyer: UserId,
        seller_public: &str,
        amount: Money,
        provider: Provider,
        description: String,
    ) -> Result<EscrowId, ApiError> {
        let seller = self.user_by_public.get(seller_public).copied();
        let seller_ok = seller.is_some_and(|s| !self.users[s.0 as usize].deleted && s != buyer);
        let Some(seller) = seller.filter(|_| seller_ok) else {
            return Err(ApiError::validation("seller_id must name another existing account"));
        };
        if amount.minor <= 0 || amount.minor > amount.currency.max_minor() {
            return Err(ApiError::validation("amount must be positive and at most 10^12"));
        }
        if !self.provider_enabled(provider) {
            return Err(Refusal::ProviderDisabled.into());
        }
        let id = EscrowId(self.escrows.len() as u32);
        let now = self.now();
        let public = uuid_v4();
        self.escrows.push(EscrowRec {
            m: Escrow {
                id,
                buyer,
                seller,
                amount,
                provider,
                state: EscrowState::AwaitingPayment,
                version: 1,
                received: 0,
                created_at: Timestamp(now),
                delivered_at: None,
                invoice: None,
                invoices_created: 0,
                proof: None,
                payout: None,
            },
            public: public.clone(),
            description,
            updated_at: now,
            fee: None,
            proofs: Vec::new(),
            instructions: None,
            payout: None,
        });
        self.escrow_by_public.insert(public, id);
        self.announce(id);
        Ok(id)
    }

    fn announce(&self, id: EscrowId) {
        let e = &self.escrows[id.0 as usize];
        self.emit(RealtimeEvent::EscrowUpdated {
            escrow_id: e.public.clone(),
            state: e.m.state.name(),
            version: e.m.version,
            buyer: self.user_public(e.m.buyer),
            seller: self.user_public(e.m.seller),
        });
    }

    /// Sets the state (no table check: callers checked), bumping the version and announcing it.
    pub fn set_state(&mut self, id: EscrowId, to: EscrowState) {
        let now = self.now();
        let e = &mut self.escrows[id.0 as usize];
        if e.m.state != to {
            e.m.state = to;
            e.m.version += 1;
            e.updated_at = now;
            self.announce(id);
        }
    }

    /// Moves an escrow along the table (ESC-19, ESC-21).
    pub fn change_state(&mut self, id: EscrowId, event: EscrowEvent) -> Result<(), Refusal> {
        let e = &self.escrows[id.0 as usize];
        let row = transition(e.m.state, event).ok_or(Refusal::InvalidTransition)?;
        let to = row.to.unwrap_or(e.m.state);
        self.set_state(id, to);
        Ok(())
    }

    /// Looks up an escrow for a participant or staff operation: authorization first (ESC-20), then If-Match.
    pub fn escrow_for(
        &self,
        caller: &Caller,
        op: OperationKind,
        public: &str,
        if_match: Option<u64>,
    ) -> Result<EscrowId, Refusal> {
        let id = self.escrow_id(public);
        self.authorize(Some(caller), op, self.parties(id))?;
        let id = id.ok_or(Refusal::NotFound)?;
        if let Some(expected) = if_match
            && self.escrows[id.0 as usize].m.version != expected
        {
            return Err(Refusal::VersionMismatch);
        }
        Ok(id)
    }

    /// Writes the release of an escrow: entry, state, payout request (LED-8: one critical section).
    pub fn write_release(&mut self, id: EscrowId, cause: String) {
        let now = self.now();
        let (amount, provider, seller) = {
            let e = &self.escrows[id.0 as usize].m;
            (e.amount, e.provider, e.seller)
        };
        let mut postings = release_postings(id, amount, self.cfg.fee_bps);
        if self.on(Fault::FeeRoundedUp) {
            let exact = amount.minor * i128::from(self.cfg.fee_bps);
            let fee = exact.div_euclid(10_000) + i128::from(exact.rem_euclid(10_000) != 0);
            postings[1].amount = -(amount.minor - fee);
            postings[2].amount = -fee;
        }
        if provider == Provider::RequestNetwork && self.on(Fault::RequestNetworkFeeSkipped) {
            // The defect: the seller is paid the whole amount, the fee posting is left out.
            postings[1].amount = -amount.minor;
            postings.truncate(2);
        }
        let fee = postings.get(2).map_or(0, |p| -p.amount);
        let payout = Money::from_minor(-postings[1].amount, amount.currency);
        self.ledger.append(Cause::Action(cause), Some(id), Timestamp(now), EntryKind::Release, None, postings);
        self.escrows[id.0 as usize].fee = Some(fee);
        self.set_state(id, EscrowState::ReleasePending);
        let destination = format!("seller:{}", self.user_public(seller));
        self.request_payout(id, provider, payout, false, destination);
    }

    /// Writes the refund of what is held.
    pub fn write_refund(&mut self, id: EscrowId, cause: String) {
        let now = self.now();
        let (held, provider, buyer) = {
            let e = &self.escrows[id.0 as usize].m;
            (Money::from_minor(e.received, e.amount.currency), e.provider, e.buyer)
        };
        let postings = vec![Posting::debit(Account::Escrow(id), held), Posting::credit(Account::Refund(id), held)];
        self.ledger.append(Cause::Action(cause), Some(id), Timestamp(now), EntryKind::Refund, None, postings);
        self.set_state(id, EscrowState::RefundPending);
        let destination = format!("buyer:{}", self.user_public(buyer));
        self.request_payout(id, provider, held, true, destination);
    }

    fn request_payout(&mut self, id: EscrowId, provider: Provider, amount: Money, refund: bool, destination: String) {
        let now = self.now();
        let key = payout_idempotency_key(id);
        let e = &mut self.escrows[id.0 as usize];
        e.m.payout = Some(PayoutProgress { requested_at: Timestamp(now), attempts: 1, failures: 0 });
        e.payout = Some(PayoutRec {
            refund,
            amount,
            key: key.clone(),
            attempts: 1,
            status: "requested",
            requested_at: now,
            last_error: None,
        });
        self.outbox.push(PayoutJob { escrow: id, provider, key, amount, destination });
    }

    pub fn release(&mut self, id: EscrowId, event: EscrowEvent, cause: String) -> Result<(), Refusal> {
        let state = self.escrows[id.0 as usize].m.state;
        let faulty_ok = (event == EscrowEvent::ConfirmReceipt
            && state == EscrowState::RefundPending
            && self.on(Fault::ReleaseAfterRefund))
            || (event == EscrowEvent::AutoRelease
                && state == EscrowState::Disputed
                && self.on(Fault::AutoReleaseDuringDispute));
        if !faulty_ok {
            transition(state, event).ok_or(Refusal::InvalidTransition)?;
        }
        self.write_release(id, cause);
        Ok(())
    }

    pub fn refund(&mut self, id: EscrowId, event: EscrowEvent, cause: String) -> Result<(), Refusal> {
        transition(self.escrows[id.0 as usize].m.state, event).ok_or(Refusal::InvalidTransition)?;
        self.write_refund(id, cause);
        Ok(())
    }

    pub fn request_cause(&mut self) -> String {
        self.requests += 1;
        format!("request-{}", uuid_v4())
    }

    /// ESC-9 and ESC-12, applied lazily.
    pub fn fire_deadlines(&mut self) {
        let now = self.now();
        for i in 0..self.escrows.len() {
            let id = EscrowId(i as u32);
            let e = &self.escrows[i].m;
            let auto_releasable = e.state == EscrowState::Delivered
                || (e.state == EscrowState::Disputed && self.on(Fault::AutoReleaseDuringDispute));
            if e.state == EscrowState::AwaitingPayment
                && (e.received == 0 || self.on(Fault::PartiallyPaidEscrowExpires))
                && now - e.created_at.0 >= self.cfg.payment_deadline_seconds
            {
                let _ = self.change_state(id, EscrowEvent::Expire);
            } else if auto_releasable && e.delivered_at.is_some_and(|at| now - at.0 >= self.cfg.auto_release_seconds) {
                let cause = format!("auto-release-{}", self.escrows[i].public);
                let _ = self.release(id, EscrowEvent::AutoRelease, cause);
            }
        }
    }

    /// Books a payment on an escrow (SPEC §2's allocation); returns whether it went to suspense.
    pub fn book_payment(
        &mut self,
        provider: Provider,
        id: EscrowId,
        paid: Money,
        cause: Cause,
        invoice: Option<String>,
    ) -> bool {
        let now = self.now();
        let e = &self.escrows[id.0 as usize].m;
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
        let (kind, escrow) =
            if allocation.to_suspense > 0 { (EntryKind::Unmatched, None) } else { (EntryKind::Payment, Some(id)) };
        self.ledger.append(cause, escrow, Timestamp(now), kind, invoice, postings);
        self.escrows[id.0 as usize].m.received += allocation.to_escrow;
        self.escrows[id.0 as usize].updated_at = now;
        allocation.to_suspense > 0
    }

    pub fn submit_proof(&mut self, id: EscrowId, proof: Proof) -> Result<usize, Refusal> {
        let e = &self.escrows[id.0 as usize].m;
        if e.provider != Provider::ManualWallet {
            return Err(Refusal::InvalidTransition);
        }
        transition(e.state, EscrowEvent::SubmitProof).ok_or(Refusal::InvalidTransition)?;
        if proof.amount.minor <= 0 {
            return Err(Refusal::ValidationFailed);
        }
        let due = Money::from_minor(e.amount.minor - e.received, e.amount.currency);
        let seen = self.used_tx_hashes.contains(&proof.tx_hash) && !self.on(Fault::ReusedTxHashNotFlagged);
        let flags = proof_flags(proof.amount, &proof.destination, due, seen, &self.cfg.platform_address);
        self.used_tx_hashes.insert(proof.tx_hash.clone());
        self.change_state(id, EscrowEvent::SubmitProof)?;
        let now = self.now();
        let e = &mut self.escrows[id.0 as usize];
        e.m.proof = Some((proof.clone(), flags.clone()));
        e.proofs.push(ProofRec {
            public: uuid_v4(),
            tx_hash: proof.tx_hash,
            amount: proof.amount,
            destination: proof.destination,
            flags,
            status: "pending_review",
            submitted_at: now,
        });
        Ok(e.proofs.len() - 1)
    }

    /// Clears the flags of the escrow's proof under review (only the `proof-fields-from-body` fault does).
    pub fn clear_proof_flags(&mut self, id: EscrowId) {
        let e = &mut self.escrows[id.0 as usize];
        if let Some((_, flags)) = e.m.proof.as_mut() {
            flags.clear();
        }
        if let Some(p) = e.proofs.last_mut() {
            p.flags.clear();
        }
    }

    pub fn proof_json(&self, id: EscrowId, index: usize) -> Value {
        let e = &self.escrows[id.0 as usize];
        let Some(p) = e.proofs.get(index) else { return Value::Null };
        json!({
            "id": p.public,
            "escrow_id": e.public,
            "tx_hash": p.tx_hash,
            "amount": p.amount.to_decimal_string(),
            "currency": p.amount.currency.code(),
            "destination": p.destination,
            "flagged": !p.flags.is_empty(),
            "flags": p.flags.iter().map(|f| wire_flag(*f)).collect::<Vec<_>>(),
            "status": p.status,
            "submitted_at": rfc3339(p.submitted_at),
        })
    }

    /// The proof under review with this public id.
    pub fn current_proof(&self, id: EscrowId, proof_public: &str) -> Option<usize> {
        let e = &self.escrows[id.0 as usize];
        let last = e.proofs.len().checked_sub(1)?;
        (e.m.proof.is_some() && e.proofs[last].public == proof_public).then_some(last)
    }

    fn set_proof_status(&mut self, id: EscrowId, status: &'static str) {
        if let Some(p) = self.escrows[id.0 as usize]
            .proofs
            .iter_mut()
            .rev()
            .find(|p| matches!(p.status, "pending_review" | "approval_pending"))
        {
            p.status = status;
        }
    }

    pub fn approve_proof(&mut self, id: EscrowId) -> Result<(), Refusal> {
        let e = &self.escrows[id.0 as usize].m;
        let Some((proof, _)) = e.proof.clone() else { return Err(Refusal::InvalidTransition) };
        transition(e.state, EscrowEvent::ApproveProofPartial).ok_or(Refusal::InvalidTransition)?;
        let cause = Cause::Action(format!("approve-proof:{}:{}", self.escrows[id.0 as usize].public, proof.tx_hash));
        self.book_payment(Provider::ManualWallet, id, proof.amount, cause, None);
        let e = &mut self.escrows[id.0 as usize].m;
        e.proof = None;
        let event = if e.received >= e.amount.minor {
            EscrowEvent::ApproveProofCompletes
        } else {
            EscrowEvent::ApproveProofPartial
        };
        self.set_proof_status(id, "approved");
        self.change_state(id, event)
    }

    pub fn reject_proof(&mut self, id: EscrowId) -> Result<(), Refusal> {
        self.change_state(id, EscrowEvent::RejectProof)?;
        self.escrows[id.0 as usize].m.proof = None;
        self.set_proof_status(id, "rejected");
        Ok(())
    }

    pub fn high_risk(&self, id: EscrowId) -> bool {
        is_high_risk(self.escrows[id.0 as usize].m.amount, self.cfg.high_risk_threshold_major)
    }

    pub fn proof_flagged(&self, id: EscrowId) -> bool {
        self.escrows[id.0 as usize].m.proof.as_ref().is_some_and(|(_, flags)| !flags.is_empty())
    }

    // ---------------------------------------------------------------------------------------------------------
    // Approvals and audit

    pub fn request_approval(
        &mut self,
        requester: UserId,
        action: PendingAction,
        target: String,
        params: Value,
    ) -> usize {
        let public = uuid_v4();
        let index = self.approvals.len();
        self.approvals.push(ApprovalRec {
            public: public.clone(),
            action,
            params,
            target,
            requested_by: requester,
            requested_at: self.now(),
            status: ApprovalStatus::Pending,
        });
        self.approval_by_public.insert(public, index);
        if let PendingAction::ApproveProof { escrow } = action {
            self.set_proof_status(escrow, "approval_pending");
        }
        index
    }

    pub fn approval_json(&self, index: usize) -> Value {
        let a = &self.approvals[index];
        let (action, target) = match a.action {
            PendingAction::Resolve { .. } => ("resolve_dispute", &a.target),
            PendingAction::ApproveProof { .. } => ("approve_proof", &a.target),
            PendingAction::GrantAdmin { .. } => ("change_role", &a.target),
        };
        json!({
            "id": a.public,
            "action": action,
            "target_id": target,
            "parameters": a.params,
            "requested_by": self.user_public(a.requested_by),
            "requested_at": rfc3339(a.requested_at),
            "status": match a.status {
                ApprovalStatus::Pending => "pending",
                ApprovalStatus::Executed => "executed",
                ApprovalStatus::Void => "void",
            },
        })
    }

    /// The second admin's approval (AZ-7). Returns the JSON body.
    pub fn approve_pending(&mut self, approver: UserId, public: &str) -> Result<Value, Refusal> {
        let index = *self.approval_by_public.get(public).ok_or(Refusal::NotFound)?;
        let a = &self.approvals[index];
        if a.status != ApprovalStatus::Pending {
            return Err(Refusal::InvalidTransition);
        }
        if a.requested_by == approver && !self.on(Fault::SameAdminApprovesTwice) {
            return Err(Refusal::SameApprover);
        }
        let action = a.action;
        let cause = format!("approval-{public}");
        let outcome = match action {
            PendingAction::Resolve { escrow, resolution: Resolution::Release } => {
                self.release(escrow, EscrowEvent::ResolveRelease, cause).map(|()| Some(escrow))
            }
            PendingAction::Resolve { escrow, resolution: Resolution::Refund } => {
                self.refund(escrow, EscrowEvent::ResolveRefund, cause).map(|()| Some(escrow))
            }
            PendingAction::ApproveProof { escrow } => self.approve_proof(escrow).map(|()| Some(escrow)),
            PendingAction::GrantAdmin { user } => {
                self.set_role(user, Role::Admin);
                Ok(None)
            }
        };
        self.approvals[index].status = if outcome.is_ok() { ApprovalStatus::Executed } else { ApprovalStatus::Void };
        let escrow = outcome?;
        let mut body = json!({"approval": self.approval_json(index)});
        if let Some(escrow) = escrow {
            body["escrow"] = self.escrow_json(escrow);
        }
        if let PendingAction::GrantAdmin { user } = action {
            body["user"] = self.user_json(user);
        }
        Ok(body)
    }

    pub fn set_role(&mut self, user: UserId, role: Role) {
        let rec = &mut self.users[user.0 as usize];
        if rec.role != role {
            rec.role = role;
            let public = rec.public.clone();
            self.emit(RealtimeEvent::RoleChanged { user: public, role });
        }
    }

    pub fn void_approvals_of(&mut self, user: UserId) -> usize {
        let mut n = 0;
        for a in self.approvals.iter_mut().filter(|a| a.requested_by == user && a.status == ApprovalStatus::Pending) {
            a.status = ApprovalStatus::Void;
            n += 1;
        }
        n
    }

    pub fn revoke_all(&mut self, user: UserId) -> usize {
        let now = self.ts();
        let revoked = self.sessions.revoke_all(user, now);
        for &s in &revoked {
            self.revoked_event(s);
        }
        revoked.len()
    }

    /// Records an admin call (AZ-9); with the fault, refusals leave no trace.
    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &mut self,
        caller: Option<&Caller>,
        action: OperationKind,
        target: String,
        outcome: Result<u16, &ApiError>,
        approval: Option<String>,
    ) {
        if outcome.is_err() && self.on(Fault::RefusedAdminCallsNotAudited) {
            return;
        }
        let (outcome, refusal) = match outcome {
            Ok(202) => ("pending_approval", None),
            Ok(_) => ("allowed", None),
            Err(e) => ("refused", Some(e.code)),
        };
        let id = self.audit.len() as u64 + 1;
        let time = self.now();
        self.audit.push(AuditRec {
            id,
            time,
            actor: caller.map(|c| c.user),
            session: caller.map(|c| c.session),
            action,
            target,
            outcome,
            refusal,
            step_up_at: caller.and_then(|c| c.step_up_at).map(|t| t.0),
            approval,
            request_id: uuid_v4(),
        });
    }

    pub fn audit_json(&self, r: &AuditRec) -> Value {
        json!({
            "id": r.id.to_string(),
            "time": rfc3339(r.time),
            "actor_id": r.actor.map(|u| self.user_public(u)),
            "session_id": r.session.and_then(|s| self.session_meta.get(s.0 as usize)).map(|m| m.public.clone()),
            "action": r.action.name(),
            "target": r.target,
            "outcome": r.outcome,
            "refusal": r.refusal,
            "step_up_at": r.step_up_at.map(rfc3339),
            "approval_id": r.approval,
            "request_id": r.request_id,
        })
    }

    // ---------------------------------------------------------------------------------------------------------
    // Payouts

    pub fn payout_json(&self, id: EscrowId) -> Value {
        let e = &self.escrows[id.0 as usize];
        let Some(p) = &e.payout else { return Value::Null };
        json!({
            "escrow_id": e.public,
            "kind": if p.refund { "refund" } else { "release" },
            "amount": p.amount.to_decimal_string(),
            "currency": p.amount.currency.code(),
            "provider": e.m.provider.name(),
            "idempotency_key": p.key,
            "attempts": p.attempts,
            "status": p.status,
            "requested_at": rfc3339(p.requested_at),
            "last_error": p.last_error,
        })
    }

    /// Records a retry and gives the job to send (PRV-4: the same key unless the fault is on).
    pub fn retry_payout(&mut self, id: EscrowId) -> Result<PayoutJob, Refusal> {
        let fault = self.on(Fault::NewPayoutKeyOnRetry);
        let (buyer, seller) = {
            let e = &self.escrows[id.0 as usize].m;
            (self.user_public(e.buyer), self.user_public(e.seller))
        };
        let e = &mut self.escrows[id.0 as usize];
        transition(e.m.state, EscrowEvent::PayoutFailed).ok_or(Refusal::InvalidTransition)?;
        let Some(p) = e.payout.as_mut() else { return Err(Refusal::InvalidTransition) };
        p.attempts += 1;
        if let Some(progress) = e.m.payout.as_mut() {
            progress.attempts += 1;
        }
        // PRV-4: the key is the escrow's, the same on every attempt; the fault makes a new one per retry.
        let key = if fault { format!("{}-retry-{}", p.key, p.attempts) } else { p.key.clone() };
        let destination = if p.refund { format!("buyer:{buyer}") } else { format!("seller:{seller}") };
        Ok(PayoutJob { escrow: id, provider: e.m.provider, key, amount: p.amount, destination })
    }

    /// The result of a payout call.
    pub fn payout_result(&mut self, id: EscrowId, error: Option<String>) {
        if let Some(p) = self.escrows.get_mut(id.0 as usize).and_then(|e| e.payout.as_mut())
            && p.status != "confirmed"
        {
            match error {
                Some(e) => {
                    p.status = "failed";
                    p.last_error = Some(e);
                }
                None => {
                    p.status = "requested";
                    p.last_error = None;
                }
            }
        }
    }

    pub fn stuck(&self, older_than: i64) -> Value {
        let now = self.now();
        let items: Vec<Value> = self
            .escrows
            .iter()
            .filter(|e| matches!(e.m.state, EscrowState::ReleasePending | EscrowState::RefundPending))
            .filter(|e| e.payout.as_ref().is_some_and(|p| now - p.requested_at >= older_than))
            .map(|e| self.payout_json(e.m.id))
            .collect();
        json!({"items": items})
    }

    // ---------------------------------------------------------------------------------------------------------
    // Ledger

    fn account_name(&self, account: Account) -> String {
        let escrow = |id: EscrowId| self.escrows.get(id.0 as usize).map(|e| e.public.clone()).unwrap_or_default();
        match account {
            Account::Provider(p) => format!("provider:{}", p.name()),
            Account::Escrow(id) => format!("escrow:{}", escrow(id)),
            Account::Payout(id) => format!("payout:{}", escrow(id)),
            Account::Refund(id) => format!("refund:{}", escrow(id)),
            Account::BuyerCredit(u) => format!("buyer_credit:{}", self.user_public(u)),
            Account::Suspense => "suspense".to_owned(),
            Account::Fees => "fees".to_owned(),
        }
    }

    pub fn entry_json(&self, entry: &Entry) -> Value {
        let kind = match entry.kind {
            EntryKind::Payment => "payment",
            EntryKind::Unmatched => "suspense",
            EntryKind::Release => "release",
            EntryKind::Refund => "refund",
            EntryKind::PayoutConfirmed => "payout_confirmed",
            EntryKind::RefundConfirmed => "refund_confirmed",
        };
        let postings: Vec<Value> = entry
            .postings
            .iter()
            .map(|p| {
                json!({
                    "account": self.account_name(p.account),
                    "currency": p.currency.code(),
                    "amount": Money::from_minor(p.amount, p.currency).to_decimal_string(),
                })
            })
            .collect();
        json!({
            "id": format!("entry-{}", entry.id.0),
            "cause": entry.cause.to_string(),
            "escrow_id": entry.escrow.and_then(|id| self.escrows.get(id.0 as usize)).map(|e| e.public.clone()),
            "kind": kind,
            "time": rfc3339(entry.time.0),
            "postings": postings,
        })
    }

    // ---------------------------------------------------------------------------------------------------------
    // Webhooks

    pub fn verify_options(&self) -> VerifyOptions {
        let mut options = VerifyOptions::default();
        if self.on(Fault::NoTimestampCheck) {
            options.tolerance_seconds = u32::MAX;
        }
        if self.on(Fault::LegacyApiKeyAccepted) {
            options.allow_legacy_api_key = true;
        }
        options
    }

    /// Keeps a failed delivery (WH-5); with the fault, drops it. Returns its public id.
    pub fn dead_letter(
        &mut self,
        route: &Route,
        reason: DeadLetterReason,
        code: &'static str,
        headers: &[(String, String)],
        body: &[u8],
        authentic: bool,
    ) -> Option<String> {
        if self.on(Fault::DeadLetterDropped) {
            eprintln!("conform-embedded: dropped a failed {} delivery ({reason})", route.name());
            return None;
        }
        let public = uuid_v4();
        let capture = DeadLetterCapture::new(route.scheme(), reason, &Headers::from_owned(headers), body, self.ts());
        self.dead_letters.push(DeadLetterRec {
            public: public.clone(),
            route: route.clone(),
            capture,
            reason_code: code,
            authentic,
            replayed_at: None,
        });
        Some(public)
    }

    pub fn dead_letter_json(&self, d: &DeadLetterRec) -> Value {
        use base64::Engine as _;
        let headers: serde_json::Map<String, Value> =
            d.capture.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        json!({
            "id": d.public,
            "provider": d.route.name(),
            "received_at": rfc3339(d.capture.received_at.0),
            "reason": d.reason_code,
            "detail": d.capture.reason.to_string(),
            "headers": headers,
            "raw_body_base64": base64::engine::general_purpose::STANDARD.encode(&d.capture.body),
            "replayed_at": d.replayed_at.map(rfc3339),
        })
    }

    /// Verifies and parses a delivery. `Err` is the answer to give (the delivery was dead-lettered).
    pub fn webhook_check(
        &mut self,
        route: &Route,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Checked, ApiError> {
        let now = self.ts();
        let Some(ring) = self.rings.get(route) else { return Err(Refusal::NotFound.into()) };
        let view = Headers::from_owned(headers);
        let options = self.verify_options();
        // Fault `signature-over-reserialized-json`: the body is parsed first and the HMAC checked over JSON written
        // back from it.
        let reserialized;
        let signed_bytes: &[u8] = if self.on(Fault::SignatureOverReserializedJson) {
            reserialized = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| serde_json::to_vec(&v).ok())
                .unwrap_or_else(|| body.to_vec());
            &reserialized
        } else {
            body
        };
        let verified = webhooks::verify(route.scheme(), &view, signed_bytes, ring, &options, now);
        let parsed = verified.as_ref().ok().map(|_| webhooks::parse_notice(route.scheme(), &view, body));
        if let Some(provider) = route.provider()
            && !self.provider_enabled(provider)
        {
            let authentic = matches!(parsed, Some(Ok(_)));
            self.dead_letter(route, DeadLetterReason::ProviderDisabled, "provider_disabled", headers, body, authentic);
            return Err(Refusal::ProviderDisabled.into());
        }
        if let Err(error) = verified {
            let reason = error.dead_letter_reason();
            let code = dead_letter_code(&reason, Some(&error));
            self.dead_letter(route, reason, code, headers, body, false);
            // The message names the problem, never a secret (WH-7).
            return Err(ApiError::new(401, "invalid_signature", error.to_string()));
        }
        match parsed {
            Some(Ok(notice)) => {
                let keys = notice.dedup_keys();
                Ok(Checked { notice, keys })
            }
            Some(Err(error)) => {
                let reason = error.dead_letter_reason();
                self.dead_letter(route, reason, "malformed", headers, body, true);
                Err(ApiError::new(400, "malformed", error.to_string()))
            }
            None => Err(Refusal::WebhookMalformed.into()),
        }
    }

    pub fn seen(&self, keys: &[DedupKey]) -> bool {
        !self.on(Fault::NoWebhookDedup) && keys.iter().any(|k| self.processed.contains(k))
    }

    fn escrow_of_payout_key(&self, key: &str) -> Option<EscrowId> {
        let rest = key.strip_prefix("payout-")?;
        let number = rest.split('-').next()?;
        let id: u32 = number.parse().ok()?;
        ((id as usize) < self.escrows.len()).then_some(EscrowId(id))
    }

    fn metadata_escrow(&self, raw: &[u8]) -> Option<EscrowId> {
        let v: Value = serde_json::from_slice(raw).ok()?;
        let named = v
            .get("metadata")
            .and_then(|m| m.get("escrow_id"))
            .or_else(|| v.get("escrow_id"))
            .and_then(Value::as_str)?;
        self.escrow_id(named)
    }

    /// Applies an authenticated, not yet seen notice (ESC-3/4/16/17/18, LED-10, PRV-5). `Err` is the reason to
    /// dead-letter it with (the provider still gets its success status).
    pub fn apply_notice(&mut self, route: &Route, notice: &PaymentNotice, raw: &[u8]) -> Result<(), DeadLetterReason> {
        let now = self.now();
        let bound = self.invoices.get(&notice.invoice).copied();
        match notice.kind {
            NoticeKind::PaymentPending
                if self.on(Fault::LatePendingReopens)
                    && bound.is_some_and(|id| self.escrows[id.0 as usize].m.state == EscrowState::Funded) =>
            {
                // The defect: the notice is taken as the payment's current status, whatever came before it.
                if let Some(id) = bound {
                    self.set_state(id, EscrowState::AwaitingPayment);
                }
                Ok(())
            }
            NoticeKind::PaymentPending | NoticeKind::PaymentFailed => Ok(()),
            NoticeKind::PaymentReceived => {
                let target =
                    if self.on(Fault::EscrowFromWebhookMetadata) { self.metadata_escrow(raw).or(bound) } else { bound };
                let cause_for = |p: Provider| Cause::ProviderEvent { provider: p, event: notice.event_key.to_string() };
                let Some(id) = target else {
                    if let (Some(paid), Some(provider)) = (notice.amount, route.provider()) {
                        let postings = vec![
                            Posting::debit(Account::Provider(provider), paid),
                            Posting::credit(Account::Suspense, paid),
                        ];
                        self.ledger.append(
                            cause_for(provider),
                            None,
                            Timestamp(now),
                            EntryKind::Unmatched,
                            Some(notice.invoice.clone()),
                            postings,
                        );
                    }
                    return Err(DeadLetterReason::UnknownInvoice);
                };
                let (escrow_currency, escrow_provider, state) = {
                    let e = &self.escrows[id.0 as usize].m;
                    (e.amount.currency, e.provider, e.state)
                };
                let provider = route.provider().unwrap_or(escrow_provider);
                let wrong_currency_funds = self.on(Fault::WrongCurrencyFunds);
                let as_escrow_currency =
                    || notice.amount_text.as_deref().and_then(|t| Money::parse(t, escrow_currency).ok());
                let paid = match notice.amount {
                    Some(paid) if paid.currency != escrow_currency && wrong_currency_funds => {
                        as_escrow_currency().unwrap_or(Money::from_minor(paid.minor, escrow_currency))
                    }
                    Some(paid) => paid,
                    None if wrong_currency_funds => as_escrow_currency().ok_or(DeadLetterReason::CurrencyMismatch)?,
                    None => return Err(DeadLetterReason::CurrencyMismatch),
                };
                let to_suspense =
                    self.book_payment(provider, id, paid, cause_for(provider), Some(notice.invoice.clone()));
                if to_suspense {
                    return Err(if state.is_terminal() {
                        DeadLetterReason::ProcessingFailed
                    } else {
                        DeadLetterReason::CurrencyMismatch
                    });
                }
                let e = &self.escrows[id.0 as usize].m;
                if e.state == EscrowState::AwaitingPayment {
                    let complete = e.received >= e.amount.minor || self.on(Fault::PartialPaymentFunds);
                    let event = if complete { EscrowEvent::PaymentCompletes } else { EscrowEvent::PaymentPartial };
                    let _ = self.change_state(id, event);
                }
                Ok(())
            }
            NoticeKind::PayoutConfirmed | NoticeKind::RefundConfirmed | NoticeKind::PayoutFailed => {
                let id =
                    self.escrow_of_payout_key(&notice.invoice).or(bound).ok_or(DeadLetterReason::ProcessingFailed)?;
                let payout = self.escrows[id.0 as usize].payout.clone().ok_or(DeadLetterReason::ProcessingFailed)?;
                let state = self.escrows[id.0 as usize].m.state;
                if notice.kind == NoticeKind::PayoutFailed {
                    transition(state, EscrowEvent::PayoutFailed).ok_or(DeadLetterReason::ProcessingFailed)?;
                    let e = &mut self.escrows[id.0 as usize];
                    if let Some(progress) = e.m.payout.as_mut() {
                        progress.failures += 1;
                    }
                    if let Some(p) = e.payout.as_mut() {
                        p.status = "failed";
                        p.last_error = Some("the provider reported the payout failed".to_owned());
                    }
                    return Ok(());
                }
                if notice.kind == NoticeKind::RefundConfirmed && !payout.refund {
                    return Err(DeadLetterReason::ProcessingFailed);
                }
                let (event, account, kind) = if payout.refund {
                    (EscrowEvent::RefundConfirmed, Account::Refund(id), EntryKind::RefundConfirmed)
                } else {
                    (EscrowEvent::PayoutConfirmed, Account::Payout(id), EntryKind::PayoutConfirmed)
                };
                transition(state, event).ok_or(DeadLetterReason::ProcessingFailed)?;
                let provider = self.escrows[id.0 as usize].m.provider;
                let postings = vec![
                    Posting::debit(account, payout.amount),
                    Posting::credit(Account::Provider(provider), payout.amount),
                ];
                let cause = Cause::ProviderEvent {
                    provider: route.provider().unwrap_or(provider),
                    event: notice.event_key.to_string(),
                };
                self.ledger.append(cause, Some(id), Timestamp(now), kind, None, postings);
                let _ = self.change_state(id, event);
                if let Some(p) = self.escrows[id.0 as usize].payout.as_mut() {
                    p.status = "confirmed";
                    p.last_error = None;
                }
                Ok(())
            }
        }
    }

    /// Inserts the keys and applies; the answer's status word and whether it was dead-lettered.
    pub fn webhook_apply(
        &mut self,
        route: &Route,
        checked: &Checked,
        headers: &[(String, String)],
        body: &[u8],
    ) -> &'static str {
        for key in &checked.keys {
            self.processed.insert(key.clone());
        }
        match self.apply_notice(route, &checked.notice, body) {
            Ok(()) => "accepted",
            Err(reason) => {
                let code = dead_letter_code(&reason, None);
                self.dead_letter(route, reason, code, headers, body, true);
                "dead_lettered"
            }
        }
    }

    /// Replays a dead letter (WH-6) as the reference model does: its stored verdict stands (an unauthenticated
    /// delivery is refused again, a disabled provider's too); an authentic one goes through deduplication, so its
    /// effect happens at most once and a second replay is a duplicate.
    pub fn replay(&mut self, public: &str) -> Result<Value, ApiError> {
        let index = self.dead_letters.iter().position(|d| d.public == public).ok_or(Refusal::NotFound)?;
        let now = self.now();
        let (route, headers, body, authentic) = {
            let d = &self.dead_letters[index];
            (d.route.clone(), d.capture.headers.clone(), d.capture.body.clone(), d.authentic)
        };
        if route.provider().is_some_and(|p| !self.provider_enabled(p)) {
            return Err(Refusal::ProviderDisabled.into());
        }
        if !authentic {
            return Err(ApiError::new(401, "invalid_signature", "the dead letter did not authenticate"));
        }
        let view = Headers::from_owned(&headers);
        let outcome = match webhooks::parse_notice(route.scheme(), &view, &body) {
            Err(_) => "failed",
            Ok(notice) => {
                let keys = notice.dedup_keys();
                if self.seen(&keys) {
                    "duplicate"
                } else {
                    for key in &keys {
                        self.processed.insert(key.clone());
                    }
                    // A replay that fails again stays the one dead letter it already is.
                    match self.apply_notice(&route, &notice, &body) {
                        Ok(()) => "applied",
                        Err(_) => "failed",
                    }
                }
            }
        };
        let d = &mut self.dead_letters[index];
        d.replayed_at = Some(now);
        Ok(json!({"dead_letter": self.dead_letter_json(&self.dead_letters[index]), "outcome": outcome}))
    }

    pub fn rotate(&mut self, route: &Route, secret: String, overlap: u32) -> Value {
        let now = self.now();
        let overlap = if self.on(Fault::OldSecretAfterRotation) { u32::MAX } else { overlap };
        match self.rings.get_mut(route) {
            Some(ring) => ring.rotate(secret.as_str(), Timestamp(now), overlap),
            None => {
                self.rings.insert(route.clone(), SecretRing::new(secret.as_str()));
            }
        }
        json!({
            "provider": route.name(),
            "rotated_at": rfc3339(now),
            "old_secret_valid_until": rfc3339(now.saturating_add(i64::from(overlap))),
        })
    }

    /// The endpoint whose secret a rotation names: SHKeeper, Request Network, a configured Standard Webhooks
    /// provider, or any other provider of the model (the manual wallet), which gets a Standard Webhooks endpoint.
    pub fn route_named(&self, name: &str) -> Option<Route> {
        let route = match name {
            "shkeeper" => Route::Shkeeper,
            "request_network" => Route::RequestNetwork,
            other => Route::Standard(other.to_owned()),
        };
        let known = self.rings.contains_key(&route) || Provider::ALL.iter().any(|p| p.name() == name);
        known.then_some(route)
    }

    // ---------------------------------------------------------------------------------------------------------
    // Realtime

    pub fn identity(&self, token: &str) -> Option<Identity> {
        let caller = self.authenticate_token(token).ok()?;
        Some(Identity {
            user: self.user_public(caller.user),
            session: self.session_meta[caller.session.0 as usize].public.clone(),
            role: caller.role,
        })
    }
}

/// The realtime layer's view of the backend.
pub(crate) struct Authority(pub std::sync::Arc<Shared>);

impl RealtimeAuthority for Authority {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        self.0.lock().identity(token)
    }

    fn may_subscribe(&self, identity: &Identity, escrow_id: &str) -> bool {
        let st = self.0.lock();
        let Some(&user) = st.user_by_public.get(&identity.user) else { return false };
        let Some(rec) = st.users.get(user.0 as usize).filter(|u| !u.deleted) else { return false };
        let role = if st.on(Fault::StaleRoleInSession) { identity.role } else { rec.role };
        let Some(id) = st.escrow_id(escrow_id) else { return false };
        let e = &st.escrows[id.0 as usize].m;
        role.is_staff() || e.buyer == user || e.seller == user
    }

    fn current_role(&self, user: &str) -> Option<Role> {
        let st = self.0.lock();
        let &id = st.user_by_public.get(user)?;
        st.users.get(id.0 as usize).filter(|u| !u.deleted).map(|u| u.role)
    }
}

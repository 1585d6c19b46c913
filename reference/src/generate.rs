//! Generated scenarios: sequences of steps by a fixed cast of actors, and the [`Script`] that turns each step into
//! a [`Request`] using what earlier outcomes returned (tokens, escrow ids, approval ids).
//!
//! Steps name actors relative to an escrow ("its buyer", "a stranger", "the second admin"), so most generated
//! calls are made by someone who could rightfully make them and the machine gets deep into its states, while
//! wrong callers, stale tokens, duplicates, out-of-order and wrong-currency deliveries still come often. The same
//! script drives the model alone and, through the oracle, any target.

use proptest::prelude::*;
use proptest::sample::SizeRange;
use serde::{Deserialize, Serialize};

use crate::authz::Role;
use crate::escrow::Proof;
use crate::ids::SessionId;
use crate::ids::{ApprovalId, DeadLetterId, EscrowId, UserId};
use crate::ledger::Provider;
use crate::money::{Currency, Money};
use crate::providers::{ProviderStatus, invoice_external_id, payout_idempotency_key};
use crate::sessions::{AccessToken, Assertion, Challenge, ClientId, CredentialId, RefreshToken, SignInName, Tokens};

/// The next request of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// The actor is not ready (no live session, or a rightful admin without a fresh step-up): make this request,
    /// observe its outcome, and plan the step again.
    Prepare(Request),
    /// The step's own request.
    Call(Request),
}
use crate::world::{Accepted, EscrowField, Notice, NoticeKind, Op, Outcome, Request, Resolution, World};

/// The roles of the cast, by index: three users, support, and two admins (two-person approvals need two).
pub const CAST: [Role; 6] = [Role::User, Role::User, Role::User, Role::Support, Role::Admin, Role::Admin];

/// Who makes a call, relative to the escrow the step names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// Whoever may rightfully do the act: the buyer pays, confirms and cancels, the seller delivers and refunds,
    /// the first admin resolves and approves.
    Rightful,
    /// The escrow's buyer.
    Buyer,
    /// The escrow's seller.
    Seller,
    /// The user of the cast who is neither.
    Stranger,
    /// The support member.
    Support,
    /// The first admin.
    AdminA,
    /// The second admin.
    AdminB,
    /// Nobody signed in.
    Anonymous,
}

/// An escrow action of a participant or an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscrowAct {
    /// ESC-2.
    StartPayment,
    /// ESC-8.
    Cancel,
    /// ESC-10.
    MarkDelivered,
    /// ESC-11.
    ConfirmReceipt,
    /// ESC-13.
    OpenDispute,
    /// ESC-15.
    RefundVoluntarily,
    /// ESC-14.
    Resolve(Resolution),
    /// ESC-6.
    ApproveProof,
    /// ESC-7.
    RejectProof,
    /// ESC-18.
    RetryPayout,
    /// AZ-2.
    Get,
    /// AZ-8.
    Update(EscrowField),
    /// AZ-8: start_payment with a protected field in its body (the authorization matrix's; never generated).
    StartPaymentWith(EscrowField),
    /// AZ-8: an exact payment proof with a protected field in its body (the matrix's; never generated).
    SubmitProofWith(EscrowField),
    /// ESC-5: `tx` picks a transaction hash from a small pool (so reuse happens), `exact` pays what is due.
    SubmitProof {
        /// Index into a pool of four hashes.
        tx: u8,
        /// Claim exactly what is due (else half).
        exact: bool,
        /// Claim the platform's address (else another).
        right_destination: bool,
        /// Claim another currency than the escrow's (DRL-4). The generated scenarios never do: the drills do, and a
        /// step without the field (an older replay file) claims the escrow's currency.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        wrong_currency: bool,
    },
}

/// How much a provider payment brings, relative to what is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Portion {
    /// What is still due.
    Due,
    /// Half of it (a partial payment).
    Half,
    /// What is due and a tenth more (an overpayment).
    Over,
}

/// One generated step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A cast member signs in (right or wrong password).
    SignIn {
        /// Cast index.
        actor: u8,
        /// Right password.
        password_ok: bool,
    },
    /// A cast member refreshes; `reuse` presents the previous, already rotated refresh token.
    Refresh {
        /// Cast index.
        actor: u8,
        /// Present the used token instead of the current one.
        reuse: bool,
    },
    /// A cast member signs out.
    Logout {
        /// Cast index.
        actor: u8,
    },
    /// A cast member steps up.
    StepUp {
        /// Cast index.
        actor: u8,
        /// Both factors right.
        ok: bool,
    },
    /// A user creates an escrow with another cast member as seller.
    Create {
        /// Cast index of the buyer.
        buyer: u8,
        /// Cast index of the seller.
        seller: u8,
        /// Price in major units.
        major: i128,
        /// Index into [`Currency::ALL`].
        currency: u8,
        /// The provider.
        provider: Provider,
        /// A protected field smuggled into the body (AZ-8).
        extra: Option<EscrowField>,
    },
    /// Someone acts on an escrow.
    Act {
        /// Which escrow, by creation order (modulo the count).
        escrow: u8,
        /// Who.
        who: Who,
        /// What.
        act: EscrowAct,
    },
    /// Someone lists escrows.
    List {
        /// Who.
        who: Who,
    },
    /// An admin gives the second approval to a pending action.
    ApprovePending {
        /// Which approval, by creation order (modulo the count).
        approval: u8,
        /// Which admin.
        second: bool,
    },
    /// An admin changes a cast member's role.
    ChangeRole {
        /// Cast index.
        target: u8,
        /// New role.
        role: Role,
    },
    /// An admin revokes every session of a cast member.
    RevokeSessions {
        /// Cast index.
        target: u8,
    },
    /// An admin replays a dead letter.
    ReplayDeadLetter {
        /// Which, by creation order (modulo the count).
        dead_letter: u8,
    },
    /// A provider delivers a payment for an escrow's invoice.
    Pay {
        /// Which escrow.
        escrow: u8,
        /// How much.
        portion: Portion,
        /// In another currency than the escrow's.
        wrong_currency: bool,
        /// The event id, from a small pool, so that the same event comes again.
        event: u8,
        /// Whether the signature verifies.
        authentic: bool,
    },
    /// A provider says a payment is pending (possibly after it was paid: out of order).
    PaymentPending {
        /// Which escrow.
        escrow: u8,
        /// The event id.
        event: u8,
    },
    /// A provider reports on an escrow's payout or refund.
    PayoutNotice {
        /// Which escrow.
        escrow: u8,
        /// Confirmed (payout or refund, as the escrow needs) or failed.
        confirmed: bool,
        /// The event id.
        event: u8,
    },
    /// A provider goes down, comes back, or is switched off or on.
    ProviderStatus {
        /// Which.
        provider: Provider,
        /// Its status.
        status: ProviderStatus,
    },
    /// Time passes.
    Clock {
        /// Seconds.
        seconds: i64,
    },
    /// SES-8: a cast member registers a passkey: a registration challenge, then the new credential.
    PasskeyRegister {
        /// Cast index.
        actor: u8,
        /// The authenticator keeps a signature counter (else it always sends 0, as synced passkeys do).
        counter: bool,
    },
    /// SES-8: a passkey sign-in (a sign-in challenge first, when none is pending), with a passkey registered in
    /// this scenario.
    PasskeySignIn {
        /// Which passkey, by registration order from the latest backwards (modulo the count).
        passkey: u8,
        /// What the authenticator sends.
        assertion: PasskeyAssertion,
    },
    /// Environment: the deployment switches passkeys on or off (a test fixture of the target).
    Passkeys {
        /// On or off.
        enabled: bool,
    },
    /// Someone calls an operation that is not about one escrow's life (sessions, listings, administration); the
    /// authorization matrix probes every principal class with these.
    Call {
        /// Who, relative to the latest escrow (buyer and seller are the first two users when there is none).
        who: Who,
        /// What.
        call: Call,
    },
}

/// The assertion of a [`Step::PasskeySignIn`] (SES-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyAssertion {
    /// The passkey signs a fresh challenge, its counter one above its last.
    Genuine,
    /// The passkey's previous assertion, sent again as it was (its challenge already used).
    Replayed,
    /// Signed by another authenticator's key over a fresh challenge, naming this passkey's credential.
    OtherKey,
    /// A credential the relying party never registered signs a fresh challenge.
    Unregistered,
    /// The passkey signs a fresh challenge with a counter one below the last one the relying party accepted (a
    /// cloned authenticator); only for a counting passkey accepted at least twice.
    CounterBack,
    /// The credential of the latest refused registration (while passkeys were off, say) signs a fresh challenge:
    /// it must not have been created.
    RefusedRegistration,
}

/// The counter an authenticator playing [`PasskeyAssertion::OtherKey`] sends: far above any a genuine passkey of a
/// scenario reaches, so that only the signature can give the forgery away.
pub const OTHER_KEY_COUNT: u32 = (1 << 30) + 1;

/// An operation of [`Step::Call`]. Operations on a user act on the third user of the cast, who is party to no
/// escrow of the matrix's scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// SES-4.
    Logout,
    /// SES-5.
    ListSessions,
    /// SES-5: the caller's own session (an anonymous caller names the first user's).
    RevokeOwnSession,
    /// SES-7.
    ChangePassword,
    /// SES-9.
    StepUp,
    /// ESC-1: an escrow with another user of the cast as seller.
    CreateEscrow,
    /// AZ-4.
    ListEscrows,
    /// AZ-7: the latest pending approval.
    ApprovePending,
    /// WH-6: the first dead letter.
    ReplayDeadLetter,
    /// WH-8: Request Network's secret (the generated scenarios never deliver its webhooks).
    RotateWebhookSecret,
    /// SES-7: the third user becomes support.
    ChangeRole,
    /// DRL-5: the third user's account.
    DeleteAccount,
    /// SES-5: the third user's sessions.
    RevokeUserSessions,
    /// DRL-3.
    ListStuckPayouts,
    /// WH-5.
    ListDeadLetters,
    /// AZ-9.
    ReadAuditLog,
    /// LED: the ledger, read by staff.
    ReadLedger,
    /// SES-8: a registration challenge for the caller.
    PasskeyRegisterOptions,
    /// SES-8: a new credential (with a counter) registered against the latest registration challenge issued to
    /// the caller, or else the latest issued to anyone.
    PasskeyRegister,
    /// SES-8: a sign-in challenge.
    PasskeySignInOptions,
}

fn cast() -> impl Strategy<Value = u8> {
    0u8..CAST.len() as u8
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        24 => Just(Who::Rightful),
        2 => Just(Who::Buyer),
        2 => Just(Who::Seller),
        1 => Just(Who::Stranger),
        1 => Just(Who::Support),
        1 => Just(Who::AdminA),
        2 => Just(Who::AdminB),
        1 => Just(Who::Anonymous),
    ]
}

/// Mostly the latest escrow, sometimes an older one.
fn escrow_index() -> impl Strategy<Value = u8> {
    prop_oneof![6 => Just(0u8), 1 => any::<u8>()]
}

fn field() -> impl Strategy<Value = EscrowField> {
    prop_oneof![
        Just(EscrowField::Description),
        Just(EscrowField::State),
        Just(EscrowField::BuyerId),
        Just(EscrowField::SellerId),
        Just(EscrowField::Amount),
        Just(EscrowField::AmountReceived),
        Just(EscrowField::Id),
    ]
}

fn resolution() -> impl Strategy<Value = Resolution> {
    prop_oneof![Just(Resolution::Release), Just(Resolution::Refund)]
}

fn provider() -> impl Strategy<Value = Provider> {
    prop_oneof![Just(Provider::Shkeeper), Just(Provider::RequestNetwork), Just(Provider::ManualWallet)]
}

fn act() -> impl Strategy<Value = EscrowAct> {
    prop_oneof![
        6 => Just(EscrowAct::StartPayment),
        2 => Just(EscrowAct::Cancel),
        5 => Just(EscrowAct::MarkDelivered),
        5 => Just(EscrowAct::ConfirmReceipt),
        3 => Just(EscrowAct::OpenDispute),
        2 => Just(EscrowAct::RefundVoluntarily),
        4 => resolution().prop_map(EscrowAct::Resolve),
        4 => Just(EscrowAct::ApproveProof),
        2 => Just(EscrowAct::RejectProof),
        2 => Just(EscrowAct::RetryPayout),
        2 => Just(EscrowAct::Get),
        1 => field().prop_map(EscrowAct::Update),
        4 => (0u8..4, prop::bool::weighted(0.7), prop::bool::weighted(0.8))
            .prop_map(|(tx, exact, right_destination)| EscrowAct::SubmitProof {
                tx,
                exact,
                right_destination,
                wrong_currency: false,
            }),
    ]
}

/// One step, weighted towards progress.
pub fn step() -> impl Strategy<Value = Step> {
    let status = (prop::bool::weighted(0.8), prop::bool::weighted(0.7))
        .prop_map(|(enabled, available)| ProviderStatus { enabled, available });
    prop_oneof![
        3 => (cast(), prop::bool::weighted(0.9)).prop_map(|(actor, password_ok)| Step::SignIn { actor, password_ok }),
        1 => (cast(), prop::bool::weighted(0.3)).prop_map(|(actor, reuse)| Step::Refresh { actor, reuse }),
        1 => cast().prop_map(|actor| Step::Logout { actor }),
        4 => (4u8..6, prop::bool::weighted(0.9)).prop_map(|(actor, ok)| Step::StepUp { actor, ok }),
        2 => (0u8..3, 0u8..3, prop_oneof![8 => 1i128..2_000, 1 => 10_000i128..20_000], 0u8..4, provider(),
              prop::option::weighted(0.1, field()))
            .prop_map(|(buyer, seller, major, currency, provider, extra)| Step::Create { buyer, seller, major, currency, provider, extra }),
        40 => (escrow_index(), who(), act()).prop_map(|(escrow, who, act)| Step::Act { escrow, who, act }),
        1 => who().prop_map(|who| Step::List { who }),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(approval, second)| Step::ApprovePending { approval, second }),
        1 => (cast(), prop_oneof![Just(Role::User), Just(Role::Support), Just(Role::Admin)])
            .prop_map(|(target, role)| Step::ChangeRole { target, role }),
        1 => cast().prop_map(|target| Step::RevokeSessions { target }),
        1 => any::<u8>().prop_map(|dead_letter| Step::ReplayDeadLetter { dead_letter }),
        8 => (escrow_index(), prop_oneof![5 => Just(Portion::Due), 2 => Just(Portion::Half), 1 => Just(Portion::Over)],
               prop::bool::weighted(0.1), 0u8..6, prop::bool::weighted(0.9))
            .prop_map(|(escrow, portion, wrong_currency, event, authentic)| Step::Pay { escrow, portion, wrong_currency, event, authentic }),
        1 => (any::<u8>(), 0u8..6).prop_map(|(escrow, event)| Step::PaymentPending { escrow, event }),
        5 => (escrow_index(), prop::bool::weighted(0.8), 0u8..6).prop_map(|(escrow, confirmed, event)| Step::PayoutNotice { escrow, confirmed, event }),
        1 => (provider(), status).prop_map(|(provider, status)| Step::ProviderStatus { provider, status }),
        3 => prop_oneof![4 => Just(60i64), 3 => Just(400), 2 => Just(3_600), 1 => Just(3 * 86_400), 2 => Just(15 * 86_400)].prop_map(|seconds| Step::Clock { seconds }),
    ]
}

/// A scenario: the cast is created, then the steps run.
pub fn scenario(len: impl Into<SizeRange>) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), len)
}

/// What the script knows of one cast member's session.
#[derive(Debug, Clone, Copy, Default)]
struct Credentials {
    /// The live session, once signed in.
    session: Option<SessionId>,
    /// When, on the script's clock, this session last stepped up.
    step_up_at: Option<i64>,
    access: Option<AccessToken>,
    refresh: Option<RefreshToken>,
    used_refresh: Option<RefreshToken>,
}

/// What the target under test can be made to do beyond its API. Steps it cannot perform are skipped on both sides,
/// so the model never moves where the target cannot follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abilities {
    /// A test clock: time can be advanced (clock steps).
    pub clock: bool,
    /// Providers can be switched off and on (not only made unavailable).
    pub switch_providers: bool,
    /// Providers whose escrows the target can run end to end.
    pub providers: Vec<Provider>,
    /// Providers whose payouts the harness can confirm or fail through a callback; a manual-wallet payout, for
    /// one, has no provider to call back on a target that pays it out by hand.
    pub payout_callbacks: Vec<Provider>,
    /// Providers that tell a target a payment is pending (SHKeeper has no such callback: its invoices only report
    /// payments).
    pub pending_callbacks: Vec<Provider>,
    /// Passkeys are on when a scenario begins (the model's world starts so too).
    pub passkeys: bool,
    /// Passkeys can be switched off and on.
    pub switch_passkeys: bool,
}

impl Default for Abilities {
    fn default() -> Self {
        Abilities {
            clock: true,
            switch_providers: true,
            providers: Provider::ALL.to_vec(),
            payout_callbacks: Provider::ALL.to_vec(),
            pending_callbacks: Provider::ALL.to_vec(),
            passkeys: true,
            switch_passkeys: true,
        }
    }
}

/// Turns steps into requests, learning ids and tokens from outcomes. The cast's users are created first, by the
/// requests of [`Script::setup`].
#[derive(Debug, Clone, Default)]
pub struct Script {
    abilities: Abilities,
    users: Vec<UserId>,
    credentials: Vec<Credentials>,
    escrows: Vec<(EscrowId, u8, u8, Money, Provider)>,
    approvals: Vec<ApprovalId>,
    dead_letters: u32,
    /// Escrows whose start_payment was accepted: their invoice exists at the provider.
    invoiced: Vec<EscrowId>,
    /// Seconds the script has moved the clock forward.
    elapsed: i64,
    /// Escrows whose accepted resolution or refund means the provider owes a refund, not a payout.
    refunding: Vec<EscrowId>,
    /// Registration challenges issued, with the cast member each was issued to.
    registration_challenges: Vec<(u8, Challenge)>,
    /// The sign-in challenge issued and not presented yet.
    sign_in_challenge: Option<Challenge>,
    /// Passkeys registered, in order.
    passkeys: Vec<ScriptPasskey>,
    /// Credentials whose registration was refused, with the cast member who tried.
    refused_registrations: Vec<(u8, CredentialId)>,
    /// Credential ids handed out so far (registered or not).
    credentials_made: u64,
}

/// What the script knows of one registered passkey.
#[derive(Debug, Clone, Copy)]
struct ScriptPasskey {
    /// The cast member it belongs to (its sign-ins come from that member's client).
    actor: u8,
    credential: CredentialId,
    counter: bool,
    /// The highest count the authenticator has signed with.
    signed: u32,
    /// The count the relying party accepted last.
    accepted: u32,
    /// The authenticator's last genuine assertion (its challenge and count), to replay.
    last: Option<(Challenge, u32)>,
}

impl Script {
    /// A script with no cast yet, for a target that can do everything.
    pub fn new() -> Script {
        Script::default()
    }

    /// A script for a target with these abilities.
    pub fn with_abilities(abilities: Abilities) -> Script {
        Script { abilities, ..Script::default() }
    }

    /// The requests that create the cast.
    pub fn setup(&self) -> Vec<Request> {
        CAST.iter().map(|role| Request::anonymous(Op::CreateUser { role: *role })).collect()
    }

    /// Learns from the outcome of a request it produced.
    pub fn observe(&mut self, step: Option<&Step>, request: &Request, outcome: &Outcome) {
        match (request.op.clone(), outcome) {
            (Op::CreateUser { .. }, Ok(Accepted::User(id))) => {
                self.users.push(*id);
                self.credentials.push(Credentials::default());
            }
            (Op::SignIn { name: SignInName::Account(user), .. }, Ok(Accepted::Tokens(tokens))) => {
                self.remember(user, *tokens, false);
            }
            (Op::Refresh { .. }, Ok(Accepted::Tokens(tokens))) => {
                if let Some(Step::Refresh { actor, .. }) = step
                    && let Some(user) = self.users.get(*actor as usize).copied()
                {
                    self.remember(user, *tokens, true);
                }
            }
            (Op::CreateEscrow { amount, provider, .. }, Ok(Accepted::Escrow(id))) => {
                if let Some(Step::Create { buyer, seller, .. }) = step {
                    self.escrows.push((*id, *buyer, *seller, amount, provider));
                }
            }
            (
                Op::RefundVoluntarily { escrow } | Op::ResolveDispute { escrow, resolution: Resolution::Refund },
                Ok(_),
            ) => {
                self.refunding.push(escrow);
                if let Ok(Accepted::PendingApproval(id)) = outcome {
                    self.approvals.push(*id);
                }
            }
            (Op::StartPayment { escrow, .. }, Ok(_)) => self.invoiced.push(escrow),
            (Op::PasskeyRegisterOptions, Ok(Accepted::Challenge(challenge))) => {
                if let Some(actor) = self.actor_of(request.auth) {
                    self.registration_challenges.push((actor, *challenge));
                }
            }
            (Op::PasskeyRegister { challenge, credential, counter }, _) => {
                // Presented once, the challenge is used whatever the outcome.
                self.registration_challenges.retain(|(_, c)| *c != challenge);
                self.credentials_made = self.credentials_made.max(credential.0 + 1);
                let actor = self.actor_of(request.auth).unwrap_or(0);
                if outcome.is_ok() {
                    self.passkeys.push(ScriptPasskey {
                        actor,
                        credential,
                        counter,
                        signed: 0,
                        accepted: 0,
                        last: None,
                    });
                } else {
                    self.refused_registrations.push((actor, credential));
                }
            }
            (Op::PasskeySignInOptions, Ok(Accepted::Challenge(challenge))) => self.sign_in_challenge = Some(*challenge),
            (Op::PasskeySignIn { assertion, .. }, _) => {
                if self.sign_in_challenge == Some(assertion.challenge) {
                    self.sign_in_challenge = None;
                }
                self.credentials_made = self.credentials_made.max(assertion.credential.0 + 1);
                let replayed = matches!(step, Some(Step::PasskeySignIn { assertion: PasskeyAssertion::Replayed, .. }));
                if let Some(passkey) = self.passkeys.iter_mut().find(|p| p.credential == assertion.credential)
                    && assertion.signature_valid
                    && !replayed
                {
                    passkey.signed = passkey.signed.max(assertion.sign_count);
                    passkey.last = Some((assertion.challenge, assertion.sign_count));
                    if outcome.is_ok() {
                        passkey.accepted = assertion.sign_count;
                    }
                }
            }
            (_, Ok(Accepted::PendingApproval(id))) => self.approvals.push(*id),
            (Op::AdvanceClock { seconds }, Ok(_)) => self.elapsed += seconds.max(0),
            (Op::StepUp { .. }, Ok(_)) => {
                if let Some(slot) = self.credentials.iter_mut().find(|c| c.access == request.auth) {
                    slot.step_up_at = Some(self.elapsed);
                }
            }
            // Only a delivery creates a dead letter; a replay that fails again is the one it already was.
            (Op::DeliverWebhook { .. }, Ok(Accepted::DeadLettered(_)) | Err(_)) => self.dead_letters += 1,
            (Op::DeliverWebhook { .. }, _) => {}
            (_, Err(crate::refusal::Refusal::Unauthenticated)) => {
                // The token died (expiry, revocation): sign in again at the next call.
                if let Some(slot) = self.credentials.iter_mut().find(|c| c.access == request.auth && c.access.is_some())
                {
                    slot.access = None;
                }
            }
            _ => {}
        }
    }

    /// The cast member holding this access token.
    fn actor_of(&self, auth: Option<AccessToken>) -> Option<u8> {
        let auth = auth?;
        self.credentials.iter().position(|c| c.access == Some(auth)).map(|i| i as u8)
    }

    /// The latest registration challenge issued to `actor`, or else to anyone.
    fn registration_challenge(&self, actor: Option<u8>) -> Option<Challenge> {
        let own = self.registration_challenges.iter().rev().find(|(a, _)| Some(*a) == actor);
        own.or(self.registration_challenges.last()).map(|(_, c)| *c)
    }

    fn remember(&mut self, user: UserId, tokens: Tokens, rotated: bool) {
        if let Some(index) = self.users.iter().position(|u| *u == user) {
            let slot = &mut self.credentials[index];
            slot.used_refresh = if rotated { slot.refresh } else { None };
            if !rotated {
                slot.step_up_at = None;
            }
            slot.access = Some(tokens.access);
            slot.refresh = Some(tokens.refresh);
            slot.session = Some(tokens.session);
        }
    }

    /// Escrows are named from the latest backwards, so that most steps push one escrow further.
    fn escrow(&self, index: u8) -> Option<(EscrowId, u8, u8, Money, Provider)> {
        let n = self.escrows.len();
        (n > 0).then(|| self.escrows[n - 1 - index as usize % n])
    }

    fn actor_index(&self, who: Who, act: Option<EscrowAct>, buyer: u8, seller: u8) -> Option<u8> {
        match who {
            Who::Rightful => Some(match act {
                Some(EscrowAct::MarkDelivered | EscrowAct::RefundVoluntarily) => seller,
                Some(
                    EscrowAct::Resolve(_) | EscrowAct::ApproveProof | EscrowAct::RejectProof | EscrowAct::RetryPayout,
                ) => 4,
                _ => buyer,
            }),
            Who::Buyer => Some(buyer),
            Who::Seller => Some(seller),
            Who::Stranger => (0u8..3).find(|i| *i != buyer && *i != seller),
            Who::Support => Some(3),
            Who::AdminA => Some(4),
            Who::AdminB => Some(5),
            Who::Anonymous => None,
        }
    }

    /// The request that calls `op` as cast member `actor` (anonymous for `None`), or the one that must come first.
    /// With `step_up`, a rightful admin steps up first when its step-up is missing or older than the window.
    fn call(&self, actor: Option<u8>, op: Op, step_up: bool) -> Option<Planned> {
        let Some(actor) = actor else { return Some(Planned::Call(Request::anonymous(op))) };
        let user = self.users.get(actor as usize).copied()?;
        let credentials = self.credentials[actor as usize];
        let needs_step_up = step_up
            && CAST[actor as usize] == Role::Admin
            && credentials.step_up_at.is_none_or(|at| self.elapsed - at >= crate::authz::STEP_UP_WINDOW_SECONDS);
        Some(match credentials.access {
            None => Planned::Prepare(Request::anonymous(Op::SignIn {
                name: SignInName::Account(user),
                password_ok: true,
                client: ClientId(u32::from(actor)),
            })),
            Some(token) if needs_step_up => {
                Planned::Prepare(Request::by(token, Op::StepUp { password_ok: true, totp_ok: true }))
            }
            Some(token) => Planned::Call(Request::by(token, op)),
        })
    }

    /// The next request for one step: a sign-in first when the actor has no live session, else the call itself.
    /// `None` when the step does not apply yet (no escrow, approval or dead letter to name).
    pub fn plan(&self, step: &Step) -> Option<Planned> {
        let call = |actor: Option<u8>, op: Op| self.call(actor, op, false);
        let prepared = |actor: Option<u8>, op: Op| self.call(actor, op, true);
        let send = |op: Op| Some(Planned::Call(Request::anonymous(op)));
        let admin = |second: bool| Some(if second { 5 } else { 4 });
        // The escrow's own provider calls back for a Request Network escrow; SHKeeper's callbacks stand in for the
        // rest (a manual wallet has no callbacks of its own).
        let deliver = |escrow: Provider, notice: Notice, authentic: bool| {
            let provider = if escrow == Provider::RequestNetwork { escrow } else { Provider::Shkeeper };
            send(Op::DeliverWebhook { provider, notice, authentic })
        };
        match step {
            Step::SignIn { actor, password_ok } => {
                let user = self.users.get(*actor as usize)?;
                send(Op::SignIn {
                    name: SignInName::Account(*user),
                    password_ok: *password_ok,
                    client: ClientId(u32::from(*actor)),
                })
            }
            Step::Refresh { actor, reuse } => {
                let c = self.credentials.get(*actor as usize).copied().unwrap_or_default();
                let token = if *reuse { c.used_refresh } else { c.refresh }?;
                send(Op::Refresh { token })
            }
            Step::Logout { actor } => call(Some(*actor), Op::Logout),
            Step::StepUp { actor, ok } => call(Some(*actor), Op::StepUp { password_ok: *ok, totp_ok: true }),
            Step::Create { provider, .. } if !self.abilities.providers.contains(provider) => None,
            Step::Clock { .. } if !self.abilities.clock => None,
            Step::ProviderStatus { status, .. } if !status.enabled && !self.abilities.switch_providers => None,
            Step::Create { buyer, seller, major, currency, provider, extra } => {
                let currency = Currency::ALL[*currency as usize % Currency::ALL.len()];
                let amount = Money::from_minor(major * currency.minor_per_major(), currency);
                let seller = self.users.get(*seller as usize).copied()?;
                call(Some(*buyer), Op::CreateEscrow { seller, amount, provider: *provider, extra: *extra })
            }
            Step::Act { escrow, who, act } => {
                let (id, buyer, seller, amount, _) = self.escrow(*escrow)?;
                let actor = self.actor_index(*who, Some(*act), buyer, seller);
                let op = match *act {
                    EscrowAct::StartPayment => Op::StartPayment { escrow: id, extra: None },
                    EscrowAct::StartPaymentWith(field) => Op::StartPayment { escrow: id, extra: Some(field) },
                    EscrowAct::Cancel => Op::CancelEscrow { escrow: id },
                    EscrowAct::MarkDelivered => Op::MarkDelivered { escrow: id },
                    EscrowAct::ConfirmReceipt => Op::ConfirmReceipt { escrow: id },
                    EscrowAct::OpenDispute => Op::OpenDispute { escrow: id },
                    EscrowAct::RefundVoluntarily => Op::RefundVoluntarily { escrow: id },
                    EscrowAct::Resolve(resolution) => Op::ResolveDispute { escrow: id, resolution },
                    EscrowAct::ApproveProof => Op::ApproveProof { escrow: id },
                    EscrowAct::RejectProof => Op::RejectProof { escrow: id },
                    EscrowAct::RetryPayout => Op::RetryPayout { escrow: id },
                    EscrowAct::Get => Op::GetEscrow { escrow: id },
                    EscrowAct::Update(field) => Op::UpdateEscrow { escrow: id, field },
                    EscrowAct::SubmitProof { tx, exact, right_destination, wrong_currency } => {
                        let claimed = if exact { amount.minor } else { amount.minor / 2 };
                        // The same count of minor units in another currency: only the currency is wrong.
                        let currency = if wrong_currency {
                            Currency::ALL.into_iter().find(|c| *c != amount.currency).unwrap_or(amount.currency)
                        } else {
                            amount.currency
                        };
                        let destination = if right_destination { "platform-wallet" } else { "attacker-wallet" };
                        let proof = Proof {
                            tx_hash: format!("0xproof{tx}"),
                            amount: Money::from_minor(claimed.max(1), currency),
                            destination: destination.to_owned(),
                        };
                        Op::SubmitPaymentProof { escrow: id, proof, extra: None }
                    }
                    EscrowAct::SubmitProofWith(field) => {
                        // An exact proof to the platform's address, of a hash of its own: only the field is wrong.
                        let proof = Proof {
                            tx_hash: "0xproof-smuggled".to_owned(),
                            amount,
                            destination: "platform-wallet".to_owned(),
                        };
                        Op::SubmitPaymentProof { escrow: id, proof, extra: Some(field) }
                    }
                };
                if *who == Who::Rightful { prepared(actor, op) } else { call(actor, op) }
            }
            Step::List { who } => call(self.actor_index(*who, None, 0, 1), Op::ListEscrows),
            Step::ApprovePending { approval, second } => {
                let approval = *self.approvals.get(*approval as usize % self.approvals.len().max(1))?;
                prepared(admin(*second), Op::ApprovePending { approval })
            }
            Step::ChangeRole { target, role } => {
                let user = self.users.get(*target as usize).copied()?;
                call(admin(false), Op::ChangeRole { user, role: *role })
            }
            Step::RevokeSessions { target } => {
                let user = self.users.get(*target as usize).copied()?;
                call(admin(true), Op::RevokeUserSessions { user })
            }
            Step::ReplayDeadLetter { dead_letter } => {
                let id = DeadLetterId(u32::from(*dead_letter).checked_rem(self.dead_letters)?);
                call(admin(false), Op::ReplayDeadLetter { dead_letter: id })
            }
            Step::Pay { escrow, portion, wrong_currency, event, authentic } => {
                let (id, _, _, amount, provider) = self.escrow(*escrow)?;
                let minor = match portion {
                    Portion::Due => amount.minor,
                    Portion::Half => (amount.minor / 2).max(1),
                    Portion::Over => amount.minor + amount.minor / 10 + 1,
                };
                let currency = if *wrong_currency {
                    Currency::ALL.into_iter().find(|c| *c != amount.currency).unwrap_or(amount.currency)
                } else {
                    amount.currency
                };
                // The same event id always means the same payment: its content, and whether its invoice existed when
                // the provider sent it, are part of the id (a provider cannot pay an invoice it has not issued).
                let bound = if self.invoiced.contains(&id) { "bound" } else { "unbound" };
                let notice = Notice {
                    event: format!("pay-{}-{bound}-{portion:?}-{}-{event}", id.0, currency.code()),
                    reference: invoice_external_id(id),
                    kind: NoticeKind::Payment(Money::from_minor(minor, currency)),
                };
                deliver(provider, notice, *authentic)
            }
            Step::PaymentPending { escrow, event } => {
                let (id, .., provider) = self.escrow(*escrow)?;
                if !self.abilities.pending_callbacks.contains(&provider) {
                    return None;
                }
                let reference = invoice_external_id(id);
                deliver(
                    provider,
                    Notice { event: format!("pending-{}-{event}", id.0), reference, kind: NoticeKind::Pending },
                    true,
                )
            }
            Step::PayoutNotice { escrow, confirmed, .. } => {
                let (id, .., provider) = self.escrow(*escrow)?;
                if !self.abilities.payout_callbacks.contains(&provider) {
                    return None;
                }
                // The confirmation the escrow's direction calls for: SHKeeper's payout callback cannot say which
                // direction it confirms, so a crossed one has no wire form to test a target with.
                let refunding = self.refunding.contains(&id);
                let kind = match (confirmed, refunding) {
                    (false, _) => NoticeKind::PayoutFailed,
                    (true, false) => NoticeKind::PayoutConfirmed,
                    (true, true) => NoticeKind::RefundConfirmed,
                };
                let reference = payout_idempotency_key(id);
                // One provider event is one outcome: a failure and a confirmation are different events.
                let outcome = if *confirmed { "confirmed" } else { "failed" };
                // A payout has one outcome callback (SHKeeper keys it by payout id alone): its copies are duplicates.
                deliver(provider, Notice { event: format!("payout-{}-{outcome}", id.0), reference, kind }, true)
            }
            Step::ProviderStatus { provider, status } => {
                send(Op::SetProviderStatus { provider: *provider, status: *status })
            }
            Step::Clock { seconds } => send(Op::AdvanceClock { seconds: *seconds }),
            Step::Passkeys { .. } if !self.abilities.switch_passkeys => None,
            Step::Passkeys { enabled } => send(Op::SetPasskeys { enabled: *enabled }),
            Step::PasskeyRegister { actor, counter } => {
                match self.registration_challenges.iter().rev().find(|(a, _)| a == actor) {
                    // The challenge first: a request of its own, then the step is planned again.
                    None => match call(Some(*actor), Op::PasskeyRegisterOptions)? {
                        Planned::Call(request) => Some(Planned::Prepare(request)),
                        sign_in => Some(sign_in),
                    },
                    Some((_, challenge)) => {
                        let credential = CredentialId(self.credentials_made);
                        call(Some(*actor), Op::PasskeyRegister { challenge: *challenge, credential, counter: *counter })
                    }
                }
            }
            Step::PasskeySignIn { passkey, assertion } => {
                let n = self.passkeys.len();
                let pk = n.checked_sub(1 + *passkey as usize % n.max(1)).and_then(|i| self.passkeys.get(i)).copied();
                let refused = self.refused_registrations.last().copied();
                let actor = match assertion {
                    PasskeyAssertion::RefusedRegistration => refused?.0,
                    _ => pk?.actor,
                };
                let client = ClientId(u32::from(actor));
                let sign = |challenge: Challenge, credential: CredentialId, sign_count: u32, signature_valid: bool| {
                    let assertion = Assertion { challenge, credential, sign_count, signature_valid };
                    send(Op::PasskeySignIn { assertion, client })
                };
                // A fresh challenge, asked for first when none is pending.
                let fresh =
                    |credential: CredentialId, sign_count: u32, signature_valid: bool| match self.sign_in_challenge {
                        None => Some(Planned::Prepare(Request::anonymous(Op::PasskeySignInOptions))),
                        Some(challenge) => sign(challenge, credential, sign_count, signature_valid),
                    };
                if let (PasskeyAssertion::RefusedRegistration, Some((_, credential))) = (assertion, refused) {
                    return fresh(credential, 1, true);
                }
                let pk = pk?;
                match assertion {
                    PasskeyAssertion::Genuine => fresh(pk.credential, if pk.counter { pk.signed + 1 } else { 0 }, true),
                    PasskeyAssertion::Replayed => {
                        let (challenge, count) = pk.last?;
                        sign(challenge, pk.credential, count, true)
                    }
                    PasskeyAssertion::OtherKey => fresh(pk.credential, OTHER_KEY_COUNT, false),
                    PasskeyAssertion::Unregistered => fresh(CredentialId(self.credentials_made), 1, true),
                    PasskeyAssertion::CounterBack if pk.counter && pk.accepted >= 2 => {
                        fresh(pk.credential, pk.accepted - 1, true)
                    }
                    PasskeyAssertion::CounterBack | PasskeyAssertion::RefusedRegistration => None,
                }
            }
            Step::Call { who, call: what } => {
                let (buyer, seller) = self.escrow(0).map_or((0, 1), |(_, buyer, seller, ..)| (buyer, seller));
                let actor = self.actor_index(*who, None, buyer, seller);
                let third = self.users.get(2).copied();
                let op = match what {
                    Call::Logout => Op::Logout,
                    Call::ListSessions => Op::ListSessions,
                    Call::RevokeOwnSession => {
                        let own = actor.and_then(|a| self.credentials.get(a as usize)).and_then(|c| c.session);
                        let first = self.credentials.first().and_then(|c| c.session);
                        Op::RevokeOwnSession { session: own.or(first).unwrap_or(SessionId(0)) }
                    }
                    Call::ChangePassword => Op::ChangePassword,
                    Call::StepUp => Op::StepUp { password_ok: true, totp_ok: true },
                    Call::CreateEscrow => {
                        let seller = self.users.get(if actor == Some(1) { 0 } else { 1 }).copied()?;
                        let amount = Money::from_minor(10_000, Currency::ALL[0]);
                        Op::CreateEscrow { seller, amount, provider: Provider::Shkeeper, extra: None }
                    }
                    Call::ListEscrows => Op::ListEscrows,
                    Call::ApprovePending => Op::ApprovePending { approval: *self.approvals.last()? },
                    Call::ReplayDeadLetter => {
                        (self.dead_letters > 0).then_some(Op::ReplayDeadLetter { dead_letter: DeadLetterId(0) })?
                    }
                    Call::RotateWebhookSecret => Op::RotateWebhookSecret { provider: Provider::RequestNetwork },
                    Call::ChangeRole => Op::ChangeRole { user: third?, role: Role::Support },
                    Call::DeleteAccount => Op::DeleteAccount { user: third? },
                    Call::RevokeUserSessions => Op::RevokeUserSessions { user: third? },
                    Call::ListStuckPayouts => Op::ListStuckPayouts,
                    Call::ListDeadLetters => Op::ListDeadLetters,
                    Call::ReadAuditLog => Op::ReadAuditLog,
                    Call::ReadLedger => Op::ReadLedger,
                    Call::PasskeyRegisterOptions => Op::PasskeyRegisterOptions,
                    Call::PasskeyRegister => Op::PasskeyRegister {
                        challenge: self.registration_challenge(actor)?,
                        credential: CredentialId(self.credentials_made),
                        counter: true,
                    },
                    Call::PasskeySignInOptions => Op::PasskeySignInOptions,
                };
                if *who == Who::Rightful { prepared(actor, op) } else { call(actor, op) }
            }
        }
    }
}

/// Runs a scenario on a fresh model world, calling `after_each` after every request (with the step it came from,
/// `None` during setup). The model-only arm of every property suite.
pub fn run_on_model(
    world: &mut World,
    steps: &[Step],
    mut after_each: impl FnMut(&World, Option<&Step>, &Request, &Outcome),
) {
    let mut script = Script::new();
    for request in script.setup() {
        let outcome = world.apply(&request);
        script.observe(None, &request, &outcome);
        after_each(world, None, &request, &outcome);
    }
    for step in steps {
        // At most a sign-in, a step-up or a passkey challenge, and the call itself.
        for _ in 0..3 {
            let Some(planned) = script.plan(step) else { break };
            let (request, again) = match planned {
                Planned::Prepare(request) => (request, true),
                Planned::Call(request) => (request, false),
            };
            let outcome = world.apply(&request);
            script.observe(Some(step), &request, &outcome);
            after_each(world, Some(step), &request, &outcome);
            if !again || outcome.is_err() {
                break;
            }
        }
    }
}

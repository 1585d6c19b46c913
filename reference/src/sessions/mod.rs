//! Sessions and authentication (SPEC §5, SES-1…SES-10) as the server's session state: sign-in, refresh-token
//! rotation with reuse detection, access tokens, revocation with a recorded reason, step-up and sign-in rate limits.
//! Passkey ceremonies (SES-8) are in [`passkeys`].
//!
//! A *session* is one sign-in and every token rotated from it (its "family", RFC 9700). Tokens are opaque values
//! numbered in issue order; the oracle maps a target's real tokens (JWTs, random strings) to these numbers.
//!
//! Roles are not part of a session: the role is read from the account on every request ([`Authenticated::principal`]
//! takes the current role), so a role change takes effect on existing sessions at once (SES-7) without any change
//! here. Password changes do need one: [`SessionStore::on_password_change`].
//!
//! Choices where the SPEC is silent (each also documented where it applies):
//! - An access token is valid while `now < access_expires_at` (issued at `t`, it is refused from `t + 900` on).
//! - A refresh token is valid while `now < refresh_expires_at`: 7 days after it was issued (the idle timeout, ASVS
//!   7.3.1), and never past the session's absolute lifetime of 30 days from sign-in (ASVS 7.3.2). No token of a
//!   session outlives that absolute end: access expiries are clamped to it too.
//! - After a refresh, the session's previous access token stays valid until its own expiry (unless the session is
//!   revoked), see [`SessionConfig::access_survives_refresh`].
//! - Presenting a rotated refresh token revokes the session even if it already expired; presenting the current
//!   refresh token of a revoked or expired session is refused without recording anything new.
//! - Sign-in rate limits count every attempt that is not itself rate-limited, successful or not, in a sliding window
//!   of 60 seconds, keyed by the name typed (also for names that belong to no account) and by the client.
//! - A refused operation changes nothing, with two necessary exceptions: a sign-in refused with
//!   `invalid_credentials` still counts towards the rate limits, and a refused refresh-token reuse revokes the family.

pub mod passkeys;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::authz::{Principal, Role, STEP_UP_WINDOW_SECONDS};
use crate::ids::{SessionId, Timestamp, UserId};
use crate::refusal::Refusal;

pub use passkeys::{
    Assertion, Challenge, ChallengePurpose, CredentialId, PASSKEY_CHALLENGE_TTL_SECONDS, PasskeyError, PasskeyRegistry,
};

/// Seconds an access token is valid (SES-1: 15 minutes).
pub const ACCESS_TTL_SECONDS: i64 = 900;
/// Seconds a refresh token is valid after it was issued: a session not refreshed for 7 days ends (idle timeout,
/// ASVS 7.3.1). The SPEC is silent; 7 days is a common choice for a payments app that keeps users signed in.
pub const REFRESH_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// Seconds a session lives from its sign-in, however often it is refreshed (absolute timeout, ASVS 7.3.2). The SPEC
/// is silent; after 30 days the user signs in again.
pub const ABSOLUTE_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;
/// Sign-in attempts allowed per window, per name and per client (SES-10).
pub const SIGN_IN_LIMIT: u32 = 10;
/// The sliding window of the sign-in rate limits, in seconds (SES-10: "10 a minute").
pub const SIGN_IN_WINDOW_SECONDS: i64 = 60;

/// The session rules' parameters. [`SessionConfig::default`] is the SPEC's; a profile may set a target's own values
/// for those the SPEC leaves open (refresh and absolute lifetimes, whether old access tokens survive a refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Seconds an access token is valid.
    pub access_ttl_seconds: i64,
    /// Seconds a refresh token is valid after issue; should be at least `access_ttl_seconds`.
    pub refresh_ttl_seconds: i64,
    /// Seconds a session lives from sign-in, whatever the refreshes.
    pub absolute_lifetime_seconds: i64,
    /// Seconds a step-up stays valid. [`crate::authz`] decides with [`STEP_UP_WINDOW_SECONDS`], so changing this
    /// only changes [`SessionStore::stepped_up`].
    pub step_up_window_seconds: i64,
    /// Sign-in attempts allowed per window, per name and per client; the next one is refused with `rate_limited`.
    pub sign_in_limit: u32,
    /// Length of the sliding rate-limit window, in seconds.
    pub sign_in_window_seconds: i64,
    /// Whether an access token stays valid until its expiry after its session was refreshed (true), or only the
    /// newest access token of a session is accepted (false). The SPEC is silent; true is the default because most
    /// servers issue self-contained access tokens and check only that the session is not revoked, and because a
    /// client's requests in flight during a refresh must not fail. Revocation is immediate either way (SES-4).
    pub access_survives_refresh: bool,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            access_ttl_seconds: ACCESS_TTL_SECONDS,
            refresh_ttl_seconds: REFRESH_TTL_SECONDS,
            absolute_lifetime_seconds: ABSOLUTE_LIFETIME_SECONDS,
            step_up_window_seconds: STEP_UP_WINDOW_SECONDS,
            sign_in_limit: SIGN_IN_LIMIT,
            sign_in_window_seconds: SIGN_IN_WINDOW_SECONDS,
            access_survives_refresh: true,
        }
    }
}

/// The client a request comes from (an IP address or a device fingerprint), for the per-client rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u32);

/// An access token, numbered in issue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessToken(pub u64);

/// A refresh token, numbered in issue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RefreshToken(pub u64);

/// The name typed at sign-in (an email address). It names an account or not; the per-account rate limit is keyed by
/// the name, so that names without an account are limited exactly like real ones and the limit reveals nothing
/// about which accounts exist (SES-1, SES-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SignInName {
    /// The name of this account.
    Account(UserId),
    /// A name that belongs to no account; the number tells different names apart.
    Unknown(u32),
}

impl SignInName {
    /// The account this name belongs to, if any.
    pub const fn user(self) -> Option<UserId> {
        match self {
            SignInName::Account(user) => Some(user),
            SignInName::Unknown(_) => None,
        }
    }
}

impl From<Option<UserId>> for SignInName {
    /// `None` is one fixed unknown name; use [`SignInName::Unknown`] to tell several apart.
    fn from(user: Option<UserId>) -> SignInName {
        user.map_or(SignInName::Unknown(0), SignInName::Account)
    }
}

/// What a sign-in or a refresh returns (SES-1, SES-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tokens {
    /// The session (family) the tokens belong to.
    pub session: SessionId,
    /// The new access token.
    pub access: AccessToken,
    /// The new refresh token; every earlier one of the session is now used.
    pub refresh: RefreshToken,
    /// The first instant at which `access` is refused.
    pub access_expires_at: Timestamp,
    /// The first instant at which `refresh` is refused.
    pub refresh_expires_at: Timestamp,
}

/// The caller, as an accepted access token tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Authenticated {
    /// The account.
    pub user: UserId,
    /// The session the token belongs to.
    pub session: SessionId,
    /// When this session last stepped up, if it did (valid or not: [`crate::authz`] decides).
    pub step_up_at: Option<Timestamp>,
}

impl Authenticated {
    /// The principal for authorization, with the account's role *now* (SES-7: a role change applies at once).
    pub const fn principal(self, role: Role) -> Principal {
        Principal::Signed { user: self.user, role, step_up_at: self.step_up_at }
    }
}

/// One of a user's active sessions, as their session list shows it (SES-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session.
    pub session: SessionId,
    /// The client that signed in.
    pub client: ClientId,
    /// When it signed in.
    pub created_at: Timestamp,
    /// When its tokens were last issued (sign-in or refresh).
    pub last_refreshed_at: Timestamp,
    /// When it ends at the latest, however often it is refreshed.
    pub expires_at: Timestamp,
    /// When it last stepped up, if it did.
    pub step_up_at: Option<Timestamp>,
}

/// Why a session was revoked. Every reason disconnects the session's sockets (RT-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The session signed itself out (SES-4).
    Logout,
    /// Its user revoked it from their session list (SES-5).
    UserRevoked,
    /// An admin revoked all of the user's sessions (SES-5, AZ-6).
    AdminRevoked,
    /// Its user's password changed (SES-7).
    PasswordChanged,
    /// A rotated refresh token of the session was presented again (SES-3).
    RefreshReuse,
}

impl RevocationReason {
    /// Every reason, in a fixed order.
    pub const ALL: [RevocationReason; 5] = [
        RevocationReason::Logout,
        RevocationReason::UserRevoked,
        RevocationReason::AdminRevoked,
        RevocationReason::PasswordChanged,
        RevocationReason::RefreshReuse,
    ];

    /// The reason's name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            RevocationReason::Logout => "logout",
            RevocationReason::UserRevoked => "user_revoked",
            RevocationReason::AdminRevoked => "admin_revoked",
            RevocationReason::PasswordChanged => "password_changed",
            RevocationReason::RefreshReuse => "refresh_reuse",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A revocation, as the realtime oracle needs it (RT-6: the session's sockets are gone 2 seconds after `at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Revocation {
    /// The revoked session.
    pub session: SessionId,
    /// Its account.
    pub user: UserId,
    /// Why.
    pub reason: RevocationReason,
    /// When.
    pub at: Timestamp,
}

/// One session: its account, its current refresh token and whether it is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SessionRecord {
    user: UserId,
    client: ClientId,
    created_at: Timestamp,
    /// The absolute end: no token of the session is valid from then on.
    ends_at: Timestamp,
    last_refreshed_at: Timestamp,
    /// The only refresh token of the family that may still be used; every other one was used already.
    refresh: RefreshToken,
    refresh_expires_at: Timestamp,
    /// The newest access token (the only valid one when access tokens do not survive a refresh).
    access: AccessToken,
    access_expires_at: Timestamp,
    step_up_at: Option<Timestamp>,
    revoked: Option<Revocation>,
}

impl SessionRecord {
    /// Whether some token of the session may still be accepted at `now`.
    fn is_active(&self, now: Timestamp) -> bool {
        self.revoked.is_none() && (now < self.refresh_expires_at || now < self.access_expires_at)
    }
}

/// The sign-in attempts of one key (a name or a client) that may still count: at most the limit, because an attempt
/// is recorded only when fewer than the limit are in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Attempts(Vec<Timestamp>);

impl Attempts {
    fn in_window(&self, now: Timestamp, window: i64) -> usize {
        // An attempt recorded "after" now (a clock that went back) counts: the limit errs on the side of refusing.
        self.0.iter().filter(|&&at| age(now, at) < window).count()
    }

    fn record(&mut self, now: Timestamp, window: i64) {
        self.0.retain(|&at| age(now, at) < window);
        self.0.push(now);
    }
}

/// The server's session state: every session, token and revocation, and the sign-in rate limits.
///
/// Storage is by issue number (sessions, access and refresh tokens index plain vectors), so every operation is a
/// few array reads; nothing is ever forgotten, which keeps token numbers unambiguous for the oracle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SessionStore {
    config: SessionConfig,
    /// Indexed by `SessionId.0`.
    sessions: Vec<SessionRecord>,
    /// Indexed by `AccessToken.0`: the token's session and expiry.
    access: Vec<(SessionId, Timestamp)>,
    /// Indexed by `RefreshToken.0`: the token's session (its expiry is the session's while it is current).
    refresh: Vec<SessionId>,
    by_user: BTreeMap<UserId, Vec<SessionId>>,
    by_name: BTreeMap<SignInName, Attempts>,
    by_client: BTreeMap<ClientId, Attempts>,
    revocations: Vec<Revocation>,
}

/// `now - then` in seconds, saturating: the model takes any timestamp without overflowing.
fn age(now: Timestamp, then: Timestamp) -> i64 {
    now.0.saturating_sub(then.0)
}

/// `at + seconds`, saturating.
fn after(at: Timestamp, seconds: i64) -> Timestamp {
    Timestamp(at.0.saturating_add(seconds))
}

/// A vector index from a token number, if it fits.
fn index(number: u64) -> Option<usize> {
    usize::try_from(number).ok()
}

impl SessionStore {
    /// An empty store with these rules.
    pub fn new(config: SessionConfig) -> SessionStore {
        SessionStore { config, ..SessionStore::default() }
    }

    /// The rules in force.
    pub const fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Signs in with a password (SES-1, SES-10, ASVS 7.2.4).
    ///
    /// The rate limits are checked first, so a correct password is refused too while they hold (`rate_limited`);
    /// otherwise the attempt counts, per name and per client, whatever its outcome. A wrong password and a name
    /// without an account are refused alike with `invalid_credentials` and change the state alike. A successful
    /// sign-in always opens a new session, never resumes one.
    pub fn sign_in(
        &mut self,
        name: SignInName,
        password_ok: bool,
        client: ClientId,
        now: Timestamp,
    ) -> Result<Tokens, Refusal> {
        self.admit_attempt(name, client, now)?;
        match name {
            SignInName::Account(user) if password_ok => self.open_session(user, client, now),
            SignInName::Account(_) | SignInName::Unknown(_) => Err(Refusal::InvalidCredentials),
        }
    }

    /// Opens a session for `user` after a passkey assertion of theirs was verified
    /// ([`PasskeyRegistry::verify_assertion`], SES-8). It counts as a sign-in attempt for the rate limits; the
    /// failed assertions before it are not counted here (each needs a fresh single-use challenge).
    pub fn sign_in_with_passkey(&mut self, user: UserId, client: ClientId, now: Timestamp) -> Result<Tokens, Refusal> {
        self.admit_attempt(SignInName::Account(user), client, now)?;
        self.open_session(user, client, now)
    }

    /// Exchanges a refresh token for new tokens (SES-2, SES-3).
    ///
    /// The session's current refresh token, unexpired, gives a new access token and a new refresh token; the one
    /// presented is used from then on. A refresh token that was already used revokes its whole session at once
    /// (reason [`RevocationReason::RefreshReuse`]): the current refresh token and every access token of the family
    /// die with it (RFC 9700 §4.14.2, ASVS). Unknown, expired and revoked tokens are refused; every refusal is
    /// `invalid_grant`.
    pub fn refresh(&mut self, token: RefreshToken, now: Timestamp) -> Result<Tokens, Refusal> {
        let Some(&session) = index(token.0).and_then(|i| self.refresh.get(i)) else {
            return Err(Refusal::InvalidGrant);
        };
        let Some(record) = self.sessions.get(session.0 as usize) else { return Err(Refusal::InvalidGrant) };
        if record.revoked.is_some() {
            return Err(Refusal::InvalidGrant);
        }
        if record.refresh != token {
            // Only a used token can differ from the current one of a live family: someone holds a stolen copy.
            self.revoke(session, RevocationReason::RefreshReuse, now);
            return Err(Refusal::InvalidGrant);
        }
        if now >= record.refresh_expires_at {
            return Err(Refusal::InvalidGrant);
        }
        let ends_at = record.ends_at;
        Ok(self.issue(session, ends_at, now))
    }

    /// The caller behind an access token (SES-4, SES-6): refused with `unauthenticated` when the token is unknown,
    /// expired (from `access_expires_at` on) or its session revoked, and — when access tokens do not survive a
    /// refresh — when a newer one was issued.
    pub fn authenticate(&self, access: AccessToken, now: Timestamp) -> Result<Authenticated, Refusal> {
        let Some(&(session, expires_at)) = index(access.0).and_then(|i| self.access.get(i)) else {
            return Err(Refusal::Unauthenticated);
        };
        let Some(record) = self.sessions.get(session.0 as usize) else { return Err(Refusal::Unauthenticated) };
        let superseded = !self.config.access_survives_refresh && record.access != access;
        if now >= expires_at || record.revoked.is_some() || superseded {
            return Err(Refusal::Unauthenticated);
        }
        Ok(Authenticated { user: record.user, session, step_up_at: record.step_up_at })
    }

    /// Ends a session from within (SES-4): from now on its tokens are refused. Returns whether it was revoked now
    /// (false if it does not exist or was revoked before; logging out twice is harmless).
    pub fn logout(&mut self, session: SessionId, now: Timestamp) -> bool {
        self.revoke(session, RevocationReason::Logout, now)
    }

    /// Revokes one session for `reason`, at once. Returns whether it was revoked now; the first revocation's reason
    /// and time are kept. A session that merely expired is still revoked and recorded: its sockets may be open.
    pub fn revoke(&mut self, session: SessionId, reason: RevocationReason, now: Timestamp) -> bool {
        let Some(record) = self.sessions.get_mut(session.0 as usize) else { return false };
        if record.revoked.is_some() {
            return false;
        }
        let revocation = Revocation { session, user: record.user, reason, at: now };
        record.revoked = Some(revocation);
        self.revocations.push(revocation);
        true
    }

    /// A user revokes one of their own sessions from their list (SES-5). Another user's session, or one that does
    /// not exist, is `not_found` (its existence is not revealed); an already revoked own session is accepted and left
    /// as it was.
    pub fn revoke_own(&mut self, user: UserId, session: SessionId, now: Timestamp) -> Result<(), Refusal> {
        match self.sessions.get(session.0 as usize) {
            Some(record) if record.user == user => {
                self.revoke(session, RevocationReason::UserRevoked, now);
                Ok(())
            }
            Some(_) | None => Err(Refusal::NotFound),
        }
    }

    /// An admin revokes every session of `user` (SES-5; the admin's step-up is [`crate::authz`]'s to check).
    /// Returns the sessions revoked now, in creation order, so the caller can disconnect their sockets (RT-6):
    /// every not yet revoked one, including those that merely expired.
    pub fn revoke_all(&mut self, user: UserId, now: Timestamp) -> Vec<SessionId> {
        self.revoke_all_except(user, None, RevocationReason::AdminRevoked, now)
    }

    /// A password change (SES-7): every other session of `user` is revoked at once, and the revoked ones returned.
    ///
    /// `keep` is the session that changed the password; it survives (the user stays signed in where they are, as
    /// ASVS 7.4.3 allows), with its step-up. A change without a session of the user (an admin reset, a reset by
    /// e-mail link) passes `None` and revokes every session.
    pub fn on_password_change(&mut self, user: UserId, keep: Option<SessionId>, now: Timestamp) -> Vec<SessionId> {
        self.revoke_all_except(user, keep, RevocationReason::PasswordChanged, now)
    }

    /// Elevates `session` with password plus TOTP (SES-9, AZ-6): only this session, for the step-up window from
    /// `now`. The session must be active (`unauthenticated` otherwise); both factors must verify
    /// (`invalid_credentials` otherwise, and an earlier step-up stays as it was).
    pub fn step_up(
        &mut self,
        session: SessionId,
        password_ok: bool,
        totp_ok: bool,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.elevate(session, |_| password_ok && totp_ok, now)
    }

    /// Elevates `session` with a passkey assertion that [`PasskeyRegistry::verify_assertion`] accepted for
    /// `asserted_by` (SES-9). A passkey of another account is `invalid_credentials`.
    pub fn step_up_with_passkey(
        &mut self,
        session: SessionId,
        asserted_by: UserId,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.elevate(session, |user| user == asserted_by, now)
    }

    /// Whether `session` is active and stepped up less than the step-up window ago (`0 <= age < window`, as
    /// [`crate::authz::step_up_valid`] decides).
    pub fn stepped_up(&self, session: SessionId, now: Timestamp) -> bool {
        self.sessions.get(session.0 as usize).is_some_and(|record| {
            record.is_active(now)
                && record.step_up_at.is_some_and(|at| (0..self.config.step_up_window_seconds).contains(&age(now, at)))
        })
    }

    /// The active sessions of `user` (not revoked, not expired), in creation order (SES-5).
    pub fn sessions_of(&self, user: UserId, now: Timestamp) -> Vec<SessionSummary> {
        let Some(ids) = self.by_user.get(&user) else { return Vec::new() };
        ids.iter()
            .filter_map(|&session| {
                let record = self.sessions.get(session.0 as usize)?;
                record.is_active(now).then_some(SessionSummary {
                    session,
                    client: record.client,
                    created_at: record.created_at,
                    last_refreshed_at: record.last_refreshed_at,
                    expires_at: record.ends_at,
                    step_up_at: record.step_up_at,
                })
            })
            .collect()
    }

    /// Whether `session` may still be used at `now`: not revoked, and a token of it not yet expired.
    pub fn is_active(&self, session: SessionId, now: Timestamp) -> bool {
        self.sessions.get(session.0 as usize).is_some_and(|record| record.is_active(now))
    }

    /// Whether `session` was revoked (for any reason). A role change never revokes; a caller that wants to know
    /// whether a session survived a change asks this.
    pub fn is_revoked(&self, session: SessionId) -> bool {
        self.revocation(session).is_some()
    }

    /// How and when `session` was revoked, if it was.
    pub fn revocation(&self, session: SessionId) -> Option<Revocation> {
        self.sessions.get(session.0 as usize).and_then(|record| record.revoked)
    }

    /// Every revocation so far, in order: the realtime oracle reads the ones after the last it saw (RT-6).
    pub fn revocations(&self) -> &[Revocation] {
        &self.revocations
    }

    /// The account of `session`, if it exists.
    pub fn user_of(&self, session: SessionId) -> Option<UserId> {
        self.sessions.get(session.0 as usize).map(|record| record.user)
    }

    /// The session an access token was issued to, whatever its state (to map a socket's token to its session).
    pub fn session_of_access(&self, access: AccessToken) -> Option<SessionId> {
        index(access.0).and_then(|i| self.access.get(i)).map(|&(session, _)| session)
    }

    /// The session a refresh token was issued to, whatever its state (to tell which family a reuse revoked).
    pub fn session_of_refresh(&self, refresh: RefreshToken) -> Option<SessionId> {
        index(refresh.0).and_then(|i| self.refresh.get(i)).copied()
    }

    /// Number of sessions ever opened.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Refuses the attempt while either limit is reached, and otherwise counts it under both keys.
    fn admit_attempt(&mut self, name: SignInName, client: ClientId, now: Timestamp) -> Result<(), Refusal> {
        let limit = self.config.sign_in_limit as usize;
        let window = self.config.sign_in_window_seconds;
        let full = |attempts: Option<&Attempts>| attempts.map_or(0, |a| a.in_window(now, window)) >= limit;
        if full(self.by_name.get(&name)) || full(self.by_client.get(&client)) {
            // A refused attempt is not counted: an attacker who keeps trying stays blocked only as long as the
            // attempts that did count are in the window, and a legitimate user is not locked out for longer.
            return Err(Refusal::RateLimited);
        }
        self.by_name.entry(name).or_default().record(now, window);
        self.by_client.entry(client).or_default().record(now, window);
        Ok(())
    }

    fn open_session(&mut self, user: UserId, client: ClientId, now: Timestamp) -> Result<Tokens, Refusal> {
        // Session ids are u32; past 4 billion sessions the model refuses rather than wrap (never reached in practice).
        let Ok(number) = u32::try_from(self.sessions.len()) else { return Err(Refusal::RateLimited) };
        let session = SessionId(number);
        let ends_at = after(now, self.config.absolute_lifetime_seconds);
        self.sessions.push(SessionRecord {
            user,
            client,
            created_at: now,
            ends_at,
            last_refreshed_at: now,
            refresh: RefreshToken(0),
            refresh_expires_at: now,
            access: AccessToken(0),
            access_expires_at: now,
            step_up_at: None,
            revoked: None,
        });
        self.by_user.entry(user).or_default().push(session);
        Ok(self.issue(session, ends_at, now))
    }

    /// Issues a new access and refresh token to `session`, which exists; the previous refresh token is used.
    fn issue(&mut self, session: SessionId, ends_at: Timestamp, now: Timestamp) -> Tokens {
        let access = AccessToken(self.access.len() as u64);
        let refresh = RefreshToken(self.refresh.len() as u64);
        let access_expires_at = after(now, self.config.access_ttl_seconds).min(ends_at);
        let refresh_expires_at = after(now, self.config.refresh_ttl_seconds).min(ends_at);
        self.access.push((session, access_expires_at));
        self.refresh.push(session);
        if let Some(record) = self.sessions.get_mut(session.0 as usize) {
            record.refresh = refresh;
            record.refresh_expires_at = refresh_expires_at;
            record.access = access;
            record.access_expires_at = access_expires_at;
            record.last_refreshed_at = now;
        }
        Tokens { session, access, refresh, access_expires_at, refresh_expires_at }
    }

    fn elevate(
        &mut self,
        session: SessionId,
        verified: impl FnOnce(UserId) -> bool,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let Some(record) = self.sessions.get_mut(session.0 as usize) else { return Err(Refusal::Unauthenticated) };
        if !record.is_active(now) {
            return Err(Refusal::Unauthenticated);
        }
        if !verified(record.user) {
            return Err(Refusal::InvalidCredentials);
        }
        record.step_up_at = Some(now);
        Ok(())
    }

    fn revoke_all_except(
        &mut self,
        user: UserId,
        keep: Option<SessionId>,
        reason: RevocationReason,
        now: Timestamp,
    ) -> Vec<SessionId> {
        let Some(ids) = self.by_user.get(&user) else { return Vec::new() };
        let mut revoked = Vec::new();
        for &session in ids {
            if Some(session) == keep {
                continue;
            }
            let Some(record) = self.sessions.get_mut(session.0 as usize) else { continue };
            if record.revoked.is_none() {
                let revocation = Revocation { session, user, reason, at: now };
                record.revoked = Some(revocation);
                self.revocations.push(revocation);
                revoked.push(session);
            }
        }
        revoked
    }
}

#[cfg(test)]
mod tests;

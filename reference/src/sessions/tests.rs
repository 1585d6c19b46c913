use proptest::prelude::*;

use super::*;
use crate::authz::{authorize, step_up_valid};
use crate::ops::OperationKind;

const T0: Timestamp = Timestamp(1_700_000_000);
const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const LAPTOP: ClientId = ClientId(1);
const PHONE: ClientId = ClientId(2);

fn store() -> SessionStore {
    SessionStore::new(SessionConfig::default())
}

fn sign_in(sessions: &mut SessionStore, user: UserId, client: ClientId, now: Timestamp) -> Tokens {
    sessions.sign_in(SignInName::Account(user), true, client, now).expect("sign-in")
}

#[test]
fn ses1_sign_in_returns_a_15_minute_access_token_and_a_refresh_token() {
    let mut sessions = store();
    let tokens = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    assert_eq!(tokens.access_expires_at, T0.plus(900));
    assert_eq!(tokens.refresh_expires_at, T0.plus(REFRESH_TTL_SECONDS));
    let me = sessions.authenticate(tokens.access, T0).unwrap();
    assert_eq!(me, Authenticated { user: ALICE, session: tokens.session, step_up_at: None });
}

#[test]
fn ses1_a_failed_sign_in_does_not_reveal_whether_the_account_exists() {
    let mut wrong_password = store();
    let mut no_account = store();
    let a = wrong_password.sign_in(SignInName::Account(ALICE), false, LAPTOP, T0);
    let b = no_account.sign_in(SignInName::Unknown(7), false, LAPTOP, T0);
    let c = store().sign_in(SignInName::Unknown(7), true, LAPTOP, T0);
    assert_eq!(a, Err(Refusal::InvalidCredentials));
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(wrong_password.session_count(), 0);
    assert_eq!(no_account.session_count(), 0);
    // The rate limit treats names without an account exactly like real ones, so it cannot be used to tell them
    // apart either: both are refused with 429 at the same attempt.
    for attempt in 2..=11 {
        let now = T0.plus(attempt);
        let a = wrong_password.sign_in(SignInName::Account(ALICE), false, ClientId(attempt as u32), now);
        let b = no_account.sign_in(SignInName::Unknown(7), false, ClientId(attempt as u32), now);
        assert_eq!(a, b, "attempt {attempt}");
    }
    assert_eq!(
        wrong_password.sign_in(SignInName::Account(ALICE), false, PHONE, T0.plus(20)),
        Err(Refusal::RateLimited)
    );
    assert_eq!(no_account.sign_in(SignInName::Unknown(7), false, PHONE, T0.plus(20)), Err(Refusal::RateLimited));
}

#[test]
fn ses1_every_sign_in_opens_a_new_session() {
    let mut sessions = store();
    let first = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let second = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    assert_ne!(first.session, second.session, "ASVS 7.2.4");
    assert!(sessions.authenticate(first.access, T0).is_ok());
    assert_eq!(sessions.sessions_of(ALICE, T0).len(), 2);
}

#[test]
fn ses2_refresh_rotates_the_refresh_token() {
    let mut sessions = store();
    let rt1 = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let rt2 = sessions.refresh(rt1.refresh, T0.plus(600)).unwrap();
    assert_eq!(rt2.session, rt1.session, "the same family");
    assert_ne!(rt2.refresh, rt1.refresh);
    assert_ne!(rt2.access, rt1.access);
    assert_eq!(rt2.access_expires_at, T0.plus(1500));
    assert!(sessions.authenticate(rt2.access, T0.plus(600)).is_ok());
    // Chosen: the previous access token stays valid until its own expiry.
    assert!(sessions.authenticate(rt1.access, T0.plus(899)).is_ok());
    assert_eq!(sessions.authenticate(rt1.access, T0.plus(900)), Err(Refusal::Unauthenticated));
    let rt3 = sessions.refresh(rt2.refresh, T0.plus(1200)).unwrap();
    assert_eq!(rt3.session, rt1.session);
}

#[test]
fn ses2_only_the_newest_access_token_when_configured() {
    let config = SessionConfig { access_survives_refresh: false, ..SessionConfig::default() };
    let mut sessions = SessionStore::new(config);
    let rt1 = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let rt2 = sessions.refresh(rt1.refresh, T0.plus(10)).unwrap();
    assert_eq!(sessions.authenticate(rt1.access, T0.plus(10)), Err(Refusal::Unauthenticated));
    assert!(sessions.authenticate(rt2.access, T0.plus(10)).is_ok());
}

#[test]
fn ses3_reusing_a_refresh_token_revokes_the_whole_family() {
    // FACTS, RFC 9700 §4.14.2: refresh RT1 → RT2, replay RT1 → invalid_grant, and RT2 is dead too.
    let mut sessions = store();
    let other = sign_in(&mut sessions, ALICE, PHONE, T0);
    let rt1 = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let rt2 = sessions.refresh(rt1.refresh, T0.plus(60)).unwrap();
    assert_eq!(sessions.refresh(rt1.refresh, T0.plus(61)), Err(Refusal::InvalidGrant));
    assert_eq!(sessions.refresh(rt2.refresh, T0.plus(62)), Err(Refusal::InvalidGrant));
    assert_eq!(sessions.authenticate(rt2.access, T0.plus(62)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.authenticate(rt1.access, T0.plus(62)), Err(Refusal::Unauthenticated));
    let revocation = sessions.revocation(rt1.session).unwrap();
    assert_eq!(revocation.reason, RevocationReason::RefreshReuse);
    assert_eq!(revocation.at, T0.plus(61));
    assert_eq!(sessions.session_of_refresh(rt1.refresh), Some(rt1.session));
    // Another family of the same user is untouched.
    assert!(sessions.authenticate(other.access, T0.plus(62)).is_ok());
    assert!(sessions.refresh(other.refresh, T0.plus(62)).is_ok());
    // Presenting tokens of the revoked family again records nothing new.
    assert_eq!(sessions.refresh(rt1.refresh, T0.plus(63)), Err(Refusal::InvalidGrant));
    assert_eq!(sessions.revocations().len(), 1);
}

#[test]
fn ses3_unknown_and_expired_refresh_tokens_are_invalid_grants() {
    let mut sessions = store();
    assert_eq!(sessions.refresh(RefreshToken(0), T0), Err(Refusal::InvalidGrant));
    assert_eq!(sessions.refresh(RefreshToken(u64::MAX), T0), Err(Refusal::InvalidGrant));
    let tokens = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let idle_end = T0.plus(REFRESH_TTL_SECONDS);
    assert_eq!(sessions.refresh(tokens.refresh, idle_end), Err(Refusal::InvalidGrant));
    assert!(sessions.revocations().is_empty(), "expiry is not a revocation");
    assert!(sessions.refresh(tokens.refresh, idle_end.plus(-1)).is_ok());
}

#[test]
fn ses3_no_refresh_outlives_the_absolute_lifetime() {
    let mut sessions = store();
    let mut tokens = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let end = T0.plus(ABSOLUTE_LIFETIME_SECONDS);
    let mut now = T0;
    while now.plus(6 * 24 * 3600) < end {
        now = now.plus(6 * 24 * 3600);
        tokens = sessions.refresh(tokens.refresh, now).unwrap();
        assert!(tokens.refresh_expires_at <= end && tokens.access_expires_at <= end);
    }
    let last = sessions.refresh(tokens.refresh, end.plus(-100)).unwrap();
    assert_eq!(last.access_expires_at, end, "clamped to the absolute end");
    assert_eq!(sessions.authenticate(last.access, end), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.refresh(last.refresh, end), Err(Refusal::InvalidGrant));
    assert!(sessions.sessions_of(ALICE, end).is_empty());
}

#[test]
fn ses4_logout_revokes_at_once() {
    let mut sessions = store();
    let tokens = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    assert!(sessions.logout(tokens.session, T0.plus(5)));
    assert_eq!(sessions.authenticate(tokens.access, T0.plus(5)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.refresh(tokens.refresh, T0.plus(5)), Err(Refusal::InvalidGrant));
    assert_eq!(sessions.revocation(tokens.session).map(|r| r.reason), Some(RevocationReason::Logout));
    assert!(!sessions.logout(tokens.session, T0.plus(6)), "a second logout changes nothing");
    assert_eq!(sessions.revocation(tokens.session).map(|r| r.at), Some(T0.plus(5)));
    assert!(!sessions.logout(SessionId(99), T0));
}

#[test]
fn ses5_users_list_and_revoke_their_own_sessions() {
    let mut sessions = store();
    let laptop = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let phone = sign_in(&mut sessions, ALICE, PHONE, T0.plus(10));
    let bobs = sign_in(&mut sessions, BOB, PHONE, T0.plus(20));
    let listed: Vec<_> = sessions.sessions_of(ALICE, T0.plus(30)).iter().map(|s| (s.session, s.client)).collect();
    assert_eq!(listed, vec![(laptop.session, LAPTOP), (phone.session, PHONE)]);

    assert_eq!(sessions.revoke_own(ALICE, bobs.session, T0.plus(30)), Err(Refusal::NotFound));
    assert_eq!(sessions.revoke_own(ALICE, SessionId(1000), T0.plus(30)), Err(Refusal::NotFound));
    assert!(sessions.authenticate(bobs.access, T0.plus(30)).is_ok());

    assert_eq!(sessions.revoke_own(ALICE, phone.session, T0.plus(30)), Ok(()));
    assert_eq!(sessions.authenticate(phone.access, T0.plus(30)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.revocation(phone.session).map(|r| r.reason), Some(RevocationReason::UserRevoked));
    assert_eq!(sessions.revoke_own(ALICE, phone.session, T0.plus(31)), Ok(()), "idempotent");
    let listed: Vec<_> = sessions.sessions_of(ALICE, T0.plus(30)).iter().map(|s| s.session).collect();
    assert_eq!(listed, vec![laptop.session]);
}

#[test]
fn ses5_an_admin_revokes_all_sessions_of_a_user() {
    let mut sessions = store();
    let laptop = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let phone = sign_in(&mut sessions, ALICE, PHONE, T0);
    let bobs = sign_in(&mut sessions, BOB, PHONE, T0);
    sessions.logout(phone.session, T0.plus(1));
    assert_eq!(sessions.revoke_all(ALICE, T0.plus(2)), vec![laptop.session], "already revoked ones are not listed");
    assert_eq!(sessions.authenticate(laptop.access, T0.plus(2)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.refresh(laptop.refresh, T0.plus(2)), Err(Refusal::InvalidGrant));
    assert!(sessions.authenticate(bobs.access, T0.plus(2)).is_ok());
    assert!(sessions.sessions_of(ALICE, T0.plus(2)).is_empty());
    let reasons: Vec<_> = sessions.revocations().iter().map(|r| (r.session, r.reason)).collect();
    assert_eq!(
        reasons,
        vec![(phone.session, RevocationReason::Logout), (laptop.session, RevocationReason::AdminRevoked)]
    );
    assert!(sessions.revoke_all(UserId(77), T0).is_empty());
}

#[test]
fn ses6_access_tokens_expire_at_exactly_900_seconds() {
    let mut sessions = store();
    let tokens = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    assert!(sessions.authenticate(tokens.access, T0.plus(899)).is_ok());
    assert_eq!(sessions.authenticate(tokens.access, T0.plus(900)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.authenticate(tokens.access, T0.plus(901)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.authenticate(AccessToken(12345), T0), Err(Refusal::Unauthenticated));
    // The session itself lives on: its refresh token still works after the access token expired.
    assert!(sessions.refresh(tokens.refresh, T0.plus(900)).is_ok());
}

#[test]
fn ses7_a_password_change_revokes_the_other_sessions_at_once() {
    let mut sessions = store();
    let current = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let other = sign_in(&mut sessions, ALICE, PHONE, T0);
    let bobs = sign_in(&mut sessions, BOB, PHONE, T0);
    sessions.step_up(current.session, true, true, T0).unwrap();
    assert_eq!(sessions.on_password_change(ALICE, Some(current.session), T0.plus(1)), vec![other.session]);
    assert_eq!(sessions.authenticate(other.access, T0.plus(1)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.revocation(other.session).map(|r| r.reason), Some(RevocationReason::PasswordChanged));
    let kept = sessions.authenticate(current.access, T0.plus(1)).unwrap();
    assert_eq!(kept.step_up_at, Some(T0), "the session that changed the password keeps its step-up");
    assert!(sessions.authenticate(bobs.access, T0.plus(1)).is_ok());
    // A reset without a session of the user (admin, e-mail link) revokes everything.
    assert_eq!(sessions.on_password_change(ALICE, None, T0.plus(2)), vec![current.session]);
    assert!(sessions.sessions_of(ALICE, T0.plus(2)).is_empty());
    // Another user's session as `keep` protects nothing of Alice's and touches nothing of Bob's.
    let again = sign_in(&mut sessions, ALICE, LAPTOP, T0.plus(3));
    assert_eq!(sessions.on_password_change(ALICE, Some(bobs.session), T0.plus(4)), vec![again.session]);
    assert!(!sessions.is_revoked(bobs.session));
}

#[test]
fn ses7_a_role_change_needs_no_session_change() {
    // The role is read from the account on every request: the same session is an admin one, then not.
    let mut sessions = store();
    let tokens = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    sessions.step_up(tokens.session, true, true, T0).unwrap();
    let me = sessions.authenticate(tokens.access, T0.plus(1)).unwrap();
    let op = OperationKind::RevokeUserSessions;
    assert_eq!(authorize(&me.principal(Role::Admin), op, None, T0.plus(1)), Ok(()));
    assert_eq!(authorize(&me.principal(Role::User), op, None, T0.plus(1)), Err(Refusal::Forbidden));
    assert!(!sessions.is_revoked(tokens.session));
}

#[test]
fn ses8_a_passkey_signs_in_and_steps_up_its_own_account_only() {
    let mut passkeys = PasskeyRegistry::new(true);
    let challenge = passkeys.issue_challenge(ChallengePurpose::Registration { user: ALICE }, T0).unwrap();
    passkeys.register(challenge, CredentialId(1), 0, T0).unwrap();
    let mut sessions = store();
    let assert_with_key = |passkeys: &mut PasskeyRegistry| {
        let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        let assertion = Assertion { challenge, credential: CredentialId(1), sign_count: 0, signature_valid: true };
        passkeys.verify_assertion(assertion, T0)
    };
    let user = assert_with_key(&mut passkeys).unwrap();
    let tokens = sessions.sign_in_with_passkey(user, LAPTOP, T0).unwrap();
    assert_eq!(sessions.authenticate(tokens.access, T0).map(|me| me.user), Ok(ALICE));

    let bobs = sign_in(&mut sessions, BOB, PHONE, T0);
    let alices_key = assert_with_key(&mut passkeys).unwrap();
    let refused = sessions.step_up_with_passkey(bobs.session, alices_key, T0);
    assert_eq!(refused, Err(Refusal::InvalidCredentials));
    assert!(!sessions.stepped_up(bobs.session, T0));
    assert_eq!(sessions.step_up_with_passkey(tokens.session, alices_key, T0), Ok(()));
    assert!(sessions.stepped_up(tokens.session, T0));
}

#[test]
fn ses9_step_up_elevates_only_its_session_for_five_minutes() {
    let mut sessions = store();
    let a = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    let b = sign_in(&mut sessions, ALICE, PHONE, T0);
    assert_eq!(sessions.step_up(a.session, true, false, T0), Err(Refusal::InvalidCredentials));
    assert_eq!(sessions.step_up(a.session, false, true, T0), Err(Refusal::InvalidCredentials));
    assert!(!sessions.stepped_up(a.session, T0));
    sessions.step_up(a.session, true, true, T0.plus(10)).unwrap();

    let in_a = sessions.authenticate(a.access, T0.plus(20)).unwrap();
    let in_b = sessions.authenticate(b.access, T0.plus(20)).unwrap();
    assert_eq!(in_a.step_up_at, Some(T0.plus(10)));
    assert_eq!(in_b.step_up_at, None, "session B of the same user is not elevated");
    let op = OperationKind::ResolveDispute;
    let parties = Some(crate::authz::Parties { buyer: BOB, seller: UserId(3) });
    assert_eq!(authorize(&in_a.principal(Role::Admin), op, parties, T0.plus(20)), Ok(()));
    assert_eq!(authorize(&in_b.principal(Role::Admin), op, parties, T0.plus(20)), Err(Refusal::StepUpRequired));

    assert!(sessions.stepped_up(a.session, T0.plus(309)));
    assert!(!sessions.stepped_up(a.session, T0.plus(310)), "expired after 300 s");
    // The step-up belongs to the session, so it survives a refresh of that session…
    let a2 = sessions.refresh(a.refresh, T0.plus(100)).unwrap();
    assert_eq!(sessions.authenticate(a2.access, T0.plus(100)).unwrap().step_up_at, Some(T0.plus(10)));
    // …and a revoked session can neither use nor take one.
    sessions.logout(a.session, T0.plus(101));
    assert!(!sessions.stepped_up(a.session, T0.plus(101)));
    assert_eq!(sessions.step_up(a.session, true, true, T0.plus(102)), Err(Refusal::Unauthenticated));
    assert_eq!(sessions.step_up(SessionId(999), true, true, T0), Err(Refusal::Unauthenticated));
}

#[test]
fn ses9_the_step_up_window_agrees_with_authz() {
    let mut sessions = store();
    let a = sign_in(&mut sessions, ALICE, LAPTOP, T0);
    sessions.step_up(a.session, true, true, T0).unwrap();
    for offset in [-1, 0, 1, 299, 300, 301] {
        let now = T0.plus(offset);
        assert_eq!(sessions.stepped_up(a.session, now), step_up_valid(Some(T0), now), "at +{offset}");
    }
}

#[test]
fn ses10_the_eleventh_attempt_in_a_minute_is_refused_per_account() {
    let mut sessions = store();
    for i in 0..10 {
        // Different clients, so only the per-account limit can apply; successes and failures both count.
        let ok = sessions.sign_in(SignInName::Account(ALICE), i % 2 == 0, ClientId(100 + i), T0.plus(i.into()));
        assert_ne!(ok, Err(Refusal::RateLimited), "attempt {}", i + 1);
    }
    let eleventh = sessions.sign_in(SignInName::Account(ALICE), true, ClientId(200), T0.plus(59));
    assert_eq!(eleventh, Err(Refusal::RateLimited), "refused even with the right password");
    assert_eq!(sessions.session_count(), 5);
    // Other accounts are not affected.
    assert!(sessions.sign_in(SignInName::Account(BOB), true, ClientId(200), T0.plus(59)).is_ok());
    // The window slides: the first attempt (at T0) leaves it at T0 + 60, so one more is allowed then, not two.
    assert!(sessions.sign_in(SignInName::Account(ALICE), true, ClientId(201), T0.plus(60)).is_ok());
    let again = sessions.sign_in(SignInName::Account(ALICE), true, ClientId(202), T0.plus(60));
    assert_eq!(again, Err(Refusal::RateLimited));
    // A minute after the last counted attempts, the account is free again.
    assert!(sessions.sign_in(SignInName::Account(ALICE), true, ClientId(203), T0.plus(120)).is_ok());
}

#[test]
fn ses10_the_eleventh_attempt_in_a_minute_is_refused_per_client() {
    let mut sessions = store();
    for i in 0..10 {
        let name = SignInName::Unknown(i);
        assert_eq!(sessions.sign_in(name, false, LAPTOP, T0), Err(Refusal::InvalidCredentials));
    }
    assert_eq!(sessions.sign_in(SignInName::Account(ALICE), true, LAPTOP, T0.plus(30)), Err(Refusal::RateLimited));
    // Another client may still sign in to the same account: the per-account count is only 0 for Alice.
    assert!(sessions.sign_in(SignInName::Account(ALICE), true, PHONE, T0.plus(30)).is_ok());
    // Refused attempts do not count, so the client is free once its counted attempts are a minute old.
    assert!(sessions.sign_in(SignInName::Account(ALICE), true, LAPTOP, T0.plus(60)).is_ok());
}

#[test]
fn ses10_account_and_client_limits_are_independent() {
    let mut sessions = store();
    for i in 0..10 {
        let _ = sessions.sign_in(SignInName::Account(ALICE), false, LAPTOP, T0.plus(i));
    }
    let over_account = sessions.sign_in(SignInName::Account(ALICE), true, PHONE, T0.plus(10));
    let over_client = sessions.sign_in(SignInName::Account(BOB), true, LAPTOP, T0.plus(10));
    assert_eq!(over_account, Err(Refusal::RateLimited));
    assert_eq!(over_client, Err(Refusal::RateLimited));
    assert!(sessions.sign_in(SignInName::Account(BOB), true, PHONE, T0.plus(10)).is_ok());
}

#[test]
fn ses10_passkey_sign_ins_count_too() {
    let mut sessions = store();
    for _ in 0..10 {
        sessions.sign_in_with_passkey(ALICE, LAPTOP, T0).unwrap();
    }
    assert_eq!(sessions.sign_in_with_passkey(ALICE, PHONE, T0), Err(Refusal::RateLimited));
}

#[test]
fn extreme_times_and_configs_do_not_panic() {
    let config = SessionConfig {
        access_ttl_seconds: i64::MAX,
        refresh_ttl_seconds: i64::MIN,
        absolute_lifetime_seconds: i64::MAX,
        step_up_window_seconds: i64::MIN,
        sign_in_limit: u32::MAX,
        sign_in_window_seconds: i64::MAX,
        access_survives_refresh: false,
    };
    for config in [config, SessionConfig::default()] {
        let mut sessions = SessionStore::new(config);
        for now in [Timestamp(i64::MIN), Timestamp(0), Timestamp(i64::MAX)] {
            if let Ok(tokens) = sessions.sign_in(SignInName::Account(ALICE), true, LAPTOP, now) {
                let _ = sessions.authenticate(tokens.access, Timestamp(i64::MIN));
                let _ = sessions.refresh(tokens.refresh, Timestamp(i64::MAX));
                let _ = sessions.step_up(tokens.session, true, true, now);
                let _ = sessions.stepped_up(tokens.session, Timestamp(i64::MIN));
            }
        }
    }
}

/// One operation of the property tests; token and session picks index what was issued so far, or are raw numbers.
#[derive(Debug, Clone)]
enum Op {
    SignIn { name: u8, password_ok: bool, client: u8 },
    Refresh(prop::sample::Index, Option<u64>),
    Authenticate(prop::sample::Index, Option<u64>),
    Logout(prop::sample::Index),
    RevokeOwn { user: u8, session: prop::sample::Index },
    RevokeAll { user: u8 },
    StepUp { session: prop::sample::Index, password_ok: bool, totp_ok: bool },
    PasswordChange { user: u8, keep: Option<prop::sample::Index> },
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let index = any::<prop::sample::Index>();
    let raw = proptest::option::weighted(0.1, any::<u64>());
    prop_oneof![
        3 => (0u8..6, proptest::bool::weighted(0.8), 0u8..3)
            .prop_map(|(name, password_ok, client)| Op::SignIn { name, password_ok, client }),
        3 => (index.clone(), raw.clone()).prop_map(|(i, raw)| Op::Refresh(i, raw)),
        2 => (index.clone(), raw).prop_map(|(i, raw)| Op::Authenticate(i, raw)),
        1 => index.clone().prop_map(Op::Logout),
        1 => (0u8..4, index.clone()).prop_map(|(user, session)| Op::RevokeOwn { user, session }),
        1 => (0u8..4).prop_map(|user| Op::RevokeAll { user }),
        1 => (index.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(session, password_ok, totp_ok)| Op::StepUp { session, password_ok, totp_ok }),
        1 => (0u8..4, proptest::option::of(index)).prop_map(|(user, keep)| Op::PasswordChange { user, keep }),
        2 => prop_oneof![0i64..120, 0i64..2_000, Just(900), Just(REFRESH_TTL_SECONDS)].prop_map(Op::Wait),
    ]
}

fn sign_in_name(name: u8) -> SignInName {
    if name < 4 { SignInName::Account(UserId(name.into())) } else { SignInName::Unknown(name.into()) }
}

/// Runs `ops` and checks the session invariants after each: a revoked session never authenticates or refreshes
/// again (and trying changes nothing), revocation is permanent and logged once with its reason, and every accepted
/// access token belongs to a live session.
fn run(config: SessionConfig, ops: Vec<Op>, mut now: Timestamp) -> Result<(), TestCaseError> {
    let mut sessions = SessionStore::new(config);
    let mut issued: Vec<Tokens> = Vec::new();
    let mut revoked_before = 0;
    for op in ops {
        let pick = |i: &prop::sample::Index| (!issued.is_empty()).then(|| issued[i.index(issued.len())]);
        match op {
            Op::SignIn { name, password_ok, client } => {
                if let Ok(tokens) = sessions.sign_in(sign_in_name(name), password_ok, ClientId(client.into()), now) {
                    prop_assert!(name < 4 && password_ok);
                    issued.push(tokens);
                }
            }
            Op::Refresh(i, raw) => {
                let token = raw.map(RefreshToken).or_else(|| pick(&i).map(|t| t.refresh));
                if let Some(token) = token {
                    let was_revoked = sessions.session_of_refresh(token).is_some_and(|s| sessions.is_revoked(s));
                    let result = sessions.refresh(token, now);
                    if let Ok(tokens) = result {
                        prop_assert!(!was_revoked);
                        prop_assert_eq!(Some(tokens.session), sessions.session_of_refresh(token));
                        issued.push(tokens);
                    }
                }
            }
            Op::Authenticate(i, raw) => {
                let token = raw.map(AccessToken).or_else(|| pick(&i).map(|t| t.access));
                if let Some(Ok(me)) = token.map(|token| sessions.authenticate(token, now)) {
                    prop_assert!(sessions.is_active(me.session, now));
                    prop_assert_eq!(sessions.user_of(me.session), Some(me.user));
                }
            }
            Op::Logout(i) => {
                if let Some(t) = pick(&i) {
                    sessions.logout(t.session, now);
                }
            }
            Op::RevokeOwn { user, session } => {
                if let Some(t) = pick(&session) {
                    let _ = sessions.revoke_own(UserId(user.into()), t.session, now);
                }
            }
            Op::RevokeAll { user } => {
                for session in sessions.revoke_all(UserId(user.into()), now) {
                    prop_assert_eq!(
                        sessions.revocation(session).map(|r| r.reason),
                        Some(RevocationReason::AdminRevoked)
                    );
                }
            }
            Op::StepUp { session, password_ok, totp_ok } => {
                if let Some(t) = pick(&session) {
                    let _ = sessions.step_up(t.session, password_ok, totp_ok, now);
                }
            }
            Op::PasswordChange { user, keep } => {
                let keep = keep.and_then(|k| pick(&k)).map(|t| t.session);
                let revoked = sessions.on_password_change(UserId(user.into()), keep, now);
                prop_assert!(keep.is_none_or(|k| !revoked.contains(&k)));
            }
            Op::Wait(seconds) => now = now.plus(seconds),
        }

        // Revocation is permanent and logged once: the log only grows, and names each revoked session once.
        let log = sessions.revocations();
        prop_assert!(log.len() >= revoked_before);
        revoked_before = log.len();
        for revocation in log {
            prop_assert_eq!(sessions.revocation(revocation.session), Some(*revocation));
        }
        // A revoked session never authenticates or refreshes again, and trying changes nothing.
        for tokens in &issued {
            if sessions.is_revoked(tokens.session) {
                prop_assert_eq!(sessions.authenticate(tokens.access, now), Err(Refusal::Unauthenticated));
                let before = sessions.clone();
                prop_assert_eq!(sessions.refresh(tokens.refresh, now), Err(Refusal::InvalidGrant));
                prop_assert!(before == sessions, "refusing a revoked family changed the state");
                prop_assert!(!sessions.stepped_up(tokens.session, now));
                prop_assert!(
                    sessions
                        .sessions_of(sessions.user_of(tokens.session).unwrap(), now)
                        .iter()
                        .all(|s| s.session != tokens.session)
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary sequences of session operations never panic, and a revoked session never authenticates again.
    #[test]
    fn sessions_a_revoked_session_never_authenticates_again(ops in proptest::collection::vec(op(), 0..120)) {
        run(SessionConfig::default(), ops, T0)?;
    }

    /// The same with tight limits, only the newest access token valid, and any start time.
    #[test]
    fn sessions_invariants_hold_under_other_configs(
        ops in proptest::collection::vec(op(), 0..120),
        start in prop_oneof![Just(0i64), -1_000_000i64..1_000_000, Just(i64::MIN / 2)],
        limit in 0u32..4,
        survives in any::<bool>(),
    ) {
        let config = SessionConfig {
            sign_in_limit: limit,
            access_survives_refresh: survives,
            refresh_ttl_seconds: 3_000,
            absolute_lifetime_seconds: 10_000,
            ..SessionConfig::default()
        };
        run(config, ops, Timestamp(start))?;
    }

    /// Any timestamps at all, in any order, never make an operation panic.
    #[test]
    fn sessions_never_panic_on_any_time(times in proptest::collection::vec(any::<i64>(), 1..40), ttl in any::<i64>()) {
        let config = SessionConfig { access_ttl_seconds: ttl, refresh_ttl_seconds: ttl, ..SessionConfig::default() };
        let mut sessions = SessionStore::new(config);
        let mut last = None;
        for (i, &t) in times.iter().enumerate() {
            let now = Timestamp(t);
            let user = UserId((i % 3) as u32);
            if let Ok(tokens) = sessions.sign_in(SignInName::Account(user), true, ClientId(i as u32), now) {
                last = Some(tokens);
            }
            if let Some(tokens) = last {
                let _ = sessions.authenticate(tokens.access, now);
                let _ = sessions.step_up(tokens.session, true, true, now);
                let _ = sessions.stepped_up(tokens.session, now);
                let _ = sessions.refresh(tokens.refresh, now);
                let _ = sessions.sessions_of(user, now);
                if t % 5 == 0 {
                    sessions.on_password_change(user, Some(tokens.session), now);
                }
            }
        }
    }
}

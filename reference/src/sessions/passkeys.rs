//! Passkeys (SES-8) as the decisions of a WebAuthn relying party, without cryptography: an assertion carries whether
//! its signature verified against the credential it names, and the model decides everything else — the switch,
//! single-use challenges with a 5-minute lifetime, which ceremony a challenge belongs to, known credentials and the
//! signature counter.
//!
//! The ceremony shape is the one of Node backends (SimpleWebAuthn): options (a challenge is issued and stored) →
//! verify (the challenge is consumed). Choices where the SPEC is silent:
//! - A challenge is consumed by the first response that presents it, whatever the outcome, so a failed response
//!   cannot be retried against it (the client asks for new options).
//! - A challenge is valid while `now < issued_at + 300`.
//! - Counter (WebAuthn §7.2 step 21, as SimpleWebAuthn applies it): when the stored or the presented counter is
//!   non-zero, the presented one must be greater; two zeros pass, because software authenticators and synced
//!   passkeys keep the counter at 0. A refused counter leaves the stored one and the credential as they were.
//! - Switching passkeys off keeps the credentials registered; they are refused while off and work again when on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, UserId};
use crate::refusal::Refusal;

/// Seconds a passkey challenge is valid (SES-8: 5 minutes).
pub const PASSKEY_CHALLENGE_TTL_SECONDS: i64 = 300;

/// A WebAuthn challenge, numbered in issue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Challenge(pub u64);

/// A credential id (chosen by the authenticator; the oracle numbers the ones it meets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CredentialId(pub u64);

/// Which ceremony a challenge was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengePurpose {
    /// Registering a new passkey for this signed-in account.
    Registration {
        /// The account the passkey will belong to.
        user: UserId,
    },
    /// Authenticating with a passkey: sign-in, or step-up of a session (the session checks the account).
    SignIn,
}

/// A passkey authentication response, reduced to what the relying party decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assertion {
    /// The challenge the client signed.
    pub challenge: Challenge,
    /// The credential the response names.
    pub credential: CredentialId,
    /// The authenticator's signature counter.
    pub sign_count: u32,
    /// Whether the signature verifies with the public key of `credential`; false for a response signed by another
    /// credential's key.
    pub signature_valid: bool,
}

/// Why a passkey ceremony was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyError {
    /// Passkeys are switched off.
    #[error("passkeys are disabled")]
    Disabled,
    /// No such challenge was issued.
    #[error("unknown challenge")]
    UnknownChallenge,
    /// The challenge was already presented once (a replayed response).
    #[error("challenge already used")]
    ChallengeReplayed,
    /// The challenge is 5 minutes old or older.
    #[error("challenge expired")]
    ChallengeExpired,
    /// The challenge was issued for the other ceremony.
    #[error("challenge issued for another ceremony")]
    WrongCeremony,
    /// No such credential is registered.
    #[error("unknown credential")]
    UnknownCredential,
    /// The signature does not verify with the named credential's key.
    #[error("signature does not verify")]
    BadSignature,
    /// The signature counter did not increase (a possibly cloned authenticator).
    #[error("sign counter did not increase")]
    CounterNotIncreased,
    /// The credential id is already registered (to this or another account).
    #[error("credential already registered")]
    CredentialAlreadyRegistered,
}

impl PasskeyError {
    /// The refusal on the wire: `passkeys_disabled` when off, `validation_failed` for a credential registered twice,
    /// and `invalid_credentials` (401) for every failed ceremony: the response does not authenticate anyone, as a
    /// wrong password does not (contracts/openapi.yaml, the passkey authentication route).
    pub const fn refusal(self) -> Refusal {
        match self {
            PasskeyError::Disabled => Refusal::PasskeysDisabled,
            PasskeyError::CredentialAlreadyRegistered => Refusal::ValidationFailed,
            PasskeyError::UnknownChallenge
            | PasskeyError::ChallengeReplayed
            | PasskeyError::ChallengeExpired
            | PasskeyError::WrongCeremony
            | PasskeyError::UnknownCredential
            | PasskeyError::BadSignature
            | PasskeyError::CounterNotIncreased => Refusal::InvalidCredentials,
        }
    }
}

impl From<PasskeyError> for Refusal {
    fn from(error: PasskeyError) -> Refusal {
        error.refusal()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ChallengeRecord {
    purpose: ChallengePurpose,
    expires_at: Timestamp,
    consumed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CredentialRecord {
    user: UserId,
    sign_count: u32,
}

/// The relying party's passkey state: the switch, the challenges issued and the registered credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PasskeyRegistry {
    enabled: bool,
    /// Indexed by `Challenge.0`.
    challenges: Vec<ChallengeRecord>,
    credentials: BTreeMap<CredentialId, CredentialRecord>,
}

impl Default for PasskeyRegistry {
    /// Switched off: passkeys are an opt-in feature of a deployment.
    fn default() -> PasskeyRegistry {
        PasskeyRegistry::new(false)
    }
}

impl PasskeyRegistry {
    /// An empty registry, switched on or off.
    pub fn new(enabled: bool) -> PasskeyRegistry {
        PasskeyRegistry { enabled, challenges: Vec::new(), credentials: BTreeMap::new() }
    }

    /// Whether passkeys are switched on.
    pub const fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Switches passkeys on or off. Registered credentials are kept either way.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Issues a single-use challenge for a ceremony (the "options" endpoint), valid for 5 minutes from `now`.
    pub fn issue_challenge(&mut self, purpose: ChallengePurpose, now: Timestamp) -> Result<Challenge, PasskeyError> {
        if !self.enabled {
            return Err(PasskeyError::Disabled);
        }
        let challenge = Challenge(self.challenges.len() as u64);
        let expires_at = Timestamp(now.0.saturating_add(PASSKEY_CHALLENGE_TTL_SECONDS));
        self.challenges.push(ChallengeRecord { purpose, expires_at, consumed: false });
        Ok(challenge)
    }

    /// Finishes a registration: the challenge must be a live registration challenge, and the credential new. The
    /// credential then belongs to the challenge's account, with the authenticator's initial `sign_count` (0 for
    /// software authenticators). Returns that account. Refused while switched off, creating nothing.
    pub fn register(
        &mut self,
        challenge: Challenge,
        credential: CredentialId,
        sign_count: u32,
        now: Timestamp,
    ) -> Result<UserId, PasskeyError> {
        if !self.enabled {
            return Err(PasskeyError::Disabled);
        }
        let ChallengePurpose::Registration { user } = self.consume(challenge, now)? else {
            return Err(PasskeyError::WrongCeremony);
        };
        if self.credentials.contains_key(&credential) {
            return Err(PasskeyError::CredentialAlreadyRegistered);
        }
        self.credentials.insert(credential, CredentialRecord { user, sign_count });
        Ok(user)
    }

    /// Verifies a passkey authentication response and returns the account it authenticates. The checks, in order:
    /// switched on, a live and unused sign-in challenge (consumed now whatever follows), a registered credential, a
    /// valid signature, and a counter that increased unless both counters are 0. Only a verified response updates
    /// the stored counter.
    pub fn verify_assertion(&mut self, assertion: Assertion, now: Timestamp) -> Result<UserId, PasskeyError> {
        if !self.enabled {
            return Err(PasskeyError::Disabled);
        }
        let ChallengePurpose::SignIn = self.consume(assertion.challenge, now)? else {
            return Err(PasskeyError::WrongCeremony);
        };
        let Some(record) = self.credentials.get_mut(&assertion.credential) else {
            return Err(PasskeyError::UnknownCredential);
        };
        if !assertion.signature_valid {
            return Err(PasskeyError::BadSignature);
        }
        let counted = assertion.sign_count != 0 || record.sign_count != 0;
        if counted && assertion.sign_count <= record.sign_count {
            return Err(PasskeyError::CounterNotIncreased);
        }
        record.sign_count = assertion.sign_count;
        Ok(record.user)
    }

    /// The account a credential belongs to, if it is registered.
    pub fn owner(&self, credential: CredentialId) -> Option<UserId> {
        self.credentials.get(&credential).map(|record| record.user)
    }

    /// The stored signature counter of a credential, if it is registered.
    pub fn sign_count(&self, credential: CredentialId) -> Option<u32> {
        self.credentials.get(&credential).map(|record| record.sign_count)
    }

    /// The credentials registered to `user`, in id order.
    pub fn credentials_of(&self, user: UserId) -> Vec<CredentialId> {
        self.credentials.iter().filter(|(_, record)| record.user == user).map(|(&id, _)| id).collect()
    }

    /// Number of registered credentials.
    pub fn credential_count(&self) -> usize {
        self.credentials.len()
    }

    /// Consumes a challenge and returns its purpose if it was live: issued, not presented before, not expired.
    fn consume(&mut self, challenge: Challenge, now: Timestamp) -> Result<ChallengePurpose, PasskeyError> {
        let record = usize::try_from(challenge.0)
            .ok()
            .and_then(|i| self.challenges.get_mut(i))
            .ok_or(PasskeyError::UnknownChallenge)?;
        if record.consumed {
            return Err(PasskeyError::ChallengeReplayed);
        }
        record.consumed = true;
        if now >= record.expires_at {
            return Err(PasskeyError::ChallengeExpired);
        }
        Ok(record.purpose)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: Timestamp = Timestamp(1_700_000_000);
    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const KEY_A: CredentialId = CredentialId(10);
    const KEY_B: CredentialId = CredentialId(20);

    /// A registry, on, with Alice's and Bob's software passkeys registered (counters 0).
    fn registry() -> PasskeyRegistry {
        let mut passkeys = PasskeyRegistry::new(true);
        for (user, key) in [(ALICE, KEY_A), (BOB, KEY_B)] {
            let challenge = passkeys.issue_challenge(ChallengePurpose::Registration { user }, T0).unwrap();
            assert_eq!(passkeys.register(challenge, key, 0, T0), Ok(user));
        }
        passkeys
    }

    fn assertion(challenge: Challenge, credential: CredentialId, sign_count: u32) -> Assertion {
        Assertion { challenge, credential, sign_count, signature_valid: true }
    }

    #[test]
    fn ses8_disabled_refuses_everything_and_creates_no_credential() {
        let mut passkeys = PasskeyRegistry::new(false);
        let purpose = ChallengePurpose::Registration { user: ALICE };
        assert_eq!(passkeys.issue_challenge(purpose, T0), Err(PasskeyError::Disabled));
        assert_eq!(passkeys.register(Challenge(0), KEY_A, 0, T0), Err(PasskeyError::Disabled));
        assert_eq!(passkeys.verify_assertion(assertion(Challenge(0), KEY_A, 0), T0), Err(PasskeyError::Disabled));
        assert_eq!(passkeys.credential_count(), 0);
        assert_eq!(PasskeyError::Disabled.refusal(), Refusal::PasskeysDisabled);

        // Switched off after registration: the credential is kept but refused, and a challenge from before is not
        // consumed by the refused call.
        let mut passkeys = registry();
        let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        passkeys.set_enabled(false);
        assert_eq!(passkeys.verify_assertion(assertion(challenge, KEY_A, 0), T0), Err(PasskeyError::Disabled));
        assert_eq!(passkeys.credential_count(), 2);
        passkeys.set_enabled(true);
        assert_eq!(passkeys.verify_assertion(assertion(challenge, KEY_A, 0), T0), Ok(ALICE));
    }

    #[test]
    fn ses8_enabled_registration_and_sign_in_succeed() {
        let mut passkeys = registry();
        assert_eq!(passkeys.credentials_of(ALICE), vec![KEY_A]);
        assert_eq!(passkeys.owner(KEY_B), Some(BOB));
        let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        assert_eq!(passkeys.verify_assertion(assertion(challenge, KEY_B, 0), T0.plus(10)), Ok(BOB));
    }

    #[test]
    fn ses8_a_replayed_assertion_is_refused() {
        let mut passkeys = registry();
        let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        let response = assertion(challenge, KEY_A, 0);
        assert_eq!(passkeys.verify_assertion(response, T0), Ok(ALICE));
        assert_eq!(passkeys.verify_assertion(response, T0.plus(1)), Err(PasskeyError::ChallengeReplayed));
        assert_eq!(PasskeyError::ChallengeReplayed.refusal(), Refusal::InvalidCredentials);
    }

    #[test]
    fn ses8_a_challenge_expires_after_five_minutes() {
        let mut passkeys = registry();
        let fresh = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        let stale = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        assert_eq!(passkeys.verify_assertion(assertion(fresh, KEY_A, 0), T0.plus(299)), Ok(ALICE));
        let at_300 = passkeys.verify_assertion(assertion(stale, KEY_A, 0), T0.plus(300));
        assert_eq!(at_300, Err(PasskeyError::ChallengeExpired));

        let purpose = ChallengePurpose::Registration { user: ALICE };
        let late = passkeys.issue_challenge(purpose, T0).unwrap();
        assert_eq!(passkeys.register(late, CredentialId(30), 0, T0.plus(300)), Err(PasskeyError::ChallengeExpired));
        assert_eq!(passkeys.owner(CredentialId(30)), None);
    }

    #[test]
    fn ses8_another_credential_or_an_unknown_one_is_refused() {
        let mut passkeys = registry();
        let mut signed_by_other_key =
            assertion(passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap(), KEY_A, 0);
        signed_by_other_key.signature_valid = false;
        assert_eq!(passkeys.verify_assertion(signed_by_other_key, T0), Err(PasskeyError::BadSignature));

        let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        let unknown = assertion(challenge, CredentialId(99), 0);
        assert_eq!(passkeys.verify_assertion(unknown, T0), Err(PasskeyError::UnknownCredential));
        // The failed response consumed its challenge: it cannot be retried with a good credential.
        assert_eq!(passkeys.verify_assertion(assertion(challenge, KEY_A, 0), T0), Err(PasskeyError::ChallengeReplayed));
    }

    #[test]
    fn ses8_a_sign_counter_that_goes_backwards_is_refused() {
        let mut passkeys = registry();
        let sign_in = |passkeys: &mut PasskeyRegistry, count| {
            let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
            passkeys.verify_assertion(assertion(challenge, KEY_A, count), T0)
        };
        assert_eq!(sign_in(&mut passkeys, 5), Ok(ALICE));
        assert_eq!(sign_in(&mut passkeys, 4), Err(PasskeyError::CounterNotIncreased));
        assert_eq!(sign_in(&mut passkeys, 5), Err(PasskeyError::CounterNotIncreased), "equal and non-zero");
        assert_eq!(sign_in(&mut passkeys, 0), Err(PasskeyError::CounterNotIncreased), "back to 0 after 5");
        assert_eq!(passkeys.sign_count(KEY_A), Some(5), "a refused counter is not stored");
        assert_eq!(sign_in(&mut passkeys, 6), Ok(ALICE));
    }

    #[test]
    fn ses8_software_authenticators_keep_counter_zero() {
        let mut passkeys = registry();
        for _ in 0..3 {
            let challenge = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
            assert_eq!(passkeys.verify_assertion(assertion(challenge, KEY_A, 0), T0), Ok(ALICE));
        }
        assert_eq!(passkeys.sign_count(KEY_A), Some(0));
    }

    #[test]
    fn ses8_challenges_belong_to_one_ceremony_and_credentials_register_once() {
        let mut passkeys = registry();
        let sign_in = passkeys.issue_challenge(ChallengePurpose::SignIn, T0).unwrap();
        assert_eq!(passkeys.register(sign_in, CredentialId(30), 0, T0), Err(PasskeyError::WrongCeremony));
        let registration = passkeys.issue_challenge(ChallengePurpose::Registration { user: BOB }, T0).unwrap();
        let response = assertion(registration, KEY_B, 0);
        assert_eq!(passkeys.verify_assertion(response, T0), Err(PasskeyError::WrongCeremony));

        let registration = passkeys.issue_challenge(ChallengePurpose::Registration { user: BOB }, T0).unwrap();
        assert_eq!(passkeys.register(registration, KEY_A, 0, T0), Err(PasskeyError::CredentialAlreadyRegistered));
        assert_eq!(passkeys.owner(KEY_A), Some(ALICE), "a taken credential id is not moved to another account");
        assert_eq!(PasskeyError::CredentialAlreadyRegistered.refusal(), Refusal::ValidationFailed);
        assert_eq!(
            passkeys.register(Challenge(u64::MAX), CredentialId(31), 0, T0),
            Err(PasskeyError::UnknownChallenge)
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Issue { registration: Option<u32>, now: i64 },
        Register { challenge: u64, credential: u64, count: u32, now: i64 },
        Verify { assertion: Assertion, now: i64 },
        Switch(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let now = prop_oneof![0i64..2_000, any::<i64>()];
        let challenge = prop_oneof![0u64..16, any::<u64>()];
        let count = prop_oneof![0u32..4, any::<u32>()];
        prop_oneof![
            (proptest::option::of(0u32..3), now.clone())
                .prop_map(|(registration, now)| Op::Issue { registration, now }),
            (challenge.clone(), 0u64..4, count.clone(), now.clone())
                .prop_map(|(challenge, credential, count, now)| Op::Register { challenge, credential, count, now }),
            (challenge, 0u64..5, count, any::<bool>(), now).prop_map(|(c, credential, sign_count, valid, now)| {
                Op::Verify {
                    assertion: Assertion {
                        challenge: Challenge(c),
                        credential: CredentialId(credential),
                        sign_count,
                        signature_valid: valid,
                    },
                    now,
                }
            }),
            any::<bool>().prop_map(Op::Switch),
        ]
    }

    proptest! {
        /// Arbitrary ceremonies never panic, a challenge is accepted at most once, a refused call changes no
        /// credential, and nothing is created while switched off.
        #[test]
        fn ses8_passkey_ceremonies_never_panic_and_challenges_are_single_use(ops in proptest::collection::vec(op(), 0..80)) {
            let mut passkeys = PasskeyRegistry::new(true);
            let mut accepted = std::collections::BTreeSet::new();
            for op in ops {
                let before = passkeys.credentials.clone();
                match op {
                    Op::Issue { registration, now } => {
                        let purpose = registration.map_or(ChallengePurpose::SignIn, |u| ChallengePurpose::Registration { user: UserId(u) });
                        let _ = passkeys.issue_challenge(purpose, Timestamp(now));
                    }
                    Op::Register { challenge, credential, count, now } => {
                        let result = passkeys.register(Challenge(challenge), CredentialId(credential), count, Timestamp(now));
                        if result.is_ok() {
                            prop_assert!(accepted.insert(challenge), "challenge {} accepted twice", challenge);
                        } else {
                            prop_assert_eq!(&before, &passkeys.credentials);
                        }
                    }
                    Op::Verify { assertion, now } => {
                        let result = passkeys.verify_assertion(assertion, Timestamp(now));
                        if result.is_ok() {
                            prop_assert!(accepted.insert(assertion.challenge.0), "challenge accepted twice");
                            prop_assert!(assertion.signature_valid);
                        } else {
                            prop_assert_eq!(&before, &passkeys.credentials);
                        }
                    }
                    Op::Switch(on) => passkeys.set_enabled(on),
                }
                if !passkeys.is_enabled() {
                    prop_assert_eq!(&before, &passkeys.credentials);
                }
            }
        }
    }
}

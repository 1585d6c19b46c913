//! SES-8's checks, taken by the `sessions` suite: passkeys switched off answer `passkeys_disabled` and create
//! nothing; switched on, a software authenticator registers and signs in, while a replayed assertion (its
//! challenge is single-use), an assertion signed by another credential's key, one by a credential never
//! registered, and a counter that goes backwards are refused.
//!
//! Each is a fixed scenario taken by the model and the target side by side, the last request being the one the
//! claim is about. The target's passkeys start as its profile declares them launched; a check that needs them
//! switched (off, or on for a target launched without them) switches them through `[fixtures.configure]`, and puts
//! the configuration back afterwards, since the other suites share the target.

use conform_reference::generate::{Call, PasskeyAssertion, Step, Who};
use conform_reference::ops::OperationKind;

use super::Session;
use super::sessions::answers;
use crate::report::CheckOutcome;

/// The checks: name, rules, and how each runs.
pub(super) const CHECKS: &[super::sessions::Check] = &[
    ("passkeys switched off answer passkeys_disabled and create no credential", &["SES-8"], switched_off),
    ("a software authenticator registers a passkey and signs in with it", &["SES-8"], registers_and_signs_in),
    ("a passkey challenge is single-use: a replayed assertion is refused", &["SES-8"], replay_refused),
    ("an assertion by another credential is refused", &["SES-8"], other_credential_refused),
    ("a passkey sign counter that goes backwards is refused", &["SES-8"], counter_back_refused),
];

fn sign_in(assertion: PasskeyAssertion) -> Step {
    Step::PasskeySignIn { passkey: 0, assertion }
}

/// Runs `steps` with passkeys on (switched on first for a target launched without them), then puts the
/// configuration back; `switches` says the steps switch passkeys themselves.
fn passkey_scenario(session: &mut Session, steps: &[Step], switches: bool) -> CheckOutcome {
    if let Err(reason) = session.adapter.passkey_support() {
        return CheckOutcome::Unverified { reason };
    }
    let launched_on = session.abilities.passkeys;
    if (switches || !launched_on) && !session.abilities.switch_passkeys {
        return CheckOutcome::Unverified {
            reason: if launched_on {
                "the profile has no [fixtures.configure] to switch the target's passkeys off".to_owned()
            } else {
                "the profile declares passkeys off (capabilities.passkeys) and has no [fixtures.configure] to switch \
                 them on"
                    .to_owned()
            },
        };
    }
    let mut all = Vec::with_capacity(steps.len() + 1);
    if !launched_on {
        all.push(Step::Passkeys { enabled: true });
    }
    all.extend_from_slice(steps);
    let outcome = answers(session, &all, OperationKind::PasskeySignIn);
    match (session.restore_configuration(), outcome) {
        (Err(reason), CheckOutcome::Passed) => CheckOutcome::Unverified {
            reason: format!("the target's configuration could not be put back after the check: {reason}"),
        },
        (_, outcome) => outcome,
    }
}

/// Off: a registration challenge, a sign-in challenge, a registration (against a challenge issued while on) and a
/// sign-in (with a passkey registered while on, over a challenge issued while on) are each refused with
/// `passkeys_disabled`; back on, the credential of the refused registration does not sign in.
fn switched_off(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::PasskeyRegister { actor: 0, counter: true },
        Step::Call { who: Who::Buyer, call: Call::PasskeyRegisterOptions },
        Step::Call { who: Who::Anonymous, call: Call::PasskeySignInOptions },
        Step::Passkeys { enabled: false },
        Step::Call { who: Who::Buyer, call: Call::PasskeyRegisterOptions },
        Step::Call { who: Who::Anonymous, call: Call::PasskeySignInOptions },
        Step::Call { who: Who::Buyer, call: Call::PasskeyRegister },
        sign_in(PasskeyAssertion::Genuine),
        Step::Passkeys { enabled: true },
        sign_in(PasskeyAssertion::RefusedRegistration),
    ];
    passkey_scenario(session, &steps, true)
}

/// On: a counting authenticator registers and signs in twice (counter 1, then 2), a counterless one (synced-passkey
/// style, always 0) registers and signs in twice too.
fn registers_and_signs_in(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::PasskeyRegister { actor: 0, counter: true },
        sign_in(PasskeyAssertion::Genuine),
        sign_in(PasskeyAssertion::Genuine),
        Step::PasskeyRegister { actor: 1, counter: false },
        sign_in(PasskeyAssertion::Genuine),
        sign_in(PasskeyAssertion::Genuine),
    ];
    passkey_scenario(session, &steps, false)
}

/// A counterless passkey signs in, then its assertion is sent again as it was: only the used challenge can refuse
/// it (a counter of 0 is allowed to stay 0).
fn replay_refused(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::PasskeyRegister { actor: 0, counter: false },
        sign_in(PasskeyAssertion::Genuine),
        sign_in(PasskeyAssertion::Replayed),
    ];
    passkey_scenario(session, &steps, false)
}

/// A fresh challenge answered by a credential the target never registered, then one signed by another key that
/// names the registered credential (with a counter far above its own, so only the signature can refuse it).
fn other_credential_refused(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::PasskeyRegister { actor: 0, counter: true },
        sign_in(PasskeyAssertion::Genuine),
        sign_in(PasskeyAssertion::Unregistered),
        sign_in(PasskeyAssertion::OtherKey),
    ];
    passkey_scenario(session, &steps, false)
}

/// A counting passkey signs in twice (counter 2), then signs a fresh challenge with counter 1.
fn counter_back_refused(session: &mut Session) -> CheckOutcome {
    let steps = [
        Step::PasskeyRegister { actor: 0, counter: true },
        sign_in(PasskeyAssertion::Genuine),
        sign_in(PasskeyAssertion::Genuine),
        sign_in(PasskeyAssertion::CounterBack),
    ];
    passkey_scenario(session, &steps, false)
}

//! SES-8 as the model decides it, through the same steps the suites send to targets: the passkey ceremonies, the
//! switch, and each refused assertion.

use conform_reference::generate::{Call, PasskeyAssertion, Step, Who, run_on_model};
use conform_reference::model_suite::EPOCH;
use conform_reference::ops::OperationKind;
use conform_reference::refusal::Refusal;
use conform_reference::world::{Accepted, Config, Outcome, World};

/// The outcomes of the passkey requests of a scenario, in order.
fn passkey_outcomes(passkeys_enabled: bool, steps: &[Step]) -> Vec<(OperationKind, Outcome)> {
    let mut world = World::new(Config { passkeys_enabled, ..Config::default() }, EPOCH);
    let mut seen = Vec::new();
    run_on_model(&mut world, steps, |_, _, request, outcome| {
        if let Some(kind) = request.op.kind().filter(|k| k.is_passkey()) {
            seen.push((kind, outcome.clone()));
        }
    });
    seen
}

fn sign_in(assertion: PasskeyAssertion) -> Step {
    Step::PasskeySignIn { passkey: 0, assertion }
}

fn register(counter: bool) -> Step {
    Step::PasskeyRegister { actor: 0, counter }
}

fn last(outcomes: &[(OperationKind, Outcome)]) -> &Outcome {
    &outcomes.last().expect("a passkey request").1
}

#[test]
fn a_registered_passkey_signs_in_and_its_replay_is_refused() {
    let outcomes = passkey_outcomes(true, &[register(false), sign_in(PasskeyAssertion::Genuine)]);
    let kinds: Vec<_> = outcomes.iter().map(|(k, _)| *k).collect();
    use OperationKind as K;
    assert_eq!(kinds, [K::PasskeyRegisterOptions, K::PasskeyRegister, K::PasskeySignInOptions, K::PasskeySignIn]);
    assert!(matches!(last(&outcomes), Ok(Accepted::Tokens(_))), "{outcomes:?}");

    let steps = [register(false), sign_in(PasskeyAssertion::Genuine), sign_in(PasskeyAssertion::Replayed)];
    assert_eq!(last(&passkey_outcomes(true, &steps)), &Err(Refusal::InvalidCredentials));
}

#[test]
fn another_key_an_unknown_credential_and_a_counter_going_back_are_refused() {
    for assertion in [PasskeyAssertion::OtherKey, PasskeyAssertion::Unregistered] {
        let outcomes = passkey_outcomes(true, &[register(true), sign_in(assertion)]);
        assert_eq!(last(&outcomes), &Err(Refusal::InvalidCredentials), "{assertion:?}");
    }
    let genuine = sign_in(PasskeyAssertion::Genuine);
    let steps = [register(true), genuine.clone(), genuine, sign_in(PasskeyAssertion::CounterBack)];
    let outcomes = passkey_outcomes(true, &steps);
    let sign_ins: Vec<_> = outcomes.iter().filter(|(k, _)| *k == OperationKind::PasskeySignIn).collect();
    assert_eq!(sign_ins.len(), 3, "{outcomes:?}");
    assert!(sign_ins[..2].iter().all(|(_, o)| matches!(o, Ok(Accepted::Tokens(_)))), "{outcomes:?}");
    assert_eq!(last(&outcomes), &Err(Refusal::InvalidCredentials));
}

#[test]
fn switched_off_every_caller_gets_passkeys_disabled_and_nothing_is_created() {
    let steps = [
        register(true),
        Step::Call { who: Who::Buyer, call: Call::PasskeyRegisterOptions },
        Step::Passkeys { enabled: false },
        Step::Call { who: Who::Anonymous, call: Call::PasskeyRegisterOptions },
        Step::Call { who: Who::Buyer, call: Call::PasskeyRegister },
        Step::Call { who: Who::Anonymous, call: Call::PasskeySignInOptions },
        Step::Passkeys { enabled: true },
        sign_in(PasskeyAssertion::RefusedRegistration),
    ];
    let outcomes = passkey_outcomes(true, &steps);
    let disabled = outcomes.iter().filter(|(_, o)| *o == Err(Refusal::PasskeysDisabled)).count();
    assert_eq!(disabled, 3, "{outcomes:?}");
    assert_eq!(last(&outcomes), &Err(Refusal::InvalidCredentials));
    // Off from the start, the anonymous caller is told passkeys are off, not that it must sign in.
    let outcomes = passkey_outcomes(false, &[Step::Call { who: Who::Anonymous, call: Call::PasskeyRegisterOptions }]);
    assert_eq!(last(&outcomes), &Err(Refusal::PasskeysDisabled));
}

//! SES-8 with a software authenticator (1Password's `passkey` crate), over real HTTP.

use ::passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use ::passkey::client::{Client, DefaultClientData};
use ::passkey::crypto::rust_crypto::RustCryptoBackend;
use ::passkey::types::Passkey;
use ::passkey::types::ctap2::{Aaguid, Ctap2Error};
use ::passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use conform_embedded::faults::Fault;
use serde_json::{Value, json};
use url::Url;

use crate::common::*;

struct AlwaysVerified;

#[async_trait::async_trait]
impl UserValidationMethod for AlwaysVerified {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Self::PasskeyItem>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence, verification })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

type Soft = Client<Option<Passkey>, AlwaysVerified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

fn soft(counter: bool) -> Soft {
    let mut authenticator = Authenticator::new(Aaguid::new_empty(), None, AlwaysVerified, RustCryptoBackend);
    authenticator.set_make_credentials_with_signature_counter(counter);
    Client::new(authenticator).allows_insecure_localhost(true)
}

fn origin() -> Url {
    Url::parse("http://localhost:8000").unwrap()
}

async fn register(t: &T, who: &Who, client: &mut Soft) -> (u16, Value) {
    let (s, options) = t.post("/v1/auth/passkeys/registration/options", Some(&who.token), json!({})).await;
    assert_eq!(s, 200, "{options}");
    let request: CredentialCreationOptions = serde_json::from_value(options).unwrap();
    let created = client.register(&origin(), request, DefaultClientData).await.unwrap();
    t.post("/v1/auth/passkeys/registration", Some(&who.token), serde_json::to_value(&created).unwrap()).await
}

async fn assertion(t: &T, client: &mut Soft) -> Value {
    let (s, options) = t.post("/v1/auth/passkeys/authentication/options", None, json!({})).await;
    assert_eq!(s, 200, "{options}");
    let request: CredentialRequestOptions = serde_json::from_value(options).unwrap();
    let asserted = client.authenticate(&origin(), request, DefaultClientData).await.unwrap();
    serde_json::to_value(&asserted).unwrap()
}

async fn sign_in(t: &T, body: Value) -> (u16, Value) {
    t.post("/v1/auth/passkeys/authentication", None, body).await
}

#[tokio::test]
async fn passkeys_register_sign_in_and_refuse_replays() {
    let t = target_with(&[], |c| c.passkeys_enabled = true).await;
    let who = t.user("user").await;
    let mut client = soft(true);
    let (s, r) = register(&t, &who, &mut client).await;
    assert_eq!(s, 201, "{r}");
    let a = assertion(&t, &mut client).await;
    let (s, tokens) = sign_in(&t, a.clone()).await;
    assert_eq!((s, tokens["user"]["id"].as_str()), (200, Some(who.id.as_str())), "{tokens}");
    assert_eq!(t.get("/v1/sessions", tokens["access_token"].as_str().unwrap()).await.0, 200);
    // A replayed assertion (its challenge is used) is refused.
    let (s, e) = sign_in(&t, a).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_credentials")));
    // An assertion by an unregistered credential is refused.
    let mut stranger = soft(true);
    let other = t.user("user").await;
    let _ = register(&t, &other, &mut stranger).await;
    let mut unknown = soft(true);
    let options = t.post("/v1/auth/passkeys/authentication/options", None, json!({})).await.1;
    let request: CredentialRequestOptions = serde_json::from_value(options).unwrap();
    // `unknown` has no credential at all: the client refuses; fake one by tampering with a valid assertion's id.
    assert!(unknown.authenticate(&origin(), request, DefaultClientData).await.is_err());
    let mut forged = assertion(&t, &mut client).await;
    let other_id = assertion(&t, &mut stranger).await["rawId"].clone();
    forged["rawId"] = other_id.clone();
    forged["id"] = other_id;
    assert_eq!(sign_in(&t, forged).await.0, 401);
    // Passkey step-up elevates the session.
    let a = assertion(&t, &mut client).await;
    let (s, r) = t.post("/v1/auth/step-up", Some(&who.token), json!({"passkey": a})).await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test]
async fn reusable_passkey_challenge_fault_accepts_a_replay() {
    for (faults, expected) in [(vec![Fault::ReusablePasskeyChallenge], 200), (vec![], 401)] {
        let t = target_with(&faults, |c| c.passkeys_enabled = true).await;
        let who = t.user("user").await;
        // Counterless, as synced passkeys: only the challenge can stop a replay.
        let mut client = soft(false);
        assert_eq!(register(&t, &who, &mut client).await.0, 201);
        let a = assertion(&t, &mut client).await;
        assert_eq!(sign_in(&t, a.clone()).await.0, 200);
        assert_eq!(sign_in(&t, a).await.0, expected, "{faults:?}");
    }
}

#[tokio::test]
async fn passkey_signature_unchecked_fault_accepts_another_key() {
    for (faults, expected) in [(vec![Fault::PasskeySignatureUnchecked], 200), (vec![], 401)] {
        let t = target_with(&faults, |c| c.passkeys_enabled = true).await;
        let (victim, mallory) = (t.user("user").await, t.user("user").await);
        let (mut client, mut other) = (soft(true), soft(true));
        assert_eq!(register(&t, &victim, &mut client).await.0, 201);
        assert_eq!(register(&t, &mallory, &mut other).await.0, 201);
        // Mallory's key signs, naming the victim's credential; its counter is far above the victim's.
        let victim_id = assertion(&t, &mut client).await["rawId"].clone();
        other.authenticator_mut().store_mut().as_mut().unwrap().counter = Some(1 << 30);
        let mut forged = assertion(&t, &mut other).await;
        forged["rawId"] = victim_id.clone();
        forged["id"] = victim_id;
        assert_eq!(sign_in(&t, forged).await.0, expected, "{faults:?}");
    }
}

#[tokio::test]
async fn passkey_counter_not_checked_fault_accepts_a_counter_going_back() {
    for (faults, expected) in [(vec![Fault::PasskeyCounterNotChecked], 200), (vec![], 401)] {
        let t = target_with(&faults, |c| c.passkeys_enabled = true).await;
        let who = t.user("user").await;
        let mut client = soft(true);
        assert_eq!(register(&t, &who, &mut client).await.0, 201);
        for _ in 0..2 {
            let a = assertion(&t, &mut client).await;
            assert_eq!(sign_in(&t, a).await.0, 200);
        }
        // The next assertion carries 1 (counter 0 + 1), below the stored 2.
        client.authenticator_mut().store_mut().as_mut().unwrap().counter = Some(0);
        let a = assertion(&t, &mut client).await;
        assert_eq!(sign_in(&t, a).await.0, expected, "{faults:?}");
    }
}

#[tokio::test]
async fn counterless_passkey_refused_fault_refuses_synced_passkeys() {
    for (faults, expected) in [(vec![Fault::CounterlessPasskeyRefused], 401), (vec![], 200)] {
        let t = target_with(&faults, |c| c.passkeys_enabled = true).await;
        let who = t.user("user").await;
        let mut client = soft(false);
        assert_eq!(register(&t, &who, &mut client).await.0, 201);
        let a = assertion(&t, &mut client).await;
        assert_eq!(sign_in(&t, a).await.0, expected, "{faults:?}");
    }
}

#[tokio::test]
async fn passkeys_switch_ignored_fault_keeps_the_routes_after_switching_off() {
    for (faults, expected) in [(vec![Fault::PasskeysSwitchIgnored], 200), (vec![], 404)] {
        let t = target_with(&faults, |c| c.passkeys_enabled = true).await;
        let (s, r) = t.post("/v1/test/config", None, json!({"passkeys_enabled": false})).await;
        assert_eq!(s, 200, "{r}");
        let (s, r) = t.post("/v1/auth/passkeys/authentication/options", None, json!({})).await;
        assert_eq!(s, expected, "{faults:?}: {r}");
    }
}

#[tokio::test]
async fn the_config_fixture_switches_passkeys_and_providers_in_test_mode_only() {
    let t = target_with(&[], |c| c.passkeys_enabled = false).await;
    let options = "/v1/auth/passkeys/authentication/options";
    assert_eq!(t.post(options, None, json!({})).await.0, 404);
    assert_eq!(t.post("/v1/test/config", None, json!({"passkeys_enabled": true})).await.0, 200);
    assert_eq!(t.post(options, None, json!({})).await.0, 200);
    let (s, r) = t.post("/v1/test/config", None, json!({"provider": "shkeeper", "enabled": false})).await;
    assert_eq!((s, &r["disabled_providers"]), (200, &json!(["shkeeper"])), "{r}");
    assert_eq!(t.post("/v1/test/config", None, json!({"provider": "shkeeper"})).await.0, 422);
    assert_eq!(t.post("/v1/test/config", None, json!({"passkeys_enabled": "yes"})).await.0, 422);
    let production = target_with(&[], |c| c.test_mode = false).await;
    assert_eq!(production.post("/v1/test/config", None, json!({"passkeys_enabled": true})).await.0, 404);
}

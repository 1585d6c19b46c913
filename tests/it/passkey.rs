//! The software passkey (`conform::drive::passkey`) against a real relying party: `@simplewebauthn/server` 13
//! (`tests/peers/webauthn-rp.mjs`, needs `npm ci --prefix tests/peers`), spoken to through the HTTP driver.
//! SES-8: registration and sign-in succeed; a replayed assertion, an assertion by another credential and a sign
//! counter that goes backwards are refused.

use conform::drive::http::HttpDriver;
use conform::drive::passkey::{PasskeyError, SoftPasskey};
use serde_json::{Value, json};

/// The Node relying party; killed when dropped (and it exits by itself when its stdin closes).
struct Rp {
    http: HttpDriver,
    origin: String,
    _child: tokio::process::Child,
}

async fn relying_party() -> Rp {
    let (child, port) = crate::peers::start_node_peer("webauthn-rp.mjs", "@simplewebauthn/server").await;
    let http = HttpDriver::with_base_url(format!("http://127.0.0.1:{port}")).expect("driver");
    Rp { http, origin: format!("http://localhost:{port}"), _child: child }
}

impl Rp {
    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post_json(path, body).await.expect("relying party exchange");
        let value = response.json().expect("relying party JSON");
        (response.status, value)
    }

    async fn options(&self, path: &str, user: &str) -> Value {
        let (status, options) = self.call(path, json!({"username": user})).await;
        assert_eq!(status, 200, "{path}: {options}");
        options
    }

    async fn register(&self, passkey: &mut SoftPasskey, user: &str) {
        let options = self.options("/register/options", user).await;
        let credential = passkey.register(&options).await.expect("the software passkey registers");
        let (status, verdict) = self.call("/register/verify", json!({"username": user, "response": credential})).await;
        assert_eq!((status, &verdict["verified"]), (200, &json!(true)), "registration refused: {verdict}");
        assert_eq!(verdict["credentialId"].as_str(), passkey.credential_id().as_deref());
    }

    /// Posts an assertion; `Ok(new counter)` if the relying party accepts it, `Err(its reason)` if not.
    async fn verify(&self, user: &str, assertion: &Value) -> Result<u64, String> {
        let (status, verdict) = self.call("/login/verify", json!({"username": user, "response": assertion})).await;
        match (status, verdict["verified"].as_bool()) {
            (200, Some(true)) => Ok(verdict["newCounter"].as_u64().expect("newCounter")),
            _ => Err(format!("{status} {}", verdict["error"])),
        }
    }

    async fn sign_in(&self, passkey: &mut SoftPasskey, user: &str) -> Result<u64, String> {
        let options = self.options("/login/options", user).await;
        let assertion = passkey.sign_in(&options).await.expect("the software passkey signs");
        self.verify(user, &assertion).await
    }
}

#[tokio::test]
async fn register_then_sign_in() {
    let rp = relying_party().await;
    let mut passkey = SoftPasskey::new(&rp.origin).expect("passkey");
    assert_eq!(passkey.credential_id(), None);
    rp.register(&mut passkey, "alice").await;
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(1));
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(2));
    assert_eq!(passkey.counter(), Some(2));
    // The Debug output names the credential, never the key.
    let debug = format!("{passkey:?}");
    assert!(debug.contains("credential_id") && !debug.contains("key:"), "{debug}");

    // A counterless passkey (synced-passkey style) works too: 0 → 0 is allowed.
    let mut synced = SoftPasskey::without_counter(&rp.origin).expect("passkey");
    rp.register(&mut synced, "bob").await;
    assert_eq!(rp.sign_in(&mut synced, "bob").await, Ok(0));
    assert_eq!(rp.sign_in(&mut synced, "bob").await, Ok(0));
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let rp = relying_party().await;
    let mut passkey = SoftPasskey::new(&rp.origin).expect("passkey");
    rp.register(&mut passkey, "alice").await;
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(1));
    let replay = passkey.last_assertion().expect("an assertion was made").clone();

    // Replayed as is: its challenge was used.
    let refused = rp.verify("alice", &replay).await.expect_err("replay accepted");
    assert!(refused.contains("challenge"), "{refused}");
    // Replayed while a fresh challenge is pending: the old challenge does not match.
    let _pending = rp.options("/login/options", "alice").await;
    let refused = rp.verify("alice", &replay).await.expect_err("replay accepted");
    assert!(refused.contains("challenge"), "{refused}");
    // The genuine passkey still signs in.
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(2));
}

#[tokio::test]
async fn an_assertion_by_another_credential_is_refused() {
    let rp = relying_party().await;
    let mut alice = SoftPasskey::new(&rp.origin).expect("passkey");
    rp.register(&mut alice, "alice").await;
    let alice_id = alice.credential_id().expect("registered");

    // Mallory's passkey is registered for mallory, never for alice.
    let mut mallory = SoftPasskey::new(&rp.origin).expect("passkey");
    rp.register(&mut mallory, "mallory").await;

    // A browser would not even offer it: alice's options list only alice's credential.
    let options = rp.options("/login/options", "alice").await;
    let err = mallory.sign_in(&options).await.expect_err("not in allowCredentials");
    assert!(matches!(err, PasskeyError::Refused { .. }), "{err:?}");

    // Answering anyway with its own credential id: unknown to alice's account.
    let options = rp.options("/login/options", "alice").await;
    let assertion = mallory.sign_in_unlisted(&options).await.expect("signs");
    rp.verify("alice", &assertion).await.expect_err("another user's credential accepted");

    // Claiming alice's credential id, signed with mallory's key (counter raised so that only the signature can
    // give it away).
    let options = rp.options("/login/options", "alice").await;
    let forged = mallory.sign_in_as(&options, &alice_id).await.expect("signs");
    assert_eq!(forged["id"], json!(alice_id));
    let refused = rp.verify("alice", &forged).await.expect_err("forged assertion accepted");
    // The relying party says "assertion not verified" only when the signature check fails.
    assert!(refused.contains("assertion not verified"), "refused for another reason than the signature: {refused}");

    // A passkey that was never registered anywhere.
    let mut stranger = SoftPasskey::new(&rp.origin).expect("passkey");
    let options = rp.options("/login/options", "alice").await;
    assert!(matches!(stranger.sign_in_unlisted(&options).await, Err(PasskeyError::NoCredential)));

    // Alice herself still signs in.
    assert_eq!(rp.sign_in(&mut alice, "alice").await, Ok(1));
}

#[tokio::test]
async fn a_sign_counter_going_backwards_is_refused() {
    let rp = relying_party().await;
    let mut passkey = SoftPasskey::new(&rp.origin).expect("passkey");
    rp.register(&mut passkey, "alice").await;
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(1));
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(2));
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(3));

    // A clone of the authenticator taken at counter 1: its next assertion carries 2, below the 3 seen.
    passkey.set_counter(1).expect("registered");
    let refused = rp.sign_in(&mut passkey, "alice").await.expect_err("counter going backwards accepted");
    assert!(refused.contains("counter"), "{refused}");
    // Equal to the last seen (3 → 3) is refused as well.
    passkey.set_counter(2).expect("registered");
    let refused = rp.sign_in(&mut passkey, "alice").await.expect_err("counter standing still accepted");
    assert!(refused.contains("counter"), "{refused}");
    // Moving forward again is accepted.
    passkey.set_counter(9).expect("registered");
    assert_eq!(rp.sign_in(&mut passkey, "alice").await, Ok(10));
}

#[tokio::test]
async fn bad_inputs_are_typed_errors() {
    assert!(matches!(SoftPasskey::new("not an origin"), Err(PasskeyError::Origin { .. })));
    let mut passkey = SoftPasskey::new("http://localhost:1").expect("passkey");
    let err = passkey.register(&json!({"challenge": 42})).await.expect_err("not options");
    assert!(matches!(err, PasskeyError::Options { ceremony: "registration", .. }), "{err:?}");
    assert!(matches!(passkey.set_counter(3), Err(PasskeyError::NoCredential)));
    let err = passkey.sign_in(&json!({"challenge": "AAAA", "rpId": "localhost"})).await.expect_err("no credential");
    assert!(matches!(err, PasskeyError::NoCredential), "{err:?}");
}

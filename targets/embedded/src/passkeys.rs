//! A minimal WebAuthn relying party for SES-8: ES256 credentials, `none` (or unverified self) attestation, the
//! ceremony shape of SimpleWebAuthn (options, then verify). The decisions about challenges, credentials and
//! counters are the reference model's ([`conform_reference::sessions::PasskeyRegistry`]); this module does the
//! bytes: base64url, client data, CBOR attestation objects, COSE keys and the ECDSA signature.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// base64url without padding, as WebAuthn JSON carries bytes.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url (padded or not) or standard base64.
pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(trimmed).ok().or_else(|| STANDARD.decode(text).ok())
}

/// The parts of `clientDataJSON` a relying party checks.
pub(crate) struct ClientData {
    pub kind: String,
    pub challenge: String,
    pub origin: String,
}

pub(crate) fn client_data(raw: &[u8]) -> Result<ClientData, &'static str> {
    let v: Value = serde_json::from_slice(raw).map_err(|_| "clientDataJSON is not JSON")?;
    let text = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(ClientData {
        kind: text("type").ok_or("clientDataJSON has no type")?,
        challenge: text("challenge").ok_or("clientDataJSON has no challenge")?,
        origin: text("origin").ok_or("clientDataJSON has no origin")?,
    })
}

/// Whether `origin` belongs to the relying party `rp_id` (its host is the RP id or a subdomain of it).
pub(crate) fn origin_ok(origin: &str, rp_id: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == rp_id || host.ends_with(&format!(".{rp_id}"))
}

/// Authenticator data: RP id hash, flags, counter, and the attested credential when present.
pub(crate) struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub credential: Option<(Vec<u8>, Vec<u8>)>,
}

const FLAG_UP: u8 = 0x01;
const FLAG_AT: u8 = 0x40;

pub(crate) fn auth_data(bytes: &[u8]) -> Result<AuthData, &'static str> {
    if bytes.len() < 37 {
        return Err("authenticator data is too short");
    }
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(&bytes[..32]);
    let flags = bytes[32];
    let sign_count = u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]);
    let credential = if flags & FLAG_AT != 0 {
        let rest = &bytes[37..];
        if rest.len() < 18 {
            return Err("attested credential data is too short");
        }
        let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        let id = rest.get(18..18 + len).ok_or("credential id is cut")?.to_vec();
        let key = cose_p256(rest.get(18 + len..).ok_or("no credential public key")?)?;
        Some((id, key))
    } else {
        None
    };
    Ok(AuthData { rp_id_hash, flags, sign_count, credential })
}

fn cbor_int(v: &ciborium::Value) -> Option<i128> {
    v.as_integer().map(i128::from)
}

/// An ES256 COSE key (kty 2, alg -7, crv 1) as SEC1 uncompressed bytes.
fn cose_p256(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    let value: ciborium::Value = ciborium::de::from_reader(bytes).map_err(|_| "the public key is not CBOR")?;
    let map = value.as_map().ok_or("the public key is not a COSE map")?;
    let get = |key: i128| map.iter().find(|(k, _)| cbor_int(k) == Some(key)).map(|(_, v)| v);
    if get(1).and_then(cbor_int) != Some(2)
        || get(3).and_then(cbor_int) != Some(-7)
        || get(-1).and_then(cbor_int) != Some(1)
    {
        return Err("only ES256 (P-256) credentials are supported");
    }
    let x = get(-2).and_then(ciborium::Value::as_bytes).ok_or("no x coordinate")?;
    let y = get(-3).and_then(ciborium::Value::as_bytes).ok_or("no y coordinate")?;
    if x.len() != 32 || y.len() != 32 {
        return Err("bad coordinate length");
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "the public key is not on the curve")?;
    Ok(sec1)
}

/// The credential of an attestation object: (credential id, SEC1 key, counter).
pub(crate) fn registration(attestation_object: &[u8], rp_id: &str) -> Result<(Vec<u8>, Vec<u8>, u32), &'static str> {
    let value: ciborium::Value =
        ciborium::de::from_reader(attestation_object).map_err(|_| "attestationObject is not CBOR")?;
    let map = value.as_map().ok_or("attestationObject is not a map")?;
    let auth = map
        .iter()
        .find(|(k, _)| k.as_text() == Some("authData"))
        .and_then(|(_, v)| v.as_bytes())
        .ok_or("attestationObject has no authData")?;
    let data = auth_data(auth)?;
    if data.rp_id_hash != rp_id_hash(rp_id) {
        return Err("the credential is for another relying party");
    }
    if data.flags & FLAG_UP == 0 {
        return Err("the user was not present");
    }
    let (id, key) = data.credential.ok_or("no attested credential")?;
    Ok((id, key, data.sign_count))
}

pub(crate) fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

/// Verifies an assertion's signature over `authenticatorData || SHA-256(clientDataJSON)` with the stored key.
pub(crate) fn signature_valid(key_sec1: &[u8], auth_data: &[u8], client_data_raw: &[u8], signature_der: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_sec1_bytes(key_sec1) else { return false };
    let Ok(signature) = Signature::from_der(signature_der) else { return false };
    let mut message = auth_data.to_vec();
    message.extend_from_slice(&Sha256::digest(client_data_raw));
    key.verify(&message, &signature).is_ok()
}

use conform_reference::ids::{Timestamp, UserId};
use conform_reference::refusal::Refusal;
use conform_reference::sessions::{Assertion, ChallengePurpose, CredentialId, PasskeyError};
use serde_json::json;

use crate::faults::Fault;
use crate::state::{Caller, State};
use crate::util::{ApiError, random_bytes};

fn refused(error: PasskeyError) -> ApiError {
    match error {
        PasskeyError::Disabled => Refusal::PasskeysDisabled.into(),
        PasskeyError::CredentialAlreadyRegistered => ApiError::validation("this credential is already registered"),
        other => ApiError::new(401, "invalid_credentials", other.to_string()),
    }
}

fn invalid(message: &'static str) -> ApiError {
    ApiError::new(401, "invalid_credentials", message)
}

/// The `response` member's byte fields of a credential JSON.
fn response_bytes(body: &serde_json::Map<String, Value>, field: &str) -> Result<Vec<u8>, ApiError> {
    body.get("response")
        .and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .and_then(unb64)
        .ok_or_else(|| ApiError::validation(format!("response.{field} is missing or not base64url")))
}

fn raw_id(body: &serde_json::Map<String, Value>) -> Result<Vec<u8>, ApiError> {
    body.get("rawId")
        .or_else(|| body.get("id"))
        .and_then(Value::as_str)
        .and_then(unb64)
        .ok_or_else(|| ApiError::validation("rawId is missing or not base64url"))
}

impl State {
    fn new_challenge(&mut self, purpose: ChallengePurpose) -> Result<String, ApiError> {
        let challenge = self.passkeys.issue_challenge(purpose, self.ts()).map_err(refused)?;
        let wire = b64url(&random_bytes::<32>());
        self.passkey_challenges.insert(wire.clone(), challenge);
        Ok(wire)
    }

    /// The model's challenge for a wire challenge; with the fault, a fresh one each time, so none is ever used up.
    fn challenge_for(
        &mut self,
        wire: &str,
        purpose: ChallengePurpose,
    ) -> Result<conform_reference::sessions::Challenge, ApiError> {
        let known = *self.passkey_challenges.get(wire).ok_or_else(|| invalid("unknown challenge"))?;
        if self.on(Fault::ReusablePasskeyChallenge) {
            return self.passkeys.issue_challenge(purpose, self.ts()).map_err(refused);
        }
        Ok(known)
    }

    fn check_client_data(&self, raw: &[u8], kind: &str) -> Result<ClientData, ApiError> {
        let data = client_data(raw).map_err(ApiError::validation)?;
        if data.kind != kind {
            return Err(invalid("clientDataJSON is for another ceremony"));
        }
        if !origin_ok(&data.origin, &self.cfg.passkey_rp_id) {
            return Err(invalid("the origin is not this relying party's"));
        }
        Ok(data)
    }

    pub fn passkey_register_options(&mut self, caller: &Caller) -> Result<Value, ApiError> {
        let challenge = self.new_challenge(ChallengePurpose::Registration { user: caller.user })?;
        let user = &self.users[caller.user.0 as usize];
        let exclude: Vec<Value> = self
            .passkey_credentials
            .iter()
            .filter(|(_, (id, _))| self.passkeys.owner(*id) == Some(caller.user))
            .map(|(raw, _)| json!({"type": "public-key", "id": b64url(raw)}))
            .collect();
        Ok(json!({"publicKey": {
            "challenge": challenge,
            "rp": {"id": self.cfg.passkey_rp_id, "name": "conform embedded target"},
            "user": {"id": b64url(user.public.as_bytes()), "name": user.email, "displayName": user.email},
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "timeout": 300_000,
            "attestation": "none",
            "excludeCredentials": exclude,
            "authenticatorSelection": {"residentKey": "preferred", "userVerification": "preferred"},
        }}))
    }

    pub fn passkey_register(
        &mut self,
        caller: &Caller,
        body: &serde_json::Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let client_raw = response_bytes(body, "clientDataJSON")?;
        let attestation = response_bytes(body, "attestationObject")?;
        let data = self.check_client_data(&client_raw, "webauthn.create")?;
        let challenge = self.challenge_for(&data.challenge, ChallengePurpose::Registration { user: caller.user })?;
        let parsed = registration(&attestation, &self.cfg.passkey_rp_id);
        let (id, key, count) = match parsed {
            Ok(parsed) => parsed,
            Err(message) => {
                // The challenge is used up by this response whatever its outcome (the model's choice).
                let _ = self.passkeys.register(challenge, CredentialId(u64::MAX), 0, self.ts());
                return Err(ApiError::validation(message));
            }
        };
        let number = CredentialId(self.passkey_credentials.len() as u64);
        let number = self.passkey_credentials.get(&id).map_or(number, |(n, _)| *n);
        let owner = self.passkeys.register(challenge, number, count, self.ts()).map_err(refused)?;
        if owner != caller.user {
            return Err(invalid("the challenge was issued to another account"));
        }
        self.passkey_credentials.insert(id.clone(), (number, key));
        Ok(json!({"credential_id": b64url(&id)}))
    }

    pub fn passkey_sign_in_options(&mut self) -> Result<Value, ApiError> {
        let challenge = self.new_challenge(ChallengePurpose::SignIn)?;
        Ok(json!({"publicKey": {
            "challenge": challenge,
            "rpId": self.cfg.passkey_rp_id,
            "timeout": 300_000,
            "userVerification": "preferred",
            "allowCredentials": [],
        }}))
    }

    /// Verifies an assertion; the account it proves.
    fn passkey_assert(&mut self, body: &serde_json::Map<String, Value>) -> Result<UserId, ApiError> {
        let client_raw = response_bytes(body, "clientDataJSON")?;
        let auth_raw = response_bytes(body, "authenticatorData")?;
        let signature = response_bytes(body, "signature")?;
        let id = raw_id(body)?;
        let data = self.check_client_data(&client_raw, "webauthn.get")?;
        let challenge = self.challenge_for(&data.challenge, ChallengePurpose::SignIn)?;
        let auth = auth_data(&auth_raw).map_err(ApiError::validation)?;
        if auth.sign_count == 0 && self.on(Fault::CounterlessPasskeyRefused) {
            return Err(invalid("the sign counter did not increase"));
        }
        let (credential, valid) = match self.passkey_credentials.get(&id) {
            Some((number, key)) => {
                let valid = auth.rp_id_hash == rp_id_hash(&self.cfg.passkey_rp_id)
                    && auth.flags & FLAG_UP != 0
                    && (signature_valid(key, &auth_raw, &client_raw, &signature)
                        || self.on(Fault::PasskeySignatureUnchecked));
                (*number, valid)
            }
            None => (CredentialId(u64::MAX), false),
        };
        let sign_count = match self.passkeys.sign_count(credential) {
            // With the fault the stored counter is only ever written: any count passes as one above it.
            Some(stored) if self.on(Fault::PasskeyCounterNotChecked) && (stored, auth.sign_count) != (0, 0) => {
                auth.sign_count.max(stored.saturating_add(1))
            }
            _ => auth.sign_count,
        };
        let assertion = Assertion { challenge, credential, sign_count, signature_valid: valid };
        self.passkeys.verify_assertion(assertion, Timestamp(self.now())).map_err(refused)
    }

    pub fn passkey_sign_in(
        &mut self,
        body: &serde_json::Map<String, Value>,
        client: &str,
        agent: Option<String>,
    ) -> Result<Value, ApiError> {
        let user = self.passkey_assert(body)?;
        if self.users.get(user.0 as usize).is_none_or(|u| u.deleted) {
            return Err(invalid("unknown account"));
        }
        let client = self.client_id(client);
        let tokens = self.sessions.sign_in_with_passkey(user, client, self.ts())?;
        self.open_wire_session(tokens, user, agent)
    }

    /// Step-up with a passkey assertion of the caller's own credential (SES-9).
    pub fn passkey_step_up(
        &mut self,
        caller: &Caller,
        body: &serde_json::Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let user = self.passkey_assert(body)?;
        let now = self.now();
        self.sessions.step_up_with_passkey(caller.session, user, Timestamp(now))?;
        if self.on(Fault::StepUpNotSessionBound) {
            self.account_step_up.insert(caller.user, now);
        }
        Ok(json!({
            "session_id": self.session_meta[caller.session.0 as usize].public,
            "stepped_up_at": crate::util::rfc3339(now),
            "expires_at": crate::util::rfc3339(now + 300),
        }))
    }
}

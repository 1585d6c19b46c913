//! A software passkey (WebAuthn authenticator plus client) to drive a target's passkey endpoints (SPEC SES-8).
//!
//! Built on 1Password's `passkey` 0.6: a CTAP2 software authenticator behind a WebAuthn client that accepts
//! `http://localhost` origins. It takes the relying party's options JSON exactly as a browser would receive it
//! (`PublicKeyCredentialCreationOptionsJSON` / `…RequestOptionsJSON`, bare or wrapped as `{"publicKey": …}`) and
//! returns the JSON a browser would post back (`RegistrationResponseJSON` / `AuthenticationResponseJSON`).
//!
//! Besides the honest ceremonies it produces what SES-8 says a target must refuse:
//! - a replayed assertion: [`SoftPasskey::last_assertion`] is the previous one, to post again;
//! - an assertion by another credential: [`SoftPasskey::sign_in_unlisted`] answers a challenge with this
//!   passkey's own credential even when the relying party did not list it, and [`SoftPasskey::sign_in_as`]
//!   signs with this passkey's key while claiming someone else's credential id;
//! - a sign counter that goes backwards: [`SoftPasskey::set_counter`] rewinds it.

use ::passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use ::passkey::client::{Client, DefaultClientData, WebauthnError};
use ::passkey::crypto::rust_crypto::RustCryptoBackend;
use ::passkey::types::ctap2::{Aaguid, Ctap2Error};
use ::passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use ::passkey::types::{Passkey, encoding};
use serde_json::Value;
use url::Url;

/// What went wrong in a passkey ceremony.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The origin is not a URL.
    #[error("invalid origin {origin:?}: {source}")]
    Origin {
        /// The origin given.
        origin: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// The relying party's options JSON does not have the WebAuthn shape.
    #[error("the relying party's {ceremony} options are not valid WebAuthn options JSON: {source}")]
    Options {
        /// `registration` or `authentication`.
        ceremony: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The authenticator or client refused the ceremony.
    #[error("the software authenticator refused the {ceremony}: {reason}")]
    Refused {
        /// `registration` or `authentication`.
        ceremony: &'static str,
        /// The WebAuthn error, as the library reports it.
        reason: String,
    },
    /// The operation needs a registered credential and there is none yet.
    #[error("this passkey has no credential yet: register first")]
    NoCredential,
    /// The produced credential could not be turned into JSON (a bug).
    #[error("cannot encode the {ceremony} response as JSON: {source}")]
    Encode {
        /// `registration` or `authentication`.
        ceremony: &'static str,
        /// The serialization error.
        source: serde_json::Error,
    },
}

/// A user who is always present and always verified: the test stands in for the human.
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

type SoftClient = Client<Option<Passkey>, AlwaysVerified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

/// One software passkey: at most one credential, for one origin.
pub struct SoftPasskey {
    client: SoftClient,
    origin: Url,
    last_assertion: Option<Value>,
}

impl std::fmt::Debug for SoftPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("SoftPasskey")
            .field("origin", &self.origin.as_str())
            .field("credential_id", &self.credential_id())
            .field("counter", &self.counter())
            .finish()
    }
}

impl SoftPasskey {
    /// A passkey for `origin` (e.g. `http://localhost:8000`; `http` is accepted for localhost only) whose
    /// credential keeps a signature counter, incremented on every assertion, as hardware keys do.
    pub fn new(origin: &str) -> Result<Self, PasskeyError> {
        Self::build(origin, true)
    }

    /// Like [`SoftPasskey::new`], but the credential has no counter (always 0), as synced passkeys do.
    pub fn without_counter(origin: &str) -> Result<Self, PasskeyError> {
        Self::build(origin, false)
    }

    fn build(origin: &str, counter: bool) -> Result<Self, PasskeyError> {
        let parsed = Url::parse(origin).map_err(|source| PasskeyError::Origin { origin: origin.to_owned(), source })?;
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), None, AlwaysVerified, RustCryptoBackend);
        authenticator.set_make_credentials_with_signature_counter(counter);
        let client = Client::new(authenticator).allows_insecure_localhost(true);
        Ok(Self { client, origin: parsed, last_assertion: None })
    }

    /// The origin this passkey signs for.
    pub fn origin(&self) -> &str {
        self.origin.as_str()
    }

    /// The credential id (base64url, as the relying party sees it), once registered.
    pub fn credential_id(&self) -> Option<String> {
        self.client.authenticator().store().as_ref().map(|pk| encoding::base64url(&pk.credential_id))
    }

    /// The current signature counter (`None` before registration or for a counterless credential).
    pub fn counter(&self) -> Option<u32> {
        self.client.authenticator().store().as_ref().and_then(|pk| pk.counter)
    }

    /// Sets the signature counter; the next assertion carries `value + 1`. Rewinding it below what the relying
    /// party has seen makes the next assertion look like it comes from a cloned authenticator.
    pub fn set_counter(&mut self, value: u32) -> Result<(), PasskeyError> {
        let pk = self.client.authenticator_mut().store_mut().as_mut().ok_or(PasskeyError::NoCredential)?;
        pk.counter = Some(value);
        Ok(())
    }

    /// The previous assertion returned by a sign-in, to replay it.
    pub fn last_assertion(&self) -> Option<&Value> {
        self.last_assertion.as_ref()
    }

    /// Registration: from the relying party's creation options JSON to the credential JSON to post back.
    /// A second registration replaces this passkey's credential.
    pub async fn register(&mut self, options: &Value) -> Result<Value, PasskeyError> {
        const CEREMONY: &str = "registration";
        let request: CredentialCreationOptions = serde_json::from_value(wrap(options))
            .map_err(|source| PasskeyError::Options { ceremony: CEREMONY, source })?;
        let created =
            self.client.register(&self.origin, request, DefaultClientData).await.map_err(|e| refused(CEREMONY, &e))?;
        serde_json::to_value(&created).map_err(|source| PasskeyError::Encode { ceremony: CEREMONY, source })
    }

    /// Sign-in: from the relying party's request options JSON to the assertion JSON to post back. Fails, as a
    /// browser would, when the options list credentials and this passkey's is not among them.
    pub async fn sign_in(&mut self, options: &Value) -> Result<Value, PasskeyError> {
        self.assert(wrap(options)).await
    }

    /// Sign-in that ignores the relying party's `allowCredentials`: this passkey answers the challenge with its
    /// own credential even if the relying party never registered it (an assertion by another credential).
    pub async fn sign_in_unlisted(&mut self, options: &Value) -> Result<Value, PasskeyError> {
        let mut wrapped = wrap(options);
        if let Some(pk) = wrapped.get_mut("publicKey").and_then(Value::as_object_mut) {
            pk.remove("allowCredentials");
        }
        self.assert(wrapped).await
    }

    /// A forged assertion: signed with this passkey's key over the relying party's challenge, but claiming the
    /// credential `credential_id` (base64url) of someone else. A relying party that checks the signature against
    /// the stored public key refuses it. So that only the signature can give the forgery away, this passkey's
    /// counter is first raised to at least 2^30 (far above any counter the victim's credential has reached).
    pub async fn sign_in_as(&mut self, options: &Value, credential_id: &str) -> Result<Value, PasskeyError> {
        const HIGH: u32 = 1 << 30;
        if self.counter().is_none_or(|c| c < HIGH) {
            self.set_counter(HIGH)?;
        }
        let mut assertion = self.sign_in_unlisted(options).await?;
        if let Some(obj) = assertion.as_object_mut() {
            obj.insert("id".into(), Value::String(credential_id.to_owned()));
            obj.insert("rawId".into(), Value::String(credential_id.to_owned()));
        }
        self.last_assertion = Some(assertion.clone());
        Ok(assertion)
    }

    async fn assert(&mut self, wrapped: Value) -> Result<Value, PasskeyError> {
        const CEREMONY: &str = "authentication";
        let request: CredentialRequestOptions =
            serde_json::from_value(wrapped).map_err(|source| PasskeyError::Options { ceremony: CEREMONY, source })?;
        if self.client.authenticator().store().is_none() {
            return Err(PasskeyError::NoCredential);
        }
        let assertion = self
            .client
            .authenticate(&self.origin, request, DefaultClientData)
            .await
            .map_err(|e| refused(CEREMONY, &e))?;
        let json =
            serde_json::to_value(&assertion).map_err(|source| PasskeyError::Encode { ceremony: CEREMONY, source })?;
        self.last_assertion = Some(json.clone());
        Ok(json)
    }
}

/// Accepts the options bare (what `@simplewebauthn/server` returns) or already wrapped as `{"publicKey": …}`.
fn wrap(options: &Value) -> Value {
    match options.get("publicKey") {
        Some(_) => options.clone(),
        None => serde_json::json!({ "publicKey": options }),
    }
}

fn refused(ceremony: &'static str, e: &WebauthnError) -> PasskeyError {
    PasskeyError::Refused { ceremony, reason: format!("{e:?}") }
}

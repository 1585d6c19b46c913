//! The adapter's passkey ceremonies (SES-8) and its configuration switches (`[fixtures.configure]`).
//!
//! The model's passkey requests name challenges and credentials by number and say what an assertion carries (its
//! challenge, credential, counter and whether its signature verifies); here each becomes the WebAuthn exchange
//! that says exactly that, played by software authenticators ([`SoftPasskey`]): one per credential the model
//! registers, an unregistered one for assertions by a credential the target never saw, and an impostor whose key
//! signs assertions claiming another credential.

use std::collections::HashMap;

use conform_reference::ledger::Provider;
use conform_reference::ops::OperationKind;
use conform_reference::sessions::{Assertion, Challenge, CredentialId};
use conform_reference::world::{Accepted, Outcome, Request, World};
use serde_json::{Value, json};

use super::HttpTarget;
use crate::drive::passkey::SoftPasskey;
use crate::oracle::Observed;
use crate::profile::Vars;

/// The passkey exchanges of one scenario.
#[derive(Debug, Default)]
pub(super) struct PasskeyState {
    /// The options the target answered for each of the model's challenges.
    options: HashMap<Challenge, Value>,
    /// The authenticator of each credential the model registered (or named without registering it).
    authenticators: HashMap<CredentialId, SoftPasskey>,
    /// Every assertion sent, by challenge and credential, so that the model's replays are the same bytes.
    assertions: HashMap<(Challenge, CredentialId), Value>,
    /// The key that signs assertions claiming another credential.
    impostor: Option<SoftPasskey>,
}

/// The switches of `[fixtures.configure]` as conform last set them on the target; `None`: as launched.
#[derive(Debug, Default, Clone)]
pub(super) struct Switches {
    passkeys: Option<bool>,
    disabled: Vec<Provider>,
}

impl Switches {
    /// Before anything is sent: with the fixture, the passkey switch counts as set against the profile's
    /// declaration, so the first scenario puts it as declared (a target started separately may have been
    /// started otherwise).
    pub(super) fn unknown(profile: &crate::profile::Profile) -> Switches {
        let declared = profile.capabilities().passkeys;
        Switches { passkeys: profile.configure_route().map(|_| !declared), disabled: Vec::new() }
    }
}

/// The creation options a target-independent registration uses, for authenticators whose credential the target
/// must never have registered.
fn offline_options(rp_id: &str) -> Value {
    json!({"publicKey": {
        "challenge": "b2ZmbGluZS1yZWdpc3RyYXRpb24",
        "rp": {"id": rp_id, "name": "conform"},
        "user": {"id": "b2ZmbGluZQ", "name": "offline@conform.test", "displayName": "offline"},
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "attestation": "none",
    }})
}

/// The options in an answer: the body, or the first object in it that holds a `challenge` (targets wrap them in
/// `publicKey`, `data` or `options`).
fn find_options(body: &Value) -> Option<Value> {
    match body {
        Value::Object(map) if map.contains_key("challenge") => Some(body.clone()),
        Value::Object(map) => map.values().find_map(find_options),
        _ => None,
    }
}

impl HttpTarget {
    /// The origin the software authenticators sign for: the target's own address, with a loopback host named
    /// `localhost` (a relying party id cannot be an IP address).
    fn passkey_origin(&self) -> Result<(String, String), String> {
        let url = url::Url::parse(&self.http.config().base_url).map_err(|e| format!("the target's address: {e}"))?;
        let host = match url.host_str() {
            Some("127.0.0.1" | "[::1]" | "::1" | "localhost") | None => "localhost".to_owned(),
            Some(host) => host.to_owned(),
        };
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok((format!("{}://{host}{port}", url.scheme()), host))
    }

    async fn authenticator(&mut self, credential: CredentialId, counter: bool) -> Result<&mut SoftPasskey, String> {
        if !self.passkey.authenticators.contains_key(&credential) {
            // A credential the model names without registering it: an authenticator the target never saw.
            let (origin, rp_id) = self.passkey_origin()?;
            let mut passkey = if counter { SoftPasskey::new(&origin) } else { SoftPasskey::without_counter(&origin) }
                .map_err(|e| e.to_string())?;
            passkey.register(&offline_options(&rp_id)).await.map_err(|e| e.to_string())?;
            self.passkey.authenticators.insert(credential, passkey);
        }
        self.passkey.authenticators.get_mut(&credential).ok_or_else(|| "no authenticator".to_owned())
    }

    /// Executes one of the four passkey operations.
    pub(super) async fn passkey_call(&mut self, request: &Request, predicted: &Outcome, model: &World) -> Observed {
        match self.passkey_exchange(request, predicted, model).await {
            Ok(observed) => observed,
            Err(reason) => Observed::Unknown { reason },
        }
    }

    async fn passkey_exchange(
        &mut self,
        request: &Request,
        predicted: &Outcome,
        model: &World,
    ) -> Result<Observed, String> {
        use conform_reference::world::Op;
        let (binding, mut vars, token) = self.bound_call(request, model)?;
        let mut headers = Vec::new();
        match &request.op {
            Op::PasskeyRegister { challenge, credential, counter } => {
                let options = self.options_of(*challenge)?;
                let (origin, _) = self.passkey_origin()?;
                let mut passkey =
                    if *counter { SoftPasskey::new(&origin) } else { SoftPasskey::without_counter(&origin) }
                        .map_err(|e| e.to_string())?;
                let created = passkey.register(&options).await.map_err(|e| format!("the authenticator: {e}"))?;
                vars.set("credential", created);
                self.passkey.authenticators.insert(*credential, passkey);
            }
            Op::PasskeySignIn { assertion, client } => {
                vars.set("credential", self.assertion(*assertion).await?);
                headers.push(("X-Forwarded-For".to_owned(), self.client_address(client.0)));
            }
            _ => {}
        }
        let rendered = binding.render(&vars).map_err(|e| e.to_string())?;
        headers.extend(self.auth_headers(token.as_ref()));
        headers.extend(rendered.headers.clone());
        let response = self.send(&rendered.method, &rendered.path_and_query(), headers, rendered.body).await?;
        let observed = self.observe(Some(&binding), &response);
        if matches!(observed, Observed::Accepted { .. }) {
            match (&request.op, predicted) {
                (Op::PasskeyRegisterOptions | Op::PasskeySignInOptions, Ok(Accepted::Challenge(challenge))) => {
                    if let Some(options) = serde_json::from_slice(&response.body).ok().as_ref().and_then(find_options) {
                        self.passkey.options.insert(*challenge, options);
                    }
                }
                (Op::PasskeySignIn { .. }, _) => self.learn_tokens(&response, predicted),
                _ => {}
            }
        }
        Ok(observed)
    }

    fn options_of(&self, challenge: Challenge) -> Result<Value, String> {
        self.passkey
            .options
            .get(&challenge)
            .cloned()
            .ok_or_else(|| format!("the target's answer for challenge {} carried no options", challenge.0))
    }

    /// The WebAuthn assertion that says what the model's assertion says.
    async fn assertion(&mut self, assertion: Assertion) -> Result<Value, String> {
        let Assertion { challenge, credential, sign_count, signature_valid } = assertion;
        if let Some(sent) = self.passkey.assertions.get(&(challenge, credential)) {
            // The same challenge and credential again: the model replays the earlier assertion.
            return Ok(sent.clone());
        }
        let options = self.options_of(challenge)?;
        let made = if signature_valid {
            let passkey = self.authenticator(credential, true).await?;
            // The authenticator sends its counter plus one; a counterless one always sends 0.
            if passkey.counter().is_some() {
                passkey.set_counter(sign_count.saturating_sub(1)).map_err(|e| e.to_string())?;
            }
            passkey.sign_in_unlisted(&options).await.map_err(|e| format!("the authenticator: {e}"))?
        } else {
            let victim = self.authenticator(credential, true).await?.credential_id().ok_or("no credential id")?;
            if self.passkey.impostor.is_none() {
                let (origin, rp_id) = self.passkey_origin()?;
                let mut impostor = SoftPasskey::new(&origin).map_err(|e| e.to_string())?;
                impostor.register(&offline_options(&rp_id)).await.map_err(|e| e.to_string())?;
                self.passkey.impostor = Some(impostor);
            }
            let impostor = self.passkey.impostor.as_mut().ok_or("no impostor")?;
            impostor.sign_in_as(&options, &victim).await.map_err(|e| format!("the impostor: {e}"))?
        };
        self.passkey.assertions.insert((challenge, credential), made.clone());
        Ok(made)
    }

    /// Switches passkeys on or off through `[fixtures.configure]`.
    pub(super) async fn switch_passkeys(&mut self, enabled: bool) -> Observed {
        let vars = Vars::new().with("passkeys_enabled", enabled);
        let observed = self.configure(&vars).await;
        if matches!(observed, Observed::Accepted { .. }) {
            self.switches.passkeys = Some(enabled);
        }
        observed
    }

    /// Switches a provider on or off through `[fixtures.configure]`; nothing to send when it already is so.
    pub(super) async fn switch_provider(&mut self, provider: Provider, enabled: bool) -> Observed {
        if self.switches.disabled.contains(&provider) != enabled {
            return Observed::Accepted { status: 200, state: None };
        }
        let vars = Vars::new().with("provider", provider.name()).with("enabled", enabled);
        let observed = self.configure(&vars).await;
        if matches!(observed, Observed::Accepted { .. }) {
            self.switches.disabled.retain(|p| *p != provider);
            if !enabled {
                self.switches.disabled.push(provider);
            }
        }
        observed
    }

    async fn configure(&self, vars: &Vars) -> Observed {
        let Some(route) = self.profile.configure_route() else {
            return Observed::Unknown { reason: "the profile has no [fixtures.configure] to switch the target".into() };
        };
        let rendered = match route.render(vars) {
            Ok(rendered) => rendered,
            Err(e) => return Observed::Unknown { reason: e.to_string() },
        };
        match self.send(&rendered.method, &rendered.path, Vec::new(), rendered.body).await {
            Err(reason) => Observed::Unknown { reason },
            Ok(response) if route.expect.contains(&response.status) => {
                Observed::Accepted { status: response.status, state: None }
            }
            Ok(response) => Observed::Unknown {
                reason: format!("[fixtures.configure] answered {} (expected {:?})", response.status, route.expect),
            },
        }
    }

    /// Puts back what conform switched: passkeys as the profile says the target was launched, every provider on.
    /// `Err` says what could not be put back (the suites that share the target would see it switched).
    pub async fn restore_configuration(&mut self) -> Result<(), String> {
        let mut failed = Vec::new();
        if let Some(enabled) = self.switches.passkeys {
            let launched = self.profile.capabilities().passkeys;
            if enabled != launched {
                match self.switch_passkeys(launched).await {
                    Observed::Accepted { .. } => {}
                    other => failed.push(format!("passkeys: {other:?}")),
                }
            }
            self.switches.passkeys = None;
        }
        for provider in self.switches.disabled.clone() {
            match self.switch_provider(provider, true).await {
                Observed::Accepted { .. } => {}
                other => failed.push(format!("{}: {other:?}", provider.name())),
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }

    /// Whether the profile binds every passkey operation and can switch passkeys (for the suites' `unverified`).
    pub fn passkey_support(&self) -> Result<(), String> {
        for op in [
            OperationKind::PasskeyRegisterOptions,
            OperationKind::PasskeyRegister,
            OperationKind::PasskeySignInOptions,
            OperationKind::PasskeySignIn,
        ] {
            if self.profile.operation(op).is_none() {
                return Err(format!("the profile does not bind {op}"));
            }
        }
        Ok(())
    }
}

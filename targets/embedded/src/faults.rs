//! The fault catalog: named, realistic defects the embedded target can be started with. Each is a mistake a real
//! team could ship; together they cover every SPEC section and every threat T01–T15. The harness proves it has
//! teeth by catching each one (`conform selftest`).
//!
//! Faults are switched at run time (`conform serve embedded --fault NAME`), never by compiling variants: every
//! code path that a fault changes asks [`FaultSet::is_on`] at the point where the mistake would be made.

use std::collections::BTreeSet;
use std::fmt;

macro_rules! catalog {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, [$($rule:literal),*], [$($threat:literal),*], $summary:literal; )*) => {
        /// A named defect.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Fault {
            $( $(#[$doc])* $variant, )*
        }

        /// Every fault with what it breaks.
        pub const CATALOG: &[FaultInfo] = &[
            $( FaultInfo { fault: Fault::$variant, name: $name, rules: &[$($rule),*], threats: &[$($threat),*], summary: $summary }, )*
        ];
    };
}

/// A fault's name, what it does and what it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultInfo {
    /// The fault.
    pub fault: Fault,
    /// Its name on the command line.
    pub name: &'static str,
    /// SPEC rules it breaks.
    pub rules: &'static [&'static str],
    /// Threats it opens.
    pub threats: &'static [&'static str],
    /// The defect, as a reviewer would describe it.
    pub summary: &'static str,
}

catalog! {
    // §3 REST authorization
    /// GET /v1/escrows/{id} skips the object-level check.
    IdorGetEscrow = "idor-get-escrow", ["AZ-2", "ESC-20"], ["T01"],
        "GET /v1/escrows/{id} returns any escrow to any signed-in user (no object-level check)";
    /// The escrow list is not filtered by participant.
    UnfilteredEscrowList = "unfiltered-escrow-list", ["AZ-4"], ["T01", "T10"],
        "GET /v1/escrows lists every escrow to every user";
    /// Support passes the admin check for dispute resolution.
    SupportCanResolve = "support-can-resolve", ["AZ-5", "AZ-6"], ["T02"],
        "support staff may resolve disputes (the role check accepts any staff)";
    /// Admin operations do not check the step-up.
    StepUpNotChecked = "step-up-not-checked", ["AZ-6", "SES-9"], ["T02", "T09"],
        "admin fund-moving operations run without a fresh step-up";
    /// A step-up elevates every session of the user.
    StepUpNotSessionBound = "step-up-not-session-bound", ["SES-9", "AZ-6"], ["T08", "T09"],
        "a step-up is stored on the account, so every session of that admin is elevated";
    /// The second approval may come from the first approver.
    SameAdminApprovesTwice = "same-admin-approves-twice", ["AZ-7"], ["T09"],
        "a two-person approval accepts the requesting admin as the second approver";
    /// Protected fields in request bodies are applied.
    MassAssignedStatus = "mass-assigned-status", ["AZ-8"], ["T07"],
        "PATCH /v1/escrows/{id} applies `state` and `amount_received` from the body";
    /// Refused admin calls leave no audit record.
    RefusedAdminCallsNotAudited = "refused-admin-calls-not-audited", ["AZ-9"], ["T15"],
        "only successful admin calls are audited; refusals leave no trace";
    // §1, §2 escrow machine and ledger
    /// Release checks the state, then moves money outside the critical section.
    ReleaseRace = "release-race", ["LED-4", "LED-8", "ESC-19"], ["T06"],
        "confirm_receipt checks the state, yields, then writes the release: two parallel calls both release";
    /// A refund_pending escrow can still be released.
    ReleaseAfterRefund = "release-after-refund", ["ESC-19", "LED-4", "LED-3"], ["T06"],
        "confirm_receipt is accepted in refund_pending, releasing an escrow already being refunded";
    /// The payment deadline looks at the state only, not at what was paid.
    PartiallyPaidEscrowExpires = "partially-paid-escrow-expires", ["ESC-9", "ESC-4"], ["T07"],
        "the payment deadline expires any awaiting_payment escrow, stranding a partial payment in a terminal escrow";
    /// The auto-release timer looks at the delivery time only, not at the state.
    AutoReleaseDuringDispute = "auto-release-during-dispute", ["ESC-12", "ESC-13"], ["T07"],
        "the auto-release timer releases every delivered-at escrow once the window passes, disputed ones included";
    /// The fee is rounded up.
    FeeRoundedUp = "fee-rounded-up", ["LED-5"], ["T07"],
        "the platform fee is ceil(amount * bps / 10000) instead of floor";
    /// A payment is credited to the escrow named in the webhook's metadata.
    EscrowFromWebhookMetadata = "escrow-from-webhook-metadata", ["LED-10"], ["T07"],
        "the escrow credited is read from the payload's metadata, not from the server's invoice binding";
    /// A payment in another currency funds the escrow.
    WrongCurrencyFunds = "wrong-currency-funds", ["LED-10", "PRV-5"], ["T07"],
        "a payment in another currency is credited to the escrow as if it were its currency";
    /// A partial payment funds the escrow.
    PartialPaymentFunds = "partial-payment-funds", ["ESC-4", "PRV-5", "LED-8"], ["T07"],
        "any verified payment moves the escrow to funded, whatever its amount";
    // §5 sessions
    /// Refresh tokens are not rotated.
    RefreshNotRotated = "refresh-not-rotated", ["SES-2"], ["T08"],
        "refresh returns the same refresh token, which stays valid";
    /// Reuse of a rotated refresh token is not detected.
    RefreshReuseUndetected = "refresh-reuse-undetected", ["SES-3"], ["T08"],
        "presenting an already used refresh token is refused but the session family stays alive";
    /// Logout leaves the access token valid.
    LogoutKeepsAccessToken = "logout-keeps-access-token", ["SES-4"], ["T08"],
        "logout revokes the refresh token only; the access token works until it expires";
    /// Expired access tokens are accepted.
    ExpiredAccessTokenAccepted = "expired-access-token-accepted", ["SES-6"], ["T08"],
        "the access token's expiry is not checked";
    /// The role is cached in the session at sign-in.
    StaleRoleInSession = "stale-role-in-session", ["SES-7", "RT-7"], ["T02", "T09"],
        "the role is read from the session, so a demoted admin keeps admin rights until sign-out";
    /// No sign-in rate limit.
    NoSignInRateLimit = "no-sign-in-rate-limit", ["SES-10"], ["T08"],
        "sign-in attempts are never rate-limited";
    /// Passkey challenges can be used again.
    ReusablePasskeyChallenge = "reusable-passkey-challenge", ["SES-8"], ["T08"],
        "a passkey challenge is not consumed, so a captured assertion can be replayed";
    /// Passkey signatures are not verified.
    PasskeySignatureUnchecked = "passkey-signature-unchecked", ["SES-8"], ["T08"],
        "an assertion naming a registered credential is accepted without verifying its signature against that credential's key";
    /// The passkey sign counter is never compared.
    PasskeyCounterNotChecked = "passkey-counter-not-checked", ["SES-8"], ["T08"],
        "the sign counter is stored but never compared, so a cloned authenticator's assertions are accepted";
    /// Assertions with a counter of 0 are refused.
    CounterlessPasskeyRefused = "counterless-passkey-refused", ["SES-8"], ["T08"],
        "an assertion whose sign counter is 0 is refused as not increasing, so synced passkeys cannot sign in";
    /// The passkey switch is read once at start.
    PasskeysSwitchIgnored = "passkeys-switch-ignored", ["SES-8"], ["T08"],
        "the passkey module keeps the switch it read at start: switched off at run time, its routes keep working";
    // §6 webhooks
    /// The signature is checked over re-serialized JSON.
    SignatureOverReserializedJson = "signature-over-reserialized-json", ["WH-1"], ["T03"],
        "the body is parsed first and the HMAC computed over JSON re-serialized from it";
    /// The webhook timestamp is not checked.
    NoTimestampCheck = "no-timestamp-check", ["WH-2"], ["T04"],
        "signed timestamps are verified but their age is never checked";
    /// Deliveries are not deduplicated.
    NoWebhookDedup = "no-webhook-dedup", ["WH-3", "WH-4", "LED-6"], ["T04"],
        "a delivery of an already applied event is applied again";
    /// Deduplication is check-then-insert with a gap.
    RacyWebhookDedup = "racy-webhook-dedup", ["WH-4", "LED-6"], ["T04", "T06"],
        "deduplication checks for the event, yields, then inserts: parallel deliveries both apply";
    /// Failed deliveries are dropped.
    DeadLetterDropped = "dead-letter-dropped", ["WH-5", "PRV-3"], ["T03", "T05"],
        "deliveries that fail verification or processing are logged and dropped, not dead-lettered";
    /// The old webhook secret keeps working after a rotation.
    OldSecretAfterRotation = "old-secret-after-rotation", ["WH-8"], ["T05"],
        "after a secret rotation the old secret is still accepted, forever";
    /// SHKeeper's legacy API-key-only callbacks are accepted.
    LegacyApiKeyAccepted = "legacy-api-key-accepted", ["WH-10"], ["T03"],
        "SHKeeper callbacks carrying only X-Shkeeper-Api-Key are accepted";
    // §7 providers
    /// SHKeeper's HTTP-200 error is taken as success.
    ShkeeperErrorAsSuccess = "shkeeper-200-error-as-success", ["PRV-2"], ["T13"],
        "an SHKeeper answer of HTTP 200 with {\"status\":\"error\"} is taken as an invoice";
    /// A disabled provider still accepts payments.
    DisabledProviderAccepts = "disabled-provider-accepts", ["PRV-3"], ["T13"],
        "a disabled provider's webhooks are applied and new escrows accepted";
    /// A payout retry carries a new idempotency key.
    NewPayoutKeyOnRetry = "new-payout-key-on-retry", ["PRV-4"], ["T14", "T06"],
        "each payout retry sends a fresh idempotency key, so the provider may pay twice";
    /// Request Network releases post no fee.
    RequestNetworkFeeSkipped = "request-network-fee-skipped", ["PRV-7", "LED-5"], ["T07"],
        "the release of a Request Network escrow pays the seller the whole amount and books no platform fee";
    /// A late pending notice moves a paid escrow back.
    LatePendingReopens = "late-pending-reopens", ["WH-9"], ["T04"],
        "a payment.processing notice that arrives after the payment reopens a funded escrow to awaiting_payment";
    /// A payment proof's `flagged` and `status` are taken from the request body.
    ProofFieldsFromBody = "proof-fields-from-body", ["AZ-8", "PRV-6"], ["T12"],
        "POST /v1/escrows/{id}/payment-proofs applies `flagged` and `status` from the body: a buyer can send an unflagged, approved proof";
    /// Reused transaction hashes are not flagged.
    ReusedTxHashNotFlagged = "reused-tx-hash-not-flagged", ["PRV-6"], ["T12"],
        "a manual payment proof reusing a transaction hash is not flagged, so one admin can approve it";
    // §4 realtime
    /// Escrow updates go to every socket.
    GlobalBroadcast = "global-broadcast", ["RT-4"], ["T10"],
        "escrow:updated is broadcast to every connected socket";
    /// A client may join any room it names.
    ClientNamedRoom = "client-named-room", ["RT-3"], ["T10"],
        "escrow:subscribe joins the room the client names without checking who may see the escrow";
    /// Revoked sessions keep their sockets.
    NoDisconnectOnRevocation = "no-disconnect-on-revocation", ["RT-6"], ["T08", "T09"],
        "sockets of a revoked session stay connected and keep receiving events";
    /// No per-socket rate limit.
    NoSocketRateLimit = "no-socket-rate-limit", ["RT-5"], ["T11"],
        "a socket may send any number of events a second";
    /// A token in the query string authenticates a socket.
    TokenInQueryString = "token-in-query-string", ["RT-2"], ["T08", "T10"],
        "the Socket.IO handshake accepts the access token from the query string";
}

impl Fault {
    /// The catalog entry of this fault.
    pub fn info(self) -> &'static FaultInfo {
        // Every variant has exactly one entry: the macro writes both from the same list.
        CATALOG.iter().find(|info| info.fault == self).unwrap_or(&CATALOG[0])
    }

    /// The fault's name on the command line.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Looks a fault up by name; the error lists the valid names.
    pub fn parse(name: &str) -> Result<Fault, UnknownFault> {
        CATALOG
            .iter()
            .find(|info| info.name == name)
            .map(|info| info.fault)
            .ok_or_else(|| UnknownFault { name: name.to_owned() })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {name:?}; `conform serve embedded --list-faults` lists them: {}", CATALOG.iter().map(|i| i.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownFault {
    /// The name given.
    pub name: String,
}

/// The faults a target runs with. Empty: the conforming target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSet(BTreeSet<Fault>);

impl FaultSet {
    /// No fault.
    pub fn none() -> FaultSet {
        FaultSet::default()
    }

    /// These faults.
    pub fn of(faults: impl IntoIterator<Item = Fault>) -> FaultSet {
        FaultSet(faults.into_iter().collect())
    }

    /// Parses fault names.
    pub fn parse<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<FaultSet, UnknownFault> {
        names.into_iter().map(|n| Fault::parse(n.as_ref())).collect::<Result<_, _>>().map(FaultSet)
    }

    /// Whether `fault` is switched on.
    pub fn is_on(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }

    /// The faults switched on.
    pub fn iter(&self) -> impl Iterator<Item = Fault> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_large_and_names_are_unique() {
        assert!(CATALOG.len() >= 25, "{} faults", CATALOG.len());
        let names: BTreeSet<_> = CATALOG.iter().map(|i| i.name).collect();
        assert_eq!(names.len(), CATALOG.len());
        for info in CATALOG {
            assert_eq!(Fault::parse(info.name), Ok(info.fault));
            assert_eq!(info.fault.info(), info);
            assert!(!info.rules.is_empty() && !info.threats.is_empty(), "{}", info.name);
        }
    }

    #[test]
    fn catalog_covers_every_threat_and_spec_section() {
        for n in 1..=15 {
            let threat = format!("T{n:02}");
            assert!(CATALOG.iter().any(|i| i.threats.contains(&threat.as_str())), "{threat} uncovered");
        }
        for family in ["ESC-", "LED-", "AZ-", "RT-", "SES-", "WH-", "PRV-"] {
            assert!(CATALOG.iter().any(|i| i.rules.iter().any(|r| r.starts_with(family))), "{family} uncovered");
        }
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = FaultSet::parse(["release-race", "typo"]).unwrap_err();
        assert_eq!(err.name, "typo");
        assert!(err.to_string().contains("release-race"));
    }
}

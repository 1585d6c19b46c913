//! The abstract operations of an escrow backend: what every profile binds to a target's routes, and what the
//! authorization matrix (`contracts/authorization-matrix.toml`) has a row for.

use serde::{Deserialize, Serialize};

/// How an operation is reached and what it may change; decides which authorization rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationClass {
    /// No session needed (sign-in, refresh, webhooks authenticated by signature).
    Public,
    /// Reads an escrow or a list.
    Read,
    /// Changes an escrow or account as a participant or as the caller themself.
    Write,
    /// Admin-only, with a step-up younger than 5 minutes (AZ-6).
    AdminStepUp,
    /// Staff read (support and admin), no step-up.
    StaffRead,
}

macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $class:ident, $escrow:literal ; )*) => {
        /// An abstract operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum OperationKind {
            $( $(#[$doc])* $variant, )*
        }

        impl OperationKind {
            /// Every operation, in a fixed order.
            pub const ALL: &'static [OperationKind] = &[ $( OperationKind::$variant, )* ];

            /// The operation's name in profiles, contracts and reports.
            pub const fn name(self) -> &'static str {
                match self { $( OperationKind::$variant => $name, )* }
            }

            /// Which authorization rules apply.
            pub const fn class(self) -> OperationClass {
                match self { $( OperationKind::$variant => OperationClass::$class, )* }
            }

            /// Whether the operation names one escrow (and so is subject to AZ-2's existence hiding).
            pub const fn targets_escrow(self) -> bool {
                match self { $( OperationKind::$variant => $escrow, )* }
            }
        }
    };
}

operations! {
    /// Sign in with password (SES-1).
    SignIn = "sign_in", Public, false;
    /// Exchange a refresh token for new tokens (SES-2, SES-3).
    Refresh = "refresh", Public, false;
    /// End the current session (SES-4).
    Logout = "logout", Write, false;
    /// List the caller's own sessions (SES-5).
    ListSessions = "list_sessions", Read, false;
    /// Revoke one of the caller's own sessions (SES-5).
    RevokeOwnSession = "revoke_own_session", Write, false;
    /// Step up with password and TOTP (SES-9).
    StepUp = "step_up", Write, false;
    /// Change the caller's own password (SES-7).
    ChangePassword = "change_password", Write, false;
    /// Begin passkey registration (SES-8).
    PasskeyRegisterOptions = "passkey_register_options", Write, false;
    /// Finish passkey registration (SES-8).
    PasskeyRegister = "passkey_register", Write, false;
    /// Begin passkey sign-in (SES-8).
    PasskeySignInOptions = "passkey_sign_in_options", Public, false;
    /// Finish passkey sign-in (SES-8).
    PasskeySignIn = "passkey_sign_in", Public, false;
    /// Create an escrow as its buyer (ESC-1).
    CreateEscrow = "create_escrow", Write, false;
    /// Read one escrow (AZ-2).
    GetEscrow = "get_escrow", Read, true;
    /// List escrows, filtered to the caller's (AZ-4).
    ListEscrows = "list_escrows", Read, false;
    /// Try to change fields of an escrow directly (AZ-8: only the description may change).
    UpdateEscrow = "update_escrow", Write, true;
    /// Create the provider invoice (ESC-2, PRV-1).
    StartPayment = "start_payment", Write, true;
    /// Submit a manual-wallet payment proof (ESC-5, PRV-6).
    SubmitPaymentProof = "submit_payment_proof", Write, true;
    /// Cancel an unpaid escrow (ESC-8).
    CancelEscrow = "cancel_escrow", Write, true;
    /// Seller marks the goods delivered (ESC-10).
    MarkDelivered = "mark_delivered", Write, true;
    /// Buyer confirms receipt (ESC-11).
    ConfirmReceipt = "confirm_receipt", Write, true;
    /// Buyer or seller opens a dispute (ESC-13).
    OpenDispute = "open_dispute", Write, true;
    /// Seller refunds voluntarily (ESC-15).
    RefundVoluntarily = "refund_voluntarily", Write, true;
    /// Admin resolves a dispute (ESC-14, AZ-6, AZ-7).
    ResolveDispute = "resolve_dispute", AdminStepUp, true;
    /// Admin approves a payment proof (ESC-6, AZ-6, AZ-7).
    ApproveProof = "approve_proof", AdminStepUp, true;
    /// Admin rejects a payment proof (ESC-7, AZ-6).
    RejectProof = "reject_proof", AdminStepUp, true;
    /// A second admin approves a pending two-person action (AZ-7).
    ApprovePending = "approve_pending", AdminStepUp, false;
    /// Admin retries a failed or stuck payout (ESC-18, PRV-4).
    RetryPayout = "retry_payout", AdminStepUp, true;
    /// Admin replays a dead-lettered webhook (WH-6).
    ReplayDeadLetter = "replay_dead_letter", AdminStepUp, false;
    /// Admin rotates a provider's webhook secret (WH-8).
    RotateWebhookSecret = "rotate_webhook_secret", AdminStepUp, false;
    /// Admin changes a user's role (SES-7, AZ-7 when granting admin).
    ChangeRole = "change_role", AdminStepUp, false;
    /// Admin deletes an account (AZ-6).
    DeleteAccount = "delete_account", AdminStepUp, false;
    /// Admin revokes every session of a user (SES-5).
    RevokeUserSessions = "revoke_user_sessions", AdminStepUp, false;
    /// Staff list of payouts pending longer than the threshold (DRL-3).
    ListStuckPayouts = "list_stuck_payouts", StaffRead, false;
    /// Staff list of dead letters (WH-5).
    ListDeadLetters = "list_dead_letters", StaffRead, false;
    /// Admin read of the audit log (AZ-9).
    ReadAuditLog = "read_audit_log", StaffRead, false;
    /// Staff read of the ledger (LED).
    ReadLedger = "read_ledger", StaffRead, false;
    /// A provider's webhook delivery, authenticated by its signature (WH).
    DeliverWebhook = "deliver_webhook", Public, false;
    /// Subscribe a socket to an escrow's updates (RT-3).
    SubscribeEscrow = "subscribe_escrow", Read, true;
}

impl OperationKind {
    /// Whether it is one of the four passkey ceremonies' steps (SES-8), which answer `passkeys_disabled` to
    /// everyone while passkeys are switched off.
    pub const fn is_passkey(self) -> bool {
        matches!(
            self,
            OperationKind::PasskeyRegisterOptions
                | OperationKind::PasskeyRegister
                | OperationKind::PasskeySignInOptions
                | OperationKind::PasskeySignIn
        )
    }

    /// Looks an operation up by name, with the valid names in the error.
    pub fn parse(name: &str) -> Result<OperationKind, UnknownOperation> {
        OperationKind::ALL
            .iter()
            .copied()
            .find(|op| op.name() == name)
            .ok_or_else(|| UnknownOperation { name: name.to_owned() })
    }

    /// Whether a call changes something on the server: an escrow, funds, an account, or the caller's own session.
    /// Which of these support may still call (its own session) is [`crate::authz::authorize`]'s decision, not this.
    pub const fn changes_state(self) -> bool {
        !matches!(self.class(), OperationClass::Read | OperationClass::StaffRead)
            && !matches!(self, OperationKind::DeliverWebhook)
    }
}

/// An operation name that is not in [`OperationKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {name:?} (known operations are listed in contracts/authorization-matrix.toml)")]
pub struct UnknownOperation {
    /// The name that was given.
    pub name: String,
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

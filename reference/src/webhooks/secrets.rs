//! Webhook secrets and their rotation (WH-8).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;

/// A webhook secret: an API key, an HMAC key, or a `whsec_…` string, as bytes.
///
/// It has no `Display`, no `PartialEq` (a `==` on secrets would not be constant-time) and no `Serialize`, and its
/// `Debug` prints `Secret(<redacted>)`, so it cannot end up in a log, an error message or a report by accident
/// (WH-7).
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// A secret from its bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret { bytes: bytes.into() }
    }

    /// The secret's bytes, for signing and verifying. The name makes every use visible in review.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the secret is empty; an empty key would let anyone sign, so verifiers refuse to use it.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value.into_bytes())
    }
}

impl From<&[u8]> for Secret {
    fn from(value: &[u8]) -> Self {
        Secret::new(value)
    }
}

impl From<Vec<u8>> for Secret {
    fn from(value: Vec<u8>) -> Self {
        Secret::new(value)
    }
}

/// Which secret of a [`SecretRing`] authenticated a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsed {
    /// The current secret.
    Current,
    /// The secret replaced by the last rotation, inside its overlap.
    Previous,
}

/// A secret replaced by a rotation, still accepted for `overlap_seconds` after `rotated_at`.
#[derive(Debug, Clone)]
pub struct RetiredSecret {
    /// The old secret.
    pub secret: Secret,
    /// When the rotation happened.
    pub rotated_at: Timestamp,
    /// How long after the rotation the old secret is still accepted. SPEC default 0: refused at once.
    pub overlap_seconds: u32,
}

impl RetiredSecret {
    /// Whether the old secret is still accepted at `now`: strictly before `rotated_at + overlap_seconds`. With the
    /// default overlap of 0 it is refused from the rotation instant on (WH-8). Before the rotation instant it was
    /// the current secret, so it is accepted then too.
    pub fn valid_at(&self, now: Timestamp) -> bool {
        // i128: a timestamp near i64::MAX plus the overlap must not overflow.
        i128::from(now.0) < i128::from(self.rotated_at.0) + i128::from(self.overlap_seconds)
    }
}

/// The secrets of one provider: the current one, and the one it replaced while that is inside its overlap (WH-8).
/// Verifiers try [`SecretRing::keys_valid_at`], current first.
#[derive(Debug, Clone)]
pub struct SecretRing {
    current: Secret,
    previous: Option<RetiredSecret>,
}

impl SecretRing {
    /// The SPEC's default overlap after a rotation: none (WH-8).
    pub const DEFAULT_OVERLAP_SECONDS: u32 = 0;

    /// A ring holding one secret, never rotated.
    pub fn new(current: impl Into<Secret>) -> SecretRing {
        SecretRing { current: current.into(), previous: None }
    }

    /// A ring after a rotation at `rotated_at` from `previous` to `current`, with an overlap.
    pub fn with_previous(
        current: impl Into<Secret>,
        previous: impl Into<Secret>,
        rotated_at: Timestamp,
        overlap_seconds: u32,
    ) -> SecretRing {
        SecretRing {
            current: current.into(),
            previous: Some(RetiredSecret { secret: previous.into(), rotated_at, overlap_seconds }),
        }
    }

    /// Rotates to `new` at `at`: the current secret becomes the previous one for `overlap_seconds`. Only one
    /// previous secret is kept, so a secret two rotations old is refused whatever its overlap was.
    pub fn rotate(&mut self, new: impl Into<Secret>, at: Timestamp, overlap_seconds: u32) {
        let old = std::mem::replace(&mut self.current, new.into());
        self.previous = Some(RetiredSecret { secret: old, rotated_at: at, overlap_seconds });
    }

    /// The current secret.
    pub fn current(&self) -> &Secret {
        &self.current
    }

    /// The previous secret and its overlap, if the ring was rotated.
    pub fn previous(&self) -> Option<&RetiredSecret> {
        self.previous.as_ref()
    }

    /// The secrets to try at `now`, current first: the new secret works at once, the old one only inside its
    /// overlap.
    pub fn keys_valid_at(&self, now: Timestamp) -> impl Iterator<Item = (KeyUsed, &Secret)> + '_ {
        let previous = self.previous.as_ref().filter(|p| p.valid_at(now)).map(|p| (KeyUsed::Previous, &p.secret));
        std::iter::once((KeyUsed::Current, &self.current)).chain(previous)
    }
}

//! The harness's teeth, in CI: every target suite against the embedded target, clean and with each fault of the
//! catalog. Clean must show nothing; each fault listed in `CAUGHT` must be found under one of the rules it breaks.
//! The faults the suites do not reach yet are listed in `NOT_YET_CAUGHT`, so that the list is a ratchet: a fault that
//! starts being caught fails this test until it moves to `CAUGHT`, and one that stops being caught fails it too.

use conform::selftest::{SelftestOptions, selftest_lines};
use conform::suites::model::GeneratedOptions;
use conform_embedded::faults::CATALOG;

/// Found under their own rules by the target suites (seed 1, 32 scenarios).
const CAUGHT: &[&str] = &[
    "idor-get-escrow",
    "unfiltered-escrow-list",
    "support-can-resolve",
    "step-up-not-checked",
    "step-up-not-session-bound",
    "same-admin-approves-twice",
    "mass-assigned-status",
    "release-after-refund",
    "logout-keeps-access-token",
    "expired-access-token-accepted",
    "no-webhook-dedup",
    // The properties suite, at the delivery itself (the state is read back after each one).
    "partial-payment-funds",
    // The features suite and the drills.
    "dead-letter-dropped",
    "new-payout-key-on-retry",
    // The realtime suite.
    "token-in-query-string",
    "client-named-room",
    "global-broadcast",
    "no-disconnect-on-revocation",
    "no-socket-rate-limit",
    // The webhooks suite.
    "signature-over-reserialized-json",
    "no-timestamp-check",
    "legacy-api-key-accepted",
    "old-secret-after-rotation",
    "shkeeper-200-error-as-success",
    // The races and sessions suites.
    "release-race",
    "racy-webhook-dedup",
    "fee-rounded-up",
    "escrow-from-webhook-metadata",
    "wrong-currency-funds",
    "refresh-not-rotated",
    "refresh-reuse-undetected",
    "no-sign-in-rate-limit",
    "refused-admin-calls-not-audited",
    "reused-tx-hash-not-flagged",
    "partially-paid-escrow-expires",
    "auto-release-during-dispute",
    "stale-role-in-session",
    // Through [fixtures.configure]: passkeys (the sessions suite) and a disabled provider (the webhooks suite).
    "reusable-passkey-challenge",
    "passkey-signature-unchecked",
    "passkey-counter-not-checked",
    "counterless-passkey-refused",
    "passkeys-switch-ignored",
    "disabled-provider-accepts",
    // The matrix's mass-assignment cases on payment proofs.
    "proof-fields-from-body",
    // The providers suite.
    "late-pending-reopens",
    "request-network-fee-skipped",
];

#[test]
fn the_clean_target_shows_nothing_and_the_caught_faults_stay_caught() {
    let dir = std::env::temp_dir().join(format!("conform-selftest-{}", std::process::id()));
    let options = SelftestOptions {
        generated: GeneratedOptions { seed: 1, cases: 32, max_steps: 120 },
        faults: Vec::new(),
        report_dir: dir.clone(),
        jobs: 4,
    };
    let lines = selftest_lines(&options).expect("the selftest runs");
    let clean = &lines[0];
    assert_eq!(clean.fault, "clean");
    assert!(!clean.found, "the clean target has findings: {:?}", clean.failed_checks);
    let table = std::fs::read_to_string(dir.join("selftest.md")).expect("the table is written");
    for info in CATALOG {
        let line = lines.iter().find(|l| l.fault == info.name).expect("every fault is run");
        let expected = CAUGHT.contains(&info.name);
        assert_eq!(
            line.as_expected,
            expected,
            "{}: caught under its rules = {}, but the test lists it as {}\n{table}",
            info.name,
            line.as_expected,
            if expected { "caught" } else { "not yet caught" }
        );
        if expected {
            assert!(line.time_to_detect_ms.is_some() && line.shortest_reproduction.is_some(), "{table}");
        }
    }
}

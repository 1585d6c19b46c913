//! Every vector of FACTS.md, each verification failure mode, the dedup keys, the dead letters, and fuzzing of
//! every verifier and parser.

use proptest::prelude::*;

use super::header_names as h;
use super::*;
use crate::ids::Timestamp;
use crate::money::{Currency, Money};
use crate::refusal::Refusal;

const SHK_KEY: &str = "test-api-key";
const SHK_TS: &str = "1700000000";
const SHK_VECTOR: &str = "4bb210136fbf30d46eb3ffe6741b001ae479414b583d91c9a74a10ca3677ccdf";
const RN_SECRET: &str = "s3cret";
const RN_VECTOR: &str = "5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d";
const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SW_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const SW_TS: i64 = 1_649_367_553;
const SW_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const SW_VECTOR: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

const T0: Timestamp = Timestamp(1_700_000_000);

fn options() -> VerifyOptions {
    VerifyOptions::default()
}

/// A SHKeeper delivery of `body` signed with `key` at `ts`.
fn shk_headers(key: &str, ts: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        (h::SHKEEPER_TIMESTAMP.into(), ts.into()),
        (h::SHKEEPER_SIGNATURE.into(), shkeeper_signature(key.as_bytes(), ts, body)),
    ]
}

fn verify_shk(
    pairs: &[(String, String)],
    body: &[u8],
    ring: &SecretRing,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    verify_shkeeper(&Headers::from_owned(pairs), body, ring, &options(), now)
}

fn rn_headers(secret: &str, body: &[u8], delivery: &str) -> Vec<(String, String)> {
    vec![
        (h::REQUEST_NETWORK_SIGNATURE.into(), request_network_signature(secret.as_bytes(), body)),
        (h::REQUEST_NETWORK_DELIVERY.into(), delivery.into()),
    ]
}

fn sw_headers(id: &str, ts: i64, signature: &str) -> Vec<(String, String)> {
    vec![
        (h::WEBHOOK_ID.into(), id.into()),
        (h::WEBHOOK_TIMESTAMP.into(), ts.to_string()),
        (h::WEBHOOK_SIGNATURE.into(), signature.into()),
    ]
}

fn verify_sw(
    pairs: &[(String, String)],
    body: &[u8],
    ring: &SecretRing,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    verify_standard_webhooks(&Headers::from_owned(pairs), body, ring, &options(), now)
}

fn set(pairs: &mut [(String, String)], name: &str, value: &str) {
    for (n, v) in pairs.iter_mut() {
        if n.eq_ignore_ascii_case(name) {
            *v = value.to_owned();
        }
    }
}

fn without(pairs: &[(String, String)], name: &str) -> Vec<(String, String)> {
    pairs.iter().filter(|(n, _)| !n.eq_ignore_ascii_case(name)).cloned().collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Vectors (FACTS.md)

#[test]
fn vector_shkeeper() {
    assert_eq!(shkeeper_signature(SHK_KEY.as_bytes(), SHK_TS, br#"{"a":1}"#), SHK_VECTOR);
}

#[test]
fn vector_request_network() {
    assert_eq!(request_network_signature(RN_SECRET.as_bytes(), br#"{"a":1}"#), RN_VECTOR);
}

#[test]
fn vector_standard_webhooks_first() {
    assert_eq!(standard_webhooks_signature(SW_SECRET, SW_ID, SW_TS, SW_BODY).unwrap(), SW_VECTOR);
}

#[test]
fn vector_standard_webhooks_second() {
    let signature = standard_webhooks_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(signature.unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[test]
fn vector_github() {
    assert_eq!(
        github_signature(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn stripe_signs_shkeepers_content_with_the_secret_as_is() {
    // Stripe and SHKeeper both sign "{t}." + body with the key as given, so SHKeeper's vector checks Stripe's.
    assert_eq!(stripe_signature_header(SHK_KEY, 1_700_000_000, br#"{"a":1}"#), format!("t={SHK_TS},v1={SHK_VECTOR}"));
}

#[test]
fn standard_webhooks_secret_formats() {
    let with_prefix = standard_webhooks_key(SW_SECRET).unwrap();
    assert_eq!(standard_webhooks_key("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap(), with_prefix);
    assert_eq!(with_prefix.len(), 24);
    assert_eq!(standard_webhooks_key("whsec_not base64!"), Err(SecretFormatError::NotBase64));
    assert_eq!(standard_webhooks_key("whsec_"), Err(SecretFormatError::Empty));
    assert!(standard_webhooks_signature("whsec_%%%", "id", 1, b"").is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// Headers

#[test]
fn header_lookup_ignores_case_and_trims() {
    let headers = Headers::new(&[("x-SHKEEPER-timestamp", "  1700000000\t"), ("Other", "a"), ("other", "b")]);
    assert_eq!(headers.get("X-Shkeeper-Timestamp"), Some("1700000000"));
    assert_eq!(headers.get("OTHER"), Some("a"));
    assert_eq!(headers.get_all("other").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(headers.get("absent"), None);
    assert_eq!(headers.len(), 3);
    assert!(!headers.is_empty() && Headers::default().is_empty());
}

#[test]
fn shkeeper_verifies_with_any_header_case() {
    let body = br#"{"a":1}"#;
    let pairs = vec![
        ("x-shkeeper-timestamp".to_owned(), SHK_TS.to_owned()),
        ("X-SHKEEPER-SIGNATURE".into(), SHK_VECTOR.into()),
    ];
    let verified = verify_shk(&pairs, body, &SecretRing::new(SHK_KEY), T0).unwrap();
    assert_eq!(verified.mode, AuthMode::Signature);
}

// ---------------------------------------------------------------------------------------------------------------
// SHKeeper verification

#[test]
fn shkeeper_accepts_the_vector() {
    let body = br#"{"a":1}"#;
    let verified = verify_shk(&shk_headers(SHK_KEY, SHK_TS, body), body, &SecretRing::new(SHK_KEY), T0).unwrap();
    assert_eq!(
        verified,
        Verified {
            provider: Provider::Shkeeper,
            mode: AuthMode::Signature,
            key: KeyUsed::Current,
            signed_at: Some(T0)
        }
    );
    assert!(!verified.is_weaker() && verified.replay_window_limited());
}

#[test]
fn shkeeper_refuses_any_changed_byte() {
    let body = br#"{"external_id":"inv-1","status":"PAID"}"#.to_vec();
    let pairs = shk_headers(SHK_KEY, SHK_TS, &body);
    let ring = SecretRing::new(SHK_KEY);
    for i in 0..body.len() {
        let mut changed = body.clone();
        changed[i] ^= 0x01;
        assert_eq!(verify_shk(&pairs, &changed, &ring, T0), Err(VerifyError::SignatureMismatch), "byte {i}");
    }
    let mut longer = body.clone();
    longer.push(b' ');
    assert_eq!(verify_shk(&pairs, &longer, &ring, T0), Err(VerifyError::SignatureMismatch));
}

#[test]
fn shkeeper_refuses_a_reserialized_body() {
    // WH-1: the provider sends compact JSON with sorted keys; a receiver that parses and re-serializes changes it.
    let sent = br#"{"a":1,"b":"x"}"#;
    let pairs = shk_headers(SHK_KEY, SHK_TS, sent);
    let ring = SecretRing::new(SHK_KEY);
    assert!(verify_shk(&pairs, sent, &ring, T0).is_ok());
    for reserialized in [&br#"{"b":"x","a":1}"#[..], br#"{"a": 1, "b": "x"}"#, b"{\"a\":1,\"b\":\"x\"}\n"] {
        assert_eq!(verify_shk(&pairs, reserialized, &ring, T0), Err(VerifyError::SignatureMismatch));
    }
}

#[test]
fn shkeeper_refuses_a_changed_timestamp() {
    let body = br#"{"a":1}"#;
    let mut pairs = shk_headers(SHK_KEY, SHK_TS, body);
    set(&mut pairs, h::SHKEEPER_TIMESTAMP, "1700000001");
    assert_eq!(verify_shk(&pairs, body, &SecretRing::new(SHK_KEY), T0), Err(VerifyError::SignatureMismatch));
}

#[test]
fn shkeeper_tolerance_is_300_seconds_both_ways() {
    let body = br#"{"a":1}"#;
    let pairs = shk_headers(SHK_KEY, SHK_TS, body);
    let ring = SecretRing::new(SHK_KEY);
    for ok in [-300, -299, 0, 299, 300] {
        assert!(verify_shk(&pairs, body, &ring, T0.plus(ok)).is_ok(), "{ok}");
    }
    let outside = |skew_seconds| Err(VerifyError::TimestampOutsideTolerance { skew_seconds, tolerance_seconds: 300 });
    assert_eq!(verify_shk(&pairs, body, &ring, T0.plus(301)), outside(301));
    assert_eq!(verify_shk(&pairs, body, &ring, T0.plus(-301)), outside(-301));
    assert_eq!(verify_shk(&pairs, body, &ring, Timestamp(i64::MAX)), outside(i64::MAX - 1_700_000_000));
    assert_eq!(verify_shk(&pairs, body, &ring, Timestamp(i64::MIN)), outside(i64::MIN));
}

#[test]
fn shkeeper_tolerance_is_configurable() {
    let body = br#"{"a":1}"#;
    let pairs = shk_headers(SHK_KEY, SHK_TS, body);
    let ring = SecretRing::new(SHK_KEY);
    let strict = VerifyOptions { tolerance_seconds: 60, ..VerifyOptions::default() };
    let headers = Headers::from_owned(&pairs);
    assert!(verify_shkeeper(&headers, body, &ring, &strict, T0.plus(60)).is_ok());
    assert!(matches!(
        verify_shkeeper(&headers, body, &ring, &strict, T0.plus(61)),
        Err(VerifyError::TimestampOutsideTolerance { skew_seconds: 61, tolerance_seconds: 60 })
    ));
}

#[test]
fn shkeeper_refuses_malformed_timestamps() {
    let body = br#"{"a":1}"#;
    let ring = SecretRing::new(SHK_KEY);
    for ts in
        ["", "abc", "-5", "+1700000000", "01700000000", "1700000000.0", "1e9", "1 700 000 000", "9999999999999999999"]
    {
        let pairs = shk_headers(SHK_KEY, ts, body);
        let expected = Err(VerifyError::TimestampNotANumber { header: h::SHKEEPER_TIMESTAMP });
        assert_eq!(verify_shk(&pairs, body, &ring, T0), expected, "{ts:?}");
    }
}

#[test]
fn shkeeper_signature_must_be_64_hex_characters() {
    let body = br#"{"a":1}"#;
    let ring = SecretRing::new(SHK_KEY);
    let mut pairs = shk_headers(SHK_KEY, SHK_TS, body);
    for (signature, found) in [(&SHK_VECTOR[..63], 63), (&format!("{SHK_VECTOR}0")[..], 65), ("", 0)] {
        set(&mut pairs, h::SHKEEPER_SIGNATURE, signature);
        let problem = SignatureProblem::WrongLength { expected: 64, found };
        assert_eq!(
            verify_shk(&pairs, body, &ring, T0),
            Err(VerifyError::MalformedSignature { header: h::SHKEEPER_SIGNATURE, problem })
        );
    }
    // 64 bytes but not hex (a multi-byte character included, so byte length and character count differ).
    for signature in [format!("{}zz", &SHK_VECTOR[..62]), format!("{}é", &SHK_VECTOR[..62])] {
        set(&mut pairs, h::SHKEEPER_SIGNATURE, &signature);
        let problem = SignatureProblem::NotHex;
        assert_eq!(
            verify_shk(&pairs, body, &ring, T0),
            Err(VerifyError::MalformedSignature { header: h::SHKEEPER_SIGNATURE, problem })
        );
    }
}

#[test]
fn shkeeper_upper_case_hex_is_a_mismatch() {
    // SHKeeper sends and its reference verifier compares lowercase hex strings; we do the same.
    let body = br#"{"a":1}"#;
    let mut pairs = shk_headers(SHK_KEY, SHK_TS, body);
    set(&mut pairs, h::SHKEEPER_SIGNATURE, &SHK_VECTOR.to_ascii_uppercase());
    assert_eq!(verify_shk(&pairs, body, &SecretRing::new(SHK_KEY), T0), Err(VerifyError::SignatureMismatch));
}

#[test]
fn shkeeper_refuses_a_wrong_key() {
    let body = br#"{"a":1}"#;
    let pairs = shk_headers("another-key", SHK_TS, body);
    assert_eq!(verify_shk(&pairs, body, &SecretRing::new(SHK_KEY), T0), Err(VerifyError::SignatureMismatch));
}

#[test]
fn shkeeper_names_the_missing_header() {
    let body = br#"{"a":1}"#;
    let pairs = shk_headers(SHK_KEY, SHK_TS, body);
    let ring = SecretRing::new(SHK_KEY);
    let missing = |name| Err(VerifyError::MissingHeader { name });
    assert_eq!(verify_shk(&without(&pairs, h::SHKEEPER_TIMESTAMP), body, &ring, T0), missing(h::SHKEEPER_TIMESTAMP));
    assert_eq!(verify_shk(&without(&pairs, h::SHKEEPER_SIGNATURE), body, &ring, T0), missing(h::SHKEEPER_SIGNATURE));
    assert_eq!(verify_shk(&[], body, &ring, T0), missing(h::SHKEEPER_SIGNATURE));
}

#[test]
fn duplicated_security_headers_are_refused() {
    let body = br#"{"a":1}"#;
    let mut pairs = shk_headers(SHK_KEY, SHK_TS, body);
    pairs.push(("x-shkeeper-signature".into(), "0".repeat(64)));
    let expected = Err(VerifyError::DuplicateHeader { name: h::SHKEEPER_SIGNATURE });
    assert_eq!(verify_shk(&pairs, body, &SecretRing::new(SHK_KEY), T0), expected);
}

#[test]
fn shkeeper_legacy_api_key_is_off_by_default() {
    let pairs = [(h::SHKEEPER_API_KEY, SHK_KEY)];
    let headers = Headers::new(&pairs);
    let ring = SecretRing::new(SHK_KEY);
    assert_eq!(verify_shkeeper(&headers, b"{}", &ring, &options(), T0), Err(VerifyError::LegacyApiKeyDisabled));
}

#[test]
fn shkeeper_legacy_api_key_when_allowed_is_reported_weaker() {
    let legacy = VerifyOptions { allow_legacy_api_key: true, ..VerifyOptions::default() };
    let ring = SecretRing::new(SHK_KEY);
    let verified = verify_shkeeper(&Headers::new(&[("x-shkeeper-api-key", SHK_KEY)]), b"{}", &ring, &legacy, T0);
    let verified = verified.unwrap();
    assert_eq!(verified.mode, AuthMode::LegacyApiKey);
    assert!(verified.is_weaker() && !verified.replay_window_limited());
    for wrong in ["test-api-kez", "test-api-key ", "test-api-keyy", "", "TEST-API-KEY"] {
        let headers = [("X-Shkeeper-Api-Key", wrong)];
        let result = verify_shkeeper(&Headers::new(&headers), b"{}", &ring, &legacy, T0);
        // A trailing space is optional whitespace, trimmed like any header value.
        if wrong.trim() == SHK_KEY {
            assert!(result.is_ok());
        } else {
            assert_eq!(result, Err(VerifyError::ApiKeyMismatch), "{wrong:?}");
        }
    }
}

#[test]
fn shkeeper_bad_signature_never_falls_back_to_the_api_key() {
    let legacy = VerifyOptions { allow_legacy_api_key: true, ..VerifyOptions::default() };
    let body = br#"{"a":1}"#;
    let mut pairs = shk_headers(SHK_KEY, SHK_TS, body);
    pairs.push((h::SHKEEPER_API_KEY.into(), SHK_KEY.into()));
    let headers = Headers::from_owned(&pairs);
    let ring = SecretRing::new(SHK_KEY);
    assert_eq!(verify_shkeeper(&headers, body, &ring, &legacy, T0).unwrap().mode, AuthMode::Signature);
    assert_eq!(verify_shkeeper(&headers, b"{}", &ring, &legacy, T0), Err(VerifyError::SignatureMismatch));
    let stale = verify_shkeeper(&headers, body, &ring, &legacy, T0.plus(1_000));
    assert!(matches!(stale, Err(VerifyError::TimestampOutsideTolerance { .. })));
}

#[test]
fn empty_secret_is_unusable() {
    let body = br#"{"a":1}"#;
    let pairs = shk_headers("", SHK_TS, body);
    let result = verify_shk(&pairs, body, &SecretRing::new(""), T0);
    assert_eq!(result, Err(VerifyError::SecretUnusable { reason: "empty" }));
    let rn = rn_headers("", body, "d");
    let result = verify_request_network(&Headers::from_owned(&rn), body, &SecretRing::new(""), T0);
    assert_eq!(result, Err(VerifyError::SecretUnusable { reason: "empty" }));
}

// ---------------------------------------------------------------------------------------------------------------
// Secret rotation (WH-8)

#[test]
fn ring_yields_the_old_key_only_inside_the_overlap() {
    let ring = SecretRing::with_previous("new", "old", T0, 60);
    let keys = |now| ring.keys_valid_at(now).map(|(k, s)| (k, s.expose().to_vec())).collect::<Vec<_>>();
    let both = vec![(KeyUsed::Current, b"new".to_vec()), (KeyUsed::Previous, b"old".to_vec())];
    assert_eq!(keys(T0.plus(-1)), both);
    assert_eq!(keys(T0), both);
    assert_eq!(keys(T0.plus(59)), both);
    assert_eq!(keys(T0.plus(60)), vec![(KeyUsed::Current, b"new".to_vec())]);
    assert_eq!(keys(Timestamp(i64::MAX)).len(), 1);
    let huge = SecretRing::with_previous("new", "old", Timestamp(i64::MAX), u32::MAX);
    assert_eq!(huge.keys_valid_at(Timestamp(i64::MAX)).count(), 2);
}

#[test]
fn old_secret_works_inside_the_overlap_and_not_after() {
    let body = br#"{"a":1}"#;
    let rotated_at = T0.plus(-100);
    let ring = SecretRing::with_previous("new-key", SHK_KEY, rotated_at, 120);
    let old = shk_headers(SHK_KEY, SHK_TS, body);
    let new = shk_headers("new-key", SHK_TS, body);
    // Inside: rotated 100 s ago, overlap 120 s.
    assert_eq!(verify_shk(&old, body, &ring, T0).unwrap().key, KeyUsed::Previous);
    assert_eq!(verify_shk(&new, body, &ring, T0).unwrap().key, KeyUsed::Current);
    // After: the overlap ended at rotated_at + 120 = T0 + 20 (the timestamp is still within tolerance there).
    assert!(verify_shk(&old, body, &ring, T0.plus(19)).is_ok());
    assert_eq!(verify_shk(&old, body, &ring, T0.plus(20)), Err(VerifyError::SignatureMismatch));
    assert!(verify_shk(&new, body, &ring, T0.plus(20)).is_ok());
}

#[test]
fn default_overlap_refuses_the_old_secret_at_once() {
    let body = br#"{"a":1}"#;
    let mut ring = SecretRing::new(SHK_KEY);
    let old = shk_headers(SHK_KEY, SHK_TS, body);
    assert!(verify_shk(&old, body, &ring, T0).is_ok());
    ring.rotate("new-key", T0, SecretRing::DEFAULT_OVERLAP_SECONDS);
    assert_eq!(verify_shk(&old, body, &ring, T0), Err(VerifyError::SignatureMismatch));
    assert!(verify_shk(&shk_headers("new-key", SHK_TS, body), body, &ring, T0).is_ok());
}

#[test]
fn a_secret_two_rotations_old_is_refused() {
    let body = br#"{"a":1}"#;
    let mut ring = SecretRing::new(SHK_KEY);
    ring.rotate("second", T0, 3_600);
    ring.rotate("third", T0, 3_600);
    assert_eq!(verify_shk(&shk_headers(SHK_KEY, SHK_TS, body), body, &ring, T0), Err(VerifyError::SignatureMismatch));
    assert_eq!(verify_shk(&shk_headers("second", SHK_TS, body), body, &ring, T0).unwrap().key, KeyUsed::Previous);
}

#[test]
fn rotation_applies_to_request_network_and_standard_webhooks() {
    let body = br#"{"a":1}"#;
    let ring = SecretRing::with_previous("fresh", RN_SECRET, T0, 30);
    let old = rn_headers(RN_SECRET, body, "d1");
    let headers = Headers::from_owned(&old);
    assert_eq!(verify_request_network(&headers, body, &ring, T0.plus(29)).unwrap().key, KeyUsed::Previous);
    assert_eq!(verify_request_network(&headers, body, &ring, T0.plus(30)), Err(VerifyError::SignatureMismatch));

    let now = Timestamp(SW_TS);
    let ring = SecretRing::with_previous("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SW_SECRET, now, 10);
    let pairs = sw_headers(SW_ID, SW_TS, SW_VECTOR);
    assert_eq!(verify_sw(&pairs, SW_BODY, &ring, now).unwrap().key, KeyUsed::Previous);
    assert_eq!(verify_sw(&pairs, SW_BODY, &ring, now.plus(10)), Err(VerifyError::SignatureMismatch));
}

// ---------------------------------------------------------------------------------------------------------------
// Request Network verification

#[test]
fn request_network_accepts_the_vector() {
    let body = br#"{"a":1}"#;
    let headers = Headers::new(&[("X-Request-Network-Signature", RN_VECTOR)]);
    let verified = verify_request_network(&headers, body, &SecretRing::new(RN_SECRET), T0).unwrap();
    assert_eq!(verified.provider, Provider::RequestNetwork);
    assert_eq!(verified.signed_at, None);
    assert!(!verified.replay_window_limited());
}

#[test]
fn request_network_failure_modes() {
    let body = br#"{"a":1}"#;
    let ring = SecretRing::new(RN_SECRET);
    let check = |signature: &str, body: &[u8]| {
        verify_request_network(&Headers::new(&[(h::REQUEST_NETWORK_SIGNATURE, signature)]), body, &ring, T0)
    };
    assert_eq!(check(RN_VECTOR, br#"{"a":2}"#), Err(VerifyError::SignatureMismatch));
    assert_eq!(check(RN_VECTOR, br#"{"a": 1}"#), Err(VerifyError::SignatureMismatch));
    assert_eq!(check(&RN_VECTOR.to_ascii_uppercase(), body), Err(VerifyError::SignatureMismatch));
    let header = h::REQUEST_NETWORK_SIGNATURE;
    assert_eq!(
        check(&RN_VECTOR[..10], body),
        Err(VerifyError::MalformedSignature {
            header,
            problem: SignatureProblem::WrongLength { expected: 64, found: 10 }
        })
    );
    assert_eq!(
        check(&format!("sha256={}", &RN_VECTOR[7..]), body),
        Err(VerifyError::MalformedSignature { header, problem: SignatureProblem::NotHex })
    );
    let none = verify_request_network(&Headers::default(), body, &ring, T0);
    assert_eq!(none, Err(VerifyError::MissingHeader { name: header }));
    // No timestamp: an old delivery still verifies, so deduplication is its only replay protection (WH-10).
    let old = Headers::new(&[(header, RN_VECTOR)]);
    assert!(verify_request_network(&old, body, &ring, Timestamp(i64::MAX)).is_ok());
}

// ---------------------------------------------------------------------------------------------------------------
// Standard Webhooks verification

#[test]
fn standard_webhooks_accepts_both_published_vectors() {
    let verified =
        verify_sw(&sw_headers(SW_ID, SW_TS, SW_VECTOR), SW_BODY, &SecretRing::new(SW_SECRET), Timestamp(SW_TS));
    assert_eq!(verified.unwrap().signed_at, Some(Timestamp(SW_TS)));
    let pairs =
        sw_headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let ring = SecretRing::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert!(verify_sw(&pairs, br#"{"test": 2432232314}"#, &ring, Timestamp(1_614_265_330)).is_ok());
}

#[test]
fn standard_webhooks_any_one_v1_signature_suffices() {
    let ring = SecretRing::new(SW_SECRET);
    let now = Timestamp(SW_TS);
    let bogus = "v1,Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=";
    let good = SW_VECTOR;
    let good_b64 = &SW_VECTOR[3..];
    for header in [
        format!("{bogus} {good}"),
        format!("{good} {bogus}"),
        format!("v2,{good_b64} {good}"),
        format!("v1a,{good_b64}  {good}"),
        format!("garbage {good}"),
    ] {
        assert!(verify_sw(&sw_headers(SW_ID, SW_TS, &header), SW_BODY, &ring, now).is_ok(), "{header}");
    }
    let malformed = |header: &str| verify_sw(&sw_headers(SW_ID, SW_TS, header), SW_BODY, &ring, now);
    let no_v1 = Err(VerifyError::MalformedSignature {
        header: h::WEBHOOK_SIGNATURE,
        problem: SignatureProblem::NoSupportedVersion,
    });
    assert_eq!(malformed(&format!("v2,{good_b64}")), no_v1);
    assert_eq!(malformed(good_b64), no_v1);
    assert_eq!(malformed("v1,"), no_v1);
    assert_eq!(malformed(""), no_v1);
    assert_eq!(malformed(bogus), Err(VerifyError::SignatureMismatch));
    assert_eq!(malformed(&format!("v1,{}", good_b64.to_ascii_lowercase())), Err(VerifyError::SignatureMismatch));
}

#[test]
fn standard_webhooks_signed_content_covers_id_timestamp_and_body() {
    let ring = SecretRing::new(SW_SECRET);
    let now = Timestamp(SW_TS);
    let other_id = sw_headers("msg_other", SW_TS, SW_VECTOR);
    assert_eq!(verify_sw(&other_id, SW_BODY, &ring, now), Err(VerifyError::SignatureMismatch));
    let other_ts = sw_headers(SW_ID, SW_TS + 1, SW_VECTOR);
    assert_eq!(verify_sw(&other_ts, SW_BODY, &ring, now), Err(VerifyError::SignatureMismatch));
    let reserialized = br#"{"username":"test_user","email":"test@example.com"}"#;
    let pairs = sw_headers(SW_ID, SW_TS, SW_VECTOR);
    assert_eq!(verify_sw(&pairs, reserialized, &ring, now), Err(VerifyError::SignatureMismatch));
}

#[test]
fn standard_webhooks_tolerance_is_300_seconds_both_ways() {
    let ring = SecretRing::new(SW_SECRET);
    let pairs = sw_headers(SW_ID, SW_TS, SW_VECTOR);
    let at = Timestamp(SW_TS);
    assert!(verify_sw(&pairs, SW_BODY, &ring, at.plus(300)).is_ok());
    assert!(verify_sw(&pairs, SW_BODY, &ring, at.plus(-300)).is_ok());
    let outside = |skew_seconds| Err(VerifyError::TimestampOutsideTolerance { skew_seconds, tolerance_seconds: 300 });
    assert_eq!(verify_sw(&pairs, SW_BODY, &ring, at.plus(301)), outside(301));
    assert_eq!(verify_sw(&pairs, SW_BODY, &ring, at.plus(-301)), outside(-301));
}

#[test]
fn standard_webhooks_missing_headers_and_bad_secret() {
    let ring = SecretRing::new(SW_SECRET);
    let now = Timestamp(SW_TS);
    let pairs = sw_headers(SW_ID, SW_TS, SW_VECTOR);
    for name in [h::WEBHOOK_ID, h::WEBHOOK_TIMESTAMP, h::WEBHOOK_SIGNATURE] {
        assert_eq!(verify_sw(&without(&pairs, name), SW_BODY, &ring, now), Err(VerifyError::MissingHeader { name }));
    }
    let bad = SecretRing::new("whsec_***");
    assert!(matches!(verify_sw(&pairs, SW_BODY, &bad, now), Err(VerifyError::SecretUnusable { .. })));
    let not_utf8 = SecretRing::new(vec![0xff_u8, 0xfe]);
    assert!(matches!(verify_sw(&pairs, SW_BODY, &not_utf8, now), Err(VerifyError::SecretUnusable { .. })));
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals and secrecy (WH-7)

#[test]
fn verify_errors_are_401_and_name_no_secret() {
    let errors = [
        VerifyError::MissingHeader { name: h::SHKEEPER_SIGNATURE },
        VerifyError::DuplicateHeader { name: h::WEBHOOK_ID },
        VerifyError::MalformedSignature { header: h::SHKEEPER_SIGNATURE, problem: SignatureProblem::NotHex },
        VerifyError::SignatureMismatch,
        VerifyError::ApiKeyMismatch,
        VerifyError::TimestampNotANumber { header: h::WEBHOOK_TIMESTAMP },
        VerifyError::TimestampOutsideTolerance { skew_seconds: 301, tolerance_seconds: 300 },
        VerifyError::LegacyApiKeyDisabled,
        VerifyError::SecretUnusable { reason: "empty" },
    ];
    let mut codes: Vec<_> = errors.iter().map(VerifyError::code).collect();
    codes.dedup();
    assert_eq!(codes.len(), errors.len());
    for e in errors {
        assert_eq!(e.refusal(), Refusal::WebhookUnauthenticated);
        assert_eq!(e.refusal().http_status(), 401);
        assert_eq!(e.dead_letter_reason().code(), "authentication_failed");
        assert_eq!(WebhookError::from(e.clone()).refusal(), Refusal::WebhookUnauthenticated);
    }
}

#[test]
fn failures_never_echo_the_secret_or_the_signature() {
    let body = br#"{"a":1}"#;
    let ring = SecretRing::new(SHK_KEY);
    let legacy = VerifyOptions { allow_legacy_api_key: true, ..VerifyOptions::default() };
    let near_miss = "test-api-kez";
    let cases = [
        verify_shkeeper(&Headers::new(&[(h::SHKEEPER_API_KEY, near_miss)]), body, &ring, &legacy, T0),
        verify_shkeeper(&Headers::new(&[(h::SHKEEPER_API_KEY, SHK_KEY)]), body, &ring, &options(), T0),
        verify_shk(&shk_headers(SHK_KEY, SHK_TS, body), b"{}", &ring, T0),
        verify_shk(&shk_headers(SHK_KEY, SHK_TS, body), body, &ring, T0.plus(999)),
    ];
    for result in cases {
        let e = result.unwrap_err();
        for shown in [e.to_string(), format!("{e:?}"), e.dead_letter_reason().to_string()] {
            for secret in [SHK_KEY, near_miss, SHK_VECTOR, "test-api"] {
                assert!(!shown.contains(secret), "{shown} contains {secret}");
            }
        }
    }
}

#[test]
fn secrets_are_redacted_in_debug() {
    let ring = SecretRing::with_previous("current-secret-value", "previous-secret-value", T0, 60);
    let shown = format!("{ring:?} {:?} {:?}", ring.current(), ring.previous());
    assert!(!shown.contains("secret-value"), "{shown}");
    assert!(shown.contains("<redacted>"));
    assert_eq!(format!("{:?}", Secret::from("x")), "Secret(<redacted>)");
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing: SHKeeper

fn shkeeper_payment_body(external_id: &str, status: &str, balance: &str, txs: &[(&str, &str, bool)]) -> Vec<u8> {
    let txs: Vec<serde_json::Value> = txs
        .iter()
        .map(|(txid, amount, trigger)| {
            serde_json::json!({
                "txid": txid, "date": "2026-05-01 10:00:00", "amount_crypto": "12.5", "amount_fiat": amount,
                "amount_fiat_without_fee": amount, "fee_fiat": "0", "trigger": trigger, "crypto": "ETH-USDT"
            })
        })
        .collect();
    // serde_json's map is sorted without the preserve_order feature: compact and sorted, as SHKeeper sends.
    serde_json::to_vec(&serde_json::json!({
        "external_id": external_id, "crypto": "ETH-USDT", "addr": "0xabc", "fiat": "USD", "balance_fiat": balance,
        "balance_crypto": "25", "paid": status != "PARTIAL", "status": status, "transactions": txs,
        "fee_percent": "0", "fee_fixed": "0", "fee_policy": "PERCENT_FEE", "overpaid_fiat": "0.00"
    }))
    .unwrap()
}

#[test]
fn shkeeper_payment_credits_the_trigger_transaction() {
    let body = shkeeper_payment_body("inv-1", "PAID", "25.00", &[("tx-1", "12.50", false), ("tx-2", "12.50", true)]);
    let notice = parse_shkeeper_payment(&body).unwrap();
    assert_eq!(notice.provider, Provider::Shkeeper);
    assert_eq!(notice.kind, NoticeKind::PaymentReceived);
    assert_eq!(notice.invoice, "inv-1");
    assert_eq!(notice.transaction.as_deref(), Some("tx-2"));
    assert_eq!(notice.amount, Some(Money::from_minor(1_250, Currency::Usd)));
    assert_eq!(notice.amount_text.as_deref(), Some("12.50"));
    assert_eq!(notice.currency.as_deref(), Some("USD"));
    assert_eq!(notice.total_paid, Some(Money::from_minor(2_500, Currency::Usd)));
    assert_eq!(notice.invoice_status, Some(InvoiceStatus::Paid));
    assert_eq!(notice.event_key, DedupKey::event(Provider::Shkeeper, &["payment_received", "inv-1", "tx-2"]));
    assert_eq!(notice.event_key.to_string(), "shkeeper:event:payment_received:inv-1:tx-2");
    assert_eq!(notice.dedup_keys(), vec![notice.event_key.clone()]);
    assert_eq!(parse_shkeeper_callback(&body).unwrap(), notice);
}

#[test]
fn shkeeper_one_callback_per_transaction_gives_different_keys() {
    // The same invoice, two transactions, two callbacks: both must be applied, so their keys differ.
    let first = shkeeper_payment_body("inv-1", "PARTIAL", "10.00", &[("tx-1", "10.00", true)]);
    let second = shkeeper_payment_body("inv-1", "PAID", "25.00", &[("tx-1", "10.00", false), ("tx-2", "15.00", true)]);
    let (a, b) = (parse_shkeeper_payment(&first).unwrap(), parse_shkeeper_payment(&second).unwrap());
    assert_ne!(a.event_key, b.event_key);
    assert_eq!((a.invoice_status, b.invoice_status), (Some(InvoiceStatus::Partial), Some(InvoiceStatus::Paid)));
    // A retry of the first callback is the same event.
    assert_eq!(parse_shkeeper_payment(&first).unwrap().event_key, a.event_key);
    // A callback after PAID (an overpayment) is a third event.
    let third = shkeeper_payment_body(
        "inv-1",
        "OVERPAID",
        "30.00",
        &[("tx-1", "10.00", false), ("tx-2", "15.00", false), ("tx-3", "5.00", true)],
    );
    let c = parse_shkeeper_payment(&third).unwrap();
    assert_ne!(c.event_key, a.event_key);
    assert_ne!(c.event_key, b.event_key);
    assert_eq!(c.invoice_status, Some(InvoiceStatus::Overpaid));
}

#[test]
fn shkeeper_payment_errors_name_the_field() {
    let no_trigger = shkeeper_payment_body("inv-1", "PAID", "1", &[("tx-1", "1.00", false)]);
    assert_eq!(parse_shkeeper_payment(&no_trigger), Err(ParseError::NoTriggerTransaction));
    let two = shkeeper_payment_body("inv-1", "PAID", "2", &[("a", "1", true), ("b", "1", true)]);
    assert_eq!(parse_shkeeper_payment(&two), Err(ParseError::SeveralTriggerTransactions { count: 2 }));
    let status = shkeeper_payment_body("inv-1", "DONE", "1", &[("a", "1", true)]);
    assert_eq!(
        parse_shkeeper_payment(&status),
        Err(ParseError::UnknownValue { field: "status".into(), value: "DONE".into() })
    );
    let precise = shkeeper_payment_body("inv-1", "PAID", "1", &[("a", "1.001", true)]);
    assert!(matches!(
        parse_shkeeper_payment(&precise),
        Err(ParseError::InvalidAmount { field, .. }) if field == "transactions[0].amount_fiat"
    ));
    let empty_id = shkeeper_payment_body("", "PAID", "1", &[("a", "1", true)]);
    assert_eq!(parse_shkeeper_payment(&empty_id), Err(ParseError::EmptyField { field: "external_id".into() }));

    let cases: [(&[u8], ParseError); 8] = [
        (b"not json", ParseError::NotJson { detail: "expected ident at line 1 column 2".into() }),
        (b"[1]", ParseError::NotAnObject { field: "body".into() }),
        (br#"{"fiat":"USD"}"#, ParseError::MissingField { field: "external_id".into() }),
        (br#"{"external_id":7}"#, ParseError::WrongType { field: "external_id".into(), expected: "a string" }),
        (
            br#"{"external_id":"i","fiat":"USD","status":"PAID"}"#,
            ParseError::MissingField { field: "transactions".into() },
        ),
        (
            br#"{"external_id":"i","fiat":"USD","status":"PAID","transactions":[5]}"#,
            ParseError::NotAnObject { field: "transactions[0]".into() },
        ),
        (
            br#"{"external_id":"i","fiat":"USD","status":"PAID","transactions":[{"trigger":"yes"}]}"#,
            ParseError::WrongType { field: "transactions[0].trigger".into(), expected: "true or false" },
        ),
        (
            br#"{"external_id":"i","fiat":"USD","status":"PAID","transactions":[{"trigger":true,"txid":"t","amount_fiat":12.5}]}"#,
            ParseError::WrongType { field: "transactions[0].amount_fiat".into(), expected: "a string" },
        ),
    ];
    for (body, expected) in cases {
        let error = parse_shkeeper_payment(body).unwrap_err();
        assert_eq!(error, expected, "{}", String::from_utf8_lossy(body));
        assert_eq!(error.refusal(), Refusal::WebhookMalformed);
        assert_eq!(error.refusal().http_status(), 400);
        assert_eq!(error.dead_letter_reason().code(), "malformed");
    }
}

#[test]
fn unsupported_currency_is_kept_for_mismatch_handling() {
    let body = br#"{"external_id":"i","fiat":"EUR","status":"PAID","transactions":[{"trigger":true,"txid":"t","amount_fiat":"9.99"}]}"#;
    let notice = parse_shkeeper_payment(body).unwrap();
    assert_eq!(
        (notice.amount, notice.currency.as_deref(), notice.amount_text.as_deref()),
        (None, Some("EUR"), Some("9.99"))
    );
    let bad = br#"{"external_id":"i","fiat":"EUR","status":"PAID","transactions":[{"trigger":true,"txid":"t","amount_fiat":"-1"}]}"#;
    assert!(matches!(parse_shkeeper_payment(bad), Err(ParseError::InvalidAmount { .. })));
}

#[test]
fn shkeeper_payout_callback() {
    let body = br#"{"amount":"0.001","amount_fiat":"95.00","crypto":"BTC","currency_fiat":"USD","external_id":"payout-escrow-7","payout_id":42,"status":"SUCCESS","timestamp":1700000000,"tx_hash":"0xfeed"}"#;
    let notice = parse_shkeeper_payout(body).unwrap();
    assert_eq!(notice.kind, NoticeKind::PayoutConfirmed);
    assert_eq!(notice.invoice, "payout-escrow-7");
    assert_eq!(notice.transaction.as_deref(), Some("0xfeed"));
    assert_eq!(notice.amount, Some(Money::from_minor(9_500, Currency::Usd)));
    assert_eq!(notice.event_key.to_string(), "shkeeper:event:payout_confirmed:payout-escrow-7:42");
    assert_eq!(parse_shkeeper_callback(body).unwrap(), notice);

    let failed = br#"{"external_id":"payout-escrow-7","payout_id":"p-1","status":"FAILURE"}"#;
    let failed = parse_shkeeper_payout(failed).unwrap();
    assert_eq!((failed.kind, failed.amount, failed.transaction), (NoticeKind::PayoutFailed, None, None));
    let no_hash = br#"{"external_id":"e","payout_id":"p","status":"SUCCESS","amount_fiat":"1","currency_fiat":"USD"}"#;
    assert_eq!(parse_shkeeper_payout(no_hash), Err(ParseError::MissingField { field: "tx_hash".into() }));
    let odd = br#"{"external_id":"e","payout_id":-1,"status":"SUCCESS"}"#;
    assert!(matches!(parse_shkeeper_payout(odd), Err(ParseError::WrongType { .. })));
    let pending = br#"{"external_id":"e","payout_id":"p","status":"IN_PROGRESS"}"#;
    assert!(matches!(parse_shkeeper_payout(pending), Err(ParseError::UnknownValue { .. })));
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing: Request Network

fn rn_body(event: &str, tx: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event": event, "requestId": "req-1", "paymentReference": "pr-1", "amount": "50.00",
        "totalAmountPaid": "50.00", "expectedAmount": "50.00", "timestamp": "2026-05-01T10:00:00Z", "txHash": tx,
        "payerAddress": "0xpayer", "network": "base", "currency": "USDC", "paymentCurrency": "USDC-base",
        "subStatus": "", "fees": []
    }))
    .unwrap()
}

#[test]
fn request_network_client_id_variant_is_the_same_event() {
    let base = rn_body("payment.confirmed", "0xt1");
    let variant = rn_body("payment.confirmed.client_id", "0xt1");
    let checkout = rn_body("payment.confirmed.checkout", "0xt1");
    let d1 = [(h::REQUEST_NETWORK_DELIVERY, "01HZDELIVERY1")];
    let d2 = [(h::REQUEST_NETWORK_DELIVERY, "01HZDELIVERY2")];
    let a = parse_request_network(&Headers::new(&d1), &base).unwrap();
    let b = parse_request_network(&Headers::new(&d2), &variant).unwrap();
    let c = parse_request_network(&Headers::default(), &checkout).unwrap();
    assert_eq!((a.variant, b.variant, c.variant), (false, true, true));
    assert_eq!(a.event_key, b.event_key);
    assert_eq!(a.event_key, c.event_key);
    assert_ne!(a.delivery_key, b.delivery_key);
    assert_eq!(c.delivery_key, None);
    assert_eq!(a.kind, NoticeKind::PaymentReceived);
    assert_eq!(a.invoice, "req-1");
    assert_eq!(a.amount, Some(Money::from_minor(50_000_000, Currency::Usdc)));
    assert_eq!(a.total_paid, a.amount);
    assert_eq!(a.invoice_status, Some(InvoiceStatus::Paid));
    assert_eq!(
        a.dedup_keys(),
        vec![
            DedupKey::event(Provider::RequestNetwork, &["payment_received", "req-1", "0xt1"]),
            DedupKey::delivery(Provider::RequestNetwork, "01HZDELIVERY1"),
        ]
    );
}

#[test]
fn request_network_redelivery_with_a_new_delivery_id_is_the_same_event() {
    let body = rn_body("payment.confirmed", "0xt1");
    let first = parse_request_network(&Headers::new(&[(h::REQUEST_NETWORK_DELIVERY, "d-1")]), &body).unwrap();
    let again = parse_request_network(&Headers::new(&[(h::REQUEST_NETWORK_DELIVERY, "d-9")]), &body).unwrap();
    assert_eq!(first.event_key, again.event_key);
    assert_ne!(first.delivery_key, again.delivery_key);
    // A different transaction on the same request is another payment.
    let other = parse_request_network(&Headers::default(), &rn_body("payment.partial", "0xt2")).unwrap();
    assert_ne!(other.event_key, first.event_key);
}

#[test]
fn request_network_kinds_and_keys() {
    let parse = |event: &str| parse_request_network(&Headers::default(), &rn_body(event, "0xt1"));
    let kind = |event: &str| parse(event).map(|n| (n.kind, n.invoice_status));
    assert_eq!(kind("payment.partial"), Ok((NoticeKind::PaymentReceived, Some(InvoiceStatus::Partial))));
    assert_eq!(kind("payment.processing"), Ok((NoticeKind::PaymentPending, None)));
    assert_eq!(kind("payment.failed"), Ok((NoticeKind::PaymentFailed, None)));
    assert_eq!(kind("payment.refunded.checkout"), Ok((NoticeKind::RefundConfirmed, None)));
    // `processing` must not swallow the `confirmed` of the same transaction; `partial` and `confirmed` of one
    // transaction are one credit.
    let key = |event: &str| parse(event).unwrap().event_key;
    assert_ne!(key("payment.processing"), key("payment.confirmed"));
    assert_eq!(key("payment.partial"), key("payment.confirmed"));
    assert_eq!(
        parse("payment.settled"),
        Err(ParseError::UnknownValue { field: "event".into(), value: "payment.settled".into() })
    );
    assert!(parse("payment.confirmed.client_id.checkout").is_err());
    // A processing event may come before the transaction hash and the amount are known.
    let early = parse_request_network(&Headers::default(), br#"{"event":"payment.processing","requestId":"r"}"#);
    assert_eq!(early.unwrap().event_key.to_string(), "request_network:event:payment_pending:r:");
    let no_tx = parse_request_network(&Headers::default(), br#"{"event":"payment.confirmed","requestId":"r"}"#);
    assert_eq!(no_tx, Err(ParseError::MissingField { field: "txHash".into() }));
}

#[test]
fn request_network_test_header() {
    let body = rn_body("payment.confirmed", "0xt1");
    let test = parse_request_network(&Headers::new(&[("X-Request-Network-Test", "true")]), &body).unwrap();
    assert!(test.test);
    assert!(!parse_request_network(&Headers::default(), &body).unwrap().test);
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing: Standard Webhooks neutral body

#[test]
fn standard_webhooks_neutral_body() {
    let body = br#"{"type":"payment.received","event_id":"evt_01","invoice":"inv_01","transaction":"0xabc","amount":"12.50","currency":"USD","status":"paid"}"#;
    let headers = Headers::new(&[("Webhook-Id", "msg_1")]);
    let notice = parse_standard_webhooks(&headers, body).unwrap();
    assert_eq!(notice.kind, NoticeKind::PaymentReceived);
    assert_eq!(notice.invoice, "inv_01");
    assert_eq!(notice.amount, Some(Money::from_minor(1_250, Currency::Usd)));
    assert_eq!(notice.invoice_status, Some(InvoiceStatus::Paid));
    assert_eq!(notice.event_key, DedupKey::event(Provider::StandardWebhooks, &["evt_01"]));
    assert_eq!(notice.delivery_key, Some(DedupKey::delivery(Provider::StandardWebhooks, "msg_1")));

    let pending = br#"{"type":"payment.pending","event_id":"e","invoice":"i"}"#;
    assert_eq!(parse_standard_webhooks(&headers, pending).unwrap().kind, NoticeKind::PaymentPending);
    let no_amount = br#"{"type":"refund.confirmed","event_id":"e","invoice":"i","transaction":"t","currency":"USD"}"#;
    assert_eq!(parse_standard_webhooks(&headers, no_amount), Err(ParseError::MissingField { field: "amount".into() }));
    let amount_without_currency = br#"{"type":"payment.failed","event_id":"e","invoice":"i","amount":"1"}"#;
    assert_eq!(
        parse_standard_webhooks(&headers, amount_without_currency),
        Err(ParseError::MissingField { field: "currency".into() })
    );
    let kinds = ["payout.confirmed", "payout.failed"].map(|t| {
        let body =
            format!(r#"{{"type":"{t}","event_id":"e","invoice":"i","transaction":"t","amount":"1","currency":"BTC"}}"#);
        parse_standard_webhooks(&headers, body.as_bytes()).unwrap().kind
    });
    assert_eq!(kinds, [NoticeKind::PayoutConfirmed, NoticeKind::PayoutFailed]);
    let unknown = br#"{"type":"invoice.created","event_id":"e","invoice":"i"}"#;
    assert!(matches!(parse_standard_webhooks(&headers, unknown), Err(ParseError::UnknownValue { .. })));
}

// ---------------------------------------------------------------------------------------------------------------
// Dedup keys, dead letters, redaction

#[test]
fn dedup_key_components_cannot_collide() {
    let p = Provider::Shkeeper;
    assert_ne!(DedupKey::event(p, &["a:b", "c"]), DedupKey::event(p, &["a", "b:c"]));
    assert_ne!(DedupKey::event(p, &["a%3Ab"]), DedupKey::event(p, &["a:b"]));
    assert_ne!(DedupKey::event(p, &["x"]), DedupKey::event(Provider::RequestNetwork, &["x"]));
    assert_ne!(DedupKey::event(p, &["x"]), DedupKey::delivery(p, "x"));
    assert_eq!(DedupKey::event(p, &["a:b", "c%"]).value, "a%3Ab:c%25");
}

#[test]
fn dead_letter_reason_codes_are_stable() {
    let reasons = [
        (DeadLetterReason::AuthenticationFailed("x".into()), "authentication_failed"),
        (DeadLetterReason::Malformed("x".into()), "malformed"),
        (DeadLetterReason::UnknownInvoice, "unknown_invoice"),
        (DeadLetterReason::ProviderDisabled, "provider_disabled"),
        (DeadLetterReason::CurrencyMismatch, "currency_mismatch"),
        (DeadLetterReason::ProcessingFailed, "processing_failed"),
    ];
    for (reason, code) in reasons {
        assert_eq!(reason.code(), code);
    }
    let reason = VerifyError::SignatureMismatch.dead_letter_reason();
    assert_eq!(reason.to_string(), "authentication_failed: signature does not match");
    assert_eq!(reason.detail(), Some("signature does not match"));
    assert_eq!(DeadLetterReason::UnknownInvoice.to_string(), "unknown_invoice");
}

#[test]
fn redaction_removes_keys_and_keeps_signatures() {
    let pairs = [
        ("X-Shkeeper-Api-Key", SHK_KEY),
        ("authorization", "Bearer abc"),
        ("Cookie", "sid=1"),
        ("x-api-key", "k"),
        ("X-Client-Secret", "s"),
        ("X-Shkeeper-Signature", SHK_VECTOR),
        ("webhook-signature", SW_VECTOR),
        ("Content-Type", "application/json"),
    ];
    let headers = Headers::new(&pairs);
    let redacted = redact_headers(&headers);
    assert_eq!(redacted.len(), pairs.len());
    for ((name, value), (kept_name, kept_value)) in pairs.iter().zip(&redacted) {
        assert_eq!(name, kept_name);
        let secret = is_secret_header(name);
        assert_eq!(kept_value == REDACTED, secret, "{name}");
        if !secret {
            assert_eq!(value, kept_value);
        }
    }
    assert!(!is_secret_header("X-Shkeeper-Signature") && !is_secret_header("x-request-network-signature"));
    let debug = format!("{headers:?}");
    assert!(!debug.contains(SHK_KEY) && !debug.contains("Bearer") && debug.contains(SHK_VECTOR), "{debug}");

    let capture =
        DeadLetterCapture::new(Provider::Shkeeper, DeadLetterReason::UnknownInvoice, &headers, b"{\"raw\":  true}", T0);
    assert_eq!(capture.body, b"{\"raw\":  true}");
    assert_eq!(capture.received_at, T0);
    assert!(!format!("{capture:?}").contains(SHK_KEY));
}

// ---------------------------------------------------------------------------------------------------------------
// The whole receive step

#[test]
fn receive_verifies_before_parsing() {
    let ring = SecretRing::new(SHK_KEY);
    let body = shkeeper_payment_body("inv-1", "PAID", "12.50", &[("tx-1", "12.50", true)]);
    let pairs = shk_headers(SHK_KEY, SHK_TS, &body);
    let (verified, notice) =
        receive(Provider::Shkeeper, &Headers::from_owned(&pairs), &body, &ring, &options(), T0).unwrap();
    assert_eq!(verified.mode, AuthMode::Signature);
    assert_eq!(notice.transaction.as_deref(), Some("tx-1"));

    // An unauthenticated body is 401 even when it would not parse: it is never looked at.
    let garbage = b"not json";
    let forged = shk_headers("wrong", SHK_TS, garbage);
    let error = receive(Provider::Shkeeper, &Headers::from_owned(&forged), garbage, &ring, &options(), T0).unwrap_err();
    assert_eq!(error.refusal(), Refusal::WebhookUnauthenticated);
    // An authenticated body that does not parse is 400 and a `malformed` dead letter.
    let signed = shk_headers(SHK_KEY, SHK_TS, garbage);
    let error = receive(Provider::Shkeeper, &Headers::from_owned(&signed), garbage, &ring, &options(), T0).unwrap_err();
    assert_eq!(error.refusal(), Refusal::WebhookMalformed);
    assert_eq!(error.dead_letter_reason().code(), "malformed");

    let rn = rn_body("payment.confirmed", "0xt1");
    let rn_pairs = rn_headers(RN_SECRET, &rn, "d-1");
    let rn_ring = SecretRing::new(RN_SECRET);
    let (_, notice) =
        receive(Provider::RequestNetwork, &Headers::from_owned(&rn_pairs), &rn, &rn_ring, &options(), T0).unwrap();
    assert_eq!(notice.delivery_key, Some(DedupKey::delivery(Provider::RequestNetwork, "d-1")));
}

#[test]
fn provider_success_statuses() {
    assert_eq!(Provider::Shkeeper.success_status(), 202);
    assert_eq!(Provider::RequestNetwork.success_status(), 200);
    assert!(Provider::Shkeeper.signs_timestamp() && !Provider::RequestNetwork.signs_timestamp());
    assert_eq!(Provider::ALL.map(Provider::code), ["shkeeper", "request_network", "standard_webhooks"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Fuzzing

const NAMES: [&str; 12] = [
    h::SHKEEPER_TIMESTAMP,
    h::SHKEEPER_SIGNATURE,
    h::SHKEEPER_API_KEY,
    h::REQUEST_NETWORK_SIGNATURE,
    h::REQUEST_NETWORK_DELIVERY,
    h::REQUEST_NETWORK_TEST,
    h::WEBHOOK_ID,
    h::WEBHOOK_TIMESTAMP,
    h::WEBHOOK_SIGNATURE,
    "authorization",
    "content-type",
    "x-random",
];

/// Header lists of relevant names in random case, with values that are arbitrary text or near-valid shapes.
fn headers_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = (prop::sample::select(&NAMES[..]), any::<bool>())
        .prop_map(|(n, upper)| if upper { n.to_ascii_uppercase() } else { n.to_ascii_lowercase() });
    let value = prop_oneof![
        ".{0,80}",
        "[0-9a-fA-F]{60,68}",
        "-?[0-9]{0,20}",
        "(v[0-9],[A-Za-z0-9+/=]{0,48} ?){0,4}",
        Just(SHK_VECTOR.to_owned()),
        Just(SHK_TS.to_owned()),
    ];
    prop::collection::vec((name, value), 0..8)
}

/// JSON objects built from the fields the parsers read, with values of every type.
fn json_strategy() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        "[0-9]{0,16}(\\.[0-9]{0,10})?".prop_map(serde_json::Value::String),
        prop::sample::select(
            &[
                "PAID",
                "PARTIAL",
                "OVERPAID",
                "SUCCESS",
                "FAIL",
                "USD",
                "BTC",
                "USDT",
                "EUR",
                "payment.confirmed",
                "payment.partial.client_id",
                "payment.processing",
                "payment.refunded.checkout",
                "payment.received",
                "payout.confirmed",
                "refund.confirmed",
                "paid",
                "",
            ][..]
        )
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    let keys = prop::sample::select(
        &[
            "external_id",
            "fiat",
            "status",
            "balance_fiat",
            "transactions",
            "txid",
            "amount_fiat",
            "trigger",
            "payout_id",
            "tx_hash",
            "currency_fiat",
            "event",
            "requestId",
            "txHash",
            "amount",
            "currency",
            "totalAmountPaid",
            "type",
            "event_id",
            "invoice",
            "transaction",
        ][..],
    );
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone().prop_map(str::to_owned), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    value.prop_map(|v| serde_json::to_vec(&v).unwrap_or_default())
}

fn exercise_everything(pairs: &[(String, String)], body: &[u8], now: i64, legacy: bool) {
    let headers = Headers::from_owned(pairs);
    let now = Timestamp(now);
    let options = VerifyOptions { allow_legacy_api_key: legacy, ..VerifyOptions::default() };
    for ring in [SecretRing::new(SHK_KEY), SecretRing::with_previous(SW_SECRET, "", now, 5), SecretRing::new("whsec_%")]
    {
        for provider in Provider::ALL {
            if let Err(e) = receive(provider, &headers, body, &ring, &options, now) {
                let _ = (e.refusal(), e.dead_letter_reason().to_string());
            }
            let _ = parse_notice(provider, &headers, body).map(|n| n.dedup_keys());
        }
    }
    let _ = (parse_shkeeper_payment(body), parse_shkeeper_payout(body), redact_headers(&headers));
    let _ = DeadLetterCapture::new(Provider::Shkeeper, DeadLetterReason::ProcessingFailed, &headers, body, now);
}

proptest! {
    #[test]
    fn nothing_panics_on_arbitrary_bytes(
        pairs in headers_strategy(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in prop_oneof![any::<i64>(), (1_699_999_000i64..1_700_001_000)],
        legacy in any::<bool>(),
    ) {
        exercise_everything(&pairs, &body, now, legacy);
    }

    #[test]
    fn nothing_panics_on_arbitrary_json(
        pairs in headers_strategy(),
        body in json_strategy(),
        legacy in any::<bool>(),
    ) {
        exercise_everything(&pairs, &body, T0.0, legacy);
    }

    #[test]
    fn signed_deliveries_verify_and_any_flipped_bit_fails(
        body in prop::collection::vec(any::<u8>(), 1..200),
        key in "[ -~]{1,40}",
        at in 0i64..4_000_000_000,
        skew in -300i64..=300,
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let now = Timestamp(at + skew);
        let ts = at.to_string();
        let ring = SecretRing::new(key.as_str());
        let mut changed = body.clone();
        let i = flip.index(changed.len());
        changed[i] ^= 1 << bit;

        let pairs = shk_headers(&key, &ts, &body);
        prop_assert!(verify_shk(&pairs, &body, &ring, now).is_ok());
        prop_assert_eq!(verify_shk(&pairs, &changed, &ring, now), Err(VerifyError::SignatureMismatch));

        let pairs = rn_headers(&key, &body, "d");
        let headers = Headers::from_owned(&pairs);
        prop_assert!(verify_request_network(&headers, &body, &ring, now).is_ok());
        prop_assert_eq!(verify_request_network(&headers, &changed, &ring, now), Err(VerifyError::SignatureMismatch));

        let secret = format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key));
        let signature = standard_webhooks_signature(&secret, "msg_1", at, &body).unwrap();
        let pairs = sw_headers("msg_1", at, &signature);
        let ring = SecretRing::new(secret.as_str());
        prop_assert!(verify_sw(&pairs, &body, &ring, now).is_ok());
        prop_assert_eq!(verify_sw(&pairs, &changed, &ring, now), Err(VerifyError::SignatureMismatch));
    }
}

/// A valid body of each payload kind, for mutation.
fn valid_bodies() -> Vec<serde_json::Value> {
    let bodies = [
        shkeeper_payment_body("inv-1", "PAID", "25.00", &[("tx-1", "12.50", false), ("tx-2", "12.50", true)]),
        br#"{"amount_fiat":"95.00","currency_fiat":"USD","external_id":"e","payout_id":42,"status":"SUCCESS","tx_hash":"0x"}"#.to_vec(),
        rn_body("payment.confirmed.client_id", "0xt1"),
        br#"{"type":"payment.received","event_id":"e","invoice":"i","transaction":"t","amount":"1.5","currency":"USDT"}"#.to_vec(),
    ];
    bodies.iter().filter_map(|b| serde_json::from_slice(b).ok()).collect()
}

fn mutation_value() -> impl Strategy<Value = Option<serde_json::Value>> {
    prop_oneof![
        Just(None),
        Just(Some(serde_json::Value::Null)),
        any::<bool>().prop_map(|b| Some(serde_json::Value::Bool(b))),
        any::<i64>().prop_map(|n| Some(serde_json::Value::from(n))),
        Just(Some(serde_json::json!(12.5))),
        Just(Some(serde_json::json!([]))),
        Just(Some(serde_json::json!({}))),
        Just(Some(serde_json::json!([{"trigger": true}]))),
        ".{0,30}".prop_map(|s| Some(serde_json::Value::String(s))),
        "-?[0-9]{0,20}(\\.[0-9]{0,12})?".prop_map(|s| Some(serde_json::Value::String(s))),
    ]
}

proptest! {
    #[test]
    fn nothing_panics_on_mutated_valid_bodies(
        which in any::<prop::sample::Index>(),
        field in any::<prop::sample::Index>(),
        nested in any::<bool>(),
        value in mutation_value(),
    ) {
        let mut bodies = valid_bodies();
        prop_assert_eq!(bodies.len(), 4);
        let i = which.index(bodies.len());
        let body = &mut bodies[i];
        // Mutate a top-level field, or a field of the trigger transaction of the SHKeeper payment.
        let target = match body.get_mut("transactions").and_then(|t| t.get_mut(1)) {
            Some(tx) if nested => tx,
            _ => body,
        };
        if let serde_json::Value::Object(map) = target {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[field.index(keys.len())].clone();
            match value {
                Some(v) => { map.insert(key, v); }
                None => { map.remove(&key); }
            }
        }
        let bytes = serde_json::to_vec(&bodies[i]).unwrap();
        let headers = [(h::REQUEST_NETWORK_DELIVERY, "d"), (h::WEBHOOK_ID, "m")];
        let headers = Headers::new(&headers);
        for provider in Provider::ALL {
            if let Ok(notice) = parse_notice(provider, &headers, &bytes) {
                // Whatever parsed, money moved only with an amount text and a transaction.
                if notice.kind.moves_money() {
                    prop_assert!(notice.amount_text.is_some() && notice.transaction.is_some());
                }
                prop_assert!(!notice.dedup_keys().is_empty());
            }
        }
    }
}

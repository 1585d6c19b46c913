//! Each non-realtime fault of the catalog, proven present: a probe that observes the defect succeeds on a target
//! started with the fault and fails on the clean target.

use std::time::Duration;

use conform_embedded::faults::Fault;
use serde_json::{Value, json};

use crate::common::*;

macro_rules! fault_test {
    ($name:ident, $fault:expr, $probe:ident) => {
        #[tokio::test]
        async fn $name() {
            let on = target(&[$fault]).await;
            assert!($probe(&on).await, "{}: the defect must show with the fault on", $fault);
            let off = target(&[]).await;
            assert!(!$probe(&off).await, "{}: the clean target must not show it", $fault);
        }
    };
}

async fn disputed(t: &T, amount: &str) -> (Who, String) {
    let (buyer, _seller, id, _) = t.funded(amount).await;
    assert_eq!(t.post(&format!("/v1/escrows/{id}/disputes"), Some(&buyer.token), json!({})).await.0, 200);
    (buyer, id)
}

async fn idor(t: &T) -> bool {
    let (_, _, id, _) = t.funded("5.00").await;
    let stranger = t.user("user").await;
    t.get(&format!("/v1/escrows/{id}"), &stranger.token).await.0 == 200
}
fault_test!(idor_get_escrow, Fault::IdorGetEscrow, idor);

async fn unfiltered(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    t.create(&buyer, &seller, "5.00", "shkeeper").await;
    let stranger = t.user("user").await;
    !t.get("/v1/escrows", &stranger.token).await.1["items"].as_array().unwrap().is_empty()
}
fault_test!(unfiltered_escrow_list, Fault::UnfilteredEscrowList, unfiltered);

async fn support_resolves(t: &T) -> bool {
    let (_, id) = disputed(t, "5.00").await;
    let support = t.user("support").await;
    t.step_up(&support).await;
    t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&support.token), json!({"outcome": "refund"})).await.0
        == 200
}
fault_test!(support_can_resolve, Fault::SupportCanResolve, support_resolves);

async fn no_step_up(t: &T) -> bool {
    let (_, id) = disputed(t, "5.00").await;
    let admin = t.user("admin").await;
    t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&admin.token), json!({"outcome": "refund"})).await.0 == 200
}
fault_test!(step_up_not_checked, Fault::StepUpNotChecked, no_step_up);

async fn account_step_up(t: &T) -> bool {
    let (_, id) = disputed(t, "5.00").await;
    let first = t.user("admin").await;
    let second = t.sign_in(&first.email, &first.id).await;
    t.step_up(&first).await;
    t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&second.token), json!({"outcome": "refund"})).await.0 == 200
}
fault_test!(step_up_not_session_bound, Fault::StepUpNotSessionBound, account_step_up);

async fn same_admin(t: &T) -> bool {
    let (_, id) = disputed(t, "10000.00").await;
    let admin = t.admin().await;
    let (s, a) =
        t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&admin.token), json!({"outcome": "refund"})).await;
    assert_eq!(s, 202);
    let aid = a["id"].as_str().unwrap();
    t.post(&format!("/v1/admin/approvals/{aid}/approve"), Some(&admin.token), json!({})).await.0 == 200
}
fault_test!(same_admin_approves_twice, Fault::SameAdminApprovesTwice, same_admin);

async fn mass_assign(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "5.00", "shkeeper").await;
    let body = json!({"state": "funded", "amount_received": "5.00"});
    let (s, e) = t.req("PATCH", &format!("/v1/escrows/{id}"), Some(&buyer.token), Some(body), &[]).await;
    s == 200 && e["state"] == "funded"
}
fault_test!(mass_assigned_status, Fault::MassAssignedStatus, mass_assign);

async fn unaudited(t: &T) -> bool {
    let (_, id) = disputed(t, "5.00").await;
    let admin = t.user("admin").await;
    assert_eq!(
        t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&admin.token), json!({"outcome": "refund"})).await.0,
        401
    );
    let reader = t.user("admin").await;
    let (_, log) = t.get("/v1/admin/audit-log", &reader.token).await;
    log["items"].as_array().unwrap().iter().all(|r| r["outcome"] != "refused")
}
fault_test!(refused_admin_calls_not_audited, Fault::RefusedAdminCallsNotAudited, unaudited);

async fn race(t: &T) -> bool {
    let (buyer, _, id, _) = t.delivered("10.00").await;
    let path = format!("/v1/escrows/{id}/confirm-receipt");
    let calls = (0..10).map(|_| t.post(&path, Some(&buyer.token), json!({})));
    futures_join(calls).await;
    let admin = t.user("admin").await;
    let releases = t.count_kind(&admin, &id, "release").await;
    println!("release-race probe: 10 parallel confirmations, {releases} release entries");
    releases > 1
}
fault_test!(release_race, Fault::ReleaseRace, race);

async fn after_refund(t: &T) -> bool {
    let (buyer, seller, id, _) = t.delivered("10.00").await;
    assert_eq!(t.post(&format!("/v1/escrows/{id}/refund"), Some(&seller.token), json!({})).await.0, 200);
    t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&buyer.token), json!({})).await.0 == 200
}
fault_test!(release_after_refund, Fault::ReleaseAfterRefund, after_refund);

async fn fee_up(t: &T) -> bool {
    let (buyer, _, id, _) = t.delivered("1.01").await;
    let (_, e) = t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&buyer.token), json!({})).await;
    e["fee"] == "0.03"
}
fault_test!(fee_rounded_up, Fault::FeeRoundedUp, fee_up);

async fn metadata(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (_a, ext_a) = t.invoiced(&buyer, &seller, "10.00").await;
    let (b, _) = t.invoiced(&buyer, &seller, "10.00").await;
    t.pay_in(&ext_a, "10.00", "tx-m", "USD", Some(json!({"escrow_id": b}))).await;
    t.escrow(&b, &buyer).await["amount_received"] != "0.00"
}
fault_test!(escrow_from_webhook_metadata, Fault::EscrowFromWebhookMetadata, metadata);

async fn wrong_currency(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    t.pay_in(&ext, "10.00", "tx-c", "USDT", None).await;
    t.escrow(&id, &buyer).await["state"] == "funded"
}
fault_test!(wrong_currency_funds, Fault::WrongCurrencyFunds, wrong_currency);

async fn partial(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    t.pay(&ext, "1.00", "tx-p").await;
    t.escrow(&id, &buyer).await["state"] == "funded"
}
fault_test!(partial_payment_funds, Fault::PartialPaymentFunds, partial);

async fn expires_partially_paid(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    t.pay(&ext, "1.00", "tx-p").await;
    t.advance(72 * 3600 + 60).await;
    // The access token has long expired: sign in again to look.
    let buyer = t.sign_in(&buyer.email, &buyer.id).await;
    t.escrow(&id, &buyer).await["state"] == "expired"
}
fault_test!(partially_paid_escrow_expires, Fault::PartiallyPaidEscrowExpires, expires_partially_paid);

async fn releases_disputed(t: &T) -> bool {
    let (buyer, _seller, id, _) = t.delivered("5.00").await;
    assert_eq!(t.post(&format!("/v1/escrows/{id}/disputes"), Some(&buyer.token), json!({})).await.0, 200);
    t.advance(15 * 86_400).await;
    let buyer = t.sign_in(&buyer.email, &buyer.id).await;
    t.escrow(&id, &buyer).await["state"] == "release_pending"
}
fault_test!(auto_release_during_dispute, Fault::AutoReleaseDuringDispute, releases_disputed);

async fn not_rotated(t: &T) -> bool {
    let u = t.user("user").await;
    let (_, r) = t.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh})).await;
    r["refresh_token"] == json!(u.refresh)
}
fault_test!(refresh_not_rotated, Fault::RefreshNotRotated, not_rotated);

async fn reuse(t: &T) -> bool {
    let u = t.user("user").await;
    let (_, r) = t.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh})).await;
    assert_eq!(t.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh})).await.0, 401);
    t.post("/v1/auth/refresh", None, json!({"refresh_token": r["refresh_token"]})).await.0 == 200
}
fault_test!(refresh_reuse_undetected, Fault::RefreshReuseUndetected, reuse);

async fn logout_keeps(t: &T) -> bool {
    let u = t.user("user").await;
    assert_eq!(t.post("/v1/auth/logout", Some(&u.token), json!({})).await.0, 204);
    t.get("/v1/sessions", &u.token).await.0 == 200
}
fault_test!(logout_keeps_access_token, Fault::LogoutKeepsAccessToken, logout_keeps);

async fn expired(t: &T) -> bool {
    let u = t.user("user").await;
    t.advance(901).await;
    t.get("/v1/sessions", &u.token).await.0 == 200
}
fault_test!(expired_access_token_accepted, Fault::ExpiredAccessTokenAccepted, expired);

async fn stale_role(t: &T) -> bool {
    let demoted = t.user("admin").await;
    let other = t.admin().await;
    let path = format!("/v1/admin/users/{}/role", demoted.id);
    assert_eq!(t.req("PUT", &path, Some(&other.token), Some(json!({"role": "user"})), &[]).await.0, 200);
    t.get("/v1/admin/audit-log", &demoted.token).await.0 == 200
}
fault_test!(stale_role_in_session, Fault::StaleRoleInSession, stale_role);

async fn no_rate_limit(t: &T) -> bool {
    let u = t.user("user").await;
    let mut last = 0;
    for _ in 0..12 {
        last = t.post("/v1/auth/sign-in", None, json!({"email": u.email, "password": "wrong"})).await.0;
    }
    last != 429
}
fault_test!(no_sign_in_rate_limit, Fault::NoSignInRateLimit, no_rate_limit);

async fn reserialized(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (_, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    let value = json!({"external_id": ext, "fiat": "USD", "status": "PAID",
        "transactions": [{"txid": "t-r", "amount_fiat": "10.00", "trigger": true}]});
    let compact = serde_json::to_vec(&value).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    let ts = t.now().await.to_string();
    let sig = conform_reference::webhooks::shkeeper_signature(SHK_KEY.as_bytes(), &ts, &compact);
    let h = [("X-Shkeeper-Timestamp", ts), ("X-Shkeeper-Signature", sig)];
    t.raw_post("/v1/webhooks/shkeeper", &h, pretty).await.0 == 202
}
fault_test!(signature_over_reserialized_json, Fault::SignatureOverReserializedJson, reserialized);

async fn stale(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (_, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    let body = serde_json::to_vec(&json!({"external_id": ext, "fiat": "USD", "status": "PAID",
        "transactions": [{"txid": "t-s", "amount_fiat": "10.00", "trigger": true}]}))
    .unwrap();
    t.shkeeper(body, SHK_KEY, 3600).await.0 == 202
}
fault_test!(no_timestamp_check, Fault::NoTimestampCheck, stale);

async fn no_dedup(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    t.pay(&ext, "4.00", "tx-d").await;
    t.pay(&ext, "4.00", "tx-d").await;
    let admin = t.user("admin").await;
    t.count_kind(&admin, &id, "payment").await > 1
}
fault_test!(no_webhook_dedup, Fault::NoWebhookDedup, no_dedup);

async fn racy_dedup(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    futures_join((0..10).map(|_| t.pay(&ext, "4.00", "tx-race"))).await;
    let admin = t.user("admin").await;
    let payments = t.count_kind(&admin, &id, "payment").await;
    println!("racy-webhook-dedup probe: 10 parallel deliveries of one event, {payments} payment entries");
    payments > 1
}
fault_test!(racy_webhook_dedup, Fault::RacyWebhookDedup, racy_dedup);

async fn dropped(t: &T) -> bool {
    assert_eq!(t.shkeeper(b"{}".to_vec(), "forged", 0).await.0, 401);
    let admin = t.user("admin").await;
    t.get("/v1/admin/dead-letters", &admin.token).await.1["items"].as_array().unwrap().is_empty()
}
fault_test!(dead_letter_dropped, Fault::DeadLetterDropped, dropped);

async fn old_secret(t: &T) -> bool {
    let admin = t.admin().await;
    let (s, _) =
        t.post("/v1/admin/webhook-secrets/shkeeper/rotate", Some(&admin.token), json!({"secret": "rotated"})).await;
    assert_eq!(s, 200);
    t.pay("inv-none", "1.00", "tx-o").await.0 == 202
}
fault_test!(old_secret_after_rotation, Fault::OldSecretAfterRotation, old_secret);

async fn legacy(t: &T) -> bool {
    let body = br#"{"external_id":"inv-none","fiat":"USD","status":"PAID","transactions":[{"txid":"l","amount_fiat":"1.00","trigger":true}]}"#;
    t.raw_post("/v1/webhooks/shkeeper", &[("X-Shkeeper-Api-Key", SHK_KEY.to_owned())], body.to_vec()).await.0 == 202
}
fault_test!(legacy_api_key_accepted, Fault::LegacyApiKeyAccepted, legacy);

async fn error_as_success(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "10.00", "shkeeper").await;
    t.stub.set(StubMode::ErrorStatus);
    t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await.0 == 200
}
fault_test!(shkeeper_200_error_as_success, Fault::ShkeeperErrorAsSuccess, error_as_success);

async fn new_key(t: &T) -> bool {
    let admin = t.admin().await;
    let (buyer, _, id, _) = t.delivered("10.00").await;
    assert_eq!(t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&buyer.token), json!({})).await.0, 200);
    for _ in 0..2 {
        assert_eq!(t.post(&format!("/v1/admin/escrows/{id}/retry-payout"), Some(&admin.token), json!({})).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut keys = t.stub.payout_keys();
    keys.sort();
    keys.dedup();
    keys.len() > 1
}
fault_test!(new_payout_key_on_retry, Fault::NewPayoutKeyOnRetry, new_key);

async fn reused_hash(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let proof = json!({"tx_hash": "0xsame", "amount": "3.00", "currency": "USD", "destination": "platform-wallet"});
    let mut last = Value::Null;
    for _ in 0..2 {
        let id = t.create(&buyer, &seller, "3.00", "manual_wallet").await;
        last = t.post(&format!("/v1/escrows/{id}/payment-proofs"), Some(&buyer.token), proof.clone()).await.1;
    }
    last["proof"]["flagged"] == false
}
fault_test!(reused_tx_hash_not_flagged, Fault::ReusedTxHashNotFlagged, reused_hash);

#[tokio::test]
async fn disabled_provider_accepts() {
    let disabled = |c: &mut conform_embedded::TargetConfig| {
        c.disabled_providers = vec![conform_reference::ledger::Provider::Shkeeper];
    };
    for (faults, expected) in [(vec![Fault::DisabledProviderAccepts], 201), (vec![], 422)] {
        let t = target_with(&faults, disabled).await;
        let buyer = t.user("user").await;
        let seller = t.user("user").await;
        let body = json!({"seller_id": seller.id, "amount": "1.00", "currency": "USD", "provider": "shkeeper"});
        assert_eq!(t.post("/v1/escrows", Some(&buyer.token), body).await.0, expected, "{faults:?}");
        let webhook = t.pay("inv-none", "1.00", "tx-x").await.0;
        assert_eq!(webhook == 422, expected == 422, "{faults:?}: webhook {webhook}");
    }
}

/// Runs futures concurrently on the current runtime and waits for all.
pub async fn futures_join<F, O>(futures: impl IntoIterator<Item = F>) -> Vec<O>
where
    F: std::future::Future<Output = O>,
{
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs = Vec::new();
    // A small join_all: poll them all together through a JoinSet-free select loop.
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    let mut results: Vec<Option<O>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(o) => {
                        results[i] = Some(o);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    outputs.extend(results.into_iter().flatten());
    outputs
}

/// A Request Network escrow of `amount`, its payment request created; (buyer, seller, escrow id, request id).
async fn rn_invoiced(t: &T, amount: &str) -> (Who, Who, String, String) {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, amount, "request_network").await;
    let (s, v) = t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let request = format!("rn-req-{}", t.stub.log.lock().unwrap().invoices.len());
    (buyer, seller, id, request)
}

/// A Request Network event for `request`, signed over its raw body.
async fn rn_event(t: &T, event: &str, request: &str, amount: &str, tx: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"event": event, "requestId": request, "amount": amount,
        "currency": "USD", "txHash": tx, "totalAmountPaid": amount}))
    .unwrap();
    let sig = conform_reference::webhooks::request_network_signature(b"conform-rn-webhook-secret", &body);
    let h = [("x-request-network-signature", sig), ("x-request-network-delivery", format!("01J{event}{tx}"))];
    t.raw_post("/v1/webhooks/request-network", &h, body).await
}

async fn rn_fee(t: &T) -> bool {
    let (buyer, seller, id, request) = rn_invoiced(t, "10.00").await;
    assert_eq!(rn_event(t, "payment.confirmed", &request, "10.00", "0xf1").await.0, 200);
    assert_eq!(t.post(&format!("/v1/escrows/{id}/mark-delivered"), Some(&seller.token), json!({})).await.0, 200);
    let (s, e) = t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&buyer.token), json!({})).await;
    assert_eq!(s, 200, "{e}");
    let admin = t.admin().await;
    let release = t.entries(&admin, Some(&id)).await.into_iter().find(|e| e["kind"] == "release").expect("a release");
    !release.to_string().contains("\"fees\"")
}
fault_test!(request_network_fee_skipped, Fault::RequestNetworkFeeSkipped, rn_fee);

async fn late_pending(t: &T) -> bool {
    let (buyer, _, id, request) = rn_invoiced(t, "10.00").await;
    assert_eq!(rn_event(t, "payment.confirmed", &request, "10.00", "0xp1").await.0, 200);
    assert_eq!(t.escrow(&id, &buyer).await["state"], "funded");
    assert_eq!(rn_event(t, "payment.processing", &request, "10.00", "0xp0").await.0, 200);
    t.escrow(&id, &buyer).await["state"] != "funded"
}
fault_test!(late_pending_reopens, Fault::LatePendingReopens, late_pending);

async fn proof_fields(t: &T) -> bool {
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "10.00", "manual_wallet").await;
    let body = json!({"tx_hash": "0xbody", "amount": "10.00", "currency": "USD", "destination": "attacker-wallet",
        "flagged": false, "status": "approved"});
    let (s, _) = t.post(&format!("/v1/escrows/{id}/payment-proofs"), Some(&buyer.token), body).await;
    s == 201 && t.escrow(&id, &buyer).await["state"] == "funded"
}
fault_test!(proof_fields_from_body, Fault::ProofFieldsFromBody, proof_fields);

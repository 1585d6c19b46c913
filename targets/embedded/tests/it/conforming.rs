//! The clean target, area by area.

use conform_reference::webhooks::{request_network_signature, standard_webhooks_signature};
use serde_json::json;

use crate::common::*;

/// The same admin signed in again and stepped up (after the test clock moved past the token's life).
async fn admin_again(t: &T, admin: &Who) -> Who {
    let again = t.sign_in(&admin.email, &admin.id).await;
    t.step_up(&again).await;
    again
}

#[tokio::test]
async fn sessions_rotate_detect_reuse_and_revoke() {
    let t = target(&[]).await;
    let u = t.user("user").await;
    // SES-1: a wrong password and an unknown account look alike.
    let (s1, b1) = t.post("/v1/auth/sign-in", None, json!({"email": u.email, "password": "wrong"})).await;
    let (s2, b2) = t.post("/v1/auth/sign-in", None, json!({"email": "nobody@example.test", "password": "x"})).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    // SES-2: rotation.
    let (s, r1) = t.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh})).await;
    assert_eq!(s, 200, "{r1}");
    assert_ne!(r1["refresh_token"], json!(u.refresh));
    // SES-3: reuse of the old one revokes the family, the new refresh token too.
    let (s, e) = t.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh})).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_grant")));
    let (s, _) = t.post("/v1/auth/refresh", None, json!({"refresh_token": r1["refresh_token"]})).await;
    assert_eq!(s, 401);
    assert_eq!(t.get("/v1/sessions", &u.token).await.0, 401, "the family's access token died with it");
    // SES-4: logout revokes the access token at once.
    let u2 = t.sign_in(&u.email, &u.id).await;
    let (s, list) = t.get("/v1/sessions", &u2.token).await;
    assert_eq!(s, 200);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list["sessions"][0]["current"], json!(true));
    assert_eq!(t.post("/v1/auth/logout", Some(&u2.token), json!({})).await.0, 204);
    assert_eq!(t.get("/v1/sessions", &u2.token).await.0, 401);
    // SES-5: revoke one's own other session; another user's is 404.
    let a = t.sign_in(&u.email, &u.id).await;
    let b = t.sign_in(&u.email, &u.id).await;
    let other = t.user("user").await;
    assert_eq!(t.req("DELETE", &format!("/v1/sessions/{}", other.session), Some(&a.token), None, &[]).await.0, 404);
    assert_eq!(t.req("DELETE", &format!("/v1/sessions/{}", b.session), Some(&a.token), None, &[]).await.0, 204);
    assert_eq!(t.get("/v1/sessions", &b.token).await.0, 401);
    // SES-6: expiry after 15 minutes.
    t.advance(900).await;
    assert_eq!(t.get("/v1/sessions", &a.token).await.0, 401);
    // SES-10: the 11th attempt in a minute is refused.
    let mut last = 0;
    for _ in 0..11 {
        last = t.post("/v1/auth/sign-in", None, json!({"email": other.email, "password": "wrong"})).await.0;
    }
    assert_eq!(last, 429);
    // Malformed bodies are the SPEC's error body, never a crash.
    let (s, e) = t.raw_post("/v1/auth/sign-in", &[], b"{not json".to_vec()).await;
    assert_eq!((s, e["error"].as_str()), (422, Some("validation_failed")));
    let (s, _) = t.raw_post("/v1/auth/sign-in", &[], vec![b' '; 70 * 1024]).await;
    assert_eq!(s, 413);
    let (s, _) = t.post("/v1/auth/sign-in", None, json!({"email": 5, "password": []})).await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn test_routes_and_passkeys_answer_404_when_off() {
    let t = target_with(&[], |c| c.test_mode = false).await;
    let (s, e) = t.post("/v1/test/users", None, json!({"email": "a@b.c", "password": "x", "role": "admin"})).await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")));
    assert_eq!(t.post("/v1/test/clock", None, json!({"advance_seconds": 1})).await.0, 404);
    let (s, e) = t.post("/v1/auth/passkeys/authentication/options", None, json!({})).await;
    assert_eq!((s, e["error"].as_str()), (404, Some("passkeys_disabled")));
}

#[tokio::test]
async fn escrow_lifecycle_end_to_end_with_provider_payment_and_payout() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let (buyer, seller, id, _ext) = t.funded("100.00").await;
    let e = t.escrow(&id, &buyer).await;
    assert_eq!(
        (e["state"].as_str(), e["amount_received"].as_str(), e["version"].as_u64()),
        (Some("funded"), Some("100.00"), Some(2))
    );
    // A retried start_payment does not create a second invoice (PRV-1) and a funded escrow cannot start again.
    assert_eq!(t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await.0, 409);
    assert_eq!(t.stub.log.lock().unwrap().invoices.len(), 1);
    // ESC-10, ESC-11.
    assert_eq!(t.post(&format!("/v1/escrows/{id}/mark-delivered"), Some(&seller.token), json!({})).await.0, 200);
    let (s, e) = t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&buyer.token), json!({})).await;
    assert_eq!((s, e["state"].as_str(), e["fee"].as_str()), (200, Some("release_pending"), Some("2.50")));
    // The payout is requested with the escrow's key (PRV-4).
    let mut keys = Vec::new();
    for _ in 0..250 {
        keys = t.stub.payout_keys();
        if !keys.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(keys.len(), 1);
    assert_eq!(t.stub.log.lock().unwrap().payouts[0]["amount"], json!("97.50"));
    // ESC-16: the provider confirms.
    let (s, v) = t.payout_confirmed(&keys[0], "97.50").await;
    assert_eq!((s, v["status"].as_str()), (202, Some("accepted")), "{v}");
    let (s, v) = t.payout_confirmed(&keys[0], "97.50").await;
    assert_eq!((s, v["status"].as_str()), (202, Some("duplicate")));
    assert_eq!(t.escrow(&id, &buyer).await["state"], json!("released"));
    let kinds: Vec<String> =
        t.entries(&admin, Some(&id)).await.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["payment", "release", "payout_confirmed"]);
    let release = &t.entries(&admin, Some(&id)).await[1];
    let amounts: Vec<&str> =
        release["postings"].as_array().unwrap().iter().map(|p| p["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, ["100.00", "-97.50", "-2.50"]);
    // ESC-22: terminal.
    assert_eq!(t.post(&format!("/v1/escrows/{id}/disputes"), Some(&buyer.token), json!({})).await.0, 409);
}

#[tokio::test]
async fn partial_and_overpayment_and_deadlines() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "100.00").await;
    t.pay(&ext, "40.00", "tx1").await;
    let e = t.escrow(&id, &buyer).await;
    assert_eq!((e["state"].as_str(), e["amount_received"].as_str()), (Some("awaiting_payment"), Some("40.00")));
    t.pay(&ext, "70.00", "tx2").await;
    let e = t.escrow(&id, &buyer).await;
    assert_eq!((e["state"].as_str(), e["amount_received"].as_str()), (Some("funded"), Some("100.00")));
    let entries = t.entries(&admin, Some(&id)).await;
    assert!(entries[1]["postings"].to_string().contains("buyer_credit:"), "{}", entries[1]);
    // ESC-9: an unpaid escrow expires after 72 h; ESC-12: a delivered one auto-releases after 14 days.
    let unpaid = t.create(&buyer, &seller, "5.00", "shkeeper").await;
    assert_eq!(t.post(&format!("/v1/escrows/{id}/mark-delivered"), Some(&seller.token), json!({})).await.0, 200);
    t.advance(72 * 3600).await;
    let buyer = t.sign_in(&buyer.email, &buyer.id).await;
    assert_eq!(t.escrow(&unpaid, &buyer).await["state"], json!("expired"));
    t.advance(14 * 24 * 3600).await;
    let buyer = t.sign_in(&buyer.email, &buyer.id).await;
    assert_eq!(t.escrow(&id, &buyer).await["state"], json!("release_pending"));
    assert_eq!(t.count_kind(&admin_again(&t, &admin).await, &id, "release").await, 1);
}

#[tokio::test]
async fn authorization_refusals() {
    let t = target(&[]).await;
    let (buyer, seller, id, _) = t.delivered("50.00").await;
    let stranger = t.user("user").await;
    let support = t.user("support").await;
    let admin = t.user("admin").await;
    // AZ-1, AZ-2, AZ-3, AZ-5.
    assert_eq!(t.req("GET", &format!("/v1/escrows/{id}"), None, None, &[]).await.0, 401);
    assert_eq!(t.get(&format!("/v1/escrows/{id}"), &stranger.token).await.0, 404);
    assert_eq!(t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&stranger.token), json!({})).await.0, 404);
    assert_eq!(t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&seller.token), json!({})).await.0, 403);
    assert_eq!(t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&support.token), json!({})).await.0, 403);
    assert_eq!(t.get(&format!("/v1/escrows/{id}"), &support.token).await.0, 200);
    let (s, _) = t
        .post(
            "/v1/escrows",
            Some(&support.token),
            json!({"seller_id": seller.id, "amount": "1", "currency": "USD", "provider": "shkeeper"}),
        )
        .await;
    assert_eq!(s, 403);
    // AZ-4.
    let (_, list) = t.get("/v1/escrows", &stranger.token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (_, list) = t.get("/v1/escrows", &buyer.token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // AZ-8 and ESC-21.
    let (s, _) =
        t.req("PATCH", &format!("/v1/escrows/{id}"), Some(&buyer.token), Some(json!({"state": "released"})), &[]).await;
    assert_eq!(s, 422);
    let (s, e) =
        t.req("PATCH", &format!("/v1/escrows/{id}"), Some(&buyer.token), Some(json!({"description": "hi"})), &[]).await;
    assert_eq!((s, e["description"].as_str()), (200, Some("hi")));
    let (s, _) = t
        .req(
            "POST",
            &format!("/v1/escrows/{id}/confirm-receipt"),
            Some(&buyer.token),
            Some(json!({})),
            &[("If-Match", "\"1\"".to_owned())],
        )
        .await;
    assert_eq!(s, 412);
    // AZ-6 and AZ-9.
    let (s, e) = t.post(&format!("/v1/escrows/{id}/disputes"), Some(&buyer.token), json!({})).await;
    assert_eq!(s, 200, "{e}");
    let (s, e) =
        t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&admin.token), json!({"outcome": "refund"})).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("step_up_required")));
    t.step_up(&admin).await;
    let (s, e) =
        t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&admin.token), json!({"outcome": "refund"})).await;
    assert_eq!((s, e["state"].as_str()), (200, Some("refund_pending")));
    let (s, log) = t.get("/v1/admin/audit-log", &admin.token).await;
    assert_eq!(s, 200);
    let outcomes: Vec<&str> = log["items"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["refused", "allowed"]);
    assert_eq!(t.get("/v1/admin/audit-log", &support.token).await.0, 403);
    assert_eq!(t.get("/v1/admin/ledger", &support.token).await.0, 200);
}

#[tokio::test]
async fn two_person_rule_and_revocation_voids_approvals() {
    let t = target(&[]).await;
    let a = t.admin().await;
    let b = t.admin().await;
    let (buyer, _seller, id, _) = t.funded("20000.00").await;
    assert_eq!(t.post(&format!("/v1/escrows/{id}/disputes"), Some(&buyer.token), json!({})).await.0, 200);
    let (s, approval) =
        t.post(&format!("/v1/admin/escrows/{id}/resolve"), Some(&a.token), json!({"outcome": "release"})).await;
    assert_eq!((s, approval["status"].as_str()), (202, Some("pending")), "{approval}");
    assert_eq!(t.escrow(&id, &buyer).await["state"], json!("disputed"));
    let aid = approval["id"].as_str().unwrap();
    let (s, e) = t.post(&format!("/v1/admin/approvals/{aid}/approve"), Some(&a.token), json!({})).await;
    assert_eq!((s, e["error"].as_str()), (403, Some("same_approver")));
    let (s, r) = t.post(&format!("/v1/admin/approvals/{aid}/approve"), Some(&b.token), json!({})).await;
    assert_eq!((s, r["escrow"]["state"].as_str()), (200, Some("release_pending")), "{r}");
    // Granting admin is two-person too; revoking the requester's sessions voids it (DRL-5).
    let u = t.user("user").await;
    let (s, p) = t
        .req("PUT", &format!("/v1/admin/users/{}/role", u.id), Some(&a.token), Some(json!({"role": "admin"})), &[])
        .await;
    assert_eq!(s, 202, "{p}");
    let (s, r) = t.req("DELETE", &format!("/v1/admin/users/{}/sessions", a.id), Some(&b.token), None, &[]).await;
    assert_eq!((s, r["voided_approvals"].as_u64()), (200, Some(1)), "{r}");
    assert_eq!(t.get("/v1/sessions", &a.token).await.0, 401);
    let pid = p["id"].as_str().unwrap();
    assert_eq!(t.post(&format!("/v1/admin/approvals/{pid}/approve"), Some(&b.token), json!({})).await.0, 409);
}

#[tokio::test]
async fn manual_wallet_proofs_are_flagged_and_need_two_admins() {
    let t = target(&[]).await;
    let a = t.admin().await;
    let b = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "30.00", "manual_wallet").await;
    let (s, p) = t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await;
    assert_eq!((s, p["payment"]["pay_to"].as_str()), (200, Some("platform-wallet")));
    let proof = json!({"tx_hash": "0xabc", "amount": "30.00", "currency": "USD", "destination": "platform-wallet"});
    let (s, r) = t.post(&format!("/v1/escrows/{id}/payment-proofs"), Some(&buyer.token), proof.clone()).await;
    assert_eq!((s, r["proof"]["flagged"].as_bool()), (201, Some(false)), "{r}");
    let pid = r["proof"]["id"].as_str().unwrap().to_owned();
    let (s, e) = t.post(&format!("/v1/admin/escrows/{id}/proofs/{pid}/approve"), Some(&a.token), json!({})).await;
    assert_eq!((s, e["state"].as_str()), (200, Some("funded")), "{e}");
    // The same hash on another escrow is flagged and needs a second admin.
    let id2 = t.create(&buyer, &seller, "30.00", "manual_wallet").await;
    let (_, r) = t.post(&format!("/v1/escrows/{id2}/payment-proofs"), Some(&buyer.token), proof).await;
    assert_eq!(r["proof"]["flags"], json!(["reused_tx_hash"]));
    let pid = r["proof"]["id"].as_str().unwrap().to_owned();
    let (s, ap) = t.post(&format!("/v1/admin/escrows/{id2}/proofs/{pid}/approve"), Some(&a.token), json!({})).await;
    assert_eq!(s, 202);
    let aid = ap["id"].as_str().unwrap();
    let (s, e) = t.post(&format!("/v1/admin/escrows/{id2}/proofs/{pid}/reject"), Some(&b.token), json!({})).await;
    assert_eq!((s, e["state"].as_str()), (200, Some("awaiting_payment")));
    assert_eq!(t.post(&format!("/v1/admin/approvals/{aid}/approve"), Some(&b.token), json!({})).await.0, 409);
}

#[tokio::test]
async fn webhooks_dedup_dead_letters_replay_and_rotation() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "10.00").await;
    // A forged signature and a stale timestamp: 401, dead-lettered with the API key redacted.
    let body = serde_json::to_vec(&json!({"external_id": ext, "fiat": "USD", "status": "PAID",
        "transactions": [{"txid": "t1", "amount_fiat": "10.00", "trigger": true}]}))
    .unwrap();
    let (s, e) = t.shkeeper(body.clone(), "wrong-key", 0).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_signature")));
    let (s, _) = t.shkeeper(body.clone(), SHK_KEY, 301).await;
    assert_eq!(s, 401);
    let (_, dl) = t.get("/v1/admin/dead-letters", &admin.token).await;
    let items = dl["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["reason"], json!("invalid_signature"));
    assert_eq!(items[1]["reason"], json!("stale_timestamp"));
    assert_eq!(items[0]["headers"]["x-shkeeper-api-key"], json!("[redacted]"));
    assert!(!dl.to_string().contains("wrong-key") && !dl.to_string().contains(SHK_KEY));
    // Replaying an unauthenticated dead letter is refused again, as the model decides, and changes nothing.
    let did = items[0]["id"].as_str().unwrap();
    let (s, r) = t.post(&format!("/v1/admin/dead-letters/{did}/replay"), Some(&admin.token), json!({})).await;
    assert_eq!((s, r["error"].as_str()), (401, Some("invalid_signature")));
    // WH-3, WH-4: the same event twice applies once.
    assert_eq!(t.shkeeper(body.clone(), SHK_KEY, 0).await.1["status"], json!("accepted"));
    assert_eq!(t.shkeeper(body.clone(), SHK_KEY, 0).await, (202, json!({"status": "duplicate"})));
    assert_eq!(t.count_kind(&admin, &id, "payment").await, 1);
    // An unknown invoice: 202, suspense, dead-lettered; its replay is a duplicate, a second replay 409.
    let (s, v) = t.pay("inv-unknown", "3.00", "t9").await;
    assert_eq!((s, v["status"].as_str()), (202, Some("dead_lettered")));
    let (_, dl) = t.get("/v1/admin/dead-letters?provider=shkeeper", &admin.token).await;
    let last = dl["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], json!("unknown_invoice"));
    let did = last["id"].as_str().unwrap();
    let (s, r) = t.post(&format!("/v1/admin/dead-letters/{did}/replay"), Some(&admin.token), json!({})).await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("duplicate")));
    let (s, r) = t.post(&format!("/v1/admin/dead-letters/{did}/replay"), Some(&admin.token), json!({})).await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("duplicate")), "a second replay has no effect either");
    let suspense = t.entries(&admin, None).await.iter().filter(|e| e["kind"] == "suspense").count();
    assert_eq!(suspense, 1);
    // WH-8: after a rotation with no overlap the old key is refused at once, the new one works.
    let (s, r) =
        t.post("/v1/admin/webhook-secrets/shkeeper/rotate", Some(&admin.token), json!({"secret": "new-key"})).await;
    assert_eq!(s, 200, "{r}");
    let body2 = serde_json::to_vec(&json!({"external_id": ext, "fiat": "USD", "status": "PAID",
        "transactions": [{"txid": "t2", "amount_fiat": "1.00", "trigger": true}]}))
    .unwrap();
    assert_eq!(t.shkeeper(body2.clone(), SHK_KEY, 0).await.0, 401);
    assert_eq!(t.shkeeper(body2, "new-key", 0).await.0, 202);
    // Request Network and Standard Webhooks verify too.
    let rn = br#"{"event":"payment.confirmed","requestId":"unknown","amount":"1.00","currency":"USD","txHash":"0x1"}"#
        .to_vec();
    let sig = request_network_signature(b"conform-rn-webhook-secret", &rn);
    let h = [("x-request-network-signature", sig), ("x-request-network-delivery", "01JDELIVERY".to_owned())];
    assert_eq!(
        t.raw_post("/v1/webhooks/request-network", &h, rn.clone()).await,
        (200, json!({"status": "dead_lettered"}))
    );
    assert_eq!(t.raw_post("/v1/webhooks/request-network", &h, rn).await, (200, json!({"status": "duplicate"})));
    let sw = br#"{"type":"payment.pending","event_id":"ev1","invoice":"x"}"#.to_vec();
    let now = t.now().await;
    let secret = "whsec_Y29uZm9ybS1zdGFuZGFyZC13ZWJob29rLXNlY3JldA==";
    let sig = standard_webhooks_signature(secret, "msg1", now, &sw).unwrap();
    let h = [("webhook-id", "msg1".to_owned()), ("webhook-timestamp", now.to_string()), ("webhook-signature", sig)];
    assert_eq!(t.raw_post("/v1/webhooks/standard/standard", &h, sw.clone()).await.0, 200);
    assert_eq!(t.raw_post("/v1/webhooks/standard/nope", &h, sw).await.0, 404);
    // A body that is authentic but not a callback: 400 malformed.
    assert_eq!(t.shkeeper(b"[1,2]".to_vec(), "new-key", 0).await.0, 400);
}

#[tokio::test]
async fn provider_outage_gives_503_and_changes_nothing() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "10.00", "shkeeper").await;
    for mode in [StubMode::ServerError, StubMode::ErrorStatus] {
        t.stub.set(mode);
        let (s, e) = t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await;
        assert_eq!((s, e["error"].as_str()), (503, Some("provider_unavailable")), "{mode:?}");
    }
    let e = t.escrow(&id, &buyer).await;
    assert_eq!((e["state"].as_str(), e["version"].as_u64()), (Some("awaiting_payment"), Some(1)));
    assert!(t.entries(&admin, None).await.is_empty());
    t.stub.set(StubMode::Ok);
    assert_eq!(t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await.0, 200);
    // No provider at all (connection refused).
    let t2 = target_with(&[], |c| c.shkeeper_url = Some("http://127.0.0.1:9".to_owned())).await;
    let b2 = t2.user("user").await;
    let s2 = t2.user("user").await;
    let id2 = t2.create(&b2, &s2, "10.00", "shkeeper").await;
    assert_eq!(t2.post(&format!("/v1/escrows/{id2}/start-payment"), Some(&b2.token), json!({})).await.0, 503);
    // A disabled provider refuses new escrows.
    let t3 = target_with(&[], |c| c.disabled_providers = vec![conform_reference::ledger::Provider::Shkeeper]).await;
    let b3 = t3.user("user").await;
    let s3 = t3.user("user").await;
    let (s, e) = t3
        .post(
            "/v1/escrows",
            Some(&b3.token),
            json!({"seller_id": s3.id, "amount": "1", "currency": "USD", "provider": "shkeeper"}),
        )
        .await;
    assert_eq!((s, e["error"].as_str()), (422, Some("provider_disabled")));
}

#[tokio::test]
async fn stuck_payout_is_listed_and_retried_with_the_same_key() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let (buyer, _seller, id, _) = t.delivered("10.00").await;
    t.stub.set(StubMode::ServerError);
    assert_eq!(t.post(&format!("/v1/escrows/{id}/confirm-receipt"), Some(&buyer.token), json!({})).await.0, 200);
    t.advance(3600).await;
    let admin = admin_again(&t, &admin).await;
    let mut stuck = json!(null);
    for _ in 0..250 {
        stuck = t.get("/v1/admin/payouts/stuck", &admin.token).await.1;
        if stuck["items"][0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stuck["items"].as_array().unwrap().len(), 1, "{stuck}");
    assert_eq!(stuck["items"][0]["status"], json!("failed"));
    // The provider still fails: the retry is accepted (as the model decides) and the payout shows the failure.
    let (s, r) = t.post(&format!("/v1/admin/escrows/{id}/retry-payout"), Some(&admin.token), json!({})).await;
    assert_eq!((s, r["payout"]["status"].as_str()), (200, Some("failed")), "{r}");
    assert!(r["payout"]["last_error"].is_string());
    t.stub.set(StubMode::Ok);
    let (s, r) = t.post(&format!("/v1/admin/escrows/{id}/retry-payout"), Some(&admin.token), json!({})).await;
    assert_eq!((s, r["payout"]["attempts"].as_u64()), (200, Some(3)), "{r}");
    let key = r["payout"]["idempotency_key"].as_str().unwrap().to_owned();
    assert_eq!(t.stub.payout_keys(), std::slice::from_ref(&key));
    assert_eq!(t.payout_confirmed(&key, "9.75").await.0, 202);
    assert_eq!(t.escrow(&id, &admin).await["state"], json!("released"));
}

#[tokio::test]
async fn realtime_events_socketio_layer_and_shutdown() {
    let T { target: running, base, http, stub: _stub, .. } = target(&[]).await;
    let t = T::around(running, base.clone(), http);
    let mut events = t.target.events().subscribe();
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "5.00", "manual_wallet").await;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(
        seen.iter().any(|e| matches!(e, conform_embedded::realtime_api::RealtimeEvent::EscrowUpdated { escrow_id, state: "awaiting_payment", version: 1, .. } if *escrow_id == id)),
        "{seen:?}"
    );
    assert_eq!(t.post("/v1/auth/logout", Some(&buyer.token), json!({})).await.0, 204);
    let revoked = events.try_recv().expect("an event");
    assert_eq!(
        revoked,
        conform_embedded::realtime_api::RealtimeEvent::SessionRevoked { session: buyer.session.clone() }
    );
    // The Socket.IO layer shares the port.
    let resp = t.http.get(format!("{base}/socket.io/?EIO=4&transport=polling")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().starts_with('0'));
    t.target.shutdown().await;
    assert!(reqwest::get(format!("{base}/v1/escrows")).await.is_err(), "the port is closed after shutdown");
}

#[tokio::test]
async fn malformed_input_never_breaks_the_server() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let id = t.create(&buyer, &seller, "5.00", "shkeeper").await;
    let routes = [
        ("POST", "/v1/auth/sign-in".to_owned()),
        ("POST", "/v1/auth/refresh".to_owned()),
        ("POST", "/v1/auth/step-up".to_owned()),
        ("POST", "/v1/auth/password".to_owned()),
        ("POST", "/v1/escrows".to_owned()),
        ("GET", "/v1/escrows?limit=abc&state=nope&cursor=-1".to_owned()),
        ("PATCH", format!("/v1/escrows/{id}")),
        ("POST", format!("/v1/escrows/{id}/payment-proofs")),
        ("POST", format!("/v1/escrows/{id}/disputes")),
        ("POST", format!("/v1/admin/escrows/{id}/resolve")),
        ("POST", "/v1/admin/webhook-secrets/shkeeper/rotate".to_owned()),
        ("PUT", format!("/v1/admin/users/{}/role", buyer.id)),
        ("POST", "/v1/webhooks/shkeeper".to_owned()),
        ("POST", "/v1/webhooks/request-network".to_owned()),
        ("POST", "/v1/webhooks/standard/standard".to_owned()),
        ("POST", "/v1/test/users".to_owned()),
        ("POST", "/v1/test/clock".to_owned()),
        ("GET", "/v1/admin/ledger?escrow_id=%ZZ&limit=0".to_owned()),
    ];
    let bodies: [&[u8]; 8] = [
        b"",
        b"null",
        b"[]",
        b"{\"amount\": 1e400, \"currency\": {}, \"seller_id\": [], \"provider\": 7}",
        b"{\"amount\":\"99999999999999999999999999\",\"currency\":\"USD\",\"seller_id\":\"x\",\"provider\":\"shkeeper\"}",
        b"{\"advance_seconds\": 9223372036854775807}",
        b"{\"set\": \"9999-99-99T99:99:99Z\"}",
        &[0xff, 0xfe, 0x00, 0x7b],
    ];
    let headers = [
        ("If-Match", "\"x\"".to_owned()),
        ("X-Shkeeper-Signature", "zz".to_owned()),
        ("X-Shkeeper-Timestamp", "-1".to_owned()),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for (method, path) in &routes {
        for body in bodies {
            for token in [None, Some(admin.token.as_str())] {
                let mut rb = t
                    .http
                    .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", t.base));
                if let Some(token) = token {
                    rb = rb.bearer_auth(token);
                }
                for (k, v) in &headers {
                    rb = rb.header(*k, v);
                }
                let status = rb.body(body.to_vec()).send().await.expect("the server stays up").status().as_u16();
                assert!(status < 500, "{method} {path} {body:?}: {status}");
                *statuses.entry(status).or_insert(0) += 1;
            }
        }
    }
    println!("malformed requests by status: {statuses:?}");
    assert_eq!(t.escrow(&id, &buyer).await["state"], json!("awaiting_payment"));
}

#[tokio::test]
async fn request_network_payment_and_standard_webhooks_payout_confirmation() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    // Request Network: the request id the provider gave is the binding its webhooks name.
    let id = t.create(&buyer, &seller, "12.00", "request_network").await;
    let (s, p) = t.post(&format!("/v1/escrows/{id}/start-payment"), Some(&buyer.token), json!({})).await;
    assert_eq!(s, 200, "{p}");
    let request_id = p["payment"]["invoice_id"].as_str().unwrap().to_owned();
    let rn = json!({"event": "payment.confirmed", "requestId": request_id, "amount": "12.00", "currency": "USD",
        "totalAmountPaid": "12.00", "txHash": "0xrn"});
    let body = serde_json::to_vec(&rn).unwrap();
    let sig = request_network_signature(b"conform-rn-webhook-secret", &body);
    let h = [("x-request-network-signature", sig.clone()), ("x-request-network-delivery", "01JD1".to_owned())];
    assert_eq!(
        t.raw_post("/v1/webhooks/request-network", &h, body.clone()).await,
        (200, json!({"status": "accepted"}))
    );
    // The .client_id variant of the same payment, a new delivery: applied once.
    let mut variant = rn.clone();
    variant["event"] = json!("payment.confirmed.client_id");
    let vbody = serde_json::to_vec(&variant).unwrap();
    let vsig = request_network_signature(b"conform-rn-webhook-secret", &vbody);
    let h2 = [("x-request-network-signature", vsig), ("x-request-network-delivery", "01JD2".to_owned())];
    assert_eq!(t.raw_post("/v1/webhooks/request-network", &h2, vbody).await.1["status"], json!("duplicate"));
    assert_eq!(t.escrow(&id, &buyer).await["state"], json!("funded"));
    // A manual-wallet escrow's payout is confirmed by a Standard Webhooks delivery naming the payout key.
    let mid = t.create(&buyer, &seller, "8.00", "manual_wallet").await;
    let proof = json!({"tx_hash": "0xm", "amount": "8.00", "currency": "USD", "destination": "platform-wallet"});
    let (_, r) = t.post(&format!("/v1/escrows/{mid}/payment-proofs"), Some(&buyer.token), proof).await;
    let pid = r["proof"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.post(&format!("/v1/admin/escrows/{mid}/proofs/{pid}/approve"), Some(&admin.token), json!({})).await.0,
        200
    );
    assert_eq!(t.post(&format!("/v1/escrows/{mid}/refund"), Some(&seller.token), json!({})).await.0, 200);
    let (_, stuck) = t.get("/v1/admin/payouts/stuck?older_than_seconds=0", &admin.token).await;
    let key =
        stuck["items"].as_array().unwrap().iter().find(|p| p["escrow_id"] == json!(mid)).unwrap()["idempotency_key"]
            .as_str()
            .unwrap()
            .to_owned();
    let sw = serde_json::to_vec(&json!({"type": "refund.confirmed", "event_id": "ev-refund", "invoice": key,
        "transaction": "0xback", "amount": "8.00", "currency": "USD"}))
    .unwrap();
    let now = t.now().await;
    let secret = "whsec_Y29uZm9ybS1zdGFuZGFyZC13ZWJob29rLXNlY3JldA==";
    let sig = standard_webhooks_signature(secret, "msg-r", now, &sw).unwrap();
    let h = [("webhook-id", "msg-r".to_owned()), ("webhook-timestamp", now.to_string()), ("webhook-signature", sig)];
    assert_eq!(t.raw_post("/v1/webhooks/standard/standard", &h, sw).await, (200, json!({"status": "accepted"})));
    assert_eq!(t.escrow(&mid, &buyer).await["state"], json!("refunded"));
    let kinds: Vec<String> =
        t.entries(&admin, Some(&mid)).await.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["payment", "refund", "refund_confirmed"]);
}

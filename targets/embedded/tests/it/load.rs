//! Bounded load on loopback: many parallel releases and duplicate deliveries on one escrow move money once.

use std::time::Instant;

use serde_json::json;

use crate::common::*;
use crate::fault_probes::futures_join;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_confirmations_and_duplicate_webhooks_release_once() {
    let t = target(&[]).await;
    let admin = t.admin().await;
    let buyer = t.user("user").await;
    let seller = t.user("user").await;
    let (id, ext) = t.invoiced(&buyer, &seller, "250.00").await;
    let started = Instant::now();
    // 50 deliveries of the same payment at once.
    let deliveries = futures_join((0..50).map(|_| t.pay(&ext, "250.00", "tx-load"))).await;
    let accepted = deliveries.iter().filter(|(s, v)| *s == 202 && v["status"] == "accepted").count();
    let duplicates = deliveries.iter().filter(|(s, v)| *s == 202 && v["status"] == "duplicate").count();
    assert_eq!(t.post(&format!("/v1/escrows/{id}/mark-delivered"), Some(&seller.token), json!({})).await.0, 200);
    // 50 confirmations and 50 more duplicate deliveries at once.
    let path = format!("/v1/escrows/{id}/confirm-receipt");
    let confirms = futures_join((0..50).map(|_| t.post(&path, Some(&buyer.token), json!({}))));
    let dupes = futures_join((0..50).map(|_| t.pay(&ext, "250.00", "tx-load")));
    let (confirms, dupes) = tokio::join!(confirms, dupes);
    let elapsed = started.elapsed();
    let ok = confirms.iter().filter(|(s, _)| *s == 200).count();
    let refused = confirms.iter().filter(|(s, _)| *s == 409).count();
    let later_dupes = dupes.iter().filter(|(s, v)| *s == 202 && v["status"] == "duplicate").count();
    let releases = t.count_kind(&admin, &id, "release").await;
    let payments = t.count_kind(&admin, &id, "payment").await;
    println!(
        "load: 100 deliveries ({accepted} accepted, {} duplicates), 50 confirmations ({ok} ok, {refused} refused), \
         {releases} release entry, {payments} payment entry, {} ms",
        duplicates + later_dupes,
        elapsed.as_millis()
    );
    assert_eq!((accepted, duplicates + later_dupes), (1, 99));
    assert_eq!((ok, refused), (1, 49));
    assert_eq!((releases, payments), (1, 1));
    assert_eq!(t.escrow(&id, &buyer).await["state"], json!("release_pending"));
}

//! Calls to the payment providers (PRV-1, PRV-2, PRV-4), always outside the state's lock, always with a timeout.

use conform_reference::ledger::Provider;
use conform_reference::money::{Currency, Money};
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::state::{PayoutJob, Shared};

/// What start_payment tells the buyer.
#[derive(Debug, Clone)]
pub(crate) struct Invoice {
    /// The key the provider's webhooks name (our external id for SHKeeper, the request id for Request Network).
    pub binding: String,
    pub instructions: Value,
}

/// The crypto asset an SHKeeper invoice or payout is in.
fn crypto_of(currency: Currency) -> &'static str {
    match currency {
        Currency::Usd | Currency::Btc => "BTC",
        Currency::Usdt => "USDT",
        Currency::Usdc => "USDC",
    }
}

fn base(url: &Option<String>) -> Result<&str, String> {
    url.as_deref().map(|u| u.trim_end_matches('/')).ok_or_else(|| "no provider URL is configured".to_owned())
}

async fn send_json(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "the provider timed out".to_owned()
        } else if e.is_connect() {
            "the provider refused the connection".to_owned()
        } else {
            "the provider could not be reached".to_owned()
        }
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|_| "the provider's answer was cut".to_owned())?;
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, value))
}

/// Creates the provider invoice of an escrow (PRV-1). Any failure is an `Err` (PRV-2).
pub(crate) async fn create_invoice(
    app: &Shared,
    provider: Provider,
    external_id: &str,
    amount: Money,
) -> Result<Invoice, String> {
    let cfg = &app.cfg;
    let amount_text = amount.to_decimal_string();
    let currency = amount.currency.code();
    match provider {
        Provider::ManualWallet => Ok(Invoice {
            binding: external_id.to_owned(),
            instructions: json!({
                "provider": "manual_wallet", "invoice_id": null, "pay_to": cfg.platform_address,
                "amount": amount_text, "currency": currency, "pay_currency": null, "pay_amount": null,
                "payment_url": null, "expires_at": null,
            }),
        }),
        Provider::Shkeeper => {
            let crypto = crypto_of(amount.currency);
            let url = format!("{}/api/v1/{crypto}/payment_request", base(&cfg.shkeeper_url)?);
            let body = json!({
                "external_id": external_id,
                "fiat": currency,
                "amount": amount_text,
                "callback_url": format!("{}/v1/webhooks/shkeeper", app.callback_base),
            });
            let request = app
                .http
                .post(url)
                .header("X-Shkeeper-Api-Key", &cfg.shkeeper_api_key)
                .timeout(cfg.provider_timeout)
                .json(&body);
            let (status, value) = send_json(request).await?;
            if status >= 300 {
                return Err(format!("the provider answered HTTP {status}"));
            }
            // SHKeeper reports errors as HTTP 200 with {"status":"error"}: read the status, not the HTTP code.
            let success = value.get("status").and_then(Value::as_str) == Some("success");
            if !success && !app.faults.is_on(Fault::ShkeeperErrorAsSuccess) {
                return Err("the provider answered with an error".to_owned());
            }
            let text = |name: &str| match value.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            Ok(Invoice {
                binding: external_id.to_owned(),
                instructions: json!({
                    "provider": "shkeeper", "invoice_id": text("id"), "pay_to": text("wallet"),
                    "amount": amount_text, "currency": currency, "pay_currency": crypto,
                    "pay_amount": text("amount"), "payment_url": null, "expires_at": null,
                }),
            })
        }
        Provider::RequestNetwork => {
            let url = format!("{}/v2/request", base(&cfg.request_network_url)?);
            let body = json!({
                "payee": cfg.platform_address,
                "amount": amount_text,
                "invoiceCurrency": currency,
                "paymentCurrency": currency,
                "reference": external_id,
            });
            let request = app
                .http
                .post(url)
                .header("x-api-key", &cfg.request_network_api_key)
                .timeout(cfg.provider_timeout)
                .json(&body);
            let (status, value) = send_json(request).await?;
            if !(200..300).contains(&status) {
                return Err(format!("the provider answered HTTP {status}"));
            }
            let request_id = value
                .get("requestId")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or("the provider's answer has no requestId")?
                .to_owned();
            let reference = value.get("paymentReference").and_then(Value::as_str).map(str::to_owned);
            Ok(Invoice {
                binding: request_id.clone(),
                instructions: json!({
                    "provider": "request_network", "invoice_id": request_id, "pay_to": reference,
                    "amount": amount_text, "currency": currency, "pay_currency": currency,
                    "pay_amount": amount_text, "payment_url": null, "expires_at": null,
                }),
            })
        }
    }
}

/// Asks the provider for a payout or refund with the job's idempotency key (PRV-4).
pub(crate) async fn send_payout(app: &Shared, job: &PayoutJob) -> Result<(), String> {
    let cfg = &app.cfg;
    let amount = job.amount.to_decimal_string();
    match job.provider {
        // The platform pays manual-wallet payouts itself; the confirmation comes as a Standard Webhooks delivery.
        Provider::ManualWallet => Ok(()),
        Provider::Shkeeper => {
            let crypto = crypto_of(job.amount.currency);
            let url = format!("{}/api/v1/{crypto}/payout", base(&cfg.shkeeper_url)?);
            let body = json!({
                "amount": amount,
                "destination": job.destination,
                "fee": "0",
                "callback_url": format!("{}/v1/webhooks/shkeeper", app.callback_base),
                "external_id": job.key,
            });
            let request = app
                .http
                .post(url)
                .basic_auth(&cfg.shkeeper_payout_user, Some(&cfg.shkeeper_payout_password))
                .timeout(cfg.provider_timeout)
                .json(&body);
            let (status, value) = send_json(request).await?;
            if status >= 300 {
                return Err(format!("the provider answered HTTP {status}"));
            }
            if value.get("status").and_then(Value::as_str) == Some("error") {
                return Err("the provider answered with an error".to_owned());
            }
            Ok(())
        }
        Provider::RequestNetwork => {
            let url = format!("{}/v2/payouts", base(&cfg.request_network_url)?);
            let body = json!({
                "payee": job.destination,
                "amount": amount,
                "invoiceCurrency": job.amount.currency.code(),
                "paymentCurrency": job.amount.currency.code(),
                "reference": job.key,
            });
            let request = app
                .http
                .post(url)
                .header("x-api-key", &cfg.request_network_api_key)
                .timeout(cfg.provider_timeout)
                .json(&body);
            let (status, _) = send_json(request).await?;
            if !(200..300).contains(&status) {
                return Err(format!("the provider answered HTTP {status}"));
            }
            Ok(())
        }
    }
}

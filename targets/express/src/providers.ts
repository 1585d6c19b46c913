// Calls to the payment providers (PRV-1, PRV-2, PRV-4): configurable base URLs, a timeout on every call, never
// inside a state change. Any failure is a ProviderError (the client gets 503 PROVIDER_UNAVAILABLE).

import { Config } from "./config";
import { Provider } from "./domain/ledger";
import { Currency, Money, formatMoney } from "./money";
import { isObject, Json, JsonObject } from "./util";

export class ProviderError extends Error {}

export interface Invoice {
  /** What the provider's webhooks name: our external id for SHKeeper, the request id for Request Network. */
  binding: string;
  instructions: JsonObject;
}

export interface PayoutJob {
  escrow: number;
  provider: Provider;
  key: string;
  amount: Money;
  destination: string;
}

function cryptoOf(c: Currency): string {
  return c === "USDT" ? "USDT" : c === "USDC" ? "USDC" : "BTC";
}

function base(url: string | null): string {
  if (url === null) throw new ProviderError("no provider URL is configured");
  return url.replace(/\/+$/, "");
}

async function send(url: string, init: RequestInit, timeoutMs: number): Promise<{ status: number; body: Json }> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const name = (e as Error).name;
    throw new ProviderError(name === "TimeoutError" || name === "AbortError" ? "the provider timed out" : "the provider could not be reached");
  }
  let text: string;
  try {
    text = await response.text();
  } catch {
    throw new ProviderError("the provider's answer was cut");
  }
  let body: Json = null;
  try {
    body = JSON.parse(text) as Json;
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

function field(body: Json, name: string): string | null {
  if (!isObject(body)) return null;
  const v = body[name];
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return null;
}

export class Providers {
  constructor(private readonly cfg: Config, private readonly callbackBase: () => string) {}

  /** PRV-1: the provider invoice of an escrow. */
  async createInvoice(provider: Provider, externalId: string, amount: Money): Promise<Invoice> {
    const cfg = this.cfg;
    const amountText = formatMoney(amount);
    const currency = amount.currency;
    switch (provider) {
      case "manual_wallet":
        return {
          binding: externalId,
          instructions: { method: "manual_wallet", invoiceId: null, payTo: cfg.platformAddress, amount: amountText, currency },
        };
      case "shkeeper": {
        const crypto = cryptoOf(currency);
        const { status, body } = await send(
          `${base(cfg.shkeeperUrl)}/api/v1/${crypto}/payment_request`,
          {
            method: "POST",
            headers: { "content-type": "application/json", "X-Shkeeper-Api-Key": cfg.shkeeperApiKey },
            body: JSON.stringify({
              external_id: externalId,
              fiat: currency,
              amount: amountText,
              callback_url: `${this.callbackBase()}/api/v1/hooks/shkeeper`,
            }),
          },
          cfg.providerTimeoutMs,
        );
        if (status >= 300) throw new ProviderError(`the provider answered HTTP ${status}`);
        // SHKeeper reports errors as HTTP 200 with {"status":"error"}: read the status, not the HTTP code.
        if (field(body, "status") !== "success") throw new ProviderError("the provider answered with an error");
        return {
          binding: externalId,
          instructions: {
            method: "shkeeper",
            invoiceId: field(body, "id"),
            payTo: field(body, "wallet"),
            amount: amountText,
            currency,
            payCurrency: crypto,
            payAmount: field(body, "amount"),
          },
        };
      }
      case "request_network": {
        const { status, body } = await send(
          `${base(cfg.requestNetworkUrl)}/v2/request`,
          {
            method: "POST",
            headers: { "content-type": "application/json", "x-api-key": cfg.requestNetworkApiKey },
            body: JSON.stringify({
              payee: cfg.platformAddress,
              amount: amountText,
              invoiceCurrency: currency,
              paymentCurrency: currency,
              reference: externalId,
            }),
          },
          cfg.providerTimeoutMs,
        );
        if (status < 200 || status >= 300) throw new ProviderError(`the provider answered HTTP ${status}`);
        const requestId = field(body, "requestId");
        if (!requestId) throw new ProviderError("the provider's answer has no requestId");
        return {
          binding: requestId,
          instructions: {
            method: "request_network",
            invoiceId: requestId,
            payTo: field(body, "paymentReference"),
            amount: amountText,
            currency,
            payCurrency: currency,
            payAmount: amountText,
          },
        };
      }
    }
  }

  /** PRV-4: a payout or refund with the escrow's idempotency key, the same on every retry. */
  async sendPayout(job: PayoutJob): Promise<void> {
    const cfg = this.cfg;
    const amount = formatMoney(job.amount);
    switch (job.provider) {
      case "manual_wallet":
        // The platform pays manual-wallet payouts itself; the confirmation arrives as a Standard Webhooks delivery.
        return;
      case "shkeeper": {
        const crypto = cryptoOf(job.amount.currency);
        const basic = Buffer.from(`${cfg.shkeeperPayoutUser}:${cfg.shkeeperPayoutPassword}`).toString("base64");
        const { status, body } = await send(
          `${base(cfg.shkeeperUrl)}/api/v1/${crypto}/payout`,
          {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Basic ${basic}` },
            body: JSON.stringify({
              amount,
              destination: job.destination,
              fee: "0",
              callback_url: `${this.callbackBase()}/api/v1/hooks/shkeeper`,
              external_id: job.key,
            }),
          },
          cfg.providerTimeoutMs,
        );
        if (status >= 300) throw new ProviderError(`the provider answered HTTP ${status}`);
        if (field(body, "status") === "error") throw new ProviderError("the provider answered with an error");
        return;
      }
      case "request_network": {
        const { status } = await send(
          `${base(cfg.requestNetworkUrl)}/v2/payouts`,
          {
            method: "POST",
            headers: { "content-type": "application/json", "x-api-key": cfg.requestNetworkApiKey },
            body: JSON.stringify({
              payee: job.destination,
              amount,
              invoiceCurrency: job.amount.currency,
              paymentCurrency: job.amount.currency,
              reference: job.key,
            }),
          },
          cfg.providerTimeoutMs,
        );
        if (status < 200 || status >= 300) throw new ProviderError(`the provider answered HTTP ${status}`);
        return;
      }
    }
  }
}

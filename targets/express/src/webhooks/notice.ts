// What a provider says, parsed from an authenticated body, with the keys that deduplicate it (WH-4): the provider
// event (SHKeeper: invoice + trigger txid, payouts: external id + payout id; Request Network: request id + tx hash;
// Standard Webhooks: event id) and, where the scheme has one, the delivery id.

import { Money, MoneyError, parseCurrency, parseMoney } from "../money";
import { Headers, Scheme } from "./verify";
import { isObject, JsonObject, Json } from "../util";

export type NoticeKind =
  | "payment_received"
  | "payment_pending"
  | "payment_failed"
  | "payout_confirmed"
  | "payout_failed"
  | "refund_confirmed";

export interface Notice {
  scheme: Scheme;
  kind: NoticeKind;
  /** The invoice (SHKeeper external id, Request Network request id) or, for payouts, our idempotency key. */
  invoice: string;
  /** The amount when its currency is one we know; null for an unknown currency. */
  amount: Money | null;
  amountText: string | null;
  eventKey: string;
  deliveryKey: string | null;
}

export class ParseError extends Error {}

function parseObject(body: Buffer): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new ParseError(`body is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(value)) throw new ParseError("body is not a JSON object");
  return value;
}

function escapePart(p: string): string {
  return p.replace(/%/g, "%25").replace(/:/g, "%3A");
}

function eventKey(scheme: Scheme, parts: string[]): string {
  return `${scheme}:event:${parts.map(escapePart).join(":")}`;
}

function shown(v: string): string {
  return v.length > 40 ? `${v.slice(0, 40)}…` : v;
}

class Fields {
  constructor(readonly o: JsonObject, readonly path = "") {}

  name(f: string): string {
    return `${this.path}${f}`;
  }

  optStr(f: string): string | null {
    const v: Json | undefined = this.o[f];
    if (v === undefined || v === null) return null;
    if (typeof v === "string") return v;
    throw new ParseError(`field ${this.name(f)} must be a string`);
  }

  optText(f: string): string | null {
    const v = this.optStr(f);
    return v === "" ? null : v;
  }

  text(f: string): string {
    const v = this.optStr(f);
    if (v === null) throw new ParseError(`missing field ${this.name(f)}`);
    if (v === "") throw new ParseError(`field ${this.name(f)} is empty`);
    return v;
  }

  id(f: string): string {
    const v = this.o[f];
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return String(v);
    return this.text(f);
  }

  optBool(f: string): boolean | null {
    const v = this.o[f];
    if (v === undefined || v === null) return null;
    if (typeof v === "boolean") return v;
    throw new ParseError(`field ${this.name(f)} must be true or false`);
  }

  array(f: string): Json[] {
    const v = this.o[f];
    if (v === undefined || v === null) throw new ParseError(`missing field ${this.name(f)}`);
    if (!Array.isArray(v)) throw new ParseError(`field ${this.name(f)} must be an array`);
    return v;
  }

  amountIn(f: string, text: string, code: string): Money | null {
    const currency = parseCurrency(code);
    if (currency) {
      try {
        return parseMoney(text, currency);
      } catch (e) {
        if (e instanceof MoneyError) throw new ParseError(`field ${this.name(f)}: ${e.message}`);
        throw e;
      }
    }
    if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return null;
    throw new ParseError(`field ${this.name(f)}: malformed amount ${JSON.stringify(shown(text))}`);
  }

  /** Amount and currency fields, required or optional together. */
  amountParts(amountField: string, currencyField: string, required: boolean): { amount: Money | null; text: string | null } {
    const text = required ? this.text(amountField) : this.optText(amountField);
    const code = required ? this.text(currencyField) : this.optText(currencyField);
    if (text !== null && code === null) throw new ParseError(`missing field ${this.name(currencyField)}`);
    if (text === null || code === null) return { amount: null, text };
    return { amount: this.amountIn(amountField, text, code), text };
  }
}

function movesMoney(kind: NoticeKind): boolean {
  return kind === "payment_received" || kind === "payout_confirmed" || kind === "refund_confirmed";
}

function shkeeperPayment(o: JsonObject): Notice {
  const f = new Fields(o);
  const externalId = f.text("external_id");
  const fiat = f.text("fiat");
  const status = f.text("status");
  if (!["PARTIAL", "PAID", "OVERPAID"].includes(status)) throw new ParseError(`field status has unknown value ${JSON.stringify(shown(status))}`);
  const balance = f.optText("balance_fiat");
  if (balance !== null) f.amountIn("balance_fiat", balance, fiat);
  const triggers: Fields[] = [];
  f.array("transactions").forEach((tx, i) => {
    if (!isObject(tx)) throw new ParseError(`transactions[${i}] is not a JSON object`);
    const t = new Fields(tx, `transactions[${i}].`);
    if (t.optBool("trigger") === true) triggers.push(t);
  });
  if (triggers.length === 0) throw new ParseError("no transaction has trigger: true");
  if (triggers.length > 1) throw new ParseError(`${triggers.length} transactions have trigger: true`);
  const trigger = triggers[0]!;
  const txid = trigger.text("txid");
  const amountText = trigger.text("amount_fiat");
  const amount = trigger.amountIn("amount_fiat", amountText, fiat);
  return {
    scheme: "shkeeper",
    kind: "payment_received",
    invoice: externalId,
    amount,
    amountText,
    eventKey: eventKey("shkeeper", ["payment_received", externalId, txid]),
    deliveryKey: null,
  };
}

function shkeeperPayout(o: JsonObject): Notice {
  const f = new Fields(o);
  const payoutId = f.id("payout_id");
  const externalId = f.text("external_id");
  const status = f.text("status");
  let kind: NoticeKind;
  if (status === "SUCCESS") kind = "payout_confirmed";
  else if (status === "FAIL" || status === "FAILURE") kind = "payout_failed";
  else throw new ParseError(`field status has unknown value ${JSON.stringify(shown(status))}`);
  const moved = movesMoney(kind);
  if (moved) f.text("tx_hash");
  else f.optText("tx_hash");
  const { amount, text } = f.amountParts("amount_fiat", "currency_fiat", moved);
  return {
    scheme: "shkeeper",
    kind,
    invoice: externalId,
    amount,
    amountText: text,
    eventKey: eventKey("shkeeper", [kind, externalId, payoutId]),
    deliveryKey: null,
  };
}

function requestNetwork(h: Headers, o: JsonObject): Notice {
  const f = new Fields(o);
  const event = f.text("event");
  let base = event;
  for (const suffix of [".client_id", ".checkout"]) if (event.endsWith(suffix)) base = event.slice(0, -suffix.length);
  const kinds: Record<string, NoticeKind> = {
    "payment.confirmed": "payment_received",
    "payment.partial": "payment_received",
    "payment.processing": "payment_pending",
    "payment.failed": "payment_failed",
    "payment.refunded": "refund_confirmed",
  };
  const kind = kinds[base];
  if (!kind) throw new ParseError(`field event has unknown value ${JSON.stringify(shown(event))}`);
  const requestId = f.text("requestId");
  const moved = movesMoney(kind);
  const txHash = moved ? f.text("txHash") : f.optText("txHash");
  const { amount, text } = f.amountParts("amount", "currency", moved);
  const total = f.optText("totalAmountPaid");
  const code = f.optText("currency");
  if (total !== null && code !== null) f.amountIn("totalAmountPaid", total, code);
  const delivery = h.get("x-request-network-delivery");
  return {
    scheme: "request_network",
    kind,
    invoice: requestId,
    amount,
    amountText: text,
    eventKey: eventKey("request_network", [kind, requestId, txHash ?? ""]),
    deliveryKey: delivery ? `request_network:delivery:${escapePart(delivery)}` : null,
  };
}

function standard(h: Headers, o: JsonObject): Notice {
  const f = new Fields(o);
  const type = f.text("type");
  const kinds: Record<string, NoticeKind> = {
    "payment.received": "payment_received",
    "payment.pending": "payment_pending",
    "payment.failed": "payment_failed",
    "payout.confirmed": "payout_confirmed",
    "payout.failed": "payout_failed",
    "refund.confirmed": "refund_confirmed",
  };
  const kind = kinds[type];
  if (!kind) throw new ParseError(`field type has unknown value ${JSON.stringify(shown(type))}`);
  const eventId = f.text("event_id");
  const invoice = f.text("invoice");
  const moved = movesMoney(kind);
  if (moved) f.text("transaction");
  else f.optText("transaction");
  const { amount, text } = f.amountParts("amount", "currency", moved);
  const status = f.optText("status");
  if (status !== null && !["partial", "paid", "overpaid"].includes(status)) {
    throw new ParseError(`field status has unknown value ${JSON.stringify(shown(status))}`);
  }
  const delivery = h.get("webhook-id");
  return {
    scheme: "standard_webhooks",
    kind,
    invoice,
    amount,
    amountText: text,
    eventKey: eventKey("standard_webhooks", [eventId]),
    deliveryKey: delivery ? `standard_webhooks:delivery:${escapePart(delivery)}` : null,
  };
}

export function parseNotice(scheme: Scheme, h: Headers, body: Buffer): Notice {
  const o = parseObject(body);
  switch (scheme) {
    case "shkeeper":
      return "payout_id" in o ? shkeeperPayout(o) : shkeeperPayment(o);
    case "request_network":
      return requestNetwork(h, o);
    case "standard_webhooks":
      return standard(h, o);
  }
}

export function dedupKeys(n: Notice): string[] {
  return n.deliveryKey ? [n.eventKey, n.deliveryKey] : [n.eventKey];
}

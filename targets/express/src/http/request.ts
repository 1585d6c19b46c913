// Request parsing: the raw body (kept as bytes for webhooks), JSON objects with an allow-list of fields (AZ-8:
// anything else is refused), query parameters, cookies, the client address, and the caller.

import type { Request } from "express";
import { Refusal, invalid } from "../errors";
import { Currency, Money, MoneyError, parseCurrency, parseMoney } from "../money";
import { Json, JsonObject, cookiesOf, isObject } from "../util";

export function rawBody(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** The body as a JSON object (syntax only); an empty body is {}. */
export function json(req: Request): JsonObject {
  const raw = rawBody(req);
  if (raw.toString("utf8").trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch {
    throw invalid("the body is not valid JSON");
  }
  if (!isObject(parsed)) throw invalid("the body must be a JSON object");
  return parsed;
}

/** Only `allowed` fields (AZ-8: anything else is refused) and every `required` one. */
export function allow(o: JsonObject, allowed: readonly string[], required: readonly string[] = []): JsonObject {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) throw invalid(`field ${JSON.stringify(key)} may not be set`);
  }
  for (const key of required) {
    if (!(key in o) || o[key] === null) throw invalid(`field ${JSON.stringify(key)} is required`);
  }
  return o;
}

export function object(req: Request, allowed: readonly string[], required: readonly string[] = []): JsonObject {
  return allow(json(req), allowed, required);
}

export function optStr(o: JsonObject, name: string): string | null {
  const v = o[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw invalid(`field ${JSON.stringify(name)} must be a string`);
  return v;
}

export function reqStr(o: JsonObject, name: string): string {
  const v = optStr(o, name);
  if (v === null) throw invalid(`field ${JSON.stringify(name)} is required`);
  return v;
}

export function text(o: JsonObject, name: string, max: number): string | null {
  const v = optStr(o, name);
  if (v !== null && [...v].length > max) throw invalid(`field ${JSON.stringify(name)} is longer than ${max} characters`);
  return v;
}

/** `{ "amount": "125.50", "currency": "USD" }` at `name`. */
export function moneyField(o: JsonObject, name: string): Money {
  const v: Json | undefined = o[name];
  if (!isObject(v)) throw invalid(`field ${JSON.stringify(name)} must be {"amount": "…", "currency": "…"}`);
  for (const key of Object.keys(v)) {
    if (key !== "amount" && key !== "currency") throw invalid(`field ${JSON.stringify(`${name}.${key}`)} may not be set`);
  }
  const amount = v["amount"];
  const code = v["currency"];
  if (typeof amount !== "string") throw invalid(`field ${JSON.stringify(`${name}.amount`)} must be a decimal string`);
  if (typeof code !== "string") throw invalid(`field ${JSON.stringify(`${name}.currency`)} must be a string`);
  const currency: Currency | null = parseCurrency(code);
  if (!currency) throw invalid(`unknown currency ${JSON.stringify(code)}: supported are USD, USDT, USDC, BTC`);
  try {
    return parseMoney(amount, currency);
  } catch (e) {
    if (e instanceof MoneyError) throw invalid(e.message);
    throw e;
  }
}

/** `expectedVersion` (ESC-21): an integer, or a string of digits. */
export function expectedVersion(o: JsonObject): number | null {
  const v = o["expectedVersion"];
  if (v === undefined || v === null) return null;
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && /^[0-9]{1,15}$/.test(v)) return Number(v);
  throw invalid("expectedVersion must be a version number");
}

/** A query parameter; empty counts as absent. */
export function query(req: Request, name: string): string | null {
  const v = req.query[name];
  if (typeof v === "string" && v !== "") return v;
  if (v !== undefined && typeof v !== "string") throw invalid(`query parameter ${name} must be given once`);
  return null;
}

export function page(req: Request): { limit: number; offset: number } {
  const l = query(req, "pageSize");
  let limit = 100;
  if (l !== null) {
    if (!/^[0-9]{1,4}$/.test(l) || Number(l) < 1 || Number(l) > 500) throw invalid("pageSize must be an integer from 1 to 500");
    limit = Number(l);
  }
  const c = query(req, "cursor");
  let offset = 0;
  if (c !== null) {
    if (!/^[0-9]{1,9}$/.test(c)) throw invalid("unknown cursor");
    offset = Number(c);
  }
  return { limit, offset };
}

/**
 * A page of a list. The next page's cursor is at the top level as `next_cursor`: conform's list reader looks for
 * it there whatever the profile says (see NOTES.md).
 */
export function paged(items: Json[], limit: number, offset: number): JsonObject {
  const next = offset + limit < items.length ? String(offset + limit) : null;
  return { data: items.slice(offset, offset + limit), next_cursor: next };
}

export function cookies(req: Request): Map<string, string> {
  return cookiesOf(req.headers.cookie);
}

export function bearer(req: Request): string | null {
  const h = req.headers.authorization;
  if (typeof h !== "string") return null;
  const m = /^bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

export function clientAddress(req: Request, trustForwarded: boolean): string {
  if (trustForwarded) {
    const f = req.headers["x-forwarded-for"];
    const first = (Array.isArray(f) ? f[0] : f)?.split(",")[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? "unknown";
}

export function isSafeMethod(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

export function notFound(): Refusal {
  return new Refusal("not_found");
}

// Small helpers: random ids, time, password hashing, TOTP, constant-time comparison.

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";

/** A random UUIDv4 (unguessable ids, SPEC §0). */
export function uuid(): string {
  return randomUUID();
}

/** An opaque random token: 256 bits, base64url. */
export function opaqueToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Seconds since the epoch from the system clock. */
export function systemNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** RFC 3339 UTC, whole seconds. */
export function rfc3339(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A salted SHA-256 password hash (a test target; production would use a slow KDF). */
export function hashPassword(salt: Buffer, password: string): Buffer {
  return createHash("sha256").update(salt).update(password, "utf8").digest();
}

/** Constant-time equality that never throws on different lengths. */
export function ctEqual(a: Buffer | string, b: Buffer | string): boolean {
  const x = typeof a === "string" ? Buffer.from(a, "utf8") : a;
  const y = typeof b === "string" ? Buffer.from(b, "utf8") : b;
  if (x.length !== y.length) {
    // Still spend comparable time.
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** Decodes a base32 TOTP seed (case-insensitive, padding and spaces optional); null when invalid or empty. */
export function decodeBase32(seed: string): Buffer | null {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const cleaned = seed.replace(/[\s=]/g, "").toUpperCase();
  if (cleaned.length === 0) return null;
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of cleaned) {
    const index = alphabet.indexOf(ch);
    if (index < 0) return null;
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  // Leftover bits must be zero padding of fewer than 5 bits.
  if (bits >= 5 || (value & ((1 << bits) - 1)) !== 0) return null;
  return out.length > 0 ? Buffer.from(out) : null;
}

/** RFC 6238 TOTP (HMAC-SHA1, 30 s steps, 6 digits) of `secret` at unix time `t`. */
export function totp(secret: Buffer, t: number): string {
  const counter = BigInt(Math.floor(Math.max(0, t) / 30));
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(counter);
  const mac = createHmac("sha1", secret).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const code =
    ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return String(code % 1_000_000).padStart(6, "0");
}

/** Lowercase hex HMAC-SHA256 of the concatenated parts. */
export function hmacHex(key: Buffer, ...parts: (Buffer | string)[]): string {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** Base64 HMAC-SHA256 of the concatenated parts. */
export function hmacBase64(key: Buffer, ...parts: (Buffer | string)[]): string {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return h.digest("base64");
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The cookies of a Cookie header (first value of each name wins). */
export function cookiesOf(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // keep it raw
    }
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

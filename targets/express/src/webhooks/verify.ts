// Webhook authentication on the exact bytes received (WH-1, WH-2, WH-8, WH-10). Every failure is an
// AuthError whose message names the problem and never a secret (WH-7).

import { ctEqual, hmacBase64, hmacHex } from "../util";

export const TOLERANCE_SECONDS = 300;

export type Scheme = "shkeeper" | "request_network" | "standard_webhooks";

export class AuthError extends Error {
  constructor(message: string, readonly stale = false) {
    super(message);
  }
}

/** A provider's secrets: the current one and, for the configured overlap, the one before it. */
export class SecretRing {
  current: string;
  previous: { secret: string; rotatedAt: number; overlapSeconds: number } | null = null;

  constructor(current: string) {
    this.current = current;
  }

  rotate(next: string, at: number, overlapSeconds: number): void {
    this.previous = { secret: this.current, rotatedAt: at, overlapSeconds };
    this.current = next;
  }

  /** The old secret is valid while now < rotated_at + overlap (default overlap 0). */
  validAt(now: number): string[] {
    const keys = [this.current];
    if (this.previous && now < this.previous.rotatedAt + this.previous.overlapSeconds) keys.push(this.previous.secret);
    return keys;
  }
}

/** Header lookup over the raw header list (case-insensitive, optional whitespace trimmed). */
export class Headers {
  constructor(readonly pairs: [string, string][]) {}

  all(name: string): string[] {
    const lower = name.toLowerCase();
    return this.pairs.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v.replace(/^[ \t]+|[ \t]+$/g, ""));
  }

  get(name: string): string | undefined {
    return this.all(name)[0];
  }

  /** A security header sent twice is refused. */
  unique(name: string): string | undefined {
    const values = this.all(name);
    if (values.length > 1) throw new AuthError(`header ${name} appears more than once`);
    return values[0];
  }

  required(name: string): string {
    const v = this.unique(name);
    if (v === undefined) throw new AuthError(`missing header ${name}`);
    return v;
  }
}

function parseUnixSeconds(text: string): number | null {
  const canonical = text.length > 0 && text.length <= 18 && /^[0-9]+$/.test(text) && (text === "0" || !text.startsWith("0"));
  return canonical ? Number(text) : null;
}

function checkTimestamp(header: string, text: string, now: number): void {
  const at = parseUnixSeconds(text);
  if (at === null) throw new AuthError(`timestamp in ${header} is not a number of seconds`);
  const skew = now - at;
  if (Math.abs(skew) > TOLERANCE_SECONDS) {
    throw new AuthError(`timestamp is ${skew} s away from now (negative: in the future), beyond ${TOLERANCE_SECONDS} s`, true);
  }
}

function checkHex(header: string, signature: string): void {
  if (signature.length !== 64) throw new AuthError(`malformed signature in ${header}: ${signature.length} characters where 64 are expected`);
  if (!/^[0-9a-fA-F]+$/.test(signature)) throw new AuthError(`malformed signature in ${header}: not hexadecimal`);
}

function usable(secret: string): Buffer {
  if (secret.length === 0) throw new AuthError("the configured webhook secret is unusable: empty");
  return Buffer.from(secret, "utf8");
}

/** SHKeeper: HMAC-SHA256(api key, "{timestamp}." + body), lowercase hex; legacy API-key callbacks are refused. */
export function verifyShkeeper(h: Headers, body: Buffer, ring: SecretRing, now: number): void {
  const signature = h.unique("X-Shkeeper-Signature");
  const timestamp = h.unique("X-Shkeeper-Timestamp");
  if (signature === undefined && timestamp === undefined) {
    if (h.unique("X-Shkeeper-Api-Key") === undefined) throw new AuthError("missing header X-Shkeeper-Signature");
    throw new AuthError("legacy API-key callbacks are disabled; a signed callback is required");
  }
  if (timestamp === undefined) throw new AuthError("missing header X-Shkeeper-Timestamp");
  if (signature === undefined) throw new AuthError("missing header X-Shkeeper-Signature");
  checkTimestamp("X-Shkeeper-Timestamp", timestamp, now);
  checkHex("X-Shkeeper-Signature", signature);
  for (const secret of ring.validAt(now)) {
    // Upper-case hex is a mismatch: the comparison is on the exact lowercase digest.
    if (ctEqual(hmacHex(usable(secret), timestamp, ".", body), signature)) return;
  }
  throw new AuthError("signature does not match");
}

/** Request Network: HMAC-SHA256(secret, body), hex; replay protection is deduplication. */
export function verifyRequestNetwork(h: Headers, body: Buffer, ring: SecretRing, now: number): void {
  const signature = h.required("x-request-network-signature");
  checkHex("x-request-network-signature", signature);
  for (const secret of ring.validAt(now)) {
    if (ctEqual(hmacHex(usable(secret), body), signature)) return;
  }
  throw new AuthError("signature does not match");
}

/** The key of a `whsec_…` secret; null when it is not base64. */
export function standardWebhooksKey(secret: string): Buffer | null {
  const encoded = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return null;
  const key = Buffer.from(encoded, "base64");
  return key.length > 0 ? key : null;
}

/** Standard Webhooks: "v1," + base64 HMAC over "{id}.{timestamp}.{body}"; several signatures may be sent. */
export function verifyStandard(h: Headers, body: Buffer, ring: SecretRing, now: number): void {
  const id = h.required("webhook-id");
  const timestamp = h.required("webhook-timestamp");
  const signatures = h.required("webhook-signature");
  checkTimestamp("webhook-timestamp", timestamp, now);
  const candidates = signatures
    .split(" ")
    .map((entry) => {
      const comma = entry.indexOf(",");
      return comma < 0 ? null : [entry.slice(0, comma), entry.slice(comma + 1)];
    })
    .filter((p): p is string[] => p !== null && p[0] === "v1" && p[1] !== "")
    .map((p) => p[1]!);
  if (candidates.length === 0) throw new AuthError("malformed signature in webhook-signature: no v1 signature");
  for (const secret of ring.validAt(now)) {
    const key = standardWebhooksKey(secret);
    if (!key) throw new AuthError("the configured webhook secret is unusable: not a whsec_ base64 secret");
    const expected = hmacBase64(key, id, ".", timestamp, ".", body);
    let matched = false;
    for (const c of candidates) matched = ctEqual(expected, c) || matched;
    if (matched) return;
  }
  throw new AuthError("signature does not match");
}

export function verify(scheme: Scheme, h: Headers, body: Buffer, ring: SecretRing, now: number): void {
  switch (scheme) {
    case "shkeeper":
      return verifyShkeeper(h, body, ring, now);
    case "request_network":
      return verifyRequestNetwork(h, body, ring, now);
    case "standard_webhooks":
      return verifyStandard(h, body, ring, now);
  }
}

const SECRET_PARTS = ["secret", "token", "password", "api-key", "api_key", "apikey"];

export function isSecretHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return ["authorization", "proxy-authorization", "cookie", "set-cookie"].includes(lower) || SECRET_PARTS.some((p) => lower.includes(p));
}

/** Headers with secret values redacted (WH-5). */
export function redact(pairs: [string, string][]): [string, string][] {
  return pairs.map(([n, v]) => [n, isSecretHeader(n) ? "[redacted]" : v]);
}
